"""Configuration: TOML in, typed settings out, every problem named by file and key.

Defaults come from the field (see README, "Detection defaults"): the brute-force window follows OSSEC
(6 in 5 min), enumeration follows CrowdSec's user_enum (5 distinct accounts), prefix walking
follows NEMEA (10 prefixes in 10 s).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

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


@dataclass
class BruteForce:
    enabled: bool = True
    attempts: int = 6
    window: Duration = 300.0


@dataclass
class Enumeration:
    enabled: bool = True
    accounts: int = 5
    window: Duration = 600.0


@dataclass
class RejectedCalls:
    enabled: bool = True
    calls: int = 3  # rejected calls (unknown extension) per address
    window: Duration = 600.0
    flood_calls: int = 30  # any call attempts per address: an INVITE flood
    flood_window: Duration = 60.0


@dataclass
class Scanner:
    enabled: bool = True


@dataclass
class TollFraud:
    enabled: bool = True
    probes: int = 2  # calls to international/premium/high-risk numbers per address
    window: Duration = 3600.0
    prefix_walk: int = 10  # distinct number prefixes per address (NEMEA: 10 in 10 s)
    prefix_walk_window: Duration = 10.0
    prefix_length: int = 6


@dataclass
class Distributed:
    enabled: bool = True
    addresses: int = 10  # distinct addresses failing on one account
    window: Duration = 3600.0


@dataclass
class StalePassword:
    enabled: bool = True
    failures: int = 5
    window: Duration = 3600.0


@dataclass
class UnansweredChallenges:
    enabled: bool = True
    challenges: int = 20
    window: Duration = 60.0


@dataclass
class Detectors:
    brute_force: BruteForce = field(default_factory=BruteForce)
    enumeration: Enumeration = field(default_factory=Enumeration)
    rejected_calls: RejectedCalls = field(default_factory=RejectedCalls)
    scanner: Scanner = field(default_factory=Scanner)
    toll_fraud: TollFraud = field(default_factory=TollFraud)
    distributed: Distributed = field(default_factory=Distributed)
    stale_password: StalePassword = field(default_factory=StalePassword)
    unanswered_challenges: UnansweredChallenges = field(default_factory=UnansweredChallenges)


@dataclass
class Policy:
    ban_strong: Duration = 3600.0  # the source completed a round trip
    ban_weak: Duration = 600.0  # a single UDP packet could have been spoofed
    allowlist: list[str] = field(default_factory=list)  # networks and host names never banned (trunks, offices)
    allow_loopback: bool = False  # tests only: let loopback addresses be banned
    storm_bans: int = 200  # this many bans within storm_window: hold further bans and alert (a forged flood?)
    storm_window: Duration = 10.0


@dataclass
class Numbers:
    country: str = ""  # ISO 3166 code of the PBX, e.g. "DE"; "" = read every number as international
    national_prefix: str = ""  # trunk prefix of national numbers, e.g. "0"; "" = the country's (phonenumbers)
    international_prefixes: list[str] = field(default_factory=lambda: ["00", "011", "810", "+"])
    access_codes: list[str] = field(default_factory=lambda: ["9", "0"])  # outside-line digits
    high_risk_extra: list[str] = field(default_factory=list)  # more E.164 prefixes, e.g. "+882"
    internal_digits: int = 6  # dialled numbers of at most this many digits are the PBX's own extensions


@dataclass
class Run:
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


@dataclass
class Alerts:
    urls: list[str] = field(default_factory=list)  # apprise URLs: mailto://, slack://, tgram://, json://, ...
    on: list[str] = field(default_factory=lambda: ["ban", "alert"])  # which decisions are sent
    dedupe: Duration = 600.0  # the same decision about the same address once per this period
    max_per_hour: int = 30


@dataclass
class Config:
    detectors: Detectors = field(default_factory=Detectors)
    policy: Policy = field(default_factory=Policy)
    numbers: Numbers = field(default_factory=Numbers)
    run: Run = field(default_factory=Run)
    alerts: Alerts = field(default_factory=Alerts)
    timezone: str = ""  # IANA zone of the logs' wall-clock times; "" = this machine's
    cdr_timezone: str = "UTC"  # zone of CDR/CEL times: cdr.conf.sample sets usegmtime=yes; "" = as `timezone`


def zone(name: str, key: str) -> tzinfo | None:
    """The IANA zone `name` (None for ""), or a ConfigError naming `key`."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: unknown time zone {name!r}") from None


def zones(config: Config) -> tuple[tzinfo | None, tzinfo | None]:
    """The zones of log times and of CDR/CEL times (None: this machine's)."""
    logs = zone(config.timezone, "timezone")
    records = zone(config.cdr_timezone, "cdr_timezone") if config.cdr_timezone else logs
    return logs, records


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
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
    for port in config.run.ports:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"run.ports: {port!r} is not a port number")
    zones(config)
    _check_numbers(config.numbers)
    for net in config.policy.allowlist:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            if not _HOSTNAME.match(net):
                raise ConfigError(f"policy.allowlist: {net!r} is not an address, network or host name") from None
    return config


def _check_numbers(numbers: Numbers) -> None:
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
        elif f.type == "Duration":
            values[f.name] = duration(value, key)
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
