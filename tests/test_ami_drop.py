"""An AMI connection that drops (Asterisk restarting, the network): a clear problem while it is down, no
crash, and the events that follow the reconnection arrive; those read before the drop were handed over."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from conftest import parse_line
from fakeami import FakeAmi
from sipwatch.event import Event
from sipwatch.sources.ami import AmiFollower


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
    found: list[Event] = []

    def more() -> bool:
        for chunk in follower.read():
            for line in chunk.data.decode().splitlines():
                found.extend(parse_line(line))
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


def test_events_queued_before_the_drop_are_still_read_after_it(ami: tuple[FakeAmi, AmiFollower]) -> None:
    server, follower = ami
    for n in range(50):
        server.send(_invalid_account(str(200 + n), "198.51.100.9"))
    assert _until(lambda: follower.lines + len(follower._queue) >= 50, 5)
    server.drop()
    assert _until(lambda: follower.problem is not None, 5)
    assert [e.account for e in _events(follower, 50)] == [str(200 + n) for n in range(50)]
