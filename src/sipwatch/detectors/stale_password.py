"""A device failing again and again on the account it owns: a stale password, alert rather than ban."""

from __future__ import annotations

from collections import deque

from sipwatch.config import StalePassword
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, ForgetsByAddress, Windows
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.event import Event, IPAddress, Kind


class StalePasswordDetector(ForgetsByAddress):
    name = "stale_password"
    kinds = frozenset({Kind.AUTH_FAILURE})
    # (its windows, per address and account, are kept when the address is banned: that alert still stands)

    def __init__(self, settings: StalePassword, knowledge: Knowledge) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.windows: Windows[tuple[IPAddress, str]] = Windows(settings.window, settings.failures)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind is not Kind.AUTH_FAILURE or event.ip is None or not event.account or event.repeat:
            return []
        if not self.knowledge.owns(event.ip, event.account):
            return []
        key = (event.ip, event.account)
        q = self.windows.add(key, event)
        if len(q) < self.settings.failures:
            return []
        return self.decide(event, q)

    def decide(self, event: Event, q: deque[Event]) -> list[Decision]:
        """The address failed often enough on an account it owns (the C core counts and calls this too)."""
        assert event.ip is not None and event.account is not None
        key = (event.ip, event.account)
        events = list(q)
        self.windows.clear(key)
        return [Decision(Action.ALERT, self.name,
                         f"{len(events)} failures on account {event.account!r}, which this address "
                         "has logged in as before: a stale password?",
                         event.time, ip=event.ip, account=event.account, events=events[-MAX_EVIDENCE:])]
