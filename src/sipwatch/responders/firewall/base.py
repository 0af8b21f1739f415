"""Types shared by the firewall backends."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipwatch.event import IPAddress

#: SIP over UDP/TCP and TLS: what a ban covers unless the configuration says all ports
SIP_PORTS = (5060, 5061)


class FirewallError(Exception):
    """A firewall operation failed; the message says which command and why."""


@dataclass(frozen=True, slots=True)
class Ban:
    ip: IPAddress
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError("a ban lasts a positive number of seconds")


@dataclass(frozen=True)
class Scope:
    """Which packets of a banned address are dropped."""

    ports: tuple[int, ...] = field(default=SIP_PORTS)
    all_ports: bool = False
