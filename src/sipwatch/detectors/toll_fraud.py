"""Toll-fraud probing: call attempts to international, premium or high-risk numbers; the same
number behind different access prefixes; and prefix walking (many distinct prefixes in seconds)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from sipwatch.config import TollFraud
from sipwatch.detectors.base import (
    MAX_EVIDENCE,
    Action,
    Decision,
    DistinctWindows,
    ForgetsByAddress,
    Windows,
    strongest,
)
from sipwatch.event import Event, IPAddress, Kind
from sipwatch.numbers import NumberClassifier

DIALLED = frozenset({Kind.REJECTED_CALL, Kind.CALL_ATTEMPT})


class TollFraudDetector(ForgetsByAddress):
    name = "toll_fraud"
    kinds = DIALLED

    def __init__(self, settings: TollFraud, classifier: NumberClassifier) -> None:
        self.settings = settings
        self.classifier = classifier
        self.probes: Windows[IPAddress] = Windows(settings.window, max(settings.probes, 50))
        self.walks: DistinctWindows[IPAddress] = DistinctWindows(settings.prefix_walk_window, keep=1000)
        self.address_windows = (self.probes, self.walks)

    def observe(self, event: Event) -> list[Decision]:
        if event.kind not in DIALLED or event.ip is None or not event.target or event.repeat:
            return []
        digits = event.target.lstrip("+")
        if not digits.isdigit() or len(digits) < 7:
            return []
        s = self.settings
        walk, prefixes = self.walks.add(event.ip, event, digits[: s.prefix_length])
        if len(prefixes) >= s.prefix_walk:
            return self.decide_walk(event, walk, prefixes)
        if not self.classifier.is_probe(event.target):
            return []
        q = self.probes.add(event.ip, event)
        if len(q) < min(2, s.probes):
            return []  # (alone in its window: no other form of its number, and too few probes)
        return self.decide(event, q)

    def decide_walk(self, event: Event, walk: deque[tuple[Event, Hashable]],
                    prefixes: dict[Hashable, int]) -> list[Decision]:
        """`event`'s address dialled `prefix_walk` distinct prefixes within the walk window (the C core counts
        and calls this too)."""
        assert event.ip is not None
        events = [e for e, _ in walk]
        self.walks.clear(event.ip)
        return [self._ban(event, events, f"prefix walking: {len(prefixes)} distinct prefixes in "
                                         f"{self.settings.prefix_walk_window:.0f}s")]

    def decide(self, event: Event, q: deque[Event]) -> list[Decision]:
        """`event`, a probe, is not alone in its address's window (the C core counts and calls this too): the same
        number behind another access prefix, or enough probes, ban."""
        assert event.ip is not None and event.target
        classifier = self.classifier
        identity = classifier.identity(event.target)
        dialled_forms = {e.target for e in q if e.target != event.target and e.target
                         and classifier.identity(e.target) == identity}
        if dialled_forms:
            dialled_forms.add(event.target)
            events = list(q)
            self.probes.clear(event.ip)
            return [self._ban(event, events, f"{identity} tried with {len(dialled_forms)} access prefixes: "
                                             f"{', '.join(sorted(dialled_forms))}")]
        if len(q) < self.settings.probes:
            return []
        events = list(q)
        self.probes.clear(event.ip)
        e164, risk = classifier.describe(event.target)  # no phonenumbers parse: ~30 us a number
        sample = list(dict.fromkeys(e.target or "" for e in reversed(events)))[:8]  # the reason names a few
        kinds = sorted({classifier.region_of(target) or "?" for target in sample})
        return [self._ban(event, events, f"{len(events)} calls to international/premium numbers "
                                         f"({', '.join(kinds[:6])}), e.g. {e164}{' (' + risk + ')' if risk else ''}")]

    def _ban(self, event: Event, events: list[Event], reason: str) -> Decision:
        return Decision(Action.BAN, self.name, reason, event.time, ip=event.ip,
                        evidence=strongest(events), events=events[-MAX_EVIDENCE:])
