"""Per-account call rules (issue 7): what a phone's account does with its outside calls.

The model is OpenSIPS `fraud_detection` (landscape §C.4): per account, warning and critical levels for
calls per minute, concurrent calls, calls and talk minutes per window, sequential calls to one number
(or prefix), and long calls to high-risk destinations; time profiles (office hours, nights, weekends,
holidays) with their own thresholds; per-account destination allow and deny lists; and, with a rate
table, the estimated spend per account and day against a cap.

Only calls that leave the PBX count (internal extensions never do), whichever record told of them: the
calls come correlated from the `CallBook` (one call seen in the log, CEL and the CDR is one call), and
every number is the call's own start, answer and end time, so `scan` decides what the daemon would.
Warning and critical both give an `alert`; critical decisions also go to the pipeline's
`on_critical` hooks, where the AMI actions (hang up, block the account) will plug in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from operator import attrgetter
from typing import NamedTuple, Protocol

from sipwatch.calls import MAX_OPEN, CallState
from sipwatch.config import Accounts, Limits, Overrides, Threshold, load_rates, parse_dates, parse_days, parse_hours
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, strongest
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.event import CALL_KINDS, Event, IPAddress
from sipwatch.formats import native
from sipwatch.numbers import Classified

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _rules  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _rules = None

_START = attrgetter("start")
MAX_CALLS = 2000  # outside calls kept per account (the window's)
MAX_ACCOUNTS = 100_000
LEVELS = ("", "warning", "critical")


@dataclass(frozen=True, slots=True)
class _Profile:
    """A time profile (`[accounts.profiles]`) with its own limits."""

    name: str
    hours: tuple[int, int] | None
    days: frozenset[int]
    dates: frozenset[str]
    overrides: Overrides

    def applies(self, when: datetime) -> bool:
        if self.days and when.weekday() not in self.days:
            return False
        if self.dates and when.strftime("%m-%d") not in self.dates and when.strftime("%Y-%m-%d") not in self.dates:
            return False
        if self.hours is None:
            return True
        start, end = self.hours
        minute = when.hour * 60 + when.minute
        return start <= minute < end if start <= end else minute >= start or minute < end


class Finding(NamedTuple):
    rule: str
    level: int  # 1 warning, 2 critical
    text: str
    calls: list[CallState]


class _Lowest(NamedTuple):
    """Per rule, the smallest value that gives a level (see `_lowest`)."""

    calls_per_minute: float
    concurrent: float
    calls_per_window: float
    minutes_per_window: float
    sequential: float
    long_call_minutes: float


@dataclass(slots=True)
class _Fired:
    """A rule's last decision about an account: the level it reached, and when."""

    level: int
    time: float
    newest: float  # start of the newest call behind it


@dataclass(slots=True)
class _Account:
    """What the rules keep per account (in slots: the C gate reads `calls` there)."""

    #: the account's outside calls open or ended within the window, oldest first -> billed (the cost of the
    #: call is in the day's spend); keyed by the call itself (a CallState is equal only to itself)
    calls: dict[CallState, bool] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)  # local date -> cost of the ended calls
    fired: dict[str, _Fired] = field(default_factory=dict)  # rule -> last decision


def _level(value: float, threshold: Threshold) -> tuple[int, float]:
    warning, critical = threshold
    if critical and value >= critical:
        return 2, critical
    if warning and value >= warning:
        return 1, warning
    return 0, 0.0


def _matches(entry: str, number: Classified) -> bool:
    if entry.startswith("+"):
        return bool(number.e164 and number.e164.startswith(entry))
    if entry.isupper():
        return number.country == entry
    return entry in (number.number_type, number.risk_class)


class AccountRulesDetector:
    name = "account_rules"
    kinds = CALL_KINDS

    def __init__(self, settings: Accounts, knowledge: Knowledge, tz: tzinfo | None = None) -> None:
        self.settings = settings
        self.book = knowledge.calls
        self.tz = tz
        self.exclude = frozenset(settings.exclude)
        self.rates = load_rates(settings.rates) if settings.rates else {}
        self._rate_prefixes = sorted(self.rates, key=len, reverse=True)
        self.profiles = [
            _Profile(name, parse_hours(p.hours), parse_days(p.days), parse_dates(p.dates), p)
            for name, p in settings.profiles.items()
        ]
        self.accounts: dict[str, _Account] = {}
        self._merged: dict[tuple[str | None, str | None], Limits] = {}  # (own account, profile) -> limits
        self._lowest_of: dict[int, tuple[Limits, _Lowest]] = {}  # id(limits) -> (limits, their lowest levels)
        self._measures: Measures = measures() or PythonMeasures()
        #: `_rules.c`'s bookkeeping and gate for an outside call that no rule can flag (most calls), when the
        #: limits are the same at every hour for every account it serves (no profiles) and there is no rate table
        self._quiet: Callable[..., bool] | None = (
            getattr(self._measures, "quiet", None) if not self.profiles and not self.rates else None)
        self._plain_lowest: tuple[float, ...] = ()

    # -- events ---------------------------------------------------------------------------------
    def observe(self, event: Event) -> list[Decision]:
        found = self.book.current
        if found is None:
            return []
        call = found[0]
        account, number = call.account, call.classified
        if account is None or account in self.exclude or number is None or number.internal:
            return []
        state = self.accounts.get(account) or self._account(account)
        now = event.time
        if self._quiet is not None and account not in self.settings.account and self._quiet(
                state.calls, call, now, self.settings.window, self._plain_lowest or self._plain(),
                number.risk_class is not None, MAX_CALLS, self.settings.sequential_prefix):
            return []  # (the call is tracked, billed and pruned: nothing else to do)
        if call not in state.calls:
            state.calls[call] = False
            if len(state.calls) > MAX_CALLS:
                del state.calls[next(iter(state.calls))]  # the oldest
        self._bill(state)
        self._prune(state, min(now, call.start))
        limits, profile = self._limits(account, call.start)
        findings = self._findings(account, state, call, number, limits, now)
        decisions = []
        for finding in findings:
            if self._fresh(state, finding, now):
                decisions.append(self._decide(account, finding, profile, event, now))
        return decisions

    def forget(self, ip: IPAddress) -> None:
        """Accounts are not addresses: a banned address changes nothing here."""

    def _account(self, account: str) -> _Account:
        state = self.accounts.get(account)
        if state is None:
            if len(self.accounts) >= MAX_ACCOUNTS:
                self.accounts.pop(next(iter(self.accounts)))
            state = self.accounts[account] = _Account()
        return state

    def _plain(self) -> tuple[float, ...]:
        """The lowest levels of the limits that apply to an account with no limits of its own (no profiles)."""
        self._plain_lowest = tuple(map(float, self._lowest(self._merge((None, None), None, None))))
        return self._plain_lowest

    def _limits(self, account: str, start: float) -> tuple[Limits, str | None]:
        """The account's limits at `start`: its own overrides, else the first profile that applies."""
        chosen = None
        if self.profiles:
            when = datetime.fromtimestamp(start, self.tz)
            chosen = next((p for p in self.profiles if p.applies(when)), None)
        own = self.settings.account.get(account)
        key = (account if own is not None else None, chosen.name if chosen is not None else None)
        return self._merge(key, chosen, own), key[1]

    def _merge(self, key: tuple[str | None, str | None], chosen: _Profile | None, own: Overrides | None) -> Limits:
        limits = self._merged.get(key)
        if limits is None:
            limits = Limits(**{f.name: getattr(self.settings.limits, f.name) for f in fields(Limits)})
            for layer in [chosen.overrides] if chosen is not None else []:
                _override(limits, layer)
            if own is not None:
                _override(limits, own)
            self._merged[key] = limits
        return limits

    # -- the rules ------------------------------------------------------------------------------
    def _findings(self, account: str, state: _Account, call: CallState, number: Classified, limits: Limits,
                  now: float) -> list[Finding]:
        calls = list(state.calls)
        window = self.settings.window
        found: list[Finding] = []
        lowest = self._lowest(limits)
        count = len(calls)  # no count rule can reach a level above the calls it sees: skip those
        if count >= lowest.calls_per_minute:
            burst = self._measures.busiest(calls, 60.0)
            _check(found, "calls_per_minute", len(burst), limits.calls_per_minute, burst, "calls in 60s")
        if count >= lowest.concurrent:
            peak = self._measures.peak(calls, now)
            _check(found, "concurrent", len(peak), limits.concurrent, peak, "calls at once")
        recent, minutes = self._measures.recent(calls, window, now)
        if len(recent) >= lowest.calls_per_window:
            _check(found, "calls_per_window", len(recent), limits.calls_per_window, recent,
                   f"calls in {window / 60:.0f} min")
        if minutes >= lowest.minutes_per_window:
            talked = [c for c in recent if c.talk(now)]
            _check(found, "minutes_per_window", minutes, limits.minutes_per_window, talked,
                   f"minutes in {window / 60:.0f} min", 1)
        if count >= lowest.sequential:
            run = self._sequential(calls)
            _check(found, "sequential", len(run), limits.sequential, run,
                   f"calls in a row to {self._same(run[-1]) if run else ''}")
        if number.risk_class is not None and call.talk(now) / 60 >= lowest.long_call_minutes:
            _check(found, "long_call_minutes", call.talk(now) / 60, limits.long_call_minutes, [call],
                   f"minutes to {number.e164 or call.number} ({number.risk})", 1)
        if self.rates:
            today = self._day(now)
            spent = state.spent.get(today, 0.0) + sum(
                self.cost(c, now) or 0.0 for c, billed in state.calls.items()
                if not billed and self._day(c.start) == today)
            billed = [c for c in calls if self._day(c.start) == today and self.cost(c, now)]
            _check(found, "spend_per_day", spent, limits.spend_per_day, billed,
                   f"{self.settings.currency} today".strip(), 2)
        if self.settings.account:
            found.extend(self._destinations(account, call, number))
        return found

    def _lowest(self, limits: Limits) -> _Lowest:
        """The smallest value at which each rule of `limits` gives a level, worked out once per set of limits:
        below it, a rule is not even measured."""
        found = self._lowest_of.get(id(limits))
        if found is None or found[0] is not limits:
            lowest = _Lowest(*(_lowest(getattr(limits, name)) for name in _Lowest._fields))
            found = self._lowest_of[id(limits)] = (limits, lowest)
        return found[1]

    def _destinations(self, account: str, call: CallState, number: Classified) -> list[Finding]:
        own = self.settings.account.get(account)
        if own is None:
            return []
        shown = number.e164 or call.number
        denied = next((e for e in own.deny if _matches(e, number)), None)
        if denied is not None:
            return [Finding("destination_denied", 2, f"call to {shown} denied by {denied!r}", [call])]
        if own.allow and not any(_matches(e, number) for e in own.allow):
            return [Finding("destination_not_allowed", 1, f"call to {shown} not in the allow list", [call])]
        return []

    def _same(self, call: CallState) -> str:
        number = call.classified
        text = (number.e164 if number is not None and number.e164 else None) or call.number or "?"
        digits = self.settings.sequential_prefix
        return text if len(text.lstrip("+")) <= digits else text[: digits + text.startswith("+")] + "…"

    def _sequential(self, calls: list[CallState]) -> list[CallState]:
        """The newest run of consecutive outside calls to the same number (or prefix)."""
        ordered = sorted(calls, key=_START)
        if not ordered:
            return []
        target = self._same(ordered[-1])
        run: list[CallState] = []
        for c in reversed(ordered):
            if self._same(c) != target:
                break
            run.append(c)
        return run[::-1]

    # -- money ----------------------------------------------------------------------------------
    def rate(self, number: Classified | None) -> float | None:
        if number is None or not number.e164:
            return None
        return next((self.rates[p] for p in self._rate_prefixes if number.e164.startswith(p)), None)

    def cost(self, call: CallState, now: float) -> float | None:
        rate = self.rate(call.classified)
        return None if rate is None else rate * call.talk(now) / 60

    def _day(self, when: float) -> str:
        return datetime.fromtimestamp(when, self.tz).strftime("%Y-%m-%d")

    def _bill(self, state: _Account) -> None:
        """Add the cost of calls that ended to their day's spend."""
        rates = self.rates
        if not rates:
            self._measures.bill(state.calls)  # only marks them: no cost without a rate table
            return
        for call, billed in state.calls.items():
            if not billed and call.end is not None:
                state.calls[call] = True  # (an existing key's value: nothing moves while the loop walks)
                cost = self.cost(call, call.end) if rates else None
                if cost:
                    day = self._day(call.start)
                    state.spent[day] = state.spent.get(day, 0.0) + cost

    def _prune(self, state: _Account, now: float) -> None:
        """Drop calls that can no longer be in a window that holds the call at hand (`now` is its start,
        or the record's time if earlier)."""
        horizon = now - max(self.settings.window, 60.0)
        for key in self._measures.stale(state.calls, horizon, now):
            del state.calls[key]
        if len(state.spent) > 3:
            for day in sorted(state.spent)[:-3]:
                del state.spent[day]

    # -- decisions ------------------------------------------------------------------------------
    def _fresh(self, state: _Account, finding: Finding, now: float) -> bool:
        """Once per rule and level per `realert`, unless the level rises or a newer call is behind it."""
        newest = max((c.start for c in finding.calls), default=now)
        last = state.fired.get(finding.rule)
        if last is not None and finding.level <= last.level and (
                now - last.time < self.settings.realert or newest <= last.newest):
            return False
        state.fired[finding.rule] = _Fired(finding.level, now, newest)
        return True

    def _decide(self, account: str, finding: Finding, profile: str | None, event: Event, now: float) -> Decision:
        level = LEVELS[finding.level]
        where = f"account {account}" + (f", {profile} profile" if profile else "")
        events = [c.record for c in finding.calls if c.record is not None][-MAX_EVIDENCE:]
        costs = [self.cost(c, now) for c in finding.calls] if self.rates else []
        known = [c for c in costs if c is not None]
        cost = round(sum(known), 4) if known else None
        sources = {c.ip for c in finding.calls if c.ip is not None}
        decision = Decision(
            Action.ALERT, self.name, f"{level}: {finding.text} ({where})", now, account=account,
            evidence=strongest(events), events=events or [event], rule=finding.rule, level=level,
            calls=[_call_id(c) for c in finding.calls][-50:], cost=cost,
        )
        if finding.level == 2 and len(sources) == 1:
            decision.ip = next(iter(sources))  # the address that used the account: reported beside it
        if cost is not None:
            decision.reason += f"; estimated cost {cost:.2f} {self.settings.currency}".rstrip()
        return decision


class Measures(Protocol):
    """What the rules measure over an account's window of calls (one loop each, for every outside call)."""

    def busiest(self, calls: list[CallState], seconds: float) -> list[CallState]: ...
    def peak(self, calls: list[CallState], now: float) -> list[CallState]: ...
    def recent(self, calls: list[CallState], window: float, now: float) -> tuple[list[CallState], float]: ...
    def stale(self, tracked: dict[CallState, bool], horizon: float, now: float) -> list[CallState]: ...
    def bill(self, tracked: dict[CallState, bool]) -> None: ...


def measures() -> Measures | None:
    """The window measures in C (`_rules.c`), or None when not built or turned off (they read `_calls.CallState`)."""
    if _rules is None or not native.available() or not _rules.reads(CallState):
        return None
    found: Measures = _rules.Measures(CallState, MAX_OPEN)
    return found


def gate(detector: AccountRulesDetector) -> Callable[[Event], list[Decision]] | None:
    """`detector.observe` with its first lines and its quiet gate in C (`_rules.Gate`), for the scan's core, which calls
    it for every outside call (~1.5 us of Python each before the gate): the calls that no rule can flag end there,
    any other goes to `observe` itself. None when the gate is off (profiles, a rate table, no C measures)."""
    if detector._quiet is None or _rules is None or type(detector._measures) is not _rules.Measures:
        return None
    found: Callable[[Event], list[Decision]] = _rules.Gate(
        detector._measures, detector, detector.observe, detector.book, Event, Classified, _Account, MAX_CALLS)
    return found


def _lowest(threshold: Threshold) -> float:
    """The smallest value at which a rule gives a level (infinite when the rule is off)."""
    warning, critical = threshold
    if warning and critical:
        return min(warning, critical)
    return warning or critical or math.inf


def _check(found: list[Finding], rule: str, value: float, threshold: Threshold, behind: list[CallState], unit: str,
           digits: int = 0) -> None:
    level, limit = _level(value, threshold)
    if level:
        found.append(Finding(rule, level, f"{rule} {value:.{digits}f} {unit} ≥ {limit:g}", behind))


def _override(limits: Limits, layer: Overrides) -> None:
    for f in fields(Overrides):
        value = getattr(layer, f.name)
        if value is not None:
            setattr(limits, f.name, value)


def _call_id(call: CallState) -> str:
    ids = [k.split(":", 1)[1] for k in call.keys]
    return ids[0] if ids else "?"


def _mark_billed(tracked: dict[CallState, bool]) -> None:
    """`_bill` with no rate table: the calls that ended are billed, at no cost."""
    for call, billed in tracked.items():
        if not billed and call.end is not None:
            tracked[call] = True


def _stale(tracked: dict[CallState, bool], horizon: float, now: float) -> list[CallState]:
    """The calls that `_prune` drops: billed and over before `horizon`, or never ended and no longer open (their
    end record was lost)."""
    stale = []
    for call, billed in tracked.items():
        end = call.end
        if (billed and (end or call.start) < horizon) or (
                end is None and call.start < horizon and not call.open_at(now)):
            stale.append(call)
    return stale


def _recent(calls: list[CallState], window: float, now: float) -> tuple[list[CallState], float]:
    """The calls that started within `window` before the newest start (windows end at the newest call:
    records may come at its end), and their talk minutes by `now`."""
    horizon = max(c.start for c in calls) - window
    recent = [c for c in calls if c.start > horizon]
    return recent, sum(c.talk(now) for c in recent) / 60


def _busiest(calls: list[CallState], seconds: float) -> list[CallState]:
    """The most calls that started within any `seconds`."""
    ordered = sorted(calls, key=_START)
    best: list[CallState] = []
    first = 0
    for last, call in enumerate(ordered):
        while call.start - ordered[first].start >= seconds:
            first += 1
        if last - first + 1 > len(best):
            best = ordered[first : last + 1]
    return best


def _peak_concurrency(calls: list[CallState], now: float) -> list[CallState]:
    """The largest set of calls open at one moment (a sweep over starts and ends; a call still open
    runs on, unless it is older than any call lasts and its end record was lost)."""
    points: list[tuple[float, int, int]] = []
    for i, call in enumerate(calls):
        end = call.end if call.end is not None else (math.inf if call.open_at(now) else None)
        if end is not None and end > call.start:
            points.append((call.start, 1, i))
            points.append((end, 0, i))
    points.sort()  # at the same moment, ends before starts; then in the order of `calls`
    open_now: dict[int, CallState] = {}
    best: list[CallState] = []
    for _, starts, i in points:
        if starts:
            open_now[i] = calls[i]
            if len(open_now) > len(best):
                best = list(open_now.values())
        else:
            open_now.pop(i, None)
    return best


class PythonMeasures:
    """The measures in Python: the specification of `_rules.c` (the tests compare the two)."""

    busiest = staticmethod(_busiest)
    peak = staticmethod(_peak_concurrency)
    recent = staticmethod(_recent)
    stale = staticmethod(_stale)
    bill = staticmethod(_mark_billed)
