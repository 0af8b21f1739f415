"""The systemd journal as a source, read with journalctl from a real journal file (written by
systemd-journal-remote), resumed by cursor after a restart."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sipwatch.config import from_dict
from sipwatch.daemon import Daemon
from sipwatch.responders.firewall.dryrun import DryRunBackend
from sipwatch.store import Store

REMOTE = "/lib/systemd/systemd-journal-remote"
pytestmark = [
    pytest.mark.skipif(shutil.which("journalctl") is None, reason="needs journalctl (systemd)"),
    pytest.mark.skipif(not Path(REMOTE).exists(), reason="needs the Debian package systemd-journal-remote"),
]

MESSAGE = ("NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:100@203.0.113.1>' "
           "failed for '198.51.100.7:5060' - Wrong password")


def _append(journal: Path, first: int, count: int) -> None:
    entries = "".join(
        f"__REALTIME_TIMESTAMP={1714557600000000 + i * 1000000}\n__MONOTONIC_TIMESTAMP={1000 + i}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT=asterisk.service\n"
        f"SYSLOG_IDENTIFIER=asterisk\nMESSAGE={MESSAGE}\n\n"
        for i in range(first, first + count))
    subprocess.run([REMOTE, f"--output={journal}", "-"], input=entries, text=True, check=True, capture_output=True)


def _daemon(tmp_path: Path, journal: Path) -> Daemon:
    config = from_dict({"run": {"watch": [f"journal-file:{journal}"], "backend": "dry-run", "read_existing": True}})
    daemon = Daemon(config, DryRunBackend(), Store(str(tmp_path / "state" / "sipwatch.db")))
    daemon.reconcile()
    daemon.refresh()
    return daemon


def _step_until(daemon: Daemon, lines: int, seconds: float = 10.0) -> int:
    seen = 0
    deadline = time.monotonic() + seconds
    while seen < lines and time.monotonic() < deadline:
        result = daemon.step()
        seen += result.lines
        time.sleep(0.05)
    return seen


def test_journal_entries_are_read_and_ban(tmp_path: Path) -> None:
    journal = tmp_path / "asterisk.journal"
    _append(journal, 0, 6)
    daemon = _daemon(tmp_path, journal)
    assert _step_until(daemon, 6) == 6
    assert [b.ip.compressed for b in daemon.store.bans()] == ["198.51.100.7"]
    for followed in daemon.followed.values():
        followed.follower.close()


def test_a_restart_resumes_after_the_saved_cursor(tmp_path: Path) -> None:
    journal = tmp_path / "asterisk.journal"
    _append(journal, 0, 3)
    first = _daemon(tmp_path, journal)
    assert _step_until(first, 3) == 3
    for followed in first.followed.values():
        followed.follower.close()
    first.store.close()
    _append(journal, 3, 2)
    second = _daemon(tmp_path, journal)
    assert _step_until(second, 5, seconds=3) == 2  # only the two new entries
    for followed in second.followed.values():
        followed.follower.close()


def _append_raw(journal: Path, messages: list[bytes], first: int = 0) -> None:
    """Entries in journald's binary-safe export format (a field's length before its bytes)."""
    entries = b"".join(
        b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"
        b"_SYSTEMD_UNIT=asterisk.service\nSYSLOG_IDENTIFIER=asterisk\nMESSAGE\n%s%s\n\n"
        % (1714557600000000 + (first + i) * 1000000, 1000 + first + i, len(m).to_bytes(8, "little"), m)
        for i, m in enumerate(messages))
    subprocess.run([REMOTE, f"--output={journal}", "-"], input=entries, check=True, capture_output=True)


@pytest.mark.parametrize(
    ("user", "why"),
    [
        pytest.param(b"\xff100", "journalctl writes a MESSAGE that is not UTF-8 as an array of byte values",
                     id="invalid-utf8"),
        pytest.param(b"\x1b[1m100", "and one with a control character", id="control-character"),
        pytest.param(b"1" * 5000, "a field over 4096 bytes is null unless journalctl runs with --all", id="long"),
    ],
)
def test_a_caller_cannot_hide_a_line_from_the_journal_source(tmp_path: Path, user: bytes, why: str) -> None:
    journal = tmp_path / "asterisk.journal"
    line = (b"NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:%s@203.0.113.1>' "
            b"failed for '198.51.100.9:5060' - Wrong password" % user)
    _append_raw(journal, [line] * 6)
    daemon = _daemon(tmp_path, journal)
    assert _step_until(daemon, 6) == 6
    assert [b.ip.compressed for b in daemon.store.bans()] == ["198.51.100.9"], why
    for followed in daemon.followed.values():
        followed.follower.close()
