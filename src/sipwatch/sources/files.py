"""Log files, plain or gzip-compressed (rotated `messages.1.gz`), read in large buffers."""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from sipwatch.errors import SourceError

__all__ = ["FileSource", "SourceError"]

CHUNK = 4 << 20  # 4 MiB: large enough for C-speed scanning, small enough for flat memory




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
    def mtime(self) -> float | None:
        if self.path == "-":
            return None
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return None

    def _open(self) -> BinaryIO:
        if self.path == "-":  # standard input, plain or gzip
            stream = sys.stdin.buffer
            head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
            if head == b"\x1f\x8b":
                return _GzipStream(stream)  # type: ignore[return-value]
            return stream
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
        if raw.peek(2)[:2] == b"\x1f\x8b":  # peek, not seek: the path may be a pipe (`<(journalctl …)`, a FIFO)
            return _GzipStream(raw)  # type: ignore[return-value]
        return raw

    def buffers(self) -> Iterator[bytes]:
        """Buffers that end on a newline, except possibly the last one."""
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
                if isinstance(fh, _GzipStream) or not os.path.isfile(self.path):
                    return None
                size = os.fstat(fh.fileno()).st_size
        except SourceError:
            return None
        return self._spans(size)

    def _spans(self, size: int) -> Iterator[tuple[int, int]]:
        """Buffers of `chunk` bytes, smaller at both ends: the detectors wait for the first buffer to be
        parsed, and the last one is theirs alone after the workers are done (a shorter wait each time)."""
        start, step = 0, max(1, self.chunk // 8)
        with open(self.path, "rb") as fh:
            while start < size:
                left = size - start
                end = start + (min(step, max(self.chunk // 8, left // 2)) if left <= 2 * self.chunk else step)
                end = min(size, max(end, start + 1))
                step = min(self.chunk, 2 * step)
                if end < size:
                    end = _line_end(fh, start, end, min(size, start + 16 * self.chunk))
                self.bytes_read = end
                yield start, end - start
                start = end

    def _read(self, fh: BinaryIO) -> bytes:
        """Up to about `chunk` bytes of content."""
        if isinstance(fh, _GzipStream):
            return fh.read_some(self.chunk)
        return fh.read(self.chunk)


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
        data = os.pread(fd, length + lookahead, offset)
    finally:
        os.close(fd)
    limit = min(length, len(data))
    if len(data) == length + lookahead:  # the lookahead is full: end after its last whole line
        data = data[: data.rfind(b"\n", length) + 1 or length]
    return data, limit


class _GzipStream:
    """Incremental gzip decompression (members concatenated as `gzip` and logrotate write them)
    that keeps everything decompressed before a truncated or corrupt spot."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.fileobj = raw
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._started = False  # inside a member: running out of input now means truncation
        self._done = False

    def __enter__(self) -> _GzipStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def read_some(self, size: int) -> bytes:
        out: list[bytes] = []
        produced = 0
        while produced < size and not self._done:
            if self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._inflate.unconsumed_tail or self.raw.read(256 << 10)
            if not data:
                self._done = True
                if self._started:
                    raise _Truncated(b"".join(out), "the archive ends before its end-of-stream marker")
                break
            self._started = True
            try:
                piece = self._inflate.decompress(data, size - produced)
            except zlib.error as exc:
                self._done = True
                raise _Truncated(b"".join(out), str(exc)) from None
            out.append(piece)
            produced += len(piece)
            if self._inflate.eof:  # next member, if any (padding zeros between members are allowed)
                self._pending = self._inflate.unused_data.lstrip(b"\0")
                self._inflate = zlib.decompressobj(wbits=31)
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
