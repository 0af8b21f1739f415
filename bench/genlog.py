"""Generate a large, realistic Asterisk log for benchmarks (deterministic for a given --seed).

    python bench/genlog.py --lines 1000000 --seed 1 -o /tmp/x.log [--stats /tmp/x.json]

The file is a sequence of segments, each written by a different Asterisk installation (version and
logger configuration), as when logs of several servers or of an upgraded server are concatenated:

* about 70% default file formatter with ISO dates (`[2024-03-04 10:00:00] LEVEL[lwp][C-xxxxxxxx] file.c: msg`,
  FreePBX's `dateformat=%F %T`), as Asterisk 13 (PJSIP P2/P4 forms, unbracketed IPv6 with port),
  16.1-16.14 (P3/P5) and 18+ (P3/P6 and registrar warnings);
* about 12% the stock `[Mon DD HH:MM:SS]` date with a space-padded day (Asterisk 1.8 and 11);
* about 8% the `[plain]` formatter (`[ts] LEVEL[lwp]: file.c:line func: msg`);
* about 10% syslog-wrapped lines (`Mon DD HH:MM:SS pbx asterisk[pid]: LEVEL[lwp][C-..]: file.c:line in func: msg`).

Most lines (85% by default) are ordinary `full`-log traffic: dialplan execution, dialling, bridging,
RTP and DEBUG lines, registrations and qualify results, AMI logins, trunk registration retries,
retransmission warnings with an unprefixed continuation line. VERBOSE messages carry the console prefix
the version writes to files (`    -- `/`  == ` in 1.8, `-- `/`== ` in 11 and 13, none from 16 on).
The rest are attack lines from many addresses (IPv4 and IPv6): chan_sip and PJSIP registration
failures, rejected calls to international numbers, security-log events, AMI and IAX2 authentication
failures. Addresses come only from documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32) and the RFC 2544 benchmarking range 198.18.0.0/15.
Timestamps increase through the file; the file's mtime is set to the last one, so readers that take the
year of year-less dates from the mtime get the right year. Message formats follow the format strings in
Asterisk's source (logger.c, chan_sip.c, res_pjsip, res_security_log.c, manager.c, chan_iax2.c, pbx.c).
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

START = calendar.timegm((2024, 3, 4, 0, 0, 0))  # the log's wall-clock start, written as local time
MEAN_GAP = 0.2  # seconds between log lines on average (about 2.5 days per million lines)
BATCH = 20_000  # lines per write
MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SERVER_V4 = "192.0.2.1"
SERVER_V6 = "2001:db8::1"
PHONES = [(str(6000 + i), f"192.0.2.{9 + i}") for i in range(1, 61)]  # extension, address

Site = tuple[str, int, str]  # source file, line, function (the plain and syslog formats print all three)


# --------------------------------------------------------------------------------------------------
# Installations: one per segment of the file


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    style: str  # iso | old | plain | syslog
    weight: float
    callid: bool  # [C-xxxxxxxx] on call-bound lines (11+)
    v3: str  # VERBOSE level-3 prefix: "    -- " (1.8), "-- " (11/13), "" (16+: the level is a magic byte)
    v2: str  # VERBOSE level-2 prefix: "  == ", "== " or ""
    pjsip: str  # "" (none), "p2" ('%s:%d', IPv6 unbracketed) or "p3" (pj_sockaddr_print, bracketed)
    pjsip_call: str  # "" | "p4" | "p5" | "p6"
    security: str  # "" (no security events), "tv11" (EventTV sec-usec) or "tv12" (ISO EventTV)
    iax_port: bool  # IAX2 addresses with :port (12+)
    freepbx: bool  # from-sip-external dialplan lines
    registrar: bool  # res_pjsip_registrar warnings with (%s:%d) (16.17+/18.3+)


PROFILES: tuple[Profile, ...] = (
    Profile("ast1.8-old", "old", 0.06, False, "    -- ", "  == ", "", "", "", False, False, False),
    Profile("ast11-old", "old", 0.06, True, "-- ", "== ", "", "", "tv11", False, False, False),
    Profile("freepbx13-iso", "iso", 0.22, True, "-- ", "== ", "p2", "p4", "tv12", True, True, False),
    Profile("ast16-iso", "iso", 0.22, True, "", "", "p3", "p5", "tv12", True, True, False),
    Profile("ast18-iso", "iso", 0.26, True, "", "", "p3", "p6", "tv12", True, False, True),
    Profile("ast20-plain", "plain", 0.08, True, "", "", "p3", "p6", "tv12", True, False, True),
    Profile("ast18-syslog", "syslog", 0.10, True, "", "", "p3", "p6", "tv12", True, False, True),
)

# Where each message comes from (file, line, function), roughly as in Asterisk 18.
PBX: Site = ("pbx.c", 2947, "pbx_extension_helper")
DIAL: Site = ("app_dial.c", 1213, "handle_frame")
BRIDGE: Site = ("bridge_channel.c", 2432, "bridge_channel_internal_join")
SPAWN: Site = ("pbx.c", 4558, "__ast_pbx_run")
REGISTRAR: Site = ("res_pjsip_registrar.c", 1213, "register_aor_core")
OPTIONS: Site = ("res_pjsip/pjsip_options.c", 1157, "sip_options_contact_status_notify_task")
RTP: Site = ("res_rtp_asterisk.c", 7312, "ast_rtp_read")
RTP_DBG: Site = ("res_rtp_asterisk.c", 3034, "rtp_learning_rtp_seq_update")
CHANNEL: Site = ("channel.c", 2434, "ast_channel_destructor")
CHAN_SIP: Site = ("chan_sip.c", 28390, "handle_request_register")
CHAN_SIP_INVITE: Site = ("chan_sip.c", 25902, "handle_request_invite")
CHAN_SIP_MISC: Site = ("chan_sip.c", 4122, "retrans_pkt")
SIP_QUALIFY: Site = ("chan_sip.c", 24401, "handle_response_peerpoke")
SIP_COS: Site = ("chan_sip.c", 32871, "reload_config")
DISTRIBUTOR: Site = ("res_pjsip/pjsip_distributor.c", 676, "log_failed_request")
SESSION: Site = ("res_pjsip_session.c", 3951, "new_invite")
REG_WARN: Site = ("res_pjsip_registrar.c", 1010, "find_registrar_aor")
OUTBOUND: Site = ("res_pjsip_outbound_registration.c", 1084, "handle_registration_response")
SECURITY: Site = ("res_security_log.c", 110, "security_event_stasis_cb")
MANAGER: Site = ("manager.c", 3540, "authenticate")
MANAGER_SESSION: Site = ("manager.c", 6825, "session_do")
IAX2: Site = ("chan_iax2.c", 8178, "register_verify")
FREEPBX_LOG: Site = ("Ext. s", 6, "@ from-sip-external")


# --------------------------------------------------------------------------------------------------
# Time


class Clock:
    """Increasing wall-clock time; the formatted strings are rebuilt only when the second changes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = float(START)
        self._second = -1
        self.iso = self.old = self.date = self.hms = ""
        self._refresh()

    def tick(self) -> None:
        self.now += self.rng.random() * 2 * MEAN_GAP
        if int(self.now) != self._second:
            self._refresh()

    def _refresh(self) -> None:
        self._second = int(self.now)
        tm = time.gmtime(self._second)
        self.date = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
        self.hms = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
        self.iso = f"{self.date} {self.hms}"
        self.old = f"{MONTHS[tm.tm_mon]} {tm.tm_mday:2d} {self.hms}"  # strftime %b %e %T

    def event_tv(self, style: str) -> str:
        """The security log's EventTV: `sec-usec` up to 11 (usec not padded), ISO with zone from 12."""
        usec = int((self.now % 1) * 1_000_000)
        if style == "tv11":
            return f"{self._second}-{usec}"
        return f"{self.date}T{self.hms}.{usec // 1000:03d}+0000"


# --------------------------------------------------------------------------------------------------
# Attackers


@dataclass(slots=True)
class Attacker:
    ip: str
    v6: bool
    port: int
    style: str  # sip_reg | sip_invite | pjsip_reg | pjsip_invite | ami | iax
    tool: str  # svwar | svcrack | sipvicious | pplsip | plain
    transport: str = "UDP"
    accounts: list[str] = field(default_factory=list)

    def hostport(self, bracket: bool = True) -> str:
        """`ip:port`, `[v6]:port`, or the unbracketed `v6:port` of PJSIP's `'%s:%d'`."""
        if self.v6 and bracket:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"

    def tuple(self) -> str:
        """The security log's address: `IPV4/UDP/198.51.100.7/5060`."""
        return f"IPV{6 if self.v6 else 4}/{self.transport}/{self.ip}/{self.port}"


STYLES = ("sip_reg", "sip_invite", "pjsip_reg", "pjsip_invite", "ami", "iax")
STYLE_WEIGHTS = (30, 15, 30, 12, 8, 5)
TOOLS = ("svwar", "svcrack", "sipvicious", "pplsip", "plain")
ACCOUNT_WORDS = ("admin", "test", "asterisk", "sip", "user", "guest", "voip", "support", "root", "office")
INTL_PREFIXES = ("00972", "011972", "900972", "00441", "9011441", "00370", "0088213", "+4420", "00249", "0001")


def _v4(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return f"198.51.100.{rng.randint(1, 254)}"
    if roll < 0.70:
        return f"203.0.113.{rng.randint(1, 254)}"
    if roll < 0.75:
        return f"192.0.2.{rng.randint(128, 254)}"  # .1-.127: our server and phones
    return f"198.{rng.randint(18, 19)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _v6(rng: random.Random) -> str:
    return f"2001:db8:{rng.randint(0x100, 0xffff):x}:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xfff):x}"


def make_attacker(rng: random.Random, v6_share: float) -> Attacker:
    v6 = rng.random() < v6_share
    ip = _v6(rng) if v6 else _v4(rng)
    style = rng.choices(STYLES, STYLE_WEIGHTS)[0]
    port = 5060 if rng.random() < 0.6 else rng.randint(1024, 65000)
    if style == "ami":
        port = rng.randint(30000, 60999)
    elif style == "iax":
        port = 4569
    transport = "TCP" if style == "ami" else ("TCP" if rng.random() < 0.05 else "UDP")
    base = rng.choice((100, 1000, 6000, 200))
    accounts = [str(base + i) for i in range(rng.randint(1, 40))] + rng.sample(ACCOUNT_WORDS, 2)
    return Attacker(ip, v6, port, style, rng.choice(TOOLS), transport, accounts)


# --------------------------------------------------------------------------------------------------
# The generator


@dataclass(slots=True)
class Counts:
    lines: int = 0
    attack_lines: int = 0
    security_lines: int = 0
    continuation_lines: int = 0
    attackers: set[str] = field(default_factory=set)
    profiles: Counter[str] = field(default_factory=Counter)
    forms: Counter[str] = field(default_factory=Counter)


Story = Iterator[None]  # a benign activity: each step emits one or a few lines


class Generator:
    def __init__(self, seed: int, attack_share: float, v6_share: float = 0.12) -> None:
        self.rng = random.Random(seed)
        self.clock = Clock(self.rng)
        self.attack_share = attack_share
        self.v6_share = v6_share
        rng = self.rng
        self.campaigners = [make_attacker(rng, v6_share) for _ in range(800)]
        self.background = [make_attacker(rng, v6_share) for _ in range(4000)]
        self.counts = Counts()
        self.out: list[str] = []
        self.profile = PROFILES[0]
        self.active: list[Attacker] = []
        self.active_weights: list[float] = []
        self.stories: list[Story] = []
        self.cid = self.chan = 0x1000
        self.limit = 0
        self.pid = 2990
        self.monitor_lwp = 2817
        self._fmt: Callable[[str, int, str, Site, str], str] = self._fmt_iso

    # -- line formatting ---------------------------------------------------------------------------
    def _fmt_iso(self, level: str, lwp: int, cid: str, site: Site, msg: str) -> str:
        return f"[{self.clock.iso}] {level}[{lwp}]{cid} {site[0]}: {msg}\n"

    def _fmt_old(self, level: str, lwp: int, cid: str, site: Site, msg: str) -> str:
        return f"[{self.clock.old}] {level}[{lwp}]{cid} {site[0]}: {msg}\n"

    def _fmt_plain(self, level: str, lwp: int, cid: str, site: Site, msg: str) -> str:
        return f"[{self.clock.iso}] {level}[{lwp}]{cid}: {site[0]}:{site[1]} {site[2]}: {msg}\n"

    def _fmt_syslog(self, level: str, lwp: int, cid: str, site: Site, msg: str) -> str:
        head = f"{self.clock.old} pbx asterisk[{self.pid}]: {level}[{lwp}]{cid}"
        return f"{head}: {site[0]}:{site[1]} in {site[2]}: {msg}\n"

    def emit(self, level: str, lwp: int, cid: str, site: Site, msg: str) -> bool:
        """Write one line; False (and nothing written) once the requested number of lines is reached."""
        if self.counts.lines >= self.limit:
            return False
        self.out.append(self._fmt(level, lwp, cid, site, msg))
        self.counts.lines += 1
        return True

    def attack(self, form: str, level: str, lwp: int, cid: str, site: Site, msg: str) -> None:
        if self.emit(level, lwp, cid, site, msg):
            self.counts.attack_lines += 1
            self.counts.forms[form] += 1

    def new_cid(self) -> str:
        self.cid += 1
        return f"[C-{self.cid:08x}]" if self.profile.callid else ""

    def new_chan(self) -> str:
        self.chan += 1
        return f"{self.chan:08x}"

    # -- segments ----------------------------------------------------------------------------------
    def start_segment(self, profile: Profile) -> None:
        rng = self.rng
        self.profile = profile
        self._fmt = getattr(self, "_fmt_" + self.profile.style)
        self.pid = rng.randint(900, 32000)
        self.monitor_lwp = self.pid + rng.randint(20, 90)
        count = rng.randint(4, 40)
        self.active = rng.sample(self.campaigners, count)
        self.active_weights = [1.0 / (rank + 1) ** 1.2 for rank in range(count)]  # Zipf: a few heavy hitters
        self.stories = []

    def pick_attacker(self) -> Attacker:
        if self.rng.random() < 0.25:  # internet background noise: one-off scanners
            return self.rng.choice(self.background)
        return self.rng.choices(self.active, self.active_weights)[0]

    # -- main loop ---------------------------------------------------------------------------------
    def run(self, lines: int, out: TextIO) -> Counts:
        counts = self.counts
        self.limit = lines
        for profile, length in plan_segments(self.rng, lines):
            self.start_segment(profile)
            counts.profiles[profile.name] += length
            end = min(lines, counts.lines + length)
            while counts.lines < end:
                self.clock.tick()
                if counts.attack_lines < self.attack_share * counts.lines:
                    self.attack_attempt(self.pick_attacker())
                else:
                    self.benign_step()
                if len(self.out) >= BATCH:
                    out.write("".join(self.out))
                    self.out.clear()
        out.write("".join(self.out))
        self.out.clear()
        return counts

    def benign_step(self) -> None:
        while len(self.stories) < 3:
            self.stories.append(self.new_story())
        i = self.rng.randrange(len(self.stories))
        if next(self.stories[i], StopIteration) is StopIteration:
            self.stories.pop(i)

    def new_story(self) -> Story:
        roll = self.rng.random()
        if roll < 0.62:
            return self.call_story()
        if roll < 0.84:
            return self.registration_story()
        if roll < 0.94:
            return self.debug_story()
        if roll < 0.985:
            return self.ami_story()
        return self.trouble_story()

    # -- benign stories ----------------------------------------------------------------------------
    def call_story(self) -> Story:
        rng, p = self.rng, self.profile
        tech = "PJSIP" if p.pjsip and rng.random() < 0.8 else "SIP"
        (src, src_ip), (dst, dst_ip) = rng.sample(PHONES, 2)
        cid, lwp = self.new_cid(), rng.randint(2000, 32000)
        chan_a, chan_b = f"{tech}/{src}-{self.new_chan()}", f"{tech}/{dst}-{self.new_chan()}"
        v2, v3 = p.v2, p.v3
        bridge = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}"
        self.emit("VERBOSE", lwp, cid, PBX,
                  f'{v3}Executing [{dst}@from-internal:1] Dial("{chan_a}", "{tech}/{dst},30,tTr") in new stack')
        yield
        if tech == "SIP":
            self.emit("VERBOSE", lwp, cid, SIP_COS, f"{v2}Using SIP RTP CoS mark 5")
            self.emit("VERBOSE", lwp, cid, SIP_COS, f"{v2}Using SIP VIDEO CoS mark 6")
            yield
        self.emit("VERBOSE", lwp, cid, DIAL, f"{v3}Called {tech}/{dst}")
        yield
        self.emit("VERBOSE", lwp, cid, DIAL, f"{v3}{chan_b} is ringing")
        yield
        if rng.random() < 0.25:
            self.emit("VERBOSE", lwp, cid, DIAL, f"{v3}Nobody picked up in 30000 ms")
            self.emit("VERBOSE", lwp, cid, PBX, f'{v3}Executing [{dst}@from-internal:2] '
                      f'VoiceMail("{chan_a}", "{dst}@default,u") in new stack')
            yield
        else:
            self.emit("VERBOSE", lwp, cid, DIAL, f"{v3}{chan_b} answered {chan_a}")
            yield
            self.emit("DEBUG", lwp, cid, RTP_DBG, f"0x7f{rng.getrandbits(40):010x} -- Strict RTP learning after "
                      f"remote address set to: {src_ip}:{rng.randrange(10000, 20000, 2)}")
            self.emit("VERBOSE", lwp, cid, BRIDGE, f"{v3}Channel {chan_b} joined 'simple_bridge' basic-bridge "
                      f"<{bridge}>")
            yield
            seq, ts = rng.randint(1, 60000), rng.randint(1000, 900000)
            for _ in range(rng.randint(0, 4)):
                seq, ts = seq + 1, ts + 160
                port = rng.randrange(10000, 20000, 2)
                self.emit("VERBOSE", lwp, cid, RTP, f"Got  RTP packet from    {dst_ip}:{port} "
                          f"(type 00, seq {seq:06d}, ts {ts:06d}, len 000160)")
                yield
            self.emit("VERBOSE", lwp, cid, BRIDGE, f"{v3}Channel {chan_b} left 'simple_bridge' basic-bridge "
                      f"<{bridge}>")
            yield
        self.emit("VERBOSE", lwp, cid, SPAWN,
                  f"{v2}Spawn extension (from-internal, {dst}, 1) exited non-zero on '{chan_a}'")
        self.emit("DEBUG", lwp, cid, CHANNEL, f"Channel 0x7f{rng.getrandbits(40):010x} '{chan_a}' destroying")

    def registration_story(self) -> Story:
        rng, p = self.rng, self.profile
        ext, ip = rng.choice(PHONES)
        v3 = p.v3
        lwp = rng.randint(2000, 32000)
        if p.security and rng.random() < 0.5:
            yield from self.phone_security(ext, ip, lwp)
        if p.pjsip and rng.random() < 0.8:
            self.emit("VERBOSE", lwp, "", REGISTRAR, f"{v3}Added contact 'sip:{ext}@{ip}:5060;ob' to AOR '{ext}' "
                      f"with expiration of 3600 seconds")
            yield
            if rng.random() < 0.5:
                self.emit("VERBOSE", lwp, "", OPTIONS, f"Contact {ext}/sip:{ext}@{ip}:5060;ob is now Reachable.  "
                          f"RTT: {rng.uniform(2, 80):.3f} msec")
                yield
            return
        self.emit("VERBOSE", self.monitor_lwp, "", CHAN_SIP, f"{v3}Registered SIP '{ext}' at {ip}:5060")
        yield
        if rng.random() < 0.5:
            self.emit("NOTICE", self.monitor_lwp, "", SIP_QUALIFY,
                      f"Peer '{ext}' is now Reachable. ({rng.randint(2, 80)}ms / 2000ms)")
            yield

    def phone_security(self, ext: str, ip: str, lwp: int) -> Story:
        """A phone's REGISTER: challenged, then authenticated (security events, not attacks)."""
        service = "PJSIP" if self.profile.pjsip else "SIP"
        session = self.session_id(service)
        nonce = self.nonce(service)
        common = (f',Severity="Informational",Service="{service}",EventVersion="1",AccountID="{ext}",'
                  f'SessionID="{session}",LocalAddress="IPV4/UDP/{SERVER_V4}/5060",RemoteAddress="IPV4/UDP/{ip}/5060"')
        self.security_line(f'SecurityEvent="ChallengeSent",EventTV="{self.tv()}"{common},Challenge="{nonce}"', lwp)
        yield
        self.security_line(f'SecurityEvent="SuccessfulAuth",EventTV="{self.tv()}"{common},UsingPassword="1"', lwp)
        yield

    def debug_story(self) -> Story:
        rng = self.rng
        ext, ip = rng.choice(PHONES)
        lwp = rng.randint(2000, 32000)
        for _ in range(rng.randint(2, 6)):
            if self.profile.pjsip and rng.random() < 0.6:
                self.emit("DEBUG", lwp, "", OPTIONS, f"Qualifying contact 'sip:{ext}@{ip}:5060;ob' on AOR '{ext}'")
            else:
                self.emit("DEBUG", lwp, "", RTP_DBG, f"0x7f{rng.getrandbits(40):010x} -- Received RTP packet from "
                          f"{ip}:{rng.randrange(10000, 20000, 2)}, dropping due to strict RTP protection. "
                          f"Will switch to it in {rng.randint(1, 4)} packets.")
            yield

    def ami_story(self) -> Story:
        v2, lwp = self.profile.v2, self.rng.randint(2000, 32000)
        self.emit("VERBOSE", lwp, "", MANAGER_SESSION, f"{v2}Manager 'admin' logged on from 127.0.0.1")
        yield
        self.emit("VERBOSE", lwp, "", MANAGER_SESSION, f"{v2}Manager 'admin' logged off from 127.0.0.1")
        yield

    def trouble_story(self) -> Story:
        """Our own problems: trunk registration failures, retransmission timeouts (2 physical lines)."""
        rng, p = self.rng, self.profile
        if p.pjsip and rng.random() < 0.5:
            self.emit("WARNING", rng.randint(2000, 32000), "", OUTBOUND,
                      "Temporal response '408' received from 'sip:sip.provider.example' on registration attempt to "
                      "'sip:4930555123@sip.provider.example', retrying in '60'")
            yield
            return
        if rng.random() < 0.5:
            tries = rng.randint(1, 3)
            self.emit("NOTICE", self.monitor_lwp, "", CHAN_SIP,
                      f"Failed to authenticate on REGISTER to '4930555123@sip.provider.example' (Tries {tries})")
            yield
            return
        ip = rng.choice(PHONES)[1]
        callid = f"{rng.getrandbits(64):016x}@{ip}"
        self.emit("WARNING", self.monitor_lwp, "", CHAN_SIP_MISC,
                  f"Retransmission timeout reached on transmission {callid} for seqno 102 (Critical Response) -- "
                  f"See https://wiki.asterisk.org/wiki/display/AST/SIP+Retransmissions")
        if self.counts.lines < self.limit:
            self.out.append("Packet timed out after 6400ms with no response\n")
            self.counts.lines += 1
            self.counts.continuation_lines += 1
        yield

    # -- attacks -----------------------------------------------------------------------------------
    def attack_attempt(self, a: Attacker) -> None:
        self.counts.attackers.add(a.ip)
        p = self.profile
        style = a.style
        if style.startswith("pjsip") and not p.pjsip:
            style = "sip_" + style[6:]
        if style == "iax" and p.iax_port and self.rng.random() < 0.5:
            style = "sip_reg"  # IAX2 auth failures are silent by default from 10.0 (authdebug=no)
        getattr(self, "attack_" + style)(a)

    def account(self, a: Attacker) -> str:
        return self.rng.choice(a.accounts)

    def to_header(self, a: Attacker, user: str) -> str:
        server = SERVER_V6 if a.v6 else SERVER_V4
        host = f"[{server}]" if a.v6 else server
        if a.tool == "svwar":
            return f'"{user}"<sip:{user}@{host}>'
        if a.tool == "svcrack":
            return f'"{user}" <sip:{user}@{host}>'
        if a.tool == "sipvicious":
            return f'"sipvicious" <sip:{user}@1.1.1.1>'
        return f"<sip:{user}@{host}>" if a.tool == "plain" else f"sip:{user}@{host}"

    def number(self) -> str:
        rng = self.rng
        return rng.choice(INTL_PREFIXES) + "".join(rng.choices("0123456789", k=rng.randint(5, 9)))

    def attack_sip_reg(self, a: Attacker) -> None:
        rng, p = self.rng, self.profile
        user = self.account(a)
        roll = rng.random()
        reason = "Wrong password" if roll < 0.7 else "No matching peer found" if roll < 0.95 else (
            "Username/auth name mismatch")
        if p.security == "tv11" or (p.security and rng.random() < 0.5):
            self.sip_security(a, user, reason)
        self.attack("chan_sip.register", "NOTICE", self.monitor_lwp, "", CHAN_SIP,
                    f"Registration from '{self.to_header(a, user)}' failed for '{a.hostport()}' - {reason}")

    def sip_security(self, a: Attacker, user: str, reason: str) -> None:
        session = self.session_id("SIP")
        if reason == "No matching peer found":
            self.attack_security(a, "InvalidAccountID", "1", "Error", "SIP", user, session, "")
            return
        nonce = self.nonce("SIP")
        self.attack_security(a, "ChallengeSent", "1", "Informational", "SIP", user, session, f',Challenge="{nonce}"')
        if reason == "Wrong password":
            tail = f',Challenge="{nonce}",ReceivedChallenge="{nonce}",ReceivedHash="{self.rng.getrandbits(128):032x}"'
            self.attack_security(a, "InvalidPassword", "2", "Error", "SIP", user, session, tail)
        else:
            tail = f',Challenge="{nonce}",Response="{user}x",ExpectedResponse="{user}"'
            self.attack_security(a, "ChallengeResponseFailed", "1", "Error", "SIP", user, session, tail)

    def attack_sip_invite(self, a: Attacker) -> None:
        p = self.profile
        number = self.number()
        cid = self.new_cid()
        lwp = self.rng.randint(3000, 32000)
        if p.freepbx and self.rng.random() < 0.3 and not a.v6:
            chan = f"SIP/{a.ip}-{self.new_chan()}"
            self.attack("freepbx.noop", "VERBOSE", lwp, cid, PBX,
                        f'{p.v3}Executing [{number}@from-sip-external:1] NoOp("{chan}", "Received incoming '
                        f'SIP connection from unknown peer to {number}") in new stack')
            self.attack("freepbx.log", "WARNING", lwp, cid, FREEPBX_LOG,
                        f'"Rejecting unknown SIP connection from {a.ip}"')
            return
        self.attack("chan_sip.call_rejected", "NOTICE", lwp, cid, CHAN_SIP_INVITE,
                    f"Call from '' ({a.hostport()}) to extension '{number}' rejected because extension not found "
                    f"in context 'default'.")

    def attack_pjsip_reg(self, a: Attacker) -> None:
        rng, p = self.rng, self.profile
        user = self.account(a)
        roll = rng.random()
        method = "REGISTER" if roll < 0.7 else "INVITE" if roll < 0.9 else "OPTIONS"
        if p.registrar and method == "REGISTER" and rng.random() < 0.03:
            self.attack("pjsip.registrar", "WARNING", rng.randint(3000, 32000), "", REG_WARN,
                        f"AOR '{user}' not found for endpoint '{rng.choice(PHONES)[0]}' ({a.hostport(False)})")
            return
        callid = self.callid(a)
        from_ = self.to_header(a, user)
        if not from_.startswith(("<", '"')):
            from_ = f"<{from_}>"
        addr = a.hostport(p.pjsip == "p3")
        lwp = rng.randint(3000, 32000)
        head = f"Request '{method}' from '{from_}' failed for '{addr}' (callid: {callid}) - "
        self.attack(f"pjsip.request_{p.pjsip}", "NOTICE", lwp, "", DISTRIBUTOR, head + "No matching endpoint found")
        if p.security:
            self.attack_security(a, "InvalidAccountID", "1", "Error", "PJSIP", user, callid, "")
        if method != "OPTIONS" and rng.random() < 0.6:  # the scanner answered the challenge
            self.attack(f"pjsip.request_{p.pjsip}", "NOTICE", lwp, "", DISTRIBUTOR, head + "Failed to authenticate")
            if p.security:
                nonce, resp = self.nonce("PJSIP"), f"{rng.getrandbits(128):032x}"
                tail = f',Challenge="{nonce}",Response="{resp}",ExpectedResponse=""'
                self.attack_security(a, "ChallengeResponseFailed", "1", "Error", "PJSIP", "<unknown>", callid, tail)

    def attack_pjsip_invite(self, a: Attacker) -> None:
        p = self.profile
        number = self.number()
        lwp = self.rng.randint(3000, 32000)
        tail = f"to extension '{number}' rejected because extension not found in context 'from-sip-external'."
        if p.pjsip_call == "p4":
            msg = f"Call from 'anonymous' ({a.transport}:{a.hostport(False)}) {tail}"
        elif p.pjsip_call == "p5":
            msg = f"Call from 'anonymous' ({a.transport}:{a.hostport()}) {tail}"
        else:  # ast_trace_log() puts one space before the message
            msg = f" anonymous: Call ({a.transport}:{a.hostport()}) {tail}"
        self.attack(f"pjsip.call_{p.pjsip_call}", "NOTICE", lwp, self.new_cid(), SESSION, msg)

    def attack_ami(self, a: Attacker) -> None:
        rng, p = self.rng, self.profile
        user = rng.choice(("admin", "manager", "asterisk", "root", "amp111", "monitor"))
        lwp = rng.randint(3000, 32000)
        if rng.random() < 0.7:
            self.attack("ami.auth_failed", "NOTICE", lwp, "", MANAGER, f"{a.ip} failed to authenticate as '{user}'")
            event, version = "InvalidPassword", "2"
        else:
            self.attack("ami.nonexistent", "NOTICE", lwp, "", MANAGER,
                        f"{a.ip} tried to authenticate with nonexistent user '{user}'")
            event, version = "InvalidAccountID", "1"
        if p.security:
            self.attack_security(a, event, version, "Error", "AMI", user, f"0x7f{rng.getrandbits(40):010x}", "",
                                 local=f"IPV{6 if a.v6 else 4}/TCP/{'::' if a.v6 else '0.0.0.0'}/5038")

    def attack_iax(self, a: Attacker) -> None:
        rng, p = self.rng, self.profile
        user = self.account(a)
        lwp = rng.randint(3000, 32000)
        if p.iax_port:
            self.attack("iax2.host_failed", "NOTICE", lwp, "", IAX2,
                        f"Host {a.hostport()} failed to authenticate as {user}")
        elif rng.random() < 0.6:
            self.attack("iax2.md5", "NOTICE", lwp, "", IAX2, f"Host {a.ip} failed MD5 authentication for '{user}' "
                        f"({rng.getrandbits(128):032x} != {rng.getrandbits(128):032x})")
        else:
            self.attack("iax2.no_registration", "NOTICE", lwp, "", IAX2,
                        f"No registration for peer '{user}' (from {a.ip})")

    # -- security log helpers ----------------------------------------------------------------------
    def tv(self) -> str:
        return self.clock.event_tv(self.profile.security)

    def session_id(self, service: str) -> str:
        bits = self.rng.getrandbits(64)
        return f"{bits:016x}@{SERVER_V4}" if service == "PJSIP" else f"0x7f{bits & 0xFFFFFFFFFF:010x}"

    def nonce(self, service: str) -> str:
        bits = self.rng.getrandbits(64)
        return f"{int(self.clock.now)}/{bits:016x}" if service == "PJSIP" else f"{bits & 0xFFFFFFFF:08x}"

    def callid(self, a: Attacker) -> str:
        bits = self.rng.getrandbits(48)
        if a.tool in ("svwar", "svcrack", "sipvicious"):
            return f"{bits:012d}"[:12]
        return f"{bits:012x}@{a.ip if not a.v6 else '[' + a.ip + ']'}"

    def security_line(self, body: str, lwp: int) -> bool:
        if not self.emit("SECURITY", lwp, "", SECURITY, body):
            return False
        self.counts.security_lines += 1
        return True

    def attack_security(self, a: Attacker, event: str, version: str, severity: str, service: str, account: str,
                        session: str, tail: str, local: str | None = None) -> None:
        if local is None:
            local = f"IPV6/{a.transport}/{SERVER_V6}/5060" if a.v6 else f"IPV4/{a.transport}/{SERVER_V4}/5060"
        body = (f'SecurityEvent="{event}",EventTV="{self.tv()}",Severity="{severity}",Service="{service}",'
                f'EventVersion="{version}",AccountID="{account}",SessionID="{session}",LocalAddress="{local}",'
                f'RemoteAddress="{a.tuple()}"{tail}')
        if self.security_line(body, self.rng.randint(3000, 32000)):
            self.counts.attack_lines += 1
            self.counts.forms[f"security.{event}"] += 1


def plan_segments(rng: random.Random, lines: int) -> list[tuple[Profile, int]]:
    """Segments in random order, each profile's lines adding up to its weight (every profile present)."""
    plan: list[tuple[Profile, int]] = []
    for profile in PROFILES:
        left = max(1, round(profile.weight * lines))
        while left > 0:
            length = min(left, rng.randint(max(100, lines // 120), max(200, lines // 40)))
            plan.append((profile, length))
            left -= length
    rng.shuffle(plan)
    return plan


def summary(counts: Counts, seconds: float, path: str, seed: int) -> dict[str, object]:
    return {
        "file": path,
        "seed": seed,
        "lines": counts.lines,
        "attack_lines": counts.attack_lines,
        "attack_share": round(counts.attack_lines / max(1, counts.lines), 4),
        "security_lines": counts.security_lines,
        "continuation_lines": counts.continuation_lines,
        "attacker_ips": len(counts.attackers),
        "attacker_ips_v6": sum(1 for ip in counts.attackers if ":" in ip),
        "segment_lines": dict(counts.profiles),
        "attack_forms": dict(sorted(counts.forms.items())),
        "seconds": round(seconds, 2),
        "attackers": sorted(counts.attackers),
    }


def generate(path: str, lines: int, seed: int, attack_share: float) -> dict[str, object]:
    started = time.perf_counter()
    gen = Generator(seed, attack_share)
    with open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        counts = gen.run(lines, out)
    last = int(gen.clock.now)
    os.utime(path, (last, last))
    return summary(counts, time.perf_counter() - started, path, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="physical lines to write (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attack-share", type=float, default=0.15, help="share of attack lines (default 0.15)")
    ap.add_argument("-o", "--output", required=True, help="the log file to write")
    ap.add_argument("--stats", help="also write the generator's counts as JSON to this file")
    args = ap.parse_args(argv)
    if not 0.0 <= args.attack_share < 1.0:
        ap.error("--attack-share must be in [0, 1)")
    info = generate(args.output, args.lines, args.seed, args.attack_share)
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
    print(f"genlog: wrote {info['lines']:,} lines to {args.output} in {info['seconds']}s: "
          f"{info['attack_lines']:,} attack lines ({info['attack_share']:.1%}) from {info['attacker_ips']:,} "
          f"addresses ({info['attacker_ips_v6']:,} IPv6), {info['security_lines']:,} security-log lines",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
