"""Asterisk security events: res_security_log lines and (later) AMI security events.

`SecurityEvent="<Name>",<Key>="<value>",...` with values written unescaped: AccountID, SessionID (the
PJSIP Call-ID), Challenge/Response and RequestType may hold any text the caller chose, quotes and
commas included. The head (event name, EventTV, Severity, Service, EventVersion) and LocalAddress /
RemoteAddress are the server's own. So the source is the value of `RemoteAddress` when it occurs once;
when it occurs more than once the record is forged, and the real one is provable only if every field
after the last `RemoteAddress` is one the server writes itself (Module, SessionTV, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipwatch.event import Evidence, Kind, Service
from sipwatch.formats.form import Parsed, evidence_for, injection
from sipwatch.netaddr import Shape, parse_address

K = Kind

#: SecurityEvent name -> kind (res/res_security_log.c event types, Asterisk 1.8 to 22)
EVENT_KINDS: dict[str, Kind] = {
    "FailedACL": K.ACL_DENIED,
    "InvalidAccountID": K.UNKNOWN_ACCOUNT,
    "SessionLimit": K.FLOOD,
    "MemoryLimit": K.FLOOD,
    "LoadAverageLimit": K.FLOOD,
    "RequestNotSupported": K.MALFORMED,
    "RequestNotAllowed": K.SCANNER,
    "AuthMethodNotAllowed": K.ACL_DENIED,
    "RequestBadFormat": K.MALFORMED,
    "SuccessfulAuth": K.AUTH_SUCCESS,
    "UnexpectedAddress": K.ACL_DENIED,
    "ChallengeResponseFailed": K.AUTH_FAILURE,
    "InvalidPassword": K.AUTH_FAILURE,
    "ChallengeSent": K.AUTH_CHALLENGE,
    "InvalidTransport": K.ACL_DENIED,
}

#: RequestType values that mean "no such account" rather than a malformed request
UNKNOWN_ACCOUNT_REQUESTS = frozenset({"registrar_requested_aor_not_found"})

#: Fields the server writes itself after RemoteAddress, per event (anything else there may be forged)
SERVER_TAIL_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset({"Module", "SessionTV", "ACLName", "UsingPassword", "ExpectedAddress", "AttemptedTransport"})
    for name in EVENT_KINDS
}
SERVER_TAIL_FIELDS["ChallengeSent"] = SERVER_TAIL_FIELDS["ChallengeSent"] | {"Challenge"}

SERVICES = {"SIP": Service.SIP, "PJSIP": Service.PJSIP, "AMI": Service.AMI, "IAX2": Service.IAX2}

#: Events whose tail the reader inspects by name (RequestType, ACLName): the native fast lane leaves them
#: to this module
CAREFUL_NAMES = frozenset({"RequestNotSupported", "RequestBadFormat", "FailedACL"})

_HEAD = re.compile(
    r'SecurityEvent="(?P<name>\w+)",EventTV="(?P<tv>[^"]*)",Severity="(?P<severity>\w*)",'
    r'Service="(?P<service>\w*)",EventVersion="(?P<version>\d*)"'
)
#: The common case in one match: AccountID and SessionID without quotes, one RemoteAddress.
_PLAIN = re.compile(
    r'SecurityEvent="(?P<name>\w+)",EventTV="(?P<tv>[^"]*)",Severity="\w*",Service="(?P<service>\w*)",'
    r'EventVersion="\d*",AccountID="(?P<account>[^"\n]*)",SessionID="(?P<session>[^"\n]*)",'
    r'LocalAddress="[^"\n]*",RemoteAddress="(?P<remote>[^"\n]*)"(?P<tail>[^\n]*)$'
)
_TAIL_FIELD = re.compile(r',(\w+)="([\w./:+\- ]*)"')
_REMOTE = ',RemoteAddress="'


@dataclass(frozen=True, slots=True)
class SecurityReader:
    """The reader row for `SecurityEvent=` lines (see formats/README.md for the reader protocol)."""

    id: str = "asterisk.security"
    server: str = "asterisk"
    markers: tuple[str, ...] = ("SecurityEvent=",)
    files: tuple[str, ...] = ("res_security_log.c",)
    multiline: str | None = "RemoteAddress="
    openers: tuple[str, ...] = ("SecurityEvent=",)
    prefixless: bool = False

    def allows_file(self, file: str | None) -> bool:
        return file is None or file.endswith("res_security_log.c")

    def read(self, message: str) -> Parsed | None:
        m = _PLAIN.match(message)
        if m is not None and "RemoteAddress=" not in m["tail"]:
            return self._plain(m, message)
        return self._careful(message)

    @property
    def fast_pattern(self) -> str:
        return _PLAIN.pattern.removesuffix("$")

    def build(self, m: re.Match[str], message: str) -> Parsed | None:
        """Fast lane: only the plain case; anything unusual goes the careful way."""
        if "RemoteAddress=" in m["tail"]:
            return None
        return self._plain(m, message)

    def _plain(self, m: re.Match[str], message: str) -> Parsed | None:
        name = m["name"]
        kind = EVENT_KINDS.get(name)
        address = parse_address(m["remote"], Shape.TUPLE)
        if kind is None or address is None:
            return None
        service = SERVICES.get(m["service"], Service.SIP)
        parsed = Parsed(self.id, kind, service, address[0], address[1], address[2], account=m["account"],
                        session=m["session"], reason=name)
        tail = m["tail"]
        extra = {"event_tv": m["tv"]}
        if tail:
            self._tail_fields(name, tail, message, parsed, extra)
        parsed.extra = extra
        parsed.evidence = self._evidence(name, service, tail, extra, parsed.transport)
        return parsed

    @staticmethod
    def _tail_fields(name: str, tail: str, message: str, parsed: Parsed, extra: dict[str, str]) -> None:
        challenge = _value_after(tail, ',Challenge="')
        if challenge is not None:
            extra["Challenge"] = challenge
        if name in ("RequestNotSupported", "RequestBadFormat"):
            request_type = _between(message, ',RequestType="', '"')
            if request_type in UNKNOWN_ACCOUNT_REQUESTS:
                parsed.kind = K.UNKNOWN_ACCOUNT
        elif name == "FailedACL":
            acl = _value_after(tail, ',ACLName="')
            if acl is not None:
                extra["ACLName"] = acl

    @staticmethod
    def _evidence(name: str, service: Service, tail: str, extra: dict[str, str], transport: str | None) -> Evidence:
        default = Evidence.WEAK
        if service is Service.AMI:
            default = Evidence.STRONG
        elif name == "InvalidPassword":
            received = _value_after(tail, ',ReceivedChallenge="')
            if received and received == extra.get("Challenge"):
                default = Evidence.STRONG  # the client echoed the nonce we sent it: a round trip
        return evidence_for(transport, default)

    def _careful(self, message: str) -> Parsed | None:
        """Any record, including those whose caller-written fields hold quotes or line breaks."""
        head = _HEAD.match(message)
        if head is None:
            return None
        name = head["name"]
        kind = EVENT_KINDS.get(name)
        if kind is None:
            return None
        start = message.rfind(_REMOTE)
        if start < 0:
            return None
        start += len(_REMOTE)
        end = message.find('"', start)
        if end < 0:
            return None
        address = parse_address(message[start:end], Shape.TUPLE)
        if address is None:
            return None
        service = SERVICES.get(head["service"], Service.SIP)
        parsed = Parsed(self.id, kind, service, address[0], address[1], address[2], reason=name)
        parsed.account = _between(message, ',AccountID="', '",SessionID="')
        parsed.session = _between(message, ',SessionID="', '",LocalAddress="', last=True)
        tail = message[end + 1 :]
        extra = {"event_tv": head["tv"]}
        if "," in tail:
            self._tail_fields(name, tail, message, parsed, extra)
        parsed.extra = extra
        parsed.evidence = self._evidence(name, service, tail, extra, parsed.transport)
        if message.count("RemoteAddress=") > 1:
            return injection(parsed, _server_tail(name, tail.rstrip()), "RemoteAddress occurs more than once")
        if "\n" in message:
            return injection(parsed, _server_tail(name, tail.rstrip()), "a field holds a line break")
        return parsed


def _server_tail(name: str, tail: str) -> bool:
    """True when the text after the last RemoteAddress holds only fields the server writes."""
    allowed = SERVER_TAIL_FIELDS.get(name, frozenset())
    pos = 0
    for m in _TAIL_FIELD.finditer(tail):
        if m.start() != pos or m[1] not in allowed:
            return False
        pos = m.end()
    return pos == len(tail)


def _between(text: str, left: str, right: str, last: bool = False) -> str | None:
    start = text.find(left)
    if start < 0:
        return None
    start += len(left)
    end = text.rfind(right, start) if last else text.find(right, start)
    return text[start:end] if end >= 0 else None


def _value_after(text: str, key: str) -> str | None:
    start = text.find(key)
    if start < 0:
        return None
    start += len(key)
    end = text.find('"', start)
    return text[start:end] if end >= 0 else None


READERS = (SecurityReader(),)
