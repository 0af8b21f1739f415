"""Real Asterisk 22.10 output: lines that a real Asterisk (the testbed) wrote for a wrong password on an
existing endpoint, an unknown user, and a good login; kept as fixtures, and produced afresh when the
testbed can run (root, debootstrap)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="the testbed needs the Debian package debootstrap")
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


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="the testbed needs the Debian package debootstrap")
def test_ami_security_events_of_a_real_asterisk_become_events(asterisk: tuple[str, Path]) -> None:
    """Through AMI (user `sipwatch`, class security), the same reader turns Asterisk 22's events into
    events with the packet's source address and port."""
    ns, _ = asterisk
    first, *events = _ami_probe(ns, "ami://sipwatch:sipwatch-ami@127.0.0.1:5038")
    assert first == {"ready": True, "problem": None}
    attack = [e for e in events if e["port"] == 40031]
    assert {e["reason"] for e in attack} >= {"InvalidAccountID", "ChallengeResponseFailed"}
    assert all(e["ip"] == "127.0.0.1" for e in attack)


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="the testbed needs the Debian package debootstrap")
def test_wrong_ami_credentials_are_a_clear_problem(asterisk: tuple[str, Path]) -> None:
    ns, _ = asterisk
    (first,) = _ami_probe(ns, "ami://sipwatch:not-the-secret@127.0.0.1:5038")
    assert first["ready"] is False and "refused the login" in str(first["problem"])


TOOLS = Path(sys.executable).parent
ATTACKER = "198.51.100.66"


@pytest.fixture
def guarded(asterisk: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """An attacker namespace joined to the PBX's by veth, and `sipwatch run` (nftables) in the PBX's
    namespace watching Asterisk's logs. Yields (attacker namespace, state folder, log folder)."""
    if shutil.which("nft") is None:
        pytest.skip("needs the Debian package nftables")
    ns, logs = asterisk
    atk, tag = f"swat{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:5]
    state = tmp_path / "state"
    subprocess.run(["ip", "netns", "add", atk], check=True)
    daemon = None
    try:
        subprocess.run(["ip", "link", "add", f"a{tag}", "netns", atk, "type", "veth", "peer", "name", f"p{tag}",
                        "netns", ns], check=True)
        for where, dev, addr in ((atk, f"a{tag}", f"{ATTACKER}/24"), (ns, f"p{tag}", "198.51.100.1/24")):
            subprocess.run(["ip", "-n", where, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", where, "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "-n", atk, "link", "set", "lo", "up"], check=True)
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "sipwatch", "run", "--watch", str(logs / "messages.log"),
             "--watch", str(logs / "security.log"), "--state-dir", str(state)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not (state / "sipwatch.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield atk, state, logs
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=15)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "sipwatch"], capture_output=True)
        subprocess.run(["ip", "netns", "del", atk], capture_output=True)


def _ban_of(state: Path, ip: str) -> dict[str, object]:
    bans = json.loads(subprocess.run([sys.executable, "-m", "sipwatch", "bans", "list", "--json", "--state-dir",
                                      str(state)], capture_output=True, text=True, timeout=30).stdout)
    (ban,) = [b for b in bans if b["ip"] == ip]
    return ban


def _heard_after(logs: Path, ip: str, when: float) -> list[str]:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    return [line for line in (logs / "messages.log").read_text().splitlines() if ip in line and line[1:20] > stamp]


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="the testbed needs the Debian package debootstrap")
@pytest.mark.skipif(not (TOOLS / "sipvicious_svcrack").exists(), reason="needs sipvicious (PyPI, the test extra)")
def test_svcrack_from_its_own_address_is_banned_and_then_unheard(guarded: tuple[str, Path, Path],
                                                                  tmp_path: Path) -> None:
    """SIPVicious svcrack guesses 6001's password; banned for brute force well before its word list ends,
    after which Asterisk logs nothing more from it."""
    atk, state, logs = guarded
    words = tmp_path / "words.txt"
    words.write_text("".join(f"guess{i}\n" for i in range(40)))
    started = time.time()
    subprocess.run(["ip", "netns", "exec", atk, str(TOOLS / "sipvicious_svcrack"), "-u", "6001", "-d", str(words),
                    "-t", "0.05", "198.51.100.1"], capture_output=True, timeout=90)
    ban = _ban_of(state, ATTACKER)
    assert str(ban["reason"]).startswith("brute_force")
    tries = [line for line in (logs / "messages.log").read_text().splitlines() if ATTACKER in line]
    assert 0 < len(tries) < 40, "banned long before the word list ran out"
    banned_at = float(str(ban["until"])) - 3600
    assert _heard_after(logs, ATTACKER, banned_at + 1) == [], "Asterisk heard nothing more from it"
    print(f"svcrack: {len(tries)} failures logged, banned {banned_at - started:.2f}s after the start")


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root (chroot, network namespace)")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="the testbed needs the Debian package debootstrap")
@pytest.mark.skipif(not (TOOLS / "sipvicious_svmap").exists(), reason="needs sipvicious (PyPI, the test extra)")
def test_svmap_is_banned_as_a_scanner_on_its_first_request(guarded: tuple[str, Path, Path]) -> None:
    """svmap's OPTIONS names the tool in From ("sipvicious"): one request, a short (weak-evidence) ban."""
    atk, state, _ = guarded
    started = time.time()
    subprocess.run(["ip", "netns", "exec", atk, str(TOOLS / "sipvicious_svmap"), "198.51.100.1"],
                   capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        bans = subprocess.run([sys.executable, "-m", "sipwatch", "bans", "list", "--json", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=30).stdout
        if ATTACKER in bans:
            break
        time.sleep(0.2)
    ban = _ban_of(state, ATTACKER)
    assert str(ban["reason"]).startswith("scanner") and "SIPVicious" in str(ban["reason"])
    assert float(str(ban["until"])) - started < 700  # weak evidence: the short ban
