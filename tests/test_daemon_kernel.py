"""End to end with the real kernel: the daemon tails a log file, the attacker streams UDP to the PBX, the
test writes the attack lines; after the deciding line the PBX hears nothing more from the attacker
(including its established flow) while the phone still gets through. IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
import os
import shutil
import time
from pathlib import Path
from subprocess import Popen

import pytest

from netlab import (
    ATTACKER4,
    ATTACKER6,
    LISTENER,
    PBX4_A,
    PBX4_P,
    PBX6_A,
    PBX6_P,
    PHONE4,
    PHONE6,
    SENDER,
    Lab,
    assert_flows,
    make_lab,
    run_in,
)
from sipwatch.config import from_dict
from sipwatch.daemon import Daemon
from sipwatch.responders.firewall.nftables import NftablesBackend
from sipwatch.store import Store

lab = pytest.fixture(make_lab)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and nftables"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs the Debian package nftables (`nft`)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 (`ip`)"),
]

LINE = ("[{ts}] NOTICE[2817] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:6001@203.0.113.1>' "
        "failed for '{addr}' (callid: {n}) - Failed to authenticate")


def _running(tmp_path: Path, lab: Lab, version: int) -> tuple[Path, Daemon, Popen[str], list[Popen[str]]]:
    """A daemon with 2 s bans following an empty log, a listener in the PBX namespace, and the attacker's
    and the phone's UDP flows to it, established."""
    attacker, phone = (ATTACKER4, PHONE4) if version == 4 else (ATTACKER6, PHONE6)
    pbx_a, pbx_p = (PBX4_A, PBX4_P) if version == 4 else (PBX6_A, PBX6_P)
    log = tmp_path / "messages"
    log.touch()
    config = from_dict({"run": {"watch": [str(log)], "backend": "nftables", "read_existing": True},
                        "policy": {"ban_strong": "2s", "ban_weak": "2s"}})
    daemon = Daemon(config, NftablesBackend(netns=lab.pbx), Store(str(tmp_path / "state" / "sipwatch.db")))
    daemon.reconcile()
    daemon.refresh()
    listener = run_in(lab.pbx, LISTENER, str(version), "5")
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    senders = [run_in(lab.atk, SENDER, pbx_a, "4.5", attacker), run_in(lab.phone, SENDER, pbx_p, "4.5", phone)]
    time.sleep(0.5)
    return log, daemon, listener, senders


@pytest.mark.parametrize("version", [4, 6])
def test_daemon_stops_the_attacker_within_milliseconds(tmp_path: Path, lab: Lab, version: int) -> None:
    attacker, phone = (ATTACKER4, PHONE4) if version == 4 else (ATTACKER6, PHONE6)
    log, daemon, listener, senders = _running(tmp_path, lab, version)
    addr = f"{attacker}:40000" if version == 4 else f"[{attacker}]:40000"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with log.open("a") as fh:
        fh.write("".join(LINE.format(ts=stamp, addr=addr, n=i) + "\n" for i in range(5)))
    assert daemon.step().banned == []
    with log.open("a") as fh:
        fh.write(LINE.format(ts=stamp, addr=addr, n=5) + "\n")
    written = time.monotonic()
    (ban,) = daemon.step().banned
    applied = time.monotonic()
    assert ban.ip == ipaddress.ip_address(attacker)
    # one sample on a shared CI machine: a loose bound here, the p50/p99 are bench/bench_ban_latency.py's job
    assert applied - written < 0.15, f"deciding line to kernel set in {1000 * (applied - written):.1f} ms"
    out, _ = listener.communicate(timeout=15)
    for sender in senders:
        sender.wait(timeout=10)
    assert_flows(out, attacker, phone, written, applied, quiet_until=written + 1.9, back_after=written + 2.1)
    daemon.backend.remove()


def test_a_rotating_ipv6_attacker_loses_its_whole_64(tmp_path: Path, lab: Lab) -> None:
    """Ten failures, each from another address of the attacker's /64 (none of them the address its flow
    comes from): the daemon bans the /64 in the kernel, which stops the attacker's flow and not the phone's
    (another /64); a second daemon, after the kernel lost everything, puts the network ban back."""
    log, daemon, listener, senders = _running(tmp_path, lab, 6)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    network = ipaddress.ip_network(f"{ATTACKER6}/64", strict=False)
    with log.open("a") as fh:
        fh.write("".join(LINE.format(ts=stamp, addr=f"[{network[0x100 + i]}]:5060", n=i) + "\n" for i in range(9)))
    assert daemon.step().banned == []
    with log.open("a") as fh:
        fh.write(LINE.format(ts=stamp, addr=f"[{network[0x200]}]:5060", n=9) + "\n")
    written = time.monotonic()
    (ban,) = daemon.step().banned
    applied = time.monotonic()
    assert ban.ip == network
    out, _ = listener.communicate(timeout=15)
    for sender in senders:
        sender.wait(timeout=10)
    assert_flows(out, ATTACKER6, PHONE6, written, applied, quiet_until=written + 1.9, back_after=written + 2.1)
    daemon.backend.remove()  # the kernel loses everything
    second = Daemon(daemon.config, NftablesBackend(netns=lab.pbx), Store(str(tmp_path / "state" / "sipwatch.db")))
    # the 2 s ban is over by now: make the stored one run on, as a real one (an hour) would
    second.store.db.execute("UPDATE bans SET until = ? WHERE ip = ?", (time.time() + 600, str(network)))
    second.reconcile()
    assert network in second.backend.banned()
    second.backend.remove()


def test_bans_stay_in_the_kernel_when_the_daemon_dies_and_are_reconciled(tmp_path: Path, lab: Lab) -> None:
    """A daemon that dies without cleaning up (kill -9) leaves its bans in the kernel; the next one
    finds them, and puts back any that the kernel lost (a firewall reload, say)."""
    log = tmp_path / "messages"
    log.touch()
    config = from_dict({"run": {"watch": [str(log)], "backend": "nftables", "read_existing": True}})
    first = Daemon(config, NftablesBackend(netns=lab.pbx), Store(str(tmp_path / "state" / "sipwatch.db")))
    first.reconcile()
    first.refresh()
    addr = f"{ATTACKER4}:5060"
    with log.open("a") as fh:
        fh.write("".join(LINE.format(ts="2024-05-01 10:00:00", addr=addr, n=i) + "\n" for i in range(6)))
    assert first.step().banned
    del first  # no stop, no cleanup
    kernel = NftablesBackend(netns=lab.pbx)
    assert ipaddress.ip_address(ATTACKER4) in kernel.banned()
    kernel.remove()  # the kernel loses everything
    second = Daemon(config, NftablesBackend(netns=lab.pbx), Store(str(tmp_path / "state" / "sipwatch.db")))
    second.reconcile()
    assert ipaddress.ip_address(ATTACKER4) in second.backend.banned()
    second.backend.remove()


@pytest.mark.parametrize("version", [4, 6])
def test_sipwatch_run_inside_the_pbx_namespace(tmp_path: Path, lab: Lab, version: int) -> None:
    """The real thing: `sipwatch run` started inside the PBX's namespace, as a service would be."""
    import subprocess
    import sys

    attacker, phone = (ATTACKER4, PHONE4) if version == 4 else (ATTACKER6, PHONE6)
    pbx_a, pbx_p = (PBX4_A, PBX4_P) if version == 4 else (PBX6_A, PBX6_P)
    log, state, cfg = tmp_path / "messages", tmp_path / "state", tmp_path / "sipwatch.toml"
    log.touch()
    cfg.write_text('[policy]\nban_strong = "2s"\nban_weak = "2s"\n')
    daemon = subprocess.Popen(["ip", "netns", "exec", lab.pbx, sys.executable, "-m", "sipwatch", "run", "--config",
                               str(cfg), "--watch", str(log), "--state-dir", str(state)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (state / "sipwatch.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        listener = run_in(lab.pbx, LISTENER, str(version), "5")
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        senders = [run_in(lab.atk, SENDER, pbx_a, "4.5", attacker), run_in(lab.phone, SENDER, pbx_p, "4.5", phone)]
        time.sleep(0.5)
        addr = f"{attacker}:40000" if version == 4 else f"[{attacker}]:40000"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with log.open("a") as fh:
            fh.write("".join(LINE.format(ts=stamp, addr=addr, n=i) + "\n" for i in range(6)))
        written = time.monotonic()
        kernel = NftablesBackend(netns=lab.pbx)
        while ipaddress.ip_address(attacker) not in kernel.banned() and time.monotonic() < written + 5:
            time.sleep(0.005)
        seen = time.monotonic()
        assert seen - written < 0.3, f"in the kernel set after {1000 * (seen - written):.0f} ms (polled)"
        out, _ = listener.communicate(timeout=15)
        for sender in senders:
            sender.wait(timeout=10)
        assert_flows(out, attacker, phone, written, seen, quiet_until=written + 1.9, back_after=written + 2.1)
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        NftablesBackend(netns=lab.pbx).remove()
