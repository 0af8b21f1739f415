"""The AMI source against a small AMI server.

A connection that drops (Asterisk restarting, the network): a clear problem while it is down, no crash, and
the events that follow the reconnection arrive; those read before the drop were handed over. A new
contact's user agent, which Asterisk 22's ContactStatus leaves out, is asked for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from fakeami import FakeAmi
from sipwatch.event import Event, Kind
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats
from sipwatch.sources.ami import AmiFollower
from sipwatch.timeparse import TimeParser


def _invalid_account(account: str, ip: str) -> dict[str, str]:
    return {"Event": "InvalidAccountID", "Privilege": "security,all", "EventTV": "2026-12-02T13:18:51.971+0000",
            "Severity": "Error", "Service": "PJSIP", "EventVersion": "1", "AccountID": account, "SessionID": "c1@x",
            "LocalAddress": "IPV4/UDP/203.0.113.10/5060", "RemoteAddress": f"IPV4/UDP/{ip}/40011"}


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def ami() -> Iterator[tuple[FakeAmi, AmiFollower]]:
    server = FakeAmi().start()
    follower = AmiFollower(f"ami://sipwatch:secret@127.0.0.1:{server.port}")
    try:
        assert follower.wait_ready(10), follower.problem
        yield server, follower
    finally:
        follower.close()


def _events(follower: AmiFollower, expected: int) -> list[Event]:
    """What the daemon makes of the follower's lines (read as its own: AMI call lines only from `ami://`)."""
    found: list[Event] = []
    parser = LineParser(TimeParser(2026))
    scanner = RecordScanner(parser, Prefilter(parser.markers), follower.path, ScanStats())

    def more() -> bool:
        for chunk in follower.read():
            found.extend(scanner.events(chunk.data))
        return len(found) >= expected

    assert _until(more), found
    return found


def test_a_dropped_connection_is_a_clear_problem_and_reading_resumes_after_it(
        ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.send(_invalid_account("100", "198.51.100.7"))
    assert [str(e.ip) for e in _events(follower, 1)] == ["198.51.100.7"]
    server.drop()
    assert _until(lambda: follower.problem is not None, 5)
    assert "AMI connection was lost" in str(follower.problem) and "reconnecting" in str(follower.problem)
    assert not follower.session.ready
    assert _until(lambda: server.logins == 2 and follower.problem is None and follower.session.ready, 10), \
        follower.problem  # panoramisk logs in again on its own
    server.send(_invalid_account("101", "198.51.100.8"))
    assert [(str(e.ip), e.account) for e in _events(follower, 1)] == [("198.51.100.8", "101")]


def test_a_refused_login_stays_the_problem_when_asterisk_then_closes_the_connection() -> None:
    server = FakeAmi().start()
    server.secret = "right"
    follower = AmiFollower(f"ami://sipwatch:wrong@127.0.0.1:{server.port}")
    try:
        assert not follower.wait_ready(5)
        time.sleep(2.5)  # a reconnection, refused again
        assert "refused the login" in str(follower.problem)
    finally:
        follower.close()


def test_events_queued_before_the_drop_are_still_read_after_it(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    for n in range(50):
        server.send(_invalid_account(str(200 + n), "198.51.100.9"))
    assert _until(lambda: follower.lines + len(follower._queue) >= 50, 5)
    server.drop()
    assert _until(lambda: follower.problem is not None, 5)
    assert [e.account for e in _events(follower, 50)] == [str(200 + n) for n in range(50)]


# --- a contact's user agent, which ContactStatus leaves out -----------------------------------------

def _contact_status(uri: str, status: str = "NonQualified") -> dict[str, str]:
    """As Asterisk 22 sends it: no user agent, no source address."""
    return {"Event": "ContactStatus", "Privilege": "system,all", "URI": uri, "ContactStatus": status,
            "AOR": "6001", "EndpointName": "6001", "RoundtripUsec": "0"}


def test_a_new_contact_s_user_agent_is_asked_for_and_rides_on_its_registration(
        ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.contacts["6001"] = {"sip:6001@192.0.2.18:5060": "Yealink SIP-T41G", "sip:6001@203.0.113.50:5060": "Zoiper"}
    server.send(_contact_status("sip:6001@203.0.113.50:5060"))
    (event,) = _events(follower, 1)
    assert (event.kind, event.account, event.user_agent, event.ip) == ("registration", "6001", "Zoiper", None)
    assert event.extra["contact"] == "sip:6001@203.0.113.50:5060"  # the phone's words: a hint, never a source
    server.send(_contact_status("sip:6001@203.0.113.50:5060", "Updated"))  # a re-registration: remembered
    assert [e.user_agent for e in _events(follower, 1)] == ["Zoiper"]
    assert len(server.actions) == 1


@pytest.mark.parametrize(("contacts", "uri"), [
    pytest.param({}, "sip:6001@203.0.113.50:5060", id="endpoint-unknown-action-refused"),
    pytest.param({"6001": {"sip:6001@192.0.2.18:5060": "Yealink"}}, "sip:6001@203.0.113.50:5060",
                 id="contact-gone-already"),
])
def test_without_an_answer_the_registration_goes_on_without_a_user_agent(
        ami: tuple[FakeAmi, AmiFollower], contacts: dict[str, dict[str, str]], uri: str) -> None:
    server, follower = ami
    server.contacts.update(contacts)
    server.send(_contact_status(uri))
    (event,) = _events(follower, 1)
    assert (event.kind, event.user_agent) == ("registration", None)


def test_a_removed_contact_asks_nothing(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.send(_contact_status("sip:6001@203.0.113.50:5060", "Removed"))
    assert [e.kind for e in _events(follower, 1)] == ["registration"]
    assert server.actions == []


def test_a_chan_sip_registration_s_user_agent_is_asked_of_sipshowpeer(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.contacts["6001"] = {"": "Grandstream GXP2170 1.0.11.6"}
    server.send({"Event": "PeerStatus", "Privilege": "system,all", "ChannelType": "SIP", "Peer": "SIP/6001",
                 "PeerStatus": "Registered", "Address": "198.51.100.7:5060"})
    (event,) = _events(follower, 1)
    assert (event.kind, event.account, event.user_agent, event.ip) == ("registration", "6001",
                                                                        "Grandstream GXP2170 1.0.11.6", None)
    assert [a["Action"] for a in server.actions] == ["SIPshowpeer"]


def test_a_qualify_result_asks_nothing(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.send(_contact_status("sip:6001@192.0.2.18:5060", "Reachable"))
    server.send(_contact_status("sip:6001@192.0.2.18:5060", "Removed"))
    assert [e.reason for e in _events(follower, 1)] == ["Removed"]  # Reachable tells of no registration
    assert server.actions == []


def test_a_line_break_in_caller_text_cannot_add_an_address_to_a_security_event(
        ami: tuple[FakeAmi, AmiFollower]) -> None:
    """An AMI field is one `Key: value` line: caller text with a line break (an AccountID from a URI-decoded
    `%0D%0A`) would add a `RemoteAddress:` line of its own. The field then comes twice: an `injection` event,
    which names the address Asterisk wrote after the caller's field, never the forged one."""
    server, follower = ami
    server.send(_invalid_account("x\r\nRemoteAddress: IPV4/UDP/203.0.113.66/5060", "198.51.100.7"))
    server.send(_invalid_account("9999", "198.51.100.8"))
    forged, honest = _events(follower, 2)
    assert forged.kind is Kind.INJECTION and str(forged.ip) == "198.51.100.7"
    assert str(honest.ip) == "198.51.100.8"


def test_a_call_event_with_a_field_twice_is_not_read(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    server.send({"Event": "Newchannel", "Channel": "PJSIP/6001-00000001", "CallerIDName": "x\r\nChannel: PJSIP/6002-1",
                 "Exten": "0044207", "Uniqueid": "1.1", "Linkedid": "1.1"})
    server.send(_invalid_account("9999", "198.51.100.9"))
    (event,) = _events(follower, 1)
    assert str(event.ip) == "198.51.100.9"
    assert follower.forged == 1
