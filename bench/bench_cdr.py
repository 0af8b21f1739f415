"""CDR rows per second of `sipwatch scan` on a generated Master.csv, and whether it flags the compromised
accounts and no others.

    .venv/bin/python bench/bench_cdr.py                  # 1,000,000 rows, 3 runs
    .venv/bin/python bench/bench_cdr.py --rows 100000 --runs 5

No peer reads CDRs (fail2ban and CrowdSec look at failures only), so the figure is compared with the goal of
300,000 rows/s. Beside each scan, the same file is read by Python's own `csv` module and nothing else (one
process): a yardstick of the machine's speed at that moment (on this machine it changed by up to 1.8x within
minutes), and a ratio that moves less than the rows/s when it does. The Master.csv is cached in bench/out/
like the log of bench_scan.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
GOAL = 300_000


def generated(rows: int, seed: int) -> tuple[Path, dict[str, object]]:
    digest = hashlib.sha1((HERE / "gencdr.py").read_bytes()).hexdigest()[:8]
    path = OUT / f"Master-{rows}-s{seed}-{digest}.csv"
    stats = path.with_suffix(".json")
    if not path.exists() or not stats.exists():
        OUT.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "gencdr.py"), "--rows", str(rows), "--seed", str(seed),
                        "-o", str(path), "--stats", str(stats)], check=True)
    return path, json.loads(stats.read_text())


def run(sipwatch: list[str], path: Path) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run([*sipwatch, "scan", "--json", str(path)], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"sipwatch scan failed: {done.stderr.strip()[-500:]}")
    return seconds, json.loads(done.stdout)


#: the yardstick: every row read by the standard library's csv module, nothing done with it
CSV_ONLY = "import csv, sys\nwith open(sys.argv[1], newline='') as f:\n    sum(1 for _ in csv.reader(f))"


def csv_only(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CSV_ONLY, str(path)], check=True)
    return time.perf_counter() - started


def interpreter() -> str:
    """The Python the scan runs on: its version and where its binary is (a venv's python links to it)."""
    return f"{platform.python_version()} {os.path.realpath(sys.executable)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path, truth = generated(args.rows, args.seed)
    sipwatch = [str(Path(sys.executable).with_name("sipwatch"))]
    times, yardstick = [], []
    report: dict[str, object] = {}
    for _ in range(args.runs):  # interleaved: both see the same moment of the machine
        seconds, report = run(sipwatch, path)
        times.append(seconds)
        yardstick.append(csv_only(path))
    median, reading = statistics.median(times), statistics.median(yardstick)
    accounts = report.get("accounts", [])
    assert isinstance(accounts, list)
    flagged = {str(a["account"]) for a in accounts if a.get("decision") in ("block", "alert")}
    fraud = set(map(str, truth["fraud_accounts"]))  # type: ignore[call-overload]
    print(f"rows: {args.rows:,}  runs: {args.runs}  median {median:.2f} s  ->  {args.rows / median:,.0f} rows/s "
          f"(goal {GOAL:,}: {'met' if args.rows / median >= GOAL else 'NOT met'})")
    print(f"python's csv module alone, reading the same rows: median {reading:.2f} s  ->  "
          f"{args.rows / reading:,.0f} rows/s; the scan is {reading / median:.2f}x as fast")
    print(f"compromised accounts flagged: {len(fraud & flagged)} of {len(fraud)}; other accounts flagged: "
          f"{len(flagged - fraud)} of {int(truth['accounts']) - len(fraud)}")  # type: ignore[call-overload]
    print(f"python: {interpreter()} (a distribution's PGO/LTO build runs the scan ~7% faster than a plain source "
          "build: see bench/README.md)")
    OUT.mkdir(exist_ok=True)
    (OUT / f"results-cdr-{args.rows}.json").write_text(json.dumps({
        "python": interpreter(), "rows": args.rows, "seconds": times, "median": median,
        "rows_per_second": args.rows / median,
        "csv_module_seconds": yardstick, "csv_module_median": reading, "ratio_to_csv_module": reading / median,
        "fraud_found": sorted(fraud & flagged), "fraud_missed": sorted(fraud - flagged),
        "wrongly_flagged": sorted(flagged - fraud)}, indent=1))


if __name__ == "__main__":
    main()
