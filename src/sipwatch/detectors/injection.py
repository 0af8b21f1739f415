"""Forged log records: alert, and never blame an address the forged text names.

When the record's trusted side proves who sent it, that address is named in the alert (it sent a
request carrying forged log text); otherwise the alert names nobody.
"""

from __future__ import annotations

from sipwatch.detectors.base import Action, Decision, ForgetsByAddress
from sipwatch.event import Event, Kind


class InjectionDetector(ForgetsByAddress):
    name = "injection"
    kinds = frozenset({Kind.INJECTION})

    def observe(self, event: Event) -> list[Decision]:
        if event.kind is not Kind.INJECTION:
            return []
        who = f"sent by {event.ip}" if event.ip is not None else "sender unknown"
        return [Decision(Action.ALERT, self.name, f"forged log record ({event.reason}); {who}",
                         event.time, ip=event.ip, events=[event])]
