"""The Asterisk Manager Interface as a live source: `ami://user:secret@127.0.0.1:5038[?events=…]`.

Security events arrive on AMI whatever `allowguest` says and whether or not the security log is written.
The session (`sipwatch.ami`: panoramisk in a thread of its own) logs in with the event classes of
`?events=` (default security,call,cdr,system), reconnects with a back-off when Asterisk restarts, and
hands every event over. A security event is written out as one line in Asterisk's own `[json]` logger
shape, `SecurityEvent="…",EventTV="…",…,RemoteAddress="…"`, so the very same reader as for the security
log turns it into an event (double quotes inside caller-written values become single quotes first: AMI
keeps every field on its own line, so nothing here needs the careful path). Call events (Newchannel,
DialBegin, DialEnd, Hangup, Cdr, ContactStatus) are written as one JSON object per line for the AMI call
reader (`formats/ami.py`). A pipe wakes the daemon as soon as an event is queued; the pipeline never
waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sipwatch.ami import AmiAddress, AmiError, AmiSession
from sipwatch.formats import ami as calls
from sipwatch.sources.tail import Chunk, Position

__all__ = ["AmiError", "AmiFollower", "render"]

#: The fields of a security event, in the order res_security_log writes them (the rest follow).
ORDER = ("EventTV", "Severity", "Service", "EventVersion", "AccountID", "SessionID", "LocalAddress",
         "RemoteAddress")
SKIP = frozenset({"Event", "Privilege", "content", "SequenceNumber", "File", "Line", "Func"})
MAX_QUEUE = 100_000


def render(event: dict[str, str | list[str]]) -> bytes:
    """One AMI security event as a line of Asterisk's `[json]` log formatter. A field that came twice (caller
    text with a line break can add a `RemoteAddress:` line of its own) is written twice, in the order it
    came, so that the reader sees the forgery as it would in the security log: an `injection` event."""
    name = event.get("Event", "")
    fields = [f'SecurityEvent="{name}"']
    rest = [k for k in event if k not in SKIP and k not in ORDER]
    for key in (*ORDER, *rest):
        if key in event:
            values = event[key]
            for value in values if isinstance(values, list) else [values]:
                fields.append(f'{key}="{str(value).replace(chr(34), chr(39))}"')
    record = {"hostname": "ami", "timestamp": event.get("EventTV", ""),
              "logmsg": {"location": {"filename": "res_security_log.c"}, "level": "SECURITY",
                         "message": ",".join(fields)}}
    return json.dumps(record).encode() + b"\n"


#: The AMI event classes read by default: security events, calls (DialBegin, DialEnd, Hangup), CDRs
#: (cdr_manager) and contacts (ContactStatus is in the `system` class)
EVENTS = "security,call,cdr,system"


@dataclass(frozen=True)
class AgentLookup:
    """How to learn the user agent behind one kind of registration event: the action to send (from the
    event's fields; None when the event names no contact) and how to find the agent in the answer."""

    action: Callable[[dict[str, str]], dict[str, str] | None]
    contact: Callable[[dict[str, str]], str]  # what the answer is remembered by, with the account
    pick: Callable[[dict[str, str], dict[str, str]], str | None]  # (answer message, event) -> agent


_CONTACT_PRESENT = calls.CONTACT_STATES - {"Removed"}  # a registration whose contact can be asked about


def _pjsip_action(f: dict[str, str]) -> dict[str, str] | None:
    endpoint = f.get("EndpointName") or f.get("AOR") or ""
    if not endpoint or not f.get("URI") or f.get("ContactStatus") not in _CONTACT_PRESENT:
        return None  # a qualify result (Reachable, Unreachable) or a contact that is gone
    return {"Action": "PJSIPShowEndpoint", "Endpoint": endpoint}


def _pjsip_pick(message: dict[str, str], f: dict[str, str]) -> str | None:
    if message.get("Event") == "ContactStatusDetail" and message.get("URI") == f.get("URI"):
        return message.get("UserAgent")
    return None


def _sip_action(f: dict[str, str]) -> dict[str, str] | None:
    tech, _, peer = f.get("Peer", "").partition("/")
    if f.get("ChannelType") != "SIP" or tech != "SIP" or not peer or f.get("PeerStatus") != "Registered":
        return None
    return {"Action": "SIPshowpeer", "Peer": peer}


#: event -> lookup: PJSIP's ContactStatus (Asterisk 12+: `PJSIPShowEndpoint` lists each contact's
#: `UserAgent`) and chan_sip's PeerStatus (Asterisk up to 20: `SIPshowpeer` answers `SIP-Useragent`)
AGENT_LOOKUPS: dict[str, AgentLookup] = {
    "ContactStatus": AgentLookup(_pjsip_action, lambda f: f.get("URI", ""), _pjsip_pick),
    "PeerStatus": AgentLookup(_sip_action, lambda f: f.get("Address", ""),
                              lambda m, f: m.get("SIP-Useragent") if m.get("Response") == "Success" else None),
}


class ContactAgents:
    """The user agent of a new or updated registration, which Asterisk's contact events leave out but an
    action answers (`AGENT_LOOKUPS`): asked for on the AMI loop, so the registration event carries it (as
    `UserAgent`) and a new network with a new user agent can be judged as it happens. The answer is
    remembered per contact for `KEEP_SECONDS` (phones re-register every few minutes); a lookup that fails
    (no `write = system` for the AMI user, a timeout) leaves the event without a user agent."""

    KEEP_SECONDS = 600.0
    MAX_KEPT = 50_000
    TIMEOUT = 2.0

    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self._known: dict[tuple[str, str], tuple[float, str]] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self.failures = 0

    def enrich(self, fields: dict[str, str], received: float, put: Callable[[bytes], None]) -> None:
        lookup = AGENT_LOOKUPS.get(fields.get("Event", ""))
        action = lookup.action(fields) if lookup is not None and not fields.get("UserAgent") else None
        if lookup is None or action is None:
            put(calls.render(fields, received))
            return
        key = (json.dumps(action, sort_keys=True), lookup.contact(fields))
        known = self._known.get(key)
        if known is not None and received - known[0] < self.KEEP_SECONDS:
            put(calls.render({**fields, "UserAgent": known[1]}, received))
            return
        task = asyncio.ensure_future(self._look_up(fields, lookup, action, key, received, put))
        self._pending.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._pending.discard)

    async def _look_up(self, fields: dict[str, str], lookup: AgentLookup, action: dict[str, str],
                       key: tuple[str, str], received: float, put: Callable[[bytes], None]) -> None:
        agent = ""
        try:
            answer = await asyncio.wait_for(self.session.manager.send_action(dict(action)), self.TIMEOUT)
            for message in answer if isinstance(answer, list) else [answer]:
                agent = agent or str(lookup.pick({str(k): str(v) for k, v in dict(message).items()}, fields) or "")
        except Exception:  # an action refused or unanswered: the event goes on without a user agent
            self.failures += 1
        if agent:
            if len(self._known) >= self.MAX_KEPT:
                del self._known[next(iter(self._known))]
            self._known[key] = (received, agent)
            fields = {**fields, "UserAgent": agent}
        put(calls.render(fields, received))


class AmiFollower:
    def __init__(self, spec: str, position: Position | None = None, from_end: bool = False) -> None:
        self.path = spec
        address = AmiAddress.parse(spec)
        events = parse_qs(urlsplit(spec).query).get("events", [EVENTS])[-1]
        self._queue: deque[bytes] = deque(maxlen=MAX_QUEUE)
        self.dropped = 0
        self.forged = 0  # call events with a field twice (see _on_event)
        self.lines = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self.wait_fd: int | None = self._wake_read
        self.session = AmiSession(address, events, self._on_event)
        self._agents = ContactAgents(self.session)

    @property
    def position(self) -> Position | None:
        return None  # AMI is live: there is nothing to resume

    @property
    def problem(self) -> str | None:
        return self.session.problem

    # -- the AMI thread ------------------------------------------------------------------------
    def _on_event(self, fields: dict[str, str | list[str]]) -> None:
        if "RemoteAddress" in fields:
            self._put(render(fields))
            return
        plain = {key: value for key, value in fields.items() if isinstance(value, str)}
        if len(plain) < len(fields):
            self.forged += 1  # a call event with a field twice: caller text made a line of its own; not read
        elif plain.get("Event") in AGENT_LOOKUPS:
            self._agents.enrich(plain, time.time(), self._put)
        elif plain.get("Event") in calls.EVENTS:
            self._put(calls.render(plain, time.time()))

    def _put(self, line: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(line)
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
        return self.session.wait_ready(seconds)

    def close(self) -> None:
        self.session.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
