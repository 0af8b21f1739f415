"""Types shared by the firewall backends."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sipwatch.errors import FirewallError as FirewallError
from sipwatch.event import IPAddress
from sipwatch.netaddr import ip_of

#: what a ban covers: one address, or a whole IPv6 network (`ipv6_rotation`)
Target = IPAddress | ipaddress.IPv6Network

#: SIP over UDP/TCP and TLS: what a ban covers unless the configuration says all ports
SIP_PORTS = (5060, 5061)


@dataclass(frozen=True, slots=True)
class Ban:
    ip: Target
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError("a ban lasts a positive number of seconds")


@dataclass(frozen=True)
class Scope:
    """Which packets of a banned address are dropped."""

    ports: tuple[int, ...] = field(default=SIP_PORTS)
    all_ports: bool = False


def target_of(text: str) -> Target | None:
    """An address, or an IPv6 network of 32 to 127 bits (`2001:db8:1:2::/64`; a /128 is its address);
    None for anything else (IPv4 networks are never banned as a whole)."""
    if "/" not in text:
        return ip_of(text)
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    if network.version != 6 or network.prefixlen < 32:
        return None
    return network.network_address if network.prefixlen == 128 else network
