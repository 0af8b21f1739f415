"""The dry-run backend: decide and log, touch nothing. Also what tests use when they have no root."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sipwatch.responders.firewall.base import Ban, Target


class DryRunBackend:
    name = "dry-run"

    def __init__(self) -> None:
        self._until: dict[Target, float] = {}

    def setup(self) -> None:
        return None

    def ban(self, bans: Iterable[Ban]) -> None:
        now = time.monotonic()
        for ban in bans:
            self._until[ban.ip] = now + ban.seconds

    def unban(self, ips: Iterable[Target]) -> None:
        for ip in ips:
            self._until.pop(ip, None)

    def banned(self) -> dict[Target, float]:
        now = time.monotonic()
        return {ip: until - now for ip, until in self._until.items() if until > now}

    def remove(self) -> None:
        self._until.clear()
