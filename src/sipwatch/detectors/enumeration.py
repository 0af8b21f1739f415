"""Enumeration: one address trying many distinct accounts (svwar, REGISTER/INVITE walks)."""

from __future__ import annotations

from sipwatch.config import Enumeration
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, Windows, strongest
from sipwatch.event import Event, IPAddress, Kind

COUNTED = frozenset({Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT})


class EnumerationDetector:
    name = "enumeration"

    def __init__(self, settings: Enumeration) -> None:
        self.settings = settings
        self.windows: Windows[IPAddress] = Windows(settings.window, 10_000)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind not in COUNTED or event.ip is None or not event.account:
            return []
        q = self.windows.add(event.ip, event)
        accounts = {e.account for e in q if e.account}
        if len(accounts) < self.settings.accounts:
            return []
        events = list(q)
        self.windows.clear(event.ip)
        names = sorted(a for a in accounts if a)
        return [Decision(
            Action.BAN, self.name, f"{len(names)} distinct accounts tried: {', '.join(names[:8])}",
            event.time, ip=event.ip, evidence=strongest(events), events=events[-MAX_EVIDENCE:],
        )]
