"""Challenges never answered: many digest challenges to one address and no successful login.

The only trace an INVITE flood leaves in Asterisk with chan_sip `allowguest=no` is the security
event ChallengeSent; a real phone answers its challenges with SuccessfulAuth.
"""

from __future__ import annotations

from collections import deque

from sipwatch.config import UnansweredChallenges
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, ForgetsByAddress, Windows, strongest
from sipwatch.event import Event, IPAddress, Kind


class UnansweredChallengesDetector(ForgetsByAddress):
    name = "unanswered_challenges"
    kinds = frozenset({Kind.AUTH_CHALLENGE, Kind.AUTH_SUCCESS})

    def __init__(self, settings: UnansweredChallenges) -> None:
        self.settings = settings
        self.windows: Windows[IPAddress] = Windows(settings.window, settings.challenges)
        self.address_windows = (self.windows,)

    def observe(self, event: Event) -> list[Decision]:
        if event.ip is None:
            return []
        if event.kind is Kind.AUTH_SUCCESS:
            self.windows.clear(event.ip)
            return []
        if event.kind is not Kind.AUTH_CHALLENGE:
            return []
        q = self.windows.add(event.ip, event)
        if len(q) < self.settings.challenges:
            return []
        return self.decide(event, q)

    def decide(self, event: Event, q: deque[Event]) -> list[Decision]:
        """Enough challenges to `event`'s address and no login (the C core counts and calls this too)."""
        assert event.ip is not None
        events = list(q)
        self.windows.clear(event.ip)
        return [Decision(Action.BAN, self.name,
                         f"{len(events)} digest challenges without a successful login",
                         event.time, ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:])]
