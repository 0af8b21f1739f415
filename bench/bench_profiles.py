"""Memory and store time of learned behaviour: 10,000 accounts with a month of history each.

Builds the profiles with the same learning calls the behaviour detector makes (a month of office days per
account: calls to a few usual countries and number types, one or two networks and user agents, the
working hours), then saves them into a fresh store in one transaction and loads them back in a new
process, as the daemon does at start. Prints the resident memory (VmRSS) of each step, the time to
save and to load, and the size of the store.

    .venv/bin/python bench/bench_profiles.py                 # 10,000 accounts, 30 days
    .venv/bin/python bench/bench_profiles.py --accounts 100000 --days 60
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

from sipwatch.behaviour import ProfileBook, network_of
from sipwatch.netaddr import ip_of
from sipwatch.store import Store

COUNTRIES = ["DE", "GB", "FR", "AT", "CH", "IT", "ES", "NL", "US", "PL", "TR", "SE"]
TYPES = ["fixed_line", "mobile", "toll_free", "fixed_line_or_mobile"]
AGENTS = ["Yealink SIP-T46S 66.86.0.15", "Grandstream GXP2170 1.0.11.23", "Zoiper rv2.10.19.4", "Linphone/5.2.0"]
DAY = 86400.0


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build(accounts: int, days: int, seed: int) -> ProfileBook:
    rng = random.Random(seed)
    book = ProfileBook(max_accounts=max(accounts, 1))
    start = datetime(2024, 4, 1, tzinfo=UTC).timestamp()
    alpha = 2.0 / 15
    for n in range(accounts):
        account = f"{1000 + n}"
        usual = rng.sample(COUNTRIES, rng.randint(1, 4))
        nets = [network_of(ip_of(f"10.{n % 250}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"))]  # type: ignore[arg-type]
        if rng.random() < 0.3:
            nets.append(network_of(ip_of(f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}")))  # type: ignore[arg-type]
        agents = rng.sample(AGENTS, rng.randint(1, 2))
        for d in range(days):
            when = start + d * DAY + 8 * 3600
            profile = book.touch(account, when)
            profile.roll(datetime.fromtimestamp(when, UTC).toordinal(), alpha)
            profile.see_source(rng.choice(nets), rng.choice(agents))
            for _ in range(rng.randint(0, 8)):
                hour = rng.randint(8, 18)
                country, kind = rng.choice(usual), rng.choice(TYPES[:2])
                profile.see_call(hour, (country, kind), profile.usual(country, kind))
                profile.see_minutes(rng.uniform(0.2, 12.0), True)
            for _ in range(rng.randint(0, 3)):
                profile.see_call(rng.randint(8, 18), None, True)  # internal calls
    return book


def load_only(path: str) -> None:
    """In a fresh process, as the daemon at start: load every profile, report memory and time."""
    base = rss_mib()
    store = Store(path)
    started = time.perf_counter()
    book = ProfileBook(max_accounts=10_000_000)
    book.load(store.profiles())
    seconds = time.perf_counter() - started
    gc.collect()
    print(json.dumps({"loaded": len(book), "bad": len(book.bad), "load_s": round(seconds, 3),
                      "rss_before_mib": round(base, 1), "rss_after_mib": round(rss_mib(), 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load-only", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_only:
        load_only(args.load_only)
        return 0

    gc.collect()
    base = rss_mib()
    started = time.perf_counter()
    book = build(args.accounts, args.days, args.seed)
    built = time.perf_counter() - started
    gc.collect()
    after = rss_mib()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sipwatch.db")
        store = Store(path)
        started = time.perf_counter()
        rows = book.take_dirty()
        with store.transaction() as db:
            store.save_profiles(db, rows)
        saved = time.perf_counter() - started
        store.close()
        size = os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)
        mean_json = sum(len(r[1]) for r in rows) / max(len(rows), 1)
        loaded = subprocess.run([sys.executable, __file__, "--load-only", path], capture_output=True, text=True,
                                check=True)
    result = {
        "accounts": args.accounts, "days": args.days,
        "build_s": round(built, 2), "rss_base_mib": round(base, 1), "rss_built_mib": round(after, 1),
        "profiles_mib": round(after - base, 1), "bytes_per_account": round((after - base) * 2**20 / args.accounts),
        "save_s": round(saved, 3), "store_mib": round(size / 2**20, 1), "json_bytes_per_account": round(mean_json),
        "load": json.loads(loaded.stdout),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
