"""A large file parsed on several cores gives exactly the events and report of a one-process scan,
also when a record split by an injected line break crosses a buffer boundary."""

from __future__ import annotations

import gzip
import itertools
import marshal
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from generated import gencdr, genlog
from sipwatch import parallel
from sipwatch import scan as scan_module
from sipwatch.config import Config
from sipwatch.formats.records import ScanStats
from sipwatch.formats.wire import Wire
from sipwatch.scan import Reader
from sipwatch.sources.files import FileSource
from sipwatch.tally import Tally

ATTACK = (
    "[2024-05-01 10:{m:02d}:{s:02d}] NOTICE[2817] chan_sip.c: Registration from '\"{u}\"<sip:{u}@203.0.113.10>' "
    "failed for '198.51.100.{a}:5060' - Wrong password"
)
BENIGN = "[2024-05-01 10:{m:02d}:{s:02d}] VERBOSE[2345][C-00000001] app_dial.c: Called PJSIP/{u}"
FORGED_HEAD = (
    "[2024-05-01 10:{m:02d}:{s:02d}] NOTICE[3021][C-0000001a] chan_sip.c: Call from '' (198.51.100.200:5060) "
    "to extension '1"
)
FORGED_MIDDLE = (
    "[2024-05-01 10:{m:02d}:{s:02d}] NOTICE[2817] chan_sip.c: Registration from '<sip:1@x>' failed for "
    "'192.0.2.250:5060' - Wrong password"
)
FORGED_TAIL = "' rejected because extension not found in context 'default'."


def _write(path: Path, lines: int, forged_at: set[int]) -> None:
    out = []
    for i in range(lines):
        m, s = (i // 600) % 60, (i // 10) % 60
        if i in forged_at:
            out += [FORGED_HEAD.format(m=m, s=s), FORGED_MIDDLE.format(m=m, s=s), FORGED_TAIL]
        elif i % 7 == 0:
            out.append(ATTACK.format(m=m, s=s, u=100 + i % 50, a=1 + i % 40))
        else:
            out.append(BENIGN.format(m=m, s=s, u=6000 + i % 9))
    path.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module", params=["outbox", "pipe"])
def pool(request: pytest.FixtureRequest) -> ProcessPoolExecutor:
    """The scan's pool (results in the shared outbox), and a pool forked before any outbox (through the pipe)."""
    kept = parallel._OUTBOX
    if request.param == "outbox":
        executor = parallel.pool()
    else:
        parallel._OUTBOX = None  # jobs are given no slot
        executor = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    yield executor  # type: ignore[misc]
    executor.shutdown()
    parallel._OUTBOX = kept if request.param == "pipe" else parallel._OUTBOX


def _sequential(path: Path) -> list[tuple[object, ...]]:
    events = Reader(Config()).events(FileSource(str(path), chunk=8192), ScanStats())
    return [(e.line, e.kind, str(e.ip), e.port, e.account, e.time) for e in events]


def _parallel(pool: ProcessPoolExecutor, path: Path) -> list[tuple[object, ...]]:
    source = FileSource(str(path), chunk=8192)
    events = parallel.parallel_events(pool, source, (2024, None), ("", "UTC"), ScanStats(), Tally(), {})
    return [(e.line, e.kind, str(e.ip), e.port, e.account, e.time) for e in events]


def test_parallel_parse_equals_sequential(tmp_path: Path, pool: ProcessPoolExecutor) -> None:
    log = tmp_path / "big.log"
    _write(log, 3000, forged_at=set())
    assert _parallel(pool, log) == _sequential(log)


@pytest.mark.parametrize("offset", range(0, 200, 7))
def test_forged_record_across_a_buffer_boundary_blames_nobody(tmp_path: Path, pool: ProcessPoolExecutor,
                                                               offset: int) -> None:
    """Wherever the 8 KiB boundary falls inside the three physical lines, the victim is never named."""
    log = tmp_path / "forged.log"
    _write(log, 400, forged_at={60 + offset // 7})
    seq, par = _sequential(log), _parallel(pool, log)
    assert par == seq
    assert all(ip != "192.0.2.250" for _, _, ip, *_ in par)


def test_a_scan_restores_the_garbage_collectors_settings(tmp_path: Path) -> None:
    """The scan collects rarely (see scan.few_collections); the caller's settings come back afterwards."""
    import gc

    from sipwatch.scan import scan

    path = tmp_path / "small.log"
    _write(path, 50, set())
    before = gc.get_threshold()
    scan([str(path)], Config())
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench/genlog.py's realistic mix: attacks banned early, whose later events only count."""
    return genlog(tmp_path_factory.mktemp("gen") / "attacks.log", 30000, seed=3)


@pytest.mark.parametrize("merge", ["C", "Python"])
def test_a_parallel_scan_reports_what_a_one_process_scan_reports(attack_log: Path, merge: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Bans, counts, accounts and decisions alike, whichever merge loop counts and filters the events."""
    from sipwatch.report import to_json
    from sipwatch.scan import scan

    if merge == "Python":
        monkeypatch.setattr(parallel, "_drain", None)
    elif parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(FileSource.__init__, "__defaults__", (64 << 10,))  # many buffers
    one = to_json(scan([str(attack_log)], Config(), processes=False))
    many = to_json(scan([str(attack_log)], Config(), processes=True))
    for report in (one, many):
        report.pop("seconds", None)
    assert many == one
    assert one["offenders"] and any(o["decision"] == "ban" for o in one["offenders"])


def test_the_c_merge_loop_builds_the_events_event_of_builds() -> None:
    """Every field, the defaults included (no extra: a fresh dict; no reason: ""; a call: a `Call`)."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event
    from sipwatch.formats.wire import EVIDENCE, IPS, KINDS, SERVICES, event_of, ip

    wires = [
        (1714557600.5, 0, 0, "198.51.100.7", 5060, "UDP", "100", None, "friendly-scanner", 1, 3, "chan_sip.x",
         None, "Wrong password", None, None),
        (1714557601.0, 12, 1, None, None, None, "6001", "0044207", None, 1, 9, "asterisk.dial", "abc", "",
         {"contact": "sip:6001@x"}, (None, None, "PJSIP/6001-1", None, "from-internal", None, None, None)),
        (0.0, 1, 2, "2001:db8::7", 0, None, None, None, None, 0, 12, "f", None, "r", {}, None),
    ]
    merge = parallel._drain.Drain(parallel._drain.pack(wires), 0, 100, 42.0, "x.log", IPS, ip, Tally(), {}, set(),
                                  0, KINDS, SERVICES, event_of, Event, Call, EVIDENCE)
    built = list(merge)
    expected, last_time = [], 42.0
    for w in wires:
        event = event_of(w, "x.log", ip(w[3]) if w[3] else None, 100)
        event.time = last_time = w[0] or last_time  # a record without a time takes the one before
        expected.append(event)
    assert built == expected
    assert [type(e.call) for e in built] == [type(None), Call, type(None)]
    assert built[0].extra is not built[2].extra


@pytest.mark.parametrize("alone", [False, True])
def test_the_c_merge_loop_counts_offenders_as_the_tally_does(alone: bool) -> None:
    """Each event counted at once in C gives the counts, first and last times, names (at most MAX_DISTINCT
    of them, the first ones seen) and evidence that the tally's queue gives; a queue that another file's
    one-process scan filled is counted first. So do an offender's events counted together at the end of the
    buffer, as they are when the C core reads a file alone (`alone`: it takes every event)."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event, Evidence, Kind, Service
    from sipwatch.formats.wire import EVIDENCE, EVIDENCE_INDEX, IPS, KIND_INDEX, KINDS, SERVICES, event_of, ip
    from sipwatch.tally import COUNTED, MAX_DISTINCT

    kinds = [Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT, Kind.AUTH_CHALLENGE, Kind.REJECTED_CALL]
    wires = [(1714557600.0 + (i * 7919) % 500, KIND_INDEX[kinds[i % 4]], i % 2, f"198.51.100.{i % 3}", 5060, "UDP",
              f"u{i % 1500}" if i % 5 else "", f"00{i % 250}" if i % 4 == 3 else None, None,
              EVIDENCE_INDEX[Evidence.STRONG if i == 700 else Evidence.WEAK], i + 1, "f", None, "r", None, None)
             for i in range(2000)]
    counted = {KIND_INDEX[k] for k in COUNTED}
    in_c, in_python = Tally(), Tally()
    early = Event(1714557000.0, Kind.AUTH_FAILURE, Service.SIP, ip=ip("198.51.100.1"), account="first")
    for tally in (in_c, in_python):
        tally.add(early)  # queued by a one-process scan of another file
    taken: list[Event] = []
    take = (lambda event: taken.append(event) is None) if alone else None
    returned = list(parallel._drain.Drain(parallel._drain.pack(wires), 0, 0, 0.0, "x.log", IPS, ip, in_c, {},
                                          counted, EVIDENCE_INDEX[Evidence.STRONG], KINDS, SERVICES, event_of, Event,
                                          Call, EVIDENCE, take))
    assert (len(returned), len(taken)) == ((0, len(wires)) if alone else (len(wires), 0))
    for w in wires:
        in_python.count(ip(w[3]), w[0], KINDS[w[1]], SERVICES[w[2]], w[6], w[7],
                        w[9] == EVIDENCE_INDEX[Evidence.STRONG], w[1] in counted)
    in_c.flush(), in_python.flush()
    assert in_c.kinds == in_python.kinds and list(in_c.offenders) == list(in_python.offenders)
    for address, mine in in_c.offenders.items():
        theirs = in_python.offenders[address]
        assert (mine.events, mine.kinds, mine.services, mine.first, mine.last, mine.strong) == (
            theirs.events, theirs.kinds, theirs.services, theirs.first, theirs.last, theirs.strong)
        assert list(mine.accounts.items()) == list(theirs.accounts.items())
        assert list(mine.targets.items()) == list(theirs.targets.items())
    assert len(in_c.offenders[ip("198.51.100.1")].accounts) == MAX_DISTINCT
    assert in_c.offenders[ip("198.51.100.1")].strong


PACKING = [
    (1714557600.5, 0, 0, "198.51.100.7", 5060, "UDP", "100", None, "friendly-scanner", 1, 3, "chan_sip.x", None,
     "Wrong password", None, None),
    (1714557601.0, 12, 1, None, None, None, "6001", "0044207", None, 1, 9, "asterisk.dial", "abc", "",
     {"contact": "sip:6001@x"}, (None, None, "PJSIP/6001-1", None, "from-internal", None, None, None)),
    (0.0, 1, 2, "2001:db8::7", 0, None, None, None, None, 0, 12, "f", None, "r", None, None),
    (1714557602.0, 0, 0, "198.51.100.7", 65535, "UDP", "100", "100", "friendly-scanner", 1, 2**40, "chan_sip.x",
     None, "Wrong password", None, None),
]


def test_packing_keeps_every_field_and_each_text_once() -> None:
    """What a worker sends: the same tuples come back; a text repeated in one buffer is sent once."""
    from sipwatch.formats.wire import pack, unpack

    packed = pack(PACKING)
    assert unpack(packed) == PACKING
    texts = packed[0]
    assert texts[0] is None and len(texts) == len(set(texts))
    assert texts.count("198.51.100.7") == 1 and texts.count("100") == 1


def test_the_c_packer_packs_as_the_python_one_does() -> None:
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.formats.wire import pack

    assert parallel._drain.pack(PACKING) == pack(PACKING)
    assert parallel._drain.pack([]) == pack([]) == ([None], b"", [None])


def test_the_calls_of_a_buffer_travel_as_numbers_and_read_as_before() -> None:
    """A call's records repeat its channel, and calls their context: a call travels in its record, as indexes into
    the buffer's texts (each text once) and its two durations, in C as in Python; no tuple is sent for it (the main
    process loaded a buffer's calls one tuple at a time), and the calls read as before."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.formats.wire import pack, unpack

    calls = [(None, None, "".join(["PJSIP/6001-", "1"]), None, "".join(["from-", "internal"]), 9.0, None, None),
             (None, None, "".join(["PJSIP/6001-", "1"]), None, "".join(["from-", "internal"]), None, 0.0, "ANSWERED"),
             ("1714557601.7", "1714557601.6", "PJSIP/6002-2", "PJSIP/trunk-3", "from-internal", 61.5, 59.25, "BUSY"),
             None]
    wires = [(1714557601.0 + i, 12, 1, None, None, None, "6001", "0044207", None, 1, i + 1, "asterisk.dial", None, "",
              None, call) for i, call in enumerate(calls)]
    assert calls[0][2] is not calls[1][2]  # equal texts, made apart (as the fast lane makes them)
    for packed in (parallel._drain.pack(wires), pack(wires)):
        texts, _, objects = marshal.loads(marshal.dumps(packed))
        assert objects == [None] and texts.count("PJSIP/6001-1") == texts.count("from-internal") == 1
        assert [w[15] for w in unpack(packed)] == calls
    assert parallel._drain.pack(wires) == pack(wires)


@pytest.mark.parametrize("call", [(None,) * 7, "PJSIP/6001-1", (None, None, 7, None, None, None, None, None),
                                  (None, None, None, None, None, "9", None, None)])
def test_a_call_that_is_no_call_tuple_is_refused(call: object) -> None:
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    wire = (1714557601.0, 12, 1, None, None, None, "6001", None, None, 1, 1, "asterisk.dial", None, "", None, call)
    with pytest.raises(TypeError):
        parallel._drain.pack([wire])


def _many_texts(n: int) -> list[Wire]:
    """`n` records whose accounts are all distinct, in every width a str can have (one byte, two, four), some
    texts alike in their bytes but not in their characters, and each record's text again in the next one."""
    marks = ["", "é", "Ā", "😀", "\x00"]

    def account(i: int) -> str:
        return f"{marks[i % 5]}{i}"

    return [(1714557600.0 + i, 0, 0, "198.51.100.7", 5060, "UDP", account(i), account(i - 1), None, 1, i + 1,
             "chan_sip.x", None, "r", None, None) for i in range(n)]


@pytest.mark.parametrize("n", [1, 300, 5000])
def test_the_c_packer_numbers_many_texts_of_every_width_as_the_python_one_does(n: int) -> None:
    """The C packer numbers the texts by their content in a table of its own, which grows with the buffer."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.formats.wire import pack

    wires = _many_texts(n)
    assert parallel._drain.pack(wires) == pack(wires)
    packer = _c_packer()
    packer.add_all(wires)  # type: ignore[attr-defined]
    assert packer.trim(n // 2) == n // 2  # type: ignore[attr-defined]
    packer.add_all(wires[n // 2:])  # type: ignore[attr-defined]
    assert packer.result() == pack(wires)  # type: ignore[attr-defined]


def _c_packer() -> object:
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.formats.wire import to_wire

    return parallel._drain.Packer(to_wire)


class _ThroughTuples:
    """A C packer whose `add` is a Python function: the fast lane hands it wire tuples, not parts."""

    def __init__(self, packer: object) -> None:
        self.packer = packer

    def add(self, item: object) -> None:
        self.packer.add(item)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.packer, name)


@pytest.mark.parametrize("kind", ["log", "cdr"])
def test_the_fast_lane_hands_the_packer_each_record_as_the_parts_of_its_wire_tuple(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A packer's own `add` gets each record the fast lane makes as its parts (no tuple made and taken apart):
    the buffer packs byte for byte as through the wire tuples."""
    real = _c_packer().__class__
    path = genlog(tmp_path / "a.log", 20000, seed=9) if kind == "log" else gencdr(tmp_path / "Master.csv", 5000, seed=9)
    data = path.read_bytes()
    job = parallel.Job(str(path), data, len(data), 0, (2024, None), ("", "UTC"), None, True,
                       rows_only=kind == "cdr")
    assert type(parallel._drain._parts_api).__name__ == "PyCapsule"  # (what the fast lane imports: _parts.h)
    as_parts = parallel.parse_job(job)
    monkeypatch.setattr(parallel, "_drain", type("Drain", (), {"Packer": lambda c: _ThroughTuples(real(c))}))
    as_tuples = parallel.parse_job(job)
    assert isinstance(as_parts[0], bytes) and len(marshal.loads(as_parts[0])[0][1]) > 1000
    assert as_parts[0] == as_tuples[0] and as_parts[1:] == as_tuples[1:]


def test_records_packed_one_by_one_are_the_buffer_packed_at_once() -> None:
    from sipwatch.formats.wire import pack

    packer = _c_packer()
    for w in PACKING:
        packer.add(w)  # type: ignore[attr-defined]
    assert len(packer) == len(PACKING)  # type: ignore[arg-type]
    assert packer.result() == pack(PACKING)  # type: ignore[attr-defined]


def test_the_packer_takes_the_events_of_the_python_path_as_their_wire_tuples() -> None:
    from sipwatch.formats.wire import event_of, pack

    packer = _c_packer()
    packer.add_all([event_of(w, "x.log") if i % 2 else w for i, w in enumerate(PACKING)])  # type: ignore[attr-defined]
    assert packer.result() == pack(PACKING)  # type: ignore[attr-defined]


@pytest.mark.parametrize("last", [0, 2, 3, 9, 12, 2**40])
def test_trimming_the_lookahead_leaves_what_packing_the_kept_records_gives(last: int) -> None:
    """The records of lines past the buffer's end go, with the texts and objects that only they had."""
    from sipwatch.formats.wire import pack

    ordered = sorted(PACKING, key=lambda w: w[10])
    packer = _c_packer()
    packer.add_all(ordered)  # type: ignore[attr-defined]
    kept = [w for w in ordered if w[10] <= last]
    assert packer.trim(last) == len(kept)  # type: ignore[attr-defined]
    assert packer.result() == pack(kept)  # type: ignore[attr-defined]


def test_the_packer_names_each_number_its_calls_dialled_once() -> None:
    packer = _c_packer()
    packer.add_all(PACKING + PACKING)  # type: ignore[attr-defined]
    assert packer.targets({12}) == ["0044207"]  # type: ignore[attr-defined]
    assert packer.targets({0}) == ["100"]  # type: ignore[attr-defined]
    assert packer.targets(set()) == []  # type: ignore[attr-defined]
    assert parallel._targets(PACKING + PACKING) == ["0044207"]


def test_a_done_packer_refuses_more() -> None:
    packer = _c_packer()
    packer.result()  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        packer.add(PACKING[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["log", "cdr"])
def test_a_worker_packs_each_buffer_as_the_python_packer_does(tmp_path: Path, name: str) -> None:
    """parse_job packs each record as the engine reads it; what it sends is what packing the records that
    `RecordScanner.feed` returns sends (and the numbers classified and the probes' forms are the same)."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")

    from sipwatch.formats.records import RecordScanner
    from sipwatch.formats.wire import pack, to_wire
    from sipwatch.pipeline import Pipeline

    path = tmp_path / ("full" if name == "log" else "Master.csv")
    if name == "log":
        genlog(path, 4000, seed=3)
    else:
        gencdr(path, 2000, seed=3)
    source = FileSource(str(path), chunk=32768)
    settings = Pipeline(Config()).calls.classifier.settings
    jobs = list(parallel._jobs(source, (2024, None), ("", "UTC"), settings, True))
    assert len(jobs) > 3
    for job in jobs:
        blob, stats, spill = parallel.parse_job(job)
        assert isinstance(blob, bytes)
        packed, numbers, forms = marshal.loads(blob)
        parser, prefilter = parallel._parser(job.name, job.year, job.tz, job.calls)
        parser.last_time = 0.0
        parser.rows_only = job.rows_only
        scanner = RecordScanner(parser, prefilter, job.name, ScanStats(), native_lane=True)
        scanner.line_base = job.line_base
        data, limit = parallel.read_span(job.name, *job.span, parallel.LOOKAHEAD)  # type: ignore[misc]
        wires = [i if i.__class__ is tuple else to_wire(i) for i in scanner.feed(data, limit)]  # type: ignore[arg-type]
        assert packed == pack(wires)
        assert (stats.events, spill) == (len(wires), scanner.spill_line)
        assert numbers == parallel._classified(parallel._targets(wires), settings)
        assert forms == parallel._forms(parallel._targets(wires, parallel._PROBES), settings)


def _jobs_of(path: Path, chunk: int = 32768) -> list[parallel.Job]:
    return list(parallel._jobs(FileSource(str(path), chunk=chunk), (2024, None), ("", "UTC"), None, True))


def test_a_worker_leaves_its_results_in_the_slot_it_was_given(tmp_path: Path) -> None:
    """In the outbox slot named by the outbox's token: what it would have sent through the pipe."""
    genlog(tmp_path / "full", 2000, seed=4)
    job = _jobs_of(tmp_path / "full")[1]
    outbox = parallel.Outbox(slots=2)
    kept, parallel._OUTBOX = parallel._OUTBOX, outbox
    try:
        sent, stats, spill = parallel.parse_job(job)
        left, stats2, spill2 = parallel.parse_job(job, (outbox.token, 1))
        other, _, _ = parallel.parse_job(job, ("another outbox", 1))
    finally:
        parallel._OUTBOX = kept
    assert isinstance(sent, bytes) and isinstance(left, int) and other == sent
    assert outbox.load(1, left) == marshal.loads(sent)
    assert (stats2.events, stats2.lines, spill2) == (stats.events, stats.lines, spill)


def test_a_result_too_large_for_a_slot_goes_through_the_pipe(tmp_path: Path) -> None:
    genlog(tmp_path / "full", 2000, seed=4)
    job = _jobs_of(tmp_path / "full")[1]
    outbox = parallel.Outbox(slots=1, size=100)
    kept, parallel._OUTBOX = parallel._OUTBOX, outbox
    try:
        sent, _, _ = parallel.parse_job(job, (outbox.token, 0))
    finally:
        parallel._OUTBOX = kept
    assert isinstance(sent, bytes) and len(sent) > 100
    assert not outbox.put(0, b"x" * 101) and outbox.put(0, b"x" * 100)


def test_without_shared_memory_the_pool_still_reads_through_the_pipe(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    log = tmp_path / "big.log"
    _write(log, 4000, forged_at=set())
    monkeypatch.setattr(parallel, "_OUTBOX", None)
    monkeypatch.setattr(parallel.mmap, "mmap", refused)
    executor = parallel.pool()
    try:
        assert parallel._OUTBOX is None
        assert _parallel(executor, log) == _sequential(log)
    finally:
        executor.shutdown()


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 1), (3, 2), (64, 2)])
def test_the_detectors_keep_a_core_to_themselves(cores: int, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main process runs the detectors: the parse workers take the other cores, two at most."""
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert parallel.workers() == workers
    assert scan_module._Pools(True).enabled is (workers > 0)


def test_outbox_slots_are_taken_until_none_is_left_and_given_back(tmp_path: Path) -> None:
    outbox = parallel.Outbox(slots=2, size=4096)
    first, second = outbox.take(), outbox.take()
    assert {first, second} == {0, 1} and outbox.take() is None
    outbox.give(first)  # type: ignore[arg-type]
    assert outbox.take() == first


def test_a_reader_stopped_early_gives_its_slots_back(tmp_path: Path) -> None:
    """Its jobs still out are cancelled or waited for, so no slot stays taken (or is written after it is free)."""
    log = tmp_path / "big.log"
    _write(log, 20000, forged_at=set())
    executor = parallel.pool()
    outbox = parallel._OUTBOX
    assert outbox is not None
    try:
        free = sorted(outbox.free)
        events = parallel.parallel_events(executor, FileSource(str(log), chunk=8192), (2024, None), ("", "UTC"),
                                          ScanStats(), Tally(), {})
        next(events)
        assert len(outbox.free) < len(free)  # its jobs hold slots
        events.close()
        assert sorted(outbox.free) == free
        assert len(_parallel(executor, log)) == len(_sequential(log))  # and the next reader has them all
    finally:
        executor.shutdown()


def test_a_buffers_records_are_read_in_its_slot_which_is_held_until_the_next_buffer(tmp_path: Path) -> None:
    """The merge loop reads a buffer's packed records where the worker left them (not copied out): their slot
    is given back once the next buffer is asked for (the loop is done with them then), or the reader stops."""
    log = tmp_path / "a.log"
    _write(log, 3000, forged_at=set())
    kept = parallel._OUTBOX
    outbox = parallel._OUTBOX = parallel.Outbox(slots=6)
    executor = parallel.pool()
    try:
        feed = parallel.Feed(executor, FileSource(str(log), chunk=8192), (2024, None), ("", "UTC"), None, True)
        feed.submit()
        taken = feed.take()
        assert taken is not None
        records = taken[0][0][1]
        first = feed.held
        assert isinstance(records, memoryview) and len(records) > 0
        assert first is not None and first not in outbox.free
        assert len(outbox.free) == 6 - len(feed.pending) - 1  # (one slot a job out, and the one held)
        assert feed.take() is not None and feed.held not in (None, first)
        assert len(outbox.free) == 6 - len(feed.pending) - 1  # (the first given back)
        feed.close()
        assert sorted(outbox.free) == list(range(6))
    finally:
        executor.shutdown()
        parallel._OUTBOX = kept


def test_two_files_read_at_once_share_the_slots_and_the_pipe(tmp_path: Path) -> None:
    """More jobs out than slots (two readers, AHEAD each, and a small outbox): the rest use the pipe."""
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    _write(logs[0], 6000, forged_at=set())
    _write(logs[1], 7000, forged_at={500})
    kept = parallel._OUTBOX
    parallel._OUTBOX = parallel.Outbox(slots=3)
    executor = parallel.pool()
    try:
        readers = [parallel.parallel_events(executor, FileSource(str(p), chunk=8192), (2024, None), ("", "UTC"),
                                            ScanStats(), Tally(), {}) for p in logs]
        found: list[list[tuple[object, ...]]] = [[], []]
        for pair in itertools.zip_longest(*readers):
            for i, e in enumerate(pair):
                if e is not None:
                    found[i].append((e.line, e.kind, str(e.ip), e.port, e.account, e.time))
        assert found == [_sequential(logs[0]), _sequential(logs[1])]
        assert sorted(parallel._OUTBOX.free) == [0, 1, 2]
    finally:
        executor.shutdown()
        parallel._OUTBOX = kept


@pytest.mark.parametrize("bad", [
    [(0.0,) * 3],  # not a wire tuple
    [(*PACKING[0][:1], 300, *PACKING[0][2:])],  # a kind beyond any enum
    [(*PACKING[0][:4], -5, *PACKING[0][5:])],  # a negative port
    [(*PACKING[0][:6], b"100", *PACKING[0][7:])],  # a text that is not a str
    [(*PACKING[0][:4], 2**70, *PACKING[0][5:])],  # a port beyond any integer of the record
])
def test_the_c_packer_refuses_what_is_no_wire_tuple(bad: list[Wire]) -> None:
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    with pytest.raises((TypeError, ValueError, OverflowError)):
        parallel._drain.pack(bad)


def test_the_c_merge_loop_builds_through_event_of_when_it_does_not_know_the_event_type() -> None:
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event
    from sipwatch.formats.wire import EVIDENCE, IPS, KINDS, SERVICES, event_of, ip

    def merged(*known: object) -> list[Event]:
        return list(parallel._drain.Drain(parallel._drain.pack(PACKING), 0, 7, 42.0, "x.log", IPS, ip, Tally(), {},
                                          set(), 0, KINDS, SERVICES, event_of, *known))

    assert merged() == merged(Event, Call, EVIDENCE) and len(merged()) == len(PACKING)


def test_the_c_merge_loop_refuses_indexes_beyond_its_buffer() -> None:
    """A record naming a text the buffer does not hold is an error, not a read out of bounds."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event
    from sipwatch.formats.wire import EVIDENCE, IPS, KINDS, SERVICES, event_of, ip, pack

    texts, records, objects = pack(PACKING[:1])
    merge = parallel._drain.Drain((texts[:2], records, objects), 0, 0, 0.0, "x.log", IPS, ip, Tally(), {}, set(),
                                  0, KINDS, SERVICES, event_of, Event, Call, EVIDENCE)
    with pytest.raises(ValueError, match="out of range"):
        list(merge)
    with pytest.raises(ValueError, match="wrong size"):  # a record cut short
        parallel._drain.Drain((texts, records[:-1], objects), 0, 0, 0.0, "x.log", IPS, ip, Tally(), {}, set(), 0,
                              KINDS, SERVICES, event_of, Event, Call, EVIDENCE)


def test_spans_cover_a_plain_file_and_end_on_line_breaks(tmp_path: Path) -> None:
    """A worker reads its own span; together they are the file, each ending after a line break except where
    one absurd line runs past 16 buffers (cut there, as `buffers()` hands it over) or the file ends."""
    from sipwatch.sources.files import read_span

    path = tmp_path / "odd.log"
    lines = [ATTACK.format(m=1, s=i % 60, u=100 + i, a=1 + i % 40) for i in range(300)]
    lines.insert(120, "x" * 100_000)  # more than 16 buffers of 4 KiB
    path.write_text("\n".join(lines) + "\nno newline at the end")
    source = FileSource(str(path), chunk=4096)
    spans = list(source.spans() or [])
    data = path.read_bytes()
    assert spans[0][0] == 0 and sum(n for _, n in spans) == len(data)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(spans))
    ends = [data[a + n - 1 : a + n] for a, n in spans[:-1]]
    assert ends.count(b"\n") >= len(ends) - 2  # the absurd line is cut once, at 16 buffers
    assert b"".join(read_span(str(path), a, n, 0)[0] for a, n in spans) == data


def test_spans_are_smaller_at_both_ends(tmp_path: Path) -> None:
    """The detectors wait for the first buffer and work alone on the last: both are short."""
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"%07d %s\n" % (i, b"x" * 56) for i in range(20_000)))  # 1.28 MB
    sizes = [n for _, n in FileSource(str(path), chunk=128 << 10).spans() or []]
    assert sizes[0] <= 17 << 10 and sizes[-1] <= 17 << 10
    assert max(sizes) <= (128 << 10) + 64 and sizes.count(max(sizes)) >= len(sizes) // 2


def test_no_spans_for_compressed_input_or_standard_input(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "x.log.gz"
    path.write_bytes(gzip.compress(b"line\n"))
    assert FileSource(str(path)).spans() is None
    assert FileSource("-").spans() is None
    assert FileSource(str(tmp_path / "missing.log")).spans() is None  # the reader says why, not the spans


@pytest.mark.parametrize("repeat", [5_000, 20_000])
def test_a_parallel_scan_skips_a_huge_line_as_a_one_process_scan_does(tmp_path: Path, pool: ProcessPoolExecutor,
                                                                      repeat: int) -> None:
    """A line of 70 KB (within 16 buffers of 8 KiB) is one junk record either way. One of 280 KB is cut
    into pieces where each reader's buffers fall (memory stays bounded): the same events, junk counted."""
    path = tmp_path / "junk.log"
    lines = [ATTACK.format(m=1, s=i % 60, u=100 + i, a=1 + i % 40) for i in range(200)]
    lines.insert(80, "[2024-05-01 10:00:00] NOTICE[1] chan_sip.c: " + "' failed for '" * repeat)
    path.write_text("\n".join(lines) + "\n")
    seq_stats, par_stats = ScanStats(), ScanStats()
    seq = [(e.line, e.kind, str(e.ip)) for e in Reader(Config()).events(FileSource(str(path), chunk=8192), seq_stats)]
    par = [(e.line, e.kind, str(e.ip)) for e in parallel.parallel_events(
        pool, FileSource(str(path), chunk=8192), (2024, None), ("", "UTC"), par_stats, Tally(), {})]
    assert par == seq and len(par) == 200
    assert par_stats.lines == seq_stats.lines
    if len(lines[80]) < 16 * 8192:
        assert par_stats.junk == seq_stats.junk == 1
    else:
        assert par_stats.junk >= 1 and seq_stats.junk >= 1


def test_a_finished_merge_loop_lets_go_of_its_buffer() -> None:
    """The detectors run inside the merge loop: a traceback cycle from down there may keep the loop alive until
    the collector runs, so it must not keep a whole buffer's results with it."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    import sys

    from sipwatch.event import Call, Event
    from sipwatch.formats.wire import EVIDENCE, IPS, KINDS, SERVICES, event_of, ip

    packed = parallel._drain.pack(
        [(1714557600.0, 0, 0, "198.51.100.7", 5060, "UDP", "100", None, None, 0, 1, "f", None, "r", None, None)])
    merge = parallel._drain.Drain(packed, 0, 0, 0.0, "x.log", IPS, ip, Tally(), {}, set(), 0, KINDS, SERVICES,
                                  event_of, Event, Call, EVIDENCE)
    held = [sys.getrefcount(part) for part in packed]
    assert len(list(merge)) == 1
    assert [sys.getrefcount(part) for part in packed] == [n - 1 for n in held]
    assert list(merge) == []


CDR_ROW = ('"","{a}","0441234567","from-internal","""Phone {a}"" <{a}>","PJSIP/{a}-1","PJSIP/carrier-2","Dial",'
           '"PJSIP/x@carrier,60","2026-03-02 01:40:{s:02d}","2026-03-02 01:41:12","2026-03-02 01:45:07",251,235,'
           '"ANSWERED","DOCUMENTATION","1772415656.{a}","src=198.51.100.{h}:5060"')
FORGED = ("[2026-03-02 01:30:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for "
          "'203.0.113.66:5060' - Wrong password")


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunk", [2048, 4096, 8192])
def test_a_cdr_row_over_several_lines_is_one_record_wherever_the_buffers_fall(
        tmp_path: Path, pool: ProcessPoolExecutor, chunk: int, compressed: bool) -> None:
    """A line break in a caller's number spreads its row over three lines, one of them a forged log line;
    whichever buffer the row starts in, the row is one call and the forged line nothing; in a rotated,
    gzip-compressed Master.csv too (its buffers are cut while it is read, not by offsets)."""
    rows = [CDR_ROW.format(a=6000 + i, s=i % 60, h=1 + i % 200) for i in range(120)]
    for at in range(3, 120, 4):  # every fourth row: some buffer boundary falls inside one of them
        rows[at] = rows[at].replace(f'"{6000 + at}","0441234567"', f'"{6000 + at}\n{FORGED}\n","0441234567"', 1)
    text = ("\n".join(rows) + "\n").encode()
    path = tmp_path / ("Master.csv.1.gz" if compressed else "Master.csv")
    path.write_bytes(gzip.compress(text) if compressed else text)
    source = FileSource(str(path), chunk=chunk)
    assert source.rows_only and (source.spans() is None) == compressed
    events = list(parallel.parallel_events(pool, source, (2026, None), ("", "UTC"), ScanStats(), Tally(), {}))
    assert len(events) == 120 and {str(e.ip) for e in events}.isdisjoint({"203.0.113.66"})
    assert [e.account for e in events] == [str(6000 + i) for i in range(120)]


@pytest.mark.parametrize(("seed", "split"), [(seed, 24) for seed in range(6)] + [(0, 3000)])
def test_a_cut_told_from_the_lines_before_it_is_the_cut_of_a_read_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, split: int) -> None:
    """Between buffers of CSV rows, the lines just before a cut show most times that no row runs over it
    (`ROW_TAIL` bytes of them); the buffers are those of reading each from its start: rows over two to five
    lines (some, or every one), near cuts and far, a quote too many, a line of 2 KiB."""
    import random

    from sipwatch.sources import files

    chance = random.Random(seed)
    rows = [CDR_ROW.format(a=6000 + i, s=i % 60, h=1 + i % 200) for i in range(3000)]
    for at in chance.sample(range(3000), split):
        breaks = "\n".join(["x"] * (5 if split == 3000 else chance.randint(2, 5)))
        rows[at] = rows[at].replace(f'"{6000 + at}","0441234567"', f'"{6000 + at}{breaks}","0441234567"', 1)
    rows[chance.randrange(3000)] = rows[0].replace('"from-internal"', '"from-"internal"', 1)
    rows[chance.randrange(3000)] = rows[1].replace('"Dial"', '"' + "D" * 2048 + '"', 1)
    path = tmp_path / "Master.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode())
    source = FileSource(str(path), chunk=32 << 10)
    monkeypatch.setattr(files, "ROW_TAIL", 1 << 30)  # never: each buffer read from its start
    read_through = list(source._spans(source.size))
    monkeypatch.setattr(files, "ROW_TAIL", 20_000)  # (~80 lines: 65 are looked at)
    told: list[bool] = []
    balanced = files._balanced_before
    monkeypatch.setattr(files, "_balanced_before", lambda *args: told.append(balanced(*args)) or told[-1])
    assert list(source._spans(source.size)) == read_through
    assert len(read_through) > 25 and False in told and (True in told) == (split < 3000)


@pytest.mark.parametrize(("text", "end", "balanced"), [
    pytest.param(b'"a","b"\n' * 20, 160, True, id="every line balances"),
    pytest.param(b'"a","b"\n' * 17 + b'"a\n' + b'"a","b"\n' * 2, 155, False, id="an odd line among them"),
    pytest.param(b'"a\n' + b'"a","b"\n' * 19, 155, True, id="an odd line further back"),
    pytest.param(b'"a","b"\n' * 20, 159, False, id="not just after a line break"),
    pytest.param(b'"a","b"\n' * 3 + b"x" * 140 + b"\n", 165, False, id="fewer whole lines than asked"),
    pytest.param(b'"a","b"\n' * 20, 200, False, id="the file ends before (truncated)"),
])
def test_the_lines_before_a_cut_tell_only_what_they_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          text: bytes, end: int, balanced: bool) -> None:
    """`_balanced_before` says a cut is safe only when it read every line it was asked for and each balances."""
    from sipwatch.sources import files

    monkeypatch.setattr(files, "ROW_TAIL", 100)
    path = tmp_path / "Master.csv"
    path.write_bytes(text)
    with open(path, "rb") as fh:
        assert files._balanced_before(fh, end, 5) is balanced


def test_a_row_with_an_unbalanced_quote_holds_no_compressed_buffer_back(tmp_path: Path,
                                                                        pool: ProcessPoolExecutor) -> None:
    """A row with one quote too many (the csv module still reads it) leaves the quote count of the rest of
    the file odd: the buffers are still cut (a row open over more than 64 KiB is no row), and every row
    after it is read."""
    rows = [CDR_ROW.format(a=6000 + i, s=i % 60, h=1 + i % 200) for i in range(2000)]
    rows[10] = rows[10].replace('"from-internal"', '"from-"internal"', 1)
    path = tmp_path / "Master.csv.2.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    stats = ScanStats()
    events = list(parallel.parallel_events(pool, FileSource(str(path), chunk=4096), (2026, None), ("", "UTC"),
                                           stats, Tally(), {}))
    assert [e.account for e in events] == [str(6000 + i) for i in range(2000)]


def test_a_truncated_compressed_master_csv_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    """A rotated Master.csv cut short (a full disk while logrotate compressed it): a clear error, and the
    rows before the cut are read, whole."""
    from sipwatch.scan import scan

    rows = [CDR_ROW.format(a=6000 + i, s=i % 60, h=1 + i % 200) for i in range(400)]
    packed = gzip.compress(("\n".join(rows) + "\n").encode())
    path = tmp_path / "Master.csv.1.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    result = scan([str(path)], Config())
    assert any("truncated" in e for e in result.errors)
    accounts = set(result.accounts)
    assert 100 < len(accounts) < 400 and accounts == {str(6000 + i) for i in range(len(accounts))}


def test_the_probes_international_forms_come_worked_out_from_the_workers(pool: ProcessPoolExecutor,
                                                                         attack_log: Path) -> None:
    """The toll-fraud detector asks for the international form of every number a probe dialled: the workers
    send them with the buffer, so the main process works none out itself, and they are what it would make."""
    from sipwatch.event import Kind
    from sipwatch.numbers import NumberClassifier
    from sipwatch.pipeline import Pipeline

    classifier = Pipeline(Config()).classifier
    worked_out_here: list[str] = []
    own = classifier._international_form

    def counted(dialled: str) -> str | None:
        worked_out_here.append(dialled)
        return own(dialled)

    classifier._international_form = counted  # type: ignore[method-assign]
    events = list(parallel.parallel_events(pool, FileSource(str(attack_log), chunk=65536), (2024, None),
                                           ("", "UTC"), ScanStats(), Tally(), {}, classifier))
    dialled = {e.target for e in events if e.kind in (Kind.REJECTED_CALL, Kind.CALL_ATTEMPT) and e.target}
    assert len(dialled) > 100
    fresh = NumberClassifier(*classifier.settings)
    assert all(classifier.international_form(number) == fresh.international_form(number) for number in dialled)
    assert worked_out_here == []



def test_a_parallel_scan_leaves_the_prefilter_to_its_workers(attack_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main process compiles no prefilter it will not use (its workers have theirs), and the report names
    the engine a one-process scan names."""
    from sipwatch.formats import ahead
    from sipwatch.formats.prefilter import Prefilter
    from sipwatch.scan import scan

    built: list[object] = []
    shared = ahead.prefilter

    def counted(calls: bool, markers: list[str]) -> Prefilter:
        built.append(calls)
        return shared(calls, markers)

    monkeypatch.setattr(ahead, "prefilter", counted)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    many = scan([str(attack_log)], Config(), processes=True).engine
    assert built == []
    one = scan([str(attack_log)], Config(), processes=False).engine
    assert len(built) == 1 and many == one


@pytest.mark.parametrize("alone", [False, True])
def test_a_merge_loop_left_before_its_end_keeps_the_counts_of_what_it_read(alone: bool) -> None:
    """A reader stopped early (an error downstream) still has the events read so far counted, whether they were
    counted one by one or together at the buffer's end."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    import gc

    from sipwatch.event import Call, Event, Evidence, Kind
    from sipwatch.formats.wire import EVIDENCE, EVIDENCE_INDEX, IPS, KIND_INDEX, KINDS, SERVICES, event_of, ip
    from sipwatch.tally import COUNTED

    wires = [(1714557600.0 + i, KIND_INDEX[Kind.AUTH_FAILURE], 0, f"198.51.100.{i % 3}", 5060, "UDP", f"u{i}", None,
              None, EVIDENCE_INDEX[Evidence.WEAK], i + 1, "f", None, "r", None, None) for i in range(30)]
    tally = Tally()
    merge = parallel._drain.Drain(parallel._drain.pack(wires), 0, 0, 0.0, "x.log", IPS, ip, tally, {},
                                  {KIND_INDEX[k] for k in COUNTED}, EVIDENCE_INDEX[Evidence.STRONG], KINDS, SERVICES,
                                  event_of, Event, Call, EVIDENCE, (lambda event: False) if alone else None)
    read = list(itertools.islice(merge, 10))
    del merge
    gc.collect()
    tally.flush()
    assert [e.line for e in read] == list(range(1, 11))
    assert sum(o.events for o in tally.offenders.values()) == 10 and tally.kinds == {Kind.AUTH_FAILURE: 10}
    assert [list(o.accounts) for o in tally.offenders.values()] == [["u0", "u3", "u6", "u9"], ["u1", "u4", "u7"],
                                                                    ["u2", "u5", "u8"]]


def test_a_buffer_of_many_distinct_names_is_counted_as_the_tally_counts_it() -> None:
    """An enumeration tries thousands of user names in one buffer, and addresses share a wordlist: each
    address's names, counted together in C (`alone`: a file read alone), are the tally's, the first
    MAX_DISTINCT of them in the order first seen, and the table that finds a name grows as it must."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event, Evidence, Kind
    from sipwatch.formats.wire import EVIDENCE, EVIDENCE_INDEX, IPS, KIND_INDEX, KINDS, SERVICES, event_of, ip
    from sipwatch.tally import COUNTED

    wires = [(1714557600.0 + i / 100, KIND_INDEX[Kind.UNKNOWN_ACCOUNT], 0, f"198.51.100.{i % 4}", 5060, "UDP",
              f"user{(i * 7) % 20000}", f"00{i % 3000}", None, EVIDENCE_INDEX[Evidence.WEAK], i + 1, "f", None, "r",
              None, None) for i in range(40000)]
    counted = {KIND_INDEX[k] for k in COUNTED}
    in_c, in_python = Tally(), Tally()
    list(parallel._drain.Drain(parallel._drain.pack(wires), 0, 0, 0.0, "x.log", IPS, ip, in_c, {}, counted,
                               EVIDENCE_INDEX[Evidence.STRONG], KINDS, SERVICES, event_of, Event, Call, EVIDENCE,
                               lambda event: True))
    for w in wires:
        in_python.count(ip(w[3]), w[0], KINDS[w[1]], SERVICES[w[2]], w[6], w[7], False, w[1] in counted)
    in_c.flush(), in_python.flush()
    assert list(in_c.offenders) == list(in_python.offenders)
    for address, mine in in_c.offenders.items():
        theirs = in_python.offenders[address]
        assert (mine.events, mine.kinds) == (theirs.events, theirs.kinds)
        assert list(mine.accounts.items()) == list(theirs.accounts.items())
        assert list(mine.targets.items()) == list(theirs.targets.items())


def test_an_event_the_core_let_go_is_built_again_in_place_and_one_held_elsewhere_never_is() -> None:
    """The C merge loop builds the next event in the one the core took and dropped (most events end there), so
    an event that anyone still holds keeps its fields: every event the core kept reads as its own record."""
    if parallel._drain is None:
        pytest.skip("the C merge loop is not built (needs gcc and python3-dev at install time)")
    from sipwatch.event import Call, Event, Evidence, Kind
    from sipwatch.formats.wire import EVIDENCE, EVIDENCE_INDEX, IPS, KIND_INDEX, KINDS, SERVICES, event_of, ip

    wires = [(1714557600.0 + i, KIND_INDEX[Kind.CALL_START if i % 2 else Kind.AUTH_FAILURE], 0, f"198.51.100.{i % 5}",
              5060 + i, "UDP", f"u{i}", f"00{i}", None, EVIDENCE_INDEX[Evidence.WEAK], i + 1, "f", None, "r",
              {"n": str(i)} if i % 3 == 0 else None,
              (None, None, f"PJSIP/{i}-1", None, "ctx", None, None, None) if i % 2 else None) for i in range(300)]
    kept: list[Event] = []

    def take(event: Event) -> bool:
        if event.line % 7 == 0:
            kept.append(event)
        return True

    list(parallel._drain.Drain(parallel._drain.pack(wires), 0, 0, 0.0, "x.log", IPS, ip, Tally(), {}, set(),
                               EVIDENCE_INDEX[Evidence.STRONG], KINDS, SERVICES, event_of, Event, Call, EVIDENCE, take))
    assert [e.line for e in kept] == [n for n in range(1, 301) if n % 7 == 0]
    for event in kept:
        i = event.line - 1
        assert (event.time, event.kind, event.ip, event.port, event.account, event.target) == (
            1714557600.0 + i, KINDS[wires[i][1]], ip(wires[i][3]), 5060 + i, f"u{i}", f"00{i}")
        assert event.extra == ({"n": str(i)} if i % 3 == 0 else {})
        assert event.call == (Call(channel=f"PJSIP/{i}-1", context="ctx") if i % 2 else None)
        assert not event.repeat and not event.blocked


def test_a_file_of_csv_rows_is_cut_into_smaller_buffers_than_a_log(tmp_path: Path) -> None:
    """A parallel scan cuts CSV rows (CDR, CEL) into 2 MiB buffers, a log into 4 MiB ones: a buffer of rows makes
    a text of nearly every field, and its results must still be in the cache when the detectors read them."""
    from sipwatch.sources.files import CHUNK, ROWS_CHUNK, FileSource

    row = b'"","6001","00442079460000","from-internal","","PJSIP/6001-1","","Dial","","2024-05-01 10:00:00",,' \
          b'"2024-05-01 10:01:00",60,0,"NO ANSWER","DOCUMENTATION","1714557600.1",""\n'
    line = b"[2024-05-01 10:00:00] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' failed\n"
    sizes = {}
    for name, text in (("Master.csv", row), ("messages", line)):
        path = tmp_path / name
        path.write_bytes(text * (9 * (1 << 20) // len(text)))
        source = FileSource(str(path))
        sizes[name] = max(length for _, length in source._spans(source.size))
    assert ROWS_CHUNK - len(row) < sizes["Master.csv"] <= ROWS_CHUNK < sizes["messages"] <= CHUNK
