"""Follow a growing log file across rotation, and resume exactly where a previous run stopped.

A `Follower` owns one path. It reads what was appended since the last call, hands over only whole
lines (an incomplete last line waits for its newline), and notices both rotation styles:

* rename (`messages` -> `messages.1`, a new `messages` appears): the old file is drained to its end
  through the descriptor still open on it, then the new file is read from its start;
* copytruncate (the same inode shrinks): reading restarts at offset 0.

Its `Position` (device, inode, offset, a fingerprint of the first line, line count) is what the
store saves; on a restart a file is resumed only if it is still the same file (same inode and first
line), otherwise the rotated-away file is looked up by inode in the same folder and finished first.
No line is lost and none is read twice, even after `kill -9`, because the position is saved in the
same transaction as what was done with the lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 1 << 20  # a "line" longer than this is handed over unfinished rather than held forever
FINGERPRINT_BYTES = 256


@dataclass(frozen=True)
class Position:
    """Where a followed file was read to (the file itself: device and inode)."""

    path: str
    device: int
    inode: int
    offset: int
    fingerprint: str
    lines: int  # physical lines before `offset`: origin line numbers continue from here


def fingerprint(fh: BinaryIO) -> str:
    """A hash of the file's first line (or first bytes): tells a rotated file from the one we read."""
    here = fh.tell()
    fh.seek(0)
    head = fh.readline(FINGERPRINT_BYTES)
    fh.seek(here)
    import hashlib  # here: loading OpenSSL's hashes costs ~3 ms of every command's start, and only the daemon hashes

    return hashlib.sha1(head).hexdigest() if head.endswith(b"\n") or len(head) >= FINGERPRINT_BYTES else ""


@dataclass
class Chunk:
    """Whole lines read from one file, with the number of lines that precede them there."""

    path: str
    data: bytes
    first_line: int


class Follower:
    def __init__(self, path: str, position: Position | None = None, from_end: bool = False) -> None:
        self.path = path
        self.problem: str | None = None  # why the file cannot be read now, if it cannot
        self.wait_fd: int | None = None  # files wake the daemon through inotify on their folder
        self._fh: BinaryIO | None = None
        self._stat: os.stat_result | None = None
        self._offset = 0
        self._lines = 0
        self._pending = b""  # an incomplete last line
        self._print = ""
        self._old: list[tuple[BinaryIO, int, int]] = []  # rotated files still to finish: fh, offset, lines
        self._start(position, from_end)

    # -- state ---------------------------------------------------------------------------------
    @property
    def position(self) -> Position | None:
        """Where the next unread line starts (what the store saves)."""
        if self._stat is None:
            return None
        if not self._print and self._fh is not None:
            self._print = fingerprint(self._fh)
        return Position(self.path, self._stat.st_dev, self._stat.st_ino, self._offset, self._print, self._lines)

    def _start(self, saved: Position | None, from_end: bool) -> None:
        if not self._open():
            return
        assert self._fh is not None and self._stat is not None
        if saved is None:
            if from_end:
                self._fh.seek(0, os.SEEK_END)
                self._offset = self._fh.tell()
                self._lines = 0
            return
        same = (saved.device, saved.inode) == (self._stat.st_dev, self._stat.st_ino)
        if same and saved.offset <= self._stat.st_size and (not saved.fingerprint or
                                                             fingerprint(self._fh) == saved.fingerprint):
            self._offset, self._lines = saved.offset, saved.lines
            return
        if not same:  # rotated while we were away: finish the old file first, if it is still here
            old = self._find_by_inode(saved)
            if old is not None:
                self._old.append((old, saved.offset, saved.lines))

    def _open(self) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open across calls on purpose
        except FileNotFoundError:
            return False
        except OSError as exc:  # no permission, a directory, ...: say so once, try again later
            if self.problem is None:
                self.problem = f"{self.path}: cannot read: {exc.strerror or exc}"
                import logging  # (here: a scan's parse worker, which imports this package, need not import it)

                logging.getLogger("sipwatch").warning("%s", self.problem)
            return False
        self.problem = None
        self._fh, self._stat = fh, os.fstat(fh.fileno())
        self._offset, self._lines, self._print = 0, 0, ""
        return True

    def _find_by_inode(self, saved: Position) -> BinaryIO | None:
        folder = os.path.dirname(os.path.abspath(self.path)) or "."
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        for name in names:
            candidate = os.path.join(folder, name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (saved.device, saved.inode) and st.st_size >= saved.offset:
                fh = open(candidate, "rb")  # noqa: SIM115
                if not saved.fingerprint or fingerprint(fh) == saved.fingerprint:
                    return fh
                fh.close()
        return None

    def _find_copy(self) -> BinaryIO | None:
        """The copy that copytruncate made of our file: same first line, at least as long as what we read."""
        assert self._stat is not None
        folder = os.path.dirname(os.path.abspath(self.path)) or "."
        best: tuple[float, str] | None = None
        base = os.path.basename(self.path)
        for name in os.listdir(folder):
            if name == base or not name.startswith(base):
                continue
            candidate = os.path.join(folder, name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if st.st_size >= self._offset and (best is None or st.st_mtime > best[0]):
                with open(candidate, "rb") as fh:
                    if fingerprint(fh) == self._print:
                        best = (st.st_mtime, candidate)
        return open(best[1], "rb") if best else None

    # -- reading -------------------------------------------------------------------------------
    def read(self, max_bytes: int = -1) -> list[Chunk]:
        """Whole lines appended since the last call (a rotated-away file's rest comes first); at most
        about `max_bytes` of the current file per call, so that a huge backlog is taken in bounded bites."""
        chunks: list[Chunk] = []
        while self._old:
            fh, offset, lines = self._old.pop(0)
            fh.seek(offset)
            data = fh.read()
            fh.close()
            if data:
                if not data.endswith(b"\n"):
                    data += b"\n"  # the old file will not grow any more: its last line is complete
                chunks.append(Chunk(self.path, data, lines))
        if self._fh is None and not self._open():
            return chunks
        self._check_rotation(chunks)
        chunks.extend(self._drain(limit=max_bytes))
        return chunks

    def _check_rotation(self, chunks: list[Chunk]) -> None:
        assert self._fh is not None and self._stat is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return  # renamed away and not recreated yet: keep reading the old descriptor
        current = os.fstat(self._fh.fileno())
        if (now.st_dev, now.st_ino) != (self._stat.st_dev, self._stat.st_ino):
            chunks.extend(self._drain(final=True))  # the old file's rest, through our descriptor
            self._fh.close()
            self._fh = None
            self._open()
        elif current.st_size < self._offset or (self._print and fingerprint(self._fh) != self._print):
            # copytruncate: what was written between our last read and the truncation is in the copy
            copy = self._find_copy()
            if copy is not None:
                copy.seek(self._offset)
                rest = self._pending + copy.read()
                copy.close()
                if rest:
                    chunks.append(Chunk(self.path, rest if rest.endswith(b"\n") else rest + b"\n", self._lines))
            self._fh.seek(0)
            self._offset, self._lines, self._pending, self._print = 0, 0, b"", ""

    def _drain(self, final: bool = False, limit: int = -1) -> list[Chunk]:
        assert self._fh is not None
        self._fh.seek(self._offset + len(self._pending))
        data = self._pending + self._fh.read(limit if limit > 0 and not final else -1)
        if not data:
            return []
        cut = data.rfind(b"\n") + 1
        if final and cut < len(data):
            cut = len(data)  # the file was rotated away: its last line is as complete as it gets
        elif cut == 0 and len(data) > MAX_LINE:
            cut = len(data)
        whole, self._pending = data[:cut], data[cut:]
        if not whole:
            return []
        chunk = Chunk(self.path, whole if whole.endswith(b"\n") else whole + b"\n", self._lines)
        if not self._print and self._offset == 0:
            self._print = fingerprint(self._fh)
        self._offset += len(whole)
        self._lines += whole.count(b"\n") + (0 if whole.endswith(b"\n") else 1)
        return [chunk]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        for fh, _, _ in self._old:
            fh.close()
