"""One account attacked from many addresses: no single address to ban, so alert on the account."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from sipwatch.config import Distributed
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, DistinctWindows, ForgetsByAddress
from sipwatch.event import Event, Kind


class DistributedDetector(ForgetsByAddress):
    name = "distributed"
    kinds = frozenset({Kind.AUTH_FAILURE})

    def __init__(self, settings: Distributed) -> None:
        self.settings = settings
        self.windows: DistinctWindows[str] = DistinctWindows(settings.window)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind is not Kind.AUTH_FAILURE or event.ip is None or not event.account or event.repeat:
            return []
        q, addresses = self.windows.add(event.account, event, event.ip)
        if len(addresses) < self.settings.addresses:
            return []
        return self.decide(event, q, addresses)

    def decide(self, event: Event, q: deque[tuple[Event, Hashable]], addresses: dict[Hashable, int]) -> list[Decision]:
        """Enough distinct addresses on `event`'s account (the C core counts and calls this too)."""
        assert event.account is not None
        events = [e for e, _ in q]
        self.windows.clear(event.account)
        return [Decision(Action.ALERT, self.name,
                         f"account {event.account!r} attacked from {len(addresses)} addresses",
                         event.time, account=event.account, events=events[-MAX_EVIDENCE:])]
