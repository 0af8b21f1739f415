"""One call, whichever records told of it: the log's Dial line, CEL events, the CDR row.

`CallBook.observe()` correlates call events by the ids they carry: Asterisk's linkedid and uniqueid (the
CDR `uniqueid` is the caller channel's, which is the call's linkedid in CEL), and the channel name, the
only id a log line has (channel names restart after an Asterisk restart, so a name only matches a call
that is still open or ended less than `keep` ago, and never a call that ended before the new one began).
Each call is counted once, when first seen; later records only add what they know (answer time,
billed seconds, disposition, the source address of the CDR userfield).

The per-account tallies for the scan report (`AccountTally`) are kept here too.

A scan's book observes in C (`_calls.c`, put in place by `core.native_calls`), step for step on the same
objects: this file is its specification, and a change to `observe` or what it calls is a change there.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sipwatch.event import CALL_KINDS, Event, IPAddress, Kind
from sipwatch.numbers import Classified, NumberClassifier

MAX_OPEN = 12 * 3600.0  # a call with no end after this long is forgotten (its end record was lost)

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _calls as _native_calls  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _native_calls = None
if os.environ.get("SIPWATCH_NATIVE", "1") == "0":  # (as formats/native.py's `available`, read once: see CallState)
    _native_calls = None


@dataclass(slots=True, eq=False)
class CallState:
    """One call, as far as its records have told. Equal only to itself (and hashed so): two calls are never one
    for having said the same (the account rules key their window by the call)."""

    account: str | None
    start: float
    number: str | None = None
    classified: Classified | None = None
    answer: float | None = None
    end: float | None = None
    billsec: float | None = None
    disposition: str | None = None
    ip: IPAddress | None = None
    #: the record a decision cites the call by: its first that shows it leaves the PBX (the account rules cite
    #: outside calls only; the learned behaviour, the call at hand), without its call ids (`_record`). An internal
    #: call keeps none, and no call keeps the others: they are freed at once, while still in the cache, instead of
    #: an hour later with the call (on a million CDR rows, keeping every record cost a scan ~13% more CPU)
    record: Event | None = None
    keys: list[str] = field(default_factory=list)
    #: what the learned behaviour judged and learned of the call already (its records come one by one): its
    #: SOURCE/DESTINATION/UNUSUAL flags, and the talk minutes learned; kept on the call (it lives as long as the
    #: book keeps it: a big dict of every call's id, as these once were, cost a CDR scan ~15% of its time)
    judged: int = 0
    learned_minutes: float = 0.0

    @property
    def answered(self) -> bool:
        return self.answer is not None or bool(self.billsec)

    def talk(self, now: float) -> float:
        """Seconds talked (billed) by `now`: the CDR's billsec once known, else since the answer."""
        if self.billsec is not None:
            return self.billsec
        if self.answer is None:
            return 0.0
        return max(0.0, (self.end if self.end is not None else now) - self.answer)

    def open_at(self, when: float) -> bool:
        return self.start <= when and (self.end is None or when < self.end) and when - self.start < MAX_OPEN

    def add_key(self, key: str) -> None:
        """Add a key the call is known by, unless it has it."""
        if key not in self.keys:
            self.keys.append(key)


#: the dataclass above: the specification of `_calls.CallState`, and the calls of a build without C
PlainCallState = CallState
if not TYPE_CHECKING and _native_calls is not None:
    CallState = _native_calls.CallState  # the same record in C (see _callstate.h)


@dataclass(slots=True)
class AccountTally:
    """What a scan reports about one account's calls (`_calls.c` counts in its slots)."""

    account: str
    calls: int = 0
    answered: int = 0
    outside: int = 0  # calls to numbers outside the PBX
    seconds: float = 0.0  # billed (talk) seconds of ended calls
    countries: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)  # source addresses (CDR userfield)
    first: float = 0.0
    last: float = 0.0


#: A CDR's end is in whole seconds, so the `full` log's hang-up of the same call may come up to a second
#: after it; an answer or end record this close to a call's end is that call's (a channel name reused after
#: a restart begins a new call with a start record, long after)
END_SLACK = 2.0


def _keys(event: Event) -> list[str]:
    call = event.call
    if call is None:
        return []
    linkedid, uniqueid = call.linkedid, call.uniqueid
    keys = [f"id:{linkedid}"] if linkedid else []
    if uniqueid and uniqueid != linkedid:
        keys.append(f"id:{uniqueid}")
    if call.channel:
        keys.append(f"ch:{call.channel}")
    return keys


_TEXTS: dict[IPAddress, str] = {}


def _text(ip: IPAddress) -> str:
    """str(ip), remembered (a phone calls from one address again and again)."""
    text = _TEXTS.get(ip)
    if text is None:
        if len(_TEXTS) >= 65536:
            _TEXTS.clear()
        text = _TEXTS[ip] = str(ip)
    return text


def _record(event: Event) -> Event:
    """What a call keeps of the record it is cited by: all but the call's ids and times (`Event.call`). A
    decision shows the record's file, line and text; the ids are the call's keys already, and the record's
    own (a tuple of ~8 objects) are freed with the record at once, in the cache, not an hour later with the
    call (on a million CDR rows: ~5% of a scan's main process)."""
    return replace(event, call=None)


def _began(event: Event) -> float:
    """When the call of this record began, as far as the record tells."""
    call = event.call
    if event.kind is Kind.CALL_END and call is not None and call.duration is not None:
        return event.time - call.duration
    return event.time


class CallBook:
    def __init__(self, classifier: NumberClassifier, keep: float = 3600.0, max_calls: int = 200_000,
                 max_accounts: int = 100_000) -> None:
        self.classifier = classifier
        self.keep = keep
        self.max_calls = max_calls
        self.max_accounts = max_accounts
        self._calls: deque[CallState] = deque()  # by first sight: the oldest is pruned first
        self._by_key: dict[str, CallState] = {}
        self.accounts: dict[str, AccountTally] = {}
        self.current: tuple[CallState, bool] | None = None  # the call of the event being processed

    def observe(self, event: Event) -> tuple[CallState, bool] | None:
        """The call this event belongs to, and whether it is seen for the first time."""
        self.current = None
        if event.kind not in CALL_KINDS or event.call is None:
            return None
        keys = _keys(event)
        if not keys:
            return None
        self._prune(event.time)
        state = self._find(keys, event)
        new = state is None
        if state is None:
            state = CallState(event.account, _began(event))
            self._calls.append(state)
        for key in keys:
            state.add_key(key)
            self._by_key[key] = state
        talked = state.talk(state.end) if state.end is not None else 0.0
        before = (state.number is not None, state.ip is not None, state.answered, talked)
        self._update(state, event)
        if state.record is None and state.classified is not None and self.classifier.outside(state.classified):
            state.record = _record(event)
        self._tally(state, new, before)
        self.current = state, new
        return self.current

    def _find(self, keys: list[str], event: Event) -> CallState | None:
        for key in keys:
            state = self._by_key.get(key)
            if state is None:
                continue
            if key.startswith("ch:") and state.end is not None and (
                    _began(event) >= state.end + (0.0 if event.kind is Kind.CALL_START else END_SLACK)
                    or event.time - state.end > self.keep):
                continue  # the channel name of an earlier call, reused after a restart
            return state
        return None

    def _update(self, state: CallState, event: Event) -> None:
        call = event.call
        assert call is not None
        if state.account is None and event.account:
            state.account = event.account
        if state.number is None and event.target:
            state.number = event.target
            state.classified = self.classifier.classify(event.target)
        if state.ip is None and event.ip is not None:
            state.ip = event.ip
        if event.kind is Kind.CALL_ANSWER and state.answer is None:
            state.answer = event.time
        elif event.kind is Kind.CALL_END:
            if state.end is None:
                state.end = event.time
            if call.billsec is not None:  # of several rows (one per dial attempt), the answered one counts
                state.billsec = max(state.billsec or 0.0, call.billsec)
                if call.billsec and state.answer is None:
                    state.answer = event.time - call.billsec
            if call.duration is not None:
                state.start = min(state.start, event.time - call.duration)
        if call.disposition and state.disposition != "ANSWERED" and (
                state.disposition is None or call.billsec is not None):
            state.disposition = call.disposition  # the CDR's word is final, and one answered attempt is enough

    def _tally(self, state: CallState, new: bool, before: tuple[bool, bool, bool, float]) -> None:
        """Count what this record told first: the call, its number, its source, its answer; and the
        talk seconds it added (several CDR rows of one call: each dial attempt has one)."""
        had_number, had_ip, was_answered, talked = before
        if state.account is None:
            return
        tally = self.accounts.get(state.account)
        if tally is None:
            if len(self.accounts) >= self.max_accounts:
                return
            tally = self.accounts[state.account] = AccountTally(state.account, first=state.start)
        if new:
            tally.calls += 1
        number = state.classified
        if number is not None and not had_number and self.classifier.outside(number):
            tally.outside += 1
            if number.country:
                tally.countries[number.country] += 1
        if state.ip is not None and not had_ip:
            tally.sources[_text(state.ip)] += 1
        if state.answered and not was_answered:
            tally.answered += 1
        if state.end is not None:
            tally.seconds += state.talk(state.end) - talked
        tally.first = min(tally.first, state.start)
        tally.last = max(tally.last, state.end or state.start)

    def _prune(self, now: float) -> None:
        """Forget calls that ended long ago (or never ended), oldest first, a few per call."""
        calls = self._calls
        for _ in range(4):
            if not calls:
                return
            first = calls[0]
            done = first.end is not None and now - first.end > self.keep
            if not (done or now - first.start > MAX_OPEN or len(calls) > self.max_calls):
                return
            calls.popleft()
            for key in first.keys:
                if self._by_key.get(key) is first:
                    del self._by_key[key]
