"""Asterisk message formats (reference §2.1-2.8), one table per message family and version.

Each row is a line as Asterisk writes it (format strings from the source at the tags named in the
reference); the assertions say what sipwatch must take from it: the kind, the source address (never
one from a header), the port, the service, and the account or dialled number.
"""

from __future__ import annotations

import json

import pytest

from conftest import VICTIM, local_time, one, parse_line
from sipwatch.event import HOSTILE_KINDS, Evidence, Kind, Service

TS = "[2024-05-01 10:00:00]"
SIP = f"{TS} NOTICE[3021] chan_sip.c: "
SIP_16 = "[Feb  3 21:04:11] NOTICE[2817] chan_sip.c: "  # 1.4-1.8 default date format `%b %e %T`
PJ_DIST = f"{TS} NOTICE[3021] res_pjsip/pjsip_distributor.c: "
PJ_SESSION = f"{TS} NOTICE[3021] res_pjsip_session.c: "
PJ_SESSION_CALL = f"{TS} NOTICE[3021][C-0000001a] res_pjsip_session.c: "
PJ_ACL = f"{TS} WARNING[3021] res_pjsip_acl.c: "
PJ_REGISTRAR = f"{TS} WARNING[3021] res_pjsip_registrar.c: "
ACL = f"{TS} NOTICE[3021] acl.c: "
AMI = f"{TS} NOTICE[3021] manager.c: "
AMI_VERBOSE = f"{TS} VERBOSE[3021] manager.c: "
IAX = f"{TS} NOTICE[3021] chan_iax2.c: "
IAX_WARNING = f"{TS} WARNING[3021] chan_iax2.c: "
IAX_ERROR = f"{TS} ERROR[3021] chan_iax2.c: "
SECURITY = f"{TS} SECURITY[3030] res_security_log.c: "

HOSTILE = HOSTILE_KINDS


def no_hostile_event(line: str) -> bool:
    return not any(e.kind in HOSTILE and e.ip is not None for e in parse_line(line))


# --- chan_sip: S1 `Registration from '%s' failed for '%s' - %s` --------------------------------------

REGISTER_REASONS = [
    ("Wrong password", Kind.AUTH_FAILURE),
    ("Username/auth name mismatch", Kind.AUTH_FAILURE),
    ("No matching peer found", Kind.UNKNOWN_ACCOUNT),
    ("Not a local domain", Kind.UNKNOWN_ACCOUNT),
    ("Not a local SIP domain", Kind.UNKNOWN_ACCOUNT),  # 1.2 only
    ("ACL error (permit/deny)", Kind.ACL_DENIED),  # 1.2 only; also an unknown peer there
    ("Peer is not supposed to register", Kind.ACL_DENIED),
    ("Device does not match ACL", Kind.ACL_DENIED),
    ("Device not configured to use this transport type", Kind.ACL_DENIED),
    ("RTP initialization failed", Kind.AUTH_FAILURE),
    ("Unknown failure", Kind.AUTH_FAILURE),
    ("Unknown error", Kind.AUTH_FAILURE),  # 1.2 spelling
]


@pytest.mark.parametrize(("reason", "kind"), REGISTER_REASONS, ids=[r for r, _ in REGISTER_REASONS])
def test_chan_sip_registration_reason_gives_the_kind(reason: str, kind: Kind) -> None:
    """Every reason text handle_request_register() can print is known and classified."""
    event = one(SIP + f"Registration from '\"100\" <sip:100@203.0.113.10>' failed for '198.51.100.7:5060' - {reason}")
    assert (event.kind, str(event.ip), event.port, event.service, event.account) == (
        kind, "198.51.100.7", 5060, Service.SIP, "100")


@pytest.mark.parametrize(
    ("line", "ip", "port"),
    [
        pytest.param(SIP_16 + "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7' - Wrong password",
                     "198.51.100.7", None, id="1.2-1.6-bare-ipv4"),
        pytest.param(SIP + "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7:5060' - Wrong password",
                     "198.51.100.7", 5060, id="1.8+-ipv4-port"),
        pytest.param(SIP + "Registration from '<sip:100@203.0.113.10>' failed for '[2001:db8::7]:5060' - "
                     "Wrong password", "2001:db8::7", 5060, id="1.8+-ipv6-bracketed"),
    ],
)
def test_chan_sip_registration_address_by_version(line: str, ip: str, port: int | None) -> None:
    """1.2-1.6 print `ast_inet_ntoa` (no port); 1.8+ print `ast_sockaddr_stringify` (ip:port, [v6]:port)."""
    event = one(line)
    assert (str(event.ip), event.port) == (ip, port)


@pytest.mark.parametrize(
    ("to_header", "account"),
    [
        pytest.param('"100"<sip:100@203.0.113.10>', "100", id="svwar-no-space"),
        pytest.param('"Office" <sip:6001@pbx.example.com>;tag=as1', "6001", id="display-name"),
        pytest.param("<sips:6002@203.0.113.10>", "6002", id="sips"),
    ],
)
def test_chan_sip_registration_account_is_the_to_user(to_header: str, account: str) -> None:
    """The account tried is the user part of the To header (svwar walks it)."""
    event = one(SIP + f"Registration from '{to_header}' failed for '198.51.100.7:5060' - No matching peer found")
    assert event.account == account


def test_chan_sip_wrong_password_is_strong_evidence() -> None:
    """`Wrong password` comes only after our digest challenge was answered: the source is not spoofed."""
    event = one(SIP + "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7:5060' - Wrong password")
    assert event.evidence == Evidence.STRONG


def test_chan_sip_no_matching_peer_is_weak_evidence() -> None:
    """A single REGISTER (no round trip) may come from a spoofed UDP source."""
    event = one(SIP + "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7:5060' - "
                "No matching peer found")
    assert event.evidence == Evidence.WEAK


# --- chan_sip: S2 / S2a / S2b `Call from ... rejected because extension not found` -------------------

@pytest.mark.parametrize(
    ("line", "ip", "port", "target"),
    [
        pytest.param(SIP + "Call from '' (198.51.100.7:5060) to extension '0046812345678' rejected because "
                     "extension not found in context 'default'.", "198.51.100.7", 5060, "0046812345678",
                     id="S2-guest-ipv4"),
        pytest.param(SIP + "Call from 'trunk1' ([2001:db8::7]:5060) to extension '900972599123456' rejected "
                     "because extension not found in context 'from-trunk'.", "2001:db8::7", 5060,
                     "900972599123456", id="S2-peer-ipv6"),
        pytest.param(SIP + "Call from '' (198.51.100.7:5060) to extension '' rejected because extension not "
                     "found in context 'default'.", "198.51.100.7", 5060, "", id="S2-empty-extension"),
    ],
)
def test_chan_sip_call_rejected_with_address(line: str, ip: str, port: int, target: str) -> None:
    """S2 (1.8.5+) names the packet source and the dialled extension."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port, event.target, event.service) == (
        Kind.REJECTED_CALL, ip, port, target, Service.SIP)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(SIP + "Call from '' to extension '0046812345678' rejected because extension not found in "
                     "context 'default'.", id="S2a-1.6.2.9-1.8.4"),
        pytest.param(SIP_16 + "Call from '' to extension '0046812345678' rejected because extension not found.",
                     id="S2b-1.4-1.6.2.8"),
    ],
)
def test_chan_sip_call_rejected_without_address_blames_nobody(line: str) -> None:
    """Before 1.8.5 the line has no address: an event for the dialled number, with ip None."""
    event = one(line)
    assert (event.kind, event.ip, event.target) == (Kind.REJECTED_CALL, None, "0046812345678")


# --- chan_sip: lines whose only host is the caller's From header (S3, S3a, S4, S4a, S4b) -------------

@pytest.mark.parametrize(
    "line",
    [
        pytest.param(SIP_16 + "Sending fake auth rejection for user \"100\" <sip:100@198.51.100.7>;tag=abc123",
                     id="S3-user"),
        pytest.param(SIP + "Sending fake auth rejection for device \"sipvicious\" <sip:100@198.51.100.7>;tag=6331",
                     id="S3a-device"),
        pytest.param(SIP_16 + "Failed to authenticate user \"100\" <sip:100@198.51.100.7>;tag=abc123",
                     id="S4-user"),
        pytest.param(SIP_16 + "Failed to authenticate user \"100\" <sip:100@198.51.100.7>;tag=abc123 for SUBSCRIBE",
                     id="S4-user-subscribe"),
        pytest.param(SIP + "Failed to authenticate device \"100\" <sip:100@198.51.100.7>;tag=abc123",
                     id="S4a-device"),
        pytest.param(SIP + "Failed to authenticate device <sip:100@198.51.100.7>;tag=abc123 for SUBSCRIBE",
                     id="S4a-device-subscribe"),
        pytest.param(SIP + "Failed to authenticate device \"100\" <sip:100@198.51.100.7>;tag=abc123 for INVITE, "
                     "code = -1", id="S4b-invite"),
        pytest.param(SIP + "Failed to authenticate device <sip:6001@198.51.100.7>;tag=7f00 for OPTIONS, code = -3",
                     id="S4b-options"),
    ],
)
def test_chan_sip_from_header_host_is_never_the_source(line: str) -> None:
    """Scanners put the server's own address into From: these lines carry no source address at all."""
    events = parse_line(line)
    assert events, "the failure itself is still worth an event"
    assert all(e.ip is None for e in events)


@pytest.mark.parametrize(
    ("line", "account"),
    [
        pytest.param(SIP + "Sending fake auth rejection for device \"sipvicious\" <sip:100@198.51.100.7>;tag=6331",
                     "100", id="fake-auth"),
        pytest.param(SIP + "Failed to authenticate device <sip:6001@198.51.100.7>;tag=7f00 for INVITE, code = -1",
                     "6001", id="failed-auth"),
    ],
)
def test_chan_sip_from_header_user_is_the_account(line: str, account: str) -> None:
    """The From user is still a useful account name (distributed attacks on one account)."""
    assert one(line).account == account


@pytest.mark.parametrize(
    ("line", "kind", "ip", "port"),
    [
        pytest.param(SIP + "Invalid to address: 'abc' from 198.51.100.7 (missing sip:) trying to use anyway...",
                     Kind.MALFORMED, "198.51.100.7", None, id="S5-invalid-to"),
        pytest.param(f"{TS} WARNING[3021] chan_sip.c: Rejecting TCP/TLS packet from '198.51.100.7:5061' because "
                     "way too large: 70000", Kind.MALFORMED, "198.51.100.7", 5061, id="S10-too-large"),
    ],
)
def test_chan_sip_other_lines_with_source_address(line: str, kind: Kind, ip: str, port: int | None) -> None:
    """S5 and S10 print the packet source."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port) == (kind, ip, port)


def test_chan_sip_contact_acl_domain_blames_nobody() -> None:
    """S9 prints the address taken from Contact (attacker-chosen): never a source."""
    line = f"{TS} WARNING[3021] chan_sip.c: Domain 'evil.example' disallowed by contact ACL (violating IP 203.0.113.66)"
    assert all(e.ip is None for e in parse_line(line))


# --- outbound registration: our own requests, never an attack -----------------------------------------

@pytest.mark.parametrize(
    "line",
    [
        pytest.param(SIP + "Failed to authenticate on REGISTER to '4930555123@sip.provider.example' (Tries 3)",
                     id="O1-register"),
        pytest.param(f"{TS} WARNING[3021] chan_sip.c: Forbidden - wrong password on authentication for REGISTER "
                     "for '4930555123' to 'sip.provider.example'", id="O1-forbidden"),
        pytest.param(SIP + "Failed to authenticate on INVITE to '\"Office\" <sip:6001@sip.provider.example>;tag=as1'",
                     id="O1-invite"),
        pytest.param(IAX + "Registration of 'office' rejected: 'Registration Refused' from: '203.0.113.50'",
                     id="iax2-outbound"),
    ],
)
def test_outbound_registration_failure_is_not_hostile(line: str) -> None:
    """These lines describe requests *we* sent to a provider: banning the provider cuts our trunk."""
    assert no_hostile_event(line)


# --- PJSIP: P1-P3 `Request ... failed for ...` (res_pjsip/pjsip_distributor.c) -----------------------

@pytest.mark.parametrize(
    ("line", "ip", "port", "account", "session"),
    [
        pytest.param(PJ_DIST + "Request from '\"sipvicious\" <sip:100@1.1.1.1>' failed for '198.51.100.7:5060' "
                     "(callid: 3847591023) - No matching endpoint found", "198.51.100.7", 5060, "100", "3847591023",
                     id="P1-12.0-13.9"),
        pytest.param(PJ_DIST + "Request 'REGISTER' from '<sip:6001@203.0.113.10>' failed for '2001:db8::7:5060' "
                     "(callid: a84b4c76e66710@2001:db8::7) - No matching endpoint found", "2001:db8::7", 5060, "6001",
                     "a84b4c76e66710@2001:db8::7", id="P2-ipv6-unbracketed"),
        pytest.param(PJ_DIST + "Request 'REGISTER' from '<sip:6001@203.0.113.10>' failed for '198.51.100.7:5060' "
                     "(callid: 8cbf32e7) - No matching endpoint found", "198.51.100.7", 5060, "6001", "8cbf32e7",
                     id="P2-ipv4"),
        pytest.param(PJ_DIST + "Request 'INVITE' from '\"1001\" <sip:1001@203.0.113.10>' failed for "
                     "'[2001:db8::7]:5060' (callid: 5d1f@198.51.100.7) - No matching endpoint found", "2001:db8::7",
                     5060, "1001", "5d1f@198.51.100.7", id="P3-ipv6-bracketed"),
        pytest.param(PJ_DIST + "Request 'REGISTER' from '<sip:6001@203.0.113.10>' failed for '198.51.100.7:5062' "
                     "(callid: 8cbf32e7) - No matching endpoint found after 5 tries in 4.993 ms", "198.51.100.7",
                     5062, "6001", "8cbf32e7", id="P3-after-tries"),
    ],
)
def test_pjsip_request_failed_address_and_fields(line: str, ip: str, port: int, account: str, session: str) -> None:
    """P1-P3: the source is the printed address; the account is the From user; the Call-ID is kept."""
    event = one(line)
    assert (str(event.ip), event.port, event.account, event.session, event.service) == (
        ip, port, account, session, Service.PJSIP)


PJSIP_REASONS = [
    ("No matching endpoint found", Kind.UNKNOWN_ACCOUNT),
    ("Not match Endpoint ACL", Kind.ACL_DENIED),
    ("Not match Endpoint Contact ACL", Kind.ACL_DENIED),
    ("Failed to authenticate", Kind.AUTH_FAILURE),
    ("Error to authenticate", Kind.AUTH_FAILURE),
]


@pytest.mark.parametrize(("reason", "kind"), PJSIP_REASONS, ids=[r for r, _ in PJSIP_REASONS])
def test_pjsip_request_failed_reason_gives_the_kind(reason: str, kind: Kind) -> None:
    """Every log_failed_request() reason is known and classified."""
    event = one(PJ_DIST + f"Request 'REGISTER' from '<sip:6001@203.0.113.10>' failed for '198.51.100.7:5060' "
                f"(callid: 8cbf32e7) - {reason}")
    assert event.kind == kind


def test_pjsip_after_tries_suffix_keeps_the_reason() -> None:
    """`... after N tries in X ms` is a suffix of the reason, not part of it."""
    event = one(PJ_DIST + "Request 'REGISTER' from '<sip:6001@203.0.113.10>' failed for '198.51.100.7:5060' "
                "(callid: 8cbf32e7) - Failed to authenticate after 5 tries in 4.993 ms")
    assert event.kind == Kind.AUTH_FAILURE


# --- PJSIP: P4 / P5 / P6 `Call ... to extension ... rejected` (res_pjsip_session.c) -----------------

@pytest.mark.parametrize(
    ("line", "ip", "port", "transport"),
    [
        pytest.param(PJ_SESSION + "Call from 'anonymous' (UDP:2001:db8::7:5060) to extension '0046812345678' "
                     "rejected because extension not found in context 'from-external'.", "2001:db8::7", 5060, "UDP",
                     id="P4-ipv6-unbracketed"),
        pytest.param(PJ_SESSION + "Call from 'anonymous' (UDP:198.51.100.7:5060) to extension '0046812345678' "
                     "rejected because extension not found in context 'from-external'.", "198.51.100.7", 5060, "UDP",
                     id="P5-ipv4"),
        pytest.param(PJ_SESSION + "Call from 'anonymous' (TCP:[2001:db8::7]:5061) to extension '0046812345678' "
                     "rejected because extension not found in context 'from-external'.", "2001:db8::7", 5061, "TCP",
                     id="P5-tcp-ipv6"),
        pytest.param(PJ_SESSION_CALL + " anonymous: Call (UDP:198.51.100.7:5060) to extension '0046812345678' "
                     "rejected because extension not found in context 'from-external'.", "198.51.100.7", 5060, "UDP",
                     id="P6-trace-log-leading-space"),
        pytest.param(PJ_SESSION_CALL + " PJSIP/anonymous-00000002: Call (TLS:[2001:db8::7]:5061) to extension "
                     "'0046812345678' rejected because extension not found in context 'from-external'.",
                     "2001:db8::7", 5061, "TLS", id="P6-channel-name"),
    ],
)
def test_pjsip_call_rejected(line: str, ip: str, port: int, transport: str) -> None:
    """P4-P6 print TRANSPORT:address of the packet source and the dialled extension."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port, event.transport, event.target, event.service) == (
        Kind.REJECTED_CALL, ip, port, transport, "0046812345678", Service.PJSIP)


def test_pjsip_call_over_tcp_is_strong_evidence() -> None:
    """A TCP/TLS source completed a handshake: it cannot be spoofed."""
    event = one(PJ_SESSION + "Call from 'anonymous' (TCP:198.51.100.7:5060) to extension '100' rejected because "
                "extension not found in context 'from-external'.")
    assert event.evidence == Evidence.STRONG


# --- PJSIP: P7 res_pjsip_acl ------------------------------------------------------------------------

def test_pjsip_acl_source_variant_blames_the_source() -> None:
    """`Incoming SIP message from ip:port did not pass ACL test` names the packet source."""
    event = one(PJ_ACL + "Incoming SIP message from 198.51.100.7:5060 did not pass ACL test")
    assert (event.kind, str(event.ip), event.port) == (Kind.ACL_DENIED, "198.51.100.7", 5060)


def test_pjsip_acl_contact_variant_blames_nobody() -> None:
    """The `:0` variant is the Contact header's host (attacker-chosen, even resolved by DNS): no source."""
    events = parse_line(PJ_ACL + "Incoming SIP message from 203.0.113.66:0 did not pass ACL test")
    assert all(e.ip is None for e in events)


# --- PJSIP: P8 res_pjsip_registrar (16.17+/18.3+ with the address, IPv6 unbracketed) -----------------

@pytest.mark.parametrize(
    ("line", "ip", "account"),
    [
        pytest.param(PJ_REGISTRAR + "Endpoint 'trunk1' (198.51.100.7:5060) has no configured AORs",
                     "198.51.100.7", None, id="no-aors"),
        pytest.param(PJ_REGISTRAR + "AOR '6001' not found for endpoint 'anonymous' (2001:db8::7:5060)",
                     "2001:db8::7", "6001", id="aor-not-found-ipv6"),
        pytest.param(PJ_REGISTRAR + "Endpoint 'trunk1' (198.51.100.7:5060) attempted to register to an AOR with "
                     "a non-SIP URI", "198.51.100.7", None, id="non-sip-uri"),
        pytest.param(PJ_REGISTRAR + "AOR '6001' has no configured max_contacts. Endpoint '6001' (198.51.100.7:5060) "
                     "unable to register", "198.51.100.7", "6001", id="no-max-contacts"),
        pytest.param(PJ_REGISTRAR + "Registration attempt from endpoint '6001' (2001:db8::7:5060) to AOR '6001' "
                     "will exceed max contacts of 1", "2001:db8::7", "6001", id="exceeds-max-contacts"),
    ],
)
def test_pjsip_registrar_warning(line: str, ip: str, account: str | None) -> None:
    """The registrar's five warnings name the source as `%s:%d` (IPv6 unbracketed) and the AOR."""
    event = one(line)
    assert (str(event.ip), event.port, event.service) == (ip, 5060, Service.PJSIP)
    assert event.kind in HOSTILE
    if account is not None:
        assert event.account == account


def test_pjsip_registrar_warning_before_16_17_has_no_address() -> None:
    """Older registrars print the same text without `(%s:%d)`: nobody can be blamed."""
    assert all(e.ip is None for e in parse_line(PJ_REGISTRAR + "Endpoint 'trunk1' has no configured AORs"))


# --- pjproject: a request it cannot parse, dropped before Asterisk sees it (Asterisk 22, real) -------

PJPROJECT = f"{TS} WARNING[18957] pjproject: \t       sip_transport.c "


@pytest.mark.parametrize(("transport", "ip", "port"), [("UDP", "198.51.100.66", 5072), ("TCP", "2001:db8::7", 5060)])
def test_pjproject_dropped_packet_is_malformed_from_its_source(transport: str, ip: str, port: int) -> None:
    """pjproject writes the packet's source itself; what follows ` : ` quotes the broken header."""
    event = one(PJPROJECT + f"Dropping 359 bytes packet from {transport} {ip}:{port} : PJSIP syntax error exception "
                "when parsing '6001' header on line 8 col 6")
    assert (event.kind, str(event.ip), event.port, event.service) == (Kind.MALFORMED, ip, port, Service.PJSIP)


def test_pjproject_dropped_packet_with_a_forged_source_in_the_header_blames_the_real_one() -> None:
    """The quoted header is the caller's: a second `packet from` there cannot move the blame."""
    events = parse_line(PJPROJECT + "Dropping 359 bytes packet from UDP 198.51.100.66:5072 : PJSIP syntax error "
                        f"exception when parsing 'x bytes packet from UDP {VICTIM}:5060 ' header on line 8 col 6")
    assert VICTIM not in {str(e.ip) for e in events}


# --- main/acl.c: `%sRejecting '%s' due to a failure to pass ACL '%s'` ------------------------------------


SOURCE_PURPOSES = [
    pytest.param("SIP Peer ACL: ", id="sip-peer"),
    pytest.param("SIP ACL: ", id="pjsip"),
    pytest.param("IAX2 Peer ACL: ", id="iax2-peer"),
    pytest.param("IAX2 user ACL: ", id="iax2-user"),
    pytest.param("Manager User ACL: ", id="ami-tcp"),
    pytest.param("Manager User ACL:", id="ami-http-no-space"),
    pytest.param("ARI User ACL", id="ari-no-separator"),
    pytest.param("HTTP Path ACL", id="http-path-no-separator"),
]


@pytest.mark.parametrize("purpose", SOURCE_PURPOSES)
def test_acl_rejection_blames_the_source(purpose: str) -> None:
    """Purposes whose address is the packet source: an acl_denied event for it (bare address)."""
    event = one(ACL + f"{purpose}Rejecting '198.51.100.7' due to a failure to pass ACL '(BASELINE)'")
    assert (event.kind, str(event.ip), event.port) == (Kind.ACL_DENIED, "198.51.100.7", None)


def test_acl_rejection_with_ipv6_source() -> None:
    """`ast_sockaddr_stringify_addr` prints IPv6 bare."""
    event = one(ACL + "SIP ACL: Rejecting '2001:db8::7' due to a failure to pass ACL 'office'")
    assert str(event.ip) == "2001:db8::7"


def test_acl_invalid_acl_variant() -> None:
    """The WARNING `due to use of an invalid ACL '%s'.` variant names the source too."""
    event = one(f"{TS} WARNING[3021] acl.c: SIP Peer ACL: Rejecting '198.51.100.7' due to use of an invalid ACL "
                "'missing'.")
    assert (event.kind, str(event.ip)) == (Kind.ACL_DENIED, "198.51.100.7")


@pytest.mark.parametrize(
    ("purpose", "service"),
    [
        pytest.param("SIP Peer ACL: ", Service.SIP, id="chan_sip"),
        pytest.param("SIP ACL: ", Service.PJSIP, id="pjsip"),
        pytest.param("IAX2 Peer ACL: ", Service.IAX2, id="iax2"),
        pytest.param("Manager User ACL: ", Service.AMI, id="ami"),
    ],
)
def test_acl_rejection_names_the_service(purpose: str, service: Service) -> None:
    """The purpose prefix says which service refused the address (a firewall rule may be per service)."""
    event = one(ACL + f"{purpose}Rejecting '198.51.100.7' due to a failure to pass ACL '(BASELINE)'")
    assert event.service == service


@pytest.mark.parametrize(
    "purpose",
    [
        pytest.param("SIP contact ACL: ", id="chan_sip-contactpermit"),
        pytest.param("SIP Contact ACL: ", id="pjsip-contact_acl"),
    ],
)
def test_contact_acl_rejection_blames_nobody(purpose: str) -> None:
    """The Contact ACL address is the host the caller wrote into Contact: never banned."""
    events = parse_line(ACL + f"{purpose}Rejecting '203.0.113.66' due to a failure to pass ACL '(BASELINE)'")
    assert all(e.ip is None for e in events)


def test_direct_media_acl_is_not_an_attack() -> None:
    """`SIP Direct Media ACL` is about a media peer, not a signalling source."""
    assert no_hostile_event(ACL + "SIP Direct Media ACL: Rejecting '198.51.100.7' due to a failure to pass ACL "
                            "'(BASELINE)'")


# --- AMI (manager.c) -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind", "ip", "account"),
    [
        pytest.param(AMI + "198.51.100.7 tried to authenticate with nonexistent user 'admin'",
                     Kind.UNKNOWN_ACCOUNT, "198.51.100.7", "admin", id="nonexistent-user"),
        pytest.param(AMI + "2001:db8::7 tried to authenticate with nonexistent user 'root'",
                     Kind.UNKNOWN_ACCOUNT, "2001:db8::7", "root", id="nonexistent-user-ipv6"),
        pytest.param(AMI + "198.51.100.7 failed to authenticate as 'admin'",
                     Kind.AUTH_FAILURE, "198.51.100.7", "admin", id="failed-auth"),
        pytest.param(AMI + "198.51.100.7 failed to pass IP ACL as 'admin'",
                     Kind.ACL_DENIED, "198.51.100.7", "admin", id="failed-acl"),
    ],
)
def test_ami_failure(line: str, kind: Kind, ip: str, account: str) -> None:
    """AMI lines start with the bare source address; the user name follows it."""
    event = one(line)
    assert (event.kind, str(event.ip), event.account, event.service) == (kind, ip, account, Service.AMI)


def test_ami_is_strong_evidence() -> None:
    """AMI runs over TCP: the address completed a handshake."""
    assert one(AMI + "198.51.100.7 failed to authenticate as 'admin'").evidence == Evidence.STRONG


def test_ami_login_timeout_names_the_source() -> None:
    """`Client from %s, failed to authenticate in %d seconds`: an AMI port probe."""
    event = one(AMI_VERBOSE + "Client from 198.51.100.7, failed to authenticate in 30 seconds")
    assert (str(event.ip), event.service) == ("198.51.100.7", Service.AMI)
    assert event.kind in HOSTILE


def test_ami_login_is_a_success() -> None:
    """`Manager '%s' logged on from %s` is a good login, never hostile."""
    event = one(AMI_VERBOSE + "Manager 'admin' logged on from 192.0.2.10")
    assert (event.kind, str(event.ip), event.account) == (Kind.AUTH_SUCCESS, "192.0.2.10", "admin")


def test_ami_logoff_is_not_hostile() -> None:
    """Logging off is ordinary operation."""
    assert no_hostile_event(AMI_VERBOSE + "Manager 'admin' logged off from 192.0.2.10")


# --- IAX2 (chan_iax2.c) ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind", "ip", "port"),
    [
        pytest.param(IAX + "No registration for peer 'guest' (from 198.51.100.7)",
                     Kind.UNKNOWN_ACCOUNT, "198.51.100.7", None, id="no-registration"),
        pytest.param(IAX + "Peer 'office' is not dynamic (from 198.51.100.7)",
                     Kind.ACL_DENIED, "198.51.100.7", None, id="not-dynamic"),
        pytest.param(IAX + "Host 198.51.100.7 denied access to register peer 'office'",
                     Kind.ACL_DENIED, "198.51.100.7", None, id="denied-register"),
        pytest.param(IAX + "Host 198.51.100.7 failed MD5 authentication for 'office' (7f3a9c2e != 0b1d4e8a)",
                     Kind.AUTH_FAILURE, "198.51.100.7", None, id="md5"),
        pytest.param(IAX + "Host 198.51.100.7 did not provide proper plaintext password for 'office'",
                     Kind.AUTH_FAILURE, "198.51.100.7", None, id="plaintext"),
        pytest.param(IAX + "Host 198.51.100.7 failed to authenticate as office",
                     Kind.AUTH_FAILURE, "198.51.100.7", None, id="failed-auth-1.4-11"),
        pytest.param(IAX_WARNING + "Host 198.51.100.7:4569 failed to authenticate as office",
                     Kind.AUTH_FAILURE, "198.51.100.7", 4569, id="failed-auth-12+"),
        pytest.param(IAX + "Empty registration from 198.51.100.7",
                     Kind.MALFORMED, "198.51.100.7", None, id="empty-registration"),
        pytest.param(IAX + "Rejected connect attempt from 198.51.100.7:4569, who was trying to reach "
                     "'0046812345678@default'", Kind.REJECTED_CALL, "198.51.100.7", 4569, id="rejected-connect"),
        pytest.param(IAX + "Rejected connect attempt from 198.51.100.7, request '0046812345678@default' does "
                     "not exist", Kind.REJECTED_CALL, "198.51.100.7", None, id="rejected-connect-does-not-exist"),
        pytest.param(IAX_WARNING + "Rejected dial attempt from 198.51.100.7:4569, request '0046812345678@default' "
                     "does not exist", Kind.REJECTED_CALL, "198.51.100.7", 4569, id="rejected-dial"),
        pytest.param(IAX_ERROR + "maxcallnumber limit of 2048 for 198.51.100.7 has been reached!",
                     Kind.FLOOD, "198.51.100.7", None, id="maxcallnumber"),
        pytest.param(IAX_WARNING + "Too much delay in IAX2 calltoken timestamp from address 198.51.100.7:4569",
                     Kind.FLOOD, "198.51.100.7", 4569, id="calltoken-delay"),
        pytest.param(IAX_WARNING + "Address 198.51.100.7:4569 failed CallToken hash inspection",
                     Kind.FLOOD, "198.51.100.7", 4569, id="calltoken-hash"),
        pytest.param(IAX_ERROR + "Call rejected, CallToken Support required. If unexpected, resolve by placing "
                     "address 198.51.100.7:4569 in the calltokenoptional list or setting user office "
                     "requirecalltoken=no", Kind.MALFORMED, "198.51.100.7", 4569, id="calltoken-required"),
    ],
)
def test_iax2_line(line: str, kind: Kind, ip: str, port: int | None) -> None:
    """IAX2 lines print the source bare (1.4-11) or as ip:port (12+)."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port, event.service) == (kind, ip, port, Service.IAX2)




@pytest.mark.parametrize(
    ("line", "account"),
    [
        pytest.param(IAX + "No registration for peer 'guest' (from 198.51.100.7)", "guest", id="no-registration"),
        pytest.param(IAX_WARNING + "Host 198.51.100.7:4569 failed to authenticate as office", "office",
                     id="failed-auth"),
        pytest.param(IAX + "Host 198.51.100.7 failed MD5 authentication for 'office' (7f3a9c2e != 0b1d4e8a)",
                     "office", id="md5"),
        pytest.param(IAX + "Host 198.51.100.7 did not provide proper plaintext password for 'office'", "office",
                     id="plaintext"),
    ],
)
def test_iax2_account(line: str, account: str) -> None:
    """The peer name tried is the account (it feeds enumeration and the report)."""
    assert one(line).account == account


def test_iax2_rejected_call_target_is_the_extension() -> None:
    """`'exten@context'`: the dialled number is the part before the @."""
    event = one(IAX + "Rejected connect attempt from 198.51.100.7:4569, who was trying to reach "
                "'0046812345678@default'")
    assert event.target == "0046812345678"


def test_iax2_rsa_line_prints_a_peer_name_not_an_address() -> None:
    """`Host %s failed RSA authentication` prints the peer name (an Asterisk bug): nobody to blame."""
    assert all(e.ip is None for e in parse_line(IAX + "Host office failed RSA authentication with inkeys 'office'"))


# --- FreePBX dialplan Log() lines (§2.8): the file field is `Ext. <exten>` ---------------------------

@pytest.mark.parametrize(
    ("line", "ip", "port"),
    [
        pytest.param(f"{TS} WARNING[3021][C-0000001a] Ext. s: \"Rejecting unknown SIP connection from "
                     "198.51.100.23\"", "198.51.100.23", None, id="chan_sip-recvip"),
        pytest.param(f"{TS} WARNING[3021][C-0000001a] Ext. s: \"Rejecting unknown SIP connection from "
                     "198.51.100.23:5060\"", "198.51.100.23", 5060, id="pjsip-remote_addr"),
        pytest.param(f"{TS} WARNING[3021][C-0000001a] Ext. s: \"Rejecting unknown SIP connection from "
                     "[2001:db8::23]:5060\"", "2001:db8::23", 5060, id="pjsip-ipv6"),
        pytest.param(f"{TS} WARNING[3021][C-0000001a] Ext. 0046812345678: \"Rejecting unknown SIP connection from "
                     "198.51.100.23\"", "198.51.100.23", None, id="dialled-exten-in-prefix"),
        pytest.param("Jun  2 01:13:30 pbx asterisk[2990]: WARNING[3021][C-0000001a]: Ext. s:6 in @ "
                     "from-sip-external: \"Rejecting unknown SIP connection from 198.51.100.23\"",
                     "198.51.100.23", None, id="syslog"),
    ],
)
def test_freepbx_rejecting_unknown_sip_connection(line: str, ip: str, port: int | None) -> None:
    """FreePBX's from-sip-external catch-all logs the channel's real remote address."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port) == (Kind.REJECTED_CALL, ip, port)


def test_freepbx_friendly_scanner_blames_nobody() -> None:
    """`Friendly Scanner from %s` prints the Via sent-by host, which the caller writes."""
    events = parse_line(f"{TS} WARNING[3021][C-0000001b] Ext. s: Friendly Scanner from 203.0.113.66")
    assert all(e.ip is None for e in events)


# --- security log (res_security_log.c) -------------------------------------------------------------

def security(event: str, service: str = "SIP", version: str = "1", account: str | None = "6001",
             session: str = "0x7f2c3c0012a8", remote: str = "IPV4/UDP/198.51.100.7/5060",
             local: str = "IPV4/UDP/203.0.113.10/5060", tail: str = "", tv: str = "2024-05-01T10:00:00.514+0000",
             prefix: str = SECURITY) -> str:
    """A security log line: required IEs in source order, then the optional/extra ones in `tail`."""
    account_ie = "" if account is None else f'AccountID="{account}",'
    severity = "Informational" if event in ("SuccessfulAuth", "ChallengeSent") else "Error"
    return (f'{prefix}SecurityEvent="{event}",EventTV="{tv}",Severity="{severity}",Service="{service}",'
            f'EventVersion="{version}",{account_ie}SessionID="{session}",LocalAddress="{local}",'
            f'RemoteAddress="{remote}"{tail}')


AMI_CLIENT = "IPV4/TCP/198.51.100.7/40123"
AMI_LISTENER = "IPV4/TCP/0.0.0.0/5038"

SECURITY_EVENTS = [
    pytest.param(security("FailedACL", "PJSIP", tail=',ACLName="not_match_endpoint_acl"'),
                 Kind.ACL_DENIED, id="FailedACL"),
    pytest.param(security("InvalidAccountID"), Kind.UNKNOWN_ACCOUNT, id="InvalidAccountID"),
    pytest.param(security("SessionLimit", "AMI", remote=AMI_CLIENT, local=AMI_LISTENER), Kind.FLOOD, id="SessionLimit"),
    pytest.param(security("MemoryLimit", "PJSIP"), Kind.FLOOD, id="MemoryLimit"),
    pytest.param(security("LoadAverageLimit"), Kind.FLOOD, id="LoadAverageLimit"),
    pytest.param(security("RequestNotSupported", "PJSIP",
                          tail=',RequestType="registrar_attempt_without_registration_permitted"'),
                 Kind.MALFORMED, id="RequestNotSupported"),
    pytest.param(security("RequestNotSupported", "PJSIP", tail=',RequestType="registrar_requested_aor_not_found"'),
                 Kind.UNKNOWN_ACCOUNT, id="RequestNotSupported-aor-not-found"),
    pytest.param(security("RequestNotAllowed", "AMI", account="", remote=AMI_CLIENT, local=AMI_LISTENER,
                          tail=',RequestType="Action: Command",RequestParams=""'), Kind.SCANNER,
                 id="RequestNotAllowed"),
    pytest.param(security("AuthMethodNotAllowed", "AMI", remote=AMI_CLIENT, local=AMI_LISTENER,
                          tail=',AuthMethod="plain"'), Kind.ACL_DENIED, id="AuthMethodNotAllowed"),
    pytest.param(security("RequestBadFormat", "AMI", account=None, remote=AMI_CLIENT, local=AMI_LISTENER,
                          tail=',RequestType="Action: Bogus"'), Kind.MALFORMED, id="RequestBadFormat"),
    pytest.param(security("SuccessfulAuth", tail=',UsingPassword="1"'), Kind.AUTH_SUCCESS, id="SuccessfulAuth"),
    pytest.param(security("UnexpectedAddress", version="2", tail=',ExpectedAddress="IPV4/UDP/192.0.2.50/5060"'),
                 Kind.ACL_DENIED, id="UnexpectedAddress"),
    pytest.param(security("ChallengeResponseFailed", "PJSIP", account="<unknown>",
                          tail=',Challenge="1a2b3c4d",Response="9f8e7d6c",ExpectedResponse=""'),
                 Kind.AUTH_FAILURE, id="ChallengeResponseFailed"),
    pytest.param(security("InvalidPassword", version="2",
                          tail=',Challenge="5f1e2d3c",ReceivedChallenge="5f1e2d3c",ReceivedHash="0123abcd"'),
                 Kind.AUTH_FAILURE, id="InvalidPassword"),
    pytest.param(security("ChallengeSent", tail=',Challenge="5f1e2d3c"'), Kind.AUTH_CHALLENGE, id="ChallengeSent"),
    pytest.param(security("InvalidTransport", tail=',AttemptedTransport="TCP"'), Kind.ACL_DENIED,
                 id="InvalidTransport"),
]


@pytest.mark.parametrize(("line", "kind"), SECURITY_EVENTS)
def test_security_event_gives_kind_and_remote_address(line: str, kind: Kind) -> None:
    """Every SecurityEvent type is known; the source is RemoteAddress (never LocalAddress)."""
    event = one(line)
    assert (event.kind, str(event.ip)) == (kind, "198.51.100.7")


@pytest.mark.parametrize(
    "tv",
    [
        pytest.param("1401671567-98012", id="1.8-11-sec-usec-unpadded"),
        pytest.param("2024-05-01T10:00:00.514+0000", id="12+-iso"),
    ],
)
def test_security_event_tv_encodings(tv: str) -> None:
    """EventTV is `sec-usec` up to 11 and ISO 8601 from 12: both lines are read alike."""
    event = one(security("InvalidAccountID", account="100", tv=tv))
    assert (event.kind, str(event.ip), event.port, event.account) == (
        Kind.UNKNOWN_ACCOUNT, "198.51.100.7", 5060, "100")


@pytest.mark.parametrize(
    ("remote", "ip", "port", "transport"),
    [
        pytest.param("IPV4/UDP/198.51.100.7/5060", "198.51.100.7", 5060, "UDP", id="ipv4-udp"),
        pytest.param("IPV6/TCP/2001:db8::7/5061", "2001:db8::7", 5061, "TCP", id="ipv6-tcp"),
        pytest.param("IPV4/198.51.100.7/5060", "198.51.100.7", 5060, None, id="transport-unknown"),
    ],
)
def test_security_event_remote_address_shapes(remote: str, ip: str, port: int, transport: str | None) -> None:
    """The RemoteAddress tuple gives address, port and (when known) transport."""
    event = one(security("InvalidPassword", version="2", remote=remote))
    assert (str(event.ip), event.port, event.transport) == (ip, port, transport)


@pytest.mark.parametrize(
    ("service", "expected"),
    [("SIP", Service.SIP), ("PJSIP", Service.PJSIP), ("AMI", Service.AMI)],
)
def test_security_event_service(service: str, expected: Service) -> None:
    """The Service IE says which Asterisk service raised the event."""
    assert one(security("InvalidAccountID", service)).service == expected


def test_security_event_account_and_session() -> None:
    """AccountID and SessionID (the PJSIP Call-ID) are kept."""
    event = one(security("InvalidAccountID", "PJSIP", account="100", session="843ab79c@198.51.100.7"))
    assert (event.account, event.session) == ("100", "843ab79c@198.51.100.7")


# --- line prefixes (§1.2, §2.1): one message under every prefix --------------------------------------

REGISTRATION = "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7:5060' - Wrong password"
REGISTRATION_12 = "Registration from '<sip:100@203.0.113.10>' failed for '198.51.100.7' - Wrong password"
ESC = "\x1b"


def _json_line(message: str) -> str:
    record = {"hostname": "pbx", "timestamp": "2024-05-01 10:00:00.123",
              "identifiers": {"lwp": "3021", "callid": "C-0000001a"},
              "logmsg": {"location": {"filename": "chan_sip.c", "function": "handle_request_register", "line": 28926},
                         "level": "NOTICE", "message": message + "\n"}}
    return json.dumps(record)


PREFIXES = [
    pytest.param(f"[Feb  3 21:04:11] NOTICE[2817] chan_sip.c: {REGISTRATION}", (2024, 2, 3, 21, 4, 11),
                 id="1.4-1.8-bracketed-old-date"),
    pytest.param(f"[2024-05-01 10:00:00] NOTICE[3021] chan_sip.c: {REGISTRATION}", (2024, 5, 1, 10, 0, 0),
                 id="iso-date"),
    pytest.param(f"[2024-05-01 10:00:00.123] NOTICE[3021] chan_sip.c: {REGISTRATION}", (2024, 5, 1, 10, 0, 0, 123000),
                 id="iso-date-ms"),
    pytest.param(f"[2024-05-01 10:00:00] NOTICE[3021][C-0000001a] chan_sip.c: {REGISTRATION}", (2024, 5, 1, 10, 0, 0),
                 id="11+-call-id"),
    pytest.param(f"[2024-05-01 10:00:00] NOTICE[30122]: chan_sip.c:28926 handle_request_register: {REGISTRATION}",
                 (2024, 5, 1, 10, 0, 0), id="plain-formatter"),
    pytest.param(f"[2024-05-01 10:00:00] NOTICE[30122][C-0000001a]: chan_sip.c:28926 handle_request_register: "
                 f"{REGISTRATION}", (2024, 5, 1, 10, 0, 0), id="plain-formatter-call-id"),
    pytest.param(f"Jan 14 03:12:45 NOTICE[8123] chan_sip.c: {REGISTRATION_12}", (2024, 1, 14, 3, 12, 45),
                 id="1.2-without-T"),
    pytest.param(f"[Jan 14 03:12:45] NOTICE[8123]: {REGISTRATION_12}", (2024, 1, 14, 3, 12, 45), id="1.2-with-T"),
    pytest.param(f"Apr 22 03:41:07 pbx asterisk[24980]: NOTICE[25010]: chan_sip.c:25797 in handle_request_register: "
                 f"{REGISTRATION}", (2024, 4, 22, 3, 41, 7), id="syslog-1.4-1.8"),
    pytest.param(f"Jun  2 01:13:30 pbx asterisk[2990]: NOTICE[3021][C-0000001a]: chan_sip.c:25902 in "
                 f"handle_request_register: {REGISTRATION}", (2024, 6, 2, 1, 13, 30), id="syslog-11+"),
    pytest.param(f"2024-05-01T10:00:00+0000 pbx asterisk[2990]: NOTICE[3021]: chan_sip.c:25902 in "
                 f"handle_request_register: {REGISTRATION}", None, id="journald-short-iso"),
    pytest.param(f"NOTICE[566]: chan_sip.c:28926 handle_request_register: {REGISTRATION}", None,
                 id="bare-journal-message"),
    pytest.param(f"[2024-05-01 10:00:00] {ESC}[1;33mNOTICE{ESC}[0m[3021]: {ESC}[1;37mchan_sip.c{ESC}[0m:"
                 f"{ESC}[1;37m28926{ESC}[0m {ESC}[1;37mhandle_request_register{ESC}[0m: {REGISTRATION}",
                 (2024, 5, 1, 10, 0, 0), id="ansi-console"),
    pytest.param(_json_line(REGISTRATION), (2024, 5, 1, 10, 0, 0, 123000), id="json-formatter"),
]


@pytest.mark.parametrize(("line", "when"), PREFIXES)
def test_every_prefix_yields_the_event(line: str, when: tuple[int, ...] | None) -> None:
    """Whatever channel or formatter wrote it, the message is found and its source taken."""
    event = one(line)
    assert (event.kind, str(event.ip), event.account) == (Kind.AUTH_FAILURE, "198.51.100.7", "100")


@pytest.mark.parametrize(("line", "when"), [p for p in PREFIXES if p.values[1] is not None])
def test_prefix_timestamp_is_the_event_time(line: str, when: tuple[int, ...]) -> None:
    """The event time is the line's own wall-clock stamp (year-less stamps get the file's year)."""
    event = one(line)
    assert event.time == pytest.approx(local_time(*when))


def test_journald_stamp_with_zone_is_absolute() -> None:
    """`journalctl -o short-iso` writes the zone: the time does not depend on the local zone."""
    event = one(f"2024-05-01T10:00:00+0000 pbx asterisk[2990]: NOTICE[3021]: chan_sip.c:25902 in "
                f"handle_request_register: {REGISTRATION}")
    assert event.time == 1714557600.0


def test_message_from_another_source_file_is_not_trusted() -> None:
    """A chan_sip text is only read when chan_sip.c wrote it (a dialplan `Ext.` line can say anything)."""
    line = f"{TS} WARNING[3021] Ext. s: {REGISTRATION}"
    assert no_hostile_event(line)


def test_a_scanner_that_names_itself_in_from_is_a_scanner_event() -> None:
    """svmap sends `From: "sipvicious"<sip:100@1.1.1.1>`: a hint about the tool, never about the address."""
    event = one(f"{TS} NOTICE[3021] res_pjsip/pjsip_distributor.c: Request 'OPTIONS' from "
                "'\"sipvicious\"<sip:100@1.1.1.1>' failed for '198.51.100.5:5060' (callid: 1) - "
                "No matching endpoint found")
    assert (event.kind, str(event.ip), event.extra.get("tool")) == (Kind.SCANNER, "198.51.100.5", "SIPVicious")


def test_every_forms_group_names_are_those_of_its_regex() -> None:
    """A form knows its named groups without compiling its regex (that waits for the first message it
    reads): the names read off the pattern are exactly the compiled regex's."""
    from sipwatch.formats import READERS
    from sipwatch.formats.form import Form

    forms = [r for r in READERS if isinstance(r, Form)]
    assert len(forms) > 50
    for form in forms:
        assert form._names == frozenset(form.regex.groupindex), form.id
