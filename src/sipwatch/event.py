"""The one record type that flows through sipwatch.

Every source and every parser produces `Event`s; every detector consumes them. Keeping a single,
small, typed record is what lets the offline `scan` and the live daemon share all the logic.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Kind(StrEnum):
    """What happened, in a fixed vocabulary shared by all servers."""

    AUTH_FAILURE = "auth_failure"
    UNKNOWN_ACCOUNT = "unknown_account"
    ACL_DENIED = "acl_denied"
    REJECTED_CALL = "rejected_call"
    SCANNER = "scanner"
    FLOOD = "flood"
    MALFORMED = "malformed"
    AUTH_CHALLENGE = "auth_challenge"
    AUTH_SUCCESS = "auth_success"
    CALL_ATTEMPT = "call_attempt"
    INJECTION = "injection"
    # call activity (not hostile by themselves): the account rules look at these
    REGISTRATION = "registration"
    CALL_START = "call_start"
    CALL_ANSWER = "call_answer"
    CALL_END = "call_end"


#: Kinds that by themselves show hostile intent from their source address.
HOSTILE_KINDS = frozenset(
    {
        Kind.AUTH_FAILURE,
        Kind.UNKNOWN_ACCOUNT,
        Kind.ACL_DENIED,
        Kind.REJECTED_CALL,
        Kind.SCANNER,
        Kind.FLOOD,
        Kind.MALFORMED,
    }
)


#: Kinds of call activity: one call seen through several sources is correlated by its `Call` ids.
CALL_KINDS = frozenset({Kind.CALL_START, Kind.CALL_ANSWER, Kind.CALL_END})


class Service(StrEnum):
    SIP = "SIP"
    PJSIP = "PJSIP"
    IAX2 = "IAX2"
    AMI = "AMI"
    HTTP = "HTTP"
    FREESWITCH = "FreeSWITCH"
    KAMAILIO = "Kamailio"
    OPENSIPS = "OpenSIPS"
    DIALPLAN = "dialplan"


class Evidence(StrEnum):
    """How sure we are that the source address really sent the request.

    strong: the source completed a round trip (answered our digest challenge, or used TCP/TLS);
    weak: a single UDP datagram, whose source address could have been spoofed.
    """

    STRONG = "strong"
    WEAK = "weak"


class Call(NamedTuple):
    """What a call-activity record says about its call; any field may be unknown (None).

    `uniqueid` and `linkedid` are Asterisk's channel and call ids (CDR, CEL, AMI); `channel` is the
    channel name (`PJSIP/6001-00000001`), the only id a log line has. `duration` and `billsec` are
    seconds from the start and from the answer to the end of the call, as the CDR counts them.
    A named tuple: a scan builds hundreds of thousands of them from the parse workers' plain tuples.
    """

    uniqueid: str | None = None
    linkedid: str | None = None
    channel: str | None = None
    peer: str | None = None  # the other party's channel (CDR dstchannel, CEL peer)
    context: str | None = None
    duration: float | None = None
    billsec: float | None = None
    disposition: str | None = None  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION

    def to_tuple(self) -> CallTuple:
        return tuple(self)  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


CallTuple = tuple[str | None, str | None, str | None, str | None, str | None, float | None, float | None, str | None]


@dataclass(slots=True)
class Event:
    """What every source and parser produces: one record of a server's, read."""

    time: float
    kind: Kind
    service: Service
    ip: IPAddress | None = None
    port: int | None = None
    transport: str | None = None
    account: str | None = None
    target: str | None = None
    user_agent: str | None = None
    evidence: Evidence = Evidence.WEAK
    file: str = ""
    line: int = 0
    raw: str = ""
    form: str = ""
    session: str | None = None
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    repeat: bool = False  # another line written for a request already counted
    blocked: bool = False  # arrived while its source was banned (a scan's view of the firewall)
    call: Call | None = None  # call activity: the call's ids and times

    @property
    def hostile(self) -> bool:
        return self.kind in HOSTILE_KINDS

    def to_json(self) -> dict[str, Any]:
        """The machine-readable view used by `explain --jsonl` and the store."""
        return {
            "file": self.file,
            "line": self.line,
            "time": self.time,
            "kind": str(self.kind),
            "ip": str(self.ip) if self.ip is not None else None,
            "port": self.port,
            "transport": self.transport,
            "service": str(self.service),
            "account": self.account,
            "target": self.target,
            "user_agent": self.user_agent,
            "evidence": str(self.evidence),
            "format": self.form,
            "reason": self.reason,
            "session": self.session,
            "call": self.call.to_json() if self.call is not None else None,
        }
