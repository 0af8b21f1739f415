"""Log files, plain or compressed (rotated `messages.1.gz`; xz and bzip2 too), read in large buffers."""

from __future__ import annotations

import bz2
import lzma
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from sipwatch.errors import SourceError

__all__ = ["FileSource", "SourceError"]

CHUNK = 4 << 20  # 4 MiB: large enough for C-speed scanning, small enough for flat memory
#: a parallel scan's buffers of CSV rows (CDR, CEL): their results (nearly every field a text of its own: ~1.5 MB
#: of str objects for 2 MiB of rows) are still in the cache when the detectors read them (4 MiB: +6% of a million
#: CDR rows' main process); a log's buffers stay at CHUNK (2 MiB: +6% on the bench log, its fixed cost a buffer)
ROWS_CHUNK = 2 << 20
#: bytes read back from a cut between buffers of CSV rows to see that no row runs over it (`_balanced_before`);
#: the buffer is read from its start only when they do not show it (a line with an odd count of quotes is near)
ROW_TAIL = 64 << 10




class FileSource:
    def __init__(self, path: str, chunk: int = CHUNK) -> None:
        self.name = path
        self.path = path
        self.chunk = chunk
        self.bytes_read = 0

    @property
    def size(self) -> int:
        if self.path == "-":
            return 0
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    @property
    def rows_only(self) -> bool:
        """A file that starts with a quoted CSV field (cdr_csv's Master.csv, cel_custom; plain or rotated
        and compressed): see `LineParser.rows_only`. False when unknown (standard input, a pipe, unreadable):
        what is peeked there would be lost."""
        if self.path == "-" or not os.path.isfile(self.path):
            return False
        try:
            with self._open() as fh:
                first = fh.read_some(1) if isinstance(fh, _Decompressing) else fh.read(1)
        except (SourceError, _Truncated, OSError):
            return False
        return first[:1] == b'"'

    @property
    def mtime(self) -> float | None:
        if self.path == "-":
            return None
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return None

    def _open(self) -> BinaryIO:
        if self.path == "-":  # standard input, plain or compressed
            stream = sys.stdin.buffer
            return self._decompressed(stream, stream.peek(MAGIC_BYTES) if hasattr(stream, "peek") else b"")
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - closed by the caller's with-block
        except FileNotFoundError:
            raise SourceError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise SourceError(f"{self.path}: is a directory") from None
        except PermissionError:
            raise SourceError(f"{self.path}: permission denied (run as root or in the log's group)") from None
        except OSError as exc:
            raise SourceError(f"{self.path}: {exc.strerror}") from None
        return self._decompressed(raw, raw.peek(MAGIC_BYTES))  # peek, not seek: the path may be a pipe or FIFO

    def _decompressed(self, raw: BinaryIO, head: bytes) -> BinaryIO:
        """`raw`, or a stream that decompresses it when `head` starts with a compressed format's magic."""
        for magic, (name, new) in COMPRESSED.items():
            if head.startswith(magic):
                return _Decompressing(raw, name, new)  # type: ignore[return-value]
        for magic, name in UNREADABLE.items():
            if head.startswith(magic):
                raw.close()
                raise SourceError(f"{self.path}: {name}-compressed, which this Python cannot read; pipe it in: "
                                  f"{name}cat {self.path} | sipwatch scan -")
        return raw

    def buffers(self) -> Iterator[bytes]:
        """Buffers that end on a newline, except possibly the last one; in a file of CSV rows, on a newline
        between rows (a row that a line break in a field spreads over lines stays whole)."""
        rows = self.rows_only
        with self._open() as fh:
            carry = b""
            while True:
                try:
                    data = self._read(fh)
                except _Truncated as broken:
                    if carry or broken.data:
                        yield carry + broken.data
                    raise SourceError(f"{self.path}: corrupt or truncated compressed data ({broken.reason})") from None
                except OSError as exc:
                    if carry:
                        yield carry
                    raise SourceError(f"{self.path}: read error: {exc.strerror or exc}") from None
                self.bytes_read = _position(fh)
                if not data:
                    if carry:
                        yield carry
                    return
                data = carry + data if carry else data
                cut = data.rfind(b"\n") + 1
                if rows and cut:
                    cut = _open_row_start(data, cut)
                if cut == 0:
                    carry = data
                    if len(carry) > 16 * self.chunk:  # one absurd line: hand it over as is
                        yield carry
                        carry = b""
                    continue
                carry = data[cut:]
                yield data[:cut]

    def spans(self) -> Iterator[tuple[int, int]] | None:
        """(offset, length) of buffers that end on a newline, found without reading the file through:
        for a plain regular file, the parse workers then read their own buffers (`read_span`) and the
        main process only looks near each boundary. None for compressed input and standard input."""
        if self.path == "-":
            return None
        try:
            with self._open() as fh:
                if isinstance(fh, _Decompressing) or not os.path.isfile(self.path):
                    return None
                size = os.fstat(fh.fileno()).st_size
        except SourceError:
            return None
        return self._spans(size)

    def _spans(self, size: int) -> Iterator[tuple[int, int]]:
        """Buffers of `chunk` bytes, smaller at both ends: the detectors wait for the first buffer to be
        parsed, and the last one is theirs alone after the workers are done (a shorter wait each time)."""
        rows = self.rows_only
        chunk = min(self.chunk, ROWS_CHUNK) if rows else self.chunk
        start, step = 0, max(1, chunk // 8)
        with open(self.path, "rb") as fh:
            while start < size:
                left = size - start
                end = start + (min(step, max(chunk // 8, left // 2)) if left <= 2 * chunk else step)
                end = min(size, max(end, start + 1))
                step = min(chunk, 2 * step)
                if end < size:
                    end = _line_end(fh, start, end, min(size, start + 16 * self.chunk))
                if rows and end < size:
                    end = _row_end(fh, start, end, size)
                self.bytes_read = end
                yield start, end - start
                start = end

    def _read(self, fh: BinaryIO) -> bytes:
        """Up to about `chunk` bytes of content."""
        if isinstance(fh, _Decompressing):
            return fh.read_some(self.chunk)
        return fh.read(self.chunk)


def _row_end(fh: BinaryIO, start: int, end: int, size: int) -> int:
    """`end`, or just after the CSV row that a line break in a field spreads over it: a file of rows is cut
    only between rows, so that each buffer starts with one (`records.open_rows` reads from a row's start).
    Most cuts are told from the lines just before them (`_balanced_before`); the others read the buffer from
    its start (reading every buffer so cost the main process of a CDR scan ~4%)."""
    from sipwatch.formats.records import MAX_JOIN_LINES, MAX_RECORD, open_rows  # (formats knowledge; imported late)

    if end - start > ROW_TAIL and _balanced_before(fh, end, MAX_JOIN_LINES + 1):
        return end
    fh.seek(start)
    data = fh.read(min(size, end + MAX_RECORD) - start)
    for row_start, row_end in open_rows(data):
        if row_start < end - start <= row_end:
            return min(size, start + row_end + 1)
    return end


def _balanced_before(fh: BinaryIO, end: int, lines: int) -> bool:
    """Whether each of the `lines` lines before `end` (just after a line break) has an even count of quotes.
    Then no row runs over `end`: a row over several lines begins with a line of an odd count, and ends at
    most `MAX_JOIN_LINES` lines after it with another (`records.open_rows`). False when the `ROW_TAIL` bytes
    before `end` do not hold that many whole lines."""
    fh.seek(end - ROW_TAIL)
    tail = fh.read(ROW_TAIL)
    if len(tail) != ROW_TAIL or not tail.endswith(b"\n"):
        return False
    cut = len(tail) - 1  # (the line break that ends the last line)
    for _ in range(lines):
        begin = tail.rfind(b"\n", 0, cut)
        if begin < 0 or tail.count(b'"', begin + 1, cut) % 2:
            return False
        cut = begin
    return True


def _open_row_start(data: bytes, cut: int) -> int:
    """`cut` (just after a newline in `data`, which starts with a row), or the start of the row still open
    there: its quotes do not balance yet, its last line is in the next read. Rows have even quote counts
    (cdr_csv doubles quotes inside fields), so the text before a boundary between rows has too. A row open
    over more than `MAX_RECORD` bytes is no row: then `cut` stands."""
    from sipwatch.formats.records import MAX_RECORD  # (formats knowledge; imported late)

    if data.count(b'"', 0, cut) % 2 == 0:
        return cut
    floor = max(0, cut - MAX_RECORD)
    line = cut - 1  # the newline that ends the last line
    quotes = 0  # in data[start:cut], counted line by line going back
    while line > floor:
        start = data.rfind(b"\n", floor, line) + 1  # the start of the line that ends at `line`
        if start == 0 and floor > 0:
            break
        quotes += data.count(b'"', start, line)
        if data[start:start + 1] == b'"' and quotes % 2:
            return start
        line = start - 1
    return cut


def _line_end(fh: BinaryIO, start: int, end: int, limit: int) -> int:
    """Just after the last newline in [start, end), else after the first one in [end, limit), else `limit`
    (one absurd line is cut there, as `buffers()` hands it over)."""
    window = 1 << 16
    pos = end
    while pos > start:
        low = max(start, pos - window)
        fh.seek(low)
        nl = fh.read(pos - low).rfind(b"\n")
        if nl >= 0:
            return low + nl + 1
        pos = low
    pos = end
    while pos < limit:
        fh.seek(pos)
        data = fh.read(min(window, limit - pos))
        if not data:
            return pos
        nl = data.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(data)
    return limit


def read_span(path: str, offset: int, length: int, lookahead: int) -> tuple[bytes, int]:
    """The buffer at (offset, length) of `path` with up to `lookahead` bytes after it, cut after the last
    whole line when the lookahead is full (what `records.chunks()` gives for the same buffer): (data, limit)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        ahead = os.pread(fd, lookahead, offset + length)
        if len(ahead) == lookahead:  # the lookahead is full: end after its last whole line
            ahead = ahead[: ahead.rfind(b"\n") + 1]
        data = os.pread(fd, length + len(ahead), offset)  # read once at its final size: no 4 MiB copy
    finally:
        os.close(fd)
    return data, min(length, len(data))


class Decompressor(Protocol):
    """What `zlib`, `lzma` and `bz2` decompressors have in common (zlib's through `_Zlib`)."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """A gzip member's decompressor that keeps the input it has not used yet, as lzma's and bz2's do."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=31)

    @property
    def eof(self) -> bool:
        return self._inflate.eof

    @property
    def needs_input(self) -> bool:
        return not self._inflate.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._inflate.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        tail = self._inflate.unconsumed_tail
        return self._inflate.decompress(tail + data if tail else data, max(max_length, 0))


#: compressed formats by their magic bytes: logrotate compresses with gzip unless `compresscmd` says otherwise
COMPRESSED: dict[bytes, tuple[str, Callable[[], Decompressor]]] = {
    b"\x1f\x8b": ("gzip", _Zlib),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMADecompressor),
    b"BZh": ("bzip2", bz2.BZ2Decompressor),
}
#: compressed formats that the standard library of Python 3.11 cannot read
UNREADABLE = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
MAGIC_BYTES = max(len(m) for m in [*COMPRESSED, *UNREADABLE])
_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


class _Decompressing:
    """Incremental decompression (streams concatenated, as `gzip` and logrotate write members) that keeps
    everything decompressed before a truncated or corrupt spot."""

    def __init__(self, raw: BinaryIO, name: str, new: Callable[[], Decompressor]) -> None:
        self.raw = raw
        self.fileobj = raw
        self.name = name
        self._new = new
        self._stream = new()
        self._pending = b""
        self._started = False  # inside a stream: running out of input now means truncation
        self._done = False

    def __enter__(self) -> _Decompressing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def read_some(self, size: int) -> bytes:
        out: list[bytes] = []
        produced = 0
        while produced < size and not self._done:
            if self._pending:
                data, self._pending = self._pending, b""
            elif not self._stream.needs_input:
                data = b""  # the decompressor still holds input: let it go on
            else:
                data = self.raw.read(256 << 10)
                if not data:
                    self._done = True
                    if self._started:
                        raise _Truncated(b"".join(out), "the archive ends before its end-of-stream marker")
                    break
            self._started = True
            try:
                piece = self._stream.decompress(data, size - produced)
            except _ERRORS as exc:
                self._done = True
                raise _Truncated(b"".join(out), f"{self.name}: {exc}") from None
            out.append(piece)
            produced += len(piece)
            if self._stream.eof:  # the next stream, if any (zero padding between streams is allowed)
                self._pending = self._stream.unused_data.lstrip(b"\0")
                self._stream = self._new()
                self._started = False
        return b"".join(out)


class _Truncated(Exception):
    def __init__(self, data: bytes, reason: str) -> None:
        super().__init__(reason)
        self.data = data
        self.reason = reason


def _position(fh: BinaryIO) -> int:
    raw = getattr(fh, "fileobj", None)
    try:
        return int((raw or fh).tell())
    except (OSError, ValueError):
        return 0
