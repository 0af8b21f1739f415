"""From byte buffers to events: candidate lines, reassembly of split records, packet dumps.

`RecordScanner.feed()` takes a buffer that ends on a line boundary (or is the last one) and returns
the events in it and how many bytes it consumed; what it did not consume (a record whose tail is
still to come) is handed back by the source with the next buffer. The same scanner serves a scan of
a 10 GB file (4 MiB buffers) and a live tail (one line at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sipwatch.event import Event, Evidence, Kind, Service
from sipwatch.fingerprints import scanner_name
from sipwatch.formats import DUMP_MARKERS
from sipwatch.formats.parser import LineParser, Status
from sipwatch.formats.prefilter import Prefilter
from sipwatch.netaddr import Shape, parse_address

MAX_RECORD = 8192  # bytes; longer "lines" are junk (and would make regexes slow)
MAX_JOIN_LINES = 64  # physical lines a split record may span
MAX_DUMP = 65536  # bytes of one SIP packet dump

_DUMP_HEAD = re.compile(
    r"<--- (?:SIP read from (?P<t1>\w+):(?P<a1>\S+) --->"
    r"|Received SIP (?P<what>request|response) \((?P<size>\d+) bytes\) from (?P<t2>\w+):(?P<a2>\S+) --->)"
)
_USER_AGENT = re.compile(r"^(?:User-Agent|user-agent|USER-AGENT):[ \t]*(.*?)\r?$", re.MULTILINE)
_DUMP_END = b"\n<------------->"


@dataclass(slots=True)
class ScanStats:
    lines: int = 0
    candidates: int = 0
    events: int = 0
    unmatched: int = 0
    junk: int = 0
    unmatched_samples: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, other: ScanStats) -> None:
        self.lines += other.lines
        self.candidates += other.candidates
        self.events += other.events
        self.unmatched += other.unmatched
        self.junk += other.junk
        room = 50 - len(self.unmatched_samples)
        self.unmatched_samples.extend(other.unmatched_samples[:room])


class RecordScanner:
    def __init__(self, parser: LineParser, prefilter: Prefilter, file: str, stats: ScanStats) -> None:
        self.parser = parser
        self.prefilter = prefilter
        self.file = file
        self.stats = stats
        self.line_base = 0  # physical lines before the next buffer
        self.spill_line = 0  # after feed(limit=...): last line of a record that crossed the limit
        self._dump_ids = {i for i, m in enumerate(prefilter.markers) if m in DUMP_MARKERS}
        parser.hints_complete = prefilter.engine == "hyperscan"

    def feed(self, buf: bytes, final: bool, limit: int | None = None) -> tuple[list[Event], int]:
        """Parse `buf`. With `limit`, only records that start before it are read, and the bytes after
        it are lookahead for a record that crosses it (`spill_line` then names its last line)."""
        events: list[Event] = []
        self.spill_line = 0
        hits = self.prefilter.hits(buf)
        count = buf.count
        size = len(buf)
        counted_pos, counted_lines = 0, 0  # newlines in buf[:counted_pos]
        skip_until = 0
        i, n = 0, len(hits)
        parse = self.parser.parse
        file = self.file
        append = events.append
        while i < n:
            end, ident = hits[i]
            start = buf.rfind(b"\n", 0, end) + 1
            stop = buf.find(b"\n", end)
            if stop < 0:
                stop = size
            ids = [ident]
            i += 1
            while i < n and hits[i][0] <= stop:
                ids.append(hits[i][1])
                i += 1
            if start < skip_until:
                continue
            if limit is not None and start >= limit:
                break
            counted_lines += count(b"\n", counted_pos, start)
            counted_pos = start
            line_no = self.line_base + counted_lines + 1
            self.stats.candidates += 1
            if self._dump_ids.intersection(ids):
                skip_until = self._dump(buf, start, stop, line_no, events)
                continue
            if stop - start > MAX_RECORD:
                self.stats.junk += 1
                continue
            text = buf[start:stop].decode("utf-8", "replace")
            result = parse(text, file, line_no, ids)
            if result.__class__ is Event:
                append(result)
                continue
            if result is Status.OPENER and self.parser.pending_tail is not None:
                record_end = self._find_tail(buf, stop, self.parser.pending_tail)
                if record_end is None and not final and size - start < MAX_RECORD * 4:
                    self.line_base += counted_lines
                    self.stats.events += len(events)
                    return events, start  # wait for the rest of the record
                if record_end is not None:
                    text = buf[start:record_end].decode("utf-8", "replace")
                    result = parse(text, file, line_no, ids)
                    skip_until = record_end
                    if isinstance(result, Event):
                        append(result)
                        continue
            self._unmatched(result, text, line_no)
        consumed = size if limit is None else limit
        self.stats.events += len(events)
        if skip_until > consumed:
            self.spill_line = self.line_base + counted_lines + count(b"\n", counted_pos, skip_until - 1) + 1
        self.line_base += counted_lines + count(b"\n", counted_pos, consumed)
        if final and consumed and not buf[:consumed].endswith(b"\n"):
            self.line_base += 1
        return events, consumed

    def _unmatched(self, result: Event | Status, text: str, line_no: int) -> None:
        if result is Status.IGNORED or isinstance(result, Event):
            return
        if "\ufffd" in text or "\x00" in text:
            self.stats.junk += 1
            return
        self.stats.unmatched += 1
        if len(self.stats.unmatched_samples) < 50:
            self.stats.unmatched_samples.append((self.file, line_no, text[:300]))

    @staticmethod
    def _find_tail(buf: bytes, stop: int, tail: str) -> int | None:
        """End of the physical line holding `tail`, within the reassembly bounds."""
        limit = min(len(buf), stop + MAX_RECORD)
        pos = buf.find(tail.encode(), stop, limit)
        if pos < 0:
            return None
        if buf.count(b"\n", stop, pos) > MAX_JOIN_LINES:
            return None
        end = buf.find(b"\n", pos)
        return len(buf) if end < 0 else end

    def _dump(self, buf: bytes, start: int, stop: int, line_no: int, events: list[Event]) -> int:
        """A SIP packet dump: skip its caller-written lines; report a scanner's User-Agent."""
        head_text = buf[start:stop].decode("utf-8", "replace")
        m = _DUMP_HEAD.search(head_text)
        if m is None:
            return stop
        if m["size"] is not None:
            end = min(len(buf), stop + 1 + int(m["size"]))
            nl = buf.find(b"\n", end)
            end = len(buf) if nl < 0 else nl
        else:
            nl = buf.find(_DUMP_END, stop, stop + MAX_DUMP)
            end = min(len(buf), stop + MAX_DUMP) if nl < 0 else nl + len(_DUMP_END)
        body = buf[stop + 1 : end].decode("utf-8", "replace")
        first = body.lstrip("\r\n").split("\n", 1)[0]
        if m["what"] == "response" or first.startswith("SIP/2.0"):
            return end
        ua = _USER_AGENT.search(body)
        tool = scanner_name(ua[1]) if ua else None
        if tool is None:
            return end
        transport = (m["t1"] or m["t2"] or "").upper() or None
        address = parse_address(m["a1"] or m["a2"] or "", Shape.OPTPORT)
        if address is None:
            return end
        ip, port, _ = address
        when = self.parser.time_parser.parse(head_text[1:head_text.find("]")]) if head_text.startswith("[") else None
        evidence = Evidence.STRONG if transport in ("TCP", "TLS", "WS", "WSS") else Evidence.WEAK
        event = Event(
            time=when if when is not None else self.parser.last_time, kind=Kind.SCANNER, service=Service.SIP,
            ip=ip, port=port, transport=transport, user_agent=ua[1] if ua else None, evidence=evidence,
            file=self.file, line=line_no, raw=head_text, form="asterisk.sip_dump", reason=tool,
        )
        events.append(event)
        return end
