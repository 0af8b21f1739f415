"""Forged log text (reference §1.3 and §7): the caller writes parts of the log line, sometimes whole lines.

The rule every test here checks: an address that only appears in caller-written text (the "victim",
203.0.113.66) is never the address of any event, so it can never be banned. Where the line is forged,
sipwatch says so with an `injection` event, naming the real sender only when the server-written side
of the line proves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from conftest import VICTIM, ReadResult, parse_line
from sipwatch.event import Event, Kind
from sipwatch.scan import ScanResult

TS = "[2024-05-01 10:00:00]"
SIP = f"{TS} NOTICE[3021] chan_sip.c: "
PJ_DIST = f"{TS} NOTICE[3021] res_pjsip/pjsip_distributor.c: "
SECURITY = f"{TS} SECURITY[3030] res_security_log.c: "
REAL = "198.51.100.7"

#: a complete, well-formed chan_sip line naming the victim: what an attacker plants
FORGED_REGISTRATION = (f"[2024-05-01 10:00:01] NOTICE[3021] chan_sip.c: Registration from '<sip:100@203.0.113.10>' "
                       f"failed for '{VICTIM}:5060' - Wrong password")


def ips(events: list[Event]) -> set[str]:
    return {str(e.ip) for e in events if e.ip is not None}


def only(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


def security_head(event: str, service: str = "PJSIP") -> str:
    return (f'{SECURITY}SecurityEvent="{event}",EventTV="2024-05-01T10:00:00.514+0000",Severity="Error",'
            f'Service="{service}",EventVersion="1",')


def repeated(lines: list[str], times: int) -> list[str]:
    """The attack repeated, so that a single blamed line would add up to a ban."""
    return [line for _ in range(times) for line in lines]


# --- in-line forgery: a second separator inside caller text -------------------------------------------

def test_chan_sip_to_header_forgery_is_an_injection() -> None:
    """A To header holding `' failed for '<victim>' - Wrong password` makes the separator occur twice."""
    line = (SIP + f"Registration from '\"x' failed for '{VICTIM}:5060' - Wrong password\" <sip:100@203.0.113.10>' "
            f"failed for '{REAL}:5060' - Wrong password")
    assert only(parse_line(line)).kind == Kind.INJECTION


@pytest.mark.parametrize(
    "to_header",
    [
        pytest.param(f"\"x' failed for '{VICTIM}:5060' - Wrong password\" <sip:100@203.0.113.10>", id="forged-in-name"),
        pytest.param(f"<sip:100@203.0.113.10>' failed for '{VICTIM}:5060' - Wrong password", id="forged-whole-tail"),
        pytest.param(f"<sip:100@203.0.113.10>' failed for '{VICTIM}' - Wrong password", id="forged-1.6-shape"),
    ],
)
def test_chan_sip_to_header_forgery_never_blames_the_victim(to_header: str) -> None:
    """The server writes the tail (`' failed for '<src>' - reason`), so the real source is the last one."""
    events = parse_line(SIP + f"Registration from '{to_header}' failed for '{REAL}:5060' - Wrong password")
    assert VICTIM not in ips(events)
    assert ips(events) <= {REAL}


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(PJ_DIST + f"Request 'REGISTER' from '\"x' failed for '{VICTIM}:5060' (callid: 1) - Failed to "
                     f"authenticate\" <sip:100@203.0.113.10>' failed for '{REAL}:5060' (callid: 8cbf32e7) - Failed to "
                     "authenticate", id="from-display-name"),
        pytest.param(PJ_DIST + f"Request 'REGISTER' from '<sip:100@203.0.113.10>' failed for '{REAL}:5060' "
                     f"(callid: 8cbf' failed for '{VICTIM}:5060' (callid: 1) - Failed to authenticate",
                     id="call-id"),
        pytest.param(PJ_DIST + f"Request from '<sip:100@203.0.113.10>' failed for '{REAL}:5060' (callid: a' failed "
                     f"for '{VICTIM}:5060' (callid: b) - No matching endpoint found", id="P1-call-id"),
    ],
)
def test_pjsip_forgery_is_an_injection_naming_nobody(line: str) -> None:
    """PJSIP prints caller text on both sides of the address (From before, Call-ID after): no side proves
    which address is real, so the injection event names nobody."""
    event = only(parse_line(line))
    assert (event.kind, event.ip) == (Kind.INJECTION, None)


def test_security_session_id_forgery_names_the_real_sender() -> None:
    """SessionID (the PJSIP Call-ID) comes before RemoteAddress; what follows the last RemoteAddress is
    server-written, so the real sender is known."""
    line = (security_head("InvalidAccountID") + f'AccountID="100",SessionID="x",LocalAddress="IPV4/UDP/203.0.113.10/'
            f'5060",RemoteAddress="IPV4/UDP/{VICTIM}/5060",LocalAddress="IPV4/UDP/203.0.113.10/5060",'
            f'RemoteAddress="IPV4/UDP/{REAL}/5060"')
    event = only(parse_line(line))
    assert (event.kind, str(event.ip)) == (Kind.INJECTION, REAL)


def test_security_account_id_forgery_names_the_real_sender() -> None:
    """AccountID (the From user for InvalidAccountID) is also before RemoteAddress."""
    line = (security_head("InvalidAccountID") + f'AccountID="1",RemoteAddress="IPV4/UDP/{VICTIM}/5060",'
            f'SessionID="abc",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/{REAL}/5060"')
    event = only(parse_line(line))
    assert (event.kind, str(event.ip)) == (Kind.INJECTION, REAL)


def test_challenge_response_forgery_after_the_real_address_names_nobody() -> None:
    """Challenge/Response are copied from the request and follow RemoteAddress: a forged RemoteAddress there
    comes *after* the real one, and nothing proves which is real."""
    line = (security_head("ChallengeResponseFailed") + f'AccountID="<unknown>",SessionID="abc",LocalAddress="IPV4/'
            f'UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/{REAL}/5060",Challenge="1a2b",Response="x",'
            f'RemoteAddress="IPV4/UDP/{VICTIM}/5060",ExpectedResponse=""')
    event = only(parse_line(line))
    assert (event.kind, event.ip) == (Kind.INJECTION, None)


# --- newline injection: whole forged lines (run through the real scan path) -------------------------------

CHAN_SIP_OPENER = f"{TS} NOTICE[3021] chan_sip.c: Call from '' ({REAL}:5060) to extension '1"
CHAN_SIP_TAIL = "' rejected because extension not found in context 'default'."
PJSIP_OPENER = (f"{TS} NOTICE[3021][C-00000001] res_pjsip_session.c:  anonymous: Call (UDP:{REAL}:5060) to "
                "extension '1")
PJSIP_TAIL = "' rejected because extension not found in context 'from-external'."


def test_newline_in_extension_is_one_injection_record(read_log: Callable[..., ReadResult]) -> None:
    """chan_sip URI-decodes the extension (`%0A`): every line up to the fixed tail is caller text."""
    result = read_log([CHAN_SIP_OPENER, FORGED_REGISTRATION, CHAN_SIP_TAIL])
    event = only(result.events)
    assert (event.kind, str(event.ip), event.line) == (Kind.INJECTION, REAL, 1)


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([CHAN_SIP_OPENER, FORGED_REGISTRATION, CHAN_SIP_TAIL], id="chan_sip-S2"),
        pytest.param([PJSIP_OPENER, FORGED_REGISTRATION, PJSIP_TAIL], id="pjsip-P6"),
        pytest.param([CHAN_SIP_OPENER, FORGED_REGISTRATION, FORGED_REGISTRATION, FORGED_REGISTRATION,
                      CHAN_SIP_TAIL], id="several-forged-lines"),
        pytest.param([CHAN_SIP_OPENER + "' rejected because extension not found in context 'default'.",
                      FORGED_REGISTRATION, CHAN_SIP_TAIL], id="forged-tail-on-first-line"),
    ],
)
def test_newline_injection_never_blames_the_victim(scan_log: Callable[..., ScanResult], lines: list[str]) -> None:
    """Repeated six times (enough for a ban if the forged line counted), the victim is still nobody."""
    result = scan_log(repeated(lines, 6))
    assert VICTIM not in {str(ip) for ip in result.offenders}
    assert all(str(d.ip) != VICTIM for o in result.offenders.values() for d in o.decisions)


def test_newline_injection_across_buffer_boundaries(read_log: Callable[..., ReadResult]) -> None:
    """Reassembly also holds when the record is split over the reader's buffers."""
    lines = repeated([CHAN_SIP_OPENER, FORGED_REGISTRATION, CHAN_SIP_TAIL], 4)
    for chunk in (64, 257, 1000):
        result = read_log(lines, chunk=chunk)
        assert [(e.kind, e.line) for e in result.events] == [(Kind.INJECTION, n) for n in (1, 4, 7, 10)]


def test_newline_in_security_account_id_never_blames_the_victim(read_log: Callable[..., ReadResult]) -> None:
    """PJSIP copies the unescaped From user into AccountID: a newline there splits the security line."""
    forged = (f'{TS} SECURITY[3030] res_security_log.c: SecurityEvent="InvalidPassword",EventTV="2024-05-01T10:00:00.'
              f'514+0000",Severity="Error",Service="SIP",EventVersion="2",AccountID="6001",SessionID="0x1",'
              f'LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/{VICTIM}/5060"')
    result = read_log([
        security_head("InvalidAccountID") + 'AccountID="1',
        forged,
        f'",SessionID="843ab79c",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/{REAL}/5060"',
    ])
    assert VICTIM not in result.ips()


def test_json_formatter_escapes_the_newline(read_log: Callable[..., ReadResult]) -> None:
    """With the `[json]` formatter the newline stays inside one JSON string: still one forged record."""
    message = (f"Call from '' ({REAL}:5060) to extension '1\n{FORGED_REGISTRATION}\n' rejected because extension not "
               "found in context 'default'.\n")
    record = {"hostname": "pbx", "timestamp": "2024-05-01 10:00:00.000", "identifiers": {"lwp": "3021", "callid": ""},
              "logmsg": {"location": {"filename": "chan_sip.c", "function": "handle_request_invite", "line": 26012},
                         "level": "NOTICE", "message": message}}
    result = read_log([json.dumps(record)])
    assert VICTIM not in result.ips()
    assert [e.kind for e in result.events] == [Kind.INJECTION]


# --- addresses taken from headers are never blamed ---------------------------------------------------------



@pytest.mark.parametrize(
    "line",
    [
        pytest.param(f"{TS} WARNING[3021][C-0000001b] Ext. s: Friendly Scanner from {VICTIM}", id="freepbx-via"),
        pytest.param(SIP + f"Sending fake auth rejection for device \"100\" <sip:100@{VICTIM}>;tag=6331",
                     id="chan_sip-from-host"),
        pytest.param(SIP + f"Failed to authenticate device <sip:100@{VICTIM}>;tag=6331 for INVITE, code = -1",
                     id="chan_sip-from-host-S4b"),
        pytest.param(f"{TS} WARNING[3021] chan_sip.c: Domain 'x' disallowed by contact ACL (violating IP {VICTIM})",
                     id="chan_sip-contact-domain"),
        pytest.param(f"{TS} NOTICE[3021] acl.c: SIP contact ACL: Rejecting '{VICTIM}' due to a failure to pass ACL "
                     "'(BASELINE)'", id="acl-SIP-contact-ACL"),
        pytest.param(f"{TS} NOTICE[3021] acl.c: SIP Contact ACL: Rejecting '{VICTIM}' due to a failure to pass ACL "
                     "'contacts'", id="acl-SIP-Contact-ACL"),
        pytest.param(f"{TS} WARNING[3021] res_pjsip_acl.c: Incoming SIP message from {VICTIM}:0 did not pass ACL "
                     "test", id="res_pjsip_acl-contact-port-0"),
        pytest.param(f"2024-05-01 10:00:01.523341 96.77% [NOTICE] switch_core_session.c:2530 New Channel "
                     f"sofia/external/0046812345678@{VICTIM} [9f1c2a3b-4d5e-4f60-8a7b-0c1d2e3f7a81]",
                     id="freeswitch-new-channel"),
        pytest.param(f"9f1c2a3b-4d5e-4f60-8a7b-0c1d2e3f7a81 2024-05-01 10:00:01.600000 96.77% [NOTICE] "
                     f"switch_core_state_machine.c:390 Hangup sofia/external/1001@{VICTIM} [CS_ROUTING] "
                     "[NO_ROUTE_DESTINATION]", id="freeswitch-hangup"),
    ],
)
def test_header_derived_address_is_never_blamed(read_log: Callable[..., ReadResult], line: str) -> None:
    """Via, From, Contact and FreeSWITCH channel names (`sofia/<profile>/<user>@<From host>`) are caller text."""
    assert VICTIM not in read_log(repeated([line], 6)).ips()


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("2024-05-01 10:00:01.523341 96.77% [WARNING] sofia_reg.c:1787 SIP auth failure (REGISTER) on "
                     f"sofia profile 'internal' for [1001] from ip {VICTIM}@203.0.113.10] from ip {REAL}",
                     id="freeswitch-to-user"),
        pytest.param(f"2024-05-01 10:00:01.523341 96.77% [WARNING] sofia_reg.c:3210 Can't find user [1001] from "
                     f"{VICTIM} x@203.0.113.10] from {REAL}", id="freeswitch-digest-username"),
        pytest.param(f"Mar  3 04:05:06 sip1 /usr/sbin/kamailio[2210]: ALERT: <script>: ALERT: pike blocking REGISTER "
                     f"from sip:1001@x (IP:{VICTIM}:5060) (IP:{REAL}:5060)", id="kamailio-from-uri"),
    ],
)
def test_caller_text_before_a_trusted_tail_names_the_real_sender(line: str) -> None:
    """To user, digest username and `$fu` precede the server-written `from ip %s` / `(IP:$si:$sp)`."""
    event = only(parse_line(line))
    assert (event.kind, str(event.ip)) == (Kind.INJECTION, REAL)


def test_freeswitch_forged_realm_names_the_real_sender() -> None:
    """The realm comes from the Authorization header too; the server writes only `] from %s`."""
    line = (f"2024-05-01 10:00:01.523341 96.77% [WARNING] sofia_reg.c:3210 Can't find user [1001@x] from {VICTIM}] "
            f"from {REAL}")
    event = only(parse_line(line))
    assert (event.kind, str(event.ip)) == (Kind.INJECTION, REAL)


# --- packet dumps: caller-written lines, one header per physical line -------------------------------------

DUMP_SOURCE = "198.51.100.9"


def chan_sip_dump(headers: list[str]) -> list[str]:
    """A chan_sip `sip set debug on` dump: VERBOSE line, then the packet between the markers."""
    return [
        f"{TS} VERBOSE[3021] chan_sip.c: ",
        f"<--- SIP read from UDP:{DUMP_SOURCE}:5060 --->",
        "REGISTER sip:203.0.113.10 SIP/2.0",
        f"Via: SIP/2.0/UDP {DUMP_SOURCE}:5060;branch=z9hG4bK-3447017925;rport",
        "From: \"100\" <sip:100@203.0.113.10>;tag=3130303a70617373776f7264013539",
        "To: \"100\" <sip:100@203.0.113.10>",
        *headers,
        "Call-ID: 1287437621",
        "CSeq: 1 REGISTER",
        "Content-Length: 0",
        "",
        "<------------->",
    ]


def pjsip_dump(headers: list[str]) -> list[str]:
    """A res_pjsip_logger dump: the header names the packet's byte count; the packet follows."""
    packet = "\r\n".join([
        "OPTIONS sip:100@203.0.113.10 SIP/2.0",
        f"Via: SIP/2.0/UDP {DUMP_SOURCE}:5060;branch=z9hG4bK-1",
        "From: \"sipvicious\" <sip:100@1.1.1.1>;tag=6331",
        "To: \"sipvicious\" <sip:100@1.1.1.1>",
        *headers,
        "Call-ID: 1287437621",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "", "",
    ])
    size = len(packet.encode())
    head = (f"{TS} VERBOSE[3021] res_pjsip_logger.c: <--- Received SIP request ({size} bytes) from "
            f"UDP:{DUMP_SOURCE}:5060 --->")
    return [head, *packet.split("\n")]


AFTER_DUMP = f"[2024-05-01 10:00:05] NOTICE[3021] chan_sip.c: Call from '' ({REAL}:5060) to extension '100' rejected " \
             "because extension not found in context 'default'."
FORGED_PIKE_BLOCK = f"Mar  3 04:05:06 sip1 /usr/sbin/kamailio[2210]: WARNING: pike [pike_funcs.c:134]: " \
                    f"pike_check_ipaddr(): PIKE - BLOCKing ip {VICTIM}, node=0x7f3a2c1b4e80"


@pytest.mark.parametrize("dump", [pytest.param(chan_sip_dump, id="chan_sip"), pytest.param(pjsip_dump, id="pjsip")])
def test_forged_lines_inside_a_dump_yield_nothing(read_log: Callable[..., ReadResult],
                                                  dump: Callable[[list[str]], list[str]]) -> None:
    """Every line of a dumped packet is caller text, however much it looks like a log line."""
    result = read_log([*dump([FORGED_REGISTRATION, FORGED_PIKE_BLOCK, f"X-Note: {FORGED_REGISTRATION}"]), AFTER_DUMP])
    assert VICTIM not in result.ips()


@pytest.mark.parametrize("dump", [pytest.param(chan_sip_dump, id="chan_sip"), pytest.param(pjsip_dump, id="pjsip")])
def test_lines_after_a_dump_are_read_again(read_log: Callable[..., ReadResult],
                                           dump: Callable[[list[str]], list[str]]) -> None:
    """The dump ends at its closing marker (chan_sip) or after its byte count (PJSIP)."""
    result = read_log([*dump([FORGED_REGISTRATION]), AFTER_DUMP])
    assert (Kind.REJECTED_CALL, REAL) in {(e.kind, str(e.ip)) for e in result.events}


@pytest.mark.parametrize("dump", [pytest.param(chan_sip_dump, id="chan_sip"), pytest.param(pjsip_dump, id="pjsip")])
def test_scanner_user_agent_in_a_dump_blames_the_dump_source(read_log: Callable[..., ReadResult],
                                                             dump: Callable[[list[str]], list[str]]) -> None:
    """`User-Agent: friendly-scanner` (SIPVicious) inside a received request: a scanner event for the address
    in the dump header, which the server wrote from the socket."""
    result = read_log(dump(["User-Agent: friendly-scanner"]))
    scanners = [e for e in result.events if e.kind == Kind.SCANNER]
    assert [(str(e.ip), e.port) for e in scanners] == [(DUMP_SOURCE, 5060)]


@pytest.mark.parametrize("dump", [pytest.param(chan_sip_dump, id="chan_sip"), pytest.param(pjsip_dump, id="pjsip")])
def test_ordinary_user_agent_in_a_dump_is_nothing(read_log: Callable[..., ReadResult],
                                                  dump: Callable[[list[str]], list[str]]) -> None:
    """A phone's User-Agent is no reason for an event."""
    assert read_log(dump(["User-Agent: Yealink SIP-T46S 66.86.0.15"])).events == []


@pytest.mark.parametrize("dump", [pytest.param(chan_sip_dump, id="chan_sip"), pytest.param(pjsip_dump, id="pjsip")])
def test_forged_lines_inside_a_dump_split_across_buffers_yield_nothing(read_log: Callable[..., ReadResult],
                                                                       dump: Callable[[list[str]], list[str]]) -> None:
    """Wherever a buffer boundary falls inside the dump, its lines stay caller text."""
    lines = [*dump([FORGED_REGISTRATION] * 12), AFTER_DUMP]
    blamed = {chunk for chunk in range(200, 2000, 50) if VICTIM in read_log(lines, chunk=chunk).ips()}
    assert blamed == set()


def test_dump_scanner_event_has_the_verbose_line_time(read_log: Callable[..., ReadResult]) -> None:
    """The dump belongs to the VERBOSE line just before it; its time is the event's time."""
    (event,) = read_log(chan_sip_dump(["User-Agent: friendly-scanner"])).events
    assert event.time > 0




@pytest.mark.parametrize(
    "display_name",
    [
        pytest.param(f"<--- SIP read from UDP:{VICTIM}:5060 --->", id="chan_sip-marker"),
        pytest.param(f"<--- Received SIP request (99999999 bytes) from UDP:{VICTIM}:5060 --->", id="pjsip-marker"),
    ],
)
def test_dump_marker_in_caller_text_hides_nothing(read_log: Callable[..., ReadResult], display_name: str) -> None:
    """A dump starts only where the server wrote a dump header, not where a From display name says so:
    otherwise one request hides the attacker's following requests."""
    first = (PJ_DIST + f"Request 'REGISTER' from '\"{display_name}\" <sip:100@203.0.113.10>' failed for "
             f"'{REAL}:5060' (callid: 1) - Failed to authenticate")
    later = [PJ_DIST.replace("10:00:00", f"10:00:{n:02d}") + f"Request 'REGISTER' from '<sip:10{n}@203.0.113.10>' "
             f"failed for '{REAL}:5060' (callid: {n}) - Failed to authenticate" for n in range(1, 7)]
    result = read_log([first, *later])
    assert len([e for e in result.events if str(e.ip) == REAL]) >= 6




@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(f" 9(2210) ALERT: <script>: ALERT: pike blocking REGISTER from sip:1@x (IP:{VICTIM}:5060)",
                     id="kamailio-line"),
        pytest.param(f"A registration failed user[1001] ip[{VICTIM}] at[2024-05-01T10:00:00.000000+0000]",
                     id="mod_fail2ban-line"),
    ],
)
def test_forged_lines_inside_a_kamailio_message_dump_yield_nothing(read_log: Callable[..., ReadResult],
                                                                   forged: str) -> None:
    """Kamailio's `parse_msg: message=<...>` prints the raw request, one header per physical line, up to `>`."""
    result = read_log([
        " 9(2210) ERROR: <core> [core/parser/msg_parser.c:748]: parse_msg(): ERROR: parse_msg: "
        "message=<OPTIONS sip:100@203.0.113.10 SIP/2.0",
        f"Via: SIP/2.0/UDP {DUMP_SOURCE}:5060;branch=z9hG4bK-1",
        forged,
        "Content-Length: 0",
        ">",
        f" 9(2210) ERROR: <core> [core/receive.c:277]: receive_msg(): core parsing of SIP message failed "
        f"({DUMP_SOURCE}:5060/1)",
    ])
    assert VICTIM not in result.ips()
