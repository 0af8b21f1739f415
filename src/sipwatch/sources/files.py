"""Log files, plain or gzip-compressed (rotated `messages.1.gz`), read in large buffers."""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 4 << 20  # 4 MiB: large enough for C-speed scanning, small enough for flat memory


class SourceError(Exception):
    """The input cannot be read (missing, unreadable, corrupt); the message says why."""


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
                return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
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
        magic = raw.read(2)
        raw.seek(0)
        if magic == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        return raw

    def buffers(self) -> Iterator[bytes]:
        """Buffers that end on a newline, except possibly the last one."""
        with self._open() as fh:
            carry = b""
            while True:
                try:
                    data = fh.read(self.chunk)
                except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
                    if carry:
                        yield carry
                    raise SourceError(f"{self.path}: corrupt or truncated compressed data ({exc})") from None
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


def _position(fh: BinaryIO) -> int:
    raw = getattr(fh, "fileobj", None)
    try:
        return int((raw or fh).tell())
    except (OSError, ValueError):
        return 0
