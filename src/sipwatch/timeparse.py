"""Log timestamps to POSIX seconds, fast.

Servers write local wall-clock time in several shapes (`Feb  3 21:04:11`, `2024-05-01 10:00:00.123`,
`2016-09-25T18:57:58.150982+0200`, FreeSWITCH's `08-03 07:56:53.026292`). A scan meets hundreds of
thousands of them, so the date part is converted once and cached; the clock part is sliced by hand.
Times without a zone are read in `tz` (the machine's zone unless configured); times without a year get
the year of the last stamp that had one, else `default_year` (the year the file was last written), or the
year before when that would put them after `horizon` (no stamp can be later than the file's last write, or
than now in the daemon): a log that spans New Year has December's lines in the year before January's.
CDR and CEL records have a zone setting of their own (`cdr.conf` `usegmtime`), hence `record_tz`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_ISO = re.compile(
    r"(?:(\d{4})-)?(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|[+-]\d\d:?\d\d\d*)?$"
)
_SYSLOG = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?: (\d{4}))?$")


#: how far after the file's last write (or now) a year-less stamp may seem to be before it is taken for the
#: year before: a day's worth of time zones either way
FUTURE_SLACK = 2 * 86400.0


def horizon_after(when: float | None) -> float | None:
    """The latest time a stamp can have in a file last written at `when` (or read live at `when`)."""
    return None if when is None else when + FUTURE_SLACK


class TimeParser:
    """Parses timestamps with a per-date cache; one instance per input stream."""

    def __init__(self, default_year: int, tz: tzinfo | None = None, record_tz: tzinfo | None = UTC,
                 horizon: float | None = None) -> None:
        self.default_year = default_year
        self.horizon = horizon  # see the module's docs (the C fast lane reads it too)
        self.tz = tz
        self.record_tz = record_tz
        self._records: TimeParser | None = None
        self._midnights: dict[tuple[int, int, int, str | None], float] = {}
        self._cache: dict[str, float | None] = {}
        self._days: dict[str, float] = {}  # `YYYY-MM-DD` -> local midnight, for the sliced fast path
        self._shifted: set[tuple[int, int, int, str | None]] = set()  # days whose offset changes (DST)

    def _midnight(self, year: int, month: int, day: int, zone: str | None) -> float | None:
        """POSIX seconds of the day's local midnight, when its clock times are that plus the time of day; None on
        a day the zone's offset changes (daylight saving time: 23 or 25 hours), whose times `_combine` works out
        one by one. Only 24-hour days go in `_midnights` (the C fast lane reads it too)."""
        key = (year, month, day, zone)
        value = self._midnights.get(key)
        if value is None:
            if key in self._shifted:
                return None
            value = self._local(year, month, day, 0, 0, 0, zone)
            after = date(year, month, day) + timedelta(days=1)
            if self._local(after.year, after.month, after.day, 0, 0, 0, zone) - value != 86400:
                self._shifted.add(key)
                return None
            self._midnights[key] = value
        return value

    def _local(self, year: int, month: int, day: int, h: int, mi: int, s: int, zone: str | None) -> float:
        """POSIX seconds of a wall-clock time in `zone` (an offset), else in `tz`, else in the machine's zone."""
        tz: tzinfo | None = _zone(zone) if zone is not None else self.tz
        return datetime(year, month, day, h, mi, s, tzinfo=tz).timestamp()  # (no tz: the machine's own zone)

    def records(self) -> TimeParser:
        """The parser of CDR and CEL times (read in `record_tz`: UTC, or None for the machine's zone); the C fast
        lane reads its caches too."""
        records = self._records
        if records is None:
            records = self._records = TimeParser(self.default_year, self.record_tz, self.record_tz)
        return records

    def parse_record(self, text: str) -> float | None:
        """POSIX seconds of a CDR or CEL time."""
        return self.records().parse(text)

    def parse(self, text: str) -> float | None:
        """POSIX seconds for `text`, or None when it is not a timestamp we know."""
        if len(text) == 19 and text[13] == ":" and text[16] == ":" and text[4] == "-":
            base = self._days.get(text[:10])  # `2024-05-01 10:00:00`: the common shape, sliced
            if base is not None and text[11:13].isdigit() and text[14:16].isdigit() and text[17:19].isdigit():
                return base + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
        cached = self._cache.get(text)
        if cached is not None or text in self._cache:
            return cached
        if len(text) > 20 and text[19] in ".," and text[4] == "-" and text[20:].isdigit():
            # `2024-05-01 10:00:00.123`: one cache entry per second, the fraction added here
            second = self.parse(text[:19])
            return None if second is None else second + float("0." + text[20:])
        value = self._parse(text.strip())
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[text] = value
        return value

    def _parse(self, text: str) -> float | None:
        if len(text) == 19 and text[4] == "-" and text[10] in " T" and text[13] == ":" and text[16] == ":":
            try:  # `2024-05-01 10:00:00`, by far the most common shape: sliced, no regex
                year, month, day = int(text[:4]), int(text[5:7]), int(text[8:10])
                self.default_year = year
                value = self._combine(year, month, day, text[11:13], text[14:16], text[17:19], 0.0, None)
                if value is not None:
                    midnight = self._midnight(year, month, day, None)
                    if midnight is not None:
                        self._days[text[:10]] = midnight
                return value
            except ValueError:
                return None
        if text.startswith("@"):  # seconds since the epoch (journald exports)
            try:
                return float(text[1:])
            except ValueError:
                return None
        m = _ISO.match(text)
        if m:
            frac = float("0." + m[7]) if m[7] else 0.0
            if m[1]:
                year = self.default_year = int(m[1])  # later year-less stamps follow this one
                return self._combine(year, int(m[2]), int(m[3]), m[4], m[5], m[6], frac, m[8])
            return self._yearless(int(m[2]), int(m[3]), m[4], m[5], m[6], frac, m[8])
        m = _SYSLOG.match(text)
        if m:
            found = _MONTHS.get(m[1])
            if found is None:
                return None
            month = found
            frac = float("0." + m[6]) if m[6] else 0.0
            if m[7]:
                return self._combine(int(m[7]), month, int(m[2]), m[3], m[4], m[5], frac, None)
            return self._yearless(month, int(m[2]), m[3], m[4], m[5], frac, None)
        return None

    def _yearless(self, month: int, day: int, hh: str, mm: str, ss: str, frac: float, zone: str | None) -> float | None:
        """A stamp without a year: in `default_year`, unless that puts it after `horizon`."""
        value = self._combine(self.default_year, month, day, hh, mm, ss, frac, zone)
        if value is not None and self.horizon is not None and value > self.horizon:
            return self._combine(self.default_year - 1, month, day, hh, mm, ss, frac, zone)
        return value

    def _combine(
        self, year: int, month: int, day: int, hh: str, mm: str, ss: str, frac: float, zone: str | None
    ) -> float | None:
        try:
            base = self._midnight(year, month, day, zone)
            h, mi, s = int(hh), int(mm), int(ss)
            if h > 23 or mi > 59 or s > 60:
                return None
            if base is None:  # the clock moved that day: this time of day by itself (a leap second's 60 as 59 + 1)
                return self._local(year, month, day, h, mi, min(s, 59), zone) + (s == 60) + frac
        except (ValueError, OverflowError, OSError):  # no such date (`02-30`), or none a clock can hold (`9999-12-31`)
            return None
        return base + h * 3600 + mi * 60 + s + frac


def named_zones(timezone: str, cdr_timezone: str) -> tuple[tzinfo | None, tzinfo | None]:
    """The zones of log times and of CDR/CEL times from their IANA names (None for "": this machine's); CDR/CEL
    times are in the logs' zone unless named. The names were checked (`config.zones`): a parse worker makes its
    zones here without importing the configuration, nor `zoneinfo` for "UTC" (CDR times by default), which is
    `datetime.UTC` (~3 ms of a worker's first buffer).

    >>> named_zones("", "UTC")
    (None, datetime.timezone.utc)
    """
    logs = _named_zone(timezone)
    return logs, (_named_zone(cdr_timezone) if cdr_timezone else logs)


def _named_zone(name: str) -> tzinfo | None:
    if not name:
        return None
    if name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _zone(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    rest = int(digits[2:])
    # FreeSWITCH mod_fail2ban prints the sub-hour part in seconds (`+051800` for +05:30)
    minutes = rest // 60 if len(digits) > 4 else rest
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=minutes))
