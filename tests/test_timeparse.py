"""Log stamps to POSIX time; a stamp without a year is never placed after the file's last write (a log
that spans New Year has December's lines in the year before January's)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sipwatch.config import Config
from sipwatch.scan import scan
from sipwatch.timeparse import TimeParser, horizon_after, named_zones

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


# --- the days a zone's clock moves (daylight saving time) -----------------------------------------------------

DST_DAYS = [
    pytest.param("Europe/Berlin", "2026-03-29", id="berlin-spring-23h"),
    pytest.param("Europe/Berlin", "2026-10-25", id="berlin-autumn-25h"),
    pytest.param("America/New_York", "2026-03-08", id="new-york-spring"),
    pytest.param("America/New_York", "2026-11-01", id="new-york-autumn"),
    pytest.param("Australia/Lord_Howe", "2026-04-05", id="lord-howe-half-an-hour"),
    pytest.param("Europe/Berlin", "2026-03-28", id="the-day-before-24h"),
]


def _wall(zone: str, day: str, hour: int) -> float:
    from zoneinfo import ZoneInfo

    y, m, d = map(int, day.split("-"))
    return datetime(y, m, d, hour, 30, 15, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("zone", "day"), DST_DAYS)
@pytest.mark.parametrize("shape", ["{day} {t}", "{day}T{t}", "{day} {t}.250", "{mon} {dd} {t}"])
def test_every_hour_of_a_day_the_clock_moves_is_read_as_that_zone_reads_it(zone: str, day: str, shape: str) -> None:
    """Each stamp in turn, so that the cached date of the first serves the next: an hour after the change is
    not midnight plus the hours (23 or 25 hours that day; half an hour on Lord Howe Island)."""
    from zoneinfo import ZoneInfo

    parser = TimeParser(int(day[:4]), ZoneInfo(zone))
    month = datetime.strptime(day, "%Y-%m-%d")
    for hour in range(24):
        stamp = shape.format(day=day, t=f"{hour:02d}:30:15", mon=month.strftime("%b"), dd=f"{month.day:2d}")
        fraction = 0.25 if ".250" in stamp else 0.0
        assert parser.parse(stamp) == _wall(zone, day, hour) + fraction, stamp


@pytest.mark.parametrize("native", ["1", "0"], ids=["fast lane", "python"])
@pytest.mark.parametrize(("zone", "day"), DST_DAYS)
def test_a_log_of_a_day_the_clock_moves_has_its_events_at_their_times(
        tmp_path: Path, native: str, zone: str, day: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `full` log with ISO stamps written in the configured zone: one failed login an hour, read by the C
    fast lane (which slices the clock from a cached midnight) and by Python, each at its true time."""
    from sipwatch.formats.records import ScanStats
    from sipwatch.scan import Reader
    from sipwatch.sources.files import FileSource

    monkeypatch.setenv("SIPWATCH_NATIVE", native)
    path = tmp_path / "full"
    path.write_text("".join(
        f"[{day} {hour:02d}:30:15] NOTICE[456] chan_sip.c: Registration from '<sip:100@192.0.2.1>' failed for "
        f"'198.51.100.7:5060' - Wrong password\n" for hour in range(24)))
    events = list(Reader(Config(timezone=zone)).events(FileSource(str(path)), ScanStats()))
    assert [e.time for e in events] == [_wall(zone, day, hour) for hour in range(24)]


@pytest.mark.parametrize("stamp", ["9999-12-31 10:00:00", "Dec 31 23:59:59 9999", "9999-12-31T23:59:59+0200",
                                   "2026-02-30 10:00:00", "0000-01-01 00:00:00"])
@pytest.mark.parametrize("zone", [None, "Europe/Berlin"])
def test_a_date_no_clock_can_hold_is_no_time_not_a_crash(stamp: str, zone: str | None) -> None:
    from zoneinfo import ZoneInfo

    assert TimeParser(2026, ZoneInfo(zone) if zone else None).parse(stamp) is None


@pytest.mark.parametrize(("names", "expected"), [
    (("", "UTC"), (None, "UTC")),  # the defaults: this machine's zone for logs, UTC for CDRs (no zoneinfo needed)
    (("", ""), (None, None)),
    (("Europe/Berlin", ""), ("Europe/Berlin", "Europe/Berlin")),  # CDR times in the logs' zone unless named
    (("America/New_York", "UTC"), ("America/New_York", "UTC")),
])
def test_the_zones_are_made_from_their_names(names: tuple[str, str], expected: tuple[str | None, str | None]) -> None:
    made = named_zones(*names)
    assert tuple(None if z is None else str(z) for z in made) == expected
    moment = datetime(2024, 7, 1, 12, tzinfo=UTC)
    for zone, name in zip(made, expected, strict=True):
        if name is not None:
            assert moment.astimezone(zone).utcoffset() == moment.astimezone(ZoneInfo(name)).utcoffset()
