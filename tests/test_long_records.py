"""A caller controls the length of the text a server logs about it (a user name, a From header, a Call-ID).
A record as long as a SIP packet is still read, so that padding cannot hide a failure, and no record,
however it repeats the markers and separators the readers look for, takes more than linear time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sipwatch.config import Config
from sipwatch.formats.records import MAX_RECORD, ScanStats
from sipwatch.scan import Reader
from sipwatch.sources.files import FileSource

PAD = "A" * 30_000  # as much as a SIP packet can carry into a log line, with room to spare

#: (line with {pad} where the caller's text goes, the address the server wrote)
LINES = {
    "chan_sip": ("[2024-05-01 10:00:01] NOTICE[2817] chan_sip.c: Registration from '\"{pad}\"<sip:{pad}@192.0.2.1>' "
                 "failed for '198.51.100.7:5060' - Wrong password", "198.51.100.7"),
    "pjsip": ("[2024-05-01 10:00:02] NOTICE[2817] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
              "'<sip:{pad}@192.0.2.1>' failed for '198.51.100.8:5060' (callid: {pad}) - No matching endpoint found",
              "198.51.100.8"),
    "security": ('[2024-05-01 10:00:03] SECURITY[3312] res_security_log.c: SecurityEvent="InvalidPassword",'
                 'EventTV="2024-05-01T10:00:03.000+0000",Severity="Error",Service="PJSIP",EventVersion="2",'
                 'AccountID="{pad}",SessionID="abc",LocalAddress="IPV4/UDP/192.0.2.1/5060",'
                 'RemoteAddress="IPV4/UDP/198.51.100.9/5060",Challenge="n1",ReceivedChallenge="n1",ReceivedHash="x"',
                 "198.51.100.9"),
    "freeswitch": ("2024-05-01 10:00:04.523341 96.77% [WARNING] sofia_reg.c:3210 Can't find user "
                   "[{pad}@example.com] from 198.51.100.10", "198.51.100.10"),
}


def events(tmp_path: Path, text: str) -> list[tuple[str, str | None]]:
    path = tmp_path / "long.log"
    path.write_text(text + "\n")
    return [(str(e.kind), str(e.ip) if e.ip else None)
            for e in Reader(Config()).events(FileSource(str(path)), ScanStats())]


@pytest.mark.parametrize("name", LINES)
def test_a_padded_caller_text_does_not_hide_the_failure(tmp_path: Path, name: str) -> None:
    line, address = LINES[name]
    text = line.format(pad=PAD)
    assert len(text.encode()) < MAX_RECORD
    ((_, ip),) = events(tmp_path, text)
    assert ip == address


@pytest.mark.parametrize(
    ("name", "filler"),
    [
        ("chan_sip", "' failed for '"),
        ("pjsip", "' failed for '"),
        ("pjsip", "(callid: "),
        ("security", '",RemoteAddress="IPV4/UDP/203.0.113.66/5060'),
        ("freeswitch", "@"),
        ("freeswitch", "] from "),
    ],
)
def test_repeated_markers_take_linear_time(tmp_path: Path, name: str, filler: str) -> None:
    """Thousands of one marker in a record (each a hint for the readers, each a place for a regex to try)."""
    line, _ = LINES[name]
    text = line.format(pad=filler * (20_000 // len(filler)))
    started = time.perf_counter()
    found = events(tmp_path, text)
    assert time.perf_counter() - started < 1.0, f"{len(found)} events, but too slowly"
