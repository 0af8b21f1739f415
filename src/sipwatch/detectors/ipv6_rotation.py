"""IPv6 rotation: hostile requests from many addresses of one IPv6 network (a /64 by default).

A subscriber gets a whole /64 (often a /56 or /48): 2^64 addresses, so an attacker can send every request
from a fresh one and never reach a per-address threshold, nor ever meet its own ban. The network, not the
address, is what the attacker holds: this detector counts hostile requests per network and bans the network
when they come from several of its addresses (a single address is the other detectors' business).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Hashable

from sipwatch.config import Ipv6Rotation
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, DistinctWindows, ForgetsByAddress, strongest
from sipwatch.event import Event, Kind
from sipwatch.netaddr import ipv6_network

COUNTED = frozenset({Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT, Kind.ACL_DENIED, Kind.REJECTED_CALL, Kind.SCANNER})


class Ipv6RotationDetector(ForgetsByAddress):
    name = "ipv6_rotation"
    kinds = COUNTED
    ipv6_only = True  # for events from IPv6 addresses only (the C core counts its windows: `core._ipv6_spec`)
    # (its windows are per network, kept when one address is banned: the rest of the network is still watched)

    def __init__(self, settings: Ipv6Rotation) -> None:
        self.settings = settings
        self.shift = 128 - settings.prefix
        #: keyed by the network's bits as an int (an IPv6Network object costs ~3 us to make)
        self.windows: DistinctWindows[int] = DistinctWindows(settings.window, keep=max(settings.attempts, 50))

    def observe(self, event: Event) -> list[Decision]:
        ip = event.ip
        if not isinstance(ip, ipaddress.IPv6Address) or event.repeat or event.kind not in COUNTED:
            return []
        q, addresses = self.windows.add(int(ip) >> self.shift, event, ip)
        if len(q) < self.settings.attempts or len(addresses) < self.settings.addresses:
            return []
        return self.decide(event, q, addresses)

    def decide(self, event: Event, q: deque[tuple[Event, Hashable]], addresses: dict[Hashable, int]) -> list[Decision]:
        """The window of `event`'s network holds enough requests from enough of its addresses (the C core counts
        and calls this too)."""
        ip = event.ip
        assert isinstance(ip, ipaddress.IPv6Address)
        s = self.settings
        events = [e for e, _ in q]
        self.windows.clear(int(ip) >> self.shift)
        network = ipv6_network(ip, s.prefix)
        return [Decision(Action.BAN, self.name,
                         f"{len(events)} hostile requests from {len(addresses)} addresses of {network} within "
                         f"{s.window:.0f}s: one source rotating its IPv6 addresses", event.time, ip=ip,
                         prefix=s.prefix, evidence=strongest(events), events=events[-MAX_EVIDENCE:])]
