"""Sources: where raw records come from.

Two shapes, one registry each, so that adding a source is adding a module and a line here:

* `Source` (the offline `scan`): whole buffers of lines from a file, plain or compressed (`files.py`);
* `LiveSource` (the daemon): a follower that hands over the whole lines written since the last call and
  knows its resumable `Position`; registered in `FOLLOWERS` by the scheme users write in `run.watch`
  (`journal:asterisk.service`); a plain path is a file (`tail.py`).

See README.md in this folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from sipwatch.errors import SourceError, redact
from sipwatch.sources.files import FileSource
from sipwatch.sources.tail import Chunk, Follower, Position

__all__ = ["FOLLOWERS", "Chunk", "FileSource", "LiveSource", "Position", "Source", "SourceError", "follower", "redact"]


class Source(Protocol):
    """Produces buffers of whole lines; `name` is what events cite as their origin."""

    name: str

    def buffers(self) -> Iterator[bytes]: ...


class LiveSource(Protocol):
    path: str
    wait_fd: int | None  # a descriptor the daemon waits on for new data (None: inotify or polling)

    @property
    def problem(self) -> str | None: ...  # why it cannot be read right now, if it cannot

    @property
    def position(self) -> Position | None: ...

    def read(self, max_bytes: int = -1) -> list[Chunk]: ...
    def close(self) -> None: ...


def _ami(spec: str, saved: Position | None, from_end: bool) -> LiveSource:
    from sipwatch.sources.ami import AmiFollower  # asyncio and panoramisk: only when AMI is watched

    return AmiFollower(spec, saved, from_end)


def _cdr_db(spec: str, saved: Position | None, from_end: bool) -> LiveSource:
    from sipwatch.sources.cdrdb import CdrDbFollower

    return CdrDbFollower(spec, saved, from_end)


def _journal(spec: str, saved: Position | None, from_end: bool) -> LiveSource:
    from sipwatch.sources.journal import JournalFollower

    return JournalFollower(spec, saved, from_end)


#: scheme -> follower; each source module is imported only when it is used (`sipwatch scan` needs none)
FOLLOWERS: dict[str, Callable[[str, Position | None, bool], LiveSource]] = {
    "ami": _ami,
    **{scheme: _cdr_db for scheme in ("mysql", "mariadb", "postgresql", "postgres")},
    "journal": _journal,
    "journal-file": _journal,
}


def is_special(spec: str) -> bool:
    """A `scheme:` source rather than a path (a file has no folder to watch with inotify)."""
    scheme, sep, _ = spec.partition(":")
    return bool(sep) and scheme in FOLLOWERS


def follower(spec: str, saved: Position | None, from_end: bool) -> LiveSource:
    """The live source for one `run.watch` entry."""
    if is_special(spec):
        return FOLLOWERS[spec.partition(":")[0]](spec, saved, from_end)
    return Follower(spec, saved, from_end)
