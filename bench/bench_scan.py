"""Benchmark `sipwatch scan` against `fail2ban-regex` on a generated Asterisk log.

    .venv/bin/python bench/bench_scan.py                  # 1,000,000 lines, 3 runs of each tool
    .venv/bin/python bench/bench_scan.py --f2b-runs 1     # fail2ban-regex is slow: one run is enough
    .venv/bin/python bench/bench_scan.py --lines 100000 --runs 5
    .venv/bin/python bench/bench_scan.py --flat           # also: peak RSS of sipwatch on 1x and 3x the lines

The log is made by bench/genlog.py and cached in bench/out/ (keyed by size, seed and the generator's source,
so editing the generator makes a new file). Each tool runs as a child process; wall time is measured around
it, the largest process's peak RSS comes from GNU time (or os.wait4()), and the summed RSS/PSS of all its
processes (sipwatch's parse workers included) is sampled from /proc in an untimed first run of each tool (the
sampler's own CPU, ~6% of a one-second run, would be charged to a tool that keeps both cores busy and not to a
one-core tool). The medians are printed, with what each tool found, compared with the generator's ground truth
(the attacker addresses).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
DEFAULT_FILTER = "/etc/fail2ban/filter.d/asterisk.conf"
F2B_SUMMARY = re.compile(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", re.MULTILINE)


# --------------------------------------------------------------------------------------------------
# Running a child and measuring it


@dataclass
class Run:
    seconds: float
    max_rss_kib: int  # the largest single process (GNU time / os.wait4)
    tree_rss_kib: int  # peak of the summed RSS of all processes of the command (sampled)
    tree_pss_kib: int  # same with PSS: pages shared between processes counted once
    returncode: int
    stdout: str
    stderr: str


def gnu_time() -> str | None:
    """GNU time, which reports the peak RSS of exactly the command it runs."""
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if path is None:
        return None
    probe = subprocess.run([path, "-f", "%M", "true"], capture_output=True, text=True, check=False)
    return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else None


GNU_TIME = gnu_time()


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; zeros when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Samples the summed memory of a process and its descendants (worker processes included)."""

    def __init__(self, root: int, include_root: bool, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.include_root, self.interval = root, include_root, interval
        self.peak_rss = self.peak_pss = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            kids = _children()
            pids, todo = [], list(kids.get(self.root, []))
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo.extend(kids.get(pid, []))
            if self.include_root:
                pids.append(self.root)
            sizes = [_memory_kib(pid) for pid in pids]
            self.peak_rss = max(self.peak_rss, sum(r for r, _ in sizes))
            self.peak_pss = max(self.peak_pss, sum(p for _, p in sizes))


def run_measured(cmd: list[str], sample: bool = True) -> Run:
    """Run `cmd` with its output in temporary files; wall time and peak memory (with `sample`, the summed
    memory of its processes too: the sampler reads all of /proc every 50 ms, ~60 ms of CPU in a one-second
    run, which on two cores a tool that keeps both busy pays for and a one-core tool does not; so timed
    runs go without it).

    With GNU time the largest-process RSS is the command's own. Without it, os.wait4() is used, whose
    figure cannot be lower than this script's own RSS (Linux carries the forking process's high-water
    mark over exec). The tree figures add up all processes of the command (sipwatch's parse workers).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        started = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=CHILD_ENV)
        sampler = TreeSampler(proc.pid, include_root=GNU_TIME is None)
        if sample:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        if sample:
            sampler.done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        max_rss = int(usage.ru_maxrss)
        if GNU_TIME:
            lines = rss.read().split()
            max_rss = int(lines[-1]) if lines and lines[-1].isdigit() else max_rss
        out.seek(0)
        err.seek(0)
        return Run(seconds, max_rss, max(sampler.peak_rss, max_rss), max(sampler.peak_pss, 1), proc.returncode,
                   out.read(), err.read())


@dataclass
class Timing:
    runs: list[Run] = field(default_factory=list)  # timed (no memory sampler)
    memory: list[Run] = field(default_factory=list)  # untimed, sampled

    @property
    def median_seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def min_seconds(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(r.max_rss_kib for r in self.runs) / 1024

    @property
    def tree_rss_mib(self) -> float:
        return max(r.tree_rss_kib for r in self.runs + self.memory) / 1024

    @property
    def tree_pss_mib(self) -> float:
        return max(r.tree_pss_kib for r in self.runs + self.memory) / 1024

    def lines_per_second(self, lines: int) -> float:
        return lines / self.median_seconds

    def summary(self, lines: int) -> dict[str, Any]:
        return {
            "runs": [round(r.seconds, 3) for r in self.runs],
            "median_seconds": round(self.median_seconds, 3),
            "lines_per_second": round(self.lines_per_second(lines)),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "tree_rss_mib": round(self.tree_rss_mib, 1),
            "tree_pss_mib": round(self.tree_pss_mib, 1),
        }


#: The tools run as installed: with their bytecode cached (`pip install` compiles it; a development shell
#: may set PYTHONDONTWRITEBYTECODE, which would make every run compile every module again)
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def repeat(cmd: list[str], runs: int, label: str) -> Timing:
    """`runs` timed runs of `cmd`, after one untimed run that samples the memory of all its processes (and
    leaves the bytecode cached)."""
    warm = run_measured(cmd)
    if warm.returncode != 0:
        raise SystemExit(f"{label} failed (exit {warm.returncode}):\n{warm.stderr[-2000:]}")
    print(f"  {label} (untimed, memory): peak RSS {warm.max_rss_kib / 1024:.1f} MiB (all processes: RSS "
          f"{warm.tree_rss_kib / 1024:.1f}, PSS {warm.tree_pss_kib / 1024:.1f} MiB)", file=sys.stderr)
    timing = Timing(memory=[warm])
    for i in range(runs):
        run = run_measured(cmd, sample=False)
        if run.returncode != 0:
            raise SystemExit(f"{label} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
        print(f"  {label} run {i + 1}/{runs}: {run.seconds:.2f} s, peak RSS {run.max_rss_kib / 1024:.1f} MiB",
              file=sys.stderr)
        timing.runs.append(run)
    return timing


# --------------------------------------------------------------------------------------------------
# The input file


def generator_key(attack_share: float) -> str:
    digest = hashlib.sha256((BENCH / "genlog.py").read_bytes() + str(attack_share).encode())
    return digest.hexdigest()[:8]


def ensure_log(lines: int, seed: int, attack_share: float, regenerate: bool) -> tuple[Path, dict[str, Any]]:
    """The cached log for (lines, seed, generator source), generated when missing."""
    OUT.mkdir(exist_ok=True)
    stem = f"asterisk-{lines}-s{seed}-{generator_key(attack_share)}"
    path, stats_path = OUT / f"{stem}.log", OUT / f"{stem}.json"
    if regenerate or not path.exists() or not stats_path.exists():
        print(f"generating {lines:,} lines -> {path.relative_to(ROOT)}", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        cmd = [sys.executable, str(BENCH / "genlog.py"), "--lines", str(lines), "--seed", str(seed),
               "--attack-share", str(attack_share), "-o", str(tmp), "--stats", str(stats_path)]
        subprocess.run(cmd, check=True)
        tmp.replace(path)
        info = json.loads(stats_path.read_text(encoding="utf-8"))
        info["file"] = str(path.relative_to(ROOT))
        stats_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path, json.loads(stats_path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# The tools


def sipwatch_command(override: str | None) -> list[str]:
    if override:
        return override.split()
    for candidate in (Path(sys.executable).parent / "sipwatch", ROOT / ".venv" / "bin" / "sipwatch"):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which("sipwatch")
    return [found] if found else [sys.executable, "-m", "sipwatch"]


def tool_version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr) else "?"


def normalise(ip: str) -> str:
    """An address as `ipaddress` writes it; the text unchanged when it is not a plain address."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


@dataclass
class Found:
    """What a tool reported: addresses, compared with the generator's attackers."""

    addresses: set[str]
    truth: set[str]

    @property
    def true(self) -> int:
        return len(self.addresses & self.truth)

    @property
    def bogus(self) -> list[str]:
        return sorted(self.addresses - self.truth)

    @property
    def missed(self) -> int:
        return len(self.truth - self.addresses)

    def summary(self) -> dict[str, Any]:
        return {"addresses": len(self.addresses), "attackers_found": self.true, "attackers_missed": self.missed,
                "not_attackers": len(self.bogus), "not_attackers_sample": self.bogus[:10]}


def sipwatch_findings(report: dict[str, Any], truth: set[str]) -> dict[str, Any]:
    offenders = report.get("offenders", [])
    found = Found({normalise(o["ip"]) for o in offenders}, truth)
    decisions = [o.get("decision") for o in offenders]
    counts = {key: report.get(key, 0) for key in ("lines", "events", "candidates", "unmatched", "junk")}
    return {
        **counts, "internal_seconds": report.get("seconds", 0.0), "kinds": report.get("kinds", {}),
        "ban": decisions.count("ban"), "alert": decisions.count("alert"),
        "addressless_alerts": len(report.get("alerts", [])), "offenders": found.summary(),
        "unmatched_samples": [s["text"] for s in report.get("unmatched_samples", [])],
    }


def f2b_findings(summary_out: str, ip_out: str | None, truth: set[str]) -> dict[str, Any]:
    m = F2B_SUMMARY.search(summary_out)
    result: dict[str, Any] = {}
    if m:
        result.update(zip(("lines", "ignored", "matched", "missed"), map(int, m.groups()), strict=True))
    if ip_out is not None:
        found = Found({normalise(line.strip()) for line in ip_out.splitlines() if line.strip()}, truth)
        result["addresses"] = found.summary()
    return result


# --------------------------------------------------------------------------------------------------
# Report


def human_mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def source_state() -> str:
    """The sipwatch checkout measured: commit, and whether the work tree differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_header(path: Path, info: dict[str, Any], sipwatch: list[str], f2b: str | None) -> None:
    print(f"\ninput: {path.relative_to(ROOT)} ({info['lines']:,} lines, {human_mib(path.stat().st_size)})")
    print(f"  generator: {info['attack_lines']:,} attack lines ({info['attack_share']:.1%}) from "
          f"{info['attacker_ips']:,} addresses ({info['attacker_ips_v6']:,} IPv6), seed {info['seed']}")
    rss = "GNU time" if GNU_TIME else "os.wait4 (floor: this script's RSS)"
    print(f"memory: max RSS = largest single process ({rss}); sum RSS/PSS = all processes of the command, "
          f"sampled every 50 ms from /proc")
    print(f"machine: {os.cpu_count()} x {cpu_model()}, {platform.system()} {platform.release()}, Python "
          f"{platform.python_version()}")
    print(f"sipwatch source: {source_state()}")
    print(f"tools: {tool_version([*sipwatch, '--version'])} ({' '.join(sipwatch)}); "
          f"fail2ban-regex {tool_version(['fail2ban-regex', '-V']) if f2b else 'not run'}")


def print_speed(lines: int, sw: Timing, f2b: Timing | None) -> None:
    print(f"\n{'':22}{'runs':>5}{'median s':>10}{'min s':>8}{'lines/s':>10}"
          f"{'max RSS':>10}{'sum RSS':>10}{'sum PSS':>10}  (MiB; sum = all processes)")
    rows = [("sipwatch scan --json", sw)] + ([("fail2ban-regex", f2b)] if f2b else [])
    for name, t in rows:
        print(f"{name:22}{len(t.runs):>5}{t.median_seconds:>10.2f}{t.min_seconds:>8.2f}"
              f"{t.lines_per_second(lines):>10,.0f}{t.peak_rss_mib:>10.1f}{t.tree_rss_mib:>10.1f}"
              f"{t.tree_pss_mib:>10.1f}")
    if f2b:
        ratio = sw.lines_per_second(lines) / f2b.lines_per_second(lines)
        print(f"speed ratio sipwatch / fail2ban (lines/s, medians): {ratio:.2f}x")


def print_findings(sw: dict[str, Any], f2b: dict[str, Any] | None) -> None:
    off = sw["offenders"]
    print(f"\nsipwatch: {sw['events']:,} events from {sw['candidates']:,} candidate lines "
          f"(internal time {sw['internal_seconds']:.2f} s); {off['addresses']:,} hostile addresses "
          f"({off['attackers_found']:,} generated attackers, {off['not_attackers']} others, "
          f"{off['attackers_missed']} attackers missed); {sw['ban']:,} to ban, {sw['alert']} alert, "
          f"{sw['addressless_alerts']} alerts without address")
    print(f"  kinds: {', '.join(f'{k} {v:,}' for k, v in sorted(sw['kinds'].items(), key=lambda kv: -kv[1]))}")
    print(f"  unmatched (looked security-related, no format matched): {sw['unmatched']:,}; junk {sw['junk']:,}")
    for text in distinct_shapes(sw["unmatched_samples"]):
        print(f"    e.g. {text[:170]}")
    if f2b is None:
        return
    print(f"fail2ban-regex: {f2b.get('matched', 0):,} matched, {f2b.get('missed', 0):,} missed, "
          f"{f2b.get('ignored', 0):,} ignored lines")
    if "addresses" in f2b:
        a = f2b["addresses"]
        print(f"  -o ip: {a['addresses']:,} distinct addresses ({a['attackers_found']:,} generated attackers, "
              f"{a['not_attackers']} others, {a['attackers_missed']} attackers missed)")
        if a["not_attackers_sample"]:
            print(f"  others, e.g.: {', '.join(a['not_attackers_sample'][:5])}")


def distinct_shapes(samples: list[str], limit: int = 6) -> list[str]:
    """One sample per message shape (prefix, digits and quoted values folded)."""
    seen: dict[str, str] = {}
    for text in samples:
        body = text.split(": ", 1)[-1] if "]" in text[:40] else text
        shape = re.sub(r"'[^']*'|\"[^\"]*\"|[\w.:+-]*\d[\w.:+-]*", "#", body)
        seen.setdefault(shape, text)
    return list(seen.values())[:limit]


# --------------------------------------------------------------------------------------------------
# Main


def _config(args: argparse.Namespace) -> list[str]:
    return ["--config", args.config] if args.config else []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated log (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attack-share", type=float, default=0.15)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of sipwatch (default 3)")
    ap.add_argument("--f2b-runs", type=int, help="timed runs of fail2ban-regex (default: --runs; 0 skips it)")
    ap.add_argument("--filter", default=DEFAULT_FILTER, help=f"fail2ban filter (default {DEFAULT_FILTER})")
    ap.add_argument("--no-f2b-ips", action="store_true", help="skip the extra `fail2ban-regex -o ip` run")
    ap.add_argument("--flat", action="store_true", help="also scan 3x the lines and compare sipwatch's peak RSS")
    ap.add_argument("--sipwatch", help="command to run sipwatch (default: the venv's console script)")
    ap.add_argument("--config", help="a sipwatch configuration for the scan (e.g. call activity off)")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the cached log(s)")
    args = ap.parse_args(argv)
    if args.f2b_runs is None:
        args.f2b_runs = args.runs
    if args.lines < 1000 or args.runs < 1 or args.f2b_runs < 0:
        ap.error("--lines must be >= 1000, --runs >= 1, --f2b-runs >= 0")
    return args


def fail2ban(args: argparse.Namespace) -> str | None:
    """The fail2ban-regex path, or None (with the reason printed) when it is not to be run."""
    if args.f2b_runs == 0:
        print("fail2ban-regex: skipped (--f2b-runs 0)", file=sys.stderr)
        return None
    path = shutil.which("fail2ban-regex")
    if path is None:
        print("fail2ban-regex: not installed (Debian: apt-get install fail2ban); comparing nothing", file=sys.stderr)
        return None
    if not Path(args.filter).exists():
        print(f"fail2ban-regex: filter {args.filter} not found; skipped", file=sys.stderr)
        return None
    return path


def bench_f2b(f2b: str, path: Path, args: argparse.Namespace, truth: set[str]) -> tuple[Timing, dict[str, Any]]:
    cmd = [f2b, str(path), args.filter]
    timing = repeat(cmd, args.f2b_runs, "fail2ban-regex")
    ip_out = None
    if not args.no_f2b_ips:
        run = run_measured([f2b, "-o", "ip", str(path), args.filter])
        print(f"  fail2ban-regex -o ip (untimed, for the address list): {run.seconds:.2f} s", file=sys.stderr)
        ip_out = run.stdout
    return timing, f2b_findings(timing.runs[-1].stdout, ip_out, truth)


def flatness(args: argparse.Namespace, sipwatch: list[str], base: Timing) -> dict[str, Any]:
    big = args.lines * 3
    path, _ = ensure_log(big, args.seed, args.attack_share, args.regenerate)
    timing = repeat([*sipwatch, "scan", "--json", *_config(args), str(path)], 1, f"sipwatch ({big:,} lines)")
    print(f"\nmemory flatness (MiB): {args.lines:,} lines: max RSS {base.peak_rss_mib:.1f}, "
          f"sum PSS {base.tree_pss_mib:.1f}; {big:,} lines: max RSS {timing.peak_rss_mib:.1f}, "
          f"sum PSS {timing.tree_pss_mib:.1f} (x{timing.tree_pss_mib / base.tree_pss_mib:.2f}); "
          f"{timing.lines_per_second(big):,.0f} lines/s on the larger file")
    return {"lines": big, "peak_rss_mib": [round(base.peak_rss_mib, 1), round(timing.peak_rss_mib, 1)],
            "tree_pss_mib": [round(base.tree_pss_mib, 1), round(timing.tree_pss_mib, 1)],
            "lines_per_second": round(timing.lines_per_second(big))}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sipwatch = sipwatch_command(args.sipwatch)
    path, info = ensure_log(args.lines, args.seed, args.attack_share, args.regenerate)
    truth = {normalise(ip) for ip in info["attackers"]}
    f2b = fail2ban(args)
    lines = info["lines"]
    sw = repeat([*sipwatch, "scan", "--json", *_config(args), str(path)], args.runs, "sipwatch")
    sw_found = sipwatch_findings(json.loads(sw.runs[-1].stdout), truth)
    f2b_timing, f2b_found = bench_f2b(f2b, path, args, truth) if f2b else (None, None)
    print_header(path, info, sipwatch, f2b)
    print_speed(lines, sw, f2b_timing)
    print_findings(sw_found, f2b_found)
    results: dict[str, Any] = {
        "input": {k: v for k, v in info.items() if k != "attackers"},
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "source": source_state(),
        "sipwatch": {**sw.summary(lines), **sw_found},
        "fail2ban": {**f2b_timing.summary(lines), **(f2b_found or {})} if f2b_timing else None,
    }
    if f2b_timing:
        results["ratio"] = round(sw.lines_per_second(lines) / f2b_timing.lines_per_second(lines), 2)
    if args.flat:
        results["flat"] = flatness(args, sipwatch, sw)
    out = OUT / f"results-{args.lines}.json"
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
