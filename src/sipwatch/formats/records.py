"""From byte buffers to events: candidate lines, reassembly of split records, packet dumps.

A file is read as a sequence of chunks (`chunks()`): each is one buffer of whole lines plus some
lookahead from the following ones. `RecordScanner.feed()` reads the records that *start* in the buffer
and may read on into the lookahead when a record crosses the end (an attacker's line break inside a
dialled number, a SIP packet dump); `spill_line` then names the last line it swallowed, and the
driver drops the next chunk's events up to that line. The sequential reader and the parallel one
(`sipwatch.parallel`) run exactly this protocol, so they give the same events.

Caller text that spans physical lines is handled three ways:
* a record whose head lacks its tail (`OPENER`) runs to the *last* unprefixed line holding the tail
  within the window, so a forged continuation in between cannot end it early;
* an orphan tail (`' rejected because…` or `",SessionID="…` at the start of a line) proves that the
  lines since the record it belongs to were written by the caller: their events are withdrawn and
  that record becomes an `injection`;
* packet dumps (`<--- SIP read from …`, `<--- Received SIP request (N bytes) …`, Kamailio/OpenSIPS
  `message=<…>`) are skipped whole; a scanner's User-Agent inside a request is reported.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipwatch.event import Event, Evidence, Kind, Service
from sipwatch.fingerprints import scanner_name
from sipwatch.formats import DUMP_MARKERS, ORPHAN_MARKERS, PROXY_DUMP_MARKERS, native
from sipwatch.formats.journal import is_export, text_buffer
from sipwatch.formats.parser import LineParser, Status
from sipwatch.formats.prefilter import Prefilter
from sipwatch.formats.wire import Item, item_event, item_form, item_line
from sipwatch.netaddr import Shape, parse_address

MAX_RECORD = 65536  # bytes; longer "lines" are junk. A record as long as a SIP packet is still read: a caller
#                    must not hide a failure by padding its user name (the regexes stay linear: ~1 ms for 60 KB)
MAX_JOIN_LINES = 64  # physical lines a split record or a proxy dump may span
MAX_DUMP = 65536  # bytes of one SIP packet dump
LOOKAHEAD = MAX_DUMP + 2 * MAX_RECORD  # bytes of the following buffers handed along with each one

def open_rows(buf: bytes) -> list[tuple[int, int]]:
    """(start, end) of the CSV rows in `buf` that run over several physical lines: cdr_csv writes a field
    as it is, line breaks included, and a caller's number or dialled text can hold one (`%0A`). A row whose
    first line does not balance its quotes goes on to the next line that does not either (the lines between,
    caller text, hold only doubled quotes). Read as one record, its lines cannot pass for rows or log lines
    of their own. Only a buffer that starts with a CSV row is looked at."""
    if buf[:1] != b'"':
        return []
    found = native.open_rows(buf, MAX_JOIN_LINES)
    if found is not None:
        return found
    spans: list[tuple[int, int]] = []
    pos, size = 0, len(buf)
    while pos < size:
        end = buf.find(b"\n", pos)
        end = size if end < 0 else end
        if buf[pos : pos + 1] == b'"' and buf.count(b'"', pos, end) % 2:
            line_end = end
            for _ in range(MAX_JOIN_LINES):
                if line_end >= size:
                    break
                following = buf.find(b"\n", line_end + 1)
                following = size if following < 0 else following
                if buf.count(b'"', line_end + 1, following) % 2:
                    spans.append((pos, following))
                    end = following
                    break
                line_end = following
        pos = end + 1
    return spans


_DUMP_HEAD = re.compile(
    r"<--- (?:SIP read from (?P<t1>\w+):(?P<a1>\S+) --->"
    r"|Received SIP (?P<what>request|response) \((?P<size>\d+) bytes\) from (?P<t2>\w+):(?P<a2>\S+) --->)\s*$"
)
_USER_AGENT = re.compile(r"^(?:User-Agent|user-agent|USER-AGENT):[ \t]*(.*?)\r?$", re.MULTILINE)
_DUMP_END = b"\n<------------->"
_PROXY_DUMP = re.compile(r"(?:ERROR: )?(?:parse_msg: )?message=<")
#: forms whose caller text may carry line breaks; an orphan tail belongs to the last of them
_SPLITTABLE = frozenset({
    "chan_sip.call_rejected", "chan_sip.call_rejected_noaddr", "pjsip.call_rejected", "pjsip.request_failed",
    "asterisk.security",
})


@dataclass(slots=True)
class ScanStats:
    """What reading a file counted: lines, candidates, events, what matched no form."""

    lines: int = 0
    candidates: int = 0
    events: int = 0
    unmatched: int = 0
    junk: int = 0
    bad: int = 0  # CDR/CEL rows of a known format that are broken: skipped
    unmatched_samples: list[tuple[str, int, str]] = field(default_factory=list)
    bad_samples: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, other: ScanStats) -> None:
        self.lines += other.lines
        self.candidates += other.candidates
        self.events += other.events
        self.unmatched += other.unmatched
        self.junk += other.junk
        self.bad += other.bad
        room = 50 - len(self.unmatched_samples)
        self.unmatched_samples.extend(other.unmatched_samples[:room])
        self.bad_samples.extend(other.bad_samples[: 50 - len(self.bad_samples)])


def chunks(buffers: Iterator[bytes], lookahead: int = LOOKAHEAD) -> Iterator[tuple[bytes, int]]:
    """(data, limit) pairs: data[:limit] is one buffer, data[limit:] the lookahead into the next ones."""
    window: list[bytes] = []
    ahead = 0
    failure: Exception | None = None
    try:
        for buf in buffers:
            window.append(buf)
            ahead += len(buf)
            while len(window) > 1 and ahead - len(window[0]) >= lookahead:
                yield _chunk(window, lookahead)
                ahead -= len(window.pop(0))
    except Exception as exc:  # the source failed (a truncated archive): what was read is still parsed first
        failure = exc
    while window:  # (a reader that stops early, e.g. `| head`, closes the generator: nothing runs here then)
        yield _chunk(window, lookahead)
        window.pop(0)
    if failure is not None:
        raise failure


def _chunk(window: list[bytes], lookahead: int) -> tuple[bytes, int]:
    head = window[0]
    rest = b"".join(window[1:])[:lookahead]
    cut = rest.rfind(b"\n") + 1 if len(rest) == lookahead else len(rest)
    return head + rest[:cut], len(head)


class RecordScanner:
    def __init__(self, parser: LineParser, prefilter: Prefilter, file: str, stats: ScanStats,
                 native_lane: bool = False) -> None:
        self.parser = parser
        self.prefilter = prefilter
        self.file = file
        self.stats = stats
        self.line_base = 0  # physical lines before the next chunk
        self.spill_line = 0  # after feed(): last line of a record that crossed the limit
        markers = prefilter.markers
        self._dump_ids = {i for i, m in enumerate(markers) if m in DUMP_MARKERS}
        self._proxy_dump_ids = {i for i, m in enumerate(markers) if m in PROXY_DUMP_MARKERS}
        self._orphan_ids = {i for i, m in enumerate(markers) if m in ORPHAN_MARKERS}
        self._special = self._dump_ids | self._proxy_dump_ids | self._orphan_ids
        parser.hints_complete = prefilter.engine == "hyperscan"
        # a file of CSV rows keeps the C record loop without its lanes: the rows are read in Python anyway (the
        # fast lane hands them over), and no line of it may be read as a log line (parser.rows_only)
        self.native = native.engine([] if parser.rows_only else parser.lanes) if native_lane else None
        #: with the native engine, the prefilter's markers found in C too (None: Prefilter.hits() finds them)
        self._markers = native.markers(markers) if self.native is not None and prefilter.engine == "hyperscan" else None
        #: CDR rows read in C (`_rows.h`) in a file of CSV rows
        self._rows = native.rows(parser, prefilter.engine == "hyperscan", file) if (
            self.native is not None and parser.rows_only) else None

    def feed(self, buf: bytes, limit: int | None = None) -> list[Item]:
        """Events of the records that start in buf[:limit] (all of buf when limit is None). The
        lookahead is read like the rest, so that a record or an orphan tail crossing the limit is
        judged exactly as it will be by the next chunk; its events are then dropped. With the native
        engine, the events of the fast lane come as wire tuples (see `formats/wire.py`), the others
        as `Event`s, in file order."""
        items: list[Item] = []
        self._read(buf, limit, items, None)
        return items

    def pack(self, buf: bytes, limit: int | None, packer: Any) -> int:
        """`feed()` into a `_drain.Packer` (made with `to_wire` to convert): the native engine hands each
        record over the moment it has made it (see `_drain.c`); returns the number of events."""
        return self._read(buf, limit, [], packer)

    def _read(self, buf: bytes, limit: int | None, items: list[Item], packer: Any) -> int:
        if limit is None:
            limit = len(buf)
        if is_export(buf):  # a journald export: arrays of bytes become text first (see journal.py)
            buf, limit = text_buffer(buf, limit)
        spans = open_rows(buf)
        newlines = -1
        if spans:  # rare (a line break in a CSV field): the Python loop reads them as one record each
            items[:], spill_end = self._feed(buf, limit, self.prefilter.hits(buf), spans)
        elif self.native is not None:
            if self.parser.rows_only and limit < len(buf):
                buf = buf[:limit]  # its rows are one line each (no open_rows): none runs on past the limit
            hits = self._markers if self._markers is not None else self.prefilter.hits(buf)
            rows = None if self.parser.seen_prefix else self._rows
            items[:], spill_end, candidates, newlines = self.native.feed(
                self, buf, limit, hits, self.line_base, self._orphan_ids, self._special, MAX_RECORD, rows,
                packer.add if packer is not None else None)
            self.stats.candidates += candidates
        else:
            items[:], spill_end = self._feed(buf, limit, self.prefilter.hits(buf))
        if newlines < 0:  # (the C loop counts them on its way: no second pass over the buffer)
            newlines = native.count_lines(buf, 0, limit)
        lines_to_limit = newlines
        if limit and buf[limit - 1 : limit] != b"\n":
            lines_to_limit += 1  # the file's last line has no newline
        self.spill_line = self.line_base + native.count_lines(buf, 0, spill_end - 1) + 1 if spill_end else 0
        self.line_base += lines_to_limit
        last = self.line_base
        if packer is None:
            while items and item_line(items[-1]) > last:  # in file order: those read in the lookahead are last
                items.pop()
            count = len(items)
        else:
            packer.add_all(items)  # (what a Python loop read; the native engine has handed its records over)
            count = packer.trim(last)
        self.stats.events += count
        return count

    def events(self, buf: bytes, limit: int | None = None) -> list[Event]:
        """`feed()` as `Event`s (those built in C carry no raw text)."""
        file = self.file
        return [item_event(item, file) for item in self.feed(buf, limit)]

    def _feed(self, buf: bytes, limit: int, hits: list[tuple[int, int]],
              spans: Sequence[tuple[int, int]] = ()) -> tuple[list[Item], int]:
        """The record loop in Python (what `_fastlane.c` does in C): group the marker hits by physical
        line, number the lines, and read each record that is not swallowed by an earlier one. A hit
        inside one of `spans` (`open_rows`) reads the whole span, once."""
        items: list[Item] = []
        count = buf.count
        size = len(buf)
        counted_pos, counted_lines = 0, 0  # newlines in buf[:counted_pos]
        skip_until = 0
        spill_end = 0  # end of a record that starts before the limit and ends after it
        i, n = 0, len(hits)
        orphans = self._orphan_ids
        record = self._record
        while i < n:
            end, ident = hits[i]
            start = buf.rfind(b"\n", 0, end - 1 if ident in orphans else end) + 1
            stop = buf.find(b"\n", end)
            if stop < 0:
                stop = size
            span = _within(spans, start) if spans else None
            if span is not None:
                start, stop = span
            ids = [ident]
            i += 1
            while i < n and hits[i][0] <= stop:
                ids.append(hits[i][1])
                i += 1
            if start < skip_until:
                continue
            counted_lines += count(b"\n", counted_pos, start)
            counted_pos = start
            skip, spill = record(buf, start, stop, ids, self.line_base + counted_lines + 1, limit, items, False)
            skip_until = stop if span is not None else skip or skip_until
            spill_end = spill or spill_end
        return items, spill_end

    def _record(self, buf: bytes, start: int, stop: int, ids: list[int], line_no: int, limit: int,
                items: list[Item], tried: bool) -> tuple[int, int]:
        """Read the record at buf[start:stop] (its marker ids `ids`) into `items`; returns where the
        records it swallowed end (`skip_until`) and, when it crosses `limit`, where it ends (0: neither).
        `tried`: the native engine has tried the fast lanes on it already."""
        stats = self.stats
        inside = start < limit
        record_end = stop
        special = self._special
        if special.intersection(ids):
            if self._orphan_ids.intersection(ids):
                return self._orphan(buf, start, stop, line_no, items), 0
            dump_end = None
            if self._dump_ids.intersection(ids):
                dump_end = self._dump(buf, start, stop, line_no, items)
            if dump_end is None and self._proxy_dump_ids.intersection(ids):
                dump_end = self._proxy_dump(buf, start, stop)
            if dump_end is not None:
                stats.candidates += inside
                return dump_end, dump_end if inside and dump_end > limit else 0
        stats.candidates += inside
        if stop - start > MAX_RECORD:
            stats.junk += inside
            return 0, 0
        text = buf[start:stop].decode("utf-8", "replace")
        parse = self.parser.parse
        result = parse(text, self.file, line_no, ids, not tried)
        skip = 0
        if result.__class__ is not Event and result is Status.OPENER and self.parser.pending_tail is not None:
            tail_end = self._find_tail(buf, stop, self.parser.pending_tail)
            if tail_end is not None:
                record_end = skip = tail_end
                text = buf[start:tail_end].decode("utf-8", "replace")
                result = parse(text, self.file, line_no, ids)
        if isinstance(result, Event):
            items.append(result)
            return skip, record_end if inside and record_end > limit else 0
        if inside:
            self._unmatched(result, text, line_no)
        return skip, 0

    def _unmatched(self, result: Event | Status, text: str, line_no: int) -> None:
        if result is Status.IGNORED or isinstance(result, Event):
            return
        if result is Status.BAD:
            self.stats.bad += 1
            if len(self.stats.bad_samples) < 50:
                self.stats.bad_samples.append((self.file, line_no, text[:300]))
            return
        if "\ufffd" in text or "\x00" in text:
            self.stats.junk += 1
            return
        self.stats.unmatched += 1
        if len(self.stats.unmatched_samples) < 50:
            self.stats.unmatched_samples.append((self.file, line_no, text[:300]))

    def _find_tail(self, buf: bytes, stop: int, tail: str) -> int | None:
        """End of the first unprefixed line holding `tail` within the reassembly window. (A forged
        prefixed line holding the tail is part of the record; a forged unprefixed one ends it early,
        but then the real tail turns up later as an orphan, and `_orphan` withdraws the record.)"""
        window_end = min(len(buf), stop + MAX_RECORD)
        needle = tail.encode()
        pos = buf.find(needle, stop, window_end)
        while pos >= 0:
            line_start = buf.rfind(b"\n", 0, pos) + 1
            if buf.count(b"\n", stop, line_start) > MAX_JOIN_LINES:
                return None
            line_end = buf.find(b"\n", pos)
            line_end = len(buf) if line_end < 0 else line_end
            if self.parser.header(buf[line_start:line_end].decode("utf-8", "replace")) is None:
                return line_end
            pos = buf.find(needle, line_end, window_end)
        return None

    def _orphan(self, buf: bytes, start: int, stop: int, line_no: int, events: list[Item]) -> int:
        """An orphan tail at `line_no` proves that caller text held line breaks: the lines since the
        record it ends are forged. Which record that is cannot be proved (a forged line may look like
        one), so every event from the latest splittable record on is withdrawn and an `injection`
        event naming nobody is raised."""
        first = line_no - MAX_JOIN_LINES
        for event in reversed(events):
            if item_line(event) < first:
                break
            if item_form(event) in _SPLITTABLE:
                first = item_line(event)
                break
        events[:] = [e for e in events if not first <= item_line(e) < line_no]
        text = buf[start:stop].decode("utf-8", "replace")
        events.append(Event(
            time=self.parser.last_time, kind=Kind.INJECTION, service=Service.SIP, file=self.file, line=line_no,
            raw=text, form="orphan_tail", evidence=Evidence.WEAK,
            reason="a record's tail stands alone: the lines before it were written by the caller",
        ))
        return stop

    def _dump(self, buf: bytes, start: int, stop: int, line_no: int, events: list[Item]) -> int | None:
        """A SIP packet dump: skip its caller-written lines (returns where it ends), and report a
        scanner's User-Agent. None when the marker sits inside an ordinary line's caller text."""
        head_text = buf[start:stop].decode("utf-8", "replace")
        when = None
        if not head_text.startswith("<---"):  # the PJSIP logger's header line carries a prefix
            header = self.parser.header(head_text)
            if header is None or not header[3].startswith("<---"):
                return None
            when = self.parser.time_parser.parse(header[2]) if header[2] else None
            head_text = header[3]
        else:  # chan_sip: the header follows a prefixed line with an empty message
            prev_start = buf.rfind(b"\n", 0, max(0, start - 1)) + 1
            header = self.parser.header(buf[prev_start : max(prev_start, start - 1)].decode("utf-8", "replace"))
            if header is not None and header[2]:
                when = self.parser.time_parser.parse(header[2])
        m = _DUMP_HEAD.match(head_text)
        if m is None:
            return None
        if m["size"] is not None:
            end = min(len(buf), stop + 1 + min(int(m["size"]), MAX_DUMP))
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
        transport = (m["t1"] or m["t2"] or "").upper() or None
        address = parse_address(m["a1"] or m["a2"] or "", Shape.OPTPORT)
        if tool is None or address is None or ua is None:
            return end
        ip, port, _ = address
        evidence = Evidence.STRONG if transport in ("TCP", "TLS", "WS", "WSS") else Evidence.WEAK
        events.append(Event(
            time=when if when is not None else self.parser.last_time, kind=Kind.SCANNER, service=Service.SIP,
            ip=ip, port=port, transport=transport, user_agent=ua[1], evidence=evidence,
            file=self.file, line=line_no, raw=head_text, form="asterisk.sip_dump", reason=tool,
        ))
        return end

    def _proxy_dump(self, buf: bytes, start: int, stop: int) -> int | None:
        """Kamailio/OpenSIPS `message=<…>`: the raw message follows, one header per physical line,
        up to a line ending with `>`. Skip to the last such line in the window (a `>` the caller
        wrote earlier must not end the dump); one line when the dump is written on one line.
        None when the marker is caller text inside an ordinary line."""
        header = self.parser.header(buf[start:stop].decode("utf-8", "replace"))
        if header is None or header[0] not in ("kamailio", "opensips") or not _PROXY_DUMP.match(header[3]):
            return None
        if buf[start:stop].rstrip(b"\r").endswith(b">"):
            return stop
        window_end = min(len(buf), stop + MAX_RECORD * 2)
        end = stop
        pos = stop
        for _ in range(MAX_JOIN_LINES):
            nl = buf.find(b"\n", pos + 1, window_end)
            line_end = window_end if nl < 0 else nl
            if buf[pos + 1 : line_end].rstrip(b"\r").endswith(b">"):
                end = line_end
            if nl < 0:
                break
            pos = nl
        return end


def _within(spans: Sequence[tuple[int, int]], offset: int) -> tuple[int, int] | None:
    """The span that holds `offset`, if any (spans are sorted and do not overlap)."""
    at = bisect.bisect_right(spans, (offset, _MAX_OFFSET)) - 1
    if at >= 0 and spans[at][0] <= offset <= spans[at][1]:
        return spans[at]
    return None


_MAX_OFFSET = 1 << 62
