"""What the detectors learn from good events: who logged in as what, from where; which calls run."""

from __future__ import annotations

from sipwatch.calls import CallBook
from sipwatch.event import Event, IPAddress, IPNetwork, Kind
from sipwatch.numbers import NumberClassifier

CALLER_WINDOW = 5.0  # seconds from a successful authentication to the call it let in


class Knowledge:
    """Accounts each address has authenticated as (bounded), so that a phone whose password went
    stale is recognised as the account's owner rather than an attacker."""

    def __init__(self, max_addresses: int = 100_000, calls: CallBook | None = None) -> None:
        self.max_addresses = max_addresses
        self._owned: dict[IPAddress, set[str]] = {}
        self._last_auth: dict[str, tuple[float, IPAddress, int | None]] = {}  # account -> time, address, port
        self.calls = calls if calls is not None else CallBook(NumberClassifier())  # calls, correlated

    def observe(self, event: Event) -> None:
        if event.kind is Kind.AUTH_SUCCESS and event.ip is not None and event.account:
            if len(self._owned) >= self.max_addresses and event.ip not in self._owned:
                self._owned.pop(next(iter(self._owned)))
            self._owned.setdefault(event.ip, set()).add(event.account)
            self._last_auth.pop(event.account, None)
            self._last_auth[event.account] = (event.time, event.ip, event.port)
            if len(self._last_auth) > self.max_addresses:
                self._last_auth.pop(next(iter(self._last_auth)))

    def caller(self, event: Event, within: float = CALLER_WINDOW) -> tuple[IPAddress, int | None] | None:
        """Where a call event without an address came from: the account's successful authentication just
        before (a phone's INVITE is challenged, then the call begins; AMI's call events carry no address,
        its SuccessfulAuth does). None when there is none within `within` seconds."""
        if not event.account:
            return None
        last = self._last_auth.get(event.account)
        if last is None or not 0 <= event.time - last[0] <= within:
            return None
        return last[1], last[2]

    def accounts_of(self, ip: IPAddress) -> set[str]:
        """The accounts `ip` has logged in as (empty when none)."""
        return self._owned.get(ip, set())

    def accounts_in(self, network: IPNetwork) -> set[str]:
        """The accounts that any address of `network` has logged in as (a scan over the known addresses:
        for the rare network ban only)."""
        found: set[str] = set()
        for ip, accounts in self._owned.items():
            if ip.version == network.version and ip in network:
                found |= accounts
        return found

    def owns(self, ip: IPAddress | None, account: str | None) -> bool:
        return ip is not None and account is not None and account in self._owned.get(ip, ())
