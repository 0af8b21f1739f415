"""One connection to the Asterisk Manager Interface, run by panoramisk in a thread of its own.

Both the AMI source (which reads security and call events) and the PBX actions (which hang up calls and
block accounts) need the same things: an `ami://user:secret@host:port` address checked up front, a login
whose refusal is a clear message, reconnection with a back-off when Asterisk restarts, and an asyncio loop
that never runs on the daemon's own thread, so that a slow or absent PBX never stalls the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from sipwatch.errors import SourceError, redact

#: an event's fields; a field that came twice (panoramisk makes a list of it) stays a list of its values
EventHandler = Callable[[dict[str, str | list[str]]], None]
RECONNECT_SECONDS = 2


class AmiError(SourceError):
    """The AMI URL is malformed, or an action could not be carried out."""


@dataclass(frozen=True)
class AmiAddress:
    host: str
    port: int
    username: str
    secret: str

    @classmethod
    def parse(cls, spec: str) -> AmiAddress:
        parts = urlsplit(spec)
        try:
            port = parts.port or 5038
        except ValueError:
            port = 0
        if parts.scheme != "ami" or not parts.hostname or not parts.username or not port:
            raise AmiError(f"{redact(spec)!r}: expected ami://USER:SECRET@HOST[:PORT]")
        return cls(parts.hostname, port, unquote(parts.username), unquote(parts.password or ""))

    def __str__(self) -> str:  # never the secret: this text goes to logs
        return f"ami://{self.username}@{self.host}:{self.port}"


class AmiSession:
    """A logged-in panoramisk `Manager` on a private event loop. `events` is the AMI event mask of the
    login (`security,call`, or `off` for a connection that only sends actions)."""

    def __init__(self, address: AmiAddress, events: str, on_event: EventHandler | None = None,
                 name: str = "ami") -> None:
        self.address = address
        self.events = events
        self.on_event = on_event
        self.problem: str | None = None
        self.manager: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def ready(self) -> bool:
        manager = self.manager
        return (manager is not None and bool(getattr(manager, "authenticated", False))
                and bool(getattr(manager, "_connected", True)))

    def _logged_in(self, manager: Any) -> None:
        self.problem = None

    def _lost(self, manager: Any, exc: Exception | None) -> None:
        """Asterisk restarted or the network dropped: panoramisk reconnects (and logs in again) on its own;
        until then the daemon's status says so. Events Asterisk raised meanwhile never reach AMI: the log
        sources still have them."""
        manager.authenticated = False
        if self.problem is not None and "refused the login" in self.problem:
            return  # Asterisk closes the connection after a refused login: that is the news, not the close
        why = f" ({exc})" if exc else ""
        self.problem = (f"{self.address}: the AMI connection was lost{why}; reconnecting every "
                        f"{RECONNECT_SECONDS} s")

    def _run(self) -> None:
        from panoramisk import Manager  # only when AMI is used

        asyncio.set_event_loop(self._loop)
        a = self.address
        manager = Manager(loop=self._loop, host=a.host, port=a.port, username=a.username, secret=a.secret,
                          events=self.events, reconnect_timeout=RECONNECT_SECONDS, ping_delay=10,
                          on_login=self._logged_in, on_disconnect=self._lost)
        if self.on_event is not None:
            manager.register_event("*", self._dispatch)
        self.manager = manager
        try:
            self._loop.run_until_complete(self._connect(manager))
            self._loop.run_forever()
        finally:
            # closed here, in its own thread, once stopped: a loop left to the garbage collector is closed in
            # a cycle whose self-pipe sockets may be finalised first (an unraisable error at exit)
            self._loop.close()

    async def _connect(self, manager: Any) -> None:
        try:
            await manager.connect()
        except Exception as exc:
            self.problem = f"{self.address}: cannot reach AMI at {self.address.host}:{self.address.port}: {exc}"
            return
        login = getattr(manager, "authenticated_future", None)
        if login is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(login, timeout=10)
        if not getattr(manager, "authenticated", False):
            self.problem = (f"{self.address}: AMI refused the login of {self.address.username!r} "
                            "(check the user and secret)")
        else:
            self.problem = None

    def _dispatch(self, manager: Any, event: Any) -> None:
        assert self.on_event is not None
        self.on_event({str(k): [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in dict(event).items()})

    def wait_ready(self, seconds: float = 10.0) -> bool:
        """Until logged in (for tests and start-up messages); False at once when the login is refused."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ready:
                return True
            if self.problem is not None and "refused the login" in self.problem:
                return False
            time.sleep(0.05)
        return False

    def action(self, fields: dict[str, str], timeout: float = 5.0) -> list[dict[str, str]]:
        """Send one action and wait for its answer: the response, then the events of its list (for
        actions such as CoreShowChannels). Raises AmiError when not logged in, on timeout or on
        `Response: Error`."""
        if not self.ready:
            raise AmiError(self.problem or f"{self.address}: not logged in to AMI")

        async def send() -> Any:
            return await self.manager.send_action(dict(fields))

        try:
            answer = asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout)
        except TimeoutError:
            raise AmiError(f"{self.address}: no answer to {fields.get('Action')} within {timeout:.0f}s") from None
        messages = [{str(k): str(v) for k, v in dict(m).items()}
                    for m in (answer if isinstance(answer, list) else [answer])]
        if messages and messages[0].get("Response") == "Error":
            raise AmiError(f"{fields.get('Action')}: {messages[0].get('Message', 'refused')}")
        return messages

    def close(self) -> None:
        """Log off for good: the socket is closed before the loop stops (a transport closes on the loop's
        next turn; stopping the loop first would leave the session open on the PBX)."""
        if self.manager is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _close(self) -> None:
        self.manager.close()
        await asyncio.sleep(0.05)
