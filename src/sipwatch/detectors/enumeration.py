"""Enumeration: one address trying many distinct accounts (svwar, REGISTER/INVITE walks)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from sipwatch.config import Enumeration
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, DistinctWindows, ForgetsByAddress, strongest
from sipwatch.event import Event, IPAddress, Kind

COUNTED = frozenset({Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT})


class EnumerationDetector(ForgetsByAddress):
    name = "enumeration"
    kinds = COUNTED

    def __init__(self, settings: Enumeration) -> None:
        self.settings = settings
        self.windows: DistinctWindows[IPAddress] = DistinctWindows(settings.window)
        self.address_windows = (self.windows,)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind not in COUNTED or event.ip is None or not event.account:
            return []
        q, accounts = self.windows.add(event.ip, event, event.account)
        if len(accounts) < self.settings.accounts:
            return []
        return self.decide(event, q, accounts)

    def decide(self, event: Event, q: deque[tuple[Event, Hashable]], accounts: dict[Hashable, int]) -> list[Decision]:
        """Enough distinct accounts from `event`'s address (the C core counts and calls this too)."""
        assert event.ip is not None
        events = [e for e, _ in q]
        self.windows.clear(event.ip)
        names = sorted(str(a) for a in accounts)
        return [Decision(
            Action.BAN, self.name, f"{len(names)} distinct accounts tried: {', '.join(names[:8])}",
            event.time, ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:],
        )]
