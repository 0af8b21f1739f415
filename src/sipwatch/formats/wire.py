"""Events as plain tuples: what the parse workers send and what the native fast lane produces.

A `Wire` is an `Event` without its raw text, its enum members as their index in the enum: plain values
that pickle fast and that C code builds cheaply. `to_wire` and `event_of` convert both ways; the
record scanner's results (`Item`) may hold both kinds, in file order.
"""

from __future__ import annotations

import struct

from sipwatch.event import Call, CallTuple, Event, Evidence, IPAddress, Kind, Service
from sipwatch.netaddr import ip_of_canonical

#: time, kind, service, ip, port, transport, account, target, user agent, evidence, line, form, session,
#: reason, extra, call
Wire = tuple[float, int, int, str | None, int | None, str | None, str | None, str | None, str | None, int, int,
             str, str | None, str, dict[str, str] | None, CallTuple | None]
Item = Event | Wire
#: a buffer's wire tuples as a parse worker sends them (`pack`): each distinct text once (index 0 is None),
#: each tuple a fixed-size record of its numbers and of indexes into the texts (its call's too), and the few
#: dicts beside them (index 0: None). The main process builds no tuple and no string per event from it, and
#: looks each address up once per buffer (`_drain.c` reads it in C; `unpack` is its specification).
Packed = tuple[list[str | None], bytes | memoryview, list[object]]  # (the records: a view of an outbox slot)
#: time, port (-1: None), line, the call's duration and billsec, kind, service, evidence, which parts of a
#: call the record has (`CALL` | `DURATION` | `BILLSEC`; 0: no call), then the indexes of ip, transport,
#: account, target, user agent, form, session and reason in the texts, of extra in the objects, and of the
#: call's uniqueid, linkedid, channel, peer, context and disposition in the texts. A call travels as numbers
#: too: a buffer of call records held as many tuples as calls, which the main process loaded one by one.
RECORD = struct.Struct("=dqqddBBBB8II6I")
CALL, DURATION, BILLSEC = 1, 2, 4
_TEXT_FIELDS = (3, 5, 6, 7, 8, 11, 12, 13)
_CALL_TEXTS = (0, 1, 2, 3, 4, 7)  # a call tuple's texts (5 and 6 are its duration and billsec)

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
    """The address of a wire tuple's address text (its own text: `ip_text`, `netaddr.host_text`), remembered:
    the same addresses come again and again (a phone's, an attacker's)."""
    found = IPS.get(text, _MISSING)
    if found is _MISSING:
        if len(IPS) > 100_000:
            IPS.clear()
        found = IPS[text] = ip_of_canonical(text)
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


def pack(wires: list[Wire]) -> Packed:
    """The wire tuples of one buffer as `Packed` (what `_drain.pack` does in C)."""
    texts: list[str | None] = [None]
    index: dict[str, int] = {}
    objects: list[object] = [None]
    records = bytearray()

    def ref(text: str | None) -> int:
        if text is None:
            return 0
        at = index.get(text)
        if at is None:
            at = index[text] = len(texts)
            texts.append(text)
        return at

    for w in wires:
        refs = [ref(w[field]) for field in _TEXT_FIELDS]  # type: ignore[arg-type]
        extra = w[14] or None
        refs.append(0 if extra is None else len(objects))
        if extra is not None:
            objects.append(extra)
        call, flags, duration, billsec = w[15], 0, 0.0, 0.0
        if call is not None:
            duration, billsec = call[5] or 0.0, call[6] or 0.0
            flags = CALL | (DURATION if call[5] is not None else 0) | (BILLSEC if call[6] is not None else 0)
        refs += [ref(call[i]) for i in _CALL_TEXTS] if call is not None else [0] * len(_CALL_TEXTS)  # type: ignore[arg-type]
        port = w[4]
        records += RECORD.pack(w[0], -1 if port is None else port, w[10], duration, billsec, w[1], w[2], w[9], flags,
                               *refs)
    return texts, bytes(records), objects


def unpack(packed: Packed) -> list[Wire]:
    """The wire tuples of `pack`'s result (an empty extra comes back as None, which reads the same)."""
    texts, records, objects = packed
    return [
        (time, kind, service, texts[ip_at], None if port < 0 else port, texts[transport], texts[account],
         texts[target], texts[ua], evidence, line, texts[form] or "", texts[session], texts[reason] or "",
         objects[extra],
         (texts[uniqueid], texts[linkedid], texts[channel], texts[peer], texts[context],
          duration if flags & DURATION else None, billsec if flags & BILLSEC else None, texts[disposition])
         if flags & CALL else None)
        for (time, port, line, duration, billsec, kind, service, evidence, flags, ip_at, transport, account, target,
             ua, form, session, reason, extra, uniqueid, linkedid, channel, peer, context, disposition)
        in RECORD.iter_unpack(records)
    ]
