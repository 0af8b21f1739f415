"""The native fast lane (`_fastlane.c`) reads the common record in C and changes nothing but the speed.

Every line of the format tables is also a parity case (see conftest's `parse_line` and parity.py); here:
whole logs, buffers cut anywhere, the records it must leave to Python, and the switch that turns it off.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from generated import genlog
from parity import native_parity, read
from sipwatch.config import Config
from sipwatch.formats import native

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

needs_native = pytest.mark.skipif(
    not native.available(),
    reason="the C fast lane is not built (needs gcc, python3-dev and libpcre2-dev at install time)",
)

TS = "[2024-05-01 10:00:0{s}]"
CHAN_SIP = TS + (" NOTICE[2817] chan_sip.c: Registration from '\"{u}\"<sip:{u}@192.0.2.1>' failed for '{a}' "
                 "- Wrong password")
SECURITY = (
    TS + ' SECURITY[3312] res_security_log.c: SecurityEvent="{name}",EventTV="2024-05-01T10:00:00.000+0000",'
    'Severity="Error",Service="PJSIP",EventVersion="2",AccountID="{u}",SessionID="abc",'
    'LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/{a}/5060"{tail}'
)

#: Records the C side must read exactly like Python, or hand to Python whole.
TRICKY = {
    "chan_sip": CHAN_SIP.format(s=1, u="100", a="198.51.100.7:5060"),
    "chan_sip IPv6": CHAN_SIP.format(s=1, u="100", a="[2001:db8::7]:5060"),
    "chan_sip bad address": CHAN_SIP.format(s=1, u="100", a="999.1.1.1:5060"),
    "forged separator": CHAN_SIP.format(s=2, u="1' failed for '203.0.113.66:5060", a="198.51.100.7:5060"),
    "non-ASCII user": CHAN_SIP.format(s=3, u="\u00e9\u00e9", a="198.51.100.8:5060"),
    "ANSI colours": "\x1b[1;31m" + CHAN_SIP.format(s=3, u="100", a="198.51.100.9:5060") + "\x1b[0m",
    "CRLF": CHAN_SIP.format(s=4, u="100", a="198.51.100.10:5060") + "\r",
    "security": SECURITY.format(s=5, name="InvalidPassword", u="100", a="198.51.100.11",
                                tail=',Challenge="n1",ReceivedChallenge="n1",ReceivedHash="x"'),
    "security AMI": SECURITY.replace("PJSIP", "AMI").format(s=5, name="InvalidAccountID", u="x", a="198.51.100.12",
                                                            tail=""),
    "security careful": SECURITY.format(s=5, name="FailedACL", u="100", a="198.51.100.13", tail=',ACLName="x"'),
    "security forged": SECURITY.format(s=6, name="ChallengeSent", u='1",RemoteAddress="IPV4/UDP/203.0.113.66/5060',
                                       a="198.51.100.14", tail=',Challenge="n"'),
    "syslog": "May  1 10:00:07 pbx asterisk[123]: NOTICE[456]: chan_sip.c:28390 in handle_request_register: "
              "Registration from '<sip:7@192.0.2.1>' failed for '198.51.100.15:5060' - Wrong password",
    "verbose lead": "[May  1 10:00:08] VERBOSE[31506] pbx.c:     -- Executing [0044207@from-internal:1] "
                    'Dial("SIP/6012-0000249f", "SIP/trunk/0044207,30") in new stack',
    "csv row": '"","6001","0044207","from-internal","","PJSIP/6001-1","","Dial","","2024-05-01 10:00:00",'
               '"","2024-05-01 10:00:09",9,0,"NO ANSWER","DOCUMENTATION","1714557600.1",""',
    "sips URI": CHAN_SIP.format(s=1, u="100", a="198.51.100.17:5060").replace("<sip:", "<sips:"),
    "URI without a user": CHAN_SIP.format(s=1, u="100", a="198.51.100.18:5060").replace("<sip:100@", "<sip:"),
    "no URI": CHAN_SIP.format(s=1, u="100", a="198.51.100.19:5060").replace("<sip:100@192.0.2.1>", "100"),
    "FreePBX": "[2024-05-01 10:00:09] WARNING[3021][C-0000001a] Ext. s: \"Rejecting unknown SIP connection from "
               "198.51.100.20:5060\"",
    "FreePBX dialled exten": "[2024-05-01 10:00:09] WARNING[3021][C-0000001a] Ext. 0046812345678: \"Rejecting "
                             "unknown SIP connection from [2001:db8::20]:5060\"",
    "FreePBX forged exten": "[2024-05-01 10:00:09] WARNING[3021][C-0000001a] Ext. Rejecting unknown SIP connection "
                            "from 203.0.113.66: \"Rejecting unknown SIP connection from 198.51.100.21\"",
    "FreePBX forged twice": "[2024-05-01 10:00:09] WARNING[3021][C-0000001a] Ext. s: \"Rejecting unknown SIP "
                            "connection from 203.0.113.66\" \"Rejecting unknown SIP connection from 198.51.100.22\"",
    "FreePBX in a C file": "[2024-05-01 10:00:09] WARNING[3021] pbx.c: \"Rejecting unknown SIP connection from "
                           "198.51.100.23\"",
    "FreePBX scanner": "[2024-05-01 10:00:09] WARNING[3021][C-0000001b] Ext. s: Friendly Scanner from 203.0.113.66",
    "junk": "\x00\x01\xff binary ' failed for ' junk",
    "long line": "[2024-05-01 10:00:09] NOTICE[1] chan_sip.c: " + "x" * 20000 + " failed for '198.51.100.16'",
}


@needs_native
@pytest.mark.parametrize("line", TRICKY.values(), ids=TRICKY.keys())
def test_a_tricky_record_reads_the_same_with_and_without_c(line: str) -> None:
    assert native_parity(line.encode("utf-8", "surrogateescape") + b"\n") is None


@needs_native
def test_the_common_records_of_a_log_are_read_in_c() -> None:
    """Events the fast lane builds arrive as wire tuples; those of the Python path as `Event`s."""
    from sipwatch.formats import readers
    from sipwatch.formats.parser import LineParser
    from sipwatch.formats.prefilter import Prefilter
    from sipwatch.formats.records import RecordScanner, ScanStats
    from sipwatch.timeparse import TimeParser

    parser = LineParser(TimeParser(2024), readers())
    scanner = RecordScanner(parser, Prefilter(parser.markers), "x", ScanStats(), native_lane=True)
    items = scanner.feed((ROOT / "examples" / "asterisk-full.log").read_bytes())
    in_c = sum(isinstance(item, tuple) for item in items)
    assert in_c >= 0.8 * len(items) > 0


@needs_native
@pytest.mark.parametrize("path", sorted([*FIXTURES.rglob("*.log"), *FIXTURES.rglob("*.csv"),
                                         ROOT / "examples" / "asterisk-full.log"]), ids=lambda p: p.name)
def test_a_whole_log_reads_the_same(path: Path) -> None:
    assert native_parity(path.read_bytes()) is None


@needs_native
@pytest.mark.parametrize("chunk", [512, 4096, 65536])
def test_buffers_cut_anywhere_read_the_same(chunk: int) -> None:
    """Records that cross a buffer's end, forged tails, dumps: the protocol of chunks is the same."""
    data = (ROOT / "examples" / "asterisk-full.log").read_bytes()
    assert native_parity(data, chunk=chunk) is None


@needs_native
def test_a_generated_attack_log_reads_the_same(tmp_path: Path) -> None:
    """Every prefix and message shape of bench/genlog.py (old and ISO dates, plain, syslog, IPv6)."""
    out = genlog(tmp_path / "gen.log", 20000, seed=7)
    assert native_parity(out.read_bytes(), chunk=1 << 16) is None


@needs_native
def test_constants_the_c_side_cannot_keep_as_bits_or_short_tables_read_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine keeps the call kinds as the bits of a word, and the security names, services, transports and
    channel techs it knows as the very str keys of its tables, found by their bytes; a kind index past 63 or a
    key that is no short ASCII text sends it back to asking its sets and dicts."""
    usual = native.Constants()
    odd = native.Constants(call_kinds=usual.call_kinds | {100},
                           channel_services={**usual.channel_services, "Ünicode-tech": 0},
                           transports=usual.transports | {"Ü" * 3}, services={**usual.services, "x" * 50: 0},
                           event_kinds={**usual.event_kinds, "Ü": 0})
    monkeypatch.setattr(native, "Constants", lambda: odd)
    monkeypatch.setattr(native, "_ENGINES", {})
    data = (ROOT / "examples" / "asterisk-full.log").read_bytes() + genlog_bytes()
    assert native_parity(data) is None


def genlog_bytes() -> bytes:
    """A small generated log with calls of every channel tech genlog writes (read once per session)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return genlog(Path(folder) / "gen.log", 3000, seed=11).read_bytes()


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPWATCH_NATIVE", "0")
    assert not native.available()
    assert native.engine([]) is None


def test_every_lane_is_described() -> None:
    """Each fast lane of the parser gets a C description; those of unknown readers stay with Python."""
    from sipwatch.formats import readers
    from sipwatch.formats.parser import LineParser
    from sipwatch.timeparse import TimeParser

    lanes = LineParser(TimeParser(2024), readers()).lanes
    specs = [native.spec(p, r) for p, r in lanes]
    assert len(specs) == len(lanes) > 50
    assert all(s.type in (native.D_FORM, native.D_SECURITY) for s in specs)


ADDRESS_TEXTS = [
    "198.51.100.7", "198.51.100.7:5060", "[2001:db8::7]:5060", "2001:db8::7", "2001:db8::7:5060",
    "2001:db8:0:0:0:0:0:7:5060", "IPV4/UDP/198.51.100.7/5060", "IPV6/TCP/2001:db8::7/5038", "IPV4/198.51.100.7/5060",
    "UDP:198.51.100.7:5060", "TCP:[2001:db8::7]:5060", "udp:2001:db8::7:5060", "203.0.113.99:0", "198.51.100.7:65535",
    "198.51.100.7:65536", "198.51.100.7:", ":5060", "[2001:db8::7]", "[2001:db8::7]5060", "[2001:db8::7", "[]:5060",
    " 198.51.100.7:5060\t", "[[198.51.100.7]]", "::ffff:198.51.100.7", "[::ffff:198.51.100.7]:5060", "fe80::1%eth0",
    "IPV4/UDP/198.51.100.7/5060/x", "IPV5/UDP/198.51.100.7/5060", "IPV4//198.51.100.7/5060", "IPV4/UDP/bad/5060",
    "WS:198.51.100.7:80", "FOO:198.51.100.7:5060", "UDP:198.51.100.7", "999.1.1.1", "1.2.3.4:05060", "1.2.3.4:+50",
    "", "[", "]", ":", "::", "::1", "::1:5060", "0.0.0.0:1", "1.2.3.4 :5060", "2001:db8::7:99999",
]


def _random_texts(count: int) -> list[str]:
    import random

    rng = random.Random(5)
    alphabet = "0123456789abcdefABCDEF:.[]/ UDPTCIV46%-"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(count)]


def _dotted_numbers(count: int) -> list[str]:
    """Texts that look like IPv4 addresses, near misses included: 1 to 5 numbers of 0 to 4 digits (some with
    leading zeros, some over 255) between dots (C reads a canonical IPv4 address without asking Python)."""
    import random

    rng = random.Random(7)
    return [".".join("".join(rng.choice("0123456789" if k else "0125") for k in range(rng.randint(0, 4)))
                     for _ in range(rng.choice((1, 3, 4, 4, 4, 4, 5)))) for _ in range(count)]


IPV4_TEXTS = ["1.2.3.4", "01.2.3.4", "1.2.3.04", "0.0.0.0", "255.255.255.255", "256.0.0.1", "1.2.3.4.5", "1..2.3",
              "1.2.3.", ".1.2.3", "1.2.3.4 ", "1.2.3.0255", "100.200.250.249", "10.0.0.1:5060", "00.1.1.1"]


@needs_native
def test_addresses_are_read_as_netaddr_reads_them() -> None:
    """The C reading of every address shape agrees with `netaddr.parse_address` (table and random texts)."""
    from sipwatch.netaddr import parse_address

    engine = native.engine([])
    for text in [*ADDRESS_TEXTS, *IPV4_TEXTS, *_random_texts(20_000), *_dotted_numbers(20_000)]:
        for shape, code in native.SHAPES.items():
            found = parse_address(text, shape)
            expected = None if found is None else (str(found[0]), found[1], found[2])
            assert engine.address(text, code) == expected, (text, shape)


def _mutations(lines: list[str], count: int, seed: int) -> list[str]:
    """Real lines with random bytes replaced, inserted or cut: what a fuzzer would feed the C code."""
    import random

    rng = random.Random(seed)
    junk = "'\":;/[]()<>@ -_.,=\t\x1b\x00\xe9" + "0123456789abcdefABCDEF" + "UDPTCIV"
    out = []
    for _ in range(count):
        line = list(rng.choice(lines))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(line) + 1)
            what = rng.random()
            if what < 0.4 and at < len(line):
                line[at] = rng.choice(junk)
            elif what < 0.8:
                line.insert(at, rng.choice(junk))
            else:
                del line[at:at + rng.randint(1, 12)]
        out.append("".join(line))
    return out


@needs_native
def test_mutated_real_lines_read_the_same_with_and_without_c() -> None:
    """2,000 random mutations of the example log's and the tricky table's lines: no crash, no difference."""
    lines = [*(ROOT / "examples" / "asterisk-full.log").read_text().splitlines(), *TRICKY.values()]
    data = "\n".join(_mutations(lines, 2000, seed=11)).encode("utf-8", "surrogateescape") + b"\n"
    assert native_parity(data) is None


@needs_native
def test_times_read_the_same_with_and_without_c() -> None:
    """Syslog-style stamps with a fraction, a year, impossible clocks, and the same year-less text before and
    after an ISO stamp of another year moved the parser's default year: the C side keeps TimeParser's caches
    exactly as TimeParser does."""
    msg = (" NOTICE[2817] chan_sip.c: Registration from '<sip:7@192.0.2.1>' failed for '198.51.100.{}:5060' "
           "- Wrong password")
    stamps = ["Mar  4 01:40:09", "Mar  4 01:40:09.123", "Mar  4 01:40:09 2023", "Mar  4 25:40:09", "Mar 144 01:40:09",
              "Foo  4 01:40:09", "Mar  4 01:40:60", "2023-12-31 23:59:59", "Mar  4 01:40:09", "Feb 29 10:00:00",
              "2024-05-01 10:00:00.5", "2024-05-01 10:00:00", "2024-05-01 10:00:00,25", "Mar  4 01:40:09.123 2022"]
    lines = [f"[{stamp}]{msg.format(i + 1)}" for i, stamp in enumerate(stamps)]
    syslog = [f"{stamp} pbx asterisk[1]: NOTICE[2]: chan_sip.c:28390 in handle_request_register: "
              f"Registration from '<sip:7@192.0.2.1>' failed for '198.51.100.{i + 50}:5060' - Wrong password"
              for i, stamp in enumerate(stamps[:3])]
    assert native_parity("\n".join([*lines, *syslog, *lines]).encode() + b"\n") is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"no break", b"a\nb\n", b"\n" * 33, b"x" * 15 + b"\n" + b"y" * 17 + b"\n", bytes(range(256)) * 3,
     b"\n" * 5000],  # more than 255 blocks of 16 in a row: the byte counters are summed before they wrap
)
def test_lines_are_counted_as_bytes_count_counts_them(data: bytes) -> None:
    """The scan's line numbers rest on this count (16 bytes at a time in C, byte by byte at the tail)."""
    for start in range(0, len(data) + 1, 7 if len(data) < 1000 else 997):
        for end in (start, start + 1, start + 16, start + 17, len(data), len(data) + 5):
            assert native.count_lines(data, start, end) == data.count(b"\n", start, end)


needs_markers = pytest.mark.skipif(
    native.markers(["x"]) is None,
    reason="the fast lane was built without libhs (Debian libhyperscan-dev): the hyperscan wheel finds markers",
)


@needs_markers
@pytest.mark.parametrize("path", [ROOT / "examples" / "asterisk-full.log", "generated"])
def test_markers_are_found_in_c_as_the_prefilter_finds_them(path: Path | str, tmp_path: Path) -> None:
    """libhs in the fast lane reports the same (end, marker) hits, in the same order, as the wheel."""
    from sipwatch.parallel import _parser

    data = (genlog(tmp_path / "gen.log", 5000, seed=3) if path == "generated" else Path(path)).read_bytes()
    for calls in (True, False):
        _, prefilter = _parser("x.log", (2024, None), ("UTC", "UTC"), calls)
        assert prefilter.engine == "hyperscan"
        assert native.markers(prefilter.markers).hits(data) == prefilter.hits(data)


@needs_native
@pytest.mark.parametrize("use_markers", [True, False], ids=["markers in C", "markers from the wheel"])
def test_a_generated_log_reads_the_same_whoever_finds_the_markers(use_markers: bool, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "USE_MARKERS", use_markers)
    out = genlog(tmp_path / "gen.log", 20000, seed=11)
    assert native_parity(out.read_bytes(), chunk=1 << 15) is None


@needs_native
def test_csv_rows_over_several_lines_are_found_alike_in_c_and_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from sipwatch.formats import records

    rng = random.Random(5)
    pieces = [b'"a","b"', b'"x', b'y"', b'""', b'"', b"plain", b'"q""q"', b"",
              # (and lines past 16 bytes and 4,080: C counts quotes 16 bytes at a time)
              b'"' + b"x" * 40 + b'"', b'""' * 20 + b'"', b"," * 33, b'"' + b'"",' * 1500]
    for _ in range(300):
        buf = b'"' + b"\n".join(rng.choice(pieces) + rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        in_c = records.open_rows(buf)
        with monkeypatch.context() as m:
            m.setattr(native, "open_rows", lambda buf, max_lines: None)
            assert records.open_rows(buf) == in_c, buf


# --- CDR rows (`_rows.h`) ----------------------------------------------------------------------------------

_CDR = ('"","6001","{dst}","from-internal","""Phone"" <6001>","{chan}","PJSIP/trunk-0000002","Dial",'
        '"PJSIP/{dst}@trunk,60","{start}","{answer}","{end}",{duration},{billsec},"{disp}","DOCUMENTATION",'
        '"{uid}","{user}"')


def _cdr(**fields: object) -> str:
    values: dict[str, object] = {
        "dst": "00442079460000", "chan": "PJSIP/6001-00000001", "start": "2024-05-01 10:00:00",
        "answer": "2024-05-01 10:00:05", "end": "2024-05-01 10:01:05", "duration": 65, "billsec": 60,
        "disp": "ANSWERED", "uid": "1714557600.17", "user": "src=192.0.2.10:5060"}
    values.update(fields)
    return _CDR.format(**values)


#: rows the C side must read exactly like Python, or hand to Python whole
CDR_ROWS = {
    "common": _cdr(),
    "no answer": _cdr(answer="", billsec=0, disp="NO ANSWER"),
    "no userfield": _cdr(user=""),
    "IPv6 source": _cdr(user="src=[2001:db8::7]:5060"),
    "broken source": _cdr(user="src=999.1.1.1:5060"),
    "source among other text": _cdr(user="x=1;src=192.0.2.11:5061;y=2"),
    "a source with text before it": _cdr(user="x src=192.0.2.11:5061"),
    "a source and a separator after it": _cdr(user="src=192.0.2.11:5061;"),
    "port 0": _cdr(user="src=192.0.2.10:0"),
    "port 65535": _cdr(user="src=192.0.2.10:65535"),
    "port 65536": _cdr(user="src=192.0.2.10:65536"),
    "a port of six digits": _cdr(user="src=192.0.2.10:123456"),
    "a port of zeros": _cdr(user="src=192.0.2.10:00000"),
    "no port": _cdr(user="src=192.0.2.10:"),
    "a bare source": _cdr(user="src=192.0.2.10"),
    "no host": _cdr(user="src=:5060"),
    "a bracketed IPv4 source": _cdr(user="src=[192.0.2.10]:5060"),
    "a bracket left open": _cdr(user="src=[192.0.2.10:5060"),
    "a name as the source": _cdr(user="src=pbx.example.com:5060"),
    "an IPv4-mapped source": _cdr(user="src=[::ffff:192.0.2.10]:5060"),
    "a second source": _cdr(user="src=192.0.2.10:5060 src=198.51.100.9:5060"),
    "epoch times": _cdr(start="1714557600", answer="1714557605.5", end="1714557665"),
    "ISO with T and a zone": _cdr(start="2024-05-01T10:00:00+02:00", answer="", end="2024-05-01T10:01:05Z"),
    "a fraction": _cdr(end="2024-05-01 10:01:05.250"),
    "no end: the start": _cdr(end=""),
    "no start, no end": _cdr(start="", end=""),
    "a bad date": _cdr(end="2024-13-01 10:01:05"),
    "a bad start": _cdr(start="yesterday"),
    "billsec beyond duration": _cdr(duration=10, billsec=60),
    "a float duration": _cdr(duration="65.5"),
    "a duration Python reads and C leaves": _cdr(duration="1e2"),
    "a negative duration": _cdr(duration="-5"),
    "ten days": _cdr(duration=864000),
    "quotes in the caller id": _cdr().replace('"""Phone"" <6001>"', '"""Ph""""one"" <6001>"'),
    "quotes in the number": _cdr(dst='00""44'),
    "a non-ASCII field": _cdr(dst="0044\u00e92079"),
    "an unknown disposition": _cdr(disp="MAYBE"),
    "a uniqueid with a system name": _cdr(uid="pbx-1.example-1714557600.17"),
    "a bad uniqueid": _cdr(uid="17145576.17"),
    "a Local channel": _cdr(chan="Local/6001@from-internal-00000001;1"),
    "a channel without a dash": _cdr(chan="SIP/trunk"),
    "no channel": _cdr(chan=""),
    "an IAX2 channel": _cdr(chan="IAX2/6001-1234"),
    "a CEL word in a field": _cdr(dst="HANGUP").replace('"HANGUP"', '"HANGUP","x'),
    "a CEL event name as the number": _cdr(dst="ANSWER"),
    "text after a closing quote": _cdr().replace('"Dial",', '"Dial"x,'),
    "a quote inside an unquoted field": _cdr(duration='6"5'),
    "CRLF": _cdr() + "\r",
    "cdr_custom": ('"""Phone"" <6001>","6001","00442079460000","from-internal","PJSIP/6001-00000001",'
                   '"PJSIP/trunk-2","Dial","PJSIP/00442079460000@trunk","2024-05-01 10:00:00",'
                   '"2024-05-01 10:00:05","2024-05-01 10:01:05","65","60","ANSWERED","DOCUMENTATION","",'
                   '"1714557600.18","src=192.0.2.12:5060","3"'),
    "newcdrcolumns": _cdr() + ',"","1714557600.10","7"',
    "a trailing comma": _cdr() + ",",
    "too few columns": ",".join(_cdr().split(",")[:-2]),
    "a quote left open": _cdr().rsplit('"', 1)[0],
    "a row beyond the longest record": _cdr(dst="0" * 70_000),
    "too many columns": _cdr() + ',""' * 30,
}


@needs_native
@pytest.mark.parametrize("row", CDR_ROWS.values(), ids=CDR_ROWS.keys())
def test_a_cdr_row_reads_the_same_with_and_without_c(row: str) -> None:
    assert native_parity((_cdr(uid="1714557600.1") + "\n" + row + "\n").encode()) is None


@needs_native
def test_mutated_cdr_rows_read_the_same_with_and_without_c(tmp_path: Path) -> None:
    """3,000 random mutations of generated and tricky CDR rows: no crash, no difference."""
    from generated import gencdr

    lines = [*gencdr(tmp_path / "Master.csv", 300, seed=4).read_text().splitlines(), *CDR_ROWS.values()]
    data = "\n".join([lines[0], *_mutations(lines, 3000, seed=12)]).encode("utf-8", "surrogateescape") + b"\n"
    assert native_parity(data) is None


@needs_native
@pytest.mark.parametrize("day", ["2024-03-30", "2024-03-31", "2024-10-27"])
def test_cdr_times_on_the_days_the_clock_moves_read_the_same_in_c_and_python(day: str) -> None:
    """The C row lane reads a known date's times from the records clock's cache: a day whose clock moves
    (Berlin, spring and autumn) is never in it, and each time comes out true, as Python reads it."""
    config = Config(cdr_timezone="Europe/Berlin")
    rows = [_cdr(uid=f"1714557600.{h}", start=f"{day} {h:02d}:30:00", answer="", billsec=0, disp="NO ANSWER",
                 end=f"{day} {h:02d}:30:05") for h in range(24)]
    data = ("\n".join(rows) + "\n").encode()
    assert native_parity(data, config=config) is None
    berlin = ZoneInfo("Europe/Berlin")
    times = [w[0] for w in read(data, True, config=config)[0]]
    assert times == [datetime.fromisoformat(f"{day} {h:02d}:30:05").replace(tzinfo=berlin).timestamp()
                     for h in range(24)]


@needs_native
def test_a_generated_master_csv_is_read_in_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """...the same as in Python, and with no Python call per row: the Python record path sees none of it."""
    from generated import gencdr
    from sipwatch.formats.records import RecordScanner

    data = gencdr(tmp_path / "Master.csv", 5000, seed=5).read_bytes()
    assert native_parity(data) is None
    to_python = 0
    real = RecordScanner._record

    def counted(self: RecordScanner, *args: object) -> tuple[int, int]:
        nonlocal to_python
        to_python += 1
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordScanner, "_record", counted)
    assert native_parity(data) is None
    assert to_python < 5000 + 100  # the Python pass of the comparison reads each row; the C pass none


@needs_native
def test_a_cdr_layout_without_a_column_the_row_lane_needs_is_refused() -> None:
    from sipwatch.formats import _fastlane  # type: ignore[attr-defined]

    with pytest.raises(ValueError, match="out of the layout"):
        _fastlane.Rows([(3, "x", (-1,) * len(native.ROW_COLUMNS))], frozenset(), frozenset(), set(), print, print, 1)
