"""End to end through the command line: `python -m sipwatch scan|explain ...`.

What a user relies on: the report names the attacker, `--json` has a stable shape, bad input gives a
clear message and an exit status (never a traceback), and `explain --jsonl` cites file and line.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
LogPath = Callable[..., Path]

ATTACKER = "198.51.100.7"
SCANNER = "198.51.100.23"
PHONE = "192.0.2.50"


def brute_force_lines(n: int = 8, ip: str = ATTACKER, minute: int = 0) -> list[str]:
    return [f"[2024-05-01 10:{minute:02d}:{i:02d}] NOTICE[3021] chan_sip.c: Registration from "
            f"'\"{100 + i}\" <sip:{100 + i}@203.0.113.10>' failed for '{ip}:5060' - Wrong password" for i in range(n)]


MIXED_LOG = [
    "[2024-05-01 09:59:58] VERBOSE[2990] asterisk.c: Asterisk Ready.",
    f"[2024-05-01 09:59:59] VERBOSE[3001] chan_sip.c: Registered SIP '6001' at {PHONE}:5060",
    *brute_force_lines(),
    f"[2024-05-01 10:01:00] NOTICE[3021][C-0000001a] chan_sip.c: Call from '' ({SCANNER}:5060) to extension "
    "'0046812345678' rejected because extension not found in context 'default'.",
    f"[2024-05-01 10:01:01] NOTICE[3021][C-0000001b] chan_sip.c: Call from '' ({SCANNER}:5060) to extension "
    "'00046812345678' rejected because extension not found in context 'default'.",
    f"[2024-05-01 10:01:02] NOTICE[3021][C-0000001c] chan_sip.c: Call from '' ({SCANNER}:5060) to extension "
    "'901146812345678' rejected because extension not found in context 'default'.",
    "[2024-05-01 10:01:03] NOTICE[3021] chan_sip.c: Failed to authenticate on REGISTER to "
    "'4930555123@sip.provider.example' (Tries 3)",
    "[2024-05-01 10:01:04] VERBOSE[3001] chan_sip.c: Saved useragent \"Yealink SIP-T46S\" for peer 6001",
]


@pytest.fixture
def mixed_log(log_path: LogPath) -> Path:
    return log_path(MIXED_LOG)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


# --- scan ----------------------------------------------------------------------------------------------

def test_scan_text_report_names_the_attackers(run_cli: Cli, mixed_log: Path) -> None:
    """The human report lists each hostile address."""
    proc = run_cli("scan", str(mixed_log))
    assert proc.returncode == 0, proc.stderr
    assert ATTACKER in proc.stdout and SCANNER in proc.stdout


def test_scan_text_report_does_not_name_good_addresses(run_cli: Cli, mixed_log: Path) -> None:
    """The phone that registered fine is not an offender."""
    proc = run_cli("scan", str(mixed_log))
    assert PHONE not in proc.stdout


def test_scan_knows_our_own_outbound_failures(run_cli: Cli, log_path: LogPath) -> None:
    """A failing trunk registration is a known, benign line: not an unmatched-format warning."""
    line = ("[2024-05-01 10:01:03] NOTICE[3021] chan_sip.c: Failed to authenticate on REGISTER to "
            "'4930555123@sip.provider.example' (Tries 3)")
    report = json.loads(run_cli("scan", "--json", str(log_path([line]))).stdout)
    assert (report["offenders"], report["unmatched"]) == ([], 0)


def test_scan_json_shape(run_cli: Cli, mixed_log: Path) -> None:
    """`--json` is one object with line and event counts and an offenders list."""
    proc = run_cli("scan", "--json", str(mixed_log))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["lines"] == len(MIXED_LOG)
    assert report["events"] == 11
    assert isinstance(report["offenders"], list) and report["offenders"]
    for offender in report["offenders"]:
        assert {"ip", "events", "kinds", "decision", "reason"} <= set(offender)
        assert offender["decision"] in ("ban", "alert", "none")
        assert isinstance(offender["kinds"], dict)


def test_scan_json_decisions(run_cli: Cli, mixed_log: Path) -> None:
    """The brute-forcer and the INVITE scanner are both banned, each with a reason."""
    report = json.loads(run_cli("scan", "--json", str(mixed_log)).stdout)
    offenders = {o["ip"]: o for o in report["offenders"]}
    assert set(offenders) == {ATTACKER, SCANNER}
    assert offenders[ATTACKER]["decision"] == "ban"
    assert offenders[ATTACKER]["kinds"] == {"auth_failure": 8}
    assert offenders[SCANNER]["decision"] == "ban"
    assert all(o["reason"] for o in offenders.values())


def test_scan_json_is_one_line_of_utf8(run_cli: Cli, log_path: LogPath) -> None:
    """The report is one line; a name in another script is written as it is, not as escapes."""
    lines = [line.replace('"100"', '"Müller"').replace("sip:10", "sip:jürgen") for line in brute_force_lines(6)]
    proc = run_cli("scan", "--json", str(log_path(lines)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("\n")
    assert "jürgen0" in proc.stdout
    (offender,) = json.loads(proc.stdout)["offenders"]
    assert "jürgen0" in offender["accounts"]


def test_a_file_name_that_is_not_utf8_is_written_escaped(tmp_path: Path) -> None:
    """A path in bytes that are not UTF-8 still gives valid JSON, with the name escaped."""
    name = os.fsencode(tmp_path) + b"/pbx\xff.log"
    with open(name, "w") as f:
        f.write("\n".join(brute_force_lines(6)) + "\n")
    proc = subprocess.run([sys.executable, "-m", "sipwatch", "scan", "--json", name], capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"] == [os.fsdecode(name)]
    assert report["offenders"][0]["ip"] == ATTACKER


def test_scan_reads_gzip(run_cli: Cli, tmp_path: Path) -> None:
    """Rotated logs (`messages.1.gz`) are read like plain ones."""
    path = tmp_path / "messages.1.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in MIXED_LOG).encode()))
    report = json.loads(run_cli("scan", "--json", str(path)).stdout)
    assert (report["lines"], report["events"]) == (len(MIXED_LOG), 11)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("command", [["scan", "--json"], ["explain", "--jsonl"]])
def test_a_path_that_is_a_pipe_is_read(command: list[str], compress: bool, tmp_path: Path) -> None:
    """A FIFO or a shell's `<(zcat …)` cannot seek: it is read like a file, gzip or not."""
    data = "".join(line + "\n" for line in MIXED_LOG).encode()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with subprocess.Popen([sys.executable, "-m", "sipwatch", *command, str(fifo)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        with open(fifo, "wb") as writer:
            writer.write(gzip.compress(data) if compress else data)
        out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and "Traceback" not in err
    events = json.loads(out)["events"] if command[0] == "scan" else len(out.splitlines())
    assert events == 11


COMPRESSORS = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}


@pytest.mark.parametrize("name", COMPRESSORS)
def test_scan_reads_logs_compressed_as_logrotate_may(run_cli: Cli, tmp_path: Path, name: str) -> None:
    """gzip by default, xz or bzip2 with `compresscmd`; streams concatenated are one log."""
    compress = COMPRESSORS[name]
    data = "".join(line + "\n" for line in MIXED_LOG).encode()
    path = tmp_path / "messages.2.compressed"
    path.write_bytes(compress(data[:1000]) + compress(data[1000:]))
    report = json.loads(run_cli("scan", "--json", str(path)).stdout)
    assert (report["lines"], report["events"], report["errors"]) == (len(MIXED_LOG), 11, [])


@pytest.mark.parametrize("name", COMPRESSORS)
def test_a_truncated_archive_is_reported_and_keeps_what_came_before(run_cli: Cli, tmp_path: Path,
                                                                    name: str) -> None:
    data = "".join(line + "\n" for line in brute_force_lines(60) * 200).encode()  # more than a bzip2 block
    packed = COMPRESSORS[name](data)
    path = tmp_path / "messages.1.cut"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    proc = run_cli("scan", "--json", str(path))
    assert proc.returncode != 0 and str(path) in proc.stderr and "truncated" in proc.stderr
    assert no_traceback(proc)
    assert json.loads(proc.stdout)["events"] > 0


@pytest.mark.parametrize(("magic", "tool"), [(b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4")])
def test_an_archive_python_cannot_read_says_how_to_read_it(run_cli: Cli, tmp_path: Path, magic: bytes,
                                                         tool: str) -> None:
    """Not scanned as junk lines (an empty report would look like a quiet log)."""
    path = tmp_path / "messages.1.zst"
    path.write_bytes(magic + b"\x00" * 64)
    proc = run_cli("scan", str(path))
    assert proc.returncode != 0 and no_traceback(proc)
    assert f"{tool}-compressed" in proc.stderr and f"{tool}cat" in proc.stderr


def test_a_byte_order_mark_does_not_hide_the_first_line(run_cli: Cli, tmp_path: Path) -> None:
    """A log saved by a Windows editor starts with U+FEFF: its first line is read like the others."""
    path = tmp_path / "messages"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(line + "\n" for line in brute_force_lines(6)).encode())
    (offender,) = json.loads(run_cli("scan", "--json", str(path)).stdout)["offenders"]
    assert offender["events"] == 6


def test_scan_several_files_are_merged(run_cli: Cli, log_path: LogPath) -> None:
    """Events from two files (e.g. `messages` and `security`) are merged into one report."""
    first = log_path(brute_force_lines(3))
    second = log_path(brute_force_lines(3, minute=1))
    report = json.loads(run_cli("scan", "--json", str(first), str(second)).stdout)
    (offender,) = report["offenders"]
    assert (offender["ip"], offender["events"], offender["decision"]) == (ATTACKER, 6, "ban")


def test_scan_missing_file(run_cli: Cli, tmp_path: Path) -> None:
    """A missing file: a one-line message naming it on stderr, non-zero exit, no traceback."""
    missing = tmp_path / "nope.log"
    proc = run_cli("scan", str(missing))
    assert proc.returncode != 0
    assert str(missing) in proc.stderr and "no such file" in proc.stderr
    assert no_traceback(proc)


def test_scan_directory_instead_of_file(run_cli: Cli, tmp_path: Path) -> None:
    """A directory is refused clearly."""
    proc = run_cli("scan", str(tmp_path))
    assert proc.returncode != 0
    assert str(tmp_path) in proc.stderr
    assert no_traceback(proc)


def test_scan_missing_file_does_not_hide_the_others(run_cli: Cli, log_path: LogPath, tmp_path: Path) -> None:
    """One unreadable file is reported; the readable ones are still scanned."""
    good = log_path(brute_force_lines())
    proc = run_cli("scan", "--json", str(tmp_path / "nope.log"), str(good))
    assert proc.returncode != 0
    assert [o["ip"] for o in json.loads(proc.stdout)["offenders"]] == [ATTACKER]


def test_scan_empty_file(run_cli: Cli, log_path: LogPath) -> None:
    """An empty file is a clean, empty report."""
    proc = run_cli("scan", "--json", str(log_path(b"")))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["lines"], report["events"], report["offenders"]) == (0, 0, [])


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(256)) * 64, id="all-byte-values"),
        pytest.param(b"\x00" * 4096 + b"\n" + b"\xff\xfe" * 2048, id="nul-and-ff"),
        pytest.param(b"\x7fELF\x02\x01\x01" + bytes(4000), id="elf-header"),
    ],
)
def test_scan_binary_junk(run_cli: Cli, log_path: LogPath, content: bytes) -> None:
    """Binary input (a wrong file given by mistake) is read without error or findings."""
    proc = run_cli("scan", "--json", str(log_path(content)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["offenders"] == []
    assert no_traceback(proc)


def test_scan_invalid_utf8_in_caller_text(run_cli: Cli, log_path: LogPath) -> None:
    """Invalid UTF-8 in a header value does not lose the event around it."""
    lines = [line.encode() for line in brute_force_lines(6)]
    lines[0] = lines[0].replace(b'"100"', b'"\xff\xfe\xc3("')
    proc = run_cli("scan", "--json", str(log_path(b"\n".join(lines) + b"\n")))
    assert proc.returncode == 0, proc.stderr
    (offender,) = json.loads(proc.stdout)["offenders"]
    assert (offender["ip"], offender["events"]) == (ATTACKER, 6)


def test_scan_ten_megabyte_line(run_cli: Cli, log_path: LogPath) -> None:
    """A 10 MB line is skipped as junk; the lines around it are read."""
    huge = ("[2024-05-01 09:59:59] NOTICE[3021] chan_sip.c: Registration from '" + "A" * (10 << 20)
            + "' failed for '203.0.113.66:5060' - Wrong password")
    proc = run_cli("scan", "--json", str(log_path([*brute_force_lines(3), huge, *brute_force_lines(3, minute=1)])))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["lines"] == 7
    assert report["junk"] == 1
    assert [(o["ip"], o["events"]) for o in report["offenders"]] == [(ATTACKER, 6)]


def _truncated_gzip(tmp_path: Path, lines: list[str]) -> Path:
    data = gzip.compress("".join(line + "\n" for line in lines).encode())
    path = tmp_path / "messages.2.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_scan_truncated_gzip_is_reported(run_cli: Cli, tmp_path: Path) -> None:
    """A truncated archive: a clear message naming the file, non-zero exit, no traceback."""
    path = _truncated_gzip(tmp_path, brute_force_lines(60) * 50)
    proc = run_cli("scan", "--json", str(path))
    assert proc.returncode != 0
    assert str(path) in proc.stderr and "truncated" in proc.stderr
    assert no_traceback(proc)


def test_scan_truncated_gzip_keeps_the_events_before_the_cut(run_cli: Cli, tmp_path: Path) -> None:
    """Whatever could be decompressed before the truncation is still scanned."""
    path = _truncated_gzip(tmp_path, brute_force_lines(60) * 50)
    report = json.loads(run_cli("scan", "--json", str(path)).stdout)
    assert report["events"] > 0


@pytest.mark.parametrize("command", [["explain", "--jsonl"], ["explain"], ["scan"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path, command: list[str]) -> None:
    """`sipwatch explain --jsonl big.log | head -1`: no traceback and no "Exception ignored" on stderr."""
    log = tmp_path / "big.log"
    log.write_text("".join(line + "\n" for line in brute_force_lines(60)) * 1200)  # > 2 read buffers
    sipwatch = subprocess.Popen([sys.executable, "-m", "sipwatch", *command, str(log)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    assert sipwatch.stdout is not None and sipwatch.stderr is not None
    sipwatch.stdout.readline()
    sipwatch.stdout.close()  # as `head -1` does
    stderr = sipwatch.stderr.read().decode()
    assert sipwatch.wait(timeout=60) == 0
    assert stderr == ""


def test_scan_broken_config_names_the_key(run_cli: Cli, mixed_log: Path, tmp_path: Path) -> None:
    """A wrong type in the TOML file: the message names the file and the dotted key; exit 2."""
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text('[detectors.brute_force]\nattempts = "six"\n')
    proc = run_cli("scan", "--config", str(cfg), str(mixed_log))
    assert proc.returncode == 2
    assert "detectors.brute_force.attempts" in proc.stderr and str(cfg) in proc.stderr
    assert no_traceback(proc)


def test_scan_config_with_unknown_key(run_cli: Cli, mixed_log: Path, tmp_path: Path) -> None:
    """A misspelt key is named too."""
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text("[policy]\nallow_list = ['192.0.2.0/24']\n")
    proc = run_cli("scan", "--config", str(cfg), str(mixed_log))
    assert proc.returncode == 2
    assert "policy.allow_list" in proc.stderr
    assert no_traceback(proc)


def test_scan_config_that_is_not_toml(run_cli: Cli, mixed_log: Path, tmp_path: Path) -> None:
    """A syntax error is reported as such, with the file name."""
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text("[detectors.brute_force\nattempts = 3\n")
    proc = run_cli("scan", "--config", str(cfg), str(mixed_log))
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "TOML" in proc.stderr
    assert no_traceback(proc)


def test_scan_config_changes_the_decision(run_cli: Cli, log_path: LogPath, tmp_path: Path) -> None:
    """The config is applied: an allowlisted attacker is alerted on, not banned."""
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text('[policy]\nallowlist = ["198.51.100.0/24"]\n')
    report = json.loads(run_cli("scan", "--json", "--config", str(cfg), str(log_path(brute_force_lines()))).stdout)
    assert [(o["ip"], o["decision"]) for o in report["offenders"]] == [(ATTACKER, "alert")]


# --- explain -------------------------------------------------------------------------------------------

EXPLAIN_LOG = [
    "[2024-05-01 09:59:00] VERBOSE[3021] pbx.c: Executing [s@from-internal:1] NoOp(\"SIP/6001-00000001\", \"\")",
    f"[2024-05-01 09:59:01] NOTICE[3021] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for "
    f"'{ATTACKER}:5060' - Wrong password",
    f"[2024-05-01 10:00:00] NOTICE[3021] chan_sip.c: Call from '' ({ATTACKER}:5060) to extension '1",
    "2",
    "' rejected because extension not found in context 'default'.",
    f"[2024-05-01 10:00:02] NOTICE[3021] res_pjsip_session.c: Call from 'anonymous' (UDP:{SCANNER}:5060) to "
    "extension '0046812345678' rejected because extension not found in context 'from-external'.",
    "2024-05-01 10:00:03.523341 96.77% [WARNING] sofia_reg.c:3210 Can't find user [1001@203.0.113.10] from "
    f"{SCANNER}",
]


def _explain(run_cli: Cli, path: Path) -> list[dict[str, object]]:
    proc = run_cli("explain", "--jsonl", str(path))
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_explain_jsonl_fields(run_cli: Cli, log_path: LogPath) -> None:
    """Every JSON line cites the file and line and gives kind, ip, service, account and target."""
    path = log_path(EXPLAIN_LOG)
    records = _explain(run_cli, path)
    assert records
    for record in records:
        assert {"file", "line", "kind", "ip", "service", "account", "target"} <= set(record)
        assert record["file"] == str(path)


def test_explain_jsonl_line_numbers_are_physical_and_one_based(run_cli: Cli, log_path: LogPath) -> None:
    """`line` is where the record starts in the file, also for a record spanning three lines."""
    records = _explain(run_cli, log_path(EXPLAIN_LOG))
    assert [(r["line"], r["kind"]) for r in records] == [
        (2, "auth_failure"), (3, "injection"), (6, "rejected_call"), (7, "unknown_account")]


def test_explain_jsonl_values(run_cli: Cli, log_path: LogPath) -> None:
    """The fields carry what the line says."""
    records = _explain(run_cli, log_path(EXPLAIN_LOG))
    picked = [(r["ip"], r["service"], r["account"], r["target"]) for r in records]
    assert picked == [
        (ATTACKER, "SIP", "100", None),
        (ATTACKER, "SIP", None, "1\n2\n"),
        (SCANNER, "PJSIP", None, "0046812345678"),
        (SCANNER, "FreeSWITCH", "1001", None),
    ]


def test_explain_missing_file(run_cli: Cli, tmp_path: Path) -> None:
    """`explain` reports a missing file like `scan` does."""
    proc = run_cli("explain", "--jsonl", str(tmp_path / "nope.log"))
    assert proc.returncode != 0
    assert "no such file" in proc.stderr
    assert no_traceback(proc)


def test_explain_text_names_the_format(run_cli: Cli, log_path: LogPath) -> None:
    """The human form of `explain` says which format matched, per record."""
    path = log_path(EXPLAIN_LOG)
    proc = run_cli("explain", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"{path}:2: format chan_sip.register_failed" in proc.stdout


def test_the_report_keys_its_counts_by_plain_text_and_any_other_key_is_still_written(tmp_path: Path) -> None:
    """orjson writes a document whose keys are all exact `str` twice as fast: the report's counts by kind and by
    action are keyed by their text; a document with another key (an enum member, a number) goes through `json`,
    and reads the same."""
    from sipwatch.cli import _json_line
    from sipwatch.config import Config
    from sipwatch.detectors import Action
    from sipwatch.event import Kind
    from sipwatch.report import to_json
    from sipwatch.scan import scan

    log = tmp_path / "a.log"
    log.write_text("".join(f"[2024-05-01 10:00:0{i}] NOTICE[1] chan_sip.c: Registration from '<sip:10{i}@x>' failed "
                           f"for '198.51.100.7:5060' - Wrong password\n" for i in range(8)))
    report = to_json(scan([str(log)], Config()))
    counts = [report["kinds"], report["decision_counts"], *(o["kinds"] for o in report["offenders"])]
    assert counts[0] and all(type(key) is str for count in counts for key in count)
    odd = {Kind.AUTH_FAILURE: 3, Action.BAN: 1, 7: "x"}
    assert json.loads(_json_line(odd)) == {"auth_failure": 3, "ban": 1, "7": "x"}


@pytest.mark.parametrize("name", ["attacks.log", "odd \"offenders\":[] name.log", "bytes-\udcff.log"])
def test_the_report_written_offender_by_offender_is_the_whole_report_written_at_once(tmp_path: Path, name: str) -> None:
    """`--json` writes each offender as soon as it is made (their memory is reused): byte for byte what writing
    the whole report at once gives, for a file name that holds the text the offenders are put in after, and for
    one that is not valid Unicode (then `json` writes it all)."""
    from generated import genlog
    from sipwatch.cli import _json_line, _report_json
    from sipwatch.config import Config
    from sipwatch.report import ranked, to_json
    from sipwatch.scan import scan

    log = genlog(tmp_path / "gen.log", 3000, seed=3)
    named = tmp_path / name
    try:
        log.rename(named)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system does not take such a name")
    result = scan([str(named)], Config())
    assert len(result.offenders) > 10
    written = _report_json(result)
    assert written == _json_line(to_json(result))
    assert [o["ip"] for o in json.loads(written)["offenders"]] == [str(o.ip) for o in ranked(result)]
