"""The host's own addresses: never banned, whatever a log line says (a forged line, our own trunk)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

from sipwatch.event import IPAddress
from sipwatch.netaddr import ip_of


def own_addresses() -> set[IPAddress]:
    """Every address configured on this host's interfaces (from `ip -j addr`), plus its name's."""
    found: set[IPAddress] = set()
    ip = shutil.which("ip")
    if ip is not None:
        try:
            out = subprocess.run([ip, "-j", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
            for link in json.loads(out or "[]"):
                for info in link.get("addr_info", []):
                    address = ip_of(str(info.get("local", "")))
                    if address is not None:
                        found.add(address)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            address = ip_of(str(info[4][0]))
            if address is not None:
                found.add(address)
    except OSError:
        pass
    return found
