"""The one pipeline: events in, decisions out. The offline scan and the live daemon both drive it.

Stages, in order: drop records read twice through two sources (`Duplicates`), mark extra lines of one
request (`Attempts`), pair digest challenges with the failures that answer them (`Nonces`), learn who
logged in as what (`Knowledge`), run every detector, then apply the policy (allowlist, evidence-based
ban length, one ban per address at a time). Time is the events' own, so a scan reproduces exactly
what the daemon would have decided.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from sipwatch.behaviour import LearningMode, ProfileBook, network_of
from sipwatch.calls import CallBook
from sipwatch.config import Config
from sipwatch.detectors import Action, BehaviourDetector, Decision, Detector, Knowledge, build
from sipwatch.detectors.base import forget_oldest, forgetting
from sipwatch.event import CALL_KINDS, HOSTILE_KINDS, Event, Evidence, IPAddress, IPNetwork, Kind
from sipwatch.netaddr import ip_of, ipv6_network
from sipwatch.numbers import NumberClassifier

SAME_REQUEST_SECONDS = 1.0


class Attempts:
    """Marks `repeat` on the further lines a server writes for one request.

    Asterisk 22 writes up to three NOTICE lines for one wrong guess (and a security event beside
    them); a request is one attempt. Lines of one request come from one source address and port
    within a second and are all of different forms; the same form again means a new request (svcrack
    reuses one Call-ID for hundreds of guesses, so the Call-ID cannot be the key).
    """

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self._open: dict[tuple[IPAddress, int | None], tuple[float, set[tuple[str, str]]]] = {}

    def mark(self, event: Event) -> None:
        if event.ip is None or event.kind not in HOSTILE_KINDS:
            return
        key = (event.ip, event.port)
        form = (event.form, event.reason)
        current = self._open.get(key)
        same_request = current is not None and abs(event.time - current[0]) <= SAME_REQUEST_SECONDS
        if current is not None and same_request and form not in current[1]:
            current[1].add(form)
            event.repeat = True
            return
        self._open.pop(key, None)
        self._open[key] = (event.time, {form})  # at the end: the dict stays in time order
        self._prune(event.time)

    def _prune(self, now: float) -> None:
        """Requests last a second: drop the ones that are over, oldest first, a few per call."""
        opened = self._open
        for _ in range(4):
            first = next(iter(opened), None)
            if first is None or (now - opened[first][0] <= 2 * SAME_REQUEST_SECONDS and len(opened) < self.max_keys):
                return
            del opened[first]


class Duplicates:
    """Drops a record read a second time through another source: the `messages` and `full` logs hold the
    same NOTICE lines, `full` and `security` the same security events, and AMI sends what the security
    log writes. Within one file identical records are distinct requests (a cracker's guesses in one
    second look alike), so records are matched as multisets: the n-th identical record of a file is new
    only when no other file has already given n of them."""

    WINDOW = 10.0  # seconds of event time the sources may lag behind each other

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple[object, ...], tuple[float, dict[str, int]]] = OrderedDict()
        #: False while all events come from one source (a scan of one file): nothing can be read twice then
        self.enabled = True

    def repeated(self, event: Event) -> bool:
        if event.ip is None or not self.enabled:
            return False
        # a security event's own EventTV, not the time its line was written: AMI and the log differ by a ms
        stamp = event.extra.get("event_tv") or event.time
        key = (stamp, event.form, event.reason, event.kind, event.ip, event.port, event.session, event.account,
               event.target)
        found = self._seen.get(key)
        if found is None:
            self._seen[key] = (event.time, {event.file: 1})
            self._prune(event.time)
            return False
        counts = found[1]
        mine = counts[event.file] = counts.get(event.file, 0) + 1
        return any(n >= mine for file, n in counts.items() if file != event.file)

    def _prune(self, now: float) -> None:
        seen = self._seen
        for _ in range(4):
            first = next(iter(seen), None)
            if first is None or (now - seen[first][0] <= self.WINDOW and len(seen) < self.max_keys):
                return
            del seen[first]


NONCE_KINDS = frozenset({Kind.AUTH_CHALLENGE, Kind.AUTH_FAILURE})


class Nonces:
    """A failed digest answer to a nonce we really sent to that address proves a round trip."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._sent: dict[tuple[IPAddress, str], None] = {}  # oldest first

    def mark(self, event: Event) -> None:
        nonce = event.extra.get("Challenge")
        if event.ip is None or not nonce:
            return
        key = (event.ip, nonce)
        if event.kind is Kind.AUTH_CHALLENGE:
            self._sent[key] = None
            if len(self._sent) > self.max_keys:
                forget_oldest(self._sent, len(self._sent) - self.max_keys + self.max_keys // 10)
        elif event.kind is Kind.AUTH_FAILURE and key in self._sent:
            event.evidence = Evidence.STRONG


#: what `allow_loopback` (tests only) lets be banned
LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


class Policy:
    """Never ban loopback or allowlisted networks; ban length by evidence; one ban at a time."""

    def __init__(self, config: Config, own: set[IPAddress] | None = None) -> None:
        self.policy = config.policy
        self.allow = [net for net in map(_network, config.policy.allowlist) if net is not None]
        self.hosts = [name for name in config.policy.allowlist if _network(name) is None]
        self.host_addresses: dict[IPAddress, str] = {}  # resolved allowlisted host names (see resolve())
        self.own = own or set()
        self.banned_until: dict[IPAddress, float] = {}
        #: IPv6 networks banned as a whole (`ipv6_rotation`), and their lengths
        self.banned_nets: dict[ipaddress.IPv6Network, float] = {}
        self.net_prefixes: set[int] = set()
        self.recent_bans: deque[float] = deque()
        self.resolved_at = -1e9

    def resolve(self, every: float = 600.0) -> None:
        """(Re-)resolve the allowlisted host names, at most every `every` seconds: a trunk provider's
        addresses may change."""
        now = time.monotonic()
        if now - self.resolved_at < every:
            return
        self.resolved_at = now
        found: dict[IPAddress, str] = {}
        for name in self.hosts:
            try:
                infos = socket.getaddrinfo(name, None)
            except OSError:
                continue
            for info in infos:
                address = ip_of(str(info[4][0]))
                if address is not None:
                    found[address] = name
        if found or not self.hosts:
            self.host_addresses = found

    def protected(self, ip: IPAddress) -> str | None:
        if ip.is_loopback and not self.policy.allow_loopback:
            return "loopback"
        if ip in self.own:
            return "one of this host's own addresses"
        if ip in self.host_addresses:
            return f"allowlisted ({self.host_addresses[ip]})"
        for net in self.allow:
            if ip.version == net.version and ip in net:
                return f"allowlisted ({net})"
        return None

    def protected_network(self, network: IPNetwork) -> str | None:
        """Why a network must not be banned as a whole: it holds loopback, one of this host's addresses or
        an allowlisted address, or overlaps an allowlisted network."""
        if not self.policy.allow_loopback and any(ip in network for ip in LOOPBACK if ip.version == network.version):
            return "it holds the loopback address"
        for ip in self.own:
            if ip.version == network.version and ip in network:
                return f"it holds this host's own address {ip}"
        for ip, name in self.host_addresses.items():
            if ip.version == network.version and ip in network:
                return f"it holds allowlisted {name} ({ip})"
        for net in self.allow:
            if net.version == network.version and net.overlaps(network):
                return f"it overlaps allowlisted {net}"
        return None

    def banned_network(self, ip: IPAddress, time: float) -> bool:
        """Whether `ip` is in a network banned at `time`."""
        if ip.version != 6:
            return False
        for prefix in self.net_prefixes:
            until = self.banned_nets.get(ipv6_network(ip, prefix))
            if until is not None and time < until:
                return True
        return False

    def apply(self, decision: Decision) -> Decision | None:
        if decision.action is not Action.BAN or decision.ip is None:
            return decision
        ip = decision.ip
        why = self.protected(ip)
        if why is not None:
            decision.action = Action.ALERT
            decision.reason += f"; not banned: {why}"
            return decision
        network = decision.network
        if network is not None:
            why = self.protected_network(network)
            if why is not None:  # the address that tipped it, at least
                decision.prefix = network = None
                decision.reason += f"; only {ip} banned, not its network: {why}"
        until = self.banned_until.get(ip)
        if (until is not None and decision.time < until and network is None) or (
                self.banned_nets and self.banned_network(ip, decision.time)):
            return None
        if self._storm(decision.time):
            decision.action = Action.ALERT
            decision.reason += (f"; held: more than {self.policy.storm_bans} bans within "
                                f"{self.policy.storm_window:.0f}s (a flood of forged lines?)")
            return decision
        strong = decision.evidence is Evidence.STRONG
        decision.duration = self.policy.ban_strong if strong else self.policy.ban_weak
        if network is not None:
            assert isinstance(network, ipaddress.IPv6Network)
            self.banned_nets.pop(network, None)
            self.banned_nets[network] = decision.time + decision.duration  # at the end, as below
            self.net_prefixes.add(network.prefixlen)
        self.banned_until.pop(ip, None)
        self.banned_until[ip] = decision.time + decision.duration  # at the end: roughly in expiry order
        self._expire(decision.time)
        return decision

    def _storm(self, now: float) -> bool:
        """The ban-storm breaker: too many bans in a short time means hold and ask a human."""
        recent = self.recent_bans
        while recent and recent[0] < now - self.policy.storm_window:
            recent.popleft()
        if len(recent) >= self.policy.storm_bans:
            return True
        recent.append(now)
        return False

    def _expire(self, now: float) -> None:
        """Forget bans that are over, a few per call, so that the table does not grow without end."""
        for _ in range(4):
            first = next(iter(self.banned_until), None)
            if first is None or self.banned_until[first] > now:
                break
            del self.banned_until[first]
        nets = self.banned_nets
        for _ in range(4 if nets else 0):
            network = next(iter(nets), None)
            if network is None or nets[network] > now:
                break
            del nets[network]


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


class Pipeline:
    def __init__(self, config: Config, own: set[IPAddress] | None = None) -> None:
        self.classifier = NumberClassifier(*config.numbers.settings())
        self.calls = CallBook(self.classifier)
        self.knowledge = Knowledge(calls=self.calls)
        self.duplicates = Duplicates()
        self.attempts = Attempts()
        self.nonces = Nonces()
        self.detectors = build(config, self.knowledge, self.classifier)
        self._forget_pops, self._forgets = forgetting(self.detectors)
        self.by_kind: dict[Kind, tuple[Detector, ...]] = {
            kind: tuple(d for d in self.detectors if kind in d.kinds) for kind in Kind
        }
        self.policy = Policy(config, own)
        self.banned_until = self.policy.banned_until
        #: called with every critical account decision (the daemon's AMI actions: hang up the account's
        #: outside calls, block it); none during the learning mode
        self.on_critical: list[Callable[[Decision], None]] = []
        self.fraud_actions = frozenset(config.pbx.actions)
        self.spare_logged_in = config.policy.spare_logged_in
        #: the learned profiles (None when the behaviour detector is off) and the learning mode, which the
        #: daemon and `sipwatch learn` start from the store: a plain scan has none
        self.profiles: ProfileBook | None = next(
            (d.book for d in self.detectors if isinstance(d, BehaviourDetector)), None)
        self.learning = LearningMode(config.behaviour.learning_days)
        self._prefixes = (config.behaviour.ipv4_prefix, config.behaviour.ipv6_prefix)

    def known_network(self, account: str, ip: IPAddress) -> bool:
        """Whether `ip` is in one of the networks the account is known to use: learned on earlier days
        (what today brought, a fraudster's address included, is not yet usual)."""
        profile = self.profiles.get(account) if self.profiles is not None else None
        return profile is not None and network_of(ip, *self._prefixes) in profile.networks

    def is_blocked(self, ip: IPAddress | None, time: float) -> bool:
        """Would the firewall have dropped a request from `ip` at `time`? (The daemon never sees it.)"""
        if ip is None:
            return False
        until = self.banned_until.get(ip)
        if until is not None and time < until:
            return True
        return bool(self.policy.banned_nets) and self.policy.banned_network(ip, time)

    def process(self, event: Event) -> list[Decision]:
        ip = event.ip
        if ip is not None:
            until = self.banned_until.get(ip)
            if (until is not None and event.time < until) or (
                    self.policy.banned_nets and self.policy.banned_network(ip, event.time)):
                event.blocked = True  # the firewall would have dropped it: the daemon never sees it
                return []
        if self.duplicates.enabled and self.duplicates.repeated(event):
            event.repeat = True  # the same record through another source: the detectors saw it already
            return []
        kind = event.kind
        if kind in HOSTILE_KINDS:  # (the only kinds that these two stages look at: calls skip them)
            self.attempts.mark(event)
        if kind in NONCE_KINDS:
            self.nonces.mark(event)
        late: Sequence[Decision] = ()
        if kind is Kind.AUTH_SUCCESS:
            self.knowledge.observe(event)
            if self.knowledge.unplaced:
                late = self.knowledge.placed(event)
        elif event.kind in CALL_KINDS:
            if event.ip is None and event.kind is Kind.CALL_START:
                found = self.knowledge.caller(event)
                if found is not None:  # the address that authenticated as this account a moment ago
                    event.ip, event.port = found
                    event.evidence = Evidence.STRONG
            self.calls.observe(event)
        decisions: list[Decision] = []
        for decision in late:  # critical decisions whose caller this login turns out to be
            ban = self._fraud_ban(decision, event.ip)
            if ban is not None:
                decisions.append(ban)
        for detector in self.by_kind[event.kind]:
            decided = detector.observe(event)
            if decided and self.settle(event, decided, decisions):
                break
        return decisions

    def settle(self, event: Event, found: list[Decision], decisions: list[Decision]) -> bool:
        """Apply the policy to what one detector decided on `event`, into `decisions`; True when the event's
        address is banned now (the C core calls this too: see `core.py`)."""
        for decision in found:
            self._spare_logged_in(decision)
            final = self.policy.apply(decision)
            if final is not None:
                decisions.append(final)
                if final.level == "critical" and not self.learning.holds(final):
                    for hook in self.on_critical:
                        hook(final)
                    ban = self._fraud_ban(final, final.ip)
                    if ban is not None:
                        decisions.append(ban)
                    elif final.ip is None and final.account and "ban" in self.fraud_actions:
                        self.knowledge.await_caller(final)  # its caller's login may still be on its way
        ip = event.ip
        if ip is not None and self.is_blocked(ip, event.time):
            self.forget(ip)  # banned by this very event: the other detectors need not see it
            return True
        return False

    def _spare_logged_in(self, decision: Decision) -> None:
        """A ban on weak evidence (one UDP packet, which anyone can send with a forged source) of an address
        that logged in successfully (a digest round trip: a phone is there) becomes an alert: a forger
        cannot lock the operator's phones out. Strong evidence still bans."""
        if (decision.action is Action.BAN and decision.evidence is Evidence.WEAK and decision.ip is not None
                and self.spare_logged_in):
            network = decision.network
            k = self.knowledge
            accounts = k.accounts_of(decision.ip) if network is None else k.accounts_in(network)
            if accounts:
                decision.action = Action.ALERT
                who = "it" if network is None else f"an address of {network}"
                decision.reason += (f"; not banned: {who} logged in as {', '.join(sorted(accounts)[:3])}, and this "
                                    "evidence is UDP that anyone can send in its name")

    def _fraud_ban(self, decision: Decision, ip: IPAddress | None) -> Decision | None:
        """A critical account decision bans the address its calls came from (`pbx.actions` "ban"), unless
        it is one of the account's own networks (`known_network`: then it is the phone's office, and
        blocking the account is the answer) or the policy protects it. A successful login proves nothing
        here: stolen credentials log in successfully too."""
        if "ban" not in self.fraud_actions or ip is None or not decision.account:
            return None
        if self.known_network(decision.account, ip):
            return None
        return self.policy.apply(Decision(
            Action.BAN, decision.detector, f"account {decision.account}: {decision.reason}", decision.time,
            ip=ip, account=decision.account, evidence=Evidence.STRONG, events=decision.events))

    def forget(self, ip: IPAddress) -> None:
        """A banned address's requests stop arriving: the detectors can let go of it (memory)."""
        for pop in self._forget_pops:
            pop(ip, None)
        for forget in self._forgets:
            forget(ip)
