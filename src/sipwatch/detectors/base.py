"""What every detector shares: the decision record, sliding windows, and the detector protocol."""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar, cast

from sipwatch.event import Event, Evidence, IPAddress, Kind
from sipwatch.netaddr import ipv6_network

MAX_EVIDENCE = 10  # events kept with a decision


class Action(StrEnum):
    BAN = "ban"
    ALERT = "alert"
    WATCH = "watch"


@dataclass(slots=True)
class Decision:
    """What a detector decided (ban, alert or watch), why, and the events behind it."""

    action: Action
    detector: str
    reason: str
    time: float
    ip: IPAddress | None = None
    account: str | None = None
    duration: float | None = None  # seconds, for bans
    prefix: int | None = None  # the ban covers the network of `ip` of this many bits (IPv6 rotation)
    evidence: Evidence = Evidence.WEAK
    events: list[Event] = field(default_factory=list)
    # account rules: which rule at which level (warning, critical), the calls behind it, their cost
    rule: str | None = None
    level: str | None = None
    calls: list[str] = field(default_factory=list)
    cost: float | None = None

    @property
    def network(self) -> ipaddress.IPv6Network | None:
        """What a network ban covers (`2001:db8:1:2::/64`), None for any other decision."""
        if self.ip is None or self.prefix is None or self.ip.version != 6:
            return None
        return ipv6_network(self.ip, self.prefix)

    def to_json(self) -> dict[str, object]:
        ip = self.ip
        found: dict[str, object] = {  # (enum members are str: JSON writes their values, and they compare equal)
            "action": self.action,
            "detector": self.detector,
            "reason": self.reason,
            "time": self.time,
            "ip": str(ip) if ip is not None else None,
            "account": self.account,
            "duration": self.duration,
        }
        if self.prefix is not None:
            found["network"] = str(self.network)
        found["evidence"] = self.evidence
        found["events"] = [{"file": e.file, "line": e.line, "kind": e.kind} for e in self.events]
        if self.rule is not None:
            found.update(rule=self.rule, level=self.level, calls=self.calls, cost=self.cost)
        return found


def manual_ban(target: IPAddress | ipaddress.IPv6Network, seconds: float, when: float,
               reason: str = "banned by hand") -> Decision:
    """The decision behind `sipwatch bans add` of an address or an IPv6 network."""
    if isinstance(target, ipaddress.IPv6Network):
        return Decision(Action.BAN, "manual", reason, when, ip=target.network_address, duration=seconds,
                        prefix=target.prefixlen)
    return Decision(Action.BAN, "manual", reason, when, ip=target, duration=seconds)


class Detector(Protocol):
    name: str
    kinds: frozenset[Kind]  # the only event kinds it looks at

    def observe(self, event: Event) -> list[Decision]: ...

    def forget(self, ip: IPAddress) -> None:
        """Drop what is kept about `ip` (it was just banned: its requests no longer arrive)."""


K = TypeVar("K", bound=Hashable)


class Windows(Generic[K]):
    """Per-key sliding windows of events in event time, bounded in keys and in length."""

    def __init__(self, window: float, keep: int, max_keys: int = 200_000) -> None:
        self.window = window
        self.keep = keep
        self.max_keys = max_keys
        self._data: dict[K, deque[Event]] = {}

    def add(self, key: K, event: Event) -> deque[Event]:
        q = self._data.get(key)
        if q is None:
            if len(self._data) >= self.max_keys:
                self._evict(event.time)
            q = self._data[key] = deque(maxlen=self.keep)
        q.append(event)
        horizon = event.time - self.window
        while q and q[0].time < horizon:
            q.popleft()
        return q

    def clear(self, key: K) -> None:
        self._data.pop(key, None)

    def _evict(self, now: float) -> None:
        horizon = now - self.window
        stale = [k for k, q in self._data.items() if not q or q[-1].time < horizon]
        for k in stale:
            del self._data[k]
        if len(self._data) >= self.max_keys:  # still full: drop the oldest half
            for k in list(self._data)[: self.max_keys // 2]:
                del self._data[k]


def strongest(events: list[Event]) -> Evidence:
    return Evidence.STRONG if any(e.evidence is Evidence.STRONG for e in events) else Evidence.WEAK


class DistinctWindows(Generic[K]):
    """Per-key sliding windows that also count distinct values (accounts, prefixes, addresses)
    incrementally, so that each event costs O(1) however full the window is."""

    def __init__(self, window: float, max_keys: int = 200_000, keep: int = 10_000) -> None:
        self.window = window
        self.keep = keep
        self.max_keys = max_keys
        self._data: dict[K, tuple[deque[tuple[Event, Hashable]], dict[Hashable, int]]] = {}

    def add(self, key: K, event: Event, value: Hashable) -> tuple[deque[tuple[Event, Hashable]], dict[Hashable, int]]:
        entry = self._data.get(key)
        if entry is None:
            if len(self._data) >= self.max_keys:
                self._evict(event.time)
            entry = self._data[key] = (deque(), {})
        q, counts = entry
        q.append((event, value))
        counts[value] = counts.get(value, 0) + 1
        horizon = event.time - self.window
        while q and (q[0][0].time < horizon or len(q) > self.keep):
            _, old = q.popleft()
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
        return entry

    def clear(self, key: K) -> None:
        self._data.pop(key, None)

    def _evict(self, now: float) -> None:
        horizon = now - self.window
        for k in [k for k, (q, _) in self._data.items() if not q or q[-1][0].time < horizon]:
            del self._data[k]
        if len(self._data) >= self.max_keys:  # still full: drop the oldest half
            for k in list(self._data)[: self.max_keys // 2]:
                del self._data[k]


class ForgetsByAddress:
    """A detector whose state about an address is windows keyed by it and nothing else (`address_windows`,
    none for a detector that keeps nothing per address): a ban lets go of them. `Pipeline.forget`, which runs
    on every ban, pops the keys itself (`forgetting`): one C call a window instead of two Python calls."""

    address_windows: tuple[Windows[Any] | DistinctWindows[Any], ...] = ()

    def forget(self, ip: IPAddress) -> None:
        for windows in self.address_windows:
            windows.clear(ip)


Pop = Callable[[Any, None], object]


def forget_oldest(kept: dict[Any, Any], n: int) -> None:
    """Let the `n` oldest keys of a bounded memory go (a dict keeps the order its keys came in), a batch at a
    time: an OrderedDict, whose `popitem(last=False)` let one go as each new key came, costs ~5 times as much to
    add a key to (the C parts do the same: `forget_oldest` in `_event_slots.h`)."""
    for key in list(islice(kept, n)):
        del kept[key]


def forgetting(detectors: Iterable[Detector]) -> tuple[list[Pop], list[Callable[[IPAddress], None]]]:
    """What `Pipeline.forget` calls with a banned address: the `pop`s of the windows of each `ForgetsByAddress`
    detector (with the address and None), and the `forget` of each other detector."""
    pops: list[Pop] = []
    forgets: list[Callable[[IPAddress], None]] = []
    for detector in detectors:
        forget = detector.forget
        if getattr(forget, "__func__", None) is ForgetsByAddress.forget:
            pops.extend(windows._data.pop for windows in cast(ForgetsByAddress, detector).address_windows)
        else:
            forgets.append(forget)
    return pops, forgets
