"""The native fast lane must change nothing but the speed: `native_parity(data)` reads a log through the
record scanner twice, in Python and with `_fastlane.c`, and says how the two differ (nothing, we hope).

conftest's `parse_line` and `read_log` run it on every line and log of the specification tests, so each
format table row, forged line and broken record is also a parity case.
"""

from __future__ import annotations

from collections.abc import Iterator

from sipwatch.config import Config, zones
from sipwatch.formats import native, readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats, chunks
from sipwatch.formats.wire import Wire, wire
from sipwatch.timeparse import TimeParser

YEAR = 2024
_PREFILTERS: dict[bool, Prefilter] = {}


def _buffers(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read(data: bytes, native_lane: bool, chunk: int = 1 << 22,
         calls: bool = True, config: Config | None = None) -> tuple[list[Wire], tuple[int, ...]]:
    """The wire tuples and the counters of one pass of the record scanner over `data` (with `config`'s zones)."""
    parser = LineParser(TimeParser(YEAR, *zones(config or Config())), readers(calls))
    parser.rows_only = data[:1] == b'"'  # as FileSource.rows_only says of a file of CSV rows
    prefilter = _PREFILTERS.get(calls) or _PREFILTERS.setdefault(calls, Prefilter(parser.markers))
    stats = ScanStats()
    scanner = RecordScanner(parser, prefilter, "test.log", stats, native_lane=native_lane)
    out: list[Wire] = []
    spills = []
    for buf, limit in chunks(_buffers(data, chunk), lookahead=min(chunk * 4, 1 << 20)):
        out += [wire(item) for item in scanner.feed(buf, limit)]
        spills.append(scanner.spill_line)
    return out, (stats.candidates, stats.events, stats.unmatched, stats.junk, stats.bad, *spills)


def native_parity(data: bytes, chunk: int = 1 << 22, config: Config | None = None) -> str | None:
    """None when both paths give the same events and counters, else what differs."""
    if not native.available():
        return None
    for calls in (True, False):
        python, python_stats = read(data, False, chunk, calls, config)
        fast, fast_stats = read(data, True, chunk, calls, config)
        if python != fast:
            diff = next((p, f) for p, f in zip([*python, None], [*fast, None], strict=False) if p != f)
            return f"calls={calls}: python {diff[0]!r} != native {diff[1]!r}"
        if python_stats != fast_stats:
            return f"calls={calls}: counters python {python_stats} != native {fast_stats}"
    return None
