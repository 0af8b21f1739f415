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
from dataclasses import dataclass, field
from enum import Enum

from sipwatch.event import Event
from sipwatch.formats import READERS, Reader
from sipwatch.formats.form import Parsed
from sipwatch.formats.prefixes import PREFIXES, SYSLOG_HEAD, Prefix, program_server
from sipwatch.timeparse import TimeParser

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Opening literals of records whose caller text may contain line breaks, and the literal that
#: ends them (see reference rule: reassembly is driven by the expected tail, not by prefixes).
OPENERS: dict[str, str] = {
    "to extension '": "rejected because extension not found",
    "Request from '": ") - ",
    "Request '": ") - ",
    "SecurityEvent=": "RemoteAddress=",
}


class Status(Enum):
    EVENTS = "events"  # one or more events
    UNMATCHED = "unmatched"  # looked security-related, but no known format matched
    OPENER = "opener"  # the head of a record whose tail is on a later physical line
    IGNORED = "ignored"  # nothing of interest (e.g. a benign line that shares a marker)


@dataclass(slots=True)
class Result:
    status: Status
    events: list[Event] = field(default_factory=list)
    tail: str | None = None  # for OPENER: the literal that ends the record


@dataclass(slots=True)
class Header:
    server: str | None
    file: str | None
    level: str | None
    time_text: str | None
    message: str


class LineParser:
    def __init__(self, time_parser: TimeParser, readers: Sequence[Reader] = READERS) -> None:
        self.time_parser = time_parser
        self.readers = tuple(readers)
        self.markers: list[str] = sorted({m for r in self.readers for m in r.markers} | set(OPENERS))
        self._by_marker: dict[str, list[Reader]] = {m: [] for m in self.markers}
        for reader in self.readers:
            for marker in reader.markers:
                self._by_marker[marker].append(reader)
        self._prefixless = [r for r in self.readers if r.prefixless]
        self._prefixes: list[Prefix] = list(PREFIXES)
        self.last_time = 0.0

    # -- header --------------------------------------------------------------------------------
    def header(self, text: str) -> Header | None:
        if text.startswith("{"):
            return _json_header(text)
        syslog_time = None
        prog_server = None
        rest = text
        head = SYSLOG_HEAD.match(text)
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
                groups = m.groupdict()
                server = prefix.server
                if prog_server is not None and server in ("kamailio", "opensips"):
                    server = prog_server
                return Header(server, groups.get("file"), groups.get("level"),
                              groups.get("ts") or syslog_time, rest[m.end() :])
        if prog_server is not None:  # e.g. OpenSIPS <= 3.3 LM_GEN lines: no level at all
            return Header(prog_server, None, None, syslog_time, rest)
        return None

    # -- records -------------------------------------------------------------------------------
    def parse(self, text: str, file: str = "", line: int = 0, hints: Iterable[str] = ()) -> Result:
        """Parse one record. `hints` are the markers the prefilter saw in it (optional)."""
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        text = text.rstrip("\r\n")
        header = self.header(text)
        if header is None:
            return self._prefixless_record(text, file, line)
        message = header.message.rstrip("\r")
        parsed = self._read(header, message, hints)
        if parsed is None:
            for opener, tail in OPENERS.items():
                if opener in message and tail not in message:
                    return Result(Status.OPENER, tail=tail)
            return Result(Status.UNMATCHED)
        return Result(Status.EVENTS, [self._event(parsed, header.time_text, file, line, text)])

    def _read(self, header: Header, message: str, hints: Iterable[str]) -> Parsed | None:
        tried: set[str] = set()
        for marker in hints:
            for reader in self._by_marker.get(marker, ()):
                if reader.id not in tried:
                    tried.add(reader.id)
                    parsed = self._try(reader, header, message)
                    if parsed is not None:
                        return parsed
        for reader in self.readers:  # markers the prefilter may not have reported
            if reader.id not in tried and any(m in message for m in reader.markers):
                parsed = self._try(reader, header, message)
                if parsed is not None:
                    return parsed
        return None

    @staticmethod
    def _try(reader: Reader, header: Header, message: str) -> Parsed | None:
        if reader.prefixless:
            return None
        server = reader.server
        if server == "proxy":
            if header.server not in ("kamailio", "opensips"):
                return None
        elif server != header.server:
            return None
        if not reader.allows_file(header.file):
            return None
        parsed = reader.read(message)
        if parsed is not None and server == "proxy" and header.server == "opensips":
            from sipwatch.event import Service

            parsed.service = Service.OPENSIPS
        return parsed

    def _prefixless_record(self, text: str, file: str, line: int) -> Result:
        for reader in self._prefixless:
            if any(m in text for m in reader.markers):
                parsed = reader.read(text)
                if parsed is not None:
                    return Result(Status.EVENTS, [self._event(parsed, None, file, line, text)])
        if text.startswith("' rejected because extension not found"):
            return Result(Status.UNMATCHED)  # an orphan tail: its head was forged or lost
        return Result(Status.IGNORED)

    def _event(self, parsed: Parsed, time_text: str | None, file: str, line: int, raw: str) -> Event:
        when = None
        for candidate in (parsed.time_text, time_text):
            if candidate:
                when = self.time_parser.parse(candidate)
                if when is not None:
                    break
        if when is None:
            when = self.last_time
        else:
            self.last_time = when
        return Event(
            time=when, kind=parsed.kind, service=parsed.service, ip=parsed.ip, port=parsed.port,
            transport=parsed.transport, account=parsed.account, target=parsed.target,
            user_agent=parsed.user_agent, evidence=parsed.evidence, file=file, line=line, raw=raw,
            form=parsed.form, session=parsed.session, reason=parsed.reason, extra=parsed.extra,
        )


def _json_header(text: str) -> Header | None:
    """Asterisk's `[json]` formatter: one object per line, the message JSON-escaped."""
    try:
        record = json.loads(text)
        logmsg = record["logmsg"]
        message = logmsg["message"]
        location = logmsg.get("location") or {}
        if not isinstance(message, str):
            return None
        return Header("asterisk", location.get("filename"), logmsg.get("level"),
                      record.get("timestamp"), message.rstrip("\n"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
