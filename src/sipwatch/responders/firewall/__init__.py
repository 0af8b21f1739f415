"""Firewall backends: put banned addresses where the kernel drops their packets.

Every backend implements `Backend` and is registered in `BACKENDS` by the name users write in the
configuration (`backend = "nftables"`). See README.md in this folder for how to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sipwatch.responders.firewall.base import Ban, FirewallError, Scope, Target, target_of
from sipwatch.responders.firewall.dryrun import DryRunBackend
from sipwatch.responders.firewall.ipset import IpsetBackend
from sipwatch.responders.firewall.nftables import NftablesBackend

__all__ = ["BACKENDS", "Backend", "Ban", "FirewallError", "Scope", "Target", "create", "target_of"]


class Backend(Protocol):
    name: str

    def setup(self) -> None:
        """Create what the backend owns (idempotent); touch nothing else."""

    def ban(self, bans: Iterable[Ban]) -> None:
        """Add bans in one batch; each expires in the kernel on its own."""

    def unban(self, ips: Iterable[Target]) -> None: ...

    def banned(self) -> dict[Target, float]:
        """What the kernel holds now: address (or IPv6 network) -> seconds left."""

    def remove(self) -> None:
        """Delete everything the backend created, and nothing else."""


@dataclass(frozen=True)
class Options:
    scope: Scope
    netns: str | None = None  # run the firewall commands inside this network namespace (tests)


BACKENDS: dict[str, Callable[[Options], Backend]] = {
    "nftables": lambda o: NftablesBackend(o.scope, netns=o.netns),
    "ipset": lambda o: IpsetBackend(o.scope, netns=o.netns),
    "dry-run": lambda o: DryRunBackend(),
}


def create(name: str, options: Options) -> Backend:
    try:
        return BACKENDS[name](options)
    except KeyError:
        raise FirewallError(f"unknown firewall backend {name!r} (known: {', '.join(BACKENDS)})") from None
