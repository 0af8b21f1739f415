"""Shared helpers for the specification tests.

* `parse_line(text)`: the events the line parser makes of one record (one physical line, or several
  joined), exactly as the scanner hands it over; no state from earlier lines except the year.
* `read_log(lines)`: writes the lines to a file and reads it through the real scan path
  (`sipwatch.scan.Reader` over a `FileSource`: prefilter, record reassembly, packet dumps).
* `scan_log(lines)`: the whole offline scan (`sipwatch.scan.scan`): events, pipeline, offenders.
* `run_cli(*args)`: `python -m sipwatch ...` in a subprocess.

All addresses in the tests are documentation addresses (RFC 5737, RFC 3849); 203.0.113.66 is the
"victim" that forged log text tries to get banned.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from parity import native_parity
from sipwatch.config import Config
from sipwatch.event import Event
from sipwatch.formats.parser import LineParser
from sipwatch.formats.records import ScanStats
from sipwatch.scan import Reader, ScanResult, scan
from sipwatch.sources.files import FileSource
from sipwatch.timeparse import TimeParser

YEAR = 2024
VICTIM = "203.0.113.66"

LogInput = Iterable[str] | str | bytes


def local_time(*args: int) -> float:
    """POSIX seconds of a wall-clock time in this machine's zone (how sipwatch reads zone-less stamps)."""
    return datetime(*args).timestamp()  # type: ignore[misc]


def parse_line(text: str) -> list[Event]:
    """The events of one record: [] when it is benign, unknown or incomplete. (Each line is also read
    by the record scanner with and without the native fast lane, which must agree.)"""
    result = LineParser(TimeParser(YEAR)).parse(text)
    problem = native_parity(text.encode("utf-8", "surrogateescape") + b"\n")
    assert problem is None, f"the native fast lane differs on {text!r}: {problem}"
    return [result] if isinstance(result, Event) else []


def one(line: str) -> Event:
    """The single event a line must yield."""
    events = parse_line(line)
    assert len(events) == 1, f"expected one event from {line!r}, got {events!r}"
    return events[0]


def _as_bytes(lines: LogInput) -> bytes:
    if isinstance(lines, bytes):
        return lines
    if isinstance(lines, str):
        return lines.encode()
    return "".join(line + "\n" for line in lines).encode()


def write_log(path: Path, lines: LogInput) -> Path:
    """Write `lines` (a list of lines, a text, or raw bytes) to `path`."""
    path.write_bytes(_as_bytes(lines))
    return path


@dataclass
class ReadResult:
    events: list[Event]
    stats: ScanStats

    def ips(self) -> set[str]:
        return {str(e.ip) for e in self.events if e.ip is not None}


@pytest.fixture
def log_path(tmp_path: Path) -> Callable[[LogInput], Path]:
    counter = iter(range(1_000_000))

    def make(lines: LogInput) -> Path:
        return write_log(tmp_path / f"log{next(counter)}.log", lines)

    return make


@pytest.fixture
def read_log(log_path: Callable[[LogInput], Path]) -> Callable[..., ReadResult]:
    """Read lines through the real scan path; `chunk` forces small buffers (records split across them)."""

    def read(lines: LogInput, chunk: int | None = None) -> ReadResult:
        path = log_path(lines)
        source = FileSource(str(path)) if chunk is None else FileSource(str(path), chunk=chunk)
        stats = ScanStats()
        events = list(Reader(Config()).events(source, stats))
        problem = native_parity(path.read_bytes(), chunk or 1 << 22)
        assert problem is None, f"the native fast lane differs: {problem}"
        return ReadResult(events, stats)

    return read


@pytest.fixture
def scan_log(log_path: Callable[[LogInput], Path]) -> Callable[..., ScanResult]:
    def run(lines: LogInput, config: Config | None = None) -> ScanResult:
        return scan([str(log_path(lines))], config or Config())

    return run


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sipwatch", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )

    return run
