"""Call activity: Asterisk CDR and CEL files, and the `full` log's verbose call and contact lines.

Records become `registration`, `call_start`, `call_answer` and `call_end` events carrying the account,
the dialled number and the call's ids (`Call`), so that the account rules see calls whichever record
told of them. What is trusted, and why:

* the account is the endpoint in the channel name (`PJSIP/6001-00000001`), which Asterisk writes from
  its own configuration; the CDR `src` and `clid` are caller ID, which a phone can set, and are not used;
* the source address of a call comes only from the CDR userfield `src=<ip>:<port>`, which the dialplan
  writes (`Set(CDR(userfield)=src=${CHANNEL(pjsip,remote_addr)})`, see README);
* the address in `Added contact 'sip:6001@…'` is what the phone wrote in its Contact header: it is kept
  as a hint (`extra["contact"]`), never as a source address.

CSV rows are read with the `csv` module (Asterisk doubles quotes inside fields). The column layouts
are data (`CDR_LAYOUTS`, `CEL_LAYOUTS`): each is recognised by its column count and by the fixed
vocabulary at fixed places (disposition and AMA flags; CEL event names). A row that carries a CDR or CEL
marker but fits no layout, or whose times or durations are broken, is skipped and counted (`Status.BAD`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from typing import Literal, NamedTuple

from sipwatch.event import Call, Evidence, Kind, Service
from sipwatch.formats.form import Form, Parsed, PrefixlessReader, channel_account
from sipwatch.netaddr import Address, Shape, parse_address

K = Kind

# --- CDR ------------------------------------------------------------------------------------------

#: ast_cdr_disp2str() (main/cdr.c)
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})
#: ast_channel_amaflags2string() (main/channel.c); cdr_custom's `amaflags(int64)` writes the number
AMA_FLAGS = frozenset({"DOCUMENTATION", "BILLING", "OMIT", "Unknown", "1", "2", "3"})

#: cdr_csv.c build_csv_record(): the columns always written, in this order ...
CDR_CSV = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
#: ... then `uniqueid` (loguniqueid=yes), `userfield` (loguserfield=yes), and peeraccount, linkedid and
#: sequence (newcdrcolumns=yes). cdr.conf as compiled: none; cdr.conf.sample (what Debian installs):
#: uniqueid and userfield.
_CDR_CSV_OPTIONS = (("uniqueid",), ("userfield",), ("peeraccount", "linkedid", "sequence"))

#: cdr_custom.conf.sample's `Master.csv` mapping (the documented one; see README)
CDR_CUSTOM = ("clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "start", "answer",
              "end", "duration", "billsec", "disposition", "amaflags", "accountcode", "uniqueid", "userfield",
              "sequence")


def _cdr_csv_layouts() -> tuple[tuple[str, tuple[str, ...]], ...]:
    layouts = []
    for mask in range(8):
        extra = tuple(c for bit, cols in enumerate(_CDR_CSV_OPTIONS) if mask >> bit & 1 for c in cols)
        layouts.append(("cdr_csv", CDR_CSV + extra))
    return tuple(layouts)


#: (format, columns): tried in order among those of the row's length
CDR_LAYOUTS: tuple[tuple[str, tuple[str, ...]], ...] = (*_cdr_csv_layouts(), ("cdr_custom", CDR_CUSTOM))

_UNIQUEID = re.compile(r"^(?:[\w.-]+-)?\d{9,}\.\d+$")  # `1714764002.17`, with `systemname-` when set
_DATE = re.compile(r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[ T](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
                   r"(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?$")
_EPOCH = re.compile(r"^\d{9,11}(?:\.\d+)?$")
_SRC = re.compile(r"(?:^|[;,| ])src=(\S+?)(?=$|[;,| ])")


class _Layout:
    """One column layout, with the places of its columns worked out once (`place`)."""

    __slots__ = ("amaflags", "columns", "disposition", "name", "place", "sequence", "uniqueid")

    def __init__(self, name: str, columns: tuple[str, ...]) -> None:
        self.name = name
        self.columns = columns
        self.place = place = {c: i for i, c in enumerate(columns)}
        self.disposition = place.get("disposition")
        self.amaflags = place.get("amaflags")
        self.uniqueid = place.get("uniqueid")
        self.sequence = place.get("sequence")

    def fits(self, row: list[str]) -> bool:
        """Whether a row of the right length has this layout's fixed vocabulary in the right places."""
        i = self.disposition
        if i is not None and row[i] not in DISPOSITIONS:
            return False
        i = self.amaflags
        if i is not None and row[i] not in AMA_FLAGS:
            return False
        i = self.uniqueid
        if i is not None and row[i] and not _UNIQUEID.match(row[i]):
            return False
        i = self.sequence
        return i is None or not row[i] or row[i].isdigit()


def _fitting(layouts: Mapping[int, tuple[_Layout, ...]], row: list[str]) -> _Layout | None:
    for layout in layouts.get(len(row), ()):
        if layout.fits(row):
            return layout
    return None


def _layout(layouts: Mapping[int, tuple[_Layout, ...]], row: list[str]) -> tuple[str, dict[str, str]] | None:
    layout = _fitting(layouts, row)
    return None if layout is None else (layout.name, dict(zip(layout.columns, row, strict=True)))


def _by_length(layouts: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[int, tuple[_Layout, ...]]:
    found: dict[int, list[_Layout]] = {}
    for name, columns in layouts:
        found.setdefault(len(columns), []).append(_Layout(name, columns))
    return {n: tuple(v) for n, v in found.items()}


class _CdrColumns(NamedTuple):
    """Where a CDR layout keeps the columns a record is made of (None: the layout has no such column)."""

    form: str
    start: int
    answer: int
    end: int
    duration: int
    billsec: int
    channel: int
    disposition: int
    dst: int
    dstchannel: int
    dcontext: int
    uniqueid: int | None
    linkedid: int | None
    userfield: int | None

    @classmethod
    def of(cls, layout: _Layout, reader_id: str) -> _CdrColumns:
        p = layout.place
        return cls(f"{reader_id}.{layout.name}", p["start"], p["answer"], p["end"], p["duration"], p["billsec"],
                   p["channel"], p["disposition"], p["dst"], p["dstchannel"], p["dcontext"], p.get("uniqueid"),
                   p.get("linkedid"), p.get("userfield"))


_CDR_BY_LENGTH = _by_length(CDR_LAYOUTS)


def _row(text: str) -> list[str] | None:
    try:
        return next(csv.reader((text.lstrip("\ufeff").rstrip("\r\n"),)), None)
    except csv.Error:
        return None


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < 10 * 86400 else None


def _time(text: str) -> str | None:
    """The time text as the parser's record clock reads it (`@epoch` for epoch values), or None."""
    if _DATE.match(text):
        return text
    if _EPOCH.match(text):
        return "@" + text
    return None


def source_of(userfield: str) -> Address | Literal[False] | None:
    """The `src=<ip>:<port>` the dialplan put in the CDR userfield; None when there is none, False
    when it is there but not an address."""
    m = _SRC.search(userfield)
    if m is None:
        return None
    return parse_address(m[1], Shape.OPTPORT) or False


class _Bad:
    """A row that carries a marker but is broken (wrong column count, dates, durations)."""


BAD = _Bad()


class CsvReader(PrefixlessReader):
    """What the CDR and CEL readers share (see formats/README.md for the reader protocol)."""

    def read(self, message: str) -> Parsed | None:
        found = self.record(message)
        return found if isinstance(found, Parsed) else None

    def broken(self, message: str) -> bool:
        """True when a row with this reader's marker is not a valid record (it is skipped and counted)."""
        return self.record(message) is BAD

    def record(self, message: str) -> Parsed | _Bad | None:
        raise NotImplementedError


class CdrReader(CsvReader):
    """Reader row for CDR files (`cdr_csv` Master.csv, `cdr_custom` with the documented mapping)."""

    id = "asterisk.cdr"
    markers = tuple(f'"{d}","' for d in sorted(DISPOSITIONS))

    def __init__(self) -> None:
        self._columns: dict[_Layout, _CdrColumns] = {}

    def record(self, message: str) -> Parsed | _Bad | None:
        row = _row(message)
        layout = _fitting(_CDR_BY_LENGTH, row) if row else None
        if layout is None or row is None:
            return BAD
        c = self._columns.get(layout)
        if c is None:
            c = self._columns[layout] = _CdrColumns.of(layout, self.id)
        start, answer, end = row[c.start], row[c.answer], row[c.end]
        start_time = _time(start) if start else None
        if (start and start_time is None) or (answer and _time(answer) is None):
            return BAD
        ended = _time(end) if end else start_time
        duration, billsec = _seconds(row[c.duration]), _seconds(row[c.billsec])
        if ended is None or duration is None or billsec is None or billsec > duration + 1:
            return BAD
        source = _source(row[c.userfield]) if c.userfield is not None else None
        if source is False:
            return BAD
        channel, disposition = row[c.channel], row[c.disposition]
        service, account = channel_account(channel)
        parsed = Parsed(c.form, K.CALL_END, service, account=account, target=row[c.dst] or None,
                        reason=disposition, time_text=ended, record_time=True)
        if source is not None:
            parsed.ip, parsed.port = source[0], source[1]
            parsed.evidence = Evidence.STRONG if disposition == "ANSWERED" else Evidence.WEAK
        uniqueid = row[c.uniqueid] if c.uniqueid is not None else None
        linkedid = row[c.linkedid] if c.linkedid is not None else None
        parsed.call = Call(
            uniqueid=uniqueid or None, linkedid=linkedid or None, channel=channel or None,
            peer=row[c.dstchannel] or None, context=row[c.dcontext] or None, duration=duration,
            billsec=billsec, disposition=disposition,
        )
        return parsed


_SOURCES: dict[str, Address | Literal[False] | None] = {}


def _source(userfield: str) -> Address | Literal[False] | None:
    """source_of(), remembered: a phone writes the same userfield on every call."""
    found = _SOURCES.get(userfield, BAD)
    if found is BAD:
        if len(_SOURCES) >= 4096:
            _SOURCES.clear()
        found = _SOURCES[userfield] = source_of(userfield)
    return found  # type: ignore[return-value]


# --- CEL ------------------------------------------------------------------------------------------

#: cel_custom.conf.sample's legacy `Master.csv` mapping, with and without its `My Literal` column ...
_CEL_LEGACY = ("eventtype", "eventtime", "cidname", "cidnum", "cidani", "cidrdnis", "ciddnid", "exten", "context",
               "channame", "appname", "appdata", "amaflags", "accountcode", "uniqueid", "linkedid", "peer",
               "userfield", "userdeftype", "extra")
#: ... and its advanced mapping (`fields = EventType,EventEnum,"My Literal",EventTime,...`)
_CEL_ADVANCED = ("eventtype", "eventenum", "literal", "eventtime", "usereventname", "cidname", "cidnum", "exten",
                 "context", "channame", "appname", "appdata", "amaflags", "accountcode", "uniqueid", "userfield",
                 "cidani", "cidrdnis", "ciddnid", "peer", "linkedid", "peeraccount", "extra", "tenantid")
CEL_LAYOUTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cel_custom", _CEL_LEGACY),
    ("cel_custom", (_CEL_LEGACY[0], "literal", *_CEL_LEGACY[1:])),
    ("cel_custom", _CEL_ADVANCED),
)
_CEL_BY_LENGTH = _by_length(CEL_LAYOUTS)

#: CEL event -> kind (only those that tell of a call's start, answer or end)
CEL_KINDS: dict[str, Kind] = {
    "CHAN_START": K.CALL_START,
    "ANSWER": K.CALL_ANSWER,
    "HANGUP": K.CALL_END,
    "LINKEDID_END": K.CALL_END,
}
#: app_dial DIALSTATUS (in the HANGUP event's extra) -> CDR disposition
DIALSTATUS = {"ANSWER": "ANSWERED", "NOANSWER": "NO ANSWER", "CANCEL": "NO ANSWER", "BUSY": "BUSY",
              "CONGESTION": "CONGESTION", "CHANUNAVAIL": "FAILED"}


class CelReader(CsvReader):
    """Reader row for `cel_custom` CSV files."""

    id = "asterisk.cel"
    markers = tuple(f'"{name}","' for name in CEL_KINDS)

    def record(self, message: str) -> Parsed | _Bad | None:
        row = _row(message)
        if not row or row[0] not in CEL_KINDS:
            return None  # the marker was inside another field: not a CEL row at all
        found = _layout(_CEL_BY_LENGTH, row)
        if found is None:
            return BAD
        layout, f = found
        when = _time(f["eventtime"])
        uniqueid, linkedid = f["uniqueid"], f["linkedid"] or f["uniqueid"]
        if when is None or not _UNIQUEID.match(uniqueid) or not _UNIQUEID.match(linkedid):
            return BAD
        parsed = cel_event(f"{self.id}.{layout}", f["eventtype"], uniqueid, linkedid, f["channame"], f["exten"],
                           f["peer"], f["context"], f["extra"], when)
        if parsed is not None:
            parsed.record_time = True
        return parsed


def cel_event(form: str, name: str, uniqueid: str, linkedid: str, channel: str, exten: str, peer: str,
              context: str, extra: str, time_text: str | None) -> Parsed | None:
    """What one CEL event tells of a call, however it was delivered (cel_custom's file, AMI's `CEL` event):
    the caller's `CHAN_START` (with the number it dialled) and `HANGUP` (with app_dial's status), any leg's
    `ANSWER`, the call's `LINKEDID_END`; each filed under the call's linked id."""
    kind = CEL_KINDS.get(name)
    if kind is None:
        return None
    originating = uniqueid == linkedid
    if name in ("CHAN_START", "HANGUP") and not originating:
        return None  # a callee leg: the call is the caller's
    service, account = channel_account(channel)
    parsed = Parsed(form, kind, service, reason=name, time_text=time_text, account=account if originating else None)
    if name == "CHAN_START":
        parsed.target = exten or None
    parsed.call = Call(uniqueid=uniqueid if originating else None, linkedid=linkedid,
                       channel=channel if originating else None, peer=peer or None, context=context or None,
                       disposition=_dialstatus(extra) if name == "HANGUP" else None)
    return parsed


def _dialstatus(extra: str) -> str | None:
    try:
        value = json.loads(extra) if extra.startswith("{") else {}
    except ValueError:
        return None
    status = value.get("dialstatus") if isinstance(value, dict) else None
    return DIALSTATUS.get(status) if isinstance(status, str) else None


# --- the `full` log's verbose lines ---------------------------------------------------------------

#: The dialplan text before and after the channel name holds the dialled number (caller text): the
#: separators must occur once, else the line is forged (an `injection` event naming nobody).
FORMS: tuple[Form, ...] = (
    Form(  # pbx.c: `Executing [%s@%s:%d] %s("%s", "%s") in new stack` (the suffix is gone in 12+)
        "asterisk.dial", "asterisk", Service.DIALPLAN, '] Dial("',
        r"(?:-- )?Executing \[(?P<target>[^\n]*)@(?P<context>[^@\n]*):\d+\] Dial\(\"(?P<channel>[^\"\n]+)\", "
        r"\"(?P<args>[^\n]*)\"\)(?: in new stack)?",
        kind=K.CALL_START, separator='] Dial("', trusted="none",
    ),
    Form(  # app_dial.c: `%s answered %s` (callee, caller)
        "asterisk.dial_answered", "asterisk", Service.DIALPLAN, " answered ",
        r"(?:-- )?(?P<peer>[A-Za-z0-9]+/[^\s\n]+) answered (?P<channel>[A-Za-z0-9]+/[^\s\n]+)",
        kind=K.CALL_ANSWER, files=("app_dial.c",),
    ),
    Form(  # pbx.c: `Spawn extension (%s, %s, %d) exited non-zero on '%s'` (the caller hung up)
        "asterisk.spawn_exited", "asterisk", Service.DIALPLAN, "exited non-zero on '",
        r"(?:== )?Spawn extension \((?P<context>[^,\n]*), (?P<target>[^\n]*), \d+\) exited non-zero on "
        r"'(?P<channel>[^'\n]+)'",
        kind=K.CALL_END, separator="exited non-zero on '", trusted="none",
    ),
    Form(  # the dialplan hangs up
        "asterisk.hangup", "asterisk", Service.DIALPLAN, '] Hangup("',
        r"(?:-- )?Executing \[(?P<target>[^\n]*)@(?P<context>[^@\n]*):\d+\] Hangup\(\"(?P<channel>[^\"\n]+)\", "
        r"\"[^\n]*\"\)(?: in new stack)?",
        kind=K.CALL_END, separator='] Hangup("', trusted="none",
    ),
    Form(  # pbx.c: `Auto fallthrough, channel '%s' status is '%s'`
        "asterisk.auto_fallthrough", "asterisk", Service.DIALPLAN, "Auto fallthrough, channel '",
        r"(?:== )?Auto fallthrough, channel '(?P<channel>[^'\n]+)' status is '(?P<reason>\w+)'",
        kind=K.CALL_END,
    ),
    Form(  # res_pjsip_registrar.c: the contact URI is the phone's own text; the AOR is configuration. The marker is
        # the fixed tail (DEBUG `Qualifying contact '…' on AOR '…'` lines, thousands an hour, have none)
        "pjsip.contact_added", "asterisk", Service.PJSIP, "expiration of ",
        r"(?:-- )?(?P<reason>Added) contact '(?P<contact>[^\n]*)' to AOR '(?P<account>[^'\n]*)' "
        r"with (?:path '[^'\n]*' and )?expiration of \d+ seconds",
        kind=K.REGISTRATION,
    ),
    Form(
        "pjsip.contact_updated", "asterisk", Service.PJSIP, "expiration of ",
        r"(?:-- )?(?P<reason>Updated|Refreshed) contact '(?P<contact>[^\n]*)' (?:to|on) AOR '(?P<account>[^'\n]*)' "
        r"with new expiration of \d+ seconds",
        kind=K.REGISTRATION,
    ),
    Form(
        "pjsip.contact_removed", "asterisk", Service.PJSIP, "' from AOR '",
        r"(?:-- )?(?P<reason>Removed) contact '(?P<contact>[^\n]*)' from AOR '(?P<account>[^'\n]*)' "
        r"due to (?P<why>[\w ]+)",
        kind=K.REGISTRATION,
    ),
)

READERS = (CdrReader(), CelReader())

#: Call-activity lines that match no row above are not security-related: never "unmatched"
QUIET = (r" answered ", r"' (?:to|on|from) AOR '", r"exited non-zero on '", r"\] (?:Dial|Hangup)\(\"",
         r"Auto fallthrough, channel '")
