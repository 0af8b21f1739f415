"""Format knowledge as data: line prefixes and message readers, one table per server.

`READERS` is the registry that the prefilter and the parser are built from. To add a message, add a
`Form` row to the server's table; to add a server, add a module with a `FORMS` tuple and list it here.
"""

from __future__ import annotations

from typing import Protocol

from sipwatch.formats import asterisk, freeswitch, proxies, security
from sipwatch.formats.form import Parsed


class Reader(Protocol):
    """A message reader: a regex `Form` row or a structured reader such as `SecurityReader`."""

    @property
    def id(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def markers(self) -> tuple[str, ...]: ...
    @property
    def multiline(self) -> str | None: ...
    @property
    def prefixless(self) -> bool: ...

    def allows_file(self, file: str | None) -> bool: ...
    def read(self, message: str) -> Parsed | None: ...


READERS: tuple[Reader, ...] = (
    *asterisk.FORMS,
    *security.READERS,
    *freeswitch.FORMS,
    *proxies.FORMS,
)

#: Packet-dump openers (SIP debug output): their lines are caller text, never log lines.
DUMP_MARKERS = ("<--- SIP read from ", "<--- Received SIP ")

#: Texts that suggest a security message although no reader claims them: such lines are reported
#: as "looked security-related but matched no known format", so that new formats get noticed.
SUSPICIOUS_MARKERS = ("Wrong password", "uthentication fail", "No matching peer", "No matching endpoint")
