"""ipset + iptables backend, for hosts that manage their firewall with iptables.

Two ipsets (`sipwatch4`, `sipwatch6`, `hash:ip` with per-element timeouts: bans expire in the kernel),
and `sipwatch6net` (`hash:net`) for whole IPv6 networks (an attacker rotating through its /64),
our own chain `sipwatch` in the `raw` table (before connection tracking, so established UDP flows
stop too), one jump to it from `PREROUTING`. A batch of bans is one `ipset restore`; `-exist` makes a
repeated ban refresh the timeout. Only our chain, our jump and our sets are ever touched.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from sipwatch.responders.firewall.base import Ban, FirewallError, Scope, Target, target_of

SETS = {4: "sipwatch4", 6: "sipwatch6"}
NET_SET = "sipwatch6net"  # IPv6 networks
TOOLS = {4: "iptables", 6: "ip6tables"}
CHAIN = "sipwatch"
_MEMBER = re.compile(r"^(\S+) timeout (\d+)", re.MULTILINE)


class IpsetBackend:
    name = "ipset"

    def __init__(self, scope: Scope | None = None, netns: str | None = None) -> None:
        self.scope = scope or Scope()
        self.netns = netns

    def _run(self, args: Sequence[str], script: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = shutil.which(args[0])
        if binary is None:
            package = "ipset" if args[0] == "ipset" else "iptables"
            raise FirewallError(f"the `{args[0]}` command is missing: install the Debian package `{package}`")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        try:
            done = subprocess.run([*prefix, binary, *args[1:]], input=script, capture_output=True, text=True,
                                  timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"{' '.join(args)}: {exc}") from None
        if check and done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise FirewallError(f"{' '.join(args)} failed: {' / '.join(why[:3]) or done.returncode}")
        return done

    def _rules(self, version: int) -> list[list[str]]:
        rules = []
        for name in (SETS[version], NET_SET) if version == 6 else (SETS[version],):
            source = ["-m", "set", "--match-set", name, "src"]
            if self.scope.all_ports:
                rules.append([*source, "-j", "DROP"])
                continue
            ports = ["-m", "multiport", "--dports", ",".join(map(str, self.scope.ports))]
            rules += [[*source, "-p", proto, *ports, "-j", "DROP"] for proto in ("udp", "tcp")]
        return rules

    def setup(self) -> None:
        for version, name in SETS.items():
            family = "inet" if version == 4 else "inet6"
            self._run(["ipset", "create", name, "hash:ip", "family", family, "timeout", "0", "maxelem", "1000000",
                       "-exist"])
            if version == 6:
                self._run(["ipset", "create", NET_SET, "hash:net", "family", "inet6", "timeout", "0", "maxelem",
                           "100000", "-exist"])
            tool = TOOLS[version]
            if self._run([tool, "-t", "raw", "-n", "-L", CHAIN], check=False).returncode != 0:
                self._run([tool, "-t", "raw", "-N", CHAIN])
            self._run([tool, "-t", "raw", "-F", CHAIN])
            for rule in self._rules(version):
                self._run([tool, "-t", "raw", "-A", CHAIN, *rule])
            if self._run([tool, "-t", "raw", "-C", "PREROUTING", "-j", CHAIN], check=False).returncode != 0:
                self._run([tool, "-t", "raw", "-I", "PREROUTING", "1", "-j", CHAIN])

    def ban(self, bans: Iterable[Ban]) -> None:
        # ipset counts whole seconds: round up, a ban never ends early
        lines = [f"add {_set_of(b.ip)} {b.ip} timeout {max(1, math.ceil(b.seconds))} -exist" for b in bans]
        if lines:
            self._run(["ipset", "restore", "-exist"], "\n".join(lines) + "\n")

    def unban(self, ips: Iterable[Target]) -> None:
        lines = [f"del {_set_of(ip)} {ip} -exist" for ip in ips]
        if lines:
            self._run(["ipset", "restore", "-exist"], "\n".join(lines) + "\n")

    def banned(self) -> dict[Target, float]:
        found: dict[Target, float] = {}
        for name in (*SETS.values(), NET_SET):
            done = self._run(["ipset", "list", name], check=False)
            if done.returncode != 0:
                continue
            members = done.stdout.split("Members:", 1)[-1]
            for text, left in _MEMBER.findall(members):
                ip = target_of(text)
                if ip is not None:
                    found[ip] = float(left)
        return found

    def remove(self) -> None:
        for version, tool in TOOLS.items():
            while self._run([tool, "-t", "raw", "-D", "PREROUTING", "-j", CHAIN], check=False).returncode == 0:
                pass
            self._run([tool, "-t", "raw", "-F", CHAIN], check=False)
            self._run([tool, "-t", "raw", "-X", CHAIN], check=False)
            self._run(["ipset", "destroy", SETS[version]], check=False)
        self._run(["ipset", "destroy", NET_SET], check=False)


def _set_of(target: Target) -> str:
    return NET_SET if isinstance(target, ipaddress.IPv6Network) else SETS[target.version]
