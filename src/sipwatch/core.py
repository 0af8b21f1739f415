"""The scan's per-event hot path in C: the security detectors' counting (`_core.c`, for a scan of one file in
parallel) and call correlation (`_calls.c`, `native_calls`).

Most events of an attack, and every challenge and login of the operator's own phones, change nothing but
a counter: an attempt marked, a nonce remembered, one more event in a detector's window. For the kinds
whose every consumer is listed here (the pipeline's stages and the detectors in `FAST_DETECTORS`), the C
core does what `Pipeline.process` does, on the very dicts and deques that the Python code keeps; only
when a window fills does Python run, the detector's own `decide` and the pipeline's `settle`. So the
Python code stays the one specification, the state stays one state (the Python path takes over for
every other kind, and the live daemon never uses the core), and a detector that is not listed simply
keeps its kinds in Python. The tests compare whole scans with and without the core.

To let the core count a new detector: give it a `decide` method called with what its window holds, add
its counting to `_core.c` (`count()`), and its code here.

`_calls.c` is `CallBook.observe` (calls.py), step for step on the book's own dicts, CallStates and
AccountTallies; `native_calls` puts it in place of the Python method for a scan's book.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from sipwatch import calls
from sipwatch.detectors import Decision
from sipwatch.detectors.base import DistinctWindows, Windows
from sipwatch.detectors.brute_force import BruteForceDetector
from sipwatch.detectors.distributed import DistributedDetector
from sipwatch.detectors.enumeration import EnumerationDetector
from sipwatch.detectors.knowledge import Knowledge
from sipwatch.detectors.stale_password import StalePasswordDetector
from sipwatch.detectors.unanswered import UnansweredChallengesDetector
from sipwatch.event import HOSTILE_KINDS, Event, Evidence, Kind
from sipwatch.formats import native
from sipwatch.formats.wire import KINDS
from sipwatch.pipeline import SAME_REQUEST_SECONDS, Attempts, Nonces, Pipeline

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _calls, _core  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _core = _calls = None

#: detector class -> (its code in _core.c, its windows' attribute, its threshold's name in its settings)
FAST_DETECTORS: dict[type, tuple[int, str, str]] = {
    BruteForceDetector: (1, "windows", "attempts"),
    EnumerationDetector: (2, "windows", "accounts"),
    DistributedDetector: (3, "windows", "addresses"),
    StalePasswordDetector: (4, "windows", "failures"),
    UnansweredChallengesDetector: (5, "windows", "challenges"),
}
#: kinds whose pipeline stages (attempts, nonces, knowledge) the core runs; call kinds are never among them
STAGED = frozenset({Kind.AUTH_FAILURE, Kind.UNKNOWN_ACCOUNT, Kind.ACL_DENIED, Kind.AUTH_CHALLENGE, Kind.AUTH_SUCCESS})

Sink = Callable[[list[Decision]], None]
#: (code, decide, windows' _data, window, keep, max_keys, windows' _evict, threshold)
DetectorSpec = tuple[int, Callable[..., list[Decision]], dict[object, object], float, int, int, Callable[[float], None],
                     int]


def available() -> bool:
    return _core is not None and native.available()  # SIPWATCH_NATIVE=0 turns every C part off


def _spec(detector: object, pipeline: Pipeline) -> DetectorSpec | None:
    found = FAST_DETECTORS.get(type(detector))
    if found is None:
        return None
    code, attribute, threshold = found
    windows = getattr(detector, attribute)
    if type(windows) not in (Windows, DistinctWindows):
        return None
    if getattr(detector, "knowledge", pipeline.knowledge) is not pipeline.knowledge:
        return None  # `owns` is read from the pipeline's own knowledge
    return (code, detector.decide, windows._data, float(windows.window), windows.keep,  # type: ignore[attr-defined]
            windows.max_keys, windows._evict, int(getattr(detector.settings, threshold)))  # type: ignore[attr-defined]


def fast_kinds(pipeline: Pipeline) -> list[tuple[DetectorSpec, ...] | None]:
    """Per kind (in `KINDS` order): the specs of its detectors when the core can take all of it, else None."""
    fast: list[tuple[DetectorSpec, ...] | None] = []
    for kind in KINDS:
        specs = [_spec(d, pipeline) for d in pipeline.by_kind[kind]]
        fast.append(tuple(s for s in specs if s is not None) if kind in STAGED and None not in specs else None)
    return fast


def core(pipeline: Pipeline, sink: Sink) -> Callable[[Event], bool] | None:
    """`take(event) -> bool` for `pipeline` (True: the event went all the way through, its decisions to
    `sink`), or None when the C core is not built or cannot stand in for this pipeline: one that reads
    several sources (duplicates across them are matched in Python), or whose parts are not the ones
    `_core.c` knows."""
    if not available() or pipeline.duplicates.enabled or type(pipeline).process is not Pipeline.process:
        return None
    if (type(pipeline.attempts), type(pipeline.nonces), type(pipeline.knowledge)) != (Attempts, Nonces, Knowledge):
        return None
    fast = fast_kinds(pipeline)
    if not any(f is not None for f in fast):
        return None
    a, n, k = pipeline.attempts, pipeline.nonces, pipeline.knowledge
    engine = _core.Core(
        Event, KINDS, fast, [kind in HOSTILE_KINDS for kind in KINDS],
        (KINDS.index(Kind.AUTH_SUCCESS), KINDS.index(Kind.AUTH_CHALLENGE), KINDS.index(Kind.AUTH_FAILURE)),
        (a._open, a.max_keys, SAME_REQUEST_SECONDS), (n._sent, n.max_keys),
        (k._owned, k._last_auth, k.max_addresses, k.observe), pipeline.settle, sink, Evidence.STRONG, deque)
    take: Callable[[Event], bool] = engine.take
    return take


def native_calls(book: calls.CallBook) -> bool:
    """Put `_calls.c`'s `observe` in place of the Python method of `book` (a scan's: the daemon keeps
    Python); False when it is not built, turned off, or `book` is not the CallBook it knows."""
    if _calls is None or not native.available() or type(book) is not calls.CallBook:
        return False
    observer = _calls.Observer(
        book, book.observe, Event, calls.CallState, calls.AccountTally, calls._text,
        (Kind.CALL_START, Kind.CALL_ANSWER, Kind.CALL_END),
        (book.keep, calls.MAX_OPEN, calls.END_SLACK, book.max_calls, book.max_accounts, calls.MAX_CALL_EVENTS))
    setattr(book, "observe", observer.observe)  # noqa: B010 - an instance's method, replaced on purpose
    return True
