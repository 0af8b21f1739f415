"""Attacking the testbed's Asterisk from namespaces of their own, and measuring what it heard.

* `Meter`: nftables counters in the PBX's namespace, per peer address: SIP requests sent to port 5060
  (counted before any firewall, at prerouting priority -400) and requests that reached Asterisk (input
  hook, after sipwatch's drop at priority raw). ACKs are not requests of their own, so they are not counted.
* `sipp(...)`: one bounded SIPp run (scenarios in tests/sipp/), its exit code and final statistics.
* `Phone`: the legitimate phone, SIPp with the right credentials: registers, then calls the answering
  test line 7000 in the background until told to stop, and reports the calls that completed.
* `wait_for_ban(...)`: asks the running daemon over its control socket, with a deadline.

Everything sent goes to addresses inside the namespaces the tests create.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sipwatch.control import request

SCENARIOS = Path(__file__).resolve().parent / "sipp"
# the first three bytes of an ACK, as nft sees them after the 8-byte UDP header
NOT_ACK = "udp dport 5060 @th,64,24 != 0x41434b"


def pbx_side(peer: str) -> str:
    """The PBX's address on the veth to `peer`: the first of the peer's /28 (peers live in /28s)."""
    return str(next(ipaddress.ip_network(f"{peer}/28", strict=False).hosts()))


class Meter:
    """Per-peer request counters in the PBX's namespace: `sent` (all that arrived) and `heard` (what
    passed the firewall to Asterisk)."""

    TABLE = "swmeter"

    def __init__(self, pbx: str) -> None:
        self.pbx, self.peers = pbx, list[str]()
        self._nft(f"table inet {self.TABLE} {{\n"
                  " chain pre { type filter hook prerouting priority -400; policy accept; }\n"
                  " chain in { type filter hook input priority 0; policy accept; }\n}\n")

    def _nft(self, rules: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.pbx, "nft", "-f", "-"], input=rules, text=True, check=True)

    def add(self, peer: str) -> None:
        n = len(self.peers)
        self.peers.append(peer)
        t = f"inet {self.TABLE}"
        self._nft(f"add counter {t} sent{n}\nadd counter {t} heard{n}\n"
                  f'add rule {t} pre ip saddr {peer} {NOT_ACK} counter name "sent{n}"\n'
                  f'add rule {t} in ip saddr {peer} {NOT_ACK} counter name "heard{n}"\n')

    def read(self, peer: str) -> tuple[int, int]:
        """(requests sent by `peer`, requests Asterisk heard from it) so far."""
        n = self.peers.index(peer)
        listing = subprocess.run(["ip", "netns", "exec", self.pbx, "nft", "-j", "list", "counters", "table", "inet",
                                  self.TABLE], capture_output=True, text=True, check=True).stdout
        counters = {c["counter"]["name"]: c["counter"]["packets"] for c in json.loads(listing)["nftables"]
                    if "counter" in c}
        return counters[f"sent{n}"], counters[f"heard{n}"]

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.pbx, "nft", "delete", "table", "inet", self.TABLE],
                       capture_output=True)


@dataclass
class SippRun:
    code: int
    successful: int
    failed: int


def sipp_command(ns: str, scenario: str, local: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, "sipp", pbx_side(local), "-sf", str(SCENARIOS / scenario), "-i", local,
            "-nostdin", *args]


def stats(path: Path) -> tuple[int, int]:
    """(successful, failed) calls from the last line of SIPp's `-trace_stat` file."""
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return int(rows[-1]["SuccessfulCall(C)"]), int(rows[-1]["FailedCall(C)"])


def sipp(ns: str, scenario: str, local: str, workdir: Path, *args: str, timeout: float = 60) -> SippRun:
    """Run one SIPp scenario to its end (`-m` bounds the calls, `timeout` the time)."""
    stat = workdir / f"{scenario}.{time.monotonic_ns()}.csv"
    done = subprocess.run(sipp_command(ns, scenario, local, "-trace_stat", "-stf", str(stat), "-fd", "1", *args),
                          capture_output=True, text=True, timeout=timeout, cwd=workdir)
    return SippRun(done.returncode, *stats(stat))


class Phone:
    """The legitimate phone (account 6002): registered, then calling 7000 — answered, a second of
    silence, hung up by the PBX — two calls a second until `stop()`."""

    ACCOUNT, PASSWORD = "6002", "right-password-6002"

    def __init__(self, ns: str, address: str, workdir: Path) -> None:
        self.ns, self.address, self.workdir = ns, address, workdir
        self.stat = workdir / "phone.csv"
        self.calls: subprocess.Popen[str] | None = None

    def credentials(self) -> list[str]:
        return ["-s", self.ACCOUNT, "-au", self.ACCOUNT, "-ap", self.PASSWORD]

    def register(self) -> int:
        return sipp(self.ns, "phone_register.xml", self.address, self.workdir, *self.credentials(), "-m", "1",
                    "-p", "5062").code

    def start(self) -> None:
        self.calls = subprocess.Popen(
            sipp_command(self.ns, "phone_call.xml", self.address, *self.credentials(), "-p", "5064", "-r", "2",
                         "-l", "4", "-m", "120", "-timeout", "90s", "-trace_stat", "-stf", str(self.stat), "-fd", "1"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=self.workdir)

    def stop(self) -> SippRun:
        """Stop placing calls (SIPp's graceful quit: calls in progress finish) and count them."""
        assert self.calls is not None
        self.calls.send_signal(signal.SIGUSR1)
        try:
            code = self.calls.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.calls.kill()
            code = self.calls.wait()
        return SippRun(code, *stats(self.stat))


@dataclass
class Ban:
    detector: str
    reason: str
    since: float
    until: float


def wait_for_ban(state: Path, ip: str, timeout: float) -> Ban | None:
    """The daemon's ban of `ip`, asked over the control socket every 20 ms until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = request(str(state / "sipwatch.sock"), {"command": "bans-list"})
        found = [b for b in answer.get("bans", []) if b["ip"] == ip]
        if found:
            ban = found[0]
            return Ban(str(ban["detector"]), str(ban["reason"]), float(ban["since"]), float(ban["until"]))
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def first_heard(logs: Path, ip: str) -> float | None:
    """When Asterisk first logged anything from `ip` (messages and security log, millisecond stamps)."""
    stamps = [line[1:24] for name in ("messages.log", "security.log")
              for line in (logs / name).read_text().splitlines()
              if f"'{ip}:" in line or f"({ip}:" in line or f"/{ip}/" in line or f":{ip}:" in line]
    if not stamps:
        return None
    return min(datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").timestamp() for s in stamps)
