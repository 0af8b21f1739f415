"""What a scan remembers about each hostile address, built where the events are parsed.

A `Tally` is order-independent (counts, first and last seen), so the workers of a parallel scan can
each keep one for their buffers and the main process merges them: it never touches blocked events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sipwatch.detectors import Action, Decision
from sipwatch.event import HOSTILE_KINDS, Event, Evidence, IPAddress, Kind

COUNTED = HOSTILE_KINDS | {Kind.INJECTION}

MAX_QUEUED = 65536  # events counted in bulk at a time
MAX_DECISIONS = 20  # decisions kept per address (a repeat offender is banned again and again)
MAX_DISTINCT = 200  # accounts and numbers remembered per address (the rest are counted, not named)


@dataclass(slots=True)
class Offender:
    """Everything a report says about one hostile address. Events are queued as small tuples and
    counted in bulk (C-speed `Counter.update`), which keeps the per-event cost of a scan low. Slots: the
    C merge loop (`_drain.c`) counts a parallel scan's events into them directly."""

    ip: IPAddress
    events: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    accounts: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    services: set[str] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0
    strong: bool = False
    decisions: list[Decision] = field(default_factory=list)
    more_decisions: int = 0  # decisions beyond MAX_DECISIONS, counted only
    queue: list[tuple[float, str, str, str | None, str | None, bool]] = field(default_factory=list, repr=False)

    def decide(self, decision: Decision) -> None:
        if len(self.decisions) < MAX_DECISIONS:
            self.decisions.append(decision)
        else:
            self.more_decisions += 1

    def flush(self) -> None:
        queue = self.queue
        if not queue:
            return
        times, kinds, services, accounts, targets, strong = zip(*queue, strict=True)
        first, last = min(times), max(times)
        self.first = first if not self.events else min(self.first, first)
        self.last = last if not self.events else max(self.last, last)
        self.events += len(queue)
        self.kinds.update(kinds)
        self.services.update(services)
        _merge_capped(self.accounts, Counter(a for a in accounts if a))
        _merge_capped(self.targets, Counter(t for t in targets if t))
        self.strong = self.strong or any(strong)
        queue.clear()

    @property
    def decision(self) -> str:
        """"ban" if any decision bans, else "alert" if any alerts, else "none"."""
        found = "none"
        for d in self.decisions:
            if d.action is Action.BAN:
                return "ban"
            if d.action is Action.ALERT:
                found = "alert"
        return found

    @property
    def reason(self) -> str:
        for action in (Action.BAN, Action.ALERT):
            for d in self.decisions:
                if d.action is action:
                    return f"{d.detector}: {d.reason}"
        return ""



def _merge_capped(into: Counter[str], other: Counter[str]) -> None:
    for key, n in other.items():
        if key in into or len(into) < MAX_DISTINCT:
            into[key] = into.get(key, 0) + n


@dataclass
class Tally:
    """The scan's counts: every hostile address's offender, and the events by kind."""

    offenders: dict[IPAddress, Offender] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    queued: int = 0  # events waiting in the offenders' queues...
    dirty: list[Offender] = field(default_factory=list)  # ...of these offenders

    def add(self, event: Event) -> None:
        self.count(event.ip, event.time, event.kind, event.service, event.account, event.target,
                   event.evidence is Evidence.STRONG, event.kind in COUNTED)

    def count(self, ip: IPAddress | None, time: float, kind: Kind, service: str, account: str | None,
              target: str | None, strong: bool, counted: bool) -> None:
        """`add` for an event in plain values (a parallel scan counts events it never builds)."""
        kinds = self.kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        if ip is not None and counted:
            offender = self.offenders.get(ip)
            if offender is None:
                offender = self.offenders[ip] = Offender(ip)
            if not offender.queue:
                self.dirty.append(offender)
            offender.queue.append((time, kind, service, account, target, strong))
            self.queued += 1
            if self.queued >= MAX_QUEUED:  # memory stays flat however many events and addresses
                self.flush()

    def offender(self, ip: IPAddress) -> Offender:
        found = self.offenders.get(ip)
        if found is None:
            found = self.offenders[ip] = Offender(ip)
        return found

    def flush(self) -> Tally:
        for offender in self.dirty:
            offender.flush()
        self.dirty.clear()
        self.queued = 0
        return self
