"""The offline driver: files in, events merged in time order, the pipeline, a report out."""

from __future__ import annotations

import heapq
import time as _time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sipwatch.config import Config, ConfigError
from sipwatch.detectors import Action, Decision
from sipwatch.event import HOSTILE_KINDS, Event, Evidence, IPAddress, Kind
from sipwatch.formats import DUMP_MARKERS
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import RecordScanner, ScanStats
from sipwatch.pipeline import Pipeline
from sipwatch.sources.files import FileSource, SourceError
from sipwatch.timeparse import TimeParser

Progress = Callable[[str, int, int], None]  # file, bytes done, bytes total


@dataclass
class Offender:
    ip: IPAddress
    events: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    accounts: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    services: set[str] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0
    strong: bool = False
    decisions: list[Decision] = field(default_factory=list)

    def add(self, event: Event) -> None:
        t = event.time
        if not self.events or t < self.first:
            self.first = t
        if t > self.last:
            self.last = t
        self.events += 1
        kinds = self.kinds
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
        self.services.add(event.service)
        account = event.account
        if account and (account in self.accounts or len(self.accounts) < 1000):
            self.accounts[account] = self.accounts.get(account, 0) + 1
        target = event.target
        if target and (target in self.targets or len(self.targets) < 1000):
            self.targets[target] = self.targets.get(target, 0) + 1
        if event.evidence is Evidence.STRONG:
            self.strong = True

    @property
    def decision(self) -> str:
        actions = {d.action for d in self.decisions}
        for action in (Action.BAN, Action.ALERT):
            if action in actions:
                return str(action)
        return "none"

    @property
    def reason(self) -> str:
        for action in (Action.BAN, Action.ALERT):
            for d in self.decisions:
                if d.action is action:
                    return f"{d.detector}: {d.reason}"
        return ""


@dataclass
class ScanResult:
    stats: ScanStats = field(default_factory=ScanStats)
    offenders: dict[IPAddress, Offender] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    engine: str = ""
    seconds: float = 0.0


class Reader:
    """Reads files into events with the shared parsers; used by `scan` and `explain`."""

    def __init__(self, config: Config, use_hyperscan: bool = True) -> None:
        try:
            self.tz = ZoneInfo(config.timezone) if config.timezone else None
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone: unknown time zone {config.timezone!r}") from None
        probe = LineParser(TimeParser(2000, self.tz))
        self.prefilter = Prefilter([*probe.markers, *DUMP_MARKERS], use_hyperscan)

    def events(self, source: FileSource, stats: ScanStats, progress: Progress | None = None) -> Iterator[Event]:
        mtime = source.mtime
        year = datetime.fromtimestamp(mtime).year if mtime else datetime.now().year
        parser = LineParser(TimeParser(year, self.tz))
        scanner = RecordScanner(parser, self.prefilter, source.name, stats)
        total = source.size
        pending = b""
        try:
            for buf in source.buffers():
                data = pending + buf if pending else buf
                events, consumed = scanner.feed(data, final=not data.endswith(b"\n"))
                pending = data[consumed:]
                yield from events
                if progress is not None:
                    progress(source.name, source.bytes_read, total)
            if pending:
                events, _ = scanner.feed(pending, final=True)
                yield from events
        finally:
            stats.lines = scanner.line_base


def _file_events(reader: Reader, path: str, result: ScanResult, progress: Progress | None) -> Iterator[Event]:
    stats = ScanStats()
    try:
        yield from reader.events(FileSource(path), stats, progress)
    except SourceError as exc:
        result.errors.append(str(exc))
    finally:
        result.stats.add(stats)


def scan(paths: list[str], config: Config, progress: Progress | None = None,
         use_hyperscan: bool = True) -> ScanResult:
    started = _time.perf_counter()
    result = ScanResult(files=list(paths))
    reader = Reader(config, use_hyperscan)
    result.engine = reader.prefilter.engine
    pipeline = Pipeline(config)
    streams = [_file_events(reader, p, result, progress) for p in paths]
    merged = heapq.merge(*streams, key=lambda e: e.time) if len(streams) > 1 else streams[0]
    offenders = result.offenders
    kinds = result.kinds
    counted = HOSTILE_KINDS | {Kind.INJECTION}
    process = pipeline.process
    for event in merged:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
        for decision in process(event):
            result.decisions.append(decision)
            if decision.ip is not None:
                offender = offenders.get(decision.ip)
                if offender is None:
                    offender = offenders[decision.ip] = Offender(decision.ip)
                offender.decisions.append(decision)
        if event.ip is not None and event.kind in counted:
            offender = offenders.get(event.ip)
            if offender is None:
                offender = offenders[event.ip] = Offender(event.ip)
            offender.add(event)
    result.seconds = _time.perf_counter() - started
    return result
