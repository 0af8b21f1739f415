"""Real Asterisk 22.10 output: lines that a real Asterisk (the testbed) wrote for a wrong password on an
existing endpoint, an unknown user, and a good login; kept as fixtures, and produced afresh when the
testbed can run (root, debootstrap)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from attacks import SCENARIOS, Ban, Meter, Phone, first_heard, pbx_side, wait_for_ban
from netlab import veth
from sipwatch.config import from_dict
from sipwatch.formats.records import ScanStats
from sipwatch.scan import Reader, scan
from sipwatch.sources.files import FileSource

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk22"
TESTBED = ROOT / "testbed" / "asterisk.sh"


def _kinds(*paths: Path) -> tuple[Counter[str], ScanStats]:
    stats = ScanStats()
    reader = Reader(from_dict({}))
    kinds: Counter[str] = Counter()
    for path in paths:
        for event in reader.events(FileSource(str(path)), stats):
            kinds[f"{event.kind}:{event.reason}"] += 1
    return kinds, stats


def test_the_fixtures_parse_completely() -> None:
    """3 wrong passwords for 6001, 2 for the unknown 9999, 1 good login: every line is understood."""
    kinds, stats = _kinds(FIXTURES / "messages.log", FIXTURES / "security.log")
    assert stats.unmatched == 0 and stats.junk == 0
    assert kinds["auth_failure:Failed to authenticate"] == 5
    assert kinds["unknown_account:No matching endpoint found"] == 4  # two requests per guess for 9999
    assert kinds["unknown_account:InvalidAccountID"] == 4
    assert kinds["auth_failure:ChallengeResponseFailed"] == 5
    assert kinds["auth_success:SuccessfulAuth"] == 1


def test_three_notice_lines_per_wrong_guess_count_as_requests_not_lines() -> None:
    """Asterisk 22 writes three NOTICE lines per wrong guess for an unknown user (two requests: the
    unauthenticated REGISTER and the answer to the challenge), plus security events beside them."""
    config = from_dict({"policy": {"allow_loopback": True},
                        "detectors": {"brute_force": {"attempts": 30}, "enumeration": {"accounts": 30}}})
    result = scan([str(FIXTURES / "messages.log"), str(FIXTURES / "security.log")], config)
    offender = next(iter(result.offenders.values()))
    assert offender.events == 18  # every hostile line and event is reported...
    assert offender.decision == "none"  # ...but 7 requests are far from 30 attempts




ATTACKS = (FIXTURES / "attacks-messages.log", FIXTURES / "attacks-security.log")
#: the acceptance run kept in ATTACKS: each attacker's address, and the detector that banned it
BANNED = {"198.51.100.66": "brute_force",  # svcrack
          "198.51.100.34": "scanner",  # svmap
          "198.51.100.50": "enumeration",  # svwar (REGISTER), run five times
          "198.51.100.82": "rejected_calls",  # svwar (INVITE) through the anonymous endpoint
          "198.51.100.98": "brute_force",  # SIPp REGISTER guesses
          "198.51.100.114": "brute_force",  # SIPp INVITE flood, no anonymous endpoint
          "198.51.100.130": "rejected_calls",  # the same through the anonymous endpoint
          "198.51.100.146": "brute_force",  # SIPp premium numbers, no anonymous endpoint
          "198.51.100.162": "toll_fraud"}  # the same through the anonymous endpoint
ANONYMOUS_CALLERS = ("198.51.100.82", "198.51.100.130", "198.51.100.162")


def test_a_real_acceptance_run_is_understood_line_by_line() -> None:
    """Every line Asterisk 22 wrote about the attackers of one acceptance run, and the registrar's and
    pjproject's lines for an anonymous REGISTER and an unparseable request, yields an event."""
    kinds, stats = _kinds(*ATTACKS, FIXTURES / "oddities.log")
    assert stats.unmatched == 0 and stats.junk == 0
    assert kinds["rejected_call:"] == 8
    assert kinds["acl_denied:has no configured AORs"] == 2
    assert kinds["malformed:"] == 2  # pjproject: "Dropping 359 bytes packet from UDP <addr> : PJSIP syntax error"


def test_a_real_acceptance_run_scanned_bans_every_attacker_for_its_reason() -> None:
    """The offline scan of the run's messages and security logs decides what the daemon decided live."""
    result = scan([str(path) for path in ATTACKS], from_dict({}))
    decided = {str(ip): (o.decision, o.reason.partition(":")[0]) for ip, o in result.offenders.items()}
    assert decided == {ip: ("ban", detector) for ip, detector in BANNED.items()}


def test_through_an_anonymous_endpoint_calls_are_logged_with_the_number_and_never_on_ami() -> None:
    messages, security = (path.read_text() for path in ATTACKS)
    for ip in ANONYMOUS_CALLERS:
        assert f"(UDP:{ip}:" in messages and "rejected because extension not found in context 'public'" in messages
        assert f"/{ip}/" not in security
    assert "to extension '+882130000001' rejected" in messages


def test_without_one_the_dialled_number_is_logged_nowhere() -> None:
    """198.51.100.146 dialled the premium numbers with no anonymous endpoint: "No matching endpoint found"
    and InvalidAccountID, for the From user, and not one of the numbers."""
    lines = [line for path in ATTACKS for line in path.read_text().splitlines() if "198.51.100.146" in line]
    assert lines and all("caller" in line for line in lines if "InvalidAccountID" in line)
    assert not [line for line in lines for number in PREMIUM if number in line]


def e2e(test: Callable[..., None]) -> Callable[..., None]:
    """Marks an end-to-end test against the testbed: skipped without root or debootstrap."""
    for mark in (pytest.mark.e2e,
                 pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)"),
                 pytest.mark.skipif(shutil.which("debootstrap") is None,
                                    reason="the testbed needs the Debian package debootstrap")):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def asterisk() -> Iterator[tuple[str, Path]]:
    ns = f"swast{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "SIPWATCH_TESTBED_NS": ns}
    done = subprocess.run(["bash", str(TESTBED), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    logs = Path(subprocess.run(["bash", str(TESTBED), "logs"], env=env, capture_output=True, text=True).stdout.strip())
    try:
        yield ns, logs
    finally:
        subprocess.run(["bash", str(TESTBED), "stop"], env=env, capture_output=True, timeout=60)


def _client(ns: str, user: str, password: str, port: int, attempts: int) -> str:
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).parent / "sipclient.py"),
                           "127.0.0.1", user, password, str(port), str(attempts)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@e2e
def test_a_real_asterisk_22_brute_force_is_detected(asterisk: tuple[str, Path]) -> None:
    ns, logs = asterisk
    assert _client(ns, "6001", "wrong", 40010, 6) == "[401, 401, 401, 401, 401, 401]"
    assert _client(ns, "9999", "guess", 40011, 2) == "[401, 401]"
    assert _client(ns, "6001", "right-password-6001", 40012, 1) == "[200]"
    messages, security = logs / "messages.log", logs / "security.log"
    kinds, stats = _kinds(messages, security)
    assert stats.unmatched == 0, stats.unmatched_samples
    assert kinds["auth_failure:Failed to authenticate"] == 8 and kinds["auth_success:SuccessfulAuth"] == 1
    result = scan([str(messages), str(security)], from_dict({"policy": {"allow_loopback": True}}))
    (offender,) = result.offenders.values()
    assert offender.decision == "ban" and offender.reason.startswith("brute_force")


AMI_PROBE = r"""
import json, subprocess, sys, time
from sipwatch.formats.parser import LineParser
from sipwatch.sources.ami import AmiFollower
from sipwatch.timeparse import TimeParser
source = AmiFollower(sys.argv[2])
ok = source.wait_ready(15)
print(json.dumps({"ready": ok, "problem": source.problem}), flush=True)
if ok:
    subprocess.run([sys.executable, sys.argv[1], "127.0.0.1", "9999", "guess", "40031", "2"], check=True,
                   capture_output=True)
    time.sleep(1.0)
    parser = LineParser(TimeParser(2026))
    for chunk in source.read():
        for line in chunk.data.decode().splitlines():
            event = parser.parse(line)
            print(json.dumps({"kind": str(getattr(event, "kind", event)), "ip": str(getattr(event, "ip", "")),
                              "port": getattr(event, "port", None), "reason": getattr(event, "reason", "")}))
source.close()
"""


def _ami_probe(ns: str, url: str) -> list[dict[str, object]]:
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", AMI_PROBE,
                           str(Path(__file__).parent / "sipclient.py"), url],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@e2e
def test_ami_security_events_of_a_real_asterisk_become_events(asterisk: tuple[str, Path]) -> None:
    """Through AMI (user `sipwatch`, class security), the same reader turns Asterisk 22's events into
    events with the packet's source address and port."""
    ns, _ = asterisk
    first, *events = _ami_probe(ns, "ami://sipwatch:sipwatch-ami@127.0.0.1:5038")
    assert first == {"ready": True, "problem": None}
    attack = [e for e in events if e["port"] == 40031]
    assert {e["reason"] for e in attack} >= {"InvalidAccountID", "ChallengeResponseFailed"}
    assert all(e["ip"] == "127.0.0.1" for e in attack)


@e2e
def test_wrong_ami_credentials_are_a_clear_problem(asterisk: tuple[str, Path]) -> None:
    ns, _ = asterisk
    (first,) = _ami_probe(ns, "ami://sipwatch:not-the-secret@127.0.0.1:5038")
    assert first["ready"] is False and "refused the login" in str(first["problem"])


TOOLS = Path(sys.executable).parent
AMI = "ami://sipwatch:sipwatch-ami@127.0.0.1:5038"
PHONE = "203.0.113.20"


def _testbed(ns: str, *args: str) -> str:
    done = subprocess.run(["bash", str(TESTBED), *args], env={**os.environ, "SIPWATCH_TESTBED_NS": ns},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Guarded:
    """The PBX's namespace guarded by `sipwatch run` (Asterisk's messages log and its AMI security events,
    nftables), with request counters, and the peers joined to it: one namespace per address."""

    pbx: str
    state: Path
    logs: Path
    workdir: Path
    meter: Meter
    peers: dict[str, str] = field(default_factory=dict)

    def peer(self, address: str) -> str:
        """A namespace of its own for `address`, joined to the PBX by veth in a /28 of its own."""
        ns = f"swpeer{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.peers[address] = ns
        veth(self.pbx, ns, uuid.uuid4().hex[:6], [f"{pbx_side(address)}/28"], [f"{address}/28"])
        self.meter.add(address)
        return ns


def _ami_connected(ns: str) -> bool:
    return "sipwatch" in _testbed(ns, "cli", "manager show connected")


@pytest.fixture
def guarded(asterisk: tuple[str, Path], tmp_path: Path) -> Iterator[Guarded]:
    """`sipwatch run` (nftables) in the PBX's namespace, following Asterisk's messages log and its AMI."""
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables")
    ns, logs = asterisk
    guard = Guarded(ns, tmp_path / "state", logs, tmp_path, Meter(ns))
    daemon = None
    try:
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "sipwatch", "run", "--watch", str(logs / "messages.log"),
             "--watch", AMI, "--state-dir", str(guard.state)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not ((guard.state / "sipwatch.sock").exists() and _ami_connected(ns)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ami_connected(ns), "sipwatch logged in to AMI"
        yield guard
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=15)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "sipwatch"], capture_output=True)
        guard.meter.remove()
        for peer in guard.peers.values():
            subprocess.run(["ip", "netns", "del", peer], capture_output=True)


@pytest.fixture
def phone(guarded: Guarded) -> Iterator[Phone]:
    """The legitimate phone, registered from its own address and calling throughout the test."""
    if shutil.which("sipp") is None:
        pytest.skip("needs the Debian package sip-tester (SIPp)")
    device = Phone(guarded.peer(PHONE), PHONE, guarded.workdir)
    assert device.register() == 0, "the phone registers with its own credentials"
    device.start()
    try:
        yield device
    finally:
        device.stop()


@contextmanager
def anonymous_endpoint(ns: str) -> Iterator[None]:
    """The PBX with an `anonymous` endpoint (context public) for the duration."""
    _testbed(ns, "anonymous", "on")
    try:
        yield
    finally:
        _testbed(ns, "anonymous", "off")


@dataclass
class Outcome:
    """One attack as the PBX saw it."""

    ban: Ban
    heard: int  # requests that reached Asterisk: all of them before the ban, none after
    sent: int  # requests the attacker sent
    seconds: float  # from the first request Asterisk logged to the ban
    calls: int  # legitimate calls completed meanwhile


def attack(guarded: Guarded, phone: Phone, address: str, commands: list[list[str]], timeout: float = 60,
           ban_within: float = 30) -> Outcome:
    """Run the attacker's commands one after the other from `address`'s own namespace while the phone calls;
    the attacker is banned, Asterisk hears nothing more from it, the phone is never banned and its calls
    complete."""
    ns = guarded.peer(address)
    script = "; ".join(shlex.join(["ip", "netns", "exec", ns, *command]) for command in commands)
    attacker = subprocess.Popen(["bash", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ban = wait_for_ban(guarded.state, address, ban_within)
        assert ban is not None, f"{address} banned within {ban_within}s"
        _, heard_at_ban = guarded.meter.read(address)
        attacker.wait(timeout=timeout)
    finally:
        attacker.kill()
    calls = phone.stop()
    sent, heard = guarded.meter.read(address)
    assert heard == heard_at_ban, "Asterisk heard nothing more from the attacker once it was banned"
    assert calls.code == 0 and calls.failed == 0 and calls.successful > 0, calls
    assert wait_for_ban(guarded.state, PHONE, 0) is None, "the phone is never banned"
    started = first_heard(guarded.logs, address)
    assert started is not None
    outcome = Outcome(ban, heard, sent, ban.since - started, calls.successful)
    print(f"\n{address}: {outcome}")
    return outcome


def _sipvicious(tool: str) -> list[str]:
    return [str(TOOLS / f"sipvicious_{tool}")]


needs_sipvicious = pytest.mark.skipif(not (TOOLS / "sipvicious_svcrack").exists(),
                                      reason="needs sipvicious (PyPI, the test extra)")
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="needs the Debian package sip-tester (SIPp)")


@e2e
@needs_sipvicious
def test_svcrack_from_its_own_address_is_banned_and_then_unheard(guarded: Guarded, phone: Phone,
                                                                  tmp_path: Path) -> None:
    """SIPVicious svcrack guesses 6001's password; banned for brute force well before its 40-word list
    ends, after which Asterisk hears nothing more from it."""
    words = tmp_path / "words.txt"
    words.write_text("".join(f"guess{i}\n" for i in range(40)))
    attacker = "198.51.100.66"
    result = attack(guarded, phone, attacker, [
        [*_sipvicious("svcrack"), "-u", "6001", "-d", str(words), "-t", "0.05", "--maximumtime", "2",
         pbx_side(attacker)]])
    assert result.ban.detector == "brute_force"
    assert result.heard < 20 < result.sent, "banned long before the word list ran out"


@e2e
@needs_sipvicious
def test_svmap_is_banned_as_a_scanner_on_its_first_request(guarded: Guarded, phone: Phone) -> None:
    """svmap's OPTIONS names the tool in From ("sipvicious"): one request, a short (weak-evidence) ban."""
    attacker = "198.51.100.34"
    result = attack(guarded, phone, attacker, [[*_sipvicious("svmap"), pbx_side(attacker)]])
    assert result.ban.detector == "scanner" and "SIPVicious" in result.ban.reason
    assert result.heard == 1
    assert result.ban.until - result.ban.since <= 600  # weak evidence: the short ban


def _svwar(target: str, *args: str) -> list[str]:
    """svwar bounded: 20 ms between requests, stops 2 s after the last answer."""
    return ["timeout", "20", *_sipvicious("svwar"), "--force", "-t", "0.02", "--maximumtime", "2", *args, target]


@e2e
@needs_sipvicious
def test_svwar_run_again_and_again_is_banned_for_enumeration(guarded: Guarded, phone: Phone) -> None:
    """Asterisk 22 challenges every unknown user, so svwar (REGISTER) gives up after two requests — its
    probe for a surely-unknown user and the first of its range — having learnt nothing. An attacker runs
    it again on the next range: banned for enumeration at the fifth distinct account, and unheard after."""
    attacker = "198.51.100.50"
    result = attack(guarded, phone, attacker,
                    [_svwar(pbx_side(attacker), "-e", f"{n}00-{n}99") for n in range(1, 6)])
    assert result.ban.detector == "enumeration"
    assert result.heard == 5 and result.sent > result.heard


@e2e
@needs_sipvicious
def test_svwar_inviting_through_an_anonymous_endpoint_is_banned_as_it_walks(guarded: Guarded,
                                                                           phone: Phone) -> None:
    """With an anonymous endpoint svwar's INVITE walk works (unknown extensions: 404, existing ones:
    401); Asterisk logs each unknown one as a call rejected in [public]: banned after three."""
    attacker = "198.51.100.82"
    with anonymous_endpoint(guarded.pbx):
        result = attack(guarded, phone, attacker, [_svwar(pbx_side(attacker), "-m", "INVITE", "-e", "100-199")])
    assert result.ban.detector == "rejected_calls"
    assert result.heard <= 4 < result.sent


def _sipp_attack(scenario: str, address: str, inject: Path, rate: int, calls: int) -> list[str]:
    """A SIPp attacker: `calls` calls at `rate` a second, each given up 2 s after it hears nothing."""
    return ["sipp", pbx_side(address), "-sf", str(SCENARIOS / scenario), "-i", address, "-p", "5080",
            "-inf", str(inject), "-r", str(rate), "-m", str(calls), "-recv_timeout", "2000", "-max_recv_loops",
            "100", "-timeout", "20s", "-nostdin"]


def _injection(path: Path, rows: list[str]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(f"{row}\n" for row in rows))
    return path


@e2e
@needs_sipp
def test_sipp_register_brute_force_is_banned_for_brute_force(guarded: Guarded, phone: Phone, tmp_path: Path) -> None:
    """SIPp guesses 6001's password from an injection file of 40 wrong ones (digest auth answered each
    time): banned for brute force at the sixth failure."""
    attacker = "198.51.100.98"
    passwords = _injection(tmp_path / "guesses.csv", [f"6001;guess{i}" for i in range(40)])
    result = attack(guarded, phone, attacker, [_sipp_attack("register_guess.xml", attacker, passwords, 10, 40)])
    assert result.ban.detector == "brute_force"
    assert result.heard <= 13 < result.sent  # a guess is two REGISTERs: the challenged one and the answer


PREMIUM = ["+882130000001", "009001234567", "00449091234567", "+44909123456", "0088213000002", "011882130000003"]


@e2e
@needs_sipp
@pytest.mark.parametrize(("attacker", "numbers", "anonymous", "detector"), [
    ("198.51.100.114", [str(n) for n in range(100, 200)], False, "brute_force"),
    ("198.51.100.130", [str(n) for n in range(100, 200)], True, "rejected_calls"),
    ("198.51.100.146", PREMIUM * 10, False, "brute_force"),
    ("198.51.100.162", PREMIUM * 10, True, "toll_fraud"),
], ids=["flood", "flood-anonymous", "premium", "premium-anonymous"])
def test_sipp_invites_to_unknown_and_premium_numbers_are_banned(guarded: Guarded, phone: Phone, tmp_path: Path,
                                                                 attacker: str, numbers: list[str], anonymous: bool,
                                                                 detector: str) -> None:
    """Without an anonymous endpoint every stranger's INVITE fails endpoint identification ("No matching
    endpoint found", InvalidAccountID on AMI) and the dialled number is logged nowhere: banned as unknown
    accounts. With one, each INVITE is a call rejected in [public] with the number, never on AMI: banned
    for rejected calls, or for toll fraud when the numbers are premium and international."""
    dialled = _injection(tmp_path / "numbers.csv", numbers)
    with anonymous_endpoint(guarded.pbx) if anonymous else nullcontext():
        result = attack(guarded, phone, attacker, [_sipp_attack("invite_numbers.xml", attacker, dialled, 20, 100)])
    assert result.ban.detector == detector
    assert result.heard <= 6 < result.sent
