"""The scan's per-event hot path in C: the security detectors' counting (`_core.c`, for a scan of one file in
parallel) and call correlation (`_calls.c`, `native_calls`).

Most events of an attack, and every challenge and login of the operator's own phones, change nothing but
a counter: an attempt marked, a nonce remembered, one more event in a detector's window. The C core does
what `Pipeline.process` does, for every event of a one-file parallel scan, on the very dicts and deques
that the Python code keeps: the pipeline's stages (attempts, nonces, logins, and for call activity the
caller's address and the call book), then each detector of the event's kind in order. The detectors in
`FAST_DETECTORS` are counted in C, and only when a window fills does Python run, the detector's own
`decide`; any other detector is called as it is (its `observe`); decisions go through the pipeline's own
`settle`. So the Python code stays the one specification and the state stays one state (a multi-file scan
and the live daemon run `Pipeline.process`). The tests compare whole scans with and without the core.

To let the core count a new detector: give it a `decide` method called with what its window holds, add
its counting to `_core.c` (`count()`), and its code here (a detector of two windows, as the rejected calls'
and toll fraud's, has a spec of its own: `_rejected_spec`, `_toll_spec`).

`_calls.c` is `CallBook.observe` (calls.py), step for step on the book's own dicts, CallStates and
AccountTallies; `native_calls` puts it in place of the Python method for a scan's book.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable
from typing import Any

from sipwatch import calls
from sipwatch.behaviour import Profile, ProfileBook, Today
from sipwatch.detectors import Decision, Detector, account_rules, behaviour
from sipwatch.detectors.account_rules import AccountRulesDetector
from sipwatch.detectors.base import DistinctWindows, Windows
from sipwatch.detectors.brute_force import BruteForceDetector
from sipwatch.detectors.distributed import DistributedDetector
from sipwatch.detectors.enumeration import EnumerationDetector
from sipwatch.detectors.ipv6_rotation import Ipv6RotationDetector
from sipwatch.detectors.knowledge import CALLER_WINDOW, Knowledge
from sipwatch.detectors.rejected_calls import RejectedCallsDetector
from sipwatch.detectors.stale_password import StalePasswordDetector
from sipwatch.detectors.toll_fraud import TollFraudDetector
from sipwatch.detectors.unanswered import UnansweredChallengesDetector
from sipwatch.event import CALL_KINDS, HOSTILE_KINDS, Event, Evidence, Kind
from sipwatch.formats import native
from sipwatch.formats.wire import KINDS
from sipwatch.numbers import CLASSIFIED_FIELDS, Classified, NumberClassifier, plain_classified
from sipwatch.pipeline import SAME_REQUEST_SECONDS, Attempts, Nonces, Pipeline

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _calls, _core, _learned  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _core = _calls = _learned = None

#: detector class -> (its code in _core.c, its windows' attribute, its threshold's name in its settings)
FAST_DETECTORS: dict[type, tuple[int, str, str]] = {
    BruteForceDetector: (1, "windows", "attempts"),
    EnumerationDetector: (2, "windows", "accounts"),
    DistributedDetector: (3, "windows", "addresses"),
    StalePasswordDetector: (4, "windows", "failures"),
    UnansweredChallengesDetector: (5, "windows", "challenges"),
}

#: the kinds that _core.c's stages single out: a login, a challenge, a failure, a call's start
STAGE_KINDS = (Kind.AUTH_SUCCESS, Kind.AUTH_CHALLENGE, Kind.AUTH_FAILURE, Kind.CALL_START)
Sink = Callable[[list[Decision]], None]
#: (code, decide, windows' _data, window, keep, max_keys, windows' _evict, threshold)
DetectorSpec = tuple[int, Callable[..., list[Decision]], dict[object, object], float, int, int, Callable[[float], None],
                     int]


def available() -> bool:
    return _core is not None and native.available()  # SIPWATCH_NATIVE=0 turns every C part off


#: (PYTHON_V6, observe, IPv6Address): a detector that looks at IPv6 sources only (`ipv6_only`), called by the
#: core for those alone (the other 88% of an attack's events need no Python call)
V6Spec = tuple[int, Callable[[Event], list[Decision]], type]
PYTHON_V6 = 6
#: (BEHAVIOUR, observe, exclude, the call book, (SOURCE, DESTINATION)): the learned behaviour, called for the
#: records of a call that tell it something new (two in three of a `full` log's call records tell nothing)
BehaviourSpec = tuple[int, Callable[[Event], list[Decision]], frozenset[str], calls.CallBook, tuple[int, int]]
BEHAVIOUR = 7
#: (ACCOUNT_RULES, observe, exclude, the call book): the account rules, called for outside calls only
RulesSpec = tuple[int, Callable[[Event], list[Decision]], frozenset[str], calls.CallBook]
ACCOUNT_RULES = 8
#: (decide, windows' _data, window, keep, max_keys, windows' _evict, threshold): one Windows counted in C
WindowsSpec = tuple[Callable[..., list[Decision]], dict[object, object], float, int, int, Callable[[float], None], int]
#: (REJECTED, the flood windows, the rejected-call windows, the kind that the second counts): `_rejected_spec`
RejectedSpec = tuple[int, WindowsSpec, WindowsSpec, Kind]
REJECTED = 9
#: (TOLL_FRAUD, the walk windows, the probe windows, (is_probe, prefix_length, observe)): `_toll_spec`
TollSpec = tuple[int, WindowsSpec, WindowsSpec, tuple[Callable[[str], bool], int, Callable[[Event], list[Decision]]]]
TOLL_FRAUD = 10
#: (IPV6_ROTATION, its windows (addresses per network), (attempts, shift, IPv6Address)): `_ipv6_spec`
Ipv6Spec = tuple[int, WindowsSpec, tuple[int, int, type]]
IPV6_ROTATION = 11


def learned_observe(detector: behaviour.BehaviourDetector) -> Callable[[Event], list[Decision]] | None:
    """`_learned.c`'s observe for `detector` (a call record that teaches its profile and finds nothing is
    learned in C; anything else goes to the detector's own observe), or None when it is not built or turned
    off, or the detector's parts are not the ones it knows."""
    if _learned is None or not native.available() or type(detector.book) is not ProfileBook or not native_call_state():
        return None
    s = detector.settings
    learned = _learned.Learned(
        detector, detector.observe, behaviour, tuple(CALL_KINDS), (Event, Profile, Today, calls.CallState, Classified),
        (s.min_days, s.min_calls, s.unusual_hour_percent, s.volume_min_calls, s.volume_min_minutes, s.ipv4_prefix,
         s.ipv6_prefix), (behaviour.SOURCE, behaviour.DESTINATION, behaviour.UNUSUAL))
    detector.book.settlers.append(learned.flush)  # (its day counts that wait in C go in before a profile is read)
    observe: Callable[[Event], list[Decision]] = learned.observe
    return observe


def _spec(detector: object, pipeline: Pipeline) -> AnySpec | None:
    found = FAST_DETECTORS.get(type(detector))
    if found is None:
        if type(detector) is Ipv6RotationDetector:
            return _ipv6_spec(detector)
        if getattr(detector, "ipv6_only", False):
            return (PYTHON_V6, detector.observe, ipaddress.IPv6Address)  # type: ignore[attr-defined]
        if type(detector) is behaviour.BehaviourDetector and detector.calls is pipeline.calls:
            return (BEHAVIOUR, learned_observe(detector) or detector.observe, detector.exclude, pipeline.calls,
                    (behaviour.SOURCE, behaviour.DESTINATION))
        if type(detector) is RejectedCallsDetector:
            return _rejected_spec(detector)
        if type(detector) is TollFraudDetector:
            return _toll_spec(detector)
        if type(detector) is AccountRulesDetector and detector.book is pipeline.calls:
            return (ACCOUNT_RULES, account_rules.gate(detector) or detector.observe, detector.exclude, pipeline.calls)
        return None
    code, attribute, threshold = found
    windows = getattr(detector, attribute)
    if type(windows) not in (Windows, DistinctWindows):
        return None
    if getattr(detector, "knowledge", pipeline.knowledge) is not pipeline.knowledge:
        return None  # `owns` is read from the pipeline's own knowledge
    return (code, detector.decide, windows._data, float(windows.window), windows.keep,  # type: ignore[attr-defined]
            windows.max_keys, windows._evict, int(getattr(detector.settings, threshold)))  # type: ignore[attr-defined]


def _windows_spec(decide: Callable[..., list[Decision]], windows: Windows[Any] | DistinctWindows[Any],
                  threshold: int) -> WindowsSpec:
    return (decide, windows._data, float(windows.window), windows.keep, windows.max_keys,  # type: ignore[return-value]
            windows._evict, threshold)


def _rejected_spec(detector: RejectedCallsDetector) -> RejectedSpec | None:
    """Both windows of the rejected-call detector, counted in C: every call attempt in its flood window, a
    rejected call in the other too (its `observe` is the specification)."""
    if type(detector.flood) is not Windows or type(detector.rejected) is not Windows:
        return None
    s = detector.settings
    return (REJECTED, _windows_spec(detector.decide_flood, detector.flood, s.flood_calls),
            _windows_spec(detector.decide, detector.rejected, s.calls), Kind.REJECTED_CALL)


def _toll_spec(detector: TollFraudDetector) -> TollSpec | None:
    """The toll-fraud detector's windows, counted in C: a number's prefix in its walk window (distinct prefixes),
    a probe in its probe window; its `decide_walk` and `decide` run in Python (its `observe` is the
    specification, and takes a number written in another script than ASCII)."""
    s = detector.settings
    if type(detector.walks) is not DistinctWindows or type(detector.probes) is not Windows or s.prefix_length < 0:
        return None
    return (TOLL_FRAUD, _windows_spec(detector.decide_walk, detector.walks, s.prefix_walk),
            _windows_spec(detector.decide, detector.probes, min(2, s.probes)),
            (detector.classifier.is_probe, s.prefix_length, detector.observe))


def _ipv6_spec(detector: Ipv6RotationDetector) -> Ipv6Spec | None:
    """The IPv6 rotation detector's windows, one per network, counted in C (its `decide` runs in Python)."""
    if type(detector.windows) is not DistinctWindows:
        return None
    s = detector.settings
    return (IPV6_ROTATION, _windows_spec(detector.decide, detector.windows, s.addresses),
            (s.attempts, detector.shift, ipaddress.IPv6Address))


AnySpec = (DetectorSpec | V6Spec | BehaviourSpec | RulesSpec | RejectedSpec | TollSpec | Ipv6Spec
           | Callable[[Event], list[Decision]])


def fast_kinds(pipeline: Pipeline) -> list[tuple[AnySpec, ...]]:
    """Per kind (in `KINDS` order), its detectors in order: the spec of one the core counts, else the
    detector's own `observe`; one spec a detector, whatever kinds it reads (the learned behaviour's C part keeps
    some counts of its own for a while: one, for all of its kinds)."""
    specs: dict[int, AnySpec] = {}

    def spec(detector: Detector) -> AnySpec:
        found = specs.get(id(detector))
        if found is None:
            found = specs[id(detector)] = _spec(detector, pipeline) or detector.observe
        return found

    return [tuple(spec(d) for d in pipeline.by_kind[kind]) for kind in KINDS]


def core(pipeline: Pipeline, sink: Sink) -> Callable[[Event], bool] | None:
    """`take(event) -> bool` for `pipeline` (True: the event went all the way through, its decisions to
    `sink`), or None when the C core is not built or cannot stand in for this pipeline: one that reads
    several sources (duplicates across them are matched in Python), or whose parts are not the ones
    `_core.c` knows."""
    if not available() or pipeline.duplicates.enabled or type(pipeline).process is not Pipeline.process:
        return None
    if (type(pipeline.attempts), type(pipeline.nonces), type(pipeline.knowledge)) != (Attempts, Nonces, Knowledge):
        return None
    if pipeline.knowledge.calls is not pipeline.calls:
        return None
    a, n, k = pipeline.attempts, pipeline.nonces, pipeline.knowledge
    engine = _core.Core(
        Event, KINDS, fast_kinds(pipeline), [kind in HOSTILE_KINDS for kind in KINDS],
        [kind in CALL_KINDS for kind in KINDS],
        tuple(KINDS.index(kind) for kind in STAGE_KINDS),
        (a._open, a.max_keys, SAME_REQUEST_SECONDS), (n._sent, n.max_keys),
        (k._owned, k._last_auth, k.max_addresses, k.observe, CALLER_WINDOW, k.unplaced), pipeline.calls,
        pipeline.settle, sink, Evidence.STRONG, deque)
    take: Callable[[Event], bool] = engine.take
    return take


def _plain_state() -> bool:
    """The calls are `_calls.CallState`, the C record that `_calls.c` makes and reads, and AccountTally keeps its
    counts in slots (which `_calls.c` adds to)."""
    return native_call_state() and "__slots__" in vars(calls.AccountTally)


def native_call_state() -> bool:
    """The calls are `_calls.CallState` (the C parts read that record; calls.py takes it unless it was imported
    with SIPWATCH_NATIVE=0)."""
    return _calls is not None and calls.CallState is _calls.CallState


def native_calls(book: calls.CallBook) -> bool:
    """Put `_calls.c`'s `observe` in place of the Python method of `book` (a scan's: the daemon keeps
    Python); False when it is not built, turned off, or `book` is not the CallBook it knows."""
    if _calls is None or not native.available() or type(book) is not calls.CallBook or not _plain_state():
        return False
    classifier = type(book.classifier)
    cache = book.classifier._cache if classifier.classify is NumberClassifier.classify else None
    plain_outside = classifier.outside is NumberClassifier.outside
    rules = book.classifier.plain_rules() if cache is not None else None
    plain = (Classified, CLASSIFIED_FIELDS, rules) if rules is not None and plain_classified() else None
    observer = _calls.Observer(
        book, book.observe, Event, calls.CallState, calls.AccountTally, calls._text,
        (Kind.CALL_START, Kind.CALL_ANSWER, Kind.CALL_END),
        (book.keep, calls.MAX_OPEN, calls.END_SLACK, book.max_calls, book.max_accounts),
        (cache, plain_outside, calls._TEXTS, plain))
    setattr(book, "observe", observer.observe)  # noqa: B010 - an instance's method, replaced on purpose
    return True
