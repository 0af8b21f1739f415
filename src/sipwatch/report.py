"""The scan report: a readable summary for people, one JSON object for machines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any, TextIO

from sipwatch.calls import AccountTally
from sipwatch.detectors import Action, Decision
from sipwatch.event import Kind
from sipwatch.scan import ScanResult
from sipwatch.tally import Offender

_EMPTY = "''"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _top(counter: dict[str, int], n: int = 5) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    more = len(counter) - len(items)
    text = ", ".join(f"{k or _EMPTY}×{v}" if v > 1 else (k or _EMPTY) for k, v in items)
    return text + (f" (+{more} more)" if more > 0 else "")


def ranked(result: ScanResult) -> list[Offender]:
    order = {"ban": 0, "alert": 1, "none": 2}
    return sorted(result.offenders.values(), key=lambda o: (order[o.decision], -o.events, str(o.ip)))


def worst_decision(decisions: list[Decision]) -> Decision | None:
    """The most severe of an account's rule decisions (the latest of equals)."""
    return max(decisions, key=lambda d: (d.level == "critical", d.time)) if decisions else None


def account_decision(decisions: list[Decision], blocks: bool = True) -> tuple[str, str]:
    """(decision, reason) of an account: the most severe of its rule decisions. A critical one reads
    "block": what the daemon does to the account (unless `pbx.actions` leaves blocking out)."""
    worst = worst_decision(decisions)
    if worst is None:
        return "none", ""
    action = "block" if blocks and worst.level == "critical" else "alert"
    return action, f"{worst.detector}: {worst.reason}"


def ranked_accounts(result: ScanResult) -> list[AccountTally]:
    order = {"block": 0, "alert": 1, "none": 2}
    return sorted(result.accounts.values(), key=lambda a: (
        order[account_decision(result.account_decisions.get(a.account, []), result.blocks)[0]], -a.calls, a.account))


def _countries(tally: AccountTally) -> list[str]:
    """ISO 3166 codes dialled, most called first (non-geographic `001` ranges are not countries)."""
    return [c for c, _ in sorted(tally.countries.items(), key=lambda kv: (-kv[1], kv[0])) if c.isalpha()]


def account_json(result: ScanResult, tally: AccountTally) -> dict[str, Any]:
    decisions = result.account_decisions.get(tally.account, [])
    decision, reason = account_decision(decisions, result.blocks)
    return {
        "account": tally.account,
        "calls": tally.calls,
        "answered": tally.answered,
        "outside": tally.outside,
        "minutes": round(tally.seconds / 60, 1),
        "countries": _countries(tally),
        "sources": dict(tally.sources.most_common(20)),
        "first_seen": tally.first,
        "last_seen": tally.last,
        "decision": decision,
        "rule": worst.rule if (worst := worst_decision(decisions)) is not None else None,
        "reason": reason,
        "decisions": [d.to_json() for d in decisions],
    }


def _top_counts(counter: Counter[str], n: int = 20) -> dict[str, int]:
    """`dict(counter.most_common(n))`, in the same order (most first, ties as first seen: the sort is stable)
    with a sort in C instead of `most_common`'s heap in Python (an attacker's counter holds up to 200 names)."""
    return dict(sorted(counter.items(), key=_COUNT, reverse=True)[:n])


_COUNT = itemgetter(1)
#: the plain text of the enum members that key a report's counts: orjson writes a dict whose keys are all exact
#: `str` twice as fast (~5 ms of a million lines' report), and refuses any other key (cli._json_line)
_TEXT: dict[str, str] = {member: member.value for enum in (Kind, Action) for member in enum}


def _plain_keys(counts: Mapping[str, int]) -> dict[str, int]:
    """`dict(counts)` keyed by plain `str` (Kind and Action members as their text), in the same order."""
    text = _TEXT.get
    return {text(key, key): n for key, n in counts.items()}


def to_json(result: ScanResult, offenders: bool = True) -> dict[str, Any]:
    """The report as JSON values; without `offenders`, their list is left empty (`offender_json` makes each)."""
    s = result.stats
    return {
        "files": result.files,
        "lines": s.lines,
        "events": s.events,
        "candidates": s.candidates,
        "unmatched": s.unmatched,
        "junk": s.junk,
        "bad_records": s.bad,
        "seconds": round(result.seconds, 3),
        "kinds": _plain_keys(result.kinds),
        "errors": result.errors,
        "offenders": [offender_json(o) for o in ranked(result)] if offenders else [],
        "accounts": [account_json(result, a) for a in ranked_accounts(result)],
        "decision_counts": _plain_keys(result.actions),
        "alerts": [d.to_json() for d in result.decisions if d.ip is None],
        "network_bans": [d.to_json() for d in result.network_bans],
        "unmatched_samples": [{"file": f, "line": n, "text": t} for f, n, t in s.unmatched_samples],
    }


def offender_json(o: Offender) -> dict[str, Any]:
    """One source address of the report's `offenders`."""
    return {
        "ip": str(o.ip),
        "events": o.events,
        "kinds": _plain_keys(o.kinds),
        "services": sorted(o.services),
        "accounts": _top_counts(o.accounts),
        "targets": _top_counts(o.targets),
        "first_seen": o.first,
        "last_seen": o.last,
        "evidence": "strong" if o.strong else "weak",
        "decision": o.decision,
        "reason": o.reason,
        "decisions": [d.to_json() for d in o.decisions],
        "more_decisions": o.more_decisions,
    }


def _write_accounts(result: ScanResult, out: TextIO, limit: int) -> None:
    accounts = ranked_accounts(result)
    if not accounts:
        return
    w = out.write
    w(f"\n{len(accounts)} account(s) with call activity\n")
    for a in accounts[:limit]:
        decision, reason = account_decision(result.account_decisions.get(a.account, []), result.blocks)
        w(f"\n  {a.account}  {decision.upper()}  {a.calls} calls ({a.answered} answered, {a.outside} outside, "
          f"{a.seconds / 60:.1f} min) {_when(a.first)} .. {_when(a.last)}\n")
        if a.countries:
            w(f"    countries: {_top(dict(a.countries), 8)}\n")
        if a.sources:
            w(f"    from: {_top(dict(a.sources), 5)}\n")
        if reason:
            w(f"    why: {reason}\n")
    if len(accounts) > limit:
        w(f"\n  … and {len(accounts) - limit} more accounts (use --json for all)\n")


def write_text(result: ScanResult, out: TextIO, limit: int = 20) -> None:
    s = result.stats
    offenders = ranked(result)
    bans = sum(1 for o in offenders if o.decision == "ban")
    rate = s.lines / result.seconds if result.seconds > 0 else 0.0
    w = out.write
    w(f"sipwatch scan: {len(result.files)} file(s), {s.lines:,} lines, {s.events:,} events "
      f"in {result.seconds:.2f}s ({rate:,.0f} lines/s, prefilter: {result.engine})\n")
    if result.kinds:
        w("events by kind: " + ", ".join(f"{k} {v:,}" for k, v in result.kinds.most_common()) + "\n")
    networks = {str(d.network) for d in result.network_bans}
    whole = f", {len(networks)} IPv6 network(s) banned whole: {', '.join(sorted(networks)[:5])}" if networks else ""
    w(f"{len(offenders)} hostile address(es); {bans} to ban{whole}\n")
    for o in offenders[:limit]:
        w(f"\n  {o.ip}  {o.decision.upper()}  {o.events} events ({'strong' if o.strong else 'weak'} evidence) "
          f"{_when(o.first)} .. {_when(o.last)}\n")
        w(f"    kinds: {_top(dict(o.kinds))}; services: {', '.join(sorted(o.services))}\n")
        if o.accounts:
            w(f"    accounts tried: {_top(dict(o.accounts), 8)}\n")
        if o.targets:
            w(f"    numbers dialled: {_top(dict(o.targets), 8)}\n")
        if o.reason:
            ban = next((d for d in o.decisions if d.duration), None)
            length = f" for {ban.duration / 60:.0f} min" if ban and ban.duration else ""
            w(f"    why{length}: {o.reason}\n")
    if len(offenders) > limit:
        w(f"\n  … and {len(offenders) - limit} more (use --json for all)\n")
    _write_accounts(result, out, limit)
    alerts = [d for d in result.decisions if d.ip is None]
    if alerts:
        w("\nalerts without a bannable address:\n")
        for d in alerts[:limit]:
            w(f"  {_when(d.time)} {d.detector}: {d.reason}\n")
    if s.unmatched:
        w(f"\n{s.unmatched} line(s) looked security-related but matched no known format, e.g.:\n")
        for f, n, t in s.unmatched_samples[:5]:
            w(f"  {f}:{n}: {t[:160]}\n")
    if s.junk:
        w(f"\n{s.junk} junk line(s) skipped (binary, invalid UTF-8 or over 8 KiB)\n")
    if s.bad:
        w(f"\n{s.bad} broken CDR/CEL row(s) skipped (column count, dates or durations), e.g.:\n")
        for f, n, t in s.bad_samples[:5]:
            w(f"  {f}:{n}: {t[:160]}\n")
    for err in result.errors:
        w(f"\nerror: {err}\n")
