"""AMI call events become call-activity events; a real Asterisk 22 transcript (phone 6001 registers,
calls 0049301234567, the PBX answers and the call is hung up) is one registration and one call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipwatch.calls import CallBook
from sipwatch.event import Event, Kind
from sipwatch.formats.ami import RECEIVED, render
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats
from sipwatch.numbers import NumberClassifier
from sipwatch.timeparse import TimeParser

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "asterisk22" / "ami-call-transcript.txt"
AMI = "ami://sipwatch@127.0.0.1:5038"


def _transcript() -> list[dict[str, str]]:
    blocks = FIXTURE.read_bytes().decode().split("\r\n\r\n")
    return [dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line) for block in blocks
            if block.strip()]


def _read(lines: bytes, name: str = AMI) -> tuple[list[Event], ScanStats]:
    parser = LineParser(TimeParser(2026))
    stats = ScanStats()
    return RecordScanner(parser, Prefilter(parser.markers), name, stats).events(lines), stats


def _replay() -> list[Event]:
    events, stats = _read(b"".join(render(e, 1796222277.0 + i / 10) for i, e in enumerate(_transcript())))
    assert stats.unmatched == 0 and stats.junk == 0
    return events


def test_a_real_call_on_ami_becomes_its_call_events() -> None:
    kinds = [(e.kind, e.form, e.account, e.target) for e in _replay()]
    assert kinds == [
        (Kind.REGISTRATION, "ami.contact_status", "6001", None),
        (Kind.CALL_START, "ami.new_channel", "6001", "0049301234567"),
        (Kind.CALL_ANSWER, "ami.newstate", "6001", None),  # the dialplan answered it
        (Kind.CALL_END, "ami.cdr", "6001", "0049301234567"),
        (Kind.CALL_END, "ami.hangup", "6001", None),
    ]


def test_the_call_events_of_one_call_carry_its_ids() -> None:
    calls = [e.call for e in _replay() if e.call is not None]
    assert {c.uniqueid for c in calls} == {"1796222277.0"}
    assert {c.channel for c in calls} == {"PJSIP/6001-00000000"}
    (cdr,) = [e.call for e in _replay() if e.form == "ami.cdr"]
    assert cdr is not None and (cdr.duration, cdr.billsec, cdr.disposition) == (2.0, 2.0, "ANSWERED")


def test_one_call_seen_through_four_ami_events_is_one_call() -> None:
    book = CallBook(NumberClassifier("DE"))
    firsts = [seen[1] for e in _replay() if (seen := book.observe(e)) is not None]
    assert firsts == [True, False, False, False]


def test_the_time_is_when_the_event_arrived_unless_asterisk_stamps_it() -> None:
    line = render({"Event": "Hangup", "Channel": "PJSIP/6001-00000001", "Uniqueid": "1.1", "Linkedid": "1.1",
                   "Timestamp": "1796222290.250000"}, 1796222299.0)
    (event,) = _read(line)[0]
    assert event.time == pytest.approx(1796222290.25)


@pytest.mark.parametrize("fields", [
    {"Event": "Newchannel", "Channel": "PJSIP/6002-00000002", "Exten": "6001", "Uniqueid": "1.2",
     "Linkedid": "1.1"},  # a callee leg: the call is the caller's
    {"Event": "Newchannel", "Channel": "PJSIP/6001-00000003", "Exten": "s", "Uniqueid": "1.3",
     "Linkedid": "1.3"},  # no number dialled (yet)
    {"Event": "DialEnd", "Channel": "PJSIP/6001-00000004", "DialStatus": "BUSY", "Uniqueid": "1.4",
     "Linkedid": "1.4"},
    {"Event": "ContactStatus", "AOR": "6001", "ContactStatus": "Reachable", "URI": "sip:6001@198.51.100.7"},
    {"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/6001", "PeerStatus": "Reachable"},  # Asterisk 22
    {"Event": "PeerStatus", "ChannelType": "SIP", "Peer": "SIP/6001", "PeerStatus": "Lagged",
     "Address": "198.51.100.7:5060"},  # a qualify result
    {"Event": "Newstate", "Channel": "PJSIP/carrier-00000001", "ChannelStateDesc": "Up", "Uniqueid": "1.6",
     "Linkedid": "1.5"},  # the callee leg answered: the caller's own channel tells
])
def test_events_that_tell_of_no_call_activity_are_left_alone(fields: dict[str, str]) -> None:
    assert _read(render(fields, 1796222277.0))[0] == []


@pytest.mark.parametrize(("status", "address"), [("Registered", "198.51.100.7:5060"), ("Unregistered", None)])
def test_a_chan_sip_peer_status_is_a_registration_whose_address_is_only_a_hint(status: str,
                                                                               address: str | None) -> None:
    fields = {"Event": "PeerStatus", "Privilege": "system,all", "ChannelType": "SIP", "Peer": "SIP/6001",
              "PeerStatus": status, **({"Address": address} if address else {"Cause": "Expired"})}
    (event,) = _read(render(fields, 1796222299.0))[0]
    assert (event.kind, event.service, event.account, event.ip) == (Kind.REGISTRATION, "SIP", "6001", None)
    assert event.extra.get("contact") == address


def test_the_caller_id_never_names_the_account() -> None:
    line = render({"Event": "Newchannel", "Channel": "PJSIP/6001-00000005", "CallerIDNum": "6099",
                   "Exten": "00882123456", "Uniqueid": "1.5", "Linkedid": "1.5"}, 1796222277.0)
    (event,) = _read(line)[0]
    assert event.account == "6001"


def test_a_contact_uri_is_a_hint_never_a_source_address() -> None:
    line = render({"Event": "ContactStatus", "AOR": "6001", "ContactStatus": "Created",
                   "URI": "sip:6001@198.51.100.7:5060"}, 1796222277.0)
    (event,) = _read(line)[0]
    assert event.ip is None and event.extra["contact"] == "sip:6001@198.51.100.7:5060"


def test_ami_lines_in_a_log_file_are_caller_text_and_never_read(tmp_path: Path) -> None:
    """A forged `{"ami": ...}` line (an attacker's line break in a logged field) names no one."""
    forged = json.dumps({"ami": {"Event": "Cdr", "Channel": "PJSIP/6001-00000009", "Destination": "00882123",
                                 "Disposition": "ANSWERED", "Duration": "60", "BillableSeconds": "60",
                                 "UserField": "src=192.0.2.200:5060", RECEIVED: "1796222277.0"}}).encode()
    log = b"[2026-12-02 14:37:57] NOTICE[1] chan_sip.c: Call from 'x\n" + forged + b"\n"
    assert _read(log, str(tmp_path / "full"))[0] == []
    assert _read(forged + b"\n", str(tmp_path / "Master.csv"))[0] == []


@pytest.mark.parametrize("line", [
    b'{"ami": {"Event": "Newchannel", "Channel": ',  # truncated
    b'{"ami": {"Event": "Hangup"}}',  # no channel, no ids
    b'{"ami": ["Event", "Newchannel"]}',
    b'{"ami": {"Event": "Cdr", "Duration": "-5", "BillableSeconds": "x", "UserField": "src=not-an-address"}}',
    b'{"ami": {"Event": "DialBegin", "Channel": "' + b"A" * 1_000_000 + b'"}}',  # a 1 MB line
    b"\x00\xff\xfe{\"ami\": {\"Event\": \"Newchannel\"\x80}}",
    b'{"ami": {"Event": "CEL", "EventName": "CHAN_START"}}',  # no channel, no ids
    b'{"ami": {"Event": "CEL", "EventName": "HANGUP", "UniqueID": "1.1", "LinkedID": "1.1", "Extra": "{not json"}}',
    b'{"ami": {"Event": "CEL", "EventName": "NO_SUCH_EVENT", "UniqueID": "1.1"}}',
    b'{"ami": {"Event": "Newstate", "ChannelStateDesc": "Up"}}',  # no ids
    b'{"ami": {"Event": "PeerStatus", "ChannelType": "SIP", "Peer": "SIP/", "PeerStatus": "Registered"}}',
    b'{"ami": {"Event": "PeerStatus", "ChannelType": "SIP", "Peer": "6001", "PeerStatus": "Registered"}}',
])
def test_broken_ami_lines_are_skipped_never_a_crash(line: bytes) -> None:
    events, _ = _read(line + b"\n")
    assert all(e.kind in (Kind.CALL_END, Kind.CALL_START) and e.ip is None for e in events)


def test_a_cel_event_s_caller_id_never_names_the_account() -> None:
    line = render({"Event": "CEL", "EventName": "CHAN_START", "CallerIDnum": "6002", "CallerIDname": "6003",
                   "Channel": "PJSIP/6001-00000007", "Exten": "0049301234567", "UniqueID": "1.7",
                   "LinkedID": "1.7"}, 1796222299.0)
    (event,) = _read(line)[0]
    assert (event.kind, event.account, event.target) == (Kind.CALL_START, "6001", "0049301234567")
