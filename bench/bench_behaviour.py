"""What the learned behaviour catches in a month of an office's calls: `gencdr.py`'s Master.csv.

Generates (or reuses, in bench/out/) the CDR of `--rows` calls of 500 phones with `--fraud` compromised
accounts (night bursts to premium and high-risk destinations from foreign addresses: the ground truth
is in the generator's stats file), scans it with a PBX in Germany, and prints, for the fraudulent
accounts and for all the others, the behaviour rules that fired at each level, the accounts with a
critical decision, a few sample reasons, and the time the behaviour detector took.

    .venv/bin/python bench/bench_behaviour.py                  # 1,000,000 rows (~2 min)
    .venv/bin/python bench/bench_behaviour.py --rows 300000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from sipwatch.config import from_dict
from sipwatch.detectors import BehaviourDetector, Decision
from sipwatch.event import Event
from sipwatch.pipeline import Pipeline
from sipwatch.scan import scan

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fraud", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    master = out / f"Master-{args.rows}-f{args.fraud}-s{args.seed}.csv"
    stats = master.with_suffix(".json")
    if not master.exists() or not stats.exists():
        subprocess.run([sys.executable, str(HERE / "gencdr.py"), "--rows", str(args.rows), "--fraud", str(args.fraud),
                        "--seed", str(args.seed), "-o", str(master), "--stats", str(stats)], check=True)
    fraud = set(json.loads(stats.read_text())["fraud_accounts"])

    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE"}})
    pipeline = Pipeline(config)
    detector = next(d for d in pipeline.detectors if isinstance(d, BehaviourDetector))
    fired: dict[str, Counter[tuple[str | None, str | None]]] = defaultdict(Counter)
    samples: dict[tuple[str | None, str | None], list[str]] = defaultdict(list)
    spent = 0.0
    observe = detector.observe

    def timed(event: Event) -> list[Decision]:
        nonlocal spent
        started = time.perf_counter()
        decisions = observe(event)
        spent += time.perf_counter() - started
        for d in decisions:
            key = (d.rule, d.level)
            fired[d.account or "?"][key] += 1
            if len(samples[key]) < 3:
                samples[key].append(d.reason)
        return decisions

    detector.observe = timed  # type: ignore[method-assign]
    pipeline.by_kind = {kind: tuple(d for d in pipeline.detectors if kind in d.kinds) for kind in pipeline.by_kind}
    started = time.perf_counter()
    result = scan([str(master)], config, processes=False, pipeline=pipeline)
    seconds = time.perf_counter() - started
    critical = {a for a, c in fired.items() if any(level == "critical" for _, level in c)}
    report = {
        "rows": args.rows, "events": result.stats.events, "accounts": len(result.accounts),
        "scan_s": round(seconds, 1), "behaviour_s": round(spent, 2),
        "behaviour_us_per_event": round(spent / max(result.stats.events, 1) * 1e6, 1),
        "fraud_accounts": len(fraud), "fraud_with_critical": len(critical & fraud),
        "others_with_critical": sorted(critical - fraud),
        "fraud_rules": _rules(fired, fraud), "other_rules": _rules(fired, set(fired) - fraud),
        "samples": {f"{rule} {level}": reasons for (rule, level), reasons in samples.items()},
        "profiles": len(pipeline.profiles or ()), "rss_mib": _rss(),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _rules(fired: dict[str, Counter[tuple[str | None, str | None]]], accounts: set[str]) -> dict[str, int]:
    total: Counter[tuple[str | None, str | None]] = Counter()
    for account in accounts:
        total.update(fired.get(account, Counter()))
    return {f"{rule} {level}": n for (rule, level), n in total.most_common()}


def _rss() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")), 0.0)


if __name__ == "__main__":
    sys.exit(main())
