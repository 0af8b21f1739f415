"""AMI security events become security-log records that the same reader parses; caller-written values
(AccountID, SessionID) cannot smuggle a second address in, because their quotes are neutralised."""

from __future__ import annotations

import pytest

from conftest import VICTIM, parse_line
from sipwatch.event import Kind
from sipwatch.sources.ami import AmiError, AmiFollower, render

EVENT = {"Event": "InvalidAccountID", "Privilege": "security,all", "EventTV": "2026-12-02T13:18:51.971+0000",
         "Severity": "Error", "Service": "PJSIP", "EventVersion": "1", "AccountID": "9999", "SessionID": "c1@x",
         "LocalAddress": "IPV4/UDP/203.0.113.10/5060", "RemoteAddress": "IPV4/UDP/198.51.100.7/40011"}


def test_an_ami_event_reads_like_the_security_log() -> None:
    (event,) = parse_line(render(EVENT).decode())
    assert (event.kind, str(event.ip), event.port, event.account) == (Kind.UNKNOWN_ACCOUNT, "198.51.100.7", 40011,
                                                                       "9999")


@pytest.mark.parametrize("field", ["AccountID", "SessionID"])
def test_a_forged_address_in_a_caller_field_is_never_blamed(field: str) -> None:
    forged = dict(EVENT, **{field: f'x",RemoteAddress="IPV4/UDP/{VICTIM}/5060'})
    events = parse_line(render(forged).decode())
    assert events and all(str(e.ip) != VICTIM for e in events)
    assert str(events[0].ip) == "198.51.100.7"


@pytest.mark.parametrize("url", ["ami://127.0.0.1:5038", "http://u:s@127.0.0.1", "ami://"])
def test_a_malformed_ami_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(AmiError, match="ami://USER:SECRET@HOST"):
        AmiFollower(url)
