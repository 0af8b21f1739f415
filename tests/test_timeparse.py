"""Log stamps to POSIX time; a stamp without a year is never placed after the file's last write (a log
that spans New Year has December's lines in the year before January's)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sipwatch.config import Config
from sipwatch.scan import scan
from sipwatch.timeparse import TimeParser, horizon_after

WRITTEN = datetime(2025, 1, 1, 0, 10, tzinfo=UTC).timestamp()  # the file's last write


def utc(text: str) -> float | None:
    return TimeParser(2025, UTC, horizon=horizon_after(WRITTEN)).parse(text)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        pytest.param("Dec 31 23:59:59", "2024-12-31 23:59:59", id="syslog-december-is-last-year"),
        pytest.param("Jan  1 00:00:01", "2025-01-01 00:00:01", id="syslog-january-is-this-year"),
        pytest.param("Jan  2 12:00:00", "2025-01-02 12:00:00", id="a-day-ahead-is-time-zones-not-a-year"),
        pytest.param("Mar  5 08:00:00", "2024-03-05 08:00:00", id="syslog-months-ahead-is-last-year"),
        pytest.param("12-31 23:59:59.5", "2024-12-31 23:59:59.500000", id="freeswitch-without-year"),
        pytest.param("Dec 31 23:59:59 2025", "2025-12-31 23:59:59", id="a-written-year-is-kept"),
        pytest.param("2025-12-31 23:59:59", "2025-12-31 23:59:59", id="iso-with-year-is-kept"),
    ],
)
def test_a_year_less_stamp_is_never_after_the_last_write(stamp: str, expected: str) -> None:
    value = utc(stamp)
    assert value is not None
    shown = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S")
    assert shown == expected


def test_without_a_horizon_the_default_year_holds() -> None:
    value = TimeParser(2025, UTC).parse("Dec 31 23:59:59")
    assert value == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("native", ["1", "0"], ids=["fast lane", "python"])
def test_a_brute_force_across_new_year_is_seen_in_order(tmp_path: Path, native: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Six wrong passwords in ten seconds around midnight, in a syslog file written just after it."""
    monkeypatch.setenv("SIPWATCH_NATIVE", native)
    stamps = ["Dec 31 23:59:55", "Dec 31 23:59:57", "Dec 31 23:59:59", "Jan  1 00:00:01", "Jan  1 00:00:03",
              "Jan  1 00:00:05"]
    path = tmp_path / "messages"
    path.write_text("".join(
        f"{stamp} pbx asterisk[123]: NOTICE[456]: chan_sip.c:28390 in handle_request_register: Registration from "
        f"'<sip:100@192.0.2.1>' failed for '198.51.100.7:5060' - Wrong password\n" for stamp in stamps))
    os.utime(path, (WRITTEN, WRITTEN))
    result = scan([str(path)], Config(timezone="UTC"))
    (offender,) = result.tally.offenders.values()
    assert offender.last - offender.first == 10.0
    assert (offender.decision, offender.reason) == ("ban", "brute_force: 6 failed attempts in 10s (accounts: 100)")
