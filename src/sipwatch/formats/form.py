"""One row of a format table: a message a server writes, and how to read it safely.

A `Form` knows its literal `marker` (what the C-speed prefilter looks for), the regex of the whole
message, which event kind it means, the shape of its address, and where the attacker's text is:

* `trusted="tail"`: everything after the address is written by the server (e.g. chan_sip's
  `' failed for '<ip>' - Wrong password`), so the regex anchors at the end and a greedy attacker
  field before the address can never push the match onto a forged address;
* `trusted="head"`: everything before the address is the server's (e.g. `Host <ip> failed MD5...`);
* `trusted="none"`: attacker text on both sides (PJSIP's From before and Call-ID after).

When the `separator` that precedes the address occurs more than once, the record is forged. Then
sipwatch emits one `injection` event: with the address only if the trusted side proves which one is
real, otherwise with none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from sipwatch.event import CALL_KINDS, Call, Evidence, IPAddress, Kind, Service
from sipwatch.fingerprints import scanner_name
from sipwatch.netaddr import Shape, parse_address

#: Any address shape as written in a log: IPv4, IPv6, bracketed, with a port. Validated afterwards.
ADDR = r"[0-9A-Fa-f:.\[\]]{2,64}"

Side = Literal["head", "tail", "none"]
_TLS_LIKE = frozenset({"TCP", "TLS", "WS", "WSS", "SCTP"})


@dataclass(slots=True)
class Parsed:
    """What a reader took from one message; the parser adds time, origin and raw text."""

    form: str
    kind: Kind
    service: Service
    ip: IPAddress | None = None
    port: int | None = None
    transport: str | None = None
    account: str | None = None
    target: str | None = None
    user_agent: str | None = None
    evidence: Evidence = Evidence.WEAK
    session: str | None = None
    reason: str = ""
    time_text: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    call: Call | None = None
    record_time: bool = False  # time_text is a CDR/CEL time (their own zone setting), not a log prefix's


@lru_cache(maxsize=16384)
def uri_user(text: str | None) -> str | None:
    """The user part of the first SIP URI in a header value, else the value itself."""
    if not text:
        return text
    start = text.find("sip:")
    if start < 0:
        start = text.find("sips:")
        if start < 0:
            return text
        start += 1
    start += 4
    end = text.find("@", start)
    if end < 0:
        return None
    return text[start:end]


#: Channel technology (`PJSIP/6001-00000001`) -> service
CHANNEL_SERVICES = {"PJSIP": Service.PJSIP, "SIP": Service.SIP, "IAX2": Service.IAX2}


def channel_account(channel: str | None) -> tuple[Service, str | None]:
    """The service and the endpoint (account) of a channel name, both written by the server:
    `PJSIP/6001-00000001` -> (PJSIP, "6001"). Local and other channels name no account."""
    if not channel:
        return Service.DIALPLAN, None
    tech, _, rest = channel.partition("/")
    service = CHANNEL_SERVICES.get(tech)
    if service is None or not rest:
        return Service.DIALPLAN, None
    endpoint, dash, _ = rest.rpartition("-")
    return service, (endpoint if dash and endpoint else rest)


def evidence_for(transport: str | None, default: Evidence) -> Evidence:
    return Evidence.STRONG if transport in _TLS_LIKE else default


#: a named group in a pattern: `(?P<name>`
_GROUP_NAME = re.compile(r"\(\?P<(\w+)>")


@dataclass(frozen=True, slots=True)
class Form:
    """One message form of a server's log: a row of a format table."""

    id: str
    server: str
    service: Service
    marker: str | tuple[str, ...]
    pattern: str
    kind: Kind | None = None
    kinds: Mapping[str, Kind] = field(default_factory=dict)  # reason text -> kind
    shape: Shape = Shape.OPTPORT
    separator: str | None = None
    trusted: Side = "tail"
    evidence: Evidence = Evidence.WEAK
    strong_reasons: frozenset[str] = frozenset()
    files: tuple[str, ...] = ()  # source files (prefix field) allowed to write it; () = any
    address_trusted: bool = True  # False: the address comes from a header; never blamed
    port_zero_untrusted: bool = False  # res_pjsip_acl prints `contact:0` for an address taken from Contact
    multiline: str | None = None  # literal that ends the record when an attacker field holds newlines...
    openers: tuple[str, ...] = ()  # ...and the literals that begin it (the reassembly is driven by these)
    prefixless: bool = False  # the line has no server prefix (e.g. mod_fail2ban's own file)
    search: bool = False  # the message may start with caller text (dialplan Ext. prefix): search the tail
    transport: str | None = None
    service_of: Callable[[re.Match[str]], Service] | None = None
    _regex: re.Pattern[str] | None = field(init=False, default=None, repr=False, compare=False)
    _addr_groups: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _account_groups: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = frozenset(_GROUP_NAME.findall(self.pattern))
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_addr_groups", tuple(g for g in ("addr", "addr2", "addr3", "addr4") if g in names))
        object.__setattr__(self, "_account_groups", tuple(g for g in ("account", "account3", "account4", "from")
                                                          if g in names))

    @property
    def regex(self) -> re.Pattern[str]:
        """The whole message's regex, compiled when first used: a parallel scan's main process never matches
        a message (its workers do, and the C fast lane matches most records with PCRE2), and compiling every
        form's regex took ~20 ms of each command's start."""
        regex = self._regex
        if regex is None:
            body = self.pattern if self.search else "^(?:" + self.pattern + ")"
            regex = re.compile(body + r"\s*$", re.DOTALL)
            object.__setattr__(self, "_regex", regex)
        return regex

    @property
    def markers(self) -> tuple[str, ...]:
        return (self.marker,) if isinstance(self.marker, str) else self.marker

    def match(self, message: str) -> re.Match[str] | None:
        return self.regex.search(message) if self.search else self.regex.match(message)

    def kind_for(self, reason: str | None) -> Kind | None:
        if reason is not None and reason in self.kinds:
            return self.kinds[reason]
        return self.kind

    def allows_file(self, file: str | None) -> bool:
        if not self.files or file is None:
            return True
        return any(file == f or file.endswith("/" + f) for f in self.files) or (
            "Ext." in self.files and file.startswith("Ext. ")
        )

    def read(self, message: str) -> Parsed | None:
        """Parse `message`; None when it is not this form. Attack lines repeat (a cracker's every
        guess writes the same text), so results are cached by message; a `Parsed` is read-only."""
        cache = _CACHE.get(self.id)
        if cache is None:
            cache = _CACHE[self.id] = {}
        found = cache.get(message, _MISS)
        if found is not _MISS:
            return found  # type: ignore[return-value]
        parsed = self._read(message)
        if len(cache) >= 4096:
            cache.clear()
        cache[message] = parsed
        return parsed

    def _read(self, message: str) -> Parsed | None:
        m = self.match(message)
        return None if m is None else self.build(m, message)

    @property
    def fast_pattern(self) -> str | None:
        """The message regex to combine with a line prefix into one match (None: no fast lane). A form that
        searches its message matches at the first place it can (a lazy `.*?` before it does what `search`
        does)."""
        if self.prefixless:
            return None
        return "(?:.*?)(?:" + self.pattern + ")" if self.search else self.pattern

    def build(self, m: re.Match[str], message: str) -> Parsed | None:
        """The `Parsed` for a match of this form's groups over `message` (alone or with a prefix)."""
        names = self._names
        reason = m["reason"] if "reason" in names else None
        kind = self.kind_for(reason)
        if kind is None:
            return None
        parsed = Parsed(self.id, kind, self.service if self.service_of is None else self.service_of(m),
                        reason=reason or "")
        if kind in CALL_KINDS and "channel" in names:
            channel = m["channel"]
            parsed.service, parsed.account = channel_account(channel)
            parsed.call = Call(channel=channel, context=m["context"] if "context" in names else None,
                               disposition=reason or None)
        for g in self._account_groups:
            value = m[g]
            if value is not None:
                parsed.account = uri_user(value)
                break
        if "target" in names:
            parsed.target = m["target"]
        if "callid" in names:
            parsed.session = m["callid"]
        if "at" in names:
            parsed.time_text = m["at"]
        if "ua" in names:
            parsed.user_agent = m["ua"]
        if "contact" in names:  # a registration's Contact URI: the phone's own words, a hint only
            parsed.extra = {"contact": m["contact"]}
        if "from" in names:  # a scanning tool that names itself in From (svmap's "sipvicious"): a hint only
            tool = scanner_name(m["from"])
            if tool is not None and parsed.kind in (Kind.UNKNOWN_ACCOUNT, Kind.ACL_DENIED):
                parsed.extra = {"tool": tool, "was": str(parsed.kind)}
                parsed.kind = Kind.SCANNER
                parsed.reason = f"{tool} ({reason})" if reason else tool
        addr_text = None
        for g in self._addr_groups:
            addr_text = m[g]
            if addr_text is not None:
                break
        if addr_text is None or not self.address_trusted:
            if addr_text is not None:
                parsed.extra["untrusted_address"] = addr_text
            if self.separator is not None and message.count(self.separator) > 1:
                parsed.call = parsed.account = None  # which channel is the server's cannot be told
                return injection(parsed, False, f"{self.separator!r} occurs more than once")
            return parsed
        address = parse_address(addr_text, self.shape)
        if address is None:
            return None
        parsed.ip, parsed.port, transport = address
        if self.port_zero_untrusted and parsed.port == 0:
            parsed.extra = {"untrusted_address": addr_text}
            parsed.ip = parsed.port = None
            return parsed
        parsed.transport = transport or self.transport
        default = Evidence.STRONG if reason in self.strong_reasons else self.evidence
        parsed.evidence = evidence_for(parsed.transport, default)
        if self.separator is not None and message.count(self.separator) > 1:
            return injection(parsed, self.trusted != "none", f"{self.separator!r} occurs more than once")
        if "\n" in message:
            return injection(parsed, self.trusted != "none", "caller text holds a line break")
        return parsed


_MISS = object()
_CACHE: dict[str, dict[str, Parsed | None]] = {}


def injection(parsed: Parsed, provable: bool, why: str) -> Parsed:
    """Turn a forged record into an `injection` event; keep the address only if it is provable."""
    parsed.extra["forged_kind"] = str(parsed.kind)
    parsed.kind = Kind.INJECTION
    parsed.reason = why
    if not provable:
        parsed.ip = parsed.port = None
    return parsed


class PrefixlessReader:
    """The reader protocol's fixed parts for structured records without a log prefix (CDR and CEL rows,
    the AMI source's JSON lines): subclasses give `id`, `markers` and `read()`."""

    id: str
    markers: tuple[str, ...]
    server = "asterisk"
    files: tuple[str, ...] = ()
    multiline: str | None = None
    openers: tuple[str, ...] = ()
    prefixless = True
    fast_pattern: str | None = None

    def allows_file(self, file: str | None) -> bool:
        return True

    def build(self, m: re.Match[str], message: str) -> Parsed | None:
        return None
