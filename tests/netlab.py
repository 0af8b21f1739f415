"""Network namespaces for kernel tests: `pbx` joined by veth pairs to `atk` and `phone` (IPv4 and
IPv6 documentation addresses), the admin's own conntrack rules in `pbx`, and bounded UDP helpers."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sipwatch.responders.firewall import Backend, Ban

ATTACKER4, PHONE4, PBX4_A, PBX4_P = "198.51.100.10", "203.0.113.20", "198.51.100.1", "203.0.113.1"
ATTACKER6, PHONE6, PBX6_A, PBX6_P = "2001:db8:a::10", "2001:db8:b::20", "2001:db8:a::1", "2001:db8:b::1"

LISTENER = r"""
import socket, sys, time, select
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 5060))
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    if select.select([s], [], [], 0.05)[0]:
        data, addr = s.recvfrom(2048)
        print(f"{time.monotonic():.4f} {addr[0]}", flush=True)
"""

SENDER = r"""
import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((sys.argv[3], 40000))  # one source port: one conntrack flow, established after the first reply-less packet
end = time.monotonic() + float(sys.argv[2])
sent = 0
while time.monotonic() < end and sent < 5000:
    s.sendto(b"OPTIONS sip:100@pbx SIP/2.0\r\n\r\n", (sys.argv[1], 5060))
    sent += 1
    time.sleep(0.005)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def veth(pbx: str, peer: str, tag: str, pbx_addrs: Sequence[str], peer_addrs: Sequence[str]) -> None:
    """Join namespace `peer` to `pbx` by a veth pair (`p<tag>` on the PBX's side, `a<tag>` on the peer's),
    each side with its addresses (`addr/len`), both sides and their loopback up."""
    _ip("link", "add", f"p{tag}", "netns", pbx, "type", "veth", "peer", "name", f"a{tag}", "netns", peer)
    for ns, dev, addrs in ((pbx, f"p{tag}", pbx_addrs), (peer, f"a{tag}", peer_addrs)):
        for addr in addrs:
            _ip("-n", ns, "addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
        _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", ns, "link", "set", "lo", "up")


@dataclass
class Lab:
    pbx: str
    atk: str
    phone: str


def make_lab() -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    lab = Lab(f"swpbx{tag}", f"swatk{tag}", f"swph{tag}")
    for ns in (lab.pbx, lab.atk, lab.phone):
        _ip("netns", "add", ns)
    try:
        veth(lab.pbx, lab.atk, f"a{tag}", (f"{PBX4_A}/24", f"{PBX6_A}/64"), (f"{ATTACKER4}/24", f"{ATTACKER6}/64"))
        veth(lab.pbx, lab.phone, f"p{tag}", (f"{PBX4_P}/24", f"{PBX6_P}/64"), (f"{PHONE4}/24", f"{PHONE6}/64"))
        # the admin's own rules: conntrack on, established flows accepted early in their chain
        admin = ("table inet admin {\n chain input {\n type filter hook input priority 0; policy accept;\n"
                 " ct state established,related accept\n udp dport 5060 accept\n }\n}\n")
        subprocess.run(["ip", "netns", "exec", lab.pbx, "nft", "-f", "-"], input=admin, text=True, check=True)
        yield lab
    finally:
        for ns in (lab.pbx, lab.atk, lab.phone):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the calling thread inside network namespace `ns` for a while (threads and sockets started
    meanwhile stay there). `os.setns` exists only from Python 3.12, hence libc."""
    libc = ctypes.CDLL(None, use_errno=True)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            yield
        finally:
            libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


def run_in(ns: str, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, text=True)


def assert_ban_stops_the_flow(lab: Lab, backend: Backend, version: int, network: bool = False) -> None:
    """After the ban the listener hears nothing more from the attacker's already established flow,
    the phone still gets through, and when the kernel timeout ends the attacker is let in again. With
    `network`, the ban is of the attacker's whole IPv6 /64 (`ipv6_rotation`), not of its address."""
    attacker, phone = (ATTACKER4, PHONE4) if version == 4 else (ATTACKER6, PHONE6)
    pbx_a, pbx_p = (PBX4_A, PBX4_P) if version == 4 else (PBX6_A, PBX6_P)
    backend.setup()
    listener = run_in(lab.pbx, LISTENER, str(version), "4.5")
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    senders = [run_in(lab.atk, SENDER, pbx_a, "4.0", attacker), run_in(lab.phone, SENDER, pbx_p, "4.0", phone)]
    time.sleep(0.8)
    banned_at = time.monotonic()
    target = ipaddress.ip_network(f"{attacker}/64", strict=False) if network else ipaddress.ip_address(attacker)
    backend.ban([Ban(target, 1.5)])
    applied = time.monotonic()
    out, _ = listener.communicate(timeout=15)
    for sender in senders:
        sender.wait(timeout=10)
    assert_flows(out, attacker, phone, banned_at, applied, quiet_until=banned_at + 1.4, back_after=banned_at + 1.6,
                 phone_min=51)
    backend.remove()


def assert_flows(out: str, attacker: str, phone: str, banned_at: float, applied: float, quiet_until: float,
                 back_after: float, phone_min: int = 1) -> None:
    """Read the listener's `time source` lines: the attacker's flow existed before the ban, nothing of it
    arrived from `applied` (+50 ms for packets in flight) until `quiet_until`, it came back after
    `back_after`, and the phone got at least `phone_min` packets through meanwhile."""
    packets = [(float(t), ipaddress.ip_address(src)) for t, src in (line.split() for line in out.splitlines()
                                                                     if line.count(" ") == 1)
               if t.replace(".", "").isdigit()]
    from_attacker = [t for t, src in packets if src == ipaddress.ip_address(attacker)]
    from_phone = [t for t, src in packets if src == ipaddress.ip_address(phone)]
    assert any(t < banned_at for t in from_attacker), "the attacker's flow was established before the ban"
    assert not [t for t in from_attacker if applied + 0.05 < t < quiet_until], "nothing while banned"
    assert any(t > back_after for t in from_attacker), "let in again after the kernel timeout"
    assert len([t for t in from_phone if applied < t < quiet_until]) >= phone_min, "the phone kept getting through"
