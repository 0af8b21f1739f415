"""Learned behaviour per account (issue 7, item 4): what is usual for each account, and the learning mode.

A `Profile` keeps, per account, small bounded counts of what the account did on the days already learned:
the destination countries and number types of its outside calls, the networks (/24 or /48) it came from,
its user agents, the hours of the day it calls at (weekdays and weekends apart), and a daily baseline of
outside calls and talk minutes (an exponentially weighted average over the observed days). What it does
today is kept apart (`Today`) and learned when its local day is over (the next record of the account on a
later day), so the attack of the day never makes itself usual, and a day on which a critical decision fell
is not learned at all.

Time comes from the records only, so `sipwatch learn` over past CDRs and the daemon's own observation
build the same profiles. Profiles are JSON in the store (`profiles` table), one row per account.

`LearningMode`: during an installation's first `learning_days` (from its first observation, kept in the
store) every critical account decision is held as a warning: alerts only, no action.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sipwatch.event import IPAddress

if TYPE_CHECKING:  # the detectors package imports this module
    from sipwatch.detectors.base import Decision

TOP_COUNTRIES = 16
TOP_TYPES = 8
TOP_NETWORKS = 8
TOP_AGENTS = 4
RECENT_NEW = 32  # first calls to new countries kept for the new-countries window (it may cross midnight)
AGE_AT = 10_000  # a count table whose total passes this is halved: old habits fade
DAY = 86400.0
SLOTS = 48  # hours of a weekday, then hours of a weekend day


def hour_slot(day: int, hour: int) -> int:
    """The histogram slot of local `hour` on local day `day` (a proleptic ordinal: day 1 was a Monday)."""
    return hour + 24 if (day - 1) % 7 >= 5 else hour


@lru_cache(maxsize=65536)
def network_of(ip: IPAddress, v4: int = 24, v6: int = 48) -> str:
    """The network an address belongs to for learning: `192.0.2.0/24`, `2001:db8:1::/48`."""
    return str(ipaddress.ip_network(f"{ip}/{v4 if ip.version == 4 else v6}", strict=False))


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _merge(into: dict[str, int], new: dict[str, int], top: int) -> None:
    """Add today's counts to the learned ones, keep the `top` largest, halve them all when they grow old."""
    for key, n in new.items():
        _bump(into, key, n)
    if len(into) > top:
        for key in sorted(into, key=into.__getitem__)[: len(into) - top]:
            del into[key]
    if sum(into.values()) > AGE_AT:
        for key in list(into):
            into[key] //= 2
            if not into[key]:
                del into[key]


@dataclass(slots=True)
class Today:
    """What an account did on its current local day: not learned yet."""

    calls: int = 0  # outside calls
    minutes: float = 0.0  # their talk minutes
    unusual_calls: int = 0  # outside calls to destinations it does not usually call
    unusual_minutes: float = 0.0
    countries: dict[str, int] = field(default_factory=dict)  # destination keys: ISO country or number type
    types: dict[str, int] = field(default_factory=dict)
    networks: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)  # slot (see `Profile.hours`) -> calls started
    tainted: bool = False  # a critical decision fell: this day is not learned

    def to_json(self) -> dict[str, Any]:
        return {"c": self.calls, "m": round(self.minutes, 2), "uc": self.unusual_calls,
                "um": round(self.unusual_minutes, 2), "co": self.countries, "ty": self.types,
                "nw": self.networks, "ua": self.agents, "h": {str(h): n for h, n in self.hours.items()},
                "t": self.tainted}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Today:
        return cls(int(data["c"]), float(data["m"]), int(data["uc"]), float(data["um"]), _counts(data["co"]),
                   _counts(data["ty"]), _counts(data["nw"]), _counts(data["ua"]),
                   {int(h): int(n) for h, n in data["h"].items()}, bool(data["t"]))


@dataclass(slots=True)
class Profile:
    """An account's learned behaviour: bounded, a few hundred bytes."""

    first_seen: float
    last_seen: float
    day: int = 0  # the local day (proleptic ordinal) that `today` belongs to
    days: int = 0  # observed days learned
    calls: int = 0  # outside calls learned
    calls_per_day: float = 0.0  # the baseline: weighted average of outside calls per observed day
    minutes_per_day: float = 0.0  # ...and of their talk minutes
    countries: dict[str, int] = field(default_factory=dict)  # destination key -> outside calls
    types: dict[str, int] = field(default_factory=dict)  # number type -> outside calls
    networks: dict[str, int] = field(default_factory=dict)  # source network -> times seen
    agents: dict[str, int] = field(default_factory=dict)  # user agent -> times seen
    #: calls started per slot: the local hour on weekdays (0-23), 24 + the local hour on weekends (24-47)
    hours: list[int] = field(default_factory=lambda: [0] * SLOTS)
    recent_new: list[tuple[float, str]] = field(default_factory=list)  # (time, key) of first calls to new keys
    today: Today | None = None

    # -- learning -------------------------------------------------------------------------------
    def roll(self, day: int, alpha: float) -> None:
        """Move on to local day `day`: learn the day that is over (unless a critical decision fell on it)."""
        if day <= self.day:
            return
        today, self.today, self.day = self.today, None, day
        if today is None or today.tainted:
            return
        self.days += 1
        self.calls += today.calls
        if self.days == 1:
            self.calls_per_day, self.minutes_per_day = float(today.calls), today.minutes
        else:
            self.calls_per_day += alpha * (today.calls - self.calls_per_day)
            self.minutes_per_day += alpha * (today.minutes - self.minutes_per_day)
        _merge(self.countries, today.countries, TOP_COUNTRIES)
        _merge(self.types, today.types, TOP_TYPES)
        _merge(self.networks, today.networks, TOP_NETWORKS)
        _merge(self.agents, today.agents, TOP_AGENTS)
        for hour, n in today.hours.items():
            self.hours[hour] += n
        if sum(self.hours) > AGE_AT:
            self.hours = [n // 2 for n in self.hours]

    def now(self) -> Today:
        if self.today is None:
            self.today = Today()
        return self.today

    def see_source(self, network: str | None, agent: str | None) -> None:
        today = self.now()
        if network is not None:
            _bump(today.networks, network)
        if agent:
            _bump(today.agents, agent[:120])

    def see_call(self, slot: int, destination: tuple[str, str] | None, usual: bool) -> None:
        """A call started in hour `slot` (`hour_slot`); `destination` (key, number type) when it leaves the
        PBX."""
        today = self.now()
        today.hours[slot] = today.hours.get(slot, 0) + 1
        if destination is None:
            return
        key, number_type = destination
        today.calls += 1
        today.unusual_calls += not usual
        _bump(today.countries, key)
        _bump(today.types, number_type)

    def see_minutes(self, minutes: float, usual: bool) -> None:
        today = self.now()
        today.minutes += minutes
        if not usual:
            today.unusual_minutes += minutes

    # -- what is usual --------------------------------------------------------------------------
    def knows_network(self, network: str) -> bool:
        """Learned, or already seen today (and judged then)."""
        return network in self.networks or (self.today is not None and network in self.today.networks)

    def learned_agent(self, agent: str) -> bool:
        """A user agent of the days learned (today's may be the intruder's own)."""
        return agent[:120] in self.agents

    def knows_destination(self, key: str) -> bool:
        """A destination already called (learned or today): `key` is its country, or its type if it has none."""
        return key in self.countries or (self.today is not None and key in self.today.countries)

    def knows_type(self, number_type: str) -> bool:
        return number_type in self.types or (self.today is not None and number_type in self.today.types)

    def usual(self, key: str, number_type: str) -> bool:
        """A destination learned as usual: its country and its number type both (not today's calls)."""
        return key in self.countries and number_type in self.types

    def hour_share(self, slot: int) -> float:
        """The share of the learned calls that started within an hour of `slot`, on the same kind of day
        (weekday or weekend)."""
        total = sum(self.hours)
        if not total:
            return 0.0
        base, hour = slot - slot % 24, slot % 24
        hours = self.hours
        return (hours[base + (hour - 1) % 24] + hours[slot] + hours[base + (hour + 1) % 24]) / total

    def note_new(self, when: float, key: str, window: float) -> list[tuple[float, str]]:
        """Remember a first call to a new destination; the ones within `window` before `when`."""
        recent = [(t, k) for t, k in self.recent_new if when - window < t <= when]
        recent.append((when, key))
        self.recent_new = recent[-RECENT_NEW:]
        return self.recent_new

    # -- storage --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"first": self.first_seen, "last": self.last_seen, "day": self.day, "days": self.days,
                "calls": self.calls, "cpd": round(self.calls_per_day, 3), "mpd": round(self.minutes_per_day, 3),
                "co": self.countries, "ty": self.types, "nw": self.networks, "ua": self.agents, "h": self.hours,
                "new": self.recent_new, "today": self.today.to_json() if self.today is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        hours = [int(n) for n in data["h"]]
        if len(hours) != SLOTS:
            raise ValueError(f"hours: expected {SLOTS} counts")
        today = data.get("today")
        return cls(float(data["first"]), float(data["last"]), int(data["day"]), int(data["days"]),
                   int(data["calls"]), float(data["cpd"]), float(data["mpd"]), _counts(data["co"]),
                   _counts(data["ty"]), _counts(data["nw"]), _counts(data["ua"]), hours,
                   [(float(t), str(k)) for t, k in data["new"]][-RECENT_NEW:],
                   Today.from_json(today) if today else None)


def _counts(data: object) -> dict[str, int]:
    if not isinstance(data, dict):
        raise ValueError("expected a table of counts")
    return {sys.intern(str(k)): int(v) for k, v in data.items()}  # shared: many accounts, few countries


class ProfileBook:
    """Every account's profile, bounded: the accounts seen least recently go first when it is full."""

    def __init__(self, max_accounts: int = 100_000) -> None:
        self.max_accounts = max_accounts
        self._profiles: dict[str, Profile] = {}  # in order of last use
        self.dirty: set[str] = set()  # changed since the last save
        self.bad: list[str] = []  # accounts whose stored profile could not be read
        #: what holds some counts of the profiles' days apart for a while (the scan's C learned behaviour, whose
        #: `flush` puts them in: see `_learned.c`, `Pending`), asked to before a profile is handed out
        self.settlers: list[Callable[[], object]] = []

    @property
    def profiles(self) -> dict[str, Profile]:
        """The profiles by account, each day's counts all in (`settle`)."""
        self.settle()
        return self._profiles

    def settle(self) -> None:
        for settle in self.settlers:
            settle()

    def __len__(self) -> int:
        return len(self._profiles)

    def __iter__(self) -> Iterator[tuple[str, Profile]]:
        return iter(self.profiles.items())

    def get(self, account: str) -> Profile | None:
        return self.profiles.get(account)

    def touch(self, account: str, when: float) -> Profile:
        """The account's profile, created at its first sight (when the book is full, the tenth of the
        accounts seen least recently make room: their rows stay in the store)."""
        profile = self.profiles.get(account)
        if profile is None:
            if len(self._profiles) >= self.max_accounts:
                self._evict()
            profile = self._profiles[account] = Profile(when, when)
        elif when > profile.last_seen:
            profile.last_seen = when
        elif when < profile.first_seen:
            profile.first_seen = when
        self.dirty.add(account)
        return profile

    def _evict(self) -> None:
        profiles = self._profiles
        for gone in heapq.nsmallest(max(1, len(profiles) // 10), profiles, key=lambda a: profiles[a].last_seen):
            del profiles[gone]
            self.dirty.discard(gone)

    # -- storage --------------------------------------------------------------------------------
    def load(self, rows: Iterable[tuple[str, str]]) -> None:
        for account, text in rows:
            try:
                profile = Profile.from_json(json.loads(text))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.bad.append(account)  # a broken row is relearned, never a crash
                continue
            self._profiles.pop(account, None)
            self._profiles[account] = profile
        while len(self._profiles) > self.max_accounts:
            del self._profiles[next(iter(self._profiles))]

    def take_dirty(self) -> list[tuple[str, str, float]]:
        """(account, JSON, last seen) of every profile changed since the last call."""
        profiles = self.profiles
        rows = [(a, json.dumps(p.to_json(), separators=(",", ":")), p.last_seen)
                for a in self.dirty if (p := profiles.get(a)) is not None]
        self.dirty.clear()
        return rows


class LearningMode:
    """An installation's first `days`: critical account decisions are held as warnings (alerts only).

    Off until `start()` is given the installation's first observation (the daemon and `sipwatch learn`
    do, from the store); a plain `scan` has no installation and judges as one past its learning days.
    """

    def __init__(self, days: int) -> None:
        self.seconds = days * DAY
        self.since: float | None = None

    def start(self, since: float) -> None:
        self.since = since

    @property
    def until(self) -> float | None:
        return None if self.since is None or not self.seconds else self.since + self.seconds

    def holds(self, decision: Decision) -> bool:
        """Downgrade a critical account decision made during the learning days; True when it did."""
        until = self.until
        if until is None or decision.rule is None or decision.level != "critical" or decision.time >= until:
            return False
        decision.level = "warning"
        when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        decision.reason += f"; learning mode until {when}: critical held as an alert, no action"
        return True
