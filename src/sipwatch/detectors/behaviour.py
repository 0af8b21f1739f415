"""Learned behaviour per account (issue 7, item 4): each account judged against its own profile.

The profiles (`sipwatch/behaviour.py`) learn from every call (correlated by the `CallBook`: one call seen
through several records is learned once) and from every trusted source address of an account
(`auth_success`: the server-written RemoteAddress; the CDR userfield; never a Contact header). An account
is judged only once it has `min_days` observed days; its destinations, hours and volume also need
`min_calls` learned outside calls. Before that it is learned, never judged. The rules:

- `new_source` (critical): a source address in a network the account never used, with a user agent it
  never used (of the same record, or of a login or registration of the account within `PAIR_SECONDS`;
  while the profile has learned no user agent, "never used" means: not one its own networks used today);
  `new_network` (warning): a new network, with a user agent it used before or none known;
- `new_high_risk_destination`: the first call to a high-risk country or a satellite or international
  network it never called (critical), or to a premium or shared-cost number type it never called (warning);
- `new_countries` (warning / critical): so many countries it never called within `new_countries_window`;
- `unusual_hour` (warning): an outside call to a destination it does not usually call, at an hour (±1)
  holding less than `unusual_hour_percent` of its calls on such days (weekdays and weekends apart);
- `volume_calls`, `volume_minutes` (warning / critical): today's outside calls (talk minutes) to
  destinations it does not usually call, `volume_factor` times its daily baseline and at least the floor.

Internal calls are learned (hours) but never judged; a usual destination (a learned country and number
type) never counts towards volume; an address inside a known network is nothing at all. Critical
decisions go to the pipeline's `on_critical` hooks, like the account rules'.

In a scan, `_learned.c` stands in for `observe` on the call records, logins and registrations that can only
teach a profile (see `core.learned_observe`): this file is its specification, and a change to `_call`, to the
login path (`_pair`, `_source`) or to what they call is a change there too (tests/test_behaviour.py runs
every specification through both).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import NamedTuple

from sipwatch.behaviour import Profile, ProfileBook, hour_slot, network_of
from sipwatch.calls import CallState
from sipwatch.config import Behaviour, Threshold
from sipwatch.detectors.base import MAX_EVIDENCE, Action, Decision, strongest
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.event import CALL_KINDS, Event, IPAddress, Kind
from sipwatch.numbers import CONFIGURED, COUNTRY, NETWORK, SATELLITE, Classified

#: risk classes of places (countries, satellite and international networks, configured prefixes): a first
#: call there is critical; a first call to a premium or shared-cost number type is a warning
DEAR_PLACES = frozenset({COUNTRY, SATELLITE, NETWORK, CONFIGURED})
PAIR_SECONDS = 5.0  # a login's address and a registration's user agent this close belong together
LEVELS = ("", "warning", "critical")


#: what of one call was judged and learned already (records of one call arrive one by one): the flags kept in
#: its `CallState.judged`, beside the talk minutes learned (`learned_minutes`)
SOURCE, DESTINATION, UNUSUAL = 1, 2, 4


class Finding(NamedTuple):
    rule: str
    level: int  # 1 warning, 2 critical
    text: str
    key: str  # what "the same finding" is, for re-alerting
    calls: list[CallState]
    ip: IPAddress | None = None  # an address that used the account from outside its networks


def _level(value: float, threshold: Threshold) -> int:
    warning, critical = threshold
    return 2 if critical and value >= critical else 1 if warning and value >= warning else 0


def _country(number: Classified) -> str | None:
    """The ISO country of a number; None for non-geographic ranges (phonenumbers' "001": satellites...)."""
    country = number.country
    return country if country is not None and country.isalpha() else None


class BehaviourDetector:
    name = "behaviour"
    kinds = CALL_KINDS | frozenset({Kind.AUTH_SUCCESS, Kind.REGISTRATION})

    def __init__(self, settings: Behaviour, knowledge: Knowledge, tz: tzinfo | None = None,
                 exclude: list[str] | None = None) -> None:
        self.settings = settings
        self.calls = knowledge.calls
        self.tz = tz
        self.exclude = frozenset(exclude or ())
        self.book = ProfileBook(settings.max_accounts)
        self.alpha = 2.0 / (settings.baseline_days + 1)
        self._fired: dict[str, dict[str, tuple[int, float]]] = {}  # account -> finding key -> (level, time)
        self._recent: dict[str, tuple[float, IPAddress | None, str | None]] = {}  # account -> last login/registration
        #: account -> user agents seen today from its learned networks (its own phones, as far as can be told):
        #: what a new network's user agent is compared with while no user agent is learned yet (a history
        #: of CDRs names none; AMI's registrations do, from the daemon's first day)
        self._office_agents: dict[str, tuple[int, set[str]]] = {}
        self._clock: dict[int, tuple[int, int]] = {}

    def forget(self, ip: IPAddress) -> None:
        """Accounts are not addresses: a banned address changes nothing here."""

    # -- events ---------------------------------------------------------------------------------
    def observe(self, event: Event) -> list[Decision]:
        self.book.settle()  # (the day counts that the scan's C part keeps apart go in first: see ProfileBook)
        if event.kind in CALL_KINDS:
            return self._call(event)
        account = event.account
        if not account or account in self.exclude or (event.ip is None and not event.user_agent):
            return []
        profile = self._profile(account, event.time)
        ip, agent = event.ip, event.user_agent
        paired = self._pair(account, event)
        findings = self._source(account, profile, ip or paired[0], agent or paired[1], [], event.time,
                                learn_network=ip is not None)
        return self._decide(account, profile, findings, event) if findings else []

    def _pair(self, account: str, event: Event) -> tuple[IPAddress | None, str | None]:
        """The address and user agent of the account's previous login or registration, when it came within
        `PAIR_SECONDS`: a REGISTER's SuccessfulAuth names the address, its contact event the user agent."""
        recent = self._recent.pop(account, None)
        if len(self._recent) >= self.settings.max_accounts:
            del self._recent[next(iter(self._recent))]
        self._recent[account] = (event.time, event.ip, event.user_agent)
        if recent is None or event.time - recent[0] > PAIR_SECONDS:
            return None, None
        return recent[1], recent[2]

    def _call(self, event: Event) -> list[Decision]:
        found = self.calls.current
        if found is None:
            return []
        call = found[0]
        account, number, ip = call.account, call.classified, call.ip
        if account is None or account in self.exclude or not call.keys:
            return []
        flags, learned = call.judged, call.learned_minutes
        outside = number is not None and not number.internal
        if (ip is None or flags & SOURCE) and (number is None or flags & DESTINATION) and (
                not outside or call.end is None):
            return []  # a record of a call that tells nothing new about it
        profile = self._profile(account, event.time)
        findings: list[Finding] = []
        if ip is not None and not flags & SOURCE:
            flags |= SOURCE
            findings += self._source(account, profile, ip, event.user_agent, [call], event.time)
        if number is not None and not flags & DESTINATION:
            flags |= DESTINATION
            slot = hour_slot(*self._local(call.start))
            if not outside:
                profile.see_call(slot, None, True)
            else:
                where = _country(number) or number.number_type
                usual = profile.usual(where, number.number_type)
                flags |= 0 if usual else UNUSUAL
                findings += self._destination(profile, call, number, where, slot, usual)
                profile.see_call(slot, (where, number.number_type), usual)
                findings += self._volume(profile, [call], minutes=False)
        if outside and call.end is not None:
            talked = call.talk(call.end) / 60
            if talked > learned:
                profile.see_minutes(talked - learned, not flags & UNUSUAL)
                learned = talked
                findings += self._volume(profile, [call], minutes=True)
        call.judged, call.learned_minutes = flags, learned
        return self._decide(account, profile, findings, event) if findings else []

    def _profile(self, account: str, when: float) -> Profile:
        profile = self.book.touch(account, when)
        profile.roll(self._local(when)[0], self.alpha)
        return profile

    def _local(self, when: float) -> tuple[int, int]:
        """(local day, local hour) of `when`, cached per quarter of an hour (every zone's offset is a
        multiple of one)."""
        quarter = int(when // 900)
        found = self._clock.get(quarter)
        if found is None:
            if len(self._clock) > 4096:
                self._clock.clear()
            local = datetime.fromtimestamp(quarter * 900, self.tz)
            found = self._clock[quarter] = (local.toordinal(), local.hour)
        return found

    # -- the rules ------------------------------------------------------------------------------
    def _judged(self, profile: Profile, calls: bool) -> bool:
        s = self.settings
        return profile.days >= s.min_days and (not calls or profile.calls >= s.min_calls)

    def _source(self, account: str, profile: Profile, ip: IPAddress | None, agent: str | None,
                calls: list[CallState], when: float, learn_network: bool = True) -> list[Finding]:
        """A trusted source address and the user agent of the same request, when one is known.

        A network it never used: a warning the first time it is seen on a day; critical as soon as a user
        agent it never used comes with it (a REGISTER's user agent may arrive just after its address)."""
        s = self.settings
        network = network_of(ip, s.ipv4_prefix, s.ipv6_prefix) if ip is not None else None
        found: list[Finding] = []
        if network is not None and network in profile.networks and agent:
            self._office_agent(account, agent, self._local(when)[0])
        if network is not None and network not in profile.networks and profile.networks and self._judged(
                profile, calls=False):
            usual = ", ".join(sorted(profile.networks, key=profile.networks.__getitem__, reverse=True)[:3])
            if agent and self._agent_is_new(account, profile, agent):
                found.append(Finding("new_source", 2, f"used from {ip}, a network it never used ({network}; usual: "
                                     f"{usual}), with a user agent it never used ({agent!r})", network, calls, ip))
            elif not profile.knows_network(network):
                what = f"its user agent {agent!r}" if agent else "no user agent known"
                found.append(Finding("new_network", 1, f"used from {ip}, a network it never used ({network}; "
                                     f"usual: {usual}), {what}", network, calls, ip))
        profile.see_source(network if learn_network else None, agent)
        return found

    def _office_agent(self, account: str, agent: str, day: int) -> None:
        kept = self._office_agents.get(account)
        if kept is None or kept[0] != day:  # a new day: yesterday's are learned by now, or the day was not
            if kept is None and len(self._office_agents) >= self.settings.max_accounts:
                del self._office_agents[next(iter(self._office_agents))]
            kept = self._office_agents[account] = (day, set())
        if len(kept[1]) < 16:
            kept[1].add(agent[:120])

    def _agent_is_new(self, account: str, profile: Profile, agent: str) -> bool:
        """A user agent the account never used: against the learned ones, or while none is learned, against
        those its own networks used today."""
        if profile.agents:
            return not profile.learned_agent(agent)
        kept = self._office_agents.get(account)
        return kept is not None and bool(kept[1]) and agent[:120] not in kept[1]

    def _destination(self, profile: Profile, call: CallState, number: Classified, key: str, slot: int,
                     usual: bool) -> list[Finding]:
        if not self._judged(profile, calls=True):
            return []
        s = self.settings
        shown = number.e164 or call.number or "?"
        stranger = self._stranger(profile, call)
        found: list[Finding] = []
        new_key = not profile.knows_destination(key)
        if number.risk_class is not None and (new_key or not profile.knows_type(number.number_type)):
            level = 2 if number.risk_class in DEAR_PLACES else 1  # a dear number type at home: a warning
            found.append(Finding("new_high_risk_destination", level, f"first call to {key} ({number.number_type}): "
                                 f"{shown}, {number.risk}", f"{key}/{number.number_type}", [call], stranger))
        if new_key and _country(number):
            recent = profile.note_new(call.start, key, s.new_countries_window)
            level = _level(len(recent), s.new_countries)
            if level:
                keys = ", ".join(k for _, k in recent)
                found.append(Finding("new_countries", level, f"{len(recent)} countries it never called within "
                                     f"{s.new_countries_window / 60:.0f} min: {keys}", "", [call], stranger))
        share = profile.hour_share(slot) * 100
        if s.unusual_hour_percent and share < s.unusual_hour_percent and not usual:
            when = f"{slot % 24:02d}h" + (" on a weekend day" if slot >= 24 else "")
            found.append(Finding("unusual_hour", 1, f"outside call to {shown} at {when}, an hour it does not call at "
                                 f"({share:.1f}% of its calls within an hour of it on such days)", "", [call],
                                 stranger))
        return found

    def _volume(self, profile: Profile, calls: list[CallState], minutes: bool) -> list[Finding]:
        """Today's outside calls (or talk minutes) to destinations the account does not usually call."""
        today = profile.today
        s = self.settings
        if today is None or (today.unusual_minutes if minutes else today.unusual_calls) < max(
                s.volume_min_minutes if minutes else s.volume_min_calls, 1) or not self._judged(profile, calls=True):
            return []
        if minutes:
            rule, value, base, floor, unit = ("volume_minutes", today.unusual_minutes, profile.minutes_per_day,
                                              s.volume_min_minutes, "talk minutes")
        else:
            rule, value, base, floor, unit = ("volume_calls", float(today.unusual_calls), profile.calls_per_day,
                                              s.volume_min_calls, "outside calls")
        ratio = value / max(base, 1.0)
        level = _level(ratio, s.volume_factor)
        if level == 2 and value < 2 * floor:
            level = 1  # critical (an action) also needs twice the floor: one long call is not a fraud
        if not level:
            return []
        return [Finding(rule, level, f"{value:.0f} {unit} today to destinations it does not usually call, "
                        f"{ratio:.1f}× its baseline of {base:.1f} a day", "", calls, self._stranger(profile, calls[0]))]

    def _stranger(self, profile: Profile, call: CallState) -> IPAddress | None:
        """The call's source address when it lies outside every network the account has learned."""
        ip = call.ip
        if ip is None or network_of(ip, self.settings.ipv4_prefix, self.settings.ipv6_prefix) in profile.networks:
            return None
        return ip

    # -- decisions ------------------------------------------------------------------------------
    def _decide(self, account: str, profile: Profile, findings: list[Finding], event: Event) -> list[Decision]:
        decisions = []
        for finding in findings:
            if finding.level == 2:
                profile.now().tainted = True  # a day with a critical decision is not learned
            if self._fresh(account, finding, event.time):
                decisions.append(self._decision(account, finding, event))
        return decisions

    def _fresh(self, account: str, finding: Finding, now: float) -> bool:
        """Once per rule (and subject) and level per `realert`, unless the level rises."""
        fired = self._fired.get(account)
        if fired is None:
            if len(self._fired) >= self.settings.max_accounts:
                del self._fired[next(iter(self._fired))]
            fired = self._fired[account] = {}
        key = f"{finding.rule}:{finding.key}"
        last = fired.get(key)
        if last is not None and finding.level <= last[0] and now - last[1] < self.settings.realert:
            return False
        fired[key] = (finding.level, now)
        return True

    def _decision(self, account: str, finding: Finding, event: Event) -> Decision:
        level = LEVELS[finding.level]
        events = [c.record for c in finding.calls if c.record is not None][-MAX_EVIDENCE:] or [event]
        decision = Decision(
            Action.ALERT, self.name, f"{level}: {finding.text} (account {account}, learned behaviour)", event.time,
            account=account, evidence=strongest(events), events=events, rule=finding.rule, level=level,
            calls=[c.keys[0].split(":", 1)[1] for c in finding.calls if c.keys],
        )
        if finding.level == 2 and finding.ip is not None:
            decision.ip = finding.ip  # the address that used the account from outside its networks
        return decision
