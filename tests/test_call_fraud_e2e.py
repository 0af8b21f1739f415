"""Issue 7 acceptance on the testbed's real Asterisk 22: a carrier (SIPp UAS at 198.51.100.250) answers
every outside call, six phones (SIPp, each in a namespace of its own in the office network 192.0.2.0/24,
each with its own user agent) register and call, and `sipwatch run` (AMI and the `full` log, AMI actions,
nftables) starts from profiles that `sipwatch learn` built out of twelve days of CDR history. Then:

* 6001's credentials, used from a public address with another user agent, call +882/+881 several at once;
* 6001's credentials register from another public network with another softphone (`new_source`);
* 6003, at its usual address, calls one premium number again and again;
* 6004, at its usual address, calls four countries it never called;

and each is caught by the right rule within 10 s, its calls hung up, the account blocked through AMI (and
the foreign address banned), while 6006 and 6002 keep completing their ordinary calls and 6002 (its usual
foreign country), 6005 (many internal calls, a new address inside the office network) raise nothing.
Measured per scenario (printed with -s): the rule, first fraudulent call -> alert and -> hang-up, the calls
and minutes that got through (from the run's own Master.csv). At the end, `sipwatch scan` of the run's
Master.csv alone and of its `full` log alone must flag the accounts the daemon flagged."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netlab import in_netns, veth
from sipwatch.responders.pbx import PbxActions

ROOT = Path(__file__).resolve().parent.parent
TESTBED = ROOT / "testbed" / "asterisk.sh"
SIPP = Path(__file__).resolve().parent / "sipp"
AMI = "ami://sipwatch:sipwatch-ami@127.0.0.1:5038"
CARRIER = "198.51.100.250"
FRAUD, FRAUD2 = "203.0.113.50", "198.51.100.77"  # two public networks, neither the office's nor each other's
PHONES = {f"600{i}": f"192.0.2.{16 * i + 2}" for i in range(1, 7)}  # one /28 each, all in the office /24
AGENTS = {a: f"Yealink SIP-T4{a[-1]}G 66.86.0.{a[-1]}" for a in PHONES}
USUAL = {"6001": "0049", "6002": "0033", "6003": "0044", "6004": "0039", "6005": "0031", "6006": "001"}
AREAS = {"0033": ("142", 6), "0044": ("207946", 4), "0039": ("06", 7), "0031": ("20", 7), "001": ("2127", 6)}

pytestmark = pytest.mark.e2e


def _pbx_side(addr: str) -> str:
    a, b, c, d = addr.split(".")
    return f"{a}.{b}.{c}.{int(d) & ~15 | 1}"


# -- history: twelve days of ordinary calls, as cdr_csv writes them (bench/gencdr.py's layout) ----------
def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def history(path: Path, days: int = 12, seed: int = 7) -> int:
    """Each phone, each day: internal calls, national fixed and mobile calls, calls to its usual country;
    spread over the day (so no hour of the test run is unusual); src= its own address."""
    rng = random.Random(seed)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows: list[tuple[datetime, str]] = []
    n = 0
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        for account, addr in PHONES.items():
            numbers = [str(rng.choice([7000, *[int(a) for a in PHONES if a != account]])) for _ in range(3)]
            numbers += [f"030{rng.randrange(10**6, 10**7)}", f"089{rng.randrange(10**6, 10**7)}",
                        f"0151{rng.randrange(10**7, 10**8)}"]
            usual = USUAL[account]
            if usual == "0049":
                numbers += [f"040{rng.randrange(10**6, 10**7)}", f"0221{rng.randrange(10**5, 10**6)}"]
            else:
                area, digits = AREAS[usual]
                numbers += [f"{usual}{area}{rng.randrange(10 ** (digits - 1), 10**digits)}" for _ in range(2)]
            for number in numbers:
                n += 1
                start = day + timedelta(seconds=rng.uniform(0, 86000))
                billsec = rng.randrange(20, 400)
                answer = start + timedelta(seconds=rng.randrange(2, 15))
                end = answer + timedelta(seconds=billsec)
                uid = f"{int(start.timestamp())}.{n}"
                peer = "PJSIP/carrier" if number.startswith("0") else f"PJSIP/{number}"
                fields = [_q(""), _q(account), _q(number), _q("internal"), _q(f'"Phone {account}" <{account}>'),
                          _q(f"PJSIP/{account}-{n:08x}"), _q(f"{peer}-{n:08x}"), _q("Dial"),
                          _q(f"PJSIP/{number}@carrier,30"), _q(_stamp(start)), _q(_stamp(answer)), _q(_stamp(end)),
                          str(int((end - start).total_seconds())), str(billsec), _q("ANSWERED"), _q("DOCUMENTATION"),
                          _q(uid), _q(f"src={addr}:5060")]
                rows.append((end, ",".join(fields) + "\n"))
    rows.sort()
    path.write_text("".join(r for _, r in rows))
    return len(rows)


# -- the lab -------------------------------------------------------------------------------------------
@dataclass
class Lab:
    pbx: str
    tmp: Path
    config: Path
    json_log: Path
    logs: Path
    cdr_offset: int
    namespaces: dict[str, str] = field(default_factory=dict)  # account (or "carrier", "fraud") -> namespace
    devices: dict[str, str] = field(default_factory=dict)  # account -> its veth end in its namespace
    ports: Iterator[int] = field(default_factory=lambda: iter(range(5200, 5600, 2)))
    figures: list[str] = field(default_factory=list)
    ordinary: dict[str, subprocess.Popen[str]] = field(default_factory=dict)  # phone -> its background calls

    def actions(self) -> PbxActions:
        with in_netns(self.pbx):
            found = PbxActions(AMI)
        assert found.wait_ready(10), found.problem
        return found

    def decisions(self) -> list[dict[str, object]]:
        if not self.json_log.exists():
            return []
        return [json.loads(line) for line in self.json_log.read_text().splitlines() if line.strip()]

    def sipwatch(self, *args: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.pbx, sys.executable, "-m", "sipwatch", *args, "--config",
                               str(self.config)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def cdrs(self, account: str) -> list[dict[str, str]]:
        """This run's Master.csv rows of `account` (cdr_csv: no header; uniqueid and userfield at the end)."""
        with (self.logs / "cdr-csv" / "Master.csv").open(newline="") as f:
            f.seek(self.cdr_offset)
            names = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
                     "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid",
                     "userfield"]
            return [dict(zip(names, row, strict=False)) for row in csv.reader(f)
                    if len(row) > 5 and row[5].startswith(f"PJSIP/{account}-")]


def _ns(name: str) -> str:
    ns = f"sw{name}{uuid.uuid4().hex[:5]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    return ns


def _skip_without_testbed() -> None:
    if os.geteuid() != 0:
        pytest.skip("the Asterisk testbed needs root (network namespaces, chroot)")
    for tool, package in (("debootstrap", "debootstrap"), ("sipp", "sip-tester"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {package})")


def _cli(ns: str, command: str) -> str:
    return subprocess.run(["bash", str(TESTBED), "cli", command], env={**os.environ, "SIPWATCH_TESTBED_NS": ns},
                          capture_output=True, text=True, timeout=30).stdout


def sipp(lab: Lab, account: str, scenario: str, *args: str, hold_ms: int = 3000, numbers: list[str] | None = None,
         source: str | None = None, agent: str | None = None, password: str | None = None,
         ns: str | None = None) -> subprocess.Popen[str]:
    """Start SIPp as phone `account` (its namespace and address unless `ns`/`source` say otherwise)."""
    ns = ns or lab.namespaces[account]
    source = source or PHONES[account]
    port = next(lab.ports)
    path = lab.tmp / f"{scenario}.{port}.xml"
    path.write_text((SIPP / scenario).read_text().replace("HOLD_MS", str(hold_ms)))
    inject: list[str] = []
    if numbers is not None:
        inf = lab.tmp / f"numbers.{port}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
        inject = ["-inf", str(inf)]
    command = ["ip", "netns", "exec", ns, "sipp", f"{_pbx_side(source)}:5060", "-sf", str(path), "-i", source,
               "-p", str(port), "-mp", str(port + 10000), "-s", account, "-au", account, "-ap",
               password or f"right-password-{account}", "-key", "ua", agent or AGENTS[account], "-nostdin",
               "-trace_stat", "-stf", str(lab.tmp / f"stat.{port}.csv"), "-fd", "1", *inject, *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=lab.tmp)


def _finish(call: subprocess.Popen[str], timeout: float = 40) -> int:
    try:
        call.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        call.kill()
        call.communicate()
    return call.returncode


def _stats(lab: Lab, call: subprocess.Popen[str]) -> tuple[int, int]:
    port = int(call.args[call.args.index("-p") + 1])  # type: ignore[union-attr,index,arg-type]
    with (lab.tmp / f"stat.{port}.csv").open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return int(rows[-1]["SuccessfulCall(C)"]), int(rows[-1]["FailedCall(C)"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _skip_without_testbed()
    tmp = tmp_path_factory.mktemp("fraud")
    pbx = f"swcf{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "SIPWATCH_TESTBED_NS": pbx}
    done = subprocess.run(["bash", str(TESTBED), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    logs = Path(subprocess.run(["bash", str(TESTBED), "logs"], env=env, capture_output=True, text=True).stdout.strip())
    master = logs / "cdr-csv" / "Master.csv"
    namespaces: dict[str, str] = {}
    devices: dict[str, str] = {}
    daemon: subprocess.Popen[bytes] | None = None
    carrier: subprocess.Popen[bytes] | None = None
    ordinary: list[subprocess.Popen[str]] = []
    try:
        _cli(pbx, "dialplan set global CARRIER carrier")
        namespaces["carrier"] = _ns("car")
        veth(pbx, namespaces["carrier"], uuid.uuid4().hex[:6], [f"{_pbx_side(CARRIER)}/28"], [f"{CARRIER}/28"])
        for account, addr in PHONES.items():
            namespaces[account] = _ns(f"p{account[-1]}")
            tag = uuid.uuid4().hex[:6]
            veth(pbx, namespaces[account], tag, [f"{_pbx_side(addr)}/28"], [f"{addr}/28"])
            devices[account] = f"a{tag}"
        namespaces["fraud"] = _ns("fr")
        tag = uuid.uuid4().hex[:6]
        veth(pbx, namespaces["fraud"], tag, [f"{_pbx_side(FRAUD)}/28", f"{_pbx_side(FRAUD2)}/28"],
             [f"{FRAUD}/28", f"{FRAUD2}/28"])
        devices["fraud"] = f"a{tag}"
        carrier = subprocess.Popen(["ip", "netns", "exec", namespaces["carrier"], "sipp", "-sn", "uas", "-i", CARRIER,
                                    "-p", "5060", "-nostdin"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, cwd=tmp)
        state, config, json_log = tmp / "state", tmp / "sipwatch.toml", tmp / "decisions.jsonl"
        config.write_text(f'[run]\nwatch = ["{AMI}", "{logs / "full.log"}"]\nstate_dir = "{state}"\n'
                          f'json_log = "{json_log}"\n[pbx]\nami = "{AMI}"\n[numbers]\ncountry = "DE"\n'
                          "[accounts.limits]\nsequential = [3, 5]\n[behaviour]\nlearning_days = 0\n")
        rows = history(tmp / "history.csv")
        learned = subprocess.run([sys.executable, "-m", "sipwatch", "learn", str(tmp / "history.csv"), "--config",
                                  str(config)], capture_output=True, text=True, timeout=60)
        assert learned.returncode == 0, learned.stderr
        print(f"\nhistory: {rows} CDR rows over 12 days learned: {learned.stdout.strip()}")
        shutil.copytree(state, tmp / "learned")  # what the daemon starts from, for the scans at the end
        the_lab = Lab(pbx, tmp, config, json_log, logs, master.stat().st_size if master.exists() else 0, namespaces,
                      devices)
        daemon = subprocess.Popen(["ip", "netns", "exec", pbx, sys.executable, "-m", "sipwatch", "run", "--config",
                                   str(config)], stdout=subprocess.DEVNULL, stderr=(tmp / "daemon.log").open("w"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _cli(pbx, "manager show connected").count("sipwatch") < 2:
            time.sleep(0.1)
        assert _cli(pbx, "manager show connected").count("sipwatch") >= 2, "sipwatch's two AMI sessions"
        registering = [sipp(the_lab, account, "register_ua.xml", "-m", "1", "-timeout", "10s", "-timeout_error")
                       for account in PHONES]
        assert [_finish(r) for r in registering] == [0] * len(PHONES), "every phone registered"
        # the ordinary phone: national calls of 2 s, one every 16 s (below calls_per_minute's 5), all through
        # two ordinary phones: national calls of 2 s, one every 16 s and 40 s (below calls_per_minute's 5), all
        # through, while the fraud goes on
        ordinary = [sipp(the_lab, "6006", "bounded_call.xml", "-r", "1", "-rp", "16000", "-m", "8", "-timeout", "150s",
                         hold_ms=2000, numbers=[f"030{1234560 + i}" for i in range(8)]),
                    sipp(the_lab, "6002", "bounded_call.xml", "-r", "1", "-rp", "40000", "-m", "4", "-timeout", "170s",
                         hold_ms=2000, numbers=[f"089{7654320 + i}" for i in range(4)])]
        the_lab.ordinary = {"6006": ordinary[0], "6002": ordinary[1]}
        yield the_lab
    finally:
        for phone in ordinary:
            if phone.poll() is None:
                phone.send_signal(signal.SIGUSR1)
                _finish(phone, 15)
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=15)
        if carrier is not None:
            carrier.kill()
            carrier.wait()
        subprocess.run(["ip", "netns", "exec", pbx, "nft", "delete", "table", "inet", "sipwatch"], capture_output=True)
        for ns in namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["bash", str(TESTBED), "stop"], env=env, capture_output=True, timeout=60)


@dataclass
class Outcome:
    rule: str
    after_deciding_call: float  # the decision's own time (the deciding record's) -> logged
    to_alert: float
    to_hangup: float | None
    calls: int
    minutes: float


def _caught(lab: Lab, account: str, started: float, rules: set[str], timeout: float = 10) -> Outcome:
    """Wait for a critical decision on `account` by one of `rules`, its block through AMI and the hang-up."""
    deadline = time.time() + timeout + 5
    found: dict[str, object] | None = None
    while time.time() < deadline and found is None:
        found = next((d for d in lab.decisions() if d.get("account") == account and d.get("level") == "critical"),
                     None)
        time.sleep(0.1)
    assert found is not None, f"no critical decision on {account}: {lab.decisions()}"
    assert found["rule"] in rules, found
    alerted = float(str(found["at"]))
    actions = lab.actions()
    try:
        while time.time() < deadline and account not in actions.blocked():
            time.sleep(0.1)
        assert str(found["rule"]) in actions.blocked().get(account, ""), "blocked through AMI, for that rule"
    finally:
        actions.close()
    taken = json.loads(lab.sipwatch("accounts", "list", "--json"))["actions"]
    hangups = [float(a["at"]) for a in taken if a["account"] == account and a["action"] == "hangup"]
    rows = lab.cdrs(account)
    answered = [r for r in rows if r["disposition"] == "ANSWERED" and r["dst"].startswith("0")]
    hung_up = (min(hangups) - started) if hangups else None
    return Outcome(str(found["rule"]), alerted - float(str(found["time"])), alerted - started, hung_up,
                   len(answered), sum(int(r["billsec"]) for r in answered) / 60)


def _report(lab: Lab, name: str, outcome: Outcome) -> None:
    hang = f"{outcome.to_hangup:.2f} s" if outcome.to_hangup is not None else "-"
    line = (f"{name}: rule {outcome.rule}, deciding call -> alert {outcome.after_deciding_call:.2f} s, "
            f"first call -> alert {outcome.to_alert:.2f} s, -> hang-up {hang}, "
            f"{outcome.calls} calls / {outcome.minutes * 60:.0f} s of talk got through")
    lab.figures.append(line)
    print("\n" + line)


def test_stolen_credentials_from_a_public_address_calling_high_cost_destinations(lab: Lab) -> None:
    """6001's password from 203.0.113.50 with a softphone's user agent: +882/+881 four at once, straight
    INVITEs with the stolen digest credentials and no REGISTER (the next test registers)."""
    agent = "Zoiper rv2.10.20.4"
    started = time.time()
    # four at once, each meant to last 30 s; once the address is banned, calls not yet answered get no
    # answer at all (SIPp gives up at its -timeout), so how long the answered ones lasted is read from the CDR
    calls = sipp(lab, "6001", "bounded_call.xml", "-m", "4", "-l", "4", "-r", "10", "-timeout", "12s",
                 ns=lab.namespaces["fraud"], source=FRAUD, agent=agent, hold_ms=30000,
                 numbers=["00882123456701", "00881612345678", "00882123456702", "00881612345679"])
    _finish(calls)
    outcome = _caught(lab, "6001", started, {"new_source", "new_high_risk_destination", "concurrent"})
    _report(lab, "stolen credentials (+882/+881, 4 at once)", outcome)
    assert outcome.after_deciding_call < 10
    answered = [r for r in lab.cdrs("6001") if r["disposition"] == "ANSWERED"]
    assert all(int(r["billsec"]) < 5 for r in answered), f"hung up long before 30 s: {answered}"
    # the new network was seen too, but an INVITE's user agent is in no AMI event or log line: `new_network`
    # warns, and the first call to +882 is the critical decision
    seen = [d for d in lab.decisions() if d.get("account") == "6001" and d.get("rule") == "new_network"]
    assert seen and FRAUD in str(seen[0]["reason"]), lab.decisions()
    bans = json.loads(lab.sipwatch("bans", "list", "--json"))
    assert FRAUD in [b["ip"] for b in bans]
    assert not [b for b in bans if b["ip"] in PHONES.values()], "no phone's address is banned"


def test_stolen_credentials_registering_from_a_new_network_with_another_user_agent(lab: Lab) -> None:
    """6001's password registers from 198.51.100.77 with another softphone: the REGISTER's SuccessfulAuth names
    the address, PJSIPShowEndpoint the new contact's user agent (Asterisk 22's ContactStatus has none), and
    together they are `new_source`, critical before any call: the address is banned at once."""
    started = time.time()
    registered = sipp(lab, "6001", "register_ua.xml", "-m", "1", "-timeout", "10s", ns=lab.namespaces["fraud"],
                      source=FRAUD2, agent="MicroSIP/3.21.3")
    assert _finish(registered) == 0
    deadline = time.time() + 10
    found: list[dict[str, object]] = []
    while time.time() < deadline and not found:
        found = [d for d in lab.decisions() if d.get("rule") == "new_source" and FRAUD2 in str(d.get("reason"))]
        time.sleep(0.1)
    assert found and found[0]["account"] == "6001" and found[0]["level"] == "critical", lab.decisions()
    assert "MicroSIP/3.21.3" in str(found[0]["reason"])
    decided = float(str(found[0]["at"])) - started
    bans = json.loads(lab.sipwatch("bans", "list", "--json"))
    assert FRAUD2 in [b["ip"] for b in bans]
    line = (f"stolen credentials registering (new network + new user agent): rule new_source, REGISTER -> alert "
            f"{decided:.2f} s, {FRAUD2} banned, no call placed")
    lab.figures.append(line)
    print("\n" + line)


def test_one_premium_number_again_and_again(lab: Lab) -> None:
    """6003 at its usual address calls 0900 1234567 (premium rate) over and over, one call after another."""
    started = time.time()
    calls = sipp(lab, "6003", "bounded_call.xml", "-m", "8", "-l", "1", "-r", "2", "-timeout", "40s", hold_ms=1500,
                 numbers=["09001234567"])
    _finish(calls)
    outcome = _caught(lab, "6003", started, {"sequential"})
    _report(lab, "one premium number again and again (sequential [3, 5])", outcome)
    assert outcome.after_deciding_call < 10
    successful, failed = _stats(lab, calls)
    assert successful <= 5 and failed >= 3, (successful, failed)  # the blocked account's next calls are refused
    bans = json.loads(lab.sipwatch("bans", "list", "--json"))
    assert PHONES["6003"] not in [b["ip"] for b in bans], "an office address is never banned"


def test_many_new_countries_at_the_usual_address(lab: Lab) -> None:
    """6004 (usually Italy) calls Austria, Switzerland, Portugal, Denmark, Spain, one after another."""
    started = time.time()
    calls = sipp(lab, "6004", "bounded_call.xml", "-m", "5", "-l", "1", "-r", "2", "-timeout", "40s", hold_ms=1500,
                 numbers=["0043123456789", "0041441234567", "00351211234567", "004533123456", "0034911234567"])
    _finish(calls)
    outcome = _caught(lab, "6004", started, {"new_countries"})
    _report(lab, "many new countries (usual address)", outcome)
    assert outcome.after_deciding_call < 10
    successful, failed = _stats(lab, calls)
    assert failed >= 1, (successful, failed)  # the fifth country: refused, the account is blocked
    bans = json.loads(lab.sipwatch("bans", "list", "--json"))
    assert PHONES["6004"] not in [b["ip"] for b in bans], "an office address is never banned"


def test_ordinary_calls_raise_nothing_and_keep_completing(lab: Lab) -> None:
    """6002 calls its usual France; 6005 makes many internal calls, then from a new address in the office
    network calls national numbers; 6006's national calls went on all the while."""
    usual = sipp(lab, "6002", "bounded_call.xml", "-m", "2", "-l", "1", "-r", "1", "-timeout", "30s", hold_ms=1000,
                 numbers=["0033142685300", "0033142685301"])
    internal = sipp(lab, "6005", "phone_call.xml", "-m", "20", "-l", "4", "-r", "4", "-timeout", "30s")
    assert _finish(usual) == 0 and _finish(internal) == 0
    moved = PHONES["6005"].rsplit(".", 1)[0] + f".{int(PHONES['6005'].rsplit('.', 1)[1]) + 1}"
    subprocess.run(["ip", "-n", lab.namespaces["6005"], "addr", "add", f"{moved}/28", "dev", lab.devices["6005"]],
                   check=True)
    register = sipp(lab, "6005", "register_ua.xml", "-m", "1", "-timeout", "10s", source=moved,
                    agent="Yealink SIP-T58W 150.86.0.1")
    assert _finish(register) == 0
    national = sipp(lab, "6005", "bounded_call.xml", "-m", "2", "-l", "1", "-r", "1", "-timeout", "30s",
                    source=moved, agent="Yealink SIP-T58W 150.86.0.1", hold_ms=1000,
                    numbers=["0891234567", "0301112223"])
    assert _finish(national) == 0
    time.sleep(3)  # the last records reach the daemon
    quiet = {"6002", "6005", "6006"}
    assert not [d for d in lab.decisions() if d.get("account") in quiet], lab.decisions()
    actions = lab.actions()
    try:
        assert not quiet & set(actions.blocked())
    finally:
        actions.close()
    deadline = time.monotonic() + 130  # run alone, this test waits for three calls of each (one each 16 s, 40 s)

    def completed(phone: str) -> int:
        rows = lab.cdrs(phone)
        return len([r for r in rows if r["disposition"] == "ANSWERED" and r["dst"].startswith(("030", "089"))])

    for phone in ("6006", "6002"):
        while completed(phone) < 3:
            assert time.monotonic() < deadline, f"the ordinary phone {phone}'s calls kept completing"
            time.sleep(0.5)
        assert _stats(lab, lab.ordinary[phone])[1] == 0, f"none of {phone}'s ordinary calls failed"
    assert not [d for d in lab.decisions() if d.get("account") == "6006"], lab.decisions()
    print(f"\nordinary phones: {completed('6006')} (6006) and {completed('6002')} (6002) national calls completed "
          "during the run, none failed")
    for line in lab.figures:
        print(line)


def _live_verdicts(lab: Lab) -> dict[str, str]:
    """Per account the daemon judged: "block" after a critical decision, else "alert"."""
    verdicts: dict[str, str] = {}
    for d in lab.decisions():
        account = d.get("account")
        if isinstance(account, str) and d.get("rule"):
            verdicts[account] = "block" if d.get("level") == "critical" or verdicts.get(account) == "block" else "alert"
    return verdicts


@pytest.mark.parametrize("record", ["cdr-csv/Master.csv", "full.log"])
def test_a_scan_of_the_run_s_own_record_flags_the_same_accounts(lab: Lab, record: str) -> None:
    """`sipwatch scan` of the run's default Master.csv alone, and of its `full` log alone, with the profiles
    the daemon started from, flags the accounts the daemon flagged and no others (run after the scenarios)."""
    live = _live_verdicts(lab)
    if not live:
        pytest.skip("run with the scenarios above: alone, the daemon has judged nothing to compare with")
    path = lab.logs / record
    done = subprocess.run([sys.executable, "-m", "sipwatch", "scan", "--json", str(path), "--config", str(lab.config),
                           "--state-dir", str(lab.tmp / "learned")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    flagged = {a["account"]: a for a in report["accounts"] if a["decision"] != "none"}
    print(f"\nscan of {record} ({report['lines']} lines, {report['events']} events): "
          + ", ".join(f"{a} {v['decision']} by {v['rule']}" for a, v in sorted(flagged.items())))
    assert {a: v["decision"] for a, v in flagged.items()} == live
    assert FRAUD in [o["ip"] for o in report["offenders"]], "the address that used stolen credentials"
    assert not [o for o in report["offenders"] if o["ip"] in PHONES.values() and o["decision"] == "ban"]
