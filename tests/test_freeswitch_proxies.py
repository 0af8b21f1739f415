"""FreeSWITCH (reference §3), Kamailio (§4) and OpenSIPS (§5) lines.

FreeSWITCH's `network_ip` and the proxies' `$si`/`ip_addr2a()` are the packet source (IPv6 unbracketed);
the To user / realm / From URI before them is caller text.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import ReadResult, local_time, one, parse_line
from sipwatch.event import HOSTILE_KINDS, Evidence, Kind, Service

FS_1106 = "2021-05-17 22:03:09.004126 [WARNING] "  # 1.0 - 1.10.6
FS = "2024-05-01 10:00:01.523341 96.77% [WARNING] "  # 1.10.7+: idle CPU after the time
FS_UUID = "9f1c2a3b-4d5e-4f60-8a7b-0c1d2e3f7a81 2024-05-01 10:00:09.112233 96.90% [WARNING] "
FS_SYSLOG = "May  1 10:00:08 fs1 freeswitch[1876]: 2024-05-01 10:00:08.523341 96.77% [WARNING] "
FS_DEBUG = "2024-05-01 10:00:01.523341 96.77% [DEBUG] "

KAM = "Mar  3 04:05:06 sip1 /usr/sbin/kamailio[2210]: "
OSIPS = "Mar  3 04:05:08 sip2 opensips[3310]: "

HOSTILE = HOSTILE_KINDS


# --- FreeSWITCH: prefixes -------------------------------------------------------------------------

AUTH_FAILURE = ("sofia_reg.c:1787 SIP auth failure (REGISTER) on sofia profile 'internal' for "
                "[1001@203.0.113.10] from ip 198.51.100.7")


@pytest.mark.parametrize(
    ("line", "when"),
    [
        pytest.param(FS_1106 + AUTH_FAILURE, (2021, 5, 17, 22, 3, 9, 4126), id="1.10.6"),
        pytest.param(FS + AUTH_FAILURE, (2024, 5, 1, 10, 0, 1, 523341), id="1.10.7+-cpu"),
        pytest.param(FS_UUID + AUTH_FAILURE, (2024, 5, 1, 10, 0, 9, 112233), id="session-uuid"),
        pytest.param(FS_SYSLOG + AUTH_FAILURE, (2024, 5, 1, 10, 0, 8, 523341), id="mod_syslog"),
    ],
)
def test_freeswitch_prefix(line: str, when: tuple[int, ...]) -> None:
    """Every mod_logfile/mod_syslog prefix is read, with the line's own time."""
    event = one(line)
    assert (event.kind, str(event.ip), event.service) == (Kind.AUTH_FAILURE, "198.51.100.7", Service.FREESWITCH)
    assert event.time == pytest.approx(local_time(*when))


# --- FreeSWITCH: messages -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind", "ip", "account"),
    [
        pytest.param(FS + "sofia_reg.c:1787 SIP auth failure (REGISTER) on sofia profile 'internal' for "
                     "[1001@203.0.113.10] from ip 198.51.100.7", Kind.AUTH_FAILURE, "198.51.100.7", "1001",
                     id="auth-failure-register"),
        pytest.param(FS + "sofia_reg.c:1787 SIP auth failure (INVITE) on sofia profile 'internal' for "
                     "[0046812345678@203.0.113.10] from ip 2001:db8::7", Kind.AUTH_FAILURE, "2001:db8::7",
                     "0046812345678", id="auth-failure-invite-ipv6"),
        pytest.param(FS + "sofia_reg.c:1842 SIP auth challenge (REGISTER) on sofia profile 'internal' for "
                     "[1001@203.0.113.10] from ip 198.51.100.7", Kind.AUTH_CHALLENGE, "198.51.100.7", "1001",
                     id="auth-challenge"),
        pytest.param(FS + "sofia_reg.c:3210 Can't find user [1001@203.0.113.10] from 198.51.100.7",
                     Kind.UNKNOWN_ACCOUNT, "198.51.100.7", "1001", id="cant-find-user"),
        pytest.param(FS + "sofia.c:10667 IP 198.51.100.7 Rejected by acl \"domains\"",
                     Kind.ACL_DENIED, "198.51.100.7", None, id="acl"),
        pytest.param(FS_1106 + "sofia.c:10037 IP 198.51.100.7 Rejected by acl domains",
                     Kind.ACL_DENIED, "198.51.100.7", None, id="acl-1.0-unquoted"),
        pytest.param(FS + "sofia_reg.c:2406 IP 198.51.100.7 Rejected by register acl \"domains\"",
                     Kind.ACL_DENIED, "198.51.100.7", None, id="register-acl"),
        pytest.param(FS + "sofia_reg.c:3275 IP 2001:db8::7 Rejected by user acl [office] and no proxy acl present",
                     Kind.ACL_DENIED, "2001:db8::7", None, id="user-acl"),
        pytest.param("2024-05-01 10:00:01.523341 96.77% [ERR] sofia_reg.c:1437 Can not do authorization without a "
                     "complete header in REGISTER request from 198.51.100.7:5060", Kind.MALFORMED, "198.51.100.7",
                     None, id="incomplete-authorization"),
    ],
)
def test_freeswitch_message(line: str, kind: Kind, ip: str, account: str | None) -> None:
    """mod_sofia lines: kind, source (`from ip`, `from`, `IP %s`) and the user tried."""
    event = one(line)
    assert (event.kind, str(event.ip), event.service) == (kind, ip, Service.FREESWITCH)
    if account is not None:
        assert event.account == account


def test_freeswitch_cant_find_user_is_one_event_for_three_lines(read_log: Callable[..., ReadResult]) -> None:
    """`Can't find user` is three physical lines; only the first is an event."""
    result = read_log([
        FS + "sofia_reg.c:3210 Can't find user [1001@203.0.113.10] from 198.51.100.7",
        "You must define a domain called '203.0.113.10' in your directory and add a user with the id=\"1001\" "
        "attribute",
        "and you must configure your device to use the proper domain in its authentication credentials.",
    ])
    assert [(e.kind, str(e.ip), e.line) for e in result.events] == [(Kind.UNKNOWN_ACCOUNT, "198.51.100.7", 1)]


def test_freeswitch_auth_failure_is_strong_evidence() -> None:
    """A 403 after a digest answer means the source completed a round trip."""
    assert one(FS + AUTH_FAILURE).evidence == Evidence.STRONG


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(FS_DEBUG + "sofia.c:10667 IP 198.51.100.7 Rejected by acl \"domains\". Falling back to Digest "
                     "auth.", id="falling-back-to-digest"),
        pytest.param(FS_DEBUG + "sofia.c:10700 IP/Port 192.0.2.50 5060 Rejected by acls and auth-calls-acl-only flag "
                     "is set, rejecting call", id="auth-calls-acl-only"),
        pytest.param("2024-05-01 10:00:01.523341 96.77% [NOTICE] switch_core_state_machine.c:390 Hangup "
                     "sofia/external/1001@198.51.100.9 [CS_ROUTING] [NO_ROUTE_DESTINATION]", id="hangup"),
        pytest.param("2024-05-01 10:00:01.523341 96.77% [INFO] mod_dialplan_xml.c:639 Processing 1001 <1001>->"
                     "0046812345678 in context public", id="processing"),
    ],
)
def test_freeswitch_normal_operation_is_not_hostile(line: str) -> None:
    """A profile with auth-calls=true falls back to digest for every phone: that is not an attack."""
    assert not any(e.kind in HOSTILE and e.ip is not None for e in parse_line(line))


# --- FreeSWITCH mod_fail2ban's own file (no server prefix) -------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind"),
    [
        pytest.param("A registration failed user[1001] ip[198.51.100.7] at[2024-05-01T10:00:00.123456+0000]",
                     Kind.AUTH_FAILURE, id="register-failure"),
        pytest.param("A registration was attempted user[1001] ip[198.51.100.7] at[2024-05-01T10:00:00.123456+0000]",
                     Kind.AUTH_CHALLENGE, id="register-attempt"),
        pytest.param("Abandoned call from  user[1001] ip[198.51.100.7] at[2024-05-01T10:00:00.123456+0000]",
                     Kind.CALL_ATTEMPT, id="abandoned-call-two-spaces"),
    ],
)
def test_mod_fail2ban_line(read_log: Callable[..., ReadResult], line: str, kind: Kind) -> None:
    """mod_fail2ban writes `<what> user[%s] ip[%s] at[<ISO time with zone>]`."""
    (event,) = read_log([line]).events
    assert (event.kind, str(event.ip), event.account, event.service) == (kind, "198.51.100.7", "1001",
                                                                          Service.FREESWITCH)
    assert event.time == pytest.approx(1714557600.123456)


def test_mod_fail2ban_half_hour_zone(read_log: Callable[..., ReadResult]) -> None:
    """mod_fail2ban prints the offset minutes as `tm_gmtoff % 3600` seconds: +05:30 is written `+051800`."""
    line = "A registration failed user[1001] ip[198.51.100.7] at[2024-05-01T10:00:00.000000+051800]"
    (event,) = read_log([line]).events
    assert event.time == pytest.approx(1714557600.0 - 5.5 * 3600)


# --- Kamailio ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind", "ip", "port"),
    [
        pytest.param(KAM + "WARNING: pike [pike_funcs.c:134]: pike_check_ipaddr(): PIKE - BLOCKing ip "
                     "2001:db8:bad::44, node=0x7f3a2c1b4e80", Kind.FLOOD, "2001:db8:bad::44", None,
                     id="pike-ipv6"),
        pytest.param(KAM + "WARNING: pike [pike_funcs.c:152]: pike_check_req(): PIKE - BLOCKing ip 198.51.100.44, "
                     "node=0x7f3a2c1b4e80", Kind.FLOOD, "198.51.100.44", None, id="pike-ipv4"),
        pytest.param(KAM + "ALERT: <script>: ALERT: pike blocking REGISTER from sip:1001@203.0.113.10 "
                     "(IP:2001:db8::44:5060)", Kind.FLOOD, "2001:db8::44", 5060, id="default-cfg-pike-ipv6"),
        pytest.param(KAM + "ALERT: <script>: pike blocking INVITE from sip:1001@203.0.113.10 (IP:198.51.100.44:5060)",
                     Kind.FLOOD, "198.51.100.44", 5060, id="default-cfg-pike-before-5.8"),
        pytest.param(" 9(2210) ALERT: <script>: ALERT: pike blocking REGISTER from sip:1001@203.0.113.10 "
                     "(IP:198.51.100.44:5060)", Kind.FLOOD, "198.51.100.44", 5060, id="stderr"),
        pytest.param(KAM + "ERROR: <core> [core/receive.c:277]: receive_msg(): core parsing of SIP message failed "
                     "(198.51.100.44:5060/1)", Kind.MALFORMED, "198.51.100.44", 5060, id="core-parsing-failed"),
        pytest.param(KAM + "ERROR: <core> [core/receive.c:277]: receive_msg(): core parsing of SIP message failed "
                     "(2001:db8::44:5060/2)", Kind.MALFORMED, "2001:db8::44", 5060, id="core-parsing-failed-ipv6"),
        pytest.param(KAM + "ERROR: <script>: Malformed SIP request from 198.51.100.44:5060", Kind.MALFORMED,
                     "198.51.100.44", 5060, id="default-cfg-malformed"),
        pytest.param(KAM + "NOTICE: <script>: AUTH_FAILED src=198.51.100.81:5060 method=REGISTER "
                     "from=sip:1001@203.0.113.10 ua=[friendly-scanner] rc=-2", Kind.AUTH_FAILURE, "198.51.100.81",
                     5060, id="documented-auth-failed"),
    ],
)
def test_kamailio_line(line: str, kind: Kind, ip: str, port: int | None) -> None:
    """Kamailio: pike, the default cfg's xlog lines, core parse errors and the documented AUTH_FAILED shape."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port, event.service) == (kind, ip, port, Service.KAMAILIO)


def test_kamailio_auth_failed_keeps_account_and_user_agent() -> None:
    """The documented AUTH_FAILED line carries the From user and the UA (a scoring hint)."""
    event = one(KAM + "NOTICE: <script>: AUTH_FAILED src=198.51.100.81:5060 method=REGISTER "
                "from=sip:1001@203.0.113.10 ua=[friendly-scanner] rc=-2")
    assert (event.account, event.user_agent) == ("1001", "friendly-scanner")


def test_pike_unblock_names_no_address() -> None:
    """`PIKE - UNBLOCKing node %p` carries no address and is not an attack."""
    line = KAM + "INFO: pike [pike_funcs.c:200]: clean_routine(): PIKE - UNBLOCKing node 0x7f3a2c1b4e80"
    assert not any(e.ip is not None for e in parse_line(line))


# --- OpenSIPS ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "kind", "ip", "port"),
    [
        pytest.param(OSIPS + "PIKE - BLOCKing ip 198.51.100.45, node=0x7f00aa11bb22", Kind.FLOOD, "198.51.100.45",
                     None, id="3.3-pike-no-level"),
        pytest.param("Mar  3 04:05:08 sip2 /usr/sbin/opensips[3310]: WARNING:PIKE - BLOCKing ip 2001:db8::45, "
                     "node=0x7f00aa11bb22", Kind.FLOOD, "2001:db8::45", None, id="3.4-pike-glued-level"),
        pytest.param(OSIPS + "ERROR:core:receive_msg: Unable to parse msg received from [198.51.100.46:5060]",
                     Kind.MALFORMED, "198.51.100.46", 5060, id="unable-to-parse"),
        pytest.param(OSIPS + "ERROR:core:receive_msg: Unable to parse msg received from [2001:db8::46:5060]",
                     Kind.MALFORMED, "2001:db8::46", 5060, id="unable-to-parse-ipv6"),
        pytest.param(OSIPS + "AUTH failed for sip:1001@203.0.113.10 from 198.51.100.84:5060", Kind.AUTH_FAILURE,
                     "198.51.100.84", 5060, id="documented-xlog"),
        pytest.param("Mar  3 04:05:08 [3310] WARNING:PIKE - BLOCKing ip 198.51.100.45, node=0x7f00aa11bb22",
                     Kind.FLOOD, "198.51.100.45", None, id="stderr"),
    ],
)
def test_opensips_line(line: str, kind: Kind, ip: str, port: int | None) -> None:
    """OpenSIPS: pike (no level up to 3.3, `WARNING:` glued from 3.4) and core parse errors."""
    event = one(line)
    assert (event.kind, str(event.ip), event.port, event.service) == (kind, ip, port, Service.OPENSIPS)
