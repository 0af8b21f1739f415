"""The Asterisk Manager Interface as a live source: `ami://user:secret@127.0.0.1:5038`.

Security events arrive on AMI whatever `allowguest` says and whether or not the security log is
written. panoramisk (asyncio, in a thread of its own) logs in with `Events: security`, reconnects with a
back-off when Asterisk restarts, and hands every event over. Each is written out as one line in Asterisk's
own `[json]` logger shape, `SecurityEvent="…",EventTV="…",…,RemoteAddress="…"`, so the very same reader
as for the security log turns it into an event (double quotes inside caller-written values become single
quotes first: AMI keeps every field on its own line, so nothing here needs the careful path). A pipe
wakes the daemon as soon as an event is queued; the pipeline never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

from sipwatch.sources.tail import Chunk, Position

#: The fields of a security event, in the order res_security_log writes them (the rest follow).
ORDER = ("EventTV", "Severity", "Service", "EventVersion", "AccountID", "SessionID", "LocalAddress",
         "RemoteAddress")
SKIP = frozenset({"Event", "Privilege", "content", "SequenceNumber", "File", "Line", "Func"})
MAX_QUEUE = 100_000


def render(event: dict[str, str]) -> bytes:
    """One AMI security event as a line of Asterisk's `[json]` log formatter."""
    name = event.get("Event", "")
    fields = [f'SecurityEvent="{name}"']
    rest = [k for k in event if k not in SKIP and k not in ORDER]
    for key in (*ORDER, *rest):
        if key in event:
            fields.append(f'{key}="{str(event[key]).replace(chr(34), chr(39))}"')
    record = {"hostname": "ami", "timestamp": event.get("EventTV", ""),
              "logmsg": {"location": {"filename": "res_security_log.c"}, "level": "SECURITY",
                         "message": ",".join(fields)}}
    return json.dumps(record).encode() + b"\n"


class AmiError(Exception):
    """The AMI URL is malformed."""


class AmiFollower:
    def __init__(self, spec: str, position: Position | None = None, from_end: bool = False) -> None:
        self.path = spec
        self.problem: str | None = None
        parts = urlsplit(spec)
        if parts.scheme != "ami" or not parts.hostname or not parts.username:
            raise AmiError(f"{spec!r}: expected ami://USER:SECRET@HOST[:PORT]")
        self.host, self.port = parts.hostname, parts.port or 5038
        self.username, self.secret = unquote(parts.username), unquote(parts.password or "")
        self._queue: deque[bytes] = deque(maxlen=MAX_QUEUE)
        self.dropped = 0
        self.lines = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self.wait_fd: int | None = self._wake_read
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ami", daemon=True)
        self._thread.start()

    @property
    def position(self) -> Position | None:
        return None  # AMI is live: there is nothing to resume

    # -- the AMI thread ------------------------------------------------------------------------
    def _run(self) -> None:
        from panoramisk import Manager  # only when AMI is used

        asyncio.set_event_loop(self._loop)
        manager = Manager(loop=self._loop, host=self.host, port=self.port, username=self.username,
                          secret=self.secret, events="security", reconnect_timeout=2, ping_delay=10)
        manager.register_event("*", self._on_event)
        self.manager = manager
        self._loop.run_until_complete(self._connect(manager))
        self._loop.run_forever()

    async def _connect(self, manager: Any) -> None:
        try:
            await manager.connect()
        except Exception as exc:
            self.problem = f"{self.path}: cannot reach AMI at {self.host}:{self.port}: {exc}"
            return
        login = getattr(manager, "authenticated_future", None)
        if login is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(login, timeout=10)
        if not getattr(manager, "authenticated", False):
            self.problem = f"{self.path}: AMI refused the login of {self.username!r} (check the user and secret)"
        else:
            self.problem = None

    def _on_event(self, manager: Any, event: Any) -> None:
        fields = {str(k): str(v) for k, v in dict(event).items()}
        if "RemoteAddress" not in fields:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(render(fields))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"!")

    # -- the daemon's side ---------------------------------------------------------------------
    def read(self, max_bytes: int = -1) -> list[Chunk]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass
        lines: list[bytes] = []
        size = 0
        while self._queue and (max_bytes < 0 or size < max_bytes):
            line = self._queue.popleft()
            lines.append(line)
            size += len(line)
        if not lines:
            return []
        chunk = Chunk(self.path, b"".join(lines), self.lines)
        self.lines += len(lines)
        return [chunk]

    def wait_ready(self, seconds: float = 10.0) -> bool:
        """Until logged in (for tests and start-up messages)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            manager = getattr(self, "manager", None)
            if manager is not None and getattr(manager, "authenticated", False):
                return True
            if self.problem is not None and "refused the login" in self.problem:
                return False
            time.sleep(0.05)
        return False

    def close(self) -> None:
        manager = getattr(self, "manager", None)
        if manager is not None:
            self._loop.call_soon_threadsafe(manager.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        os.close(self._wake_read)
        os.close(self._wake_write)
