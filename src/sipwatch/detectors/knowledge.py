"""What the detectors learn from good events: who logged in as what, from where; which calls run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sipwatch.calls import CallBook
from sipwatch.event import Event, IPAddress, IPNetwork, Kind
from sipwatch.numbers import NumberClassifier

if TYPE_CHECKING:
    from sipwatch.detectors.base import Decision

CALLER_WINDOW = 5.0  # seconds from a successful authentication to the call it let in
MAX_UNPLACED = 1_000  # accounts with a critical decision still waiting for its caller's address
MAX_WAITING = 10  # such decisions kept per account (the newest)


class Knowledge:
    """Accounts each address has authenticated as (bounded), so that a phone whose password went
    stale is recognised as the account's owner rather than an attacker."""

    def __init__(self, max_addresses: int = 100_000, calls: CallBook | None = None) -> None:
        self.max_addresses = max_addresses
        self._owned: dict[IPAddress, set[str]] = {}
        self._last_auth: dict[str, tuple[float, IPAddress, int | None]] = {}  # account -> time, address, port
        self.calls = calls if calls is not None else CallBook(NumberClassifier())  # calls, correlated
        #: account -> its critical decisions made before the address of their calls was known: AMI may deliver
        #: a call's first event before the SuccessfulAuth that let it in (Asterisk raises them on separate
        #: queues), and that login, arriving a moment later, still names the caller (`placed`)
        self.unplaced: dict[str, list[Decision]] = {}

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

    def await_caller(self, decision: Decision) -> None:
        """Keep a critical account decision whose calls came from no known address yet (see `placed`)."""
        assert decision.account
        waiting = self.unplaced.pop(decision.account, [])
        self.unplaced[decision.account] = [*waiting[1 - MAX_WAITING:], decision]
        if len(self.unplaced) > MAX_UNPLACED:
            self.unplaced.pop(next(iter(self.unplaced)))

    def placed(self, login: Event) -> list[Decision]:
        """The waiting decisions on `login`'s account that this successful authentication let in: made at most
        `CALLER_WINDOW` seconds after it (by the records' own times, whatever order they arrived in), as
        `Knowledge.caller` would have found had it come first. Decisions made before it are dropped (it
        cannot be their caller, and a later login is later still); ones too far after it wait on."""
        account = login.account
        waiting = self.unplaced.pop(account, None) if account else None
        if not account or not waiting:
            return []
        found = [d for d in waiting if 0 <= d.time - login.time <= CALLER_WINDOW]
        later = [d for d in waiting if d.time - login.time > CALLER_WINDOW]
        if later:
            self.unplaced[account] = later
        return found

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
