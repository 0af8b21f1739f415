"""The live daemon: same parsers and detectors as `scan`, a store that survives restarts, and bans."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from sipwatch.config import Config, from_dict
from sipwatch.daemon import Daemon
from sipwatch.responders.firewall.dryrun import DryRunBackend
from sipwatch.store import Store

ATTACK = ("[2024-05-01 10:00:{s:02d}] NOTICE[2817] chan_sip.c: Registration from '<sip:{u}@203.0.113.10>' "
          "failed for '198.51.100.7:5060' - Wrong password")


def _config(log: Path, **run: object) -> Config:
    return from_dict({"run": {"watch": [str(log)], "backend": "dry-run", "read_existing": True, **run}})


def _daemon(tmp_path: Path, log: Path, backend: DryRunBackend | None = None) -> Daemon:
    daemon = Daemon(_config(log), backend or DryRunBackend(), Store(str(tmp_path / "state" / "sipwatch.db")))
    daemon.reconcile()
    daemon.refresh()
    return daemon


def _write(log: Path, lines: list[str]) -> None:
    with log.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def test_the_deciding_line_bans(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.touch()
    backend = DryRunBackend()
    daemon = _daemon(tmp_path, log, backend)
    _write(log, [ATTACK.format(s=i, u=100) for i in range(5)])
    assert daemon.step().banned == []
    _write(log, [ATTACK.format(s=5, u=100)])
    (ban,) = daemon.step().banned
    assert ban.ip == ipaddress.ip_address("198.51.100.7") and ban.seconds == 3600
    assert ipaddress.ip_address("198.51.100.7") in backend.banned()


def test_restart_resumes_without_losing_or_recounting_lines(tmp_path: Path) -> None:
    """Five failures before a restart and one after still make six: nothing lost, nothing counted twice
    (the detectors restart empty, so the first run's five are re-read only if positions were lost)."""
    log = tmp_path / "messages"
    log.touch()
    first = _daemon(tmp_path, log)
    _write(log, [ATTACK.format(s=i, u=100) for i in range(3)])
    assert first.step().lines == 3
    first.store.close()
    _write(log, [ATTACK.format(s=3 + i, u=100) for i in range(3)])
    second = _daemon(tmp_path, log)
    result = second.step()
    assert result.lines == 3  # only the lines written while it was down


def test_bans_survive_a_restart_in_the_store_and_are_reconciled(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.touch()
    daemon = _daemon(tmp_path, log)
    _write(log, [ATTACK.format(s=i, u=100) for i in range(6)])
    daemon.step()
    daemon.store.close()
    fresh_kernel = DryRunBackend()
    _daemon(tmp_path, log, fresh_kernel)
    assert ipaddress.ip_address("198.51.100.7") in fresh_kernel.banned()


def test_a_repeat_offender_is_banned_longer(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.touch()
    daemon = _daemon(tmp_path, log)
    _write(log, [ATTACK.format(s=i, u=100) for i in range(6)])
    assert daemon.step().banned[0].seconds == 3600
    later = [f"[2024-05-01 12:00:{i:02d}] NOTICE[2817] chan_sip.c: Registration from '<sip:1@x>' failed for "
             "'198.51.100.7:5060' - Wrong password" for i in range(6)]
    _write(log, later)
    assert daemon.step().banned[0].seconds == 4 * 3600


def test_the_hosts_own_address_is_never_banned(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.touch()
    daemon = _daemon(tmp_path, log)
    daemon.pipeline.policy.own = {ipaddress.ip_address("198.51.100.7")}
    _write(log, [ATTACK.format(s=i, u=100) for i in range(6)])
    result = daemon.step()
    assert result.banned == [] and result.decisions[0].action == "alert"


def test_an_unwritable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    from sipwatch.store import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(str(blocker / "sub" / "sipwatch.db"))


def test_latency_from_write_to_ban_is_milliseconds(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.touch()
    daemon = _daemon(tmp_path, log)
    _write(log, [ATTACK.format(s=i, u=100) for i in range(5)])
    daemon.step()
    started = time.perf_counter()
    _write(log, [ATTACK.format(s=5, u=100)])
    assert daemon.step().banned
    assert time.perf_counter() - started < 0.15  # one sample; the bench measures p50/p99


def test_decisions_go_to_the_json_log_for_a_siem(tmp_path: Path) -> None:
    import json

    log, siem = tmp_path / "messages", tmp_path / "sipwatch.json"
    log.touch()
    config = _config(log, json_log=str(siem))
    daemon = Daemon(config, DryRunBackend(), Store(str(tmp_path / "state" / "sipwatch.db")))
    daemon.reconcile()
    daemon.refresh()
    _write(log, [ATTACK.format(s=i, u=100) for i in range(6)])
    daemon.step()
    (record,) = [json.loads(line) for line in siem.read_text().splitlines()]
    assert (record["action"], record["ip"], record["detector"]) == ("ban", "198.51.100.7", "brute_force")
