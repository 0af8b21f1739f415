"""journald's JSON export (`journalctl -o json`) writes a MESSAGE that holds non-printable bytes or is not
valid UTF-8 as an array of byte values, not as a string. A caller's text with one such byte (a user name,
a From header) would turn the server's whole line into numbers that no marker or regex can see: an attacker
could hide from the prefilter that way. `text_messages()` turns those arrays back into text before anything
else reads the buffer; the line breaks stay where they were, so line numbers do not change."""

from __future__ import annotations

import json
import re

_ARRAY = re.compile(rb'"MESSAGE"\s*:\s*\[')


#: how far into either end of a buffer a journald export shows itself: every line of one holds a MESSAGE
EXPORT_WINDOW = 1 << 16


def is_export(buf: bytes) -> bool:
    """Whether `buf` holds journald JSON (`journalctl -o json`): a MESSAGE field near its start or its end
    (a file that turns from text into an export part-way through shows it at the end of that buffer).
    Looking through the whole buffer costs ~1 ms per 4 MiB of every plain log."""
    window = EXPORT_WINDOW
    return buf.find(b'"MESSAGE"', 0, window) >= 0 or buf.find(b'"MESSAGE"', max(0, len(buf) - window)) >= 0


def text_buffer(buf: bytes, limit: int) -> tuple[bytes, int]:
    """`text_messages` for a buffer read up to `limit` (its lookahead after): the same objects when there is
    nothing to rewrite, as in nearly every buffer of an export (no copy of megabytes for nothing)."""
    if _ARRAY.search(buf) is None:
        return buf, limit
    head = text_messages(buf[:limit])
    return head + text_messages(buf[limit:]), len(head)


def text_messages(buf: bytes) -> bytes:
    """`buf` with every array-encoded MESSAGE written as a string (undecodable bytes as U+FFFD)."""
    if _ARRAY.search(buf) is None:
        return buf
    out: list[bytes] = []
    done = 0
    for match in _ARRAY.finditer(buf):
        start = buf.rfind(b"\n", 0, match.start()) + 1
        if start < done:
            continue  # a second match on a line already rewritten
        end = buf.find(b"\n", match.end())
        end = len(buf) if end < 0 else end
        out += [buf[done:start], _as_text(buf[start:end])]
        done = end
    out.append(buf[done:])
    return b"".join(out)


def _as_text(line: bytes) -> bytes:
    try:
        record = json.loads(line)
        record["MESSAGE"] = bytes(record["MESSAGE"]).decode("utf-8", "replace")
    except (ValueError, TypeError, KeyError, RecursionError):
        return line  # not a journal entry after all: left as it is
    return json.dumps(record, ensure_ascii=False).encode()
