"""Line prefixes: the part of a log line that the logging system writes before the message.

A prefix tells which server wrote the line, when, at what level and from which source file. Each row
is one prefix shape (see ../shared-style reference: Asterisk's logger.c formats, FreeSWITCH's
switch_log.c, Kamailio's and OpenSIPS's dprint.h). Syslog and journald headers are stripped first by
`SYSLOG_HEAD`, so every row below also covers its syslog-wrapped form.

To support a new prefix, add a `Prefix` row to `PREFIXES`; the order is the order of trial, and the
parser tries the row that matched the previous line first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TS_BRACKET = r"\[(?P<ts>[^\]]{6,48})\]"
_AST_LEVEL = r"(?P<level>[A-Z]+) ?\[(?P<lwp>\d+)\](?:\[(?P<callid>C-[0-9a-fA-F]+)\])?"
# The file field: a C file, or `Ext. <exten>` for dialplan Log() (the exten is caller text).
_AST_FILE = r"(?P<file>Ext\. [^:]*|[\w./-]+\.c|[\w./-]+)"


@dataclass(frozen=True, slots=True)
class Prefix:
    """A line prefix (its time stamp, level, source file) that a server writes before its messages."""

    name: str
    server: str  # asterisk | freeswitch | kamailio | opensips | any
    regex: re.Pattern[str]
    has_ts: bool
    has_file: bool


def _p(name: str, server: str, pattern: str) -> Prefix:
    regex = re.compile(pattern)
    return Prefix(name, server, regex, "ts" in regex.groupindex, "file" in regex.groupindex)


#: Optional outer header: RFC 3164 syslog (`Feb  3 21:04:11 host prog[pid]: `), RFC 5424/ISO
#: timestamps from rsyslog or `journalctl -o short-iso`, and an optional `<PRI>`.
SYSLOG_HEAD = re.compile(
    r"(?:<\d{1,3}>\d? ?)?"
    r"(?P<sts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?![A-Z]+\[\d+\])(?P<host>\S+) (?P<prog>[\w./@-]+?)(?:\[(?P<pid>\d+)\])?: "
)

PREFIXES: tuple[Prefix, ...] = (
    # Asterisk 1.4+ file channel, default formatter: `[ts] LEVEL[lwp][C-x] file: msg`
    _p("asterisk.file", "asterisk", _TS_BRACKET + " " + _AST_LEVEL + " " + _AST_FILE + ": "),
    # Asterisk plain formatter, console, syslog and journald: `[ts] LEVEL[lwp][C-x]: file:line func: msg`
    _p(
        "asterisk.plain",
        "asterisk",
        r"(?:" + _TS_BRACKET + r" )?" + _AST_LEVEL
        + r": (?P<file>Ext\. [^:]*|[\w./-]+):(?P<lineno>\d+) (?:in )?(?P<func>@ \S+|\w+): ",
    ),
    # Asterisk 1.2 without -T: `Jan 14 03:12:45 NOTICE[8123] chan_sip.c: msg`
    _p(
        "asterisk.1.2",
        "asterisk",
        r"(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) (?P<level>[A-Z]+)\[(?P<lwp>\d+)\] (?P<file>[\w./-]+): ",
    ),
    # Asterisk 1.2 with -T: `[Jan 14 03:12:45] NOTICE[8123]: msg` (no file)
    _p("asterisk.1.2T", "asterisk", _TS_BRACKET + r" (?P<level>[A-Z]+)\[(?P<lwp>\d+)\]: "),
    # FreeSWITCH mod_logfile: `[uuid ]YYYY-MM-DD HH:MM:SS.uuuuuu[ NN.NN%] [LEVEL] file.c:line msg`
    # and the `MM-DD ... [WARN] [SOFIA] [file.c:line]` variant of some packagings.
    _p(
        "freeswitch",
        "freeswitch",
        r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} )?"
        r"(?P<ts>(?:\d{4}-)?\d\d-\d\d \d\d:\d\d:\d\d\.\d+)(?: \d+(?:\.\d+)?%)? "
        r"\[(?P<level>[A-Z]+)\] (?:\[[A-Z]+\] )?\[?(?P<file>[\w.]+):(?P<lineno>\d+)\]? ",
    ),
    # Kamailio: `LEVEL: <script>: msg`, `LEVEL: module [file.c:NN]: func(): msg`, stderr ` 9(2210) LEVEL: `
    _p(
        "kamailio",
        "kamailio",
        r"(?: ?\d+\(\d+\) )?(?P<level>ALERT|BUG|CRITICAL|ERROR|WARNING|NOTICE|INFO|DEBUG): "
        r"(?:<script>|(?:<core>|(?P<file>[\w-]+)) \[[\w/.-]+:\d+\]: \w+\(\))(?:: |: ?)",
    ),
    # OpenSIPS: `LEVEL:module:func: msg`; LM_GEN (xlog, pike) glues `LEVEL:` to the text (3.4+);
    # on stderr the line starts with `Mar  3 04:05:08 [3310] `.
    _p(
        "opensips",
        "opensips",
        r"(?:(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) )?(?:\[\d+\] )?"
        r"(?P<level>ALERT|CRITICAL|ERROR|WARNING|NOTICE|INFO|DBG|DEBUG):"
        r"(?:(?P<file>[\w-]+):(?P<func>\w+): )?",
    ),
)

def program_server(prog: str | None) -> str | None:
    """The server that a syslog program name belongs to, e.g. `/usr/sbin/kamailio` -> kamailio."""
    if not prog:
        return None
    base = prog.rsplit("/", 1)[-1].lower()
    for name in ("asterisk", "freeswitch", "kamailio", "opensips"):
        if base.startswith(name):
            return name
    return None


#: The console marks of VERBOSE messages (`    -- `, `  == `, `    > `) of Asterisk 1.8 to 13: not part of
#: the message. Atomic, so that it is always taken when present, as the parser's own stripping does.
VERBOSE_LEAD = r"(?>(?: *(?:--|==|>) +)?)"
_PLAIN_FAST = (r"(?:\[(?P<ts>[^\]]{6,48})\] )?[A-Z]+ ?\[\d+\](?:\[C-[0-9a-fA-F]+\])?: (?:{file}):\d+ (?:in )?\w+: "
               + VERBOSE_LEAD + "(?P<msg>)")

#: Prefixes combined with each message regex into one match per line, the fast lane for the shapes
#: that make up nearly every real log: `{file}` is replaced by the reader's own source files, so the file
#: check is part of the match, and `(?P<msg>)` marks where the message starts. A syslog or journald
#: header is atomic (matched alone first, as `SYSLOG_HEAD` is); its time (`sts`) counts when the prefix
#: has none.
FAST_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("asterisk.file", "asterisk",
     r"\[(?P<ts>[^\]]{6,48})\] [A-Z]+ ?\[\d+\](?:\[C-[0-9a-fA-F]+\])? (?:{file}): " + VERBOSE_LEAD + "(?P<msg>)"),
    ("asterisk.plain", "asterisk", _PLAIN_FAST),
    ("syslog asterisk.plain", "asterisk", "(?>" + SYSLOG_HEAD.pattern + ")" + _PLAIN_FAST),
    ("freeswitch", "freeswitch",
     r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} )?"
     r"(?P<ts>(?:\d{4}-)?\d\d-\d\d \d\d:\d\d:\d\d\.\d+)(?: \d+(?:\.\d+)?%)? "
     r"\[[A-Z]+\] (?:\[[A-Z]+\] )?\[?(?:{file}):\d+\]? (?P<msg>)"),
)
ANY_FILE = r"[\w./-]+"
