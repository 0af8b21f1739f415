"""The ipset + iptables backend against the real kernel, in network namespaces the test creates."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from netlab import ATTACKER4, ATTACKER6, Lab, assert_ban_stops_the_flow, make_lab
from sipwatch.responders.firewall import Ban, Options, Scope, create

lab = pytest.fixture(make_lab)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and iptables"),
    pytest.mark.skipif(shutil.which("ipset") is None, reason="needs the Debian package ipset"),
    pytest.mark.skipif(shutil.which("iptables") is None, reason="needs the Debian package iptables"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 (`ip`)"),
]


@pytest.mark.parametrize("version", [4, 6])
def test_ban_stops_an_established_flow_and_expires(lab: Lab, version: int) -> None:
    assert_ban_stops_the_flow(lab, create("ipset", Options(Scope(), netns=lab.pbx)), version)


def test_a_network_ban_stops_every_address_of_the_64_and_expires(lab: Lab) -> None:
    assert_ban_stops_the_flow(lab, create("ipset", Options(Scope(), netns=lab.pbx)), 6, network=True)


def test_network_bans_are_listed_and_removed(lab: Lab) -> None:
    backend = create("ipset", Options(Scope(), netns=lab.pbx))
    backend.setup()
    net = ipaddress.ip_network("2001:db8:a::/64")
    backend.ban([Ban(net, 3600)])
    assert backend.banned()[net] > 3000
    backend.unban([net])
    assert net not in backend.banned()
    backend.remove()
    assert subprocess.run(["ip", "netns", "exec", lab.pbx, "ipset", "list", "sipwatch6net"],
                          capture_output=True).returncode != 0


def test_setup_twice_a_repeat_ban_refreshes_and_remove_leaves_the_rest(lab: Lab) -> None:
    backend = create("ipset", Options(Scope(), netns=lab.pbx))
    backend.setup()
    backend.setup()
    v4, v6 = ipaddress.ip_address(ATTACKER4), ipaddress.ip_address(ATTACKER6)
    backend.ban([Ban(v4, 30), Ban(v6, 30)])
    backend.ban([Ban(v4, 3600)])
    held = backend.banned()
    assert held[v4] > 3000 and v6 in held
    backend.unban([v6])
    assert v6 not in backend.banned()
    rules = subprocess.run(["ip", "netns", "exec", lab.pbx, "iptables", "-t", "raw", "-S", "PREROUTING"],
                           capture_output=True, text=True, check=True).stdout
    assert rules.count("-j sipwatch") == 1  # one jump, however often setup ran
    backend.remove()
    after = subprocess.run(["ip", "netns", "exec", lab.pbx, "iptables", "-t", "raw", "-S"], capture_output=True,
                           text=True, check=True).stdout
    assert "sipwatch" not in after
    assert subprocess.run(["ip", "netns", "exec", lab.pbx, "ipset", "list", "sipwatch4"],
                          capture_output=True).returncode != 0
