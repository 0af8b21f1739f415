"""The record scanner's fast lane in C, built from the same tables as the Python parser.

`_fastlane.c` runs the loop of `RecordScanner.feed` and, for the common record (one plain-ASCII line that
one of the parser's prefix + message regexes matches), the match and the build of `Form.build` or
`SecurityReader.build`, with PCRE2's JIT running the very regexes that Python's `re` runs. This module
describes every lane to it as data (`LaneSpec`): the regex, the form's id, kind, service, address shape,
separator and so on. A record it cannot reproduce exactly goes, untouched, to the Python path, so the
events are the same with or without it (tests/test_fastlane.py compares both on every test log).

The extension is optional: without a C compiler or PCRE2 at install time, or with `SIPWATCH_NATIVE=0`,
`engine()` returns None and the Python path does all the work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sipwatch.event import CALL_KINDS, Evidence, Kind, Service
from sipwatch.fingerprints import SCANNER_USER_AGENTS
from sipwatch.formats import calls, security
from sipwatch.formats.form import _TLS_LIKE, CHANNEL_SERVICES, Form, uri_user
from sipwatch.formats.wire import EVIDENCE_INDEX, KIND_INDEX, SERVICE_INDEX, ip_text
from sipwatch.netaddr import _TRANSPORTS, Shape, host_text

if TYPE_CHECKING:
    from sipwatch.formats.parser import LineParser

try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch.formats import _fastlane  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _fastlane = None

_KIND, _SERVICE, _EVIDENCE = KIND_INDEX, SERVICE_INDEX, EVIDENCE_INDEX  # wire tuples carry these indexes

D_PYTHON, D_FORM, D_SECURITY = 0, 1, 2
#: address shapes, numbered as the C side's SHAPE_* constants
SHAPES = {Shape.BARE: 0, Shape.PORT: 1, Shape.OPTPORT: 2, Shape.TUPLE: 3, Shape.TRANSPORT: 4}


@dataclass(frozen=True)
class LaneSpec:
    """One fast lane (prefix + message regex) and what its reader makes of a match."""

    pattern: str
    form: str
    type: int = D_PYTHON
    kind: int = -1
    kinds: dict[str, int] = field(default_factory=dict)
    service: int = 0
    service_of: int = 0
    account_groups: tuple[str, ...] = ()
    address_groups: tuple[str, ...] = ()
    shape: int = 2  # SHAPES[Shape.OPTPORT]
    separator: str | None = None
    evidence: int = 0
    strong_reasons: frozenset[str] = frozenset()
    address_trusted: int = 1
    port_zero_untrusted: int = 0
    transport: str | None = None


@dataclass(frozen=True)
class Constants:
    """The vocabulary's indexes and the helpers the C side calls (all cached in Python)."""

    call_kinds: frozenset[int] = frozenset(_KIND[k] for k in CALL_KINDS)
    kind_values: tuple[str, ...] = tuple(str(k) for k in KIND_INDEX)
    k_scanner: int = _KIND[Kind.SCANNER]
    k_unknown: int = _KIND[Kind.UNKNOWN_ACCOUNT]
    k_acl: int = _KIND[Kind.ACL_DENIED]
    e_strong: int = _EVIDENCE[Evidence.STRONG]
    e_weak: int = _EVIDENCE[Evidence.WEAK]
    s_dialplan: int = _SERVICE[Service.DIALPLAN]
    s_sip: int = _SERVICE[Service.SIP]
    s_ami: int = _SERVICE[Service.AMI]
    channel_services: dict[str, int] = field(
        default_factory=lambda: {tech: _SERVICE[s] for tech, s in CHANNEL_SERVICES.items()})
    tls_like: frozenset[str] = _TLS_LIKE
    transports: frozenset[str] = _TRANSPORTS
    uri_user: Any = uri_user
    host_text: Any = host_text
    scanners: tuple[tuple[str, str], ...] = SCANNER_USER_AGENTS
    event_kinds: dict[str, int] = field(
        default_factory=lambda: {name: _KIND[k] for name, k in security.EVENT_KINDS.items()})
    services: dict[str, int] = field(default_factory=lambda: {n: _SERVICE[s] for n, s in security.SERVICES.items()})
    careful_names: frozenset[str] = security.CAREFUL_NAMES


def spec(pattern: str, reader: object) -> LaneSpec:
    """The C description of one lane; readers it does not know stay with Python."""
    if isinstance(reader, security.SecurityReader):
        return LaneSpec(pattern, reader.id, D_SECURITY)
    if not isinstance(reader, Form):
        return LaneSpec(pattern, str(getattr(reader, "id", "?")))
    return LaneSpec(
        pattern, reader.id, D_FORM,
        kind=_KIND[reader.kind] if reader.kind is not None else -1,
        kinds={reason: _KIND[k] for reason, k in reader.kinds.items()},
        service=_SERVICE[reader.service],
        service_of=int(reader.service_of is not None),
        account_groups=reader._account_groups,
        address_groups=reader._addr_groups,
        shape=SHAPES[reader.shape],
        separator=reader.separator,
        evidence=_EVIDENCE[reader.evidence],
        strong_reasons=reader.strong_reasons,
        address_trusted=int(reader.address_trusted),
        port_zero_untrusted=int(reader.port_zero_untrusted),
        transport=reader.transport,
    )


def count_lines(buf: bytes, start: int, end: int) -> int:
    """`buf.count(b"\\n", start, end)`, three times faster in C (the scan counts every buffer's lines)."""
    if _fastlane is None:
        return buf.count(b"\n", start, end)
    return int(_fastlane.count_lines(buf, start, end))


def open_rows(buf: bytes, max_lines: int) -> list[tuple[int, int]] | None:
    """`records.open_rows` in C, or None without the fast lane."""
    if _fastlane is None:
        return None
    return list(_fastlane.open_rows(buf, max_lines))


#: find the prefilter's markers in C when the module was built with libhs (tests turn it off to compare)
USE_MARKERS = True
_MARKERS: dict[tuple[str, ...], Any] = {}


def markers(texts: Sequence[str]) -> Any | None:
    """The markers compiled by libhs for `Engine.feed` (which then finds them itself, with no Python call
    per marker found), or None: without libhs in the build, `Prefilter.hits()` finds them."""
    if not USE_MARKERS or _fastlane is None or not hasattr(_fastlane, "Markers"):
        return None
    key = tuple(texts)
    found = _MARKERS.get(key)
    if found is None:
        try:
            found = _MARKERS[key] = _fastlane.Markers([t.encode() for t in texts])
        except (ValueError, MemoryError):
            return None
    return found


def available() -> bool:
    return _fastlane is not None and os.environ.get("SIPWATCH_NATIVE", "1") != "0"


_ROWS: dict[tuple[int, ...], Any] = {}
#: the columns of a CDR layout that `_rows.h` reads, in its order
ROW_COLUMNS = ("disposition", "amaflags", "uniqueid", "sequence", "start", "answer", "end", "duration", "billsec",
               "channel", "dst", "dstchannel", "dcontext", "linkedid", "userfield")


def rows(parser: LineParser, hits_complete: bool, file: str) -> Any | None:
    """The fast lane of a file of CDR rows (`_rows.h`: `CdrReader.record` in C for the rows it can read exactly
    so), or None: not built, turned off, the prefilter may not report every marker (then a row's other
    markers could not be seen), or the file is one that a reader of lines from one source reads first."""
    if not available() or not hits_complete or not hasattr(_fastlane, "Rows"):
        return None
    if any(file.startswith(origin) for origin, _ in parser._by_origin):
        return None
    cdr = next((r for r in parser.readers if isinstance(r, calls.CdrReader)), None)
    if cdr is None:
        return None
    ids = tuple(i for i, readers in enumerate(parser.by_index) if readers == (cdr,))
    found = _ROWS.get(ids)
    if found is None:
        layouts = [(len(columns), f"{cdr.id}.{name}", tuple(columns.index(c) if c in columns else -1
                                                              for c in ROW_COLUMNS))
                   for name, columns in calls.CDR_LAYOUTS]
        found = _ROWS[ids] = _fastlane.Rows(layouts, frozenset(calls.DISPOSITIONS), frozenset(calls.AMA_FLAGS),
                                            set(ids), calls._source, ip_text, KIND_INDEX[Kind.CALL_END])
    return found


_ENGINES: dict[tuple[tuple[str, int], ...], Any] = {}


def engine(lanes: Sequence[tuple[str, object]]) -> Any | None:
    """The C engine for a parser's lanes (numbered as in `LineParser.lanes`), or None without it.
    Engines are shared by parsers of the same readers (the readers are module-level table rows)."""
    if not available():
        return None
    key = tuple((p, id(r)) for p, r in lanes)
    found = _ENGINES.get(key)
    if found is None:
        found = _ENGINES[key] = _fastlane.Engine([spec(p, r) for p, r in lanes], Constants())
    return found
