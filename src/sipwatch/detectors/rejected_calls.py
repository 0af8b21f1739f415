"""Rejected calls and INVITE floods: calls to extensions that do not exist, and call-attempt rate.

This is what an INVITE scanner leaves in `messages` with a guest/anonymous context
(`Call from '' (ip:port) to extension '…' rejected because extension not found`).
"""

from __future__ import annotations

from collections import deque

from sipwatch.config import RejectedCalls
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, ForgetsByAddress, Windows, strongest
from sipwatch.event import Event, IPAddress, Kind

_EMPTY = "''"
CALLS = frozenset({Kind.REJECTED_CALL, Kind.CALL_ATTEMPT})


class RejectedCallsDetector(ForgetsByAddress):
    name = "rejected_calls"
    kinds = CALLS

    def __init__(self, settings: RejectedCalls) -> None:
        self.settings = settings
        self.rejected: Windows[IPAddress] = Windows(settings.window, settings.calls)
        self.flood: Windows[IPAddress] = Windows(settings.flood_window, settings.flood_calls)
        self.address_windows = (self.rejected, self.flood)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind not in CALLS or event.ip is None or event.repeat:
            return []
        flood = self.flood.add(event.ip, event)
        if len(flood) >= self.settings.flood_calls:
            return self.decide_flood(event, flood)
        if event.kind is not Kind.REJECTED_CALL:
            return []
        q = self.rejected.add(event.ip, event)
        if len(q) < self.settings.calls:
            return []
        return self.decide(event, q)

    def decide_flood(self, event: Event, flood: deque[Event]) -> list[Decision]:
        """The flood window of `event`'s address is full (the C core counts and calls this too)."""
        assert event.ip is not None
        events = list(flood)
        self.flood.clear(event.ip)
        return [Decision(Action.BAN, "invite_flood",
                         f"{len(events)} call attempts within {self.settings.flood_window:.0f}s", event.time,
                         ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:])]

    def decide(self, event: Event, q: deque[Event]) -> list[Decision]:
        """The rejected-call window of `event`'s address is full (the C core counts and calls this too)."""
        assert event.ip is not None
        events = list(q)
        self.rejected.clear(event.ip)
        targets = sorted({e.target for e in events if e.target is not None})
        return [Decision(
            Action.BAN, self.name,
            f"{len(events)} calls to unknown extensions ({', '.join(t or _EMPTY for t in targets[:6])})",
            event.time, ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:],
        )]
