"""Find candidate lines in C, so that benign lines never reach a Python regex.

Every reader names literal markers (`' failed for '`, `SecurityEvent=`, ...). Hyperscan (the
multi-literal matcher Suricata uses) finds all of them in one pass over a multi-megabyte buffer,
calling back into Python only once per hit (10-20% of lines in an attacked server's log).
Where the hyperscan wheel is not available (an unusual CPU or platform), one compiled `re`
alternation does the same job about four times slower.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import ModuleType

_hs: ModuleType | None
try:  # pragma: no cover - the fallback is exercised by tests that force it
    import hyperscan as _hs
except ImportError:  # pragma: no cover
    _hs = None


def expected_engine(use_hyperscan: bool = True) -> str:
    """The engine a `Prefilter` gets: hyperscan where its wheel is installed (and wanted), else `re`."""
    return "hyperscan" if use_hyperscan and _hs is not None else "re"


class Prefilter:
    """Reports (end offset, marker index) for every marker occurrence in a buffer."""

    def __init__(self, markers: Sequence[str], use_hyperscan: bool = True) -> None:
        self.markers = list(markers)
        self._encoded = [m.encode() for m in self.markers]
        self._db = None
        if use_hyperscan and _hs is not None:
            try:
                db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
                db.compile(
                    expressions=self._encoded,
                    ids=list(range(len(self._encoded))),
                    elements=len(self._encoded),
                    flags=0,
                    literal=True,
                )
                self._db = db
                self._scratch = _hs.Scratch(db)
            except Exception:
                self._db = None
        self._index = {m: i for i, m in enumerate(self._encoded)}
        self._regex: re.Pattern[bytes] | None = None  # the fallback's alternation, compiled when first needed (~6 ms)

    @property
    def engine(self) -> str:
        return "hyperscan" if self._db is not None else "re"

    def hits(self, buf: bytes) -> list[tuple[int, int]]:
        if self._db is not None:
            found: list[tuple[int, int]] = []
            append = found.append

            def on_match(ident: int, start: int, end: int, flags: int, context: object) -> None:
                append((end, ident))

            self._db.scan(buf, match_event_handler=on_match, scratch=self._scratch)
            return found
        index = self._index
        if self._regex is None:
            self._regex = re.compile(b"|".join(re.escape(m) for m in sorted(self._encoded, key=len, reverse=True)))
        return [(m.end(), index[m.group()]) for m in self._regex.finditer(buf)]
