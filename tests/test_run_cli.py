"""`sipwatch run` as users start it (a process, the dry-run backend), and what survives `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

LINE = ("[2024-05-01 10:{m:02d}:{s:02d}] NOTICE[2817] chan_sip.c: Registration from '<sip:100@203.0.113.10>' "
        "failed for '198.51.100.{a}:5060' - Wrong password")


def _start(log: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sipwatch", "run", "--watch", str(log), "--backend", "dry-run", "--state-dir",
         str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sipwatch", *args], capture_output=True, text=True, timeout=60)


def _wait(predicate: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _stored_lines(state: Path) -> list[int]:
    db = sqlite3.connect(state / "sipwatch.db")
    try:
        return [row[0] for row in db.execute("SELECT line FROM events")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def test_run_bans_and_the_cli_lists_the_ban(tmp_path: Path) -> None:
    log, state = tmp_path / "messages", tmp_path / "state"
    log.touch()
    daemon = _start(log, state)
    try:
        assert _wait(lambda: (state / "sipwatch.db").exists())
        time.sleep(0.5)
        with log.open("a") as fh:
            fh.write("".join(LINE.format(m=0, s=i, a=7) + "\n" for i in range(6)))
        assert _wait(lambda: "198.51.100.7" in _cli("bans", "list", "--state-dir", str(state)).stdout)
        bans = json.loads(_cli("bans", "list", "--json", "--state-dir", str(state)).stdout)
        assert [(b["ip"], b["reason"].split(":")[0]) for b in bans] == [("198.51.100.7", "brute_force")]
        assert bans[0]["until"] > time.time()
        why = _cli("why", "198.51.100.7", "--state-dir", str(state)).stdout
        assert "brute_force" in why and "Wrong password" in why
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)


def test_kill_9_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    """Lines keep coming while the daemon is killed with SIGKILL and started again: every attack line
    is stored exactly once (the read positions are saved in the same transaction as the events)."""
    log, state = tmp_path / "messages", tmp_path / "state"
    log.touch()
    daemon = _start(log, state)
    assert _wait(lambda: (state / "sipwatch.db").exists())
    time.sleep(0.5)
    total = 0
    for burst in range(30):
        with log.open("a") as fh:  # one new address per 5 lines: below every threshold, nothing is blocked
            fh.write("".join(LINE.format(m=burst // 60, s=burst % 60, a=(total + i) // 5 % 250 + 1) + "\n"
                             for i in range(40)))
        total += 40
        if burst == 12:
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
            daemon = _start(log, state)
        time.sleep(0.05)
    try:
        assert _wait(lambda: len(_stored_lines(state)) >= total, 20)
        time.sleep(0.5)
        lines = _stored_lines(state)
        assert sorted(lines) == list(range(1, total + 1))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)


def test_run_refuses_a_broken_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "sipwatch.toml"
    cfg.write_text('[run]\nbackend = "iptables-legacy"\n')
    done = _cli("run", "--config", str(cfg))
    assert done.returncode == 2 and "run.backend" in done.stderr and str(cfg) in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "sipwatch.toml"
    done = _cli("check-config", str(example))
    assert done.returncode == 0, done.stderr


def test_the_control_socket_serves_status_and_manual_bans(tmp_path: Path) -> None:
    log, state = tmp_path / "messages", tmp_path / "state"
    log.touch()
    daemon = _start(log, state)
    sock = state / "sipwatch.sock"
    try:
        assert _wait(sock.exists)
        assert oct(sock.stat().st_mode & 0o777) == "0o600"  # root only
        status = _cli("status", "--state-dir", str(state))
        assert status.returncode == 0 and "following" in status.stdout and str(log) in status.stdout
        assert _cli("bans", "add", "203.0.113.9", "--for", "10m", "--state-dir", str(state)).returncode == 0
        bans = json.loads(_cli("bans", "list", "--json", "--state-dir", str(state)).stdout)
        assert [(b["ip"], b["reason"]) for b in bans] == [("203.0.113.9", "manual: banned by hand")]
        assert 500 < bans[0]["until"] - time.time() <= 600
        assert _cli("bans", "del", "203.0.113.9", "--state-dir", str(state)).returncode == 0
        assert json.loads(_cli("bans", "list", "--json", "--state-dir", str(state)).stdout) == []
        assert "not an IP address" in _cli("bans", "add", "nonsense", "--state-dir", str(state)).stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
    assert not sock.exists()
    assert _cli("status", "--state-dir", str(state)).returncode == 3


def test_the_daemon_bans_a_rotating_ipv6_network_and_the_cli_handles_networks(tmp_path: Path) -> None:
    """Twelve failures from twelve addresses of one /64: the daemon bans the /64 (one ban, stored under the
    network); `bans del` takes the network; `bans add` and `why` take one too."""
    log, state = tmp_path / "messages", tmp_path / "state"
    log.touch()
    daemon = _start(log, state)
    try:
        assert _wait((state / "sipwatch.sock").exists)
        with log.open("a") as fh:
            for i in range(12):
                fh.write(f"[2024-05-01 10:00:{i:02d}] NOTICE[2817] chan_sip.c: Registration from "
                         f"'<sip:{100 + i}@203.0.113.10>' failed for '[2001:db8:aa:bb::{i + 1:x}]:5060' - "
                         "Wrong password\n")
        assert _wait(lambda: "2001:db8:aa:bb::/64" in _cli("bans", "list", "--state-dir", str(state)).stdout)
        bans = json.loads(_cli("bans", "list", "--json", "--state-dir", str(state)).stdout)
        assert [b["ip"] for b in bans] == ["2001:db8:aa:bb::/64"] and "rotating" in bans[0]["reason"]
        assert "ipv6_rotation" in _cli("why", "2001:db8:aa:bb::/64", "--state-dir", str(state)).stdout
        member = _cli("why", "2001:db8:aa:bb::beef", "--state-dir", str(state)).stdout  # never seen itself
        assert "(within 2001:db8:aa:bb::/64) banned until" in member
        assert _cli("bans", "del", "2001:db8:aa:bb::/64", "--state-dir", str(state)).returncode == 0
        assert _cli("bans", "add", "2001:db8:cc::/48", "--state-dir", str(state)).returncode == 0
        listed = json.loads(_cli("bans", "list", "--json", "--state-dir", str(state)).stdout)
        assert [b["ip"] for b in listed] == ["2001:db8:cc::/48"]
        assert "not an IP address" in _cli("bans", "add", "10.0.0.0/8", "--state-dir", str(state)).stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
