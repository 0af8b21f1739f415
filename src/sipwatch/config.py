"""Configuration: TOML in, typed settings out, every problem named by file and key.

Defaults come from the field (see README, "Detection defaults"): the brute-force window follows OSSEC
(6 in 5 min), enumeration follows CrowdSec's user_enum (5 distinct accounts), prefix walking
follows NEMEA (10 prefixes in 10 s).
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sipwatch.timeparse import named_zones

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(Exception):
    """A configuration problem, phrased as `file: key: problem`."""


def duration(value: object, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like '10m', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m[1]) * _UNITS[m[2]]
    raise ConfigError(f"{key}: expected a duration like '90s', '10m', '1h' or '2d', got {value!r}")


Duration = float  # marker type: given as a number of seconds or a string like "10m"
Threshold = tuple[float, float]  # marker type: [warning, critical]; 0 turns a level off
Count = int  # marker type: a whole number of at least 0 (0 = off)


def threshold(value: object, key: str) -> Threshold:
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)):
        warning, critical = float(value[0]), float(value[1])
        if not (warning and critical and warning > critical):
            return warning, critical
        raise ConfigError(f"{key}: the warning level {value[0]} is above the critical level {value[1]}")
    raise ConfigError(f"{key}: expected [warning, critical], two numbers of at least 0 (0 = off), got {value!r}")


@dataclass
class BruteForce:
    """`[detectors.brute_force]`: failed authentications per address in a window."""

    enabled: bool = True
    attempts: int = 6
    window: Duration = 300.0


@dataclass
class Enumeration:
    """`[detectors.enumeration]`: distinct accounts one address tries in a window."""

    enabled: bool = True
    accounts: int = 5
    window: Duration = 600.0


@dataclass
class RejectedCalls:
    """`[detectors.rejected_calls]`: calls to unknown extensions, and the INVITE flood, per address."""

    enabled: bool = True
    calls: int = 3  # rejected calls (unknown extension) per address
    window: Duration = 600.0
    flood_calls: int = 30  # any call attempts per address: an INVITE flood
    flood_window: Duration = 60.0


@dataclass
class Scanner:
    """`[detectors.scanner]`: the user agents of known SIP scanners (fingerprints.py)."""

    enabled: bool = True


@dataclass
class TollFraud:
    """`[detectors.toll_fraud]`: calls to international, premium or high-risk numbers; prefix walking."""

    enabled: bool = True
    probes: int = 2  # calls to international/premium/high-risk numbers per address
    window: Duration = 3600.0
    prefix_walk: int = 10  # distinct number prefixes per address (NEMEA: 10 in 10 s)
    prefix_walk_window: Duration = 10.0
    prefix_length: int = 6


@dataclass
class Distributed:
    """`[detectors.distributed]`: one account attacked from many addresses."""

    enabled: bool = True
    addresses: int = 10  # distinct addresses failing on one account
    window: Duration = 3600.0


@dataclass
class StalePassword:
    """`[detectors.stale_password]`: one address failing again and again on one account it owns."""

    enabled: bool = True
    failures: int = 5
    window: Duration = 3600.0


@dataclass
class UnansweredChallenges:
    """`[detectors.unanswered_challenges]`: digest challenges an address never answers."""

    enabled: bool = True
    challenges: int = 20
    window: Duration = 60.0


@dataclass
class Ipv6Rotation:
    """`[detectors.ipv6_rotation]`: an attack spread over the addresses of one IPv6 network."""

    enabled: bool = True
    prefix: int = 64  # the network a subscriber holds (RFC 6177: a /64 at the least)
    attempts: int = 10  # hostile requests from the network in `window` ...
    addresses: int = 3  # ... from at least this many of its addresses
    window: Duration = 300.0


@dataclass
class Detectors:
    """`[detectors]`: each detector's settings, under its own table."""

    brute_force: BruteForce = field(default_factory=BruteForce)
    enumeration: Enumeration = field(default_factory=Enumeration)
    rejected_calls: RejectedCalls = field(default_factory=RejectedCalls)
    scanner: Scanner = field(default_factory=Scanner)
    toll_fraud: TollFraud = field(default_factory=TollFraud)
    distributed: Distributed = field(default_factory=Distributed)
    stale_password: StalePassword = field(default_factory=StalePassword)
    unanswered_challenges: UnansweredChallenges = field(default_factory=UnansweredChallenges)
    ipv6_rotation: Ipv6Rotation = field(default_factory=Ipv6Rotation)


@dataclass
class Policy:
    """`[policy]`: what may be banned, and for how long."""

    ban_strong: Duration = 3600.0  # the source completed a round trip
    ban_weak: Duration = 600.0  # a single UDP packet could have been spoofed
    allowlist: list[str] = field(default_factory=list)  # networks and host names never banned (trunks, offices)
    allow_loopback: bool = False  # tests only: let loopback addresses be banned
    #: an address that logged in (a digest round trip) is not banned on one-packet UDP evidence, which anyone
    #: can send in its name to lock a phone out: an alert instead (strong evidence still bans)
    spare_logged_in: bool = True
    storm_bans: int = 200  # this many bans within storm_window: hold further bans and alert (a forged flood?)
    storm_window: Duration = 10.0


@dataclass
class Numbers:
    """`[numbers]`: how the PBX's users dial, to classify the numbers they dial."""

    country: str = ""  # ISO 3166 code of the PBX, e.g. "DE"; "" = read every number as international
    national_prefix: str = ""  # trunk prefix of national numbers, e.g. "0"; "" = the country's (phonenumbers)
    international_prefixes: list[str] = field(default_factory=lambda: ["00", "011", "810", "+"])
    access_codes: list[str] = field(default_factory=lambda: ["9", "0"])  # outside-line digits
    high_risk_extra: list[str] = field(default_factory=list)  # more E.164 prefixes, e.g. "+882"
    internal_digits: int = 6  # dialled numbers of at most this many digits are the PBX's own extensions

    def settings(self) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, int]:
        """The arguments of the pipeline's `NumberClassifier` (`numbers.Settings`), as its parse workers get them."""
        return (self.country, tuple(self.international_prefixes), tuple(self.access_codes),
                tuple(self.high_risk_extra), self.national_prefix, self.internal_digits)


@dataclass
class Limits:
    """Per-account thresholds as [warning, critical] (0 = off); defaults from the field (README)."""

    calls_per_minute: Threshold = (5.0, 10.0)  # outside calls started within any 60 s
    concurrent: Threshold = (3.0, 6.0)  # outside calls open at once
    calls_per_window: Threshold = (30.0, 60.0)  # outside calls per `accounts.window` (2talk: 50/h)
    minutes_per_window: Threshold = (120.0, 240.0)  # talk minutes of outside calls per window
    sequential: Threshold = (10.0, 20.0)  # consecutive outside calls to one number (or prefix)
    long_call_minutes: Threshold = (20.0, 60.0)  # one call to a high-risk destination
    spend_per_day: Threshold = (0.0, 0.0)  # estimated spend per account and day (needs `accounts.rates`)


@dataclass
class Overrides:
    """Thresholds that replace the account limits where given."""

    calls_per_minute: Threshold | None = None
    concurrent: Threshold | None = None
    calls_per_window: Threshold | None = None
    minutes_per_window: Threshold | None = None
    sequential: Threshold | None = None
    long_call_minutes: Threshold | None = None
    spend_per_day: Threshold | None = None


@dataclass
class Profile(Overrides):
    """A time profile: when it applies (local time of the call's start) and its own thresholds."""

    hours: str = ""  # "18:00-08:00" (may cross midnight); "" = all day
    days: list[str] = field(default_factory=list)  # "sat", "sun", "mon-fri"; [] = every day
    dates: list[str] = field(default_factory=list)  # holidays: "12-25" (every year) or "2024-12-24"


@dataclass
class AccountRule(Overrides):
    """One account's own destination lists and thresholds."""

    allow: list[str] = field(default_factory=list)  # only these: E.164 prefixes, countries (ISO), number types
    deny: list[str] = field(default_factory=list)  # never these (a call to one is critical)


@dataclass
class Accounts:
    """The per-account call rules (detector `account_rules`)."""

    enabled: bool = True
    window: Duration = 3600.0  # for calls_per_window and minutes_per_window
    realert: Duration = 600.0  # the same rule and level on one account at most once per this, unless it grows
    sequential_prefix: int = 20  # digits of the E.164 number that "the same number" compares (fewer: a prefix)
    exclude: list[str] = field(default_factory=list)  # accounts that are trunks or gateways, not phones
    rates: str = ""  # CSV file: prefix,price per minute (E.164 prefixes, longest wins)
    currency: str = ""
    limits: Limits = field(default_factory=Limits)
    profiles: dict[str, Profile] = field(default_factory=dict)  # tried in order; the first that applies wins
    account: dict[str, AccountRule] = field(default_factory=dict)


@dataclass
class Behaviour:
    """Learned behaviour per account (detector `behaviour`) and the learning mode; defaults in the README."""

    enabled: bool = True
    learning_days: Count = 7  # a new installation's first days: every account decision is an alert only
    min_days: Count = 7  # observed days of an account before it is judged against its profile
    min_calls: Count = 20  # learned outside calls before its destinations, hours and volume are judged
    ipv4_prefix: int = 24  # an IPv4 source address belongs to its /24 network...
    ipv6_prefix: int = 48  # ...an IPv6 one to its /48
    new_countries: Threshold = (2.0, 4.0)  # countries never called before, within new_countries_window
    new_countries_window: Duration = 3600.0
    unusual_hour_percent: Count = 2  # an outside call in an hour (±1) holding less than this % of its calls
    volume_factor: Threshold = (3.0, 10.0)  # today's calls to unusual destinations ÷ its daily baseline
    volume_min_calls: Count = 10  # ...and at least this many such calls (0 = calls never judged)
    volume_min_minutes: Count = 60  # ...or talk minutes to them, against the baseline of minutes
    baseline_days: int = 14  # span of the daily baseline (an exponentially weighted average)
    realert: Duration = 3600.0  # the same rule and level on one account at most once per this
    max_accounts: int = 100_000


@dataclass
class Run:
    """`[run]`: the daemon: what it watches, its firewall backend, its store."""

    watch: list[str] = field(default_factory=list)  # log files and globs, e.g. "/var/log/asterisk/messages*"
    backend: str = "nftables"  # nftables | ipset (ipset + iptables) | dry-run
    state_dir: str = "/var/lib/sipwatch"
    read_existing: bool = False  # on the very first start, read what the files already hold
    all_ports: bool = False  # drop every packet of a banned address, not only SIP's
    ports: list[str] = field(default_factory=lambda: ["5060", "5061"])
    poll: Duration = 1.0  # fallback wake-up when inotify is not available or misses an event
    json_log: str = ""  # a file that gets one JSON object per decision (for a SIEM); "" = none
    keep_events: int = 1_000_000  # retention: the store keeps the newest this many events
    escalation: float = 4.0  # each repeat ban lasts this many times longer...
    max_ban: Duration = 7 * 86400.0  # ...up to this


#: What a critical account decision may set off (responders/accounts.py)
PBX_ACTIONS = ("hangup", "block", "ban")


@dataclass
class Pbx:
    """Acting on the PBX when an account rule is critical (toll fraud in progress)."""

    ami: str = ""  # ami://USER:SECRET@127.0.0.1:5038, a manager user with write = system,call; "" = none
    actions: list[str] = field(default_factory=lambda: list(PBX_ACTIONS))  # hang up, block the account, ban


@dataclass
class Alerts:
    """`[alerts]`: where decisions are sent (apprise URLs), and which."""

    urls: list[str] = field(default_factory=list)  # apprise URLs: mailto://, slack://, tgram://, json://, ...
    on: list[str] = field(default_factory=lambda: ["ban", "alert"])  # which decisions are sent
    dedupe: Duration = 600.0  # the same decision about the same address once per this period
    max_per_hour: int = 30


@dataclass
class Config:
    """The whole configuration (a TOML file; every table and key optional)."""

    detectors: Detectors = field(default_factory=Detectors)
    policy: Policy = field(default_factory=Policy)
    numbers: Numbers = field(default_factory=Numbers)
    accounts: Accounts = field(default_factory=Accounts)
    behaviour: Behaviour = field(default_factory=Behaviour)
    run: Run = field(default_factory=Run)
    pbx: Pbx = field(default_factory=Pbx)
    alerts: Alerts = field(default_factory=Alerts)
    timezone: str = ""  # IANA zone of the logs' wall-clock times; "" = this machine's
    cdr_timezone: str = "UTC"  # zone of CDR/CEL times: cdr.conf.sample sets usegmtime=yes; "" = as `timezone`

    @property
    def calls(self) -> bool:
        """Whether call activity is read at all: only the account rules and the learned behaviour use it
        (with both off, the call lines of a `full` log are skipped in C like any benign line)."""
        return self.accounts.enabled or self.behaviour.enabled


def zone(name: str, key: str) -> tzinfo | None:
    """The IANA zone `name` (None for ""), or a ConfigError naming `key`."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: unknown time zone {name!r}") from None


def zones(config: Config) -> tuple[tzinfo | None, tzinfo | None]:
    """The zones of log times and of CDR/CEL times (None: this machine's), or a ConfigError naming the key of
    a zone that does not exist."""
    zone(config.timezone, "timezone")
    zone(config.cdr_timezone, "cdr_timezone")
    return named_zones(config.timezone, config.cdr_timezone)


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    import tomllib  # (here: a scan with the default settings starts ~6 ms sooner without it)

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def from_dict(data: dict[str, Any]) -> Config:
    config: Config = _build(Config, data, "")
    for action in config.alerts.on:
        if action not in ("ban", "alert", "watch"):
            raise ConfigError(f"alerts.on: {action!r} is not one of ban, alert, watch")
    if config.run.backend not in ("nftables", "ipset", "dry-run"):
        raise ConfigError(f"run.backend: unknown backend {config.run.backend!r} (nftables, ipset, dry-run)")
    for action in config.pbx.actions:
        if action not in PBX_ACTIONS:
            raise ConfigError(f"pbx.actions: {action!r} is not one of {', '.join(PBX_ACTIONS)}")
    if config.pbx.ami and not config.pbx.ami.startswith("ami://"):
        raise ConfigError("pbx.ami: expected ami://USER:SECRET@HOST[:PORT]")
    for port in config.run.ports:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"run.ports: {port!r} is not a port number")
    zones(config)
    _check_numbers(config.numbers)
    _check_accounts(config.accounts)
    _check_behaviour(config.behaviour)
    if not 32 <= config.detectors.ipv6_rotation.prefix <= 127:
        raise ConfigError("detectors.ipv6_rotation.prefix: expected a network length from 32 to 127 bits, got "
                          f"{config.detectors.ipv6_rotation.prefix!r}")
    for net in config.policy.allowlist:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            if not _HOSTNAME.match(net):
                raise ConfigError(f"policy.allowlist: {net!r} is not an address, network or host name") from None
    return config


def _check_numbers(numbers: Numbers) -> None:
    import phonenumbers  # (here, not at the top: ~25 ms, and only a configured country needs it)

    if numbers.country and not phonenumbers.country_code_for_region(numbers.country.upper()):
        raise ConfigError(f"numbers.country: {numbers.country!r} is not an ISO 3166 country code (e.g. \"DE\")")
    for key in ("national_prefix", "international_prefixes", "access_codes"):
        value = getattr(numbers, key)
        for item in [value] if isinstance(value, str) else value:
            if item and not (item == "+" or item.isdigit()):
                raise ConfigError(f"numbers.{key}: {item!r} is not a dialling prefix (digits, or '+')")
    for item in numbers.high_risk_extra:
        if not (item.startswith("+") and item[1:].isdigit()):
            raise ConfigError(f"numbers.high_risk_extra: {item!r} is not an E.164 prefix like '+882'")


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_DATE = re.compile(r"^(?:(\d{4})-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def parse_hours(text: str, key: str = "hours") -> tuple[int, int] | None:
    """`HH:MM-HH:MM` as (start, end) minutes of the day; None for "" (all day)."""
    if not text:
        return None
    m = _HOURS.match(text.strip())
    if m is None:
        raise ConfigError(f"{key}: expected a time range like '18:00-08:00', got {text!r}")
    return int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])


def parse_days(items: list[str], key: str = "days") -> frozenset[int]:
    """Weekday names and ranges (`sat`, `mon-fri`) as Python weekday numbers (Monday = 0)."""
    found: set[int] = set()
    for item in items:
        first, _, last = item.strip().lower().partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ConfigError(f"{key}: {item!r} is not a weekday or range (mon, tue, ..., sun; mon-fri)")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


def parse_dates(items: list[str], key: str = "dates") -> frozenset[str]:
    """Holidays as `MM-DD` (every year) or `YYYY-MM-DD`."""
    for item in items:
        if not _DATE.match(item):
            raise ConfigError(f"{key}: {item!r} is not a date like '12-25' or '2024-12-24'")
    return frozenset(items)


def load_rates(path: str) -> dict[str, float]:
    """The rate table: `prefix,price per minute` per line (an optional header line; `#` comments)."""
    rates: dict[str, float] = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].lstrip().startswith("#"):
                    continue
                prefix = row[0].strip().replace(" ", "")
                try:
                    price = float(row[1]) if len(row) >= 2 else -1.0
                except ValueError:
                    if n == 1:
                        continue  # a header line
                    price = -1.0
                digits = prefix.lstrip("+")
                if not digits.isdigit() or price < 0:
                    raise ConfigError(f"accounts.rates: {path}:{n}: expected 'prefix,price per minute', got {row!r}")
                rates["+" + digits] = price
    except OSError as exc:
        raise ConfigError(f"accounts.rates: cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"accounts.rates: {path}: not a CSV text file: {exc}") from None
    return rates


def _check_accounts(accounts: Accounts) -> None:
    for name, profile in accounts.profiles.items():
        key = f"accounts.profiles.{name}"
        parse_hours(profile.hours, key + ".hours")
        parse_days(profile.days, key + ".days")
        parse_dates(profile.dates, key + ".dates")
    for name, rule in accounts.account.items():
        for list_name in ("allow", "deny"):
            for item in getattr(rule, list_name):
                if not ((item.startswith("+") and item[1:].isdigit()) or re.fullmatch(r"[A-Z]{2}|[a-z_]+", item)):
                    raise ConfigError(f"accounts.account.{name}.{list_name}: {item!r} is not an E.164 prefix "
                                      "('+44'), a country code ('GB') or a number type ('premium_rate')")
    if accounts.rates:
        load_rates(accounts.rates)


def _check_behaviour(behaviour: Behaviour) -> None:
    for key, most in (("ipv4_prefix", 32), ("ipv6_prefix", 128), ("unusual_hour_percent", 100)):
        if getattr(behaviour, key) > most:
            raise ConfigError(f"behaviour.{key}: expected at most {most}, got {getattr(behaviour, key)!r}")


def _build(cls: type, data: object, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'top level'}: expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        key = prefix + f.name
        value = data[f.name]
        hint = hints[f.name]
        if is_dataclass(hint):
            values[f.name] = _build(hint, value, key + ".")  # type: ignore[arg-type]
        elif get_origin(hint) is dict:  # a table of named tables: [accounts.profiles.night]
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of tables")
            values[f.name] = {name: _build(get_args(hint)[1], item, f"{key}.{name}.") for name, item in value.items()}
        elif f.type == "Duration":
            values[f.name] = duration(value, key)
        elif f.type in ("Threshold", "Threshold | None"):
            values[f.name] = threshold(value, key)
        elif f.type == "Count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key}: expected a whole number of at least 0 (0 = off), got {value!r}")
            values[f.name] = value

        else:
            values[f.name] = _check(hint, value, key)
    return cls(**values)


def _check(hint: object, value: object, key: str) -> object:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}: expected a whole number of at least 1, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            raise ConfigError(f"{key}: expected a number of at least 1, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    return value
