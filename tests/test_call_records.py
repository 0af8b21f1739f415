"""Call-activity records (issue 7): CDR and CEL files and the `full` log's verbose lines become
`registration`, `call_start`, `call_answer` and `call_end` events.

Rows are written exactly as Asterisk writes them: `cdr_csv` (cdr/cdr_csv.c build_csv_record(): strings
quoted with doubled quotes, durations bare, no header row) with the column sets its cdr.conf options give,
`cdr_custom` and `cel_custom` with the mappings of their sample configuration files. CDR times are UTC
(cdr.conf.sample: `usegmtime=yes`, the default `cdr_timezone`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from conftest import ReadResult, one, parse_line
from sipwatch.event import HOSTILE_KINDS, Kind, Service


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


CLID = '"""Alice"" <6001>"'  # caller ID with quotes, doubled as cdr_csv writes them
HEAD = f'"","6001","0044207946000","from-internal",{CLID},"PJSIP/6001-00000001","PJSIP/trunk-00000002",'
DIAL = '"Dial","PJSIP/0044207946000@trunk,60,T",'
TIMES = '"2024-05-03 19:20:02","2024-05-03 19:20:05","2024-05-03 19:21:05",63,60,"ANSWERED","DOCUMENTATION"'
END = utc(2024, 5, 3, 19, 21, 5)

CDR_ROWS = [
    pytest.param(HEAD + DIAL + TIMES, None, None, "cdr_csv", id="cdr_csv-compiled-defaults-16-columns"),
    pytest.param(HEAD + DIAL + TIMES + ',"1714764002.1",""', "1714764002.1", None, "cdr_csv",
                 id="cdr_csv-sample-config-uniqueid-userfield"),
    pytest.param(HEAD + DIAL + TIMES + ',"1714764002.1","src=198.51.100.7:5060"', "1714764002.1", "198.51.100.7",
                 "cdr_csv", id="cdr_csv-userfield-with-source"),
    pytest.param(HEAD + DIAL + TIMES + ',"pbx1-1714764002.1"', "pbx1-1714764002.1", None, "cdr_csv",
                 id="cdr_csv-loguniqueid-only-with-systemname"),
    pytest.param(HEAD + DIAL + TIMES + ',"src=198.51.100.7:5060"', None, "198.51.100.7", "cdr_csv",
                 id="cdr_csv-loguserfield-only"),
    pytest.param(HEAD + DIAL + TIMES + ',"1714764002.1","src=[2001:db8::7]:5060","","1714764002.1",1',
                 "1714764002.1", "2001:db8::7", "cdr_csv", id="cdr_csv-newcdrcolumns-ipv6-source"),
    pytest.param(f'{CLID},"6001","0044207946000","from-internal","PJSIP/6001-00000001","PJSIP/trunk-00000002",'
                 '"Dial","PJSIP/0044207946000@trunk,60,T","2024-05-03 19:20:02","2024-05-03 19:20:05",'
                 '"2024-05-03 19:21:05","63","60","ANSWERED","DOCUMENTATION","","1714764002.1",'
                 '"src=198.51.100.7:5060",1', "1714764002.1", "198.51.100.7", "cdr_custom",
                 id="cdr_custom-sample-mapping"),
]


@pytest.mark.parametrize(("row", "uniqueid", "ip", "layout"), CDR_ROWS)
def test_a_cdr_row_is_one_ended_call(row: str, uniqueid: str | None, ip: str | None, layout: str) -> None:
    """The account comes from the channel (server-written), never from caller ID; the source address
    only from the userfield the dialplan wrote; times from `end`, `duration` and `billsec`."""
    event = one(row)
    call = event.call
    assert call is not None
    assert (event.kind, event.service, event.account, event.target, event.time) == (
        Kind.CALL_END, Service.PJSIP, "6001", "0044207946000", END)
    assert (call.uniqueid, call.channel, call.peer, call.duration, call.billsec, call.disposition) == (
        uniqueid, "PJSIP/6001-00000001", "PJSIP/trunk-00000002", 63, 60, "ANSWERED")
    assert (str(event.ip) if event.ip else None, event.form) == (ip, f"asterisk.cdr.{layout}")
    assert event.kind not in HOSTILE_KINDS


def test_a_forged_caller_id_cannot_shift_the_columns() -> None:
    """The caller ID name is the caller's text; cdr_csv doubles its quotes, so a name that imitates the
    end of a row (`","ANSWERED","DOCUMENTATION","…`) stays one field, and the account stays the channel's."""
    name = 'x","ANSWERED","DOCUMENTATION","1714764009.9","src=203.0.113.66:5060'
    clid = '"' + f'"{name}" <6099>'.replace('"', '""') + '"'
    row = HEAD.replace(CLID, clid) + DIAL + TIMES + ',"1714764002.1",""'
    event = one(row)
    assert event.call is not None
    assert (event.account, event.call.uniqueid, event.ip) == ("6001", "1714764002.1", None)


@pytest.mark.parametrize(("disposition", "answer", "billsec"), [
    ("NO ANSWER", "", 0), ("BUSY", "", 0), ("FAILED", "", 0), ("CONGESTION", "", 0),
])
def test_unanswered_cdr_rows(disposition: str, answer: str, billsec: int) -> None:
    row = (HEAD + DIAL + f'"2024-05-03 19:20:02",{answer},"2024-05-03 19:20:32",30,{billsec},'
           f'"{disposition}","DOCUMENTATION","1714764002.1",""')
    call = one(row).call
    assert call is not None and (call.disposition, call.billsec, call.duration) == (disposition, 0, 30)


GARBAGE = [
    pytest.param(HEAD + DIAL + TIMES + ',"1714764002.1","","x"', id="column-count-changed"),
    pytest.param(HEAD + DIAL + TIMES.replace("2024-05-03 19:21:05", "2024-13-03 19:21:05"), id="broken-end-date"),
    pytest.param(HEAD + DIAL + TIMES.replace("2024-05-03 19:20:02", "yesterday"), id="broken-start-date"),
    pytest.param(HEAD + DIAL + TIMES.replace(",63,60,", ",sixty,60,"), id="broken-duration"),
    pytest.param(HEAD + DIAL + TIMES.replace(",63,60,", ",63,600,"), id="billsec-longer-than-the-call"),
    pytest.param(HEAD + DIAL + TIMES + ',"1714764002.1","src=not-an-address"', id="broken-source"),
    pytest.param(HEAD + DIAL + TIMES.replace('"DOCUMENTATION"', '"PRIORITY"'), id="unknown-ama-flags"),
    pytest.param('"unterminated,"ANSWERED","DOCUMENTATION', id="broken-quoting"),
]


@pytest.mark.parametrize("row", GARBAGE)
def test_garbage_cdr_rows_are_skipped_and_counted(row: str, read_log: Callable[..., ReadResult]) -> None:
    good = HEAD + DIAL + TIMES + ',"1714764002.1",""'
    result = read_log([good, row, good.replace("1714764002.1", "1714764009.2")])
    assert [e.call.uniqueid for e in result.events if e.call] == ["1714764002.1", "1714764009.2"]
    assert (result.stats.bad, result.stats.bad_samples[0][1]) == (1, 2)


def test_a_header_row_and_binary_junk_do_not_stop_the_file(read_log: Callable[..., ReadResult]) -> None:
    header = "accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,answer,end,duration"
    good = HEAD + DIAL + TIMES + ',"1714764002.1",""'
    result = read_log(header.encode() + b"\n\x00\xff\xfe junk\n" + good.encode() + b"\n")
    assert len(result.events) == 1


def test_cdr_times_follow_cdr_timezone(log_path: Callable[..., object]) -> None:
    """`usegmtime=no` writes local time: `cdr_timezone = ""` reads CDR times like log times."""
    from sipwatch.config import Config
    from sipwatch.formats.records import ScanStats
    from sipwatch.scan import Reader
    from sipwatch.sources.files import FileSource

    path = log_path([HEAD + DIAL + TIMES])
    stats = ScanStats()
    config = Config(timezone="Europe/Berlin", cdr_timezone="")
    events = list(Reader(config).events(FileSource(str(path)), stats))
    assert events[0].time == END - 2 * 3600  # 19:21:05 in Berlin (CEST) is 17:21:05 UTC


# --- CEL ------------------------------------------------------------------------------------------

def cel(event: str, uniqueid: str, channel: str, exten: str = "0044207946000", extra: str = "",
        literal: bool = False) -> str:
    """A row of cel_custom.conf.sample's legacy mapping (optionally with its `My Literal` column)."""
    fields = [event, *(["My Literal"] if literal else []), "1714764002.123456", "Alice", "6001", "6001", "", exten,
              exten, "from-internal", channel, "Dial", "PJSIP/0044207946000@trunk", "3", "", uniqueid,
              "1714764002.1", "", "", "", extra]
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields)


def cel_advanced(event: str) -> str:
    """A row of cel_custom.conf.sample's advanced mapping (`fields = EventType,EventEnum,"My Literal",…`)."""
    fields = [event, event, "My Literal", "2024-05-03 19:20:02", "", "Alice", "6001", "0044207946000",
              "from-internal", "PJSIP/6001-00000001", "", "", "DOCUMENTATION", "", "1714764002.1", "", "6001", "",
              "0044207946000", "", "1714764002.1", "", "", ""]
    return ",".join(f'"{f}"' for f in fields)


CEL_ROWS = [
    pytest.param(cel("CHAN_START", "1714764002.1", "PJSIP/6001-00000001"), Kind.CALL_START, "6001",
                 "0044207946000", None, id="chan-start-of-the-caller"),
    pytest.param(cel("CHAN_START", "1714764002.1", "PJSIP/6001-00000001", literal=True), Kind.CALL_START, "6001",
                 "0044207946000", None, id="chan-start-with-the-sample-literal"),
    pytest.param(cel("ANSWER", "1714764002.2", "PJSIP/trunk-00000002"), Kind.CALL_ANSWER, None, None, None,
                 id="answer-of-the-callee-leg"),
    pytest.param(cel("HANGUP", "1714764002.1", "PJSIP/6001-00000001",
                     extra='{"hangupcause":16,"hangupsource":"PJSIP/6001-00000001","dialstatus":"ANSWER"}'),
                 Kind.CALL_END, "6001", None, "ANSWERED", id="hangup-with-dialstatus"),
    pytest.param(cel("LINKEDID_END", "1714764002.1", "PJSIP/6001-00000001"), Kind.CALL_END, "6001", None, None,
                 id="linkedid-end"),
    pytest.param(cel_advanced("CHAN_START"), Kind.CALL_START, "6001", "0044207946000", None, id="advanced-mapping"),
]


@pytest.mark.parametrize(("row", "kind", "account", "target", "disposition"), CEL_ROWS)
def test_cel_rows(row: str, kind: Kind, account: str | None, target: str | None, disposition: str | None) -> None:
    """Every event of one call carries its linkedid; only the caller's channel names the account."""
    event = one(row)
    assert event.call is not None
    assert (event.kind, event.account, event.target, event.call.linkedid, event.call.disposition) == (
        kind, account, target, "1714764002.1", disposition)


def test_cel_callee_legs_and_other_events_are_not_calls(read_log: Callable[..., ReadResult]) -> None:
    rows = [cel("CHAN_START", "1714764002.2", "PJSIP/trunk-00000002"),
            cel("HANGUP", "1714764002.2", "PJSIP/trunk-00000002"),
            cel("APP_START", "1714764002.1", "PJSIP/6001-00000001")]
    result = read_log(rows)
    assert (result.events, result.stats.bad) == ([], 0)


# --- the `full` log -------------------------------------------------------------------------------

V22 = "[2024-05-03 19:20:02] VERBOSE[2817][C-00000001] "
V13 = "[2024-05-03 19:20:02] VERBOSE[2817][C-00000001] pbx.c:     -- "

LOG_LINES = [
    pytest.param(V22 + 'pbx.c: Executing [0044207946000@from-internal:1] Dial("PJSIP/6001-00000001", '
                 '"PJSIP/0044207946000@trunk,60,T") in new stack', Kind.CALL_START, "6001", "0044207946000",
                 "PJSIP/6001-00000001", id="dial-22"),
    pytest.param(V13 + 'Executing [900441234567@from-internal:2] Dial("SIP/6002-0000002c", '
                 '"SIP/trunk/00441234567,60")', Kind.CALL_START, "6002", "900441234567", "SIP/6002-0000002c",
                 id="dial-chan_sip-1.8-verbose-marker"),
    pytest.param(V22 + "app_dial.c: PJSIP/trunk-00000002 answered PJSIP/6001-00000001", Kind.CALL_ANSWER, "6001",
                 None, "PJSIP/6001-00000001", id="answered"),
    pytest.param(V22 + "pbx.c: Spawn extension (from-internal, 0044207946000, 1) exited non-zero on "
                 "'PJSIP/6001-00000001'", Kind.CALL_END, "6001", "0044207946000", "PJSIP/6001-00000001",
                 id="caller-hung-up"),
    pytest.param(V22 + 'pbx.c: Executing [0044207946000@from-internal:2] Hangup("PJSIP/6001-00000001", "")',
                 Kind.CALL_END, "6001", "0044207946000", "PJSIP/6001-00000001", id="dialplan-hangup"),
    pytest.param(V22 + "pbx.c: Auto fallthrough, channel 'PJSIP/6001-00000001' status is 'NOANSWER'",
                 Kind.CALL_END, "6001", None, "PJSIP/6001-00000001", id="auto-fallthrough"),
]


@pytest.mark.parametrize(("line", "kind", "account", "target", "channel"), LOG_LINES)
def test_full_log_call_lines(line: str, kind: Kind, account: str, target: str | None, channel: str) -> None:
    event = one(line)
    assert event.call is not None
    assert (event.kind, event.account, event.target, event.call.channel, event.ip) == (
        kind, account, target, channel, None)


CONTACTS = [
    pytest.param("Added contact 'sip:6001@192.0.2.10:5060;ob' to AOR '6001' with expiration of 3600 seconds",
                 "Added", id="added"),
    pytest.param("Added contact 'sip:6001@192.0.2.10:5060;ob' to AOR '6001' with path '' and expiration of 3600 "
                 "seconds", "Added", id="added-with-path"),
    pytest.param("Updated contact 'sip:6001@192.0.2.10:5060' to AOR '6001' with new expiration of 60 seconds",
                 "Updated", id="updated-13"),
    pytest.param("Removed contact 'sip:6001@192.0.2.10:5060;ob' from AOR '6001' due to request", "Removed",
                 id="removed"),
    pytest.param("Removed contact 'sip:6001@192.0.2.10:5060;ob' from AOR '6001' due to expiration", "Removed",
                 id="expired"),
]


@pytest.mark.parametrize(("message", "reason"), CONTACTS)
def test_contact_lines_are_registrations_whose_address_is_only_a_hint(message: str, reason: str) -> None:
    """The Contact URI is the phone's own text: kept as a hint, never the event's address."""
    event = one(V22 + "res_pjsip_registrar.c: " + message)
    assert (event.kind, event.account, event.reason, event.ip) == (Kind.REGISTRATION, "6001", reason, None)
    assert event.extra["contact"].startswith("sip:6001@192.0.2.10:5060")


def test_a_forged_contact_cannot_change_the_account() -> None:
    forged = "sip:6001@192.0.2.10' to AOR 'victim' with expiration of 60 seconds"
    event = one(V22 + f"res_pjsip_registrar.c: Added contact '{forged}' to AOR '6001' with expiration of 60 seconds")
    assert (event.kind, event.account) == (Kind.REGISTRATION, "6001")


def test_a_dialled_number_that_forges_a_dial_line_blames_no_account() -> None:
    """The dialled number is caller text: one holding `] Dial("` makes an injection naming nobody."""
    exten = 'x@ctx:1] Dial("PJSIP/6099-00000009", "y'
    events = parse_line(V22 + f'pbx.c: Executing [{exten}@from-internal:1] Dial("PJSIP/6001-00000001", '
                        f'"PJSIP/{exten}@trunk")')
    assert [(e.kind, e.account, e.call) for e in events] == [(Kind.INJECTION, None, None)]


def test_call_lines_of_other_shapes_are_not_reported_as_unknown_security_lines(
        read_log: Callable[..., ReadResult]) -> None:
    lines = [V22 + "app_queue.c: Agent PJSIP/6003-00000004 answered the call",
             V22 + "res_pjsip_registrar.c: Refreshed contact 'sip:6001@192.0.2.10' on AOR '6001' (no expiry)"]
    result = read_log(lines)
    assert (result.events, result.stats.unmatched) == ([], 0)


def test_a_contact_qualified_is_not_even_a_candidate(read_log: Callable[..., ReadResult]) -> None:
    """PJSIP's DEBUG `Qualifying contact` lines (one per contact a minute) carry no registration's fixed tail:
    the prefilter passes them over."""
    lines = [V22 + "res_pjsip/pjsip_options.c: Qualifying contact 'sip:6025@192.0.2.34:5060;ob' on AOR '6025'"]
    result = read_log(lines)
    assert (result.events, result.stats.candidates, result.stats.unmatched) == ([], 0, 0)


def test_scan_takes_a_master_csv_like_a_log(scan_log: Callable[..., object]) -> None:
    """`sipwatch scan Master.csv`: detected per line, through the same reading path as logs."""
    from sipwatch.scan import ScanResult

    result = scan_log([HEAD + DIAL + TIMES + ',"1714764002.1",""'] * 3)
    assert isinstance(result, ScanResult)
    assert (result.stats.events, result.kinds[Kind.CALL_END]) == (3, 3)


OTHER = HEAD.replace("6001", "6002") + DIAL + TIMES + ',"1714763999.8",""'
FORGED_LOG = ("[2024-05-03 19:20:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for "
              "'203.0.113.66:5060' - Wrong password")


@pytest.mark.parametrize(
    ("caller_text", "why"),
    [
        pytest.param(f"6001\n{FORGED_LOG}\n", "a log line of its own", id="forged-log-line"),
        pytest.param('6001\n","6009","0088213","x","y","PJSIP/6009-1","PJSIP/t-1","Dial","x","2024-05-03 19:20:02",'
                     '"2024-05-03 19:20:05","2024-05-03 19:21:05",63,60,"ANSWERED","DOCUMENTATION","9.9","src=6.6.6.6',
                     "a row of its own (its quotes come doubled)", id="forged-row"),
    ],
)
def test_a_line_break_in_a_cdr_field_keeps_the_row_whole(caller_text: str, why: str,
                                                         read_log: Callable[..., ReadResult]) -> None:
    """cdr_csv writes a field as it is, line breaks included (a caller number from a URI-decoded `%0A`):
    the row is one record, its call is counted for its own account and address, the text after the line
    break is not read as {why}, and the rows after it are read as before."""
    src = caller_text.replace('"', '""')
    row = f'"","{src}","0088213","from-internal",{CLID},"PJSIP/6001-00000001","PJSIP/trunk-00000002",' + DIAL \
        + TIMES + ',"1714763999.1","src=198.51.100.20:5060"'
    result = read_log([OTHER, row, OTHER.replace("6002", "6003")])
    assert [(e.account, str(e.ip) if e.ip else None) for e in result.events] == [
        ("6002", None), ("6001", "198.51.100.20"), ("6003", None)]
    assert all(e.kind is Kind.CALL_END for e in result.events)
