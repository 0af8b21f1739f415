"""Scanners: a known scanning tool's fingerprint, or a scan-only event (AMI probes, pike blocks)."""

from __future__ import annotations

from sipwatch.config import Scanner
from sipwatch.detectors.base import Action, Decision, ForgetsByAddress
from sipwatch.event import Event, Kind


class ScannerDetector(ForgetsByAddress):
    name = "scanner"
    kinds = frozenset({Kind.SCANNER, Kind.FLOOD})

    def __init__(self, settings: Scanner) -> None:
        self.settings = settings

    def observe(self, event: Event) -> list[Decision]:
        if event.ip is None or event.kind not in (Kind.SCANNER, Kind.FLOOD):
            return []
        what = event.reason or event.user_agent or event.form
        label = "fingerprint" if event.kind is Kind.SCANNER else "flood"
        return [Decision(Action.BAN, self.name, f"{label}: {what}", event.time, ip=event.ip,
                         evidence=event.evidence, events=[event])]
