"""Turn one log record (one physical line, or several joined by reassembly) into events.

The record's prefix says which server wrote it, when, and from which source file; the marker hits
say which readers to try; a reader turns the message into a `Parsed`; this module adds the time, the
origin and the raw text and returns `Event`s. Nothing here keeps state across records except the
last-seen time (for lines that carry none) and which prefix matched last (tried first next time).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from enum import Enum

from sipwatch.event import Event, Service
from sipwatch.formats import (
    BENIGN,
    DUMP_MARKERS,
    ORPHAN_MARKERS,
    PROXY_DUMP_MARKERS,
    READERS,
    SUSPICIOUS_MARKERS,
    Reader,
)
from sipwatch.formats.calls import CsvReader
from sipwatch.formats.form import Parsed
from sipwatch.formats.prefixes import ANY_FILE, FAST_PREFIXES, PREFIXES, SYSLOG_HEAD, Prefix, program_server
from sipwatch.timeparse import TimeParser

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VERBOSE_LEAD = frozenset(" -=>")
_VERBOSE_MARK = re.compile(r"^ *(?:--|==|>) +")

#: Opening literals of records whose caller text may contain line breaks, and the literal that ends
#: them, from the readers' rows (reassembly is driven by the expected tail, not by prefixes).
OPENERS: dict[str, str] = {
    opener: reader.multiline for reader in READERS if reader.multiline for opener in reader.openers
}


class Status(Enum):
    UNMATCHED = "unmatched"  # looked security-related, but no known format matched
    OPENER = "opener"  # the head of a record whose tail is on a later physical line
    IGNORED = "ignored"  # nothing of interest (e.g. a benign line that shares a marker)
    BAD = "bad"  # a CDR/CEL row that is broken (column count, dates): skipped and counted


#: server, source file, time text, message
Header = tuple[str | None, str | None, str | None, str]


def _file_pattern(files: tuple[str, ...]) -> str:
    """The prefix's file field that `Form.allows_file` allows, as a regex: any file, or the named source files
    (in any directory), or a dialplan `Ext. <exten>` (the exten is caller text up to the colon)."""
    if not files:
        return ANY_FILE
    named = "|".join(re.escape(f) for f in files if f != "Ext.")
    shapes = [r"(?:[\w.-]+/)?(?:" + named + ")"] if named else []
    if "Ext." in files:
        shapes.append(r"Ext\. [^:]*")
    return "|".join(shapes)


class LineParser:
    def __init__(self, time_parser: TimeParser, readers: Sequence[Reader] = READERS) -> None:
        self.time_parser = time_parser
        self.readers = tuple(readers)
        self.markers: list[str] = sorted(
            {m for r in self.readers for m in r.markers} | set(OPENERS) | set(SUSPICIOUS_MARKERS)
            | set(DUMP_MARKERS) | set(PROXY_DUMP_MARKERS) | set(ORPHAN_MARKERS))
        by_marker: dict[str, list[Reader]] = {m: [] for m in self.markers}
        for reader in self.readers:
            for marker in reader.markers:
                by_marker[marker].append(reader)
        #: marker index (as the prefilter reports it) -> readers to try
        self.by_index: list[tuple[Reader, ...]] = [tuple(by_marker[m]) for m in self.markers]
        self._prefixless = [r for r in self.readers if r.prefixless and not getattr(r, "origin", None)]
        #: readers of lines that only one kind of source writes (the AMI source's JSON lines), by its name
        self._by_origin = [(str(r.origin), r) for r in self.readers if getattr(r, "origin", None)]  # type: ignore[attr-defined]
        self._file_ok: dict[tuple[str, str | None], bool] = {}
        self._prefixes: list[Prefix] = list(PREFIXES)
        #: every fast lane's regex and reader, numbered (the native engine compiles them in this order)
        self.lanes: list[tuple[str, Reader]] = []
        self._fast = self._fast_lane()
        self.last_time = 0.0
        self.pending_tail: str | None = None  # set when parse() returns Status.OPENER
        self.hints_complete = False  # True when the prefilter reports every marker occurrence
        self.seen_prefix = False  # a prefixed line was read: unprefixed lines are continuations
        #: the file is CSV rows (CDR, CEL: it starts with a quoted field): any other line is caller text that a
        #: line break in a field carried out of its row, never a log line of its own (see records.open_rows)
        self.rows_only = False

    def _fast_lane(self) -> list[tuple[tuple[re.Pattern[str] | str, Reader, int], ...]]:
        """Per marker index: (prefix + message regex, reader, lane number) for the common prefixes. Each regex
        is compiled when a line first needs it (`_compiled`): with the native engine most never are."""
        compiled: dict[str, list[tuple[re.Pattern[str] | str, Reader, int]]] = {}
        for reader in self.readers:
            pattern = reader.fast_pattern
            if pattern is None:
                continue
            files = _file_pattern(reader.files)
            for _, server, template in FAST_PREFIXES:
                if server != reader.server or not files:
                    continue
                regex = template.replace("{file}", files) + "(?:" + pattern + r")\s*$"
                compiled.setdefault(reader.id, []).append((regex, reader, len(self.lanes)))
                self.lanes.append((regex, reader))
        return [tuple(pair for r in readers for pair in compiled.get(r.id, ())) for readers in self.by_index]

    def _compiled(self, index: int, k: int) -> re.Pattern[str]:
        """Lane `k` of marker `index`, compiled now and kept compiled."""
        lane = self._fast[index]
        pattern, reader, number = lane[k]
        regex = re.compile(pattern, re.DOTALL)
        self._fast[index] = (*lane[:k], (regex, reader, number), *lane[k + 1 :])
        return regex

    # -- header --------------------------------------------------------------------------------
    def header(self, text: str) -> Header | None:
        if text.startswith("{"):
            return _json_header(text)
        syslog_time = None
        prog_server = None
        rest = text
        head = None if text.startswith("[") else SYSLOG_HEAD.match(text)
        if head is not None:
            syslog_time = head["sts"]
            prog_server = program_server(head["prog"])
            rest = text[head.end() :]
        prefixes = self._prefixes
        for i, prefix in enumerate(prefixes):
            m = prefix.regex.match(rest)
            if m is not None:
                if i:
                    prefixes.insert(0, prefixes.pop(i))
                server = prefix.server
                if prog_server is not None and server in ("kamailio", "opensips"):
                    server = prog_server
                ts = m["ts"] if prefix.has_ts else None
                return server, m["file"] if prefix.has_file else None, ts or syslog_time, rest[m.end() :]
        if prog_server is not None:  # e.g. OpenSIPS <= 3.3 LM_GEN lines: no level at all
            return prog_server, None, syslog_time, rest
        return None

    # -- records -------------------------------------------------------------------------------
    def parse(self, text: str, file: str = "", line: int = 0, hints: Iterable[int] = (),
              fast_lane: bool = True) -> Event | Status:
        """Parse one record into an event, or say why not. `hints` are the indexes in `markers` of
        the markers the prefilter saw in it (optional: without them every reader is considered).
        `fast_lane=False`: the caller has tried the fast lanes already (the native engine)."""
        if text[:1] == "\ufeff":  # a byte-order mark (a file saved by a Windows editor) before the first line
            text = text[1:]
        if self.rows_only and text[:1] != '"':
            return Status.IGNORED
        if text[:1] == '"' and "\x1b" not in text:  # a CSV row (CDR, CEL): no prefix starts with a quote
            return self._prefixless_record(text.rstrip("\r\n"), file, line)
        if hints:  # one per marker found: a forged record may repeat a marker thousands of times
            hints = dict.fromkeys(hints)
        if hints and fast_lane:
            fast = self._fast
            for index in hints:
                lane = fast[index] if index < len(fast) else ()
                for k, (regex, reader, _) in enumerate(lane):
                    if isinstance(regex, str):
                        regex = self._compiled(index, k)
                        lane = fast[index]
                    m = regex.match(text)
                    if m is not None:
                        parsed = reader.build(m, text[m.start("msg") :])
                        if parsed is not None:
                            if k:  # the shape that matched is tried first next time
                                fast[index] = (lane[k], *lane[:k], *lane[k + 1 :])
                            self.seen_prefix = True
                            ts = m["ts"] or (m["sts"] if "sts" in regex.groupindex else None)
                            return self._event(parsed, ts, file, line, text)
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        text = text.rstrip("\r\n")
        header = self.header(text)
        if header is None:
            return self._prefixless_record(text, file, line)
        self.seen_prefix = True
        message = header[3].rstrip("\r")
        if message[:1] in _VERBOSE_LEAD:  # 1.8-13 keep the console's `    -- ` / `  == ` in VERBOSE lines
            message = _VERBOSE_MARK.sub("", message, count=1)
        parsed = self._read(header, message, hints)
        if parsed is None:
            for opener, tail in OPENERS.items():
                if opener in message and tail not in message:
                    self.pending_tail = tail
                    return Status.OPENER
            return Status.IGNORED if BENIGN.search(message) else Status.UNMATCHED
        return self._event(parsed, header[2], file, line, text)

    def _read(self, header: Header, message: str, hints: Iterable[int]) -> Parsed | None:
        tried: list[Reader] = []
        by_index = self.by_index
        for index in hints:
            if index < len(by_index):
                for reader in by_index[index]:
                    if reader not in tried:
                        parsed = self._try(reader, header, message)
                        if parsed is not None:
                            return parsed
                        tried.append(reader)
        if tried and self.hints_complete:
            return None
        for reader in self.readers:  # markers the prefilter may not have reported
            if reader not in tried and any(m in message for m in reader.markers):
                parsed = self._try(reader, header, message)
                if parsed is not None:
                    return parsed
        return None

    def _try(self, reader: Reader, header: Header, message: str) -> Parsed | None:
        server = reader.server
        if reader.prefixless:
            return None
        if server == "proxy":
            if header[0] not in ("kamailio", "opensips"):
                return None
        elif server != header[0]:
            return None
        key = (reader.id, header[1])
        ok = self._file_ok.get(key)
        if ok is None:
            ok = self._file_ok[key] = reader.allows_file(header[1])
            if len(self._file_ok) > 10_000:
                self._file_ok.clear()
        if not ok:
            return None
        parsed = reader.read(message)
        if parsed is not None and server == "proxy" and header[0] == "opensips":
            parsed = replace(parsed, service=Service.OPENSIPS)  # readers' results are shared: copy
        return parsed

    def _prefixless_record(self, text: str, file: str, line: int) -> Event | Status:
        """Lines without a prefix: only files that have none (mod_fail2ban's own file) may hold
        events; in a prefixed log they are continuation lines, i.e. caller text."""
        for origin, reader in self._by_origin:
            if file.startswith(origin) and any(m in text for m in reader.markers):
                parsed = reader.read(text)
                if parsed is not None:
                    return self._event(parsed, None, file, line, text)
        if self.seen_prefix:
            return Status.IGNORED
        broken = False
        for reader in self._prefixless:
            if any(m in text for m in reader.markers):
                parsed = reader.read(text)
                if parsed is not None:
                    return self._event(parsed, None, file, line, text)
                broken = broken or (isinstance(reader, CsvReader) and reader.broken(text))
        if broken:
            return Status.BAD
        if text.startswith("' rejected because extension not found"):
            return Status.UNMATCHED  # an orphan tail: its head was forged or lost
        return Status.IGNORED

    def _event(self, parsed: Parsed, time_text: str | None, file: str, line: int, raw: str) -> Event:
        when = None
        parse_time = self.time_parser.parse
        if parsed.time_text:
            when = (self.time_parser.parse_record if parsed.record_time else parse_time)(parsed.time_text)
        if when is None and time_text:
            when = parse_time(time_text)
        if when is None:
            when = self.last_time
        else:
            self.last_time = when
        return Event(
            when, parsed.kind, parsed.service, parsed.ip, parsed.port, parsed.transport, parsed.account,
            parsed.target, parsed.user_agent, parsed.evidence, file, line, raw, parsed.form, parsed.session,
            parsed.reason, parsed.extra, call=parsed.call,
        )


def _json_header(text: str) -> Header | None:
    """Asterisk's `[json]` formatter (one object per line, the message JSON-escaped), or a journald
    export (`journalctl -o json`): its MESSAGE is the line the server wrote, prefix and all."""
    try:
        record = json.loads(text)
        if "MESSAGE" in record and isinstance(record["MESSAGE"], str):
            return _journal_header(record)
        logmsg = record["logmsg"]
        message = logmsg["message"]
        location = logmsg.get("location") or {}
        if not isinstance(message, str):
            return None
        return "asterisk", location.get("filename"), record.get("timestamp"), message.rstrip("\n")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


_JOURNAL_PARSER: list[LineParser] = []


def _journal_header(record: dict[str, object]) -> Header | None:
    if not _JOURNAL_PARSER:
        _JOURNAL_PARSER.append(LineParser(TimeParser(2000)))
    message = str(record["MESSAGE"])
    inner = _JOURNAL_PARSER[0].header(message)
    stamp = record.get("__REALTIME_TIMESTAMP")
    when = f"@{int(str(stamp)) / 1_000_000:.6f}" if str(stamp).isdigit() else None
    if inner is None:
        ident = str(record.get("SYSLOG_IDENTIFIER") or record.get("_COMM") or "")
        server = program_server(ident)
        return (server, None, when, message) if server else None
    server, file, ts, rest = inner
    return server, file, when or ts, rest
