"""Parse a large file on every core; keep one ordered event stream for the pipeline.

The main process reads 4 MiB buffers (2 MiB of CSV rows) and hands each, with a little lookahead from the next one, to a
worker process; the workers run the very same prefilter and parsers and send back compact tuples (in
shared memory: `Outbox`); the main process rebuilds the events in file order and runs the pipeline. The
workers also classify the numbers their call records dialled (phonenumbers is the dearest step of a call
record), and work out the international form of the numbers that probes dialled, with the pipeline's own
settings; the main process only files the results in its classifier. A
record that crosses a buffer boundary (an attacker's line break inside a dialled number) is read by the
worker of the buffer it starts in, and the lines it swallowed are dropped from the next buffer's results.

The workers are forked processes (`forkpool.ForkPool`), which `sipwatch scan` of a large file forks before it
imports anything (`forkpool.fork_early`); it hands them its first buffers before it has imported its detectors
(`head_start`); the scan then takes over that pool and that `Feed`.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import marshal
import mmap
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv6Network
from typing import TYPE_CHECKING, Any

from sipwatch import forkpool
from sipwatch.event import CALL_KINDS, Call, Event, Evidence, IPAddress, Kind
from sipwatch.formats import ahead, native, readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.records import LOOKAHEAD, RecordScanner, ScanStats, chunks
from sipwatch.formats.wire import (
    EVIDENCE,
    EVIDENCE_INDEX,
    IPS,
    KIND_INDEX,
    KINDS,
    SERVICES,
    Packed,
    Wire,
    event_of,
    ip,
    pack,
    to_wire,
    unpack,
)
from sipwatch.numbers import ClassifiedTuple, NumberClassifier, Settings, load_phonenumbers
from sipwatch.sources.files import FileSource, read_span
from sipwatch.timeparse import TimeParser, horizon_after, named_zones

if TYPE_CHECKING:
    from concurrent.futures import Future
    from typing import Protocol

    from sipwatch.config import Config

    class Pool(Protocol):
        """What a scan asks of its parse workers (`forkpool.ForkPool`; a standard process pool has it too)."""

        def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
    from sipwatch.tally import Tally

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _drain  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _drain = None

MIN_PARALLEL_BYTES = forkpool.MIN_PARALLEL_BYTES
#: the cyclic collector's thresholds during a scan, in the main process (`scan.few_collections`) and the workers
GC_THRESHOLDS = (500_000, 50, 1000)
#: (the year of year-less stamps, the latest time a stamp can have): see timeparse.py
Year = tuple[int, float | None]
AHEAD = 4  # buffers with the parse workers at a time (`files.CHUNK` each)
WORKER_NICENESS = 10  # below this, starting processes costs more than it saves
SLOT_BYTES = forkpool.SLOT_BYTES  # an outbox slot: a 4 MiB buffer's results take 1-2 MiB
SLOTS = forkpool.SLOTS  # (2 * AHEAD: two files read at once each have AHEAD buffers out; more go through the pipe)

@dataclass(frozen=True)
class Job:
    """One buffer of a file, for a parse worker."""

    name: str
    data: bytes
    limit: int
    line_base: int
    year: Year
    tz: tuple[str, str]  # the zones of log times and of CDR/CEL times (`timezone`, `cdr_timezone`)
    numbers: Settings | None = None  # the pipeline classifier's: classify the dialled numbers here
    calls: bool = True  # read call activity (`Config.calls`)
    span: tuple[int, int] | None = None  # (offset, length) in the file named `name`: the worker reads it
    rows_only: bool = False  # the file is CSV rows (`LineParser.rows_only`)


@dataclass
class Outbox:
    """Shared memory in which the parse workers leave their results for the main process: `SLOTS` slots of
    one anonymous shared mapping, made before the workers fork. A result sent through the pool's pipe is
    copied five times (pickled, written, read, unpickled, in fresh pages each time), and the pool's
    manager thread unpickles it in the main process holding the GIL, while the detectors wait: ~40 MB
    for a million log lines, 170 MB for a million CDR rows. In a slot it is written once and read in
    place. A result too large for a slot, a job given no slot (all are out), and a worker forked before
    the outbox was made (`token` tells) use the pipe as before."""

    slots: int = SLOTS
    size: int = SLOT_BYTES
    token: str = field(default_factory=lambda: os.urandom(8).hex())
    free: list[int] = field(init=False)
    memory: mmap.mmap = field(default=None, repr=False)  # type: ignore[assignment]  # (made when not given)

    def __post_init__(self) -> None:
        if self.memory is None:
            self.memory = mmap.mmap(-1, self.slots * self.size)  # anonymous and MAP_SHARED: forked workers see it
        self.free = list(range(self.slots - 1, -1, -1))

    @classmethod
    def early(cls) -> Outbox | None:
        """The outbox in the shared memory that `forkpool.fork_early` made before it forked (the same in the
        workers it forked, which import this module after the fork), if it did."""
        shared = forkpool.SHARED
        return cls(token=shared.token, memory=shared.memory) if shared is not None else None

    def take(self) -> int | None:
        """A free slot for a job (main process), or None when all are out."""
        return self.free.pop() if self.free else None

    def give(self, slot: int) -> None:
        """The slot's result was read (or its job will never write it): another job may have it."""
        self.free.append(slot)

    def put(self, slot: int, *parts: bytes | memoryview) -> bool:
        """Worker side: leave `parts` one after the other in `slot`; False when they do not fit."""
        if sum(map(len, parts)) > self.size:
            return False
        at = slot * self.size
        for part in parts:
            self.memory[at:at + len(part)] = part
            at += len(part)
        return True

    def put_parsed(self, slot: int, packed: Packed, numbers: list[ClassifiedTuple],
                   forms: list[tuple[str, str | None]]) -> int | None:
        """Worker side: leave a buffer's results in `slot` (`load` reads them): its packed records as they are,
        the rest marshalled; their length, or None when they do not fit."""
        texts, records, objects = packed
        rest = marshal.dumps(((texts, objects), numbers, forms))
        head = len(records).to_bytes(8, "little")
        return 8 + len(records) + len(rest) if self.put(slot, head, records, rest) else None

    def load(self, slot: int, length: int) -> Parsed:
        """What a worker left in `slot` (`put_parsed`), read in place: the packed records are a view of the slot
        (1.2 MB a 4 MiB buffer, not copied into fresh memory), which holds them until `give` (`Feed` gives it
        back once the next buffer is asked for: the merge loop is done with them then)."""
        start = slot * self.size
        with memoryview(self.memory) as view:
            size = int.from_bytes(view[start:start + 8], "little")
            records = view[start + 8:start + 8 + size]
            with view[start + 8 + size:start + length] as rest:
                (texts, objects), numbers, forms = marshal.loads(rest)
        return (texts, records, objects), numbers, forms


_OUTBOX: Outbox | None = Outbox.early()


def pool(calls: bool = True) -> Pool:
    """The parse workers, forked at once (with the outbox, made first) and set up for readers of call activity
    or not (`calls`): they build the prefilter, the C engine and the markers while this process makes its
    pipeline, and parse their first buffers while it imports phonenumbers (`parallel_events`), instead of
    while it waits for them (its wait for the first buffer after its imports: 41 -> 31 ms set up at once,
    then -> ~29 ms with phonenumbers imported once the first buffers are out)."""
    global _OUTBOX
    if _OUTBOX is None:
        with contextlib.suppress(OSError):  # no shared memory to be had (a strict commit limit): the pipe
            _OUTBOX = Outbox()
    return forkpool.ForkPool(workers(), "sipwatch.parallel:worker_started", (calls,))


def worker_started(calls: bool = True) -> None:
    """The main process runs the detectors, one event after the other: it is the scan's critical path, and
    the parse workers, which keep ahead of it, yield the CPU to it when the cores are all busy. A worker
    makes at once what its first buffer needs (see `pool`), and finds the outbox in the shared memory it was
    forked with (this module may have been imported before `forkpool.fork_early` made it)."""
    global _OUTBOX
    if _OUTBOX is None:
        _OUTBOX = Outbox.early()
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    gc.freeze()  # (what was made before the fork is never walked here either: see `scan.few_collections`)
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()  # (`head_start` forks while the command imports with the collector off)
    with contextlib.suppress(Exception):  # (then the first buffer builds it, and says what went wrong)
        ahead.set_up(calls)  # (at once when they are built already: `console.worker_started` built them meanwhile)


def workers() -> int:
    """How many parse workers a large file gets (see `forkpool.workers`)."""
    return forkpool.workers()


_PARSERS: dict[tuple[str, Year, tuple[str, str], bool], tuple[LineParser, Prefilter]] = {}


def _parser(name: str, year: Year, tz_names: tuple[str, str], calls: bool) -> tuple[LineParser, Prefilter]:
    """One parser per file and worker, kept across buffers (its caches are warm)."""
    key = (name, year, tz_names, calls)
    found = _PARSERS.get(key)
    if found is None:
        tz, record_tz = named_zones(*tz_names)
        parser = LineParser(TimeParser(year[0], tz, record_tz, horizon=year[1]), readers(calls))
        found = _PARSERS[key] = (parser, ahead.prefilter(calls, parser.markers))
    return found


_CLASSIFIERS: dict[Settings, NumberClassifier] = {}


_CALLS = frozenset(KIND_INDEX[k] for k in CALL_KINDS)


def _classifier(settings: Settings) -> NumberClassifier:
    """This worker's classifier with the pipeline's settings (one per worker: its caches stay warm)."""
    classifier = _CLASSIFIERS.get(settings)
    if classifier is None:
        classifier = _CLASSIFIERS[settings] = NumberClassifier(*settings)
    return classifier


def _classified(targets: Iterable[str], settings: Settings) -> list[ClassifiedTuple]:
    """The numbers that a buffer's calls dialled out of the PBX (`targets`: distinct, first seen first),
    classified (once per worker): the call book classifies every call's number. The security detectors need
    no classification per event (the toll-fraud detector asks `is_probe`, which reads the dialled text, and
    names the regions of a few numbers in a ban's reason; `_forms` works out their international forms, which
    is cheap), so an attacker's thousands of distinct probe numbers are not classified here; nor are the numbers
    that the call book tells from their text alone (`NumberClassifier.worked_out`)."""
    numbers = targets if isinstance(targets, list) else list(targets)
    return [number for number in _classifier(settings).worked_out(numbers) if not number[7]]  # [7]: internal


#: the records whose number the toll-fraud detector reads (`is_probe`): a call rejected or attempted
_PROBES = frozenset(KIND_INDEX[k] for k in (Kind.REJECTED_CALL, Kind.CALL_ATTEMPT))


def _forms(targets: Iterable[str], settings: Settings) -> list[tuple[str, str | None]]:
    """The international forms of the numbers of a buffer's probes: the main process's toll-fraud detector
    asks for each (~5 us a distinct number there, on the detectors' critical path; here the workers are ahead)."""
    return _classifier(settings).international_forms(targets)


def _targets(wires: list[Wire], kinds: frozenset[int] = _CALLS) -> list[str]:
    """The distinct numbers of these records of `kinds`, first seen first (`Packer.targets` in C)."""
    return list(dict.fromkeys(w[7] for w in wires if w[7] is not None and w[1] in kinds))


#: a worker's answer: (the marshalled (packed events, classified numbers, probes' international forms), or their
#: length in the outbox slot it was given; the buffer's counts; the last line swallowed by its last record)
Result = tuple[bytes | int, ScanStats, int]
Parsed = tuple[Packed, list[ClassifiedTuple], list[tuple[str, str | None]]]


def parse_job(job: Job, slot: tuple[str, int] | None = None) -> Result:
    """Worker side: parse one buffer; return the events packed (see `wire.Packed`), the numbers they dialled,
    classified, and the international forms of the numbers probes dialled, marshalled (they load faster than
    they unpickle, in the main process that runs the detectors), in the outbox `slot` when it is given (the
    outbox's token, the slot) and they fit. Line numbers count from `job.line_base`."""
    parser, prefilter = _parser(job.name, job.year, job.tz, job.calls)
    parser.last_time = 0.0
    parser.rows_only = job.rows_only
    stats = ScanStats()
    scanner = RecordScanner(parser, prefilter, job.name, stats, native_lane=True)
    scanner.line_base = job.line_base
    data, limit = (job.data, job.limit) if job.span is None else read_span(job.name, *job.span, LOOKAHEAD)
    packed: Packed
    if _drain is not None and native.available():  # each record packed as it is read (see _drain.c)
        packer = _drain.Packer(to_wire)
        scanner.pack(data, limit, packer)
        targets = packer.targets(_CALLS) if job.numbers is not None else []
        probes = packer.targets(_PROBES) if job.numbers is not None else []
        packed = packer.result()
    else:
        wires = [item if item.__class__ is tuple else to_wire(item) for item in scanner.feed(data, limit)]  # type: ignore[arg-type]
        targets = _targets(wires) if job.numbers is not None else []
        probes = _targets(wires, _PROBES) if job.numbers is not None else []
        packed = pack(wires)
    stats.lines = scanner.line_base - job.line_base
    numbers = _classified(targets, job.numbers) if job.numbers is not None else []
    forms = _forms(probes, job.numbers) if job.numbers is not None else []
    outbox = _OUTBOX
    if slot is not None and outbox is not None and outbox.token == slot[0]:
        length = outbox.put_parsed(slot[1], packed, numbers, forms)
        if length is not None:
            return length, stats, scanner.spill_line
    return marshal.dumps((packed, numbers, forms)), stats, scanner.spill_line


def _jobs(source: FileSource, year: Year, tz: tuple[str, str], numbers: Settings | None, calls: bool) -> Iterator[Job]:
    """One job per buffer. A plain file's workers read their own buffers: the main process, which runs
    the detectors, neither reads the file through nor copies it to them."""
    spans = source.spans()
    rows_only = source.rows_only
    if spans is not None:
        for span in spans:
            yield Job(source.name, b"", 0, 0, year, tz, numbers, calls, span, rows_only)
        return
    for data, limit in chunks(source.buffers()):
        yield Job(source.name, data, limit, 0, year, tz, numbers, calls, rows_only=rows_only)


def year_of(source: FileSource) -> Year:
    """The year of a file's year-less stamps and the latest time a stamp can have (see timeparse.py)."""
    mtime = source.mtime
    return (datetime.fromtimestamp(mtime).year if mtime else datetime.now().year), horizon_after(mtime)


class Feed:
    """One file's buffers on their way through the parse workers, `AHEAD` at a time: the jobs out, in file
    order, each with the end of its buffer (the progress) and its outbox slot. `parallel_events` makes one,
    or takes over the one that `head_start` began."""

    def __init__(self, pool: Pool, source: FileSource, year: Year, tz: tuple[str, str],
                 numbers: Settings | None, calls: bool) -> None:
        self.pool = pool
        self.source = source
        self.key = (source.name, year, tz, numbers, calls)  # (what `head_start`'s must match to be taken over)
        self.jobs = _jobs(source, year, tz, numbers, calls)
        self.pending: deque[tuple[Future[Result], int, int | None]] = deque()  # (a job's future, its end, its slot)
        #: work for this process while it would wait for a worker, run then (if ever: each does itself when needed)
        self.idle: deque[Callable[[], object]] = deque()
        self.held: int | None = None  # the slot the last buffer's records are read from, until the next is asked for

    def submit(self) -> None:
        """Keep `AHEAD` buffers with the workers: they parse the next ones while this process runs the
        detectors on the current one (refilled one by one, so they never stand idle waiting for a batch)."""
        outbox = _OUTBOX
        pending = self.pending
        while len(pending) < AHEAD:
            job = next(self.jobs, None)
            if job is None:
                return
            end = sum(job.span) if job.span is not None else self.source.bytes_read
            slot = outbox.take() if outbox is not None else None
            given = (outbox.token, slot) if outbox is not None and slot is not None else None
            pending.append((self.pool.submit(parse_job, job, given), end, slot))

    def take(self) -> tuple[Parsed, ScanStats, int, int] | None:
        """The next buffer's results (parsed, counts, last line swallowed, the buffer's end), None after the
        last; the next job is submitted before they are returned (the workers go on meanwhile)."""
        self._let_go()  # (the merge loop is done with the last buffer's records: they were read in its slot)
        if not self.pending:
            return None
        future, done, slot = self.pending.popleft()
        while self.idle and not future.done():
            self.idle.popleft()()
        outbox = _OUTBOX
        try:
            found, part, spill = future.result()
            if isinstance(found, bytes):
                parsed: Parsed = marshal.loads(found)
            else:  # a length: the worker left them in its slot, whose records are read in place (held till the next)
                assert outbox is not None and slot is not None
                parsed = outbox.load(slot, found)
                self.held, slot = slot, None
        finally:
            if outbox is not None and slot is not None:
                outbox.give(slot)
        del future
        self.submit()
        return parsed, part, spill, done

    def _let_go(self) -> None:
        """Give back the slot whose records the last buffer was read from."""
        held, self.held = self.held, None
        if held is not None and _OUTBOX is not None:
            _OUTBOX.give(held)

    def close(self) -> None:
        """The jobs still out when a reader stops early (an error, or its events no longer wanted): cancelled,
        or waited for when a worker has started one, so that its slot is free once nothing will write it."""
        self._let_go()
        pending = self.pending
        outbox = _OUTBOX
        while pending:
            future, _, slot = pending.popleft()
            if not future.cancel():
                with contextlib.suppress(BaseException):
                    future.result()
            if outbox is not None and slot is not None:
                outbox.give(slot)


@dataclass
class _HeadStart:
    """What `head_start` began: its pool (`taken` once a scan uses it) and its feed (until a scan takes it)."""

    pool: Pool
    calls: bool
    source: FileSource
    feed: Feed | None = None
    taken: bool = False


_HEAD_START: _HeadStart | None = None


def head_start(paths: list[str], calls: bool = True) -> None:
    """Fork the parse workers of a scan (or take those `forkpool.fork_early` forked), set up for readers of call
    activity or not (`calls`), while the main process still imports the rest of the command (the configuration,
    the detectors, the report): they build their prefilter and C engine meanwhile, and parse the first buffers
    that `feed_head_start` hands them once the configuration is read, so they are a few buffers ahead when the
    detectors begin, instead of making them wait for each of the first, growing buffers. Only for the first large
    plain file of `paths`; a scan takes them over (`adopt_pool`, `_adopt_feed`) when its settings are the same,
    and what it does not take is dropped (`drop_head_start`)."""
    global _HEAD_START
    if _HEAD_START is not None or workers() == 0:
        return
    source = next((s for s in map(FileSource, paths) if s.size >= MIN_PARALLEL_BYTES), None)
    if source is None or source.spans() is None:
        return  # (a compressed file: this process reads and inflates its buffers, which cannot go ahead)
    _HEAD_START = _HeadStart(_take_early(calls) or pool(calls), calls, source)
    atexit.register(drop_head_start)


#: the job settings of the default configuration (its zones, its number settings, call activity read): the head
#: start of a scan with no `--config` hands out its first buffers with these, not waiting for the configuration
#: module to import (~12 ms); a test holds them to `Config()`'s
DEFAULT_JOB: tuple[tuple[str, str], Settings, bool] = (
    ("", "UTC"), ("", ("00", "011", "810", "+"), ("9", "0"), (), "", 6), True)


def job_settings(config: Config) -> tuple[tuple[str, str], Settings, bool]:
    """The settings a scan with `config` gives its jobs: the zones' names, the number settings, calls read."""
    return (config.timezone, config.cdr_timezone), config.numbers.settings(), config.calls


def feed_head_start(tz: tuple[str, str], numbers: Settings, calls: bool) -> None:
    """Hand the workers that `head_start` forked their file's first buffers, with the settings that the scan
    gives its jobs (`job_settings`); workers set up otherwise (`calls`) are dropped."""
    started = _HEAD_START
    if started is None or started.feed is not None or started.taken:
        return
    if started.calls != calls:
        drop_head_start()
        return
    source = started.source
    started.feed = Feed(started.pool, source, year_of(source), tz, numbers, calls)
    started.feed.submit()


def _take_early(calls: bool) -> Pool | None:
    """`forkpool.take_early`, with the outbox its workers know (this module may have been imported before it
    made their shared memory)."""
    global _OUTBOX
    early = forkpool.take_early(calls)
    if early is not None and _OUTBOX is None:
        _OUTBOX = Outbox.early()
    return early


def adopt_pool(calls: bool) -> Pool | None:
    """The pool that `head_start` forked, for a scan whose workers read call activity or not (`calls`); None
    when there is none, or when it was set up otherwise (then it is dropped)."""
    started = _HEAD_START
    if started is None or started.taken:
        return _take_early(calls)  # (forked before the scan knew whether its file goes ahead)
    if started.calls != calls:
        drop_head_start()
        return None
    started.taken = True
    return started.pool


def _adopt_feed(pool: Pool, key: tuple[object, ...]) -> Feed | None:
    """`head_start`'s feed, when it went to this pool with these very jobs."""
    started = _HEAD_START
    if started is None or started.feed is None or started.pool is not pool:
        return None
    feed, started.feed = started.feed, None
    if feed.key != key:  # (its buffers would be read again: let go of them and their slots now)
        feed.close()
        return None
    return feed


def drop_head_start() -> None:
    """Cancel what `head_start` began and no scan took over, and shut its pool down unless a scan uses it."""
    global _HEAD_START
    started, _HEAD_START = _HEAD_START, None
    forkpool.drop_early()
    if started is None:
        return
    if started.feed is not None:
        started.feed.close()
    if not started.taken:
        started.pool.shutdown(wait=False, cancel_futures=True)


def parallel_events(pool: Pool, source: FileSource, year: Year, tz: tuple[str, str], stats: ScanStats,
                    tally: Tally, banned_until: dict[IPAddress, float],
                    classifier: NumberClassifier | None = None, calls: bool = True,
                    take: Callable[[Event], bool] | None = None,
                    progress: Callable[[int], None] | None = None,
                    nets: tuple[dict[IPv6Network, float], Callable[[IPAddress, float], bool]] | None = None
                    ) -> Generator[Event, None, None]:
    """Events of `source` in file order, parsed by the pool's workers and counted in `tally`; events from addresses
    banned at their time (`banned_until`, the pipeline's, and `nets`: the policy's banned IPv6 networks and its
    test; what the firewall would have dropped) are counted but not even built. With `classifier`, the workers
    classify the dialled numbers and the results are filed in it before the events come. With `take` (the C core's,
    see core.py), the events it sees all the way through are not returned. `progress` is told the bytes done after
    each buffer. Workers number lines from their buffer's start; the results come back in order, so each buffer's
    first line is known by then."""
    from sipwatch.tally import COUNTED  # (imported late: `head_start` forks before the detectors are imported)

    numbers = classifier.settings if classifier is not None else None
    counted = {KIND_INDEX[k] for k in COUNTED}
    strong = EVIDENCE_INDEX[Evidence.STRONG]
    line_base = 0
    skip_through = 0
    last_time = 0.0
    drain_in_c = _drain is not None and native.available() and _drain.knows_offenders()

    def events(wire: list[Wire], skip: int, base: int) -> Iterator[Event]:
        """The merge loop in Python (what `_drain.c` does in C)."""
        nonlocal last_time
        for w in wire:
            if w[10] <= skip:
                stats.events -= 1  # a line swallowed by a record of the previous chunk
                continue
            when = w[0] or last_time
            address = ip(w[3]) if w[3] is not None else None
            tally.count(address, when, KINDS[w[1]], SERVICES[w[2]], w[6], w[7], w[9] == strong, w[1] in counted)
            until = banned_until.get(address) if address is not None else None
            if until is not None and when < until:
                continue  # the firewall would have dropped it
            if nets is not None and nets[0] and address is not None and nets[1](address, when):
                continue  # ... as part of a banned IPv6 network
            event = event_of(w, source.name, address, base)
            event.time = last_time = when
            if take is None or not take(event):
                yield event

    key = (source.name, year, tz, numbers, calls)
    feed = _adopt_feed(pool, key)
    if feed is None:
        feed = Feed(pool, source, year, tz, numbers, calls)
        feed.submit()
    # This process classifies numbers too: phonenumbers is imported (~12 ms) while it waits for a buffer, if it
    # ever does, or when a number first needs it.
    feed.idle.append(load_phonenumbers)
    try:
        while (taken := feed.take()) is not None:
            (packed, classified, forms), part, spill, done = taken
            del taken
            base = line_base
            line_base += part.lines
            part.unmatched_samples = [(f, n + base, t) for f, n, t in part.unmatched_samples]
            part.bad_samples = [(f, n + base, t) for f, n, t in part.bad_samples]
            stats.add(part)
            if classifier is not None and classified:
                classifier.remember_all(classified)
            if classifier is not None and forms:
                classifier.remember_forms(forms)
            skip = skip_through - base  # in this buffer's numbering
            if drain_in_c:
                merge = _drain.Drain(packed, skip, base, last_time, source.name, IPS, ip, tally, banned_until,
                                     counted, strong, KINDS, SERVICES, event_of, Event, Call, EVIDENCE, take,
                                     *(nets or ()))
                # The detectors run inside `merge` (the C core), so this frame is on the stack when they do: an
                # exception caught down there (phonenumbers raises some) can keep it in a traceback cycle
                # until the collector runs. Then it must not hold the buffer's results: the Drain lets go of
                # them when it is done.
                del packed
                yield from merge
                last_time = merge.last_time
                stats.events -= merge.skipped
                del merge
            else:
                yield from events(unpack(packed), skip, base)
            if classifier is not None and classified:
                classifier.forget_all(classified)
            if spill:
                skip_through = max(skip_through, spill + base)
            if progress is not None:
                progress(done)
    finally:
        feed.close()
