"""Format knowledge as data: line prefixes and message readers, one table per server.

`READERS` is the registry that the prefilter and the parser are built from. To add a message, add a
`Form` row to the server's table; to add a server, add a module with a `FORMS` tuple and list it here.
"""

from __future__ import annotations

import re
from typing import Protocol

from sipwatch.formats import ami, asterisk, calls, freeswitch, proxies, security
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
    def openers(self) -> tuple[str, ...]: ...
    @property
    def prefixless(self) -> bool: ...

    @property
    def files(self) -> tuple[str, ...]: ...
    @property
    def fast_pattern(self) -> str | None: ...

    def allows_file(self, file: str | None) -> bool: ...
    def read(self, message: str) -> Parsed | None: ...
    def build(self, m: re.Match[str], message: str) -> Parsed | None: ...


READERS: tuple[Reader, ...] = (
    *asterisk.FORMS,
    *security.READERS,
    *calls.FORMS,
    *calls.READERS,
    *ami.READERS,
    *freeswitch.FORMS,
    *proxies.FORMS,
)

#: Readers of call activity (CDR and CEL rows, the `full` log's call and contact lines, AMI call events)
CALL_READERS: tuple[Reader, ...] = (*calls.FORMS, *calls.READERS, *ami.READERS)


def readers(with_calls: bool = True) -> tuple[Reader, ...]:
    """The registry, with or without the call-activity readers (see `Config.calls`)."""
    return READERS if with_calls else tuple(r for r in READERS if not any(r is c for c in CALL_READERS))


#: Messages known to be harmless although they carry a marker (see each server's BENIGN)
BENIGN = re.compile("|".join((*asterisk.BENIGN, *freeswitch.BENIGN, *calls.QUIET)))

#: Packet-dump openers (SIP debug output): their lines are caller text, never log lines.
DUMP_MARKERS = ("<--- SIP read from ", "<--- Received SIP ")
PROXY_DUMP_MARKERS = ("message=<",)

#: The server-written tail of a record, found at the start of a physical line: the caller's text
#: before it held a line break, and the lines since its record began were written by the caller.
ORPHAN_MARKERS = ("\n' rejected because extension not found", '\n",SessionID="', "\n' failed for '")

#: Texts that suggest a security message although no reader claims them: such lines are reported
#: as "looked security-related but matched no known format", so that new formats get noticed.
SUSPICIOUS_MARKERS = ("Wrong password", "uthentication fail", "No matching peer", "No matching endpoint")
