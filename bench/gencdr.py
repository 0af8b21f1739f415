"""Generate a large, realistic Asterisk `Master.csv` for benchmarks (deterministic for a given --seed).

    python bench/gencdr.py --rows 1000000 --seed 1 -o /tmp/Master.csv [--stats /tmp/Master.json]

Rows are written as `cdr_csv` writes them with Debian's cdr.conf (no header; the 16 standard columns,
then uniqueid and userfield), in the order calls end, about one call every 2.5 s over a month of an office
of `--accounts` phones (PJSIP endpoints 1000...). Most calls are internal (extension to extension),
national or mobile, a few international to each phone's usual countries, during office hours with some
evening and weekend calls; about a third are not answered. Hidden in them (`--fraud` accounts, 10 by
default), compromised accounts place bursts of calls to premium and high-risk destinations at night,
several at once: the ground truth is in the stats file. A phone places one call at a time (its
ordinary calls never overlap), so only the compromised accounts have concurrent calls. The dialplan
line the README recommends puts the caller's address into the userfield (`src=<ip>:<port>`).
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import heapq
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

START = calendar.timegm((2026, 3, 2, 0, 0, 0))  # a Monday; written as the PBX's local time
MEAN_GAP = 2.5  # seconds between call starts
#: countries offices call, each with a few of its geographic (fixed-line) area codes and the digits that
#: follow: random digits after the country code alone can land in a premium or shared-cost range
#: (+33 8…, +44 9…, +49 900…), and a long ordinary call there is rightly flagged
USUAL = {"0049": (("30", "40", "89"), 7), "0033": (("1", "2", "3", "4", "5"), 8), "0044": (("20",), 8),
         "0039": (("06", "02"), 7), "0034": (("91", "93"), 7), "0031": (("20", "10"), 7),
         "001": (("212", "415", "617"), 7)}
NATIONAL = ("030", "040", "089", "0221", "069", "0711")
MOBILE = ("0151", "0160", "0170", "0176")
FRAUD = ("00882", "00881", "0025", "00223", "00252", "00960", "00675", "00423", "00370", "009")  # premium/high-risk
DISPOSITIONS = (("ANSWERED", 0.66), ("NO ANSWER", 0.22), ("BUSY", 0.08), ("FAILED", 0.04))


@dataclass(frozen=True)
class Call:
    end: float
    start: float
    account: str
    dst: str
    context: str
    answered: bool
    billsec: int
    disposition: str
    uniqueid: str
    source: str


def _office_hours(rng: random.Random, day: int) -> float:
    """A start time: mostly 8:00-18:00 on weekdays, some evenings and weekends."""
    weekday = (day % 7) < 5
    hour = rng.gauss(12.5, 2.6) if weekday or rng.random() < 0.2 else rng.uniform(0, 24)
    return START + day * 86400 + max(0.0, min(23.99, hour)) * 3600


def _destination(rng: random.Random, usual: str) -> tuple[str, str]:
    r = rng.random()
    if r < 0.45:
        return str(1000 + rng.randrange(500)), "from-internal"
    if r < 0.75:
        return rng.choice(NATIONAL) + str(rng.randrange(10**6, 10**7)), "from-internal"
    if r < 0.93:
        return rng.choice(MOBILE) + str(rng.randrange(10**6, 10**8)), "from-internal"
    areas, digits = USUAL[usual]
    return usual + rng.choice(areas) + str(rng.randrange(10 ** (digits - 1), 10**digits)), "from-internal"


def calls(rows: int, accounts: int, fraud: int, seed: int) -> Iterator[Call]:
    rng = random.Random(seed)
    usual = {str(1000 + a): rng.choice(sorted(USUAL)) for a in range(accounts)}
    phones = {a: f"192.0.2.{10 + int(a) % 200}:5060" for a in usual}
    days = max(1, int(rows * MEAN_GAP / 86400 / 0.8))
    victims = rng.sample(sorted(usual), min(fraud, accounts))
    pending: list[tuple[float, int, Call]] = []
    busy: dict[str, list[tuple[float, float]]] = {}  # a phone's own calls (start, end), sorted
    every = 200  # one row in 200 is a fraudulent call
    for i in range(rows):
        if victims and i % every == 0:
            account = victims[(i // every) % len(victims)]
            night = START + rng.randrange(days) * 86400 + rng.uniform(1, 5) * 3600
            start, dst = night + rng.uniform(0, 600), rng.choice(FRAUD) + str(rng.randrange(10**6, 10**8))
            source, answered = f"203.0.113.{rng.randrange(1, 250)}:{rng.randrange(1024, 65535)}", True
            billsec = rng.randrange(300, 3600)
            context, disposition = "from-internal", "ANSWERED"
        else:
            account = str(1000 + rng.randrange(accounts))
            start = _office_hours(rng, rng.randrange(days))
            dst, context = _destination(rng, usual[account])
            disposition = rng.choices([d for d, _ in DISPOSITIONS], [w for _, w in DISPOSITIONS])[0]
            answered = disposition == "ANSWERED"
            billsec = int(rng.expovariate(1 / 180)) if answered else 0
            source = phones[account]
        ring = rng.randrange(2, 25)
        end = start + ring + billsec
        if source == phones[account]:  # a desk phone places one call at a time
            start, end = _free(busy.setdefault(account, []), start, end)
        call = Call(end, start, account, dst, context, answered, billsec, disposition, f"{int(start)}.{i}", source)
        heapq.heappush(pending, (end, i, call))
    while pending:
        yield heapq.heappop(pending)[2]


def _free(busy: list[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    """Move a phone's call to the first moment from `start` on when the phone is not on another call."""
    length = end - start
    while True:
        i = bisect.bisect_right(busy, (start, end))
        clash = next((b for b in busy[max(0, i - 1) : i + 1] if b[0] < start + length and start < b[1]), None)
        if clash is None:
            busy.insert(i, (start, start + length))
            return start, start + length
        start = clash[1] + 30


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def row(call: Call) -> str:
    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    channel = f"PJSIP/{call.account}-{int(call.uniqueid.split('.')[1]):08x}"
    peer = f"PJSIP/{'carrier' if not call.dst.startswith('1') else call.dst}-{int(call.start) % 10**8:08x}"
    answer = _stamp(call.end - call.billsec) if call.answered else ""
    duration = int(call.end - call.start)
    fields = [q(""), q(call.account), q(call.dst), q(call.context), q(f'"Phone {call.account}" <{call.account}>'),
              q(channel), q(peer), q("Dial"), q(f"PJSIP/{call.dst}@carrier,60"), q(_stamp(call.start)), q(answer),
              q(_stamp(call.end)), str(duration), str(call.billsec), q(call.disposition), q("DOCUMENTATION"),
              q(call.uniqueid), q(f"src={call.source}")]
    return ",".join(fields) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--accounts", type=int, default=500)
    ap.add_argument("--fraud", type=int, default=10, help="compromised accounts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--stats")
    args = ap.parse_args()
    fraudulent: dict[str, int] = {}
    with open(args.output, "w", encoding="utf-8") as out:
        batch: list[str] = []
        for call in calls(args.rows, args.accounts, args.fraud, args.seed):
            if call.source.startswith("203.0.113."):
                fraudulent[call.account] = fraudulent.get(call.account, 0) + 1
            batch.append(row(call))
            if len(batch) >= 20_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as fh:
            json.dump({"rows": args.rows, "accounts": args.accounts, "fraud_accounts": sorted(fraudulent),
                       "fraud_calls": fraudulent}, fh, indent=1)


if __name__ == "__main__":
    main()
