"""nftables backend: its own table `inet sipwatch`, three sets with kernel timeouts, one raw-priority chain.

Why this shape:
* sets with `flags timeout`: every ban expires in the kernel by itself, even if sipwatch is gone; whole
  IPv6 networks (an attacker rotating through its /64) go to a third set with `flags interval`;
* a base chain on the prerouting hook at priority `raw` (-300) runs before connection tracking, so
  the packets of an already established UDP flow are dropped too (fail2ban's bans are known to let
  them through), and a drop in any base chain is final whatever the admin's other tables accept;
* one `nft -f -` transaction per batch of bans: 100,000 addresses are one command, not 100,000;
* only our table is ever created, changed or deleted.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from sipwatch.responders.firewall.base import Ban, FirewallError, Scope, Target

TABLE = "sipwatch"
SETS = {4: "ban4", 6: "ban6"}
NET_SET = "ban6net"  # IPv6 networks


def _set_of(target: Target) -> str:
    return NET_SET if isinstance(target, ipaddress.IPv6Network) else SETS[target.version]


class NftablesBackend:
    name = "nftables"

    def __init__(self, scope: Scope | None = None, netns: str | None = None, nft: str = "nft") -> None:
        self.scope = scope or Scope()
        self.netns = netns
        self.nft = nft
        self.conntrack = shutil.which("conntrack")
        self._known: set[Target] = set()  # addresses we have put in the sets (or found there)

    # -- commands ------------------------------------------------------------------------------
    def _command(self, *args: str) -> list[str]:
        binary = shutil.which(self.nft)
        if binary is None:
            raise FirewallError("the `nft` command is missing: install the Debian package `nftables`")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, binary, *args]

    def _run(self, args: Sequence[str], script: str | None = None) -> str:
        try:
            done = subprocess.run(self._command(*args), input=script, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"nft {' '.join(args)}: {exc}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            why = " / ".join(detail[:3]) or f"exit {done.returncode}"
            raise FirewallError(f"nft {' '.join(args)} failed: {why}")
        return done.stdout

    # -- the ruleset ---------------------------------------------------------------------------
    def ruleset(self) -> str:
        """The transaction that creates (or repairs) our table, keeping the sets' elements."""
        match = "" if self.scope.all_ports else (
            f" meta l4proto {{ udp, tcp }} th dport {{ {', '.join(str(p) for p in self.scope.ports)} }}")
        return "\n".join([
            f"add table inet {TABLE}",
            f"add set inet {TABLE} {SETS[4]} {{ type ipv4_addr; flags timeout; }}",
            f"add set inet {TABLE} {SETS[6]} {{ type ipv6_addr; flags timeout; }}",
            f"add set inet {TABLE} {NET_SET} {{ type ipv6_addr; flags interval, timeout; }}",
            f"add chain inet {TABLE} prerouting {{ type filter hook prerouting priority raw; policy accept; }}",
            f"flush chain inet {TABLE} prerouting",
            f"add rule inet {TABLE} prerouting ip saddr @{SETS[4]}{match} drop",
            f"add rule inet {TABLE} prerouting ip6 saddr @{SETS[6]}{match} drop",
            f"add rule inet {TABLE} prerouting ip6 saddr @{NET_SET}{match} drop",
        ]) + "\n"

    def setup(self) -> None:
        self._run(["-f", "-"], self.ruleset())
        self._known = set(self.banned())

    def ban(self, bans: Iterable[Ban]) -> None:
        """One transaction for the addresses, one for the networks (an interval that overlaps one already
        held, after a change of `ipv6_rotation.prefix`, fails alone). Anything banned before (by us, or
        found at setup) gets `add`, `delete`, `add`: the first makes sure it is there (it may have
        expired), so the delete cannot fail, and the last sets the new timeout (`add` alone would keep
        the old one)."""
        wanted = {b.ip: b for b in bans}  # the last ban of an address in the batch wins
        if not wanted:
            return
        addresses = [line for name in SETS.values() for line in self._lines(name, wanted.values())]
        networks = self._lines(NET_SET, wanted.values())
        if addresses:
            self._run(["-f", "-"], "\n".join(addresses) + "\n")
        self._known.update(b for b in wanted if not isinstance(b, ipaddress.IPv6Network))
        self._forget_connections(wanted)
        if networks:
            self._run(["-f", "-"], "\n".join(networks) + "\n")
            self._known.update(b for b in wanted if isinstance(b, ipaddress.IPv6Network))

    def _lines(self, set_name: str, bans: Iterable[Ban]) -> list[str]:
        family = [b for b in bans if _set_of(b.ip) == set_name]
        if not family:
            return []
        lines = []
        again = ", ".join(str(b.ip) for b in family if b.ip in self._known)
        if again:
            lines.append(f"add element inet {TABLE} {set_name} {{ {again} }}")
            lines.append(f"delete element inet {TABLE} {set_name} {{ {again} }}")
        elements = ", ".join(f"{b.ip} timeout {max(1, int(b.seconds * 1000))}ms" for b in family)
        lines.append(f"add element inet {TABLE} {set_name} {{ {elements} }}")
        return lines

    def unban(self, ips: Iterable[Target]) -> None:
        ips = list(ips)
        present = self.banned()
        lines = []
        for set_name in (*SETS.values(), NET_SET):
            gone = [ip for ip in ips if _set_of(ip) == set_name and ip in present]
            if gone:
                lines.append(f"delete element inet {TABLE} {set_name} {{ {', '.join(str(ip) for ip in gone)} }}")
        if lines:
            self._run(["-f", "-"], "\n".join(lines) + "\n")
        self._known.difference_update(ips)

    def banned(self) -> dict[Target, float]:
        found: dict[Target, float] = {}
        for set_name in (*SETS.values(), NET_SET):
            try:
                listing = self._run(["-j", "list", "set", "inet", TABLE, set_name])
            except FirewallError:
                if not self.exists():
                    return {}
                raise
            found.update(_elements(listing))
        return found

    def exists(self) -> bool:
        listing = json.loads(self._run(["-j", "list", "tables"]) or "{}")
        return any(
            item.get("table", {}).get("name") == TABLE and item["table"].get("family") == "inet"
            for item in listing.get("nftables", [])
        )

    def remove(self) -> None:
        if self.exists():
            self._run(["delete", "table", "inet", TABLE])

    def _forget_connections(self, bans: dict[Target, Ban]) -> None:
        """Delete the conntrack entries of newly banned addresses (a small batch: one call each)."""
        if self.conntrack is None or len(bans) > 256:
            return
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        for ip in bans:
            if isinstance(ip, ipaddress.IPv6Network):
                continue  # its packets are dropped before connection tracking anyway (raw priority)
            family = "ipv6" if ip.version == 6 else "ipv4"
            subprocess.run([*prefix, self.conntrack, "-D", "-f", family, "-s", str(ip)], capture_output=True,
                           timeout=10, check=False)


def _elements(listing: str) -> dict[Target, float]:
    """Elements of one set from `nft -j list set`: address (or network) -> seconds left."""
    found: dict[Target, float] = {}
    for item in json.loads(listing or "{}").get("nftables", []):
        for elem in item.get("set", {}).get("elem", []):
            value, left = (elem["elem"]["val"], elem["elem"].get("expires", 0)) if isinstance(elem, dict) else (elem, 0)
            try:
                if isinstance(value, dict) and "prefix" in value:  # {"prefix": {"addr": ..., "len": 64}}
                    found[ipaddress.IPv6Network((value["prefix"]["addr"], value["prefix"]["len"]))] = float(left)
                else:
                    found[ipaddress.ip_address(value)] = float(left)
            except (TypeError, ValueError, KeyError):
                continue
    return found
