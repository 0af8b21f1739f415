"""Sources: where raw records come from. Each produces byte buffers that end on a line boundary.

A source is registered in `SOURCES` by the URL-ish scheme a user writes (`file:`, later `journal:`,
`ami:`, ...). See README.md in this folder for how to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from sipwatch.sources.files import FileSource


class Source(Protocol):
    """Produces buffers of whole lines; `name` is what events cite as their origin."""

    name: str

    def buffers(self) -> Iterator[bytes]: ...


SOURCES: dict[str, Callable[[str], Source]] = {
    "file": FileSource,
}


def open_source(spec: str) -> Source:
    """`file:/var/log/asterisk/messages` or a plain path."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in SOURCES and not rest.startswith("\\"):
        return SOURCES[scheme](rest)
    return FileSource(spec)
