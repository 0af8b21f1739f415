"""journald's JSON export as a log: a MESSAGE that journald wrote as an array of byte values (not valid
UTF-8, or a control character in it) is read as text, so a caller's odd byte cannot hide the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipwatch.config import Config
from sipwatch.formats.journal import text_messages
from sipwatch.scan import scan

LINE = (b"NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:%s@203.0.113.1>' "
        b"failed for '198.51.100.9:5060' - Wrong password")


def entry(message: bytes | str, when: int = 0) -> bytes:
    value = list(message) if isinstance(message, bytes) else message
    return json.dumps({"__REALTIME_TIMESTAMP": str(1714557600000000 + when * 1000000), "SYSLOG_IDENTIFIER": "asterisk",
                       "MESSAGE": value}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("buf", "expected_message"),
    [
        pytest.param(entry(b"plain \xff text"), "plain \ufffd text", id="invalid-utf8-replaced"),
        pytest.param(entry(b"bold \x1b[1m"), "bold \x1b[1m", id="control-character"),
        pytest.param(entry(b"caf\xc3\xa9"), "caf\u00e9", id="utf8-decoded"),
    ],
)
def test_an_array_message_becomes_text(buf: bytes, expected_message: str) -> None:
    assert json.loads(text_messages(buf))["MESSAGE"] == expected_message


def test_text_messages_leave_everything_else_as_it_is() -> None:
    plain = entry("already text")
    assert text_messages(plain) is plain
    odd = b'not json but "MESSAGE": [1, 2\n' + plain
    assert text_messages(odd) == odd


def test_line_breaks_stay_where_they_were() -> None:
    buf = b"\n".join([entry("one"), entry(b"two \xff"), b"", entry(b"three \xfe"), entry("four")]) + b"\n"
    out = text_messages(buf)
    assert out.count(b"\n") == buf.count(b"\n")
    assert [json.loads(x)["MESSAGE"] for x in out.splitlines() if x] == ["one", "two \ufffd", "three \ufffd", "four"]


def test_a_scan_reads_the_line_that_journald_wrote_as_bytes(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_bytes(b"".join(entry(LINE % b"\xff%d" % i, when=i) + b"\n" for i in range(6)))
    result = scan([str(path)], Config())
    (offender,) = result.tally.offenders.values()
    assert (str(offender.ip), offender.events) == ("198.51.100.9", 6)


def test_a_buffer_with_nothing_to_rewrite_is_handed_back_as_it_is() -> None:
    from sipwatch.formats.journal import text_buffer

    plain = entry("one") + b"\n" + entry("two") + b"\n"
    assert text_buffer(plain, 10) == (plain, 10) and text_buffer(plain, 10)[0] is plain
    mixed = entry("one") + b"\n" + entry(b"two \xff") + b"\n"
    out, limit = text_buffer(mixed, len(entry("one")) + 1)
    assert out[:limit] == entry("one") + b"\n" and json.loads(out[limit:])["MESSAGE"] == "two \ufffd"


@pytest.mark.parametrize("text_first", [0, 200_000], ids=["export-only", "text-then-export"])
def test_an_export_shows_itself_at_either_end_of_a_buffer(tmp_path: Path, text_first: int) -> None:
    """Only the ends of a buffer are looked at (the whole of it costs ~1 ms per 4 MiB of every plain log):
    an export shows itself there, also when a file turns from text lines into an export part-way."""
    from sipwatch.formats.journal import is_export

    filler = b"[2024-05-01 10:00:00] VERBOSE[1] pbx.c: -- Executing [s@default:1] NoOp(\"x\", \"\")\n"
    head = filler * (text_first // len(filler))
    path = tmp_path / "mixed.log"
    path.write_bytes(head + b"".join(entry(LINE % b"\xff%d" % i, when=i) + b"\n" for i in range(6)))
    assert is_export(path.read_bytes()) and not is_export(head + filler * 2000)
    (offender,) = scan([str(path)], Config()).tally.offenders.values()
    assert offender.events == 6
