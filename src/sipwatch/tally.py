"""What a scan remembers about each hostile address, built where the events are parsed.

A `Tally` is order-independent (counts, first and last seen), so the workers of a parallel scan can
each keep one for their buffers and the main process merges them: it never touches blocked events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sipwatch.detectors import Action, Decision
from sipwatch.event import HOSTILE_KINDS, Event, Evidence, IPAddress, Kind
from sipwatch.netaddr import ip_of

COUNTED = HOSTILE_KINDS | {Kind.INJECTION}

#: A tally in plain values (kinds; per address: ip, events, first, last, strong, kinds, accounts,
#: targets, services), as a worker process sends it
ExportedRow = tuple[str, int, float, float, bool, dict[str, int], dict[str, int], dict[str, int], list[str]]
Exported = tuple[dict[str, int], list[ExportedRow]]
MAX_DECISIONS = 20  # decisions kept per address (a repeat offender is banned again and again)
MAX_DISTINCT = 200  # accounts and numbers remembered per address (the rest are counted, not named)


@dataclass
class Offender:
    """Everything a report says about one hostile address. Events are queued as small tuples and
    counted in bulk (C-speed `Counter.update`), which keeps the per-event cost of a scan low."""

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
    _queue: list[tuple[float, str, str, str | None, str | None, bool]] = field(default_factory=list, repr=False)

    def decide(self, decision: Decision) -> None:
        if len(self.decisions) < MAX_DECISIONS:
            self.decisions.append(decision)
        else:
            self.more_decisions += 1

    def add(self, event: Event) -> None:
        queue = self._queue
        queue.append((event.time, event.kind, event.service, event.account, event.target,
                      event.evidence is Evidence.STRONG))
        if len(queue) >= 4096:
            self.flush()

    def flush(self) -> None:
        queue = self._queue
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

    def merge(self, other: Offender) -> None:
        other.flush()
        self.flush()
        if other.events:
            self.first = other.first if not self.events else min(self.first, other.first)
            self.last = other.last if not self.events else max(self.last, other.last)
        self.events += other.events
        self.kinds.update(other.kinds)
        _merge_capped(self.accounts, other.accounts)
        _merge_capped(self.targets, other.targets)
        self.services |= other.services
        self.strong = self.strong or other.strong
        self.decisions.extend(other.decisions)

    @property
    def decision(self) -> str:
        actions = {d.action for d in self.decisions}
        for action in (Action.BAN, Action.ALERT):
            if action in actions:
                return str(action)
        return "none"

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
    offenders: dict[IPAddress, Offender] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, event: Event) -> None:
        kinds = self.kinds
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
        ip = event.ip
        if ip is not None and event.kind in COUNTED:
            offender = self.offenders.get(ip)
            if offender is None:
                offender = self.offenders[ip] = Offender(ip)
            offender.add(event)

    def remove(self, event: Event) -> None:
        """Take back an event counted by mistake (a line that turned out to belong to a forged record)."""
        self.kinds[event.kind] -= 1
        offender = self.offenders.get(event.ip) if event.ip is not None else None
        if offender is None or event.kind not in COUNTED:
            return
        offender.flush()
        offender.events -= 1
        offender.kinds[event.kind] -= 1
        for counter, key in ((offender.accounts, event.account), (offender.targets, event.target)):
            if key and counter.get(key):
                counter[key] -= 1
                if not counter[key]:
                    del counter[key]
        if offender.kinds[event.kind] <= 0:
            del offender.kinds[event.kind]
        if offender.events <= 0 and not offender.decisions and event.ip is not None:
            del self.offenders[event.ip]

    def offender(self, ip: IPAddress) -> Offender:
        found = self.offenders.get(ip)
        if found is None:
            found = self.offenders[ip] = Offender(ip)
        return found

    def flush(self) -> Tally:
        for offender in self.offenders.values():
            offender.flush()
        return self

    def export(self) -> Exported:
        """Plain values that pickle fast (the worker side of a parallel scan)."""
        self.flush()
        rows = [
            (str(o.ip), o.events, o.first, o.last, o.strong, dict(o.kinds), dict(o.accounts), dict(o.targets),
             list(o.services))
            for o in self.offenders.values()
        ]
        return dict(self.kinds), rows

    def merge_export(self, exported: Exported) -> None:
        kinds, rows = exported
        self.kinds.update(kinds)
        for ip_text, events, first, last, strong, okinds, accounts, targets, services in rows:
            ip = ip_of(ip_text)
            if ip is None:
                continue
            part = Offender(ip, events, Counter(okinds), Counter(accounts), Counter(targets), set(services), first,
                            last, strong)
            mine = self.offenders.get(ip)
            if mine is None:
                self.offenders[ip] = part
            else:
                mine.merge(part)

    def merge(self, other: Tally) -> None:
        self.kinds.update(other.kinds)
        for ip, offender in other.offenders.items():
            mine = self.offenders.get(ip)
            if mine is None:
                self.offenders[ip] = offender
            else:
                mine.merge(offender)
