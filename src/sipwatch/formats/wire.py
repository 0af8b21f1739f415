"""Events as plain tuples: what the parse workers send and what the native fast lane produces.

A `Wire` is an `Event` without its raw text, its enum members as their index in the enum: plain values
that pickle fast and that C code builds cheaply. `to_wire` and `event_of` convert both ways; the
record scanner's results (`Item`) may hold both kinds, in file order.
"""

from __future__ import annotations

from sipwatch.event import Call, CallTuple, Event, Evidence, IPAddress, Kind, Service
from sipwatch.netaddr import ip_of

#: time, kind, service, ip, port, transport, account, target, user agent, evidence, line, form, session,
#: reason, extra, call
Wire = tuple[float, int, int, str | None, int | None, str | None, str | None, str | None, str | None, int, int,
             str, str | None, str, dict[str, str] | None, CallTuple | None]
Item = Event | Wire

KINDS = list(Kind)
SERVICES = list(Service)
EVIDENCE = list(Evidence)
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
SERVICE_INDEX = {s: i for i, s in enumerate(SERVICES)}
EVIDENCE_INDEX = {e: i for i, e in enumerate(EVIDENCE)}
_TEXT: dict[IPAddress, str] = {}
IPS: dict[str, IPAddress | None] = {}  # ip()'s memory (the C merge loop reads it too)
_new_call = tuple.__new__  # Call(*fields) without the keyword machinery of its __new__
_MISSING = object()


def item_line(item: Item) -> int:
    return item[10] if isinstance(item, tuple) else item.line


def item_form(item: Item) -> str:
    return item[11] if isinstance(item, tuple) else item.form


def ip_text(ip: IPAddress) -> str:
    text = _TEXT.get(ip)
    if text is None:
        if len(_TEXT) > 100_000:
            _TEXT.clear()
        text = _TEXT[ip] = str(ip)
    return text


def ip(text: str) -> IPAddress | None:
    """ip_of(), remembered: the same addresses come again and again (a phone's, an attacker's)."""
    found = IPS.get(text, _MISSING)
    if found is _MISSING:
        if len(IPS) > 100_000:
            IPS.clear()
        found = IPS[text] = ip_of(text)
    return found  # type: ignore[return-value]


def to_wire(e: Event) -> Wire:
    return (e.time, KIND_INDEX[e.kind], SERVICE_INDEX[e.service], ip_text(e.ip) if e.ip is not None else None,
            e.port, e.transport, e.account, e.target, e.user_agent, EVIDENCE_INDEX[e.evidence], e.line, e.form,
            e.session, e.reason, e.extra or None, e.call.to_tuple() if e.call is not None else None)


def wire(item: Item) -> Wire:
    return item if isinstance(item, tuple) else to_wire(item)


def event_of(w: Wire, file: str, address: IPAddress | None = None, line_base: int = 0) -> Event:
    """The event of a wire tuple; `address` is its address when the caller has it already; `line_base`
    is added to its line number (a worker numbers the lines of its buffer from 1)."""
    (time, kind, service, ip_str, port, transport, account, target, ua, evidence, line, form, session, reason,
     extra, call) = w
    if address is None and ip_str is not None:
        address = ip(ip_str)
    return Event(
        time, KINDS[kind], SERVICES[service], address,
        port, transport, account, target, ua, EVIDENCE[evidence], file, line + line_base, "",
        form, session, reason or "", extra or {}, call=_new_call(Call, call) if call is not None else None,
    )


def item_event(item: Item, file: str) -> Event:
    return event_of(item, file) if isinstance(item, tuple) else item
