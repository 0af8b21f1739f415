"""AMI security events become security-log records that the same reader parses; caller-written values
(AccountID, SessionID) cannot smuggle a second address in, because their quotes are neutralised."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import VICTIM, parse_line
from sipwatch.config import from_dict
from sipwatch.event import Event, Kind
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats
from sipwatch.pipeline import Pipeline
from sipwatch.sources.ami import AmiError, AmiFollower, render
from sipwatch.timeparse import TimeParser

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


# -- a real AMI transcript (Asterisk 22.10: 3 wrong passwords for 6001, 2 guesses for the unknown 9999,
# one good login), recorded beside the security log of the same run -----------------------------------
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk22"


def _transcript() -> list[dict[str, str]]:
    """AMI's wire format: `Key: Value` lines, a blank line after each event."""
    blocks = (FIXTURES / "ami-transcript.txt").read_bytes().decode().split("\r\n\r\n")
    return [dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line) for block in blocks
            if block.strip()]


def _events(path: Path, data: bytes) -> list[Event]:
    stats = ScanStats()
    scanner = RecordScanner(LineParser(TimeParser(2026)), Prefilter(LineParser(TimeParser(2026)).markers),
                            str(path), stats)
    events = scanner.events(data)
    assert stats.unmatched == 0 and stats.junk == 0
    return events


def test_a_real_ami_transcript_gives_the_events_of_the_security_log() -> None:
    from_ami = _events(Path("ami://sipwatch@127.0.0.1"), b"".join(render(e) for e in _transcript()))
    from_log = _events(FIXTURES / "ami-run-security.log", (FIXTURES / "ami-run-security.log").read_bytes())

    def view(events: list[Event]) -> list[tuple[object, ...]]:
        return [(e.extra["event_tv"], e.kind, e.reason, str(e.ip), e.port, e.account, e.session) for e in events]

    assert view(from_ami) == view(from_log)
    assert Counter(e.reason for e in from_ami) == {"ChallengeSent": 6, "ChallengeResponseFailed": 5,
                                                    "InvalidAccountID": 4, "SuccessfulAuth": 2}


def test_a_record_read_through_both_ami_and_the_security_log_counts_once() -> None:
    """Watching AMI and the security log together is the same as watching either."""

    def counted(*sources: str) -> list[tuple[str, str, str | None]]:
        events: list[Event] = []
        if "ami" in sources:
            events += _events(Path("ami://sipwatch@127.0.0.1"), b"".join(render(e) for e in _transcript()))
        if "log" in sources:
            events += _events(FIXTURES / "ami-run-security.log", (FIXTURES / "ami-run-security.log").read_bytes())
        pipeline = Pipeline(from_dict({"policy": {"allow_loopback": True}}))
        seen = []
        for event in sorted(events, key=lambda e: e.time):
            pipeline.process(event)
            if event.hostile and not event.repeat and not event.blocked:
                seen.append((event.extra["event_tv"], event.reason, event.account))
        return sorted(seen)

    assert counted("ami", "log") == counted("log") == counted("ami")
    assert {reason for _, reason, _ in counted("log")} == {"ChallengeResponseFailed", "InvalidAccountID"}
