"""The C core (core.py, _core.c) counts what the Python pipeline counts: whole scans with and without it
report alike, under the default, security-only and hair-trigger thresholds; an event stream through both
leaves the same decisions and the same state, also with every table at a tiny size limit; and it stands
aside where it cannot stand in for the pipeline."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generated import gencdr, genlog
from sipwatch import core, parallel
from sipwatch.config import Config, from_dict
from sipwatch.detectors import Action, Decision
from sipwatch.detectors.account_rules import AccountRulesDetector
from sipwatch.detectors.base import DistinctWindows, Windows
from sipwatch.detectors.behaviour import BehaviourDetector
from sipwatch.detectors.brute_force import BruteForceDetector
from sipwatch.event import Call, Event, Kind, Service
from sipwatch.formats.records import ScanStats
from sipwatch.pipeline import Pipeline
from sipwatch.report import to_json
from sipwatch.scan import Reader, scan
from sipwatch.sources.files import FileSource

pytestmark = pytest.mark.skipif(not core.available(), reason="the C core is not built (needs gcc and python3-dev "
                                "at install time), or SIPWATCH_NATIVE=0")

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "security events only": {"accounts": {"enabled": False}, "behaviour": {"enabled": False}},
    "hair trigger": {
        "detectors": {
            "brute_force": {"attempts": 2, "window": 20},
            "enumeration": {"accounts": 2, "window": 30},
            "distributed": {"addresses": 2, "window": 600},
            "stale_password": {"failures": 2},
            "unanswered_challenges": {"challenges": 3, "window": 30},
            "rejected_calls": {"calls": 2, "window": 30, "flood_calls": 4, "flood_window": 5},
            "toll_fraud": {"probes": 3, "window": 120, "prefix_walk": 3, "prefix_walk_window": 20},
            "ipv6_rotation": {"attempts": 4, "addresses": 2, "window": 60},
        },
        "policy": {"ban_weak": 5, "ban_strong": 10, "storm_bans": 5, "storm_window": 2},
    },
    "short bans, some detectors off": {
        "detectors": {"scanner": {"enabled": False}, "rejected_calls": {"enabled": False},
                      "brute_force": {"attempts": 3, "window": 5},
                      "unanswered_challenges": {"challenges": 2, "window": 5}},
        "policy": {"ban_weak": 1, "ban_strong": 2},
    },
}


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return genlog(tmp_path_factory.mktemp("gen") / "attacks.log", 40000, seed=11)


def _report(path: Path, config: Config, monkeypatch: pytest.MonkeyPatch, with_core: bool) -> dict[str, Any]:
    with monkeypatch.context() as m:
        if not with_core:
            m.setattr(core, "core", lambda pipeline, sink: None)
        report = to_json(scan([str(path)], config, processes=True))
    report.pop("seconds", None)
    return report


@pytest.mark.parametrize("name", CONFIGS)
def test_a_scan_with_the_core_reports_what_one_without_it_reports(name: str, attack_log: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(FileSource.__init__, "__defaults__", (256 << 10,))  # many buffers
    config = from_dict(CONFIGS[name])
    taken: list[bool] = []
    real = core.core

    def counting(pipeline: Pipeline, sink: core.Sink) -> Any:
        take = real(pipeline, sink)
        assert take is not None

        def spy(event: Event) -> bool:
            taken.append(take(event))
            return taken[-1]
        return spy

    monkeypatch.setattr(core, "core", counting)
    with_core = _report(attack_log, config, monkeypatch, with_core=True)
    monkeypatch.setattr(core, "core", real)
    without = _report(attack_log, config, monkeypatch, with_core=False)
    assert with_core == without
    assert len(taken) > 1000 and all(taken)  # it saw every event through
    assert any(o["decision"] == "ban" for o in without["offenders"])


def _events(path: Path) -> list[Event]:
    reader = Reader(Config())
    return list(reader.events(FileSource(str(path)), ScanStats()))


def _tiny(pipeline: Pipeline, limit: int) -> Pipeline:
    """Every table of the pipeline at a tiny size limit: the rare branches run all the time."""
    pipeline.duplicates.enabled = False
    pipeline.attempts.max_keys = limit
    pipeline.nonces.max_keys = limit
    pipeline.knowledge.max_addresses = limit
    for detector in pipeline.detectors:
        for value in vars(detector).values() if hasattr(detector, "__dict__") else ():
            if isinstance(value, (Windows, DistinctWindows)):
                value.max_keys = limit
    return pipeline


def _state(pipeline: Pipeline) -> list[object]:
    windows = [v for d in pipeline.detectors for v in getattr(d, "__dict__", {}).values()
               if isinstance(v, (Windows, DistinctWindows))]
    learned = [(repr(d.book.profiles), repr(d._recent)) for d in pipeline.detectors
               if isinstance(d, BehaviourDetector)]
    learned += [repr([(name, list(a.calls.values()), a.spent, a.fired) for name, a in d.accounts.items()])
                for d in pipeline.detectors if isinstance(d, AccountRulesDetector)]  # (calls by id(): not those)
    return [repr(pipeline.attempts._open), list(pipeline.nonces._sent), repr(pipeline.knowledge._owned),
            repr(pipeline.knowledge._last_auth), dict(pipeline.banned_until), repr(pipeline.calls.accounts),
            repr(list(pipeline.calls._calls)), learned,
            *[{k: repr(v) for k, v in w._data.items()} for w in windows]]


def _replay(events: list[Event], python: Pipeline, native: Pipeline, take: Callable[[Event], bool],
            by_python: list[Decision], by_core: list[Decision]) -> None:
    """Each event through `python` as `Pipeline.process` runs it, and through the core of `native` as the
    merge loop hands it over (the core's decisions go to `by_core` through its sink)."""
    for event in events:
        by_python.extend(python.process(copy.copy(event)))
        twin = copy.copy(event)
        if not native.is_blocked(twin.ip, twin.time) and take(twin):  # what the merge loop does before it
            continue
        by_core.extend(native.process(twin))


def _decisions(decisions: list[Decision]) -> list[dict[str, object]]:
    return [d.to_json() for d in decisions]


@pytest.mark.parametrize("limit", [3, 50, 200_000])
@pytest.mark.parametrize("name", ["default", "hair trigger"])
def test_an_event_stream_leaves_the_same_decisions_and_state(name: str, limit: int, attack_log: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table at a tiny size too (and what the learned behaviour judged of each call, which the core reads
    to tell whether a record tells it anything new: in the calls' state)."""
    events = _events(attack_log)[:25_000]
    python = _tiny(Pipeline(from_dict(CONFIGS[name])), limit)
    native = _tiny(Pipeline(from_dict(CONFIGS[name])), limit)
    by_python: list[Decision] = []
    by_core: list[Decision] = []
    take = core.core(native, by_core.extend)
    assert take is not None
    _replay(events, python, native, take, by_python, by_core)
    assert _decisions(by_core) == _decisions(by_python)
    assert _state(native) == _state(python)
    assert len(by_python) > 10
    assert name != "default" or any(c.judged for c in python.calls._calls)


def test_it_counts_only_the_detectors_it_knows_and_stands_aside_for_several_sources() -> None:
    several_sources = Pipeline(Config())
    assert several_sources.duplicates.enabled and core.core(several_sources, print) is None

    class Careful(BruteForceDetector):
        pass

    pipeline = Pipeline(Config())
    pipeline.duplicates.enabled = False
    careful = Careful(Config().detectors.brute_force, pipeline.knowledge)
    pipeline.by_kind[Kind.ACL_DENIED] = (careful,)
    fast = dict(zip(core.KINDS, core.fast_kinds(pipeline), strict=True))
    assert fast[Kind.ACL_DENIED] == (careful.observe,)  # a detector it does not count: its own observe
    assert [spec[0] for spec in fast[Kind.UNKNOWN_ACCOUNT]] == [1, 2, core.IPV6_ROTATION]  # type: ignore[index]
    asked = {spec[0] for spec in fast[Kind.CALL_START] if not callable(spec)}  # asked whether it concerns them
    assert asked == {core.BEHAVIOUR, core.ACCOUNT_RULES}
    assert [spec[0] for spec in fast[Kind.CALL_ATTEMPT]] == [core.REJECTED, core.TOLL_FRAUD]  # type: ignore[index]
    assert [spec[0] for spec in fast[Kind.REJECTED_CALL]] == [  # type: ignore[index]
        core.REJECTED, core.TOLL_FRAUD, core.IPV6_ROTATION]


def test_sipwatch_native_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipwatch.formats import native

    monkeypatch.setattr(native, "available", lambda: False)
    pipeline = Pipeline(Config())
    pipeline.duplicates.enabled = False
    assert core.core(pipeline, print) is None


def test_an_event_of_another_type_is_left_to_python() -> None:
    pipeline = Pipeline(Config())
    pipeline.duplicates.enabled = False
    take = core.core(pipeline, print)
    assert take is not None

    class Other(Event):
        __slots__ = ()

    event = _events_of_kind(Kind.AUTH_FAILURE)
    assert take(event) is True
    assert take(Other(**{f: getattr(event, f) for f in Event.__slots__})) is False  # type: ignore[attr-defined]


def _events_of_kind(kind: Kind) -> Event:
    from ipaddress import ip_address

    return Event(1714557600.0, kind, Service.SIP, ip=ip_address("198.51.100.7"), account="100", form="test",
                 reason="x")


#: dialled numbers: one number behind several access prefixes, other countries' (prefix walks), national and
#: internal ones, too short, not digits, digits of another script (`str.isdigit` is true for them)
TARGETS = [None, "", "0044207946000", "90044207946000", "+44207946000", "0033142685300", "0037060012345",
           "0037160012345", "+37260012345", "0301234567", "6001", "0044", "00abc12345678", "+٠٠٤٤٢٠٧٩٤٦٠٠٠",
           "++0044207946001"]


def _random_events(seed: int, n: int) -> list[Event]:
    """Odd streams the logs rarely give: times that jump back, no port, empty or missing accounts, nonces
    answered by another address, a few addresses and accounts over and over."""
    import random
    from ipaddress import ip_address

    rng = random.Random(seed)
    kinds = [Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT, Kind.ACL_DENIED, Kind.AUTH_CHALLENGE, Kind.AUTH_SUCCESS,
             Kind.REJECTED_CALL, Kind.CALL_ATTEMPT, Kind.SCANNER]
    addresses = [ip_address(f"198.51.100.{i}") for i in range(6)] + [ip_address("2001:db8::7"), None]
    addresses += [ip_address(f"2001:db8:0:{net}::{host}") for net in (1, 2) for host in (1, 2, 3)]  # two /64s
    events, now = [], 1714557600.0
    for _ in range(n):
        now += rng.choice([0.0, 0.2, 0.9, 1.5, 30.0, -5.0])
        nonce = rng.choice(["", "n1", "n2", "n3"])
        events.append(Event(
            now, rng.choice(kinds), Service.SIP, ip=rng.choice(addresses), port=rng.choice([5060, 5061, None]),
            account=rng.choice(["100", "101", "102", "", None]), target=rng.choice(TARGETS),
            form=rng.choice(["a", "b", "c"]), reason=rng.choice(["x", "y"]),
            extra={"Challenge": nonce} if nonce else {}))
    return events


@pytest.mark.parametrize("seed", range(4))
def test_odd_event_streams_leave_the_same_decisions_and_state(seed: int) -> None:
    config = from_dict(CONFIGS["hair trigger"])
    python = _tiny(Pipeline(config), 4)
    native = _tiny(Pipeline(config), 4)
    by_python: list[Decision] = []
    by_core: list[Decision] = []
    take = core.core(native, by_core.extend)
    assert take is not None
    core.native_calls(native.calls)  # as a scan has it (where it is built)
    security, calls = _random_events(seed, 4000), _odd_calls(seed, 4000)
    _replay([e for pair in zip(security, calls, strict=True) for e in pair], python, native, take, by_python, by_core)
    assert _decisions(by_core) == _decisions(by_python)
    assert _state(native) == _state(python)
    assert len(by_python) > 20


def test_a_login_that_a_critical_decision_waits_for_is_left_to_python() -> None:
    """A call denied before the login that let it in arrived (AMI's order): the core hands that login to
    `Pipeline.process`, which bans the caller, and counts the other logins itself."""
    from ipaddress import ip_address

    config = from_dict({"numbers": {"country": "DE"}, "accounts": {"account": {"6001": {"deny": ["+882"]}}}})
    python, native = Pipeline(config), Pipeline(config)
    for pipeline in (python, native):
        pipeline.duplicates.enabled = False
    take = core.core(native, (by_core := []).extend)
    assert take is not None
    t = 1796222277.0
    events = [Event(t + 0.02, Kind.CALL_START, Service.PJSIP, account="6001", target="00882123456789",
                    form="ami.new_channel", call=Call(uniqueid="1.1", linkedid="1.1", channel="PJSIP/6001-01")),
              *(Event(t, Kind.AUTH_SUCCESS, Service.PJSIP, ip=ip_address(ip), port=40000, account=account)
                for account, ip in (("6002", "192.0.2.7"), ("6001", "203.0.113.66"), ("6001", "192.0.2.8")))]
    by_python: list[Decision] = []
    _replay(events, python, native, take, by_python, by_core)
    assert _decisions(by_core) == _decisions(by_python)
    assert [(d.action, str(d.ip)) for d in by_python if d.action is Action.BAN] == [(Action.BAN, "203.0.113.66")]
    assert _state(native) == _state(python) and native.knowledge.unplaced == {}


# --- call correlation (`_calls.c`) ------------------------------------------------------------------

needs_calls = pytest.mark.skipif(core._calls is None, reason="the C call book is not built")


@needs_calls
@pytest.mark.parametrize("source", ["full log", "Master.csv", "both"])
def test_a_scan_with_the_c_call_book_reports_what_one_without_it_reports(
        source: str, attack_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    cdr = gencdr(tmp_path / "Master.csv", 30_000, seed=5)
    paths = {"full log": [attack_log], "Master.csv": [cdr], "both": [attack_log, cdr]}[source]
    installed: list[bool] = []
    real = core.native_calls

    def spy(book: Any) -> bool:
        installed.append(real(book))
        return installed[-1]

    monkeypatch.setattr(core, "native_calls", spy)
    with_c = to_json(scan([str(p) for p in paths], Config(), processes=True))
    monkeypatch.setattr(core, "native_calls", lambda book: False)
    without = to_json(scan([str(p) for p in paths], Config(), processes=True))
    for report in (with_c, without):
        report.pop("seconds", None)
    assert installed == [True]
    assert with_c == without
    assert with_c["accounts"]
    if source != "full log":  # the generated office has compromised accounts
        assert any(a["decision"] != "none" for a in with_c["accounts"])


def _odd_calls(seed: int, n: int) -> list[Event]:
    """Call records the logs rarely give: ids missing or shared or not ASCII, a channel name reused after its call
    ended, ends before answers, durations and billsecs as ints or floats or zero, dispositions in any order."""
    import random
    from ipaddress import ip_address

    from sipwatch.event import Call

    rng = random.Random(seed)
    events, now = [], 1714557600.0
    for _ in range(n):
        now += rng.choice([0.0, 0.5, 1.0, 2.5, 60.0, 4000.0, -1.0])
        call = Call(
            uniqueid=rng.choice([None, "", "u1", "u2", "u3", "ü4"]), linkedid=rng.choice([None, "u1", "l2"]),
            channel=rng.choice([None, "PJSIP/6001-1", "PJSIP/6002-1", "PJSIP/müller-1", "SIP/☎-2"]),
            duration=rng.choice([None, 0, 30, 12.5]),
            billsec=rng.choice([None, 0, 20, 7.5]), disposition=rng.choice([None, "", "ANSWERED", "NO ANSWER"]))
        events.append(Event(
            now, rng.choice([Kind.CALL_START, Kind.CALL_ANSWER, Kind.CALL_END]), Service.PJSIP,
            ip=rng.choice([None, ip_address("192.0.2.50"), ip_address("198.51.100.9")]),
            account=rng.choice([None, "", "6001", "6002"]), target=rng.choice([None, "", "6003", "00442079460000"]),
            call=call))
    return events


@needs_calls
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("limits", [(3, 2), (200_000, 100_000)])
def test_odd_call_records_leave_the_same_calls_and_tallies(seed: int, limits: tuple[int, int]) -> None:
    from sipwatch.calls import CallBook
    from sipwatch.numbers import NumberClassifier

    python = CallBook(NumberClassifier(), keep=600.0, max_calls=limits[0], max_accounts=limits[1])
    native = CallBook(NumberClassifier(), keep=600.0, max_calls=limits[0], max_accounts=limits[1])
    assert core.native_calls(native)

    def seen(found: Any) -> object:
        return None if found is None else (repr(found[0]), found[1])

    for event in _odd_calls(seed, 3000):
        assert seen(native.observe(copy.copy(event))) == seen(python.observe(copy.copy(event)))
        assert seen(native.current) == seen(python.current)
    assert repr(list(native._calls)) == repr(list(python._calls))
    assert {k: repr(v) for k, v in native._by_key.items()} == {k: repr(v) for k, v in python._by_key.items()}
    assert repr(native.accounts) == repr(python.accounts)


@needs_calls
def test_a_current_call_anyone_holds_keeps_its_value_and_one_nobody_holds_is_filled_again() -> None:
    """The C call book fills the tuple that `book.current` holds again for the next record when nothing else holds
    it (no tuple made and freed a record); one that a caller keeps is never changed under it."""
    from sipwatch.calls import CallBook
    from sipwatch.numbers import NumberClassifier

    book = CallBook(NumberClassifier())
    assert core.native_calls(book)

    def start(i: int) -> Event:
        return Event(1714557600.0 + i, Kind.CALL_START, Service.PJSIP, account=f"600{i}", target="6100",
                     call=Call(channel=f"PJSIP/600{i}-0000000{i}"))

    book.observe(start(1))
    held = book.current
    assert held is not None and held[0].account == "6001" and held[1] is True
    book.observe(start(2))
    assert held[0].account == "6001" and book.current is not held  # (kept: a new one for the next record)
    now = book.current
    del held
    book.observe(start(3))
    assert book.current is not None and book.current[0].account == "6003"
    assert now[0].account == "6002"  # (still held here: never changed)
    del now
    before = id(book.current)
    book.observe(start(4))
    assert id(book.current) == before and book.current[0].account == "6004"  # filled again in place


def test_the_c_call_book_stands_aside_for_another_book(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipwatch.calls import CallBook
    from sipwatch.formats import native
    from sipwatch.numbers import NumberClassifier

    class Careful(CallBook):
        pass

    assert not core.native_calls(Careful(NumberClassifier()))
    monkeypatch.setattr(native, "available", lambda: False)
    assert not core.native_calls(CallBook(NumberClassifier()))


def test_a_parallel_scan_reports_progress_to_the_end(attack_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core sees nearly every event through, so progress comes per parsed buffer, not per event returned."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(FileSource.__init__, "__defaults__", (256 << 10,))  # many buffers
    seen: list[tuple[str, int, int]] = []
    scan([str(attack_log)], Config(), progress=lambda name, done, total: seen.append((name, done, total)),
         processes=True)
    size = attack_log.stat().st_size
    assert len(seen) > 5
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)
    assert seen[-1] == (str(attack_log), size, size)


def test_a_banned_ipv6_network_is_dropped_alike_with_and_without_the_core(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotating attacker's /64 is banned, and its fresh addresses after that are dropped (not counted by the
    detectors), whether the drain and core run in C or the pipeline in Python, across many buffers."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(FileSource.__init__, "__defaults__", (4 << 10,))
    lines = []
    for i in range(3000):
        second = 1_772_445_600 + i // 4
        stamp = f"[{__import__('time').strftime('%Y-%m-%d %H:%M:%S', __import__('time').gmtime(second))}]"
        host = f"[2001:db8:aa:{i // 400:x}::{i % 400 + 1:x}]" if i % 3 else f"198.51.100.{i % 7 + 1}"
        lines.append(f"{stamp} NOTICE[1234] chan_sip.c: Registration from '<sip:{100 + i % 50}@example.com>' "
                     f"failed for '{host}:5060' - Wrong password")
    path = tmp_path / "messages"
    path.write_text("\n".join(lines) + "\n")
    config = Config()
    with_core = _report(path, config, monkeypatch, with_core=True)
    without = _report(path, config, monkeypatch, with_core=False)
    assert with_core == without
    networks = {d.get("network") for o in without["offenders"] for d in o["decisions"]} - {None}
    assert len(networks) >= 5


@needs_calls
def test_the_c_call_book_asks_a_classifier_that_classifies_its_own_way() -> None:
    """The C book reads the classifier's cache and `internal` itself only for the NumberClassifier it knows."""
    from sipwatch.calls import CallBook
    from sipwatch.numbers import Classified, NumberClassifier

    class EverythingInside(NumberClassifier):
        def classify(self, dialled: str) -> Classified:
            return Classified(dialled, None, None, "extension", False, None, internal=True)

        def outside(self, number: Classified) -> bool:
            return False

    python = CallBook(EverythingInside())
    native = CallBook(EverythingInside())
    assert core.native_calls(native)
    for book in (python, native):
        NumberClassifier.classify(book.classifier, "00442079460000")  # cached, but not what this one says
    for event in _odd_calls(7, 500):
        native.observe(copy.copy(event))
        python.observe(copy.copy(event))
    assert repr(native.accounts) == repr(python.accounts)
    assert all(t.outside == 0 for t in native.accounts.values())


def test_the_c_parts_stand_aside_when_the_calls_are_the_python_dataclass(monkeypatch: pytest.MonkeyPatch) -> None:
    """(calls.py takes the dataclass when imported with SIPWATCH_NATIVE=0: the C parts read only their own record.)"""
    from sipwatch import calls
    from sipwatch.calls import CallBook
    from sipwatch.detectors import account_rules
    from sipwatch.numbers import NumberClassifier

    monkeypatch.setattr(calls, "CallState", calls.PlainCallState)
    monkeypatch.setattr(account_rules, "CallState", calls.PlainCallState)
    assert not core.native_calls(CallBook(NumberClassifier()))
    assert not core.native_call_state()
    assert account_rules.measures() is None


# --- the learned behaviour's quiet path (`_learned.c`) ----------------------------------------------------------

@pytest.fixture(scope="module")
def month_of_calls(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """A month of an office's CDRs with compromised accounts in it: profiles get judged, account rules fire."""
    return _events(gencdr(tmp_path_factory.mktemp("cdr") / "Master.csv", 20_000, seed=3, accounts=40))


@pytest.mark.skipif(core._learned is None, reason="the C learned behaviour is not built")
def test_a_month_of_calls_learns_and_decides_alike_in_c(month_of_calls: list[Event],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The profiles, what of each call was learned, and every decision, with and without `_learned.c` (and
    most records taught in C: the Python `_call` sees only those that find something or start a day). Every
    behaviour rule is held to it in tests/test_behaviour.py, which runs each specification both ways."""
    python, native = Pipeline(Config()), Pipeline(Config())
    python.duplicates.enabled = native.duplicates.enabled = False
    by_python: list[Decision] = []
    by_core: list[Decision] = []
    take = core.core(native, by_core.extend)
    assert take is not None
    core.native_calls(native.calls)
    in_python = 0
    real_call = BehaviourDetector._call

    def counted(self: BehaviourDetector, event: Event) -> list[Decision]:
        nonlocal in_python
        in_python += self is not next(d for d in python.detectors if isinstance(d, BehaviourDetector))
        return real_call(self, event)

    monkeypatch.setattr(BehaviourDetector, "_call", counted)
    _replay(month_of_calls, python, native, take, by_python, by_core)
    assert _decisions(by_core) == _decisions(by_python)
    assert _state(native) == _state(python)
    assert by_python
    assert in_python < len(month_of_calls) // 4


def test_the_learned_behaviour_stays_python_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipwatch.formats import native

    detector = next(d for d in Pipeline(Config()).detectors if isinstance(d, BehaviourDetector))
    monkeypatch.setattr(native, "available", lambda: False)
    assert core.learned_observe(detector) is None
