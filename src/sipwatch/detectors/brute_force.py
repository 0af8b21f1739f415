"""Brute force: failed authentications (and unknown accounts, ACL refusals) per address in a window.

Counts requests, not lines (`Event.repeat` marks the extra lines a server writes for one request).
An address that only ever failed on an account it has logged in as before is left to the
stale-password detector: it is a phone with an old password, not an attacker.
"""

from __future__ import annotations

from collections import deque

from sipwatch.config import BruteForce
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, ForgetsByAddress, Windows, strongest
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.event import Event, IPAddress, Kind

COUNTED = frozenset({Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT, Kind.ACL_DENIED})


class BruteForceDetector(ForgetsByAddress):
    name = "brute_force"
    kinds = COUNTED

    def __init__(self, settings: BruteForce, knowledge: Knowledge) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.windows: Windows[IPAddress] = Windows(settings.window, settings.attempts)
        self.address_windows = (self.windows,)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind not in COUNTED or event.ip is None or event.repeat:
            return []
        if self.knowledge.owns(event.ip, event.account):
            return []
        q = self.windows.add(event.ip, event)
        if len(q) < self.settings.attempts:
            return []
        return self.decide(event, q)

    def decide(self, event: Event, q: deque[Event]) -> list[Decision]:
        """The window of `event`'s address is full (the C core counts and calls this too)."""
        assert event.ip is not None
        events = list(q)
        self.windows.clear(event.ip)
        accounts = sorted({e.account for e in events if e.account})
        return [Decision(
            Action.BAN, self.name,
            f"{len(events)} failed attempts in {_span(events)} (accounts: {', '.join(accounts[:5]) or 'none'})",
            event.time, ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:],
        )]



def _span(events: list[Event]) -> str:
    seconds = max(0.0, events[-1].time - events[0].time)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"
