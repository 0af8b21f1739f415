"""The nftables backend against the real kernel, inside network namespaces the test creates.

Topology: `pbx` (where the firewall runs and a UDP listener counts packets per source), joined by veth
pairs to `atk` (the attacker) and `phone` (a legitimate device), IPv4 and IPv6 documentation addresses.
Traffic goes only between these namespaces; every send loop is bounded in count and time.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time

import pytest

from netlab import (
    ATTACKER4,
    ATTACKER6,
    Lab,
    assert_ban_stops_the_flow,
    make_lab,
)
from sipwatch.responders.firewall import Ban, Options, Scope, create
from sipwatch.responders.firewall.nftables import NftablesBackend

lab = pytest.fixture(make_lab)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and nftables"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs the Debian package nftables (`nft`)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 (`ip`)"),
]

@pytest.mark.parametrize("version", [4, 6])
def test_ban_stops_an_established_flow_and_expires(lab: Lab, version: int) -> None:
    """After the ban the listener hears nothing more from the attacker's already established flow,
    the phone still gets through, and when the kernel timeout ends the attacker is let in again."""
    assert_ban_stops_the_flow(lab, create("nftables", Options(Scope(), netns=lab.pbx)), version)


def test_a_network_ban_stops_every_address_of_the_64_and_expires(lab: Lab) -> None:
    """`ipv6_rotation` bans the attacker's /64: its flow stops, the phone (another /64) gets through."""
    assert_ban_stops_the_flow(lab, create("nftables", Options(Scope(), netns=lab.pbx)), 6, network=True)


def test_network_bans_are_listed_renewed_and_removed(lab: Lab) -> None:
    backend = NftablesBackend(Scope(), netns=lab.pbx)
    backend.setup()
    net = ipaddress.ip_network("2001:db8:a::/64")
    backend.ban([Ban(net, 30), Ban(ipaddress.ip_address(ATTACKER4), 30)])
    backend.ban([Ban(net, 3600)])  # again: the new timeout replaces the old one
    held = backend.banned()
    assert held[net] > 3000 and ipaddress.ip_address(ATTACKER4) in held
    backend.setup()  # a restart keeps it
    assert net in backend.banned()
    backend.unban([net])
    assert net not in backend.banned() and ipaddress.ip_address(ATTACKER4) in backend.banned()
    backend.remove()


def test_setup_is_idempotent_and_remove_leaves_the_admins_tables(lab: Lab) -> None:
    backend = NftablesBackend(Scope(), netns=lab.pbx)
    backend.setup()
    backend.ban([Ban(ipaddress.ip_address(ATTACKER4), 60), Ban(ipaddress.ip_address(ATTACKER6), 60)])
    backend.setup()  # a restart repairs the chain and keeps the bans
    assert set(backend.banned()) == {ipaddress.ip_address(ATTACKER4), ipaddress.ip_address(ATTACKER6)}
    backend.remove()
    tables = subprocess.run(["ip", "netns", "exec", lab.pbx, "nft", "list", "tables"], capture_output=True,
                            text=True, check=True).stdout
    assert "inet admin" in tables and "sipwatch" not in tables


def test_a_new_ban_replaces_the_timeout_and_unban_removes(lab: Lab) -> None:
    backend = NftablesBackend(Scope(), netns=lab.pbx)
    backend.setup()
    ip = ipaddress.ip_address(ATTACKER4)
    backend.ban([Ban(ip, 30)])
    backend.ban([Ban(ip, 3600)])
    assert backend.banned()[ip] > 3000
    backend.unban([ip])
    assert ip not in backend.banned()


def test_ten_thousand_bans_are_one_transaction(lab: Lab) -> None:
    backend = NftablesBackend(Scope(), netns=lab.pbx)
    backend.setup()
    bans = [Ban(ipaddress.ip_address(0xC6120000 + i), 600) for i in range(10_000)]  # 198.18.0.0/15
    started = time.monotonic()
    backend.ban(bans)
    assert time.monotonic() - started < 5
    assert len(backend.banned()) == 10_000


def test_missing_nft_is_a_clear_error() -> None:
    from sipwatch.responders.firewall import FirewallError

    backend = NftablesBackend(Scope(), nft="/nonexistent/nft")
    with pytest.raises(FirewallError, match="nft"):
        backend.setup()
