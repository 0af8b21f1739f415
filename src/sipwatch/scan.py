"""The offline driver: files in, events merged in time order, the pipeline, a report out."""

from __future__ import annotations

import gc
import heapq
import time as _time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from sipwatch import core, parallel
from sipwatch.calls import AccountTally
from sipwatch.config import Config, zones
from sipwatch.detectors import Action, Decision
from sipwatch.event import Event, IPAddress, IPNetwork
from sipwatch.formats import ahead, native, readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter, expected_engine
from sipwatch.formats.records import RecordScanner, ScanStats, chunks
from sipwatch.netaddr import ipv6_network
from sipwatch.pipeline import Pipeline
from sipwatch.sources.files import FileSource, SourceError
from sipwatch.tally import Offender, Tally
from sipwatch.timeparse import TimeParser

MAX_ALERTS = 1000  # address-less alerts kept for the report (memory stays flat on huge inputs)
MAX_ACCOUNT_DECISIONS = 20  # account-rule decisions kept per account

Progress = Callable[[str, int, int], None]  # file, bytes done, bytes total


@dataclass
class ScanResult:
    """What a scan found: counts, offenders, decisions, accounts."""

    stats: ScanStats = field(default_factory=ScanStats)
    tally: Tally = field(default_factory=Tally)
    decisions: list[Decision] = field(default_factory=list)  # those that name no address (capped)
    accounts: dict[str, AccountTally] = field(default_factory=dict)  # call activity per account
    account_decisions: dict[str, list[Decision]] = field(default_factory=dict)  # capped per account
    actions: Counter[str] = field(default_factory=Counter)  # every decision, by action
    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    engine: str = ""
    seconds: float = 0.0
    blocks: bool = True  # a critical account decision blocks the account (`pbx.actions` has "block")
    network_bans: list[Decision] = field(default_factory=list)  # bans of whole IPv6 networks

    @property
    def offenders(self) -> dict[IPAddress, Offender]:
        return self.tally.offenders

    @property
    def kinds(self) -> Counter[str]:
        return self.tally.kinds


class Reader:
    """Reads files into events with the shared parsers; used by `scan` and `explain`."""

    def __init__(self, config: Config, use_hyperscan: bool = True, native_lane: bool = True) -> None:
        self.native_lane = native_lane  # the C fast lane where it is built (formats/native.py)
        self.use_hyperscan = use_hyperscan
        self.tz, self.record_tz = zones(config)
        self.calls = config.calls
        self.readers = readers(config.calls)

    @cached_property
    def prefilter(self) -> Prefilter:
        """The readers' prefilter, compiled when a file is first read in this process (a large file's parse
        workers compile their own: ~3 ms this process need not spend before the detectors begin): the process's
        own (`formats.ahead`, which `sipwatch scan` may have built already), or one without hyperscan."""
        probe = LineParser(TimeParser(2000, self.tz), self.readers)
        if self.use_hyperscan:
            return ahead.prefilter(self.calls, probe.markers)
        return Prefilter(probe.markers, False)

    @property
    def engine(self) -> str:
        """The prefilter's engine: this process's, or the one its workers get (from the same markers)."""
        built = self.__dict__.get("prefilter")
        engine = built.engine if built is not None else expected_engine(self.use_hyperscan)
        return engine + (", fast lane: C" if native.available() else ", fast lane: Python")

    def events(self, source: FileSource, stats: ScanStats, progress: Progress | None = None) -> Iterator[Event]:
        year, horizon = parallel.year_of(source)
        parser = LineParser(TimeParser(year, self.tz, self.record_tz, horizon), self.readers)
        parser.rows_only = source.rows_only
        scanner = RecordScanner(parser, self.prefilter, source.name, stats, self.native_lane)
        total = source.size
        skip_through = 0
        try:
            for data, limit in chunks(source.buffers()):
                for event in scanner.events(data, limit):
                    if event.line > skip_through:
                        yield event
                    else:
                        stats.events -= 1  # swallowed by a record of the previous chunk
                skip_through = max(skip_through, scanner.spill_line)
                if progress is not None:
                    progress(source.name, source.bytes_read, total)
        finally:
            stats.lines = scanner.line_base


class _Pools:
    """One worker pool per scan, started only when a file is large enough to be worth it."""

    def __init__(self, enabled: bool, calls: bool = True) -> None:
        self.enabled = enabled and parallel.workers() > 0
        self.calls = calls
        self.pool: parallel.Pool | None = None

    def start(self, paths: list[str]) -> None:
        """Fork the workers now when a file will need them: they set up while the scan makes its pipeline."""
        if any(self._large(FileSource(path)) for path in paths):
            self.pool = parallel.adopt_pool(self.calls) or parallel.pool(self.calls)

    def get(self, source: FileSource) -> parallel.Pool | None:
        if not self._large(source):
            return None
        if self.pool is None:
            self.pool = parallel.pool(self.calls)
        return self.pool

    def _large(self, source: FileSource) -> bool:
        return self.enabled and source.size >= parallel.MIN_PARALLEL_BYTES

    def close(self) -> None:
        parallel.drop_head_start()  # (what it began for a file that this scan did not read, or read otherwise)
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _file_events(reader: Reader, path: str, result: ScanResult, progress: Progress | None,
                 pools: _Pools, config: Config, pipeline: Pipeline,
                 take: Callable[[Event], bool] | None = None) -> Iterator[Event]:
    """The events of one file for the pipeline; in a parallel scan, `take` (the C core's) sees through
    those it can, and they are not returned."""
    stats = ScanStats()
    source = FileSource(path)
    try:
        pool = pools.get(source)
        if pool is None:
            tally = result.tally.add
            for event in reader.events(source, stats, progress):
                tally(event)
                yield event
        else:
            events = parallel.parallel_events(pool, source, parallel.year_of(source),
                                              (config.timezone, config.cdr_timezone), stats, result.tally,
                                              pipeline.banned_until, pipeline.classifier, config.calls, take,
                                              _per_file(progress, source),
                                              (pipeline.policy.banned_nets, pipeline.policy.banned_network))
            yield from events
    except SourceError as exc:
        result.errors.append(str(exc))
    finally:
        result.stats.add(stats)


def _per_file(progress: Progress | None, source: FileSource) -> Callable[[int], None] | None:
    """`progress` for one file: bytes done, reported after each buffer the workers parsed (the C core sees
    most events through, so the loop over those it returns cannot be the clock)."""
    if progress is None:
        return None
    return lambda done: progress(source.name, done, source.size)


def _recorder(result: ScanResult, pipeline: Pipeline) -> Callable[[Decision], None]:
    """Files a decision in the scan's result: with its address's offender, its account, or the alerts."""
    tally = result.tally

    def record(decision: Decision) -> None:
        result.actions[decision.action] += 1
        if decision.prefix is not None and decision.action is Action.BAN:
            result.network_bans.append(decision)
        if decision.rule is not None and decision.account is not None:
            kept = result.account_decisions.setdefault(decision.account, [])
            if len(kept) < MAX_ACCOUNT_DECISIONS:
                kept.append(decision)
        if decision.ip is not None and not (decision.rule is not None and decision.account is not None
                                            and pipeline.known_network(decision.account, decision.ip)):
            # an account decision on calls from the account's own learned network names the
            # account, not its office as a hostile address (the daemon bans none there either)
            tally.offender(decision.ip).decide(decision)
        elif decision.rule is None and len(result.decisions) < MAX_ALERTS:
            result.decisions.append(decision)

    return record


def _cover_networks(result: ScanResult) -> None:
    """An IPv6 network ban is the ban of each of its addresses that took part (or would have, but the
    firewall dropped them): file it with each such offender, which would otherwise show no decision."""
    if not result.network_bans:
        return
    members: dict[IPNetwork, list[Offender]] = {}
    prefixes = {d.prefix for d in result.network_bans if d.prefix is not None}
    for offender in result.tally.offenders.values():
        if offender.ip.version == 6:
            for prefix in prefixes:
                members.setdefault(ipv6_network(offender.ip, prefix), []).append(offender)
    for ban in result.network_bans:
        end = ban.time + (ban.duration or 0.0)
        for offender in members.get(ban.network, []) if ban.network is not None else []:
            if offender.ip != ban.ip and offender.first <= end and all(d is not ban for d in offender.decisions):
                offender.decide(ban)


def _each(record: Callable[[Decision], None]) -> Callable[[list[Decision]], None]:
    def sink(decisions: list[Decision]) -> None:
        for decision in decisions:
            record(decision)

    return sink


@contextmanager
def few_collections() -> Iterator[None]:
    """A scan allocates millions of short-lived tuples and events, which reference counting frees, beside
    a large state that lives on (the tally, the detectors' windows, the call book). Python's cyclic
    collector, run every 700 allocations by default, would spend a fifth to a third of the scan walking
    that state: collect rarely (every 500,000 allocations: a tenth of the default scan's time went to
    collections even at 50,000, on the same peak memory), and never walk what existed before the scan (nor
    in the forked workers). The report of a large scan is built so too (~5 ms of a million lines' report;
    at three million lines a full collection, 0.44 s, came while it was built)."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*parallel.GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.freeze()  # what the scan built ages into the oldest generation at once, without a walk over it
        gc.set_threshold(*old)
        gc.unfreeze()


def scan(paths: list[str], config: Config, progress: Progress | None = None,
         use_hyperscan: bool = True, processes: bool = True, pipeline: Pipeline | None = None,
         keep: list[object] | None = None) -> ScanResult:
    """`pipeline`: one prepared by the caller (`sipwatch learn` gives one holding the stored profiles).
    `keep`: where to leave the pipeline when the scan is done, for a caller whose process ends without
    freeing it (see `cli.console`)."""
    with few_collections():
        return _scan(paths, config, progress, use_hyperscan, processes, pipeline, keep)


def _scan(paths: list[str], config: Config, progress: Progress | None, use_hyperscan: bool, processes: bool,
          pipeline: Pipeline | None, keep: list[object] | None) -> ScanResult:
    started = _time.perf_counter()
    pools = _Pools(processes and use_hyperscan, config.calls)
    pools.start(paths)
    try:
        result = ScanResult(files=list(paths), blocks="block" in config.pbx.actions)
        reader = Reader(config, use_hyperscan)
        pipeline = pipeline or Pipeline(config)
        pipeline.duplicates.enabled = len(paths) > 1  # one file: no record comes through two sources
        record = _recorder(result, pipeline)
        take = core.core(pipeline, _each(record)) if len(paths) == 1 else None
        core.native_calls(pipeline.calls)
        streams = [_file_events(reader, p, result, progress, pools, config, pipeline, take) for p in paths]
        merged = heapq.merge(*streams, key=lambda e: e.time) if len(streams) > 1 else streams[0]
        process = pipeline.process
        for event in merged:
            for decision in process(event):
                record(decision)
        result.engine = reader.engine  # (once read: a file read in this process built the prefilter)
    finally:
        pools.close()
    if pipeline.profiles is not None:
        pipeline.profiles.settle()  # (every count of the days in, whoever reads the profiles next)
    result.tally.flush()
    _cover_networks(result)
    result.accounts = pipeline.calls.accounts
    result.seconds = _time.perf_counter() - started
    if keep is not None:
        keep.append(pipeline)
    return result
