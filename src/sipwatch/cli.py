"""The `sipwatch` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from ipaddress import IPv6Network
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import orjson

from sipwatch import __version__
from sipwatch.config import Config, ConfigError, duration, load
from sipwatch.detectors.base import manual_ban
from sipwatch.errors import ControlError, FirewallError, SourceError, StoreError, redact
from sipwatch.forkpool import BrokenWorker
from sipwatch.formats.records import ScanStats
from sipwatch.pipeline import Pipeline
from sipwatch.report import offender_json, ranked, to_json, write_text
from sipwatch.scan import Reader, ScanResult, few_collections, scan
from sipwatch.sources.files import FileSource

if TYPE_CHECKING:
    from sipwatch.responders.firewall import Backend, Target
    from sipwatch.responders.pbx import PbxActions
    from sipwatch.store import Store

# The daemon's side (store, firewall, alerts, control socket) is loaded by the commands that use it: a scan
# starts without it.


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


#: one line each, every key a plain `str` (a report writes its counts by Kind so: orjson writes such dicts twice
#: as fast as with OPT_NON_STR_KEYS)
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE


def _json_line(document: object) -> bytes:
    """One line of JSON (UTF-8, compact). orjson writes a large scan's report (~2.5 MB per million log lines)
    in a tenth of the time the standard library takes: that is time at the end of every scan. Text that is
    not valid Unicode (a file name given in bytes that are not UTF-8), or a key that is not a `str`, is written
    by `json` instead."""
    try:
        return orjson.dumps(document, option=_JSON_OPTIONS)
    except TypeError:
        return (json.dumps(document, check_circular=False) + "\n").encode()


#: where a report written without its offenders gets them (the first such text of the compact JSON: the key is
#: the top level's, and a string holds no unescaped quote)
_OFFENDERS = b'"offenders":[]'


def _report_json(result: ScanResult) -> bytes:
    """`_json_line(to_json(result))`, each offender written the moment it is made: a large scan has thousands,
    each a dict of lists and dicts, which made and dropped one at a time reuse the same memory instead of new
    pages (~8 ms of a million lines' report)."""
    try:
        head = orjson.dumps(to_json(result, offenders=False), option=_JSON_OPTIONS)
        dumps = orjson.dumps
        offenders = [dumps(offender_json(o)) for o in ranked(result)]
    except TypeError:
        return _json_line(to_json(result))
    before, found, after = head.partition(_OFFENDERS)
    if not found:
        return _json_line(to_json(result))
    return b"".join((before, b'"offenders":[', b",".join(offenders), b"]", after))  # (a 2.5 MB report: copied once)


def _write_bytes(data: bytes, out: TextIO) -> None:
    buffer = getattr(out, "buffer", None)
    if buffer is None:  # a text-only stream (a test's StringIO)
        out.write(data.decode())
        return
    out.flush()
    buffer.write(data)


def cmd_scan(args: argparse.Namespace) -> int:
    config = _config(args.config)
    pipeline = _learned_pipeline(config, args.state_dir) if args.state_dir else None
    progress = _Progress(sys.stderr)
    global _quick_exit
    _quick_exit = True
    result = scan(args.files, config, progress, pipeline=pipeline, keep=_kept)
    progress.close()
    if _kept is not None:
        _kept.append(result)
    with few_collections():
        if args.json:
            _write_bytes(_report_json(result), sys.stdout)
        else:
            write_text(result, sys.stdout, args.top)
    for err in result.errors:
        print(f"sipwatch: {err}", file=sys.stderr)
    return 2 if result.errors else 0


def _learned_pipeline(config: Config, state_dir: str) -> Pipeline:
    """A scan that judges the accounts as the daemon would: with the profiles (and the learning mode) of
    the store in `state_dir`, which is only read."""
    from sipwatch.learn import attach_read_only

    path = os.path.join(state_dir, "sipwatch.db")
    if not os.path.isfile(path):
        raise StoreError(f"--state-dir {state_dir}: no store there (sipwatch.db); `sipwatch learn` or the daemon "
                         "makes one")
    from sipwatch.store import Store

    pipeline = Pipeline(config)
    store = Store(path, max_events=config.run.keep_events)
    try:
        attach_read_only(pipeline, store)
    finally:
        store.close()
    return pipeline


def cmd_learn(args: argparse.Namespace) -> int:
    from sipwatch.learn import learn

    config = _run_config(args)
    progress = _Progress(sys.stderr)
    learned = learn(args.files, config, _store(config), progress)
    progress.close()
    until = learned.learning_until
    print(f"{learned.scan.stats.events} events read; {learned.accounts} account profile(s) in "
          f"{os.path.join(config.run.state_dir, 'sipwatch.db')}, {learned.judged} with enough history to be judged; "
          f"{learned.decisions} behaviour decision(s) in the history (days with a critical one are not learned)")
    if until is not None:
        when = time.strftime('%Y-%m-%d %H:%M', time.localtime(until))
        print(f"learning mode (alerts only) until {when}" if until > time.time()
              else f"learning mode over since {when}")
    for err in learned.scan.errors:
        print(f"sipwatch: {err}", file=sys.stderr)
    return 2 if learned.scan.errors else 0


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
                    out.write(_json_line(event.to_json()).decode())
                    continue
                fields = [f"kind={event.kind}", f"ip={event.ip}", f"port={event.port}",
                          f"service={event.service}", f"evidence={event.evidence}"]
                for name in ("transport", "account", "target", "session", "user_agent"):
                    value = getattr(event, name)
                    if value is not None:
                        fields.append(f"{name}={value!r}")
                if event.reason:
                    fields.append(f"reason={event.reason!r}")
                if event.call is not None:
                    fields += [f"{k}={v!r}" for k, v in event.call.to_json().items() if v is not None]
                if "contact" in event.extra:
                    fields.append(f"contact={event.extra['contact']!r} (the phone's word, not a source)")
                out.write(f"{event.file}:{event.line}: format {event.form}\n    {' '.join(fields)}\n")
        except SourceError as exc:
            print(f"sipwatch: {exc}", file=sys.stderr)
            failed = True
        if not args.jsonl:
            out.write(f"# {path}: {stats.lines} lines, {stats.events} events, {stats.unmatched} unmatched, "
                      f"{stats.junk} junk" + (f", {stats.bad} broken CDR/CEL rows" if stats.bad else "") + "\n")
            for f, n, t in stats.unmatched_samples[:10]:
                out.write(f"# unmatched {f}:{n}: {t[:200]}\n")
            for f, n, t in stats.bad_samples[:10]:
                out.write(f"# broken {f}:{n}: {t[:200]}\n")
    return 2 if failed else 0


def _run_config(args: argparse.Namespace) -> Config:
    config = _config(args.config)
    run = config.run
    if getattr(args, "watch", None):
        run.watch = list(args.watch)
    if getattr(args, "backend", None):
        run.backend = args.backend
    if getattr(args, "state_dir", None):
        run.state_dir = args.state_dir
    return config


def _store(config: Config) -> Store:
    from sipwatch.store import Store

    return Store(os.path.join(config.run.state_dir, "sipwatch.db"), max_events=config.run.keep_events)


def _backend(config: Config, scoped: bool = True) -> Backend:
    """The configured firewall backend, for the ports of `run.ports` (all ports: `scoped` False)."""
    from sipwatch.responders.firewall import Options, Scope, create

    scope = Scope(tuple(int(p) for p in config.run.ports), config.run.all_ports) if scoped else Scope()
    return create(config.run.backend, Options(scope))


def _target(text: str) -> Target | None:
    from sipwatch.responders.firewall import target_of

    return target_of(text)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args.config)
    print(f"{args.config}: ok ({len(config.run.watch)} watched path(s), backend {config.run.backend}, "
          f"{len(config.policy.allowlist)} allowlisted network(s))")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    from sipwatch.daemon import Daemon  # the daemon's imports are not needed by scan and explain

    config = _run_config(args)
    if not config.run.watch:
        raise ConfigError("run.watch: nothing to watch (give --watch PATH or set run.watch in the config)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sipwatch %(levelname)s %(message)s")
    backend = _backend(config)
    daemon = Daemon(config, backend, _store(config))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("sipwatch").info("watching %s with the %s backend", ", ".join(map(redact, config.run.watch)),
                                       config.run.backend)
    daemon.run(stop)
    return 0


def _ask(config: Config, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The running daemon's answer, or None when no daemon listens (the store is used instead)."""
    from sipwatch import control

    try:
        return control.request(os.path.join(config.run.state_dir, control.SOCKET_NAME), payload)
    except ControlError as exc:
        if "no daemon socket" in str(exc) or "does not answer" in str(exc):
            return None
        raise


def _print_bans(bans: list[dict[str, Any]], as_json: bool) -> None:
    rows = [{"ip": b["ip"], "until": b["until"], "reason": f"{b['detector']}: {b['reason']}", "count": b["count"]}
            for b in bans]
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for row in rows:
        left = int(float(row["until"]) - time.time())
        print(f"{row['ip']}  {left // 60} min left  (ban #{row['count']})  {row['reason']}")


def cmd_status(args: argparse.Namespace) -> int:
    config = _run_config(args)
    answer = _ask(config, {"command": "status"})
    if answer is None:
        print(f"sipwatch is not running (no control socket in {config.run.state_dir})")
        return 3
    print(f"sipwatch running since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(answer['started']))}"
          f", backend {answer['backend']}")
    print(f"  following: {', '.join(str(f) for f in answer['files'])}")
    print(f"  lines read {answer['lines']}, events {answer['events']}, bans made {answer['bans_made']}, "
          f"active {answer['bans_active']}")
    until = answer.get("learning_until")
    if until and float(until) > time.time():
        print(f"  learning mode until {time.strftime('%Y-%m-%d %H:%M', time.localtime(float(until)))}: "
              "critical account decisions are alerts only")
    for source, problem in answer.get("problems", {}).items():
        print(f"  problem with {source}: {problem}")
    return 0


def cmd_bans(args: argparse.Namespace) -> int:
    config = _run_config(args)
    if args.action == "list":
        answer = _ask(config, {"command": "bans-list"})
        bans = answer["bans"] if answer is not None else [b.to_json() for b in _store(config).bans()]
        _print_bans(bans, args.json)
        return 0
    ip = _target(args.ip) if args.ip else None
    if ip is None:
        print(f"sipwatch: {args.ip!r} is not an IP address (nor an IPv6 network of /32 to /127)", file=sys.stderr)
        return 2
    seconds = duration(args.duration, "--for")
    command = {"add": "bans-add", "del": "bans-del"}[args.action]
    if _ask(config, {"command": command, "ip": str(ip), "seconds": seconds}) is None:
        _offline_ban(config, args.action, ip, seconds)
    print(f"{ip} banned for {seconds:.0f}s" if args.action == "add" else f"{ip} unbanned")
    return 0


def _offline_ban(config: Config, action: str, ip: Target, seconds: float) -> None:
    """No daemon running: change the kernel and the store directly (the daemon reconciles on start)."""
    from sipwatch.responders.firewall import Ban

    backend = _backend(config)
    store = _store(config)
    if action == "add":
        backend.setup()
        backend.ban([Ban(ip, seconds)])
        decision = manual_ban(ip, seconds, time.time())
        with store.transaction() as db:
            store.save_ban(db, decision, time.time(), time.time() + seconds)
    else:
        backend.unban([ip])
        store.delete_ban(ip)


def cmd_why(args: argparse.Namespace) -> int:
    config = _run_config(args)
    ip = _target(args.ip)
    if ip is None:
        print(f"sipwatch: {args.ip!r} is not an IP address (nor an IPv6 network of /32 to /127)", file=sys.stderr)
        return 2
    answer = _ask(config, {"command": "why", "ip": str(ip)})
    if answer is None:
        store = _store(config)
        stored = store.ban_of(ip)
        events = [] if isinstance(ip, IPv6Network) else store.events_of(ip, 20)
        answer = {"ban": stored.to_json() if stored is not None else None, "events": events}
    ban = answer.get("ban")
    if not isinstance(ban, dict):
        print(f"{ip} is not banned")
    else:
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ban["until"])))
        within = f" (within {ban['ip']})" if ban["ip"] != str(ip) else ""
        print(f"{ip}{within} banned until {until} (ban #{ban['count']}) by {ban['detector']}: {ban['reason']}")
        for e in ban.get("events", []):
            print(f"  {e.get('file')}:{e.get('line')}: {str(e.get('raw', ''))[:200]}")
    for row in answer.get("events", []):
        print(f"  event {row['kind']} {row['service']} {row['file']}:{row['line']}")
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    """Accounts the daemon acted on (hang-up, block, ban), what is blocked now, and lifting a block."""
    config = _run_config(args)
    if args.action in ("show", "unblock") and not args.account:
        print(f"sipwatch: accounts {args.action} needs an ACCOUNT", file=sys.stderr)
        return 2
    if args.action == "unblock":
        answer = _ask(config, {"command": "accounts-unblock", "account": args.account})
        result = str(answer["result"]) if answer is not None else _offline_unblock(config, args.account)
        print(f"{args.account}: {result}")
        return 0 if result.startswith("ok") else 1
    answer = _ask(config, {"command": "accounts-list"})
    if answer is None:
        answer = {"blocked": _offline_blocked(config), "actions": _store(config).account_actions()}
    blocked: dict[str, str] = answer["blocked"]
    actions: list[dict[str, Any]] = answer["actions"]
    if args.action == "show":
        actions = [a for a in actions if a["account"] == args.account]
        blocked = {k: v for k, v in blocked.items() if k == args.account}
    if args.json:
        sys.stdout.write(json.dumps({"blocked": blocked, "actions": actions}, indent=2) + "\n")
        return 0
    for account, why in sorted(blocked.items()):
        print(f"{account}  BLOCKED  {why}")
    for a in actions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(a["at"])))
        print(f"{when}  {a['account']}  {a['action']}  {a['result']}  ({a['rule']}: {a['reason']})")
    if not blocked and not actions:
        print("no account has been acted on")
    return 0


def _pbx(config: Config) -> PbxActions:
    from sipwatch.responders.pbx import PbxActions  # asyncio: only the commands that reach the PBX need it

    if not config.pbx.ami:
        raise SourceError("no daemon runs and pbx.ami is not set: nothing can reach the PBX")
    actions = PbxActions(config.pbx.ami)
    if not actions.wait_ready(10):
        actions.close()
        raise SourceError(actions.problem or f"{redact(config.pbx.ami)}: AMI does not answer")
    return actions


def _offline_unblock(config: Config, account: str) -> str:
    """No daemon running: lift the block through AMI directly, and record it."""
    actions = _pbx(config)
    try:
        result = "ok: unblocked" if actions.unblock(account) else "ok: was not blocked"
    finally:
        actions.close()
    _store(config).save_account_action(account, "unblock", time.time(), "admin", "sipwatch accounts unblock", result)
    return result


def _offline_blocked(config: Config) -> dict[str, str]:
    if not config.pbx.ami:
        return {}
    actions = _pbx(config)
    try:
        return actions.blocked()
    finally:
        actions.close()


def cmd_alert_test(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if not config.alerts.urls:
        print("sipwatch: no alerts.urls in the configuration: nothing to test", file=sys.stderr)
        return 2
    from sipwatch.responders.alerts import Alerter

    alerter = Alerter(config.alerts)
    if alerter.test():
        print(f"a test alert was sent to {len(config.alerts.urls)} destination(s)")
        return 0
    print("sipwatch: the test alert could not be delivered (see the messages above)", file=sys.stderr)
    return 1


def cmd_firewall(args: argparse.Namespace) -> int:
    config = _run_config(args)
    backend = _backend(config, scoped=False)
    backend.remove()
    print(f"the {config.run.backend} backend's rules are removed; nothing else was touched")
    return 0


def _daemon_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that talk to the daemon or read its store."""
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--state-dir", metavar="DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipwatch", description="Protect SIP servers from attacks.")
    parser.add_argument("--version", action="version", version=f"sipwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="read logs (plain or .gz) and report attackers and decisions")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (detector thresholds, allowlist)")
    p.add_argument("--top", type=int, default=20, help="offenders shown in the text report (default 20)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="judge the accounts with the profiles learned into this store (read only)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("learn", help="learn each account's usual behaviour from past CDR/CEL files and logs")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--state-dir", metavar="DIR", help="the store to learn into (default: run.state_dir)")
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser("run", help="follow the logs and ban attackers in the kernel (the daemon)")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--watch", action="append", metavar="PATH", help="a log file or glob (repeatable)")
    p.add_argument("--backend", choices=["nftables", "ipset", "dry-run"])
    p.add_argument("--state-dir", metavar="DIR")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("config", metavar="FILE")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("status", help="what the running daemon is doing")
    _daemon_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("bans", help="list, add or remove bans")
    p.add_argument("action", choices=["list", "add", "del"])
    p.add_argument("ip", nargs="?")
    p.add_argument("--for", dest="duration", default="1h", metavar="DURATION")
    p.add_argument("--json", action="store_true")
    _daemon_options(p)
    p.add_argument("--backend", choices=["nftables", "ipset", "dry-run"])
    p.set_defaults(func=cmd_bans)

    p = sub.add_parser("why", help="the rule and events behind a ban")
    p.add_argument("ip")
    _daemon_options(p)
    p.set_defaults(func=cmd_why)

    p = sub.add_parser("accounts", help="accounts acted on (hang-up, block, ban); lift a block")
    p.add_argument("action", choices=["list", "show", "unblock"])
    p.add_argument("account", nargs="?")
    p.add_argument("--json", action="store_true")
    _daemon_options(p)
    p.set_defaults(func=cmd_accounts)

    p = sub.add_parser("alert-test", help="send a test alert to every configured destination")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_alert_test)

    p = sub.add_parser("firewall", help="firewall maintenance")
    p.add_argument("action", choices=["remove"])
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--backend", choices=["nftables", "ipset", "dry-run"])
    p.set_defaults(func=cmd_firewall)

    p = sub.add_parser("explain", help="show, per record, the format that matched and the fields taken")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per event")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_explain)
    return parser


#: set by commands whose process may end without the interpreter's teardown (see `console`)
_quick_exit = False
#: under `console` only: what such a command built, kept alive until the process ends (freeing a scan's
#: pipeline, result and report object by object took ~25 ms of a one-second scan, for nothing)
_kept: list[object] | None = None


def console() -> NoReturn:
    """The `sipwatch` command. After a scan the heap holds millions of objects, and the interpreter's
    teardown would collect and free them one by one for nothing: such a command flushes its output and
    ends the process at once (mypy does the same)."""
    global _kept
    _kept = []
    code = main()
    if _quick_exit:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = code or 0
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"sipwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except (FirewallError, StoreError, SourceError, ControlError) as exc:
        print(f"sipwatch: {exc}", file=sys.stderr)
        return 2
    except BrokenWorker as exc:
        print(f"sipwatch: a parse worker failed, the scan is incomplete: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, and let the exit flush nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
