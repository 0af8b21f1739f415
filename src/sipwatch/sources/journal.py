"""The systemd journal as a source: `journal:asterisk.service` (a unit) or `journal-file:/path` (a file).

`journalctl -o json --all -f` does the reading (no binding to compile); each entry is one JSON line whose
MESSAGE the parsers read like any log line (a MESSAGE journald wrote as an array of bytes is made text
first: `formats/journal.py`). Its `__CURSOR` is the read position: saved in the store with
the events, and handed back as `--after-cursor` after a restart, so no entry is lost or read twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess

from sipwatch.errors import SourceError
from sipwatch.sources.tail import Chunk, Position


class JournalError(SourceError):
    """journalctl is missing or refused to start."""


class JournalFollower:
    def __init__(self, spec: str, position: Position | None = None, from_end: bool = False) -> None:
        self.path = spec
        self.problem: str | None = None
        kind, _, target = spec.partition(":")
        binary = shutil.which("journalctl")
        if binary is None:
            raise JournalError("journalctl is missing: the journal source needs systemd's journalctl")
        # --all: without it a field over 4096 bytes comes as null, and a padded user name would hide a line
        args = [binary, "-o", "json", "--all", "--no-pager", "-f"]
        args += ["--file", target] if kind == "journal-file" else ["-u", target]
        self.cursor = position.fingerprint if position is not None else ""
        self.lines = position.lines if position is not None else 0
        if self.cursor:
            args.append(f"--after-cursor={self.cursor}")
        elif from_end:
            args += ["-n", "0"]
        else:
            args += ["-n", "all"]
        try:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise JournalError(f"journalctl did not start: {exc}") from None
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        self.wait_fd: int | None = self.fd  # the daemon wakes up when journalctl writes
        os.set_blocking(self.fd, False)
        self._pending = b""

    @property
    def position(self) -> Position | None:
        return Position(self.path, 0, 0, 0, self.cursor, self.lines) if self.cursor else None

    def read(self, max_bytes: int = -1) -> list[Chunk]:
        data = self._pending
        while max_bytes < 0 or len(data) < max_bytes:
            try:
                piece = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not piece:
                break
            data += piece
        cut = data.rfind(b"\n") + 1
        whole, self._pending = data[:cut], data[cut:]
        if not whole:
            return []
        last = whole[: len(whole) - 1].rsplit(b"\n", 1)[-1]
        with contextlib.suppress(ValueError, AttributeError):
            self.cursor = str(json.loads(last).get("__CURSOR", self.cursor))
        chunk = Chunk(self.path, whole, self.lines)
        self.lines += whole.count(b"\n")
        return [chunk]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
