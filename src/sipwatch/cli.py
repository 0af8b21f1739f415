"""The `sipwatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from sipwatch import __version__
from sipwatch.config import Config, ConfigError, load
from sipwatch.formats.records import ScanStats
from sipwatch.report import to_json, write_text
from sipwatch.scan import Reader, scan
from sipwatch.sources.files import FileSource, SourceError


class _Progress:
    """A one-line progress indicator on stderr, only when it is a terminal and the input is large."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.enabled or total < 20 << 20:
            return
        pct = 100.0 * done / total if total else 0.0
        self.stream.write(f"\r{name}: {pct:5.1f}% ({done >> 20} of {total >> 20} MiB)")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 70 + "\r")


def _config(path: str | None) -> Config:
    return load(path)


def cmd_scan(args: argparse.Namespace) -> int:
    config = _config(args.config)
    progress = _Progress(sys.stderr)
    result = scan(args.files, config, progress)
    progress.close()
    if args.json:
        json.dump(to_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_text(result, sys.stdout, args.top)
    for err in result.errors:
        print(f"sipwatch: {err}", file=sys.stderr)
    return 2 if result.errors else 0


def cmd_explain(args: argparse.Namespace) -> int:
    config = _config(args.config)
    reader = Reader(config)
    failed = False
    out = sys.stdout
    for path in args.files:
        stats = ScanStats()
        try:
            for event in reader.events(FileSource(path), stats):
                if args.jsonl:
                    out.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                    continue
                fields = [f"kind={event.kind}", f"ip={event.ip}", f"port={event.port}",
                          f"service={event.service}", f"evidence={event.evidence}"]
                for name in ("transport", "account", "target", "session", "user_agent"):
                    value = getattr(event, name)
                    if value is not None:
                        fields.append(f"{name}={value!r}")
                if event.reason:
                    fields.append(f"reason={event.reason!r}")
                out.write(f"{event.file}:{event.line}: format {event.form}\n    {' '.join(fields)}\n")
        except SourceError as exc:
            print(f"sipwatch: {exc}", file=sys.stderr)
            failed = True
        if not args.jsonl:
            out.write(f"# {path}: {stats.lines} lines, {stats.events} events, {stats.unmatched} unmatched, "
                      f"{stats.junk} junk\n")
            for f, n, t in stats.unmatched_samples[:10]:
                out.write(f"# unmatched {f}:{n}: {t[:200]}\n")
    return 2 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipwatch", description="Protect SIP servers from attacks.")
    parser.add_argument("--version", action="version", version=f"sipwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="read logs (plain or .gz) and report attackers and decisions")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (detector thresholds, allowlist)")
    p.add_argument("--top", type=int, default=20, help="offenders shown in the text report (default 20)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("explain", help="show, per record, the format that matched and the fields taken")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per event")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"sipwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
