"""What the detectors learn from good events: who logged in as what, from where; which calls run."""

from __future__ import annotations

from sipwatch.calls import CallBook
from sipwatch.event import Event, IPAddress, Kind
from sipwatch.numbers import NumberClassifier


class Knowledge:
    """Accounts each address has authenticated as (bounded), so that a phone whose password went
    stale is recognised as the account's owner rather than an attacker."""

    def __init__(self, max_addresses: int = 100_000, calls: CallBook | None = None) -> None:
        self.max_addresses = max_addresses
        self._owned: dict[IPAddress, set[str]] = {}
        self.calls = calls if calls is not None else CallBook(NumberClassifier())  # calls, correlated

    def observe(self, event: Event) -> None:
        if event.kind is Kind.AUTH_SUCCESS and event.ip is not None and event.account:
            if len(self._owned) >= self.max_addresses and event.ip not in self._owned:
                self._owned.pop(next(iter(self._owned)))
            self._owned.setdefault(event.ip, set()).add(event.account)

    def owns(self, ip: IPAddress | None, account: str | None) -> bool:
        return ip is not None and account is not None and account in self._owned.get(ip, ())
