"""The parse side's compiled parts, built ahead: the readers' prefilter, their C engine (PCRE2's JIT of every
lane) and the prefilter's markers in C (libhs), ~15 ms of compiling that a parse worker needs before its first
buffer. A parse worker that `sipwatch scan` forked before it imported anything (`console.worker_started`) builds
them on a second thread while it imports the rest of the parse side (the C compilers let go of the GIL); any other
worker builds them when it starts (`parallel.worker_started`), and a scan read in one process when it first needs
them (`prefilter`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from sipwatch.formats import native, readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.timeparse import TimeParser

_PREFILTERS: dict[bool, Prefilter] = {}


def prefilter(calls: bool, markers: list[str]) -> Prefilter:
    """The readers' prefilter for readers of call activity or not (one per process: its database compiles once)."""
    found = _PREFILTERS.get(calls)
    if found is None:
        found = _PREFILTERS[calls] = Prefilter(markers)
    return found


def set_up(calls: bool) -> None:
    """Build what parsing a first buffer would build: the prefilter, the C engine and the markers in C (shared
    by the parsers of every file). phonenumbers is imported when a buffer first needs it."""
    parser = LineParser(TimeParser(2000, None), readers(calls))
    found = prefilter(calls, parser.markers)
    if native.available():
        native.engine(parser.lanes)
        if found.engine == "hyperscan":
            native.markers(found.markers)


def in_background(calls: bool) -> Callable[[], None]:
    """Start `set_up(calls)` on a thread now; the returned call waits for it (before the process forks: a fork
    takes only the calling thread along). It imports nothing (a test holds it so): no import lock is shared
    with the thread that goes on importing. A failure is left for the first buffer to meet again."""

    def build() -> None:
        with contextlib.suppress(Exception):  # (the first buffer builds it again, and says what went wrong)
            set_up(calls)

    thread = threading.Thread(target=build, name="sipwatch-ahead", daemon=True)
    thread.start()
    return thread.join
