"""Per-account call rules (issue 7): warning and critical levels per account, from the calls' own times.

Every test feeds real-looking `cdr_csv` rows (cdr.conf.sample columns: uniqueid and userfield, times in
UTC) of a PBX in Germany through the pipeline in time order, as `scan` and the daemon do, and says
which rule fires at which level. Thresholds are set per test where the default would hide the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from conftest import one
from sipwatch.config import ConfigError, from_dict
from sipwatch.detectors import Action, Decision
from sipwatch.event import Event
from sipwatch.pipeline import Pipeline

T0 = datetime(2024, 5, 8, 10, 0, 0, tzinfo=UTC).timestamp()  # a Wednesday, office hours (UTC)
UK = "00442079460000"
SATELLITE = "00881612345678"
_ids = count(1)


def cdr(start: float, number: str = UK, duration: int = 60, billsec: int | None = None, account: str = "6001",
        src: str = "") -> str:
    """One Master.csv row as cdr_csv writes it: an outside call by `account` started at `start`."""
    billsec = duration - 3 if billsec is None else billsec

    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")

    answer = f'"{stamp(start + duration - billsec)}"' if billsec else ""
    disposition = "ANSWERED" if billsec else "NO ANSWER"
    n = next(_ids)
    userfield = f"src={src}" if src else ""
    return (f'"","{account}","{number}","from-internal","""{account}"" <{account}>","PJSIP/{account}-{n:08x}",'
            f'"PJSIP/trunk-{n + 1:08x}","Dial","PJSIP/{number}@trunk,60","{stamp(start)}",{answer},'
            f'"{stamp(start + duration)}",{duration},{billsec},"{disposition}","DOCUMENTATION","1715162400.{n}",'
            f'"{userfield}"')


def decide(rows: list[str], accounts: dict[str, Any] | None = None, **more: Any) -> list[Decision]:
    """The account-rule decisions of the rows, processed in event time like a scan."""
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                       "access_codes": []},
                        "accounts": accounts or {}, **more})
    pipeline = Pipeline(config)
    events: list[Event] = sorted((one(row) for row in rows), key=lambda e: e.time)
    return [d for e in events for d in pipeline.process(e)
            if d.detector == "account_rules" and d.action is not Action.BAN]  # not the ban that follows


def rules(decisions: list[Decision]) -> list[tuple[str | None, str | None]]:
    return [(d.rule, d.level) for d in decisions]


# --- thresholds across their window edges ------------------------------------------------------------

@pytest.mark.parametrize(("gaps", "expected"), [
    pytest.param([0, 10, 20, 30, 59], [("calls_per_minute", "warning")], id="5-calls-within-59s"),
    pytest.param([0, 10, 20, 30, 60], [], id="the-5th-a-minute-after-the-1st"),
    pytest.param([0, 5, 10, 15, 20, 25, 30, 35, 40, 45], [("calls_per_minute", "warning"),
                                                          ("calls_per_minute", "critical")], id="10-in-45s"),
])
def test_calls_per_minute(gaps: list[int], expected: list[tuple[str, str]]) -> None:
    rows = [cdr(T0 + g, duration=5, billsec=0) for g in gaps]
    assert rules(decide(rows, {"limits": {"concurrent": [0, 0], "sequential": [0, 0]}})) == expected


@pytest.mark.parametrize(("starts", "expected"), [
    pytest.param([0, 100, 200], [("concurrent", "warning")], id="three-overlapping"),
    pytest.param([0, 100, 300], [], id="the-third-starts-as-the-first-ends"),
])
def test_concurrent_calls(starts: list[int], expected: list[tuple[str, str]]) -> None:
    """The CDR rows arrive at each call's end, yet the overlap is counted from their start times."""
    rows = [cdr(T0 + s, duration=300) for s in starts]
    assert rules(decide(rows)) == expected


def test_concurrent_calls_live_from_the_log() -> None:
    """The `full` log tells of each call as it starts: the third open call is the warning."""
    config = from_dict({"numbers": {"country": "DE"}})
    pipeline = Pipeline(config)
    found = []
    for n in range(3):
        line = (f'[2024-05-08 10:00:0{n}] VERBOSE[1][C-1] pbx.c: Executing [{UK}@from-internal:1] '
                f'Dial("PJSIP/6001-0000000{n}", "PJSIP/{UK}@trunk")')
        found += [d for d in pipeline.process(one(line)) if d.detector == "account_rules"]
    assert rules(found) == [("concurrent", "warning")]


@pytest.mark.parametrize(("spacing", "expected"), [
    pytest.param(299, [("calls_per_window", "warning")], id="3-calls-in-598s"),
    pytest.param(301, [], id="3-calls-spread-over-602s"),
])
def test_calls_per_window(spacing: int, expected: list[tuple[str, str]]) -> None:
    rows = [cdr(T0 + i * spacing, duration=20) for i in range(3)]
    limits = {"calls_per_window": [3, 5], "calls_per_minute": [0, 0]}
    assert rules(decide(rows, {"window": "10m", "limits": limits})) == expected


def test_minutes_per_window() -> None:
    rows = [cdr(T0, duration=370, billsec=360), cdr(T0 + 400, duration=370, billsec=360)]
    decisions = decide(rows, {"window": "1h", "limits": {"minutes_per_window": [10, 20]}})
    assert rules(decisions) == [("minutes_per_window", "warning")]
    assert decisions[0].reason.startswith("warning: minutes_per_window 12.0 minutes in 60 min ≥ 10")


@pytest.mark.parametrize(("numbers", "expected"), [
    pytest.param([UK, UK, UK], [("sequential", "warning")], id="three-in-a-row"),
    pytest.param([UK, UK, "00493012345678", UK], [], id="broken-by-another-number"),
])
def test_sequential_calls_to_one_number(numbers: list[str], expected: list[tuple[str, str]]) -> None:
    rows = [cdr(T0 + i * 120, number=n, duration=30) for i, n in enumerate(numbers)]
    assert rules(decide(rows, {"limits": {"sequential": [3, 5]}})) == expected


def test_sequential_calls_to_one_prefix() -> None:
    numbers = ["00442079460001", "00442079460002", "00442079460003"]
    rows = [cdr(T0 + i * 120, number=n, duration=30) for i, n in enumerate(numbers)]
    decisions = decide(rows, {"sequential_prefix": 8, "limits": {"sequential": [3, 5]}})
    assert rules(decisions) == [("sequential", "warning")]
    assert "+44207946…" in decisions[0].reason


@pytest.mark.parametrize(("minutes", "expected"), [
    (19, []), (20, [("long_call_minutes", "warning")]), (61, [("long_call_minutes", "critical")]),
])
def test_long_calls_to_high_risk_destinations(minutes: int, expected: list[tuple[str, str]]) -> None:
    rows = [cdr(T0, number=SATELLITE, duration=minutes * 60 + 5, billsec=minutes * 60)]
    limits = {"minutes_per_window": [0, 0]}
    assert rules(decide(rows, {"limits": limits})) == expected


def test_a_long_call_to_an_ordinary_destination_is_not_a_risk() -> None:
    assert decide([cdr(T0, duration=3605, billsec=3600)], {"limits": {"minutes_per_window": [0, 0]}}) == []


# --- what never counts ----------------------------------------------------------------------------

def test_internal_calls_never_count() -> None:
    rows = [cdr(T0 + i, number="6002", duration=5) for i in range(50)]
    assert decide(rows) == []


def test_excluded_accounts_are_not_watched() -> None:
    rows = [cdr(T0 + i, account="trunk", duration=300) for i in range(10)]
    assert decide(rows, {"exclude": ["trunk"]}) == []


# --- time profiles --------------------------------------------------------------------------------

NIGHT = {"night": {"hours": "20:00-07:00", "calls_per_window": [2, 3]}}


@pytest.mark.parametrize(("hour", "expected"), [
    pytest.param(21, [("calls_per_window", "warning")], id="at-night"),
    pytest.param(6, [("calls_per_window", "warning")], id="early-morning-across-midnight"),
    pytest.param(7, [], id="the-night-ends-at-7"),
    pytest.param(12, [], id="office-hours"),
])
def test_a_night_profile_has_its_own_thresholds(hour: int, expected: list[tuple[str, str]]) -> None:
    start = datetime(2024, 5, 8, hour, 0, 0, tzinfo=UTC).timestamp()
    rows = [cdr(start + i * 120, duration=30) for i in range(2)]
    assert rules(decide(rows, {"profiles": NIGHT})) == expected


@pytest.mark.parametrize(("day", "expected"), [
    pytest.param(11, [("calls_per_window", "warning")], id="saturday"),
    pytest.param(25, [("calls_per_window", "warning")], id="a-holiday"),
    pytest.param(8, [], id="wednesday"),
])
def test_weekend_and_holiday_profiles(day: int, expected: list[tuple[str, str]]) -> None:
    start = datetime(2024, 12 if day == 25 else 5, day, 12, 0, 0, tzinfo=UTC).timestamp()
    profiles = {"weekend": {"days": ["sat-sun"], "calls_per_window": [2, 3]},
                "holidays": {"dates": ["12-25"], "calls_per_window": [2, 3]}}
    rows = [cdr(start + i * 120, duration=30) for i in range(2)]
    assert rules(decide(rows, {"profiles": profiles})) == expected


# --- destinations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("account", "number", "expected"), [
    pytest.param({"deny": ["+882"]}, "00882123456789", [("destination_denied", "critical")], id="denied-prefix"),
    pytest.param({"deny": ["CU"]}, "005371234567", [("destination_denied", "critical")], id="denied-country"),
    pytest.param({"deny": ["premium_rate"]}, "09001234567", [("destination_denied", "critical")],
                 id="denied-type"),
    pytest.param({"allow": ["DE", "AT"]}, UK, [("destination_not_allowed", "warning")], id="not-allowed"),
    pytest.param({"allow": ["DE", "GB"]}, UK, [], id="allowed"),
])
def test_destination_allow_and_deny_lists(account: dict[str, list[str]], number: str,
                                          expected: list[tuple[str, str]]) -> None:
    assert rules(decide([cdr(T0, number=number, duration=30)], {"account": {"6001": account}})) == expected


# --- money ----------------------------------------------------------------------------------------

@pytest.fixture
def rates(tmp_path: Path) -> str:
    path = tmp_path / "rates.csv"
    path.write_text("prefix,price per minute\n+44,0.05\n+881,4.50\n+49,0.01\n")
    return str(path)


def test_spend_per_day_against_a_cap(rates: str) -> None:
    """Three 10-minute satellite calls at 4.50/min: 45 then 90 then 135 against [100, 200]."""
    rows = [cdr(T0 + i * 900, number=SATELLITE, duration=605, billsec=600, src="198.51.100.7:5060")
            for i in range(3)]
    accounts = {"rates": rates, "currency": "EUR", "limits": {"spend_per_day": [100, 200],
                                                                "long_call_minutes": [0, 0]}}
    decisions = decide(rows, accounts)
    assert rules(decisions) == [("spend_per_day", "warning")]
    assert (decisions[0].cost, decisions[0].account) == (135.0, "6001")
    assert decisions[0].reason.endswith("estimated cost 135.00 EUR")


def test_a_critical_decision_carries_the_account_the_calls_and_the_source(rates: str) -> None:
    rows = [cdr(T0 + i * 10, number=SATELLITE, duration=600, src="198.51.100.7:5060") for i in range(6)]
    decisions = decide(rows, {"rates": rates})
    critical = [d for d in decisions if d.level == "critical"]
    assert [d.rule for d in critical] == ["concurrent"]
    d = critical[0]
    assert (d.account, str(d.ip), d.action, len(d.calls), len(d.events)) == (
        "6001", "198.51.100.7", "alert", 6, 6)
    assert d.cost == pytest.approx(6 * 4.5 * 597 / 60)
    assert d.to_json()["rule"] == "concurrent"


def test_critical_decisions_reach_the_hook() -> None:
    config = from_dict({"numbers": {"country": "DE"}})
    pipeline = Pipeline(config)
    seen: list[Decision] = []
    pipeline.on_critical.append(seen.append)
    for row in sorted((cdr(T0 + i, duration=600) for i in range(6)), key=lambda r: one(r).time):
        pipeline.process(one(row))
    assert [d.rule for d in seen] == ["concurrent"]


def test_one_burst_alerts_once_per_level() -> None:
    rows = [cdr(T0 + i * 3, duration=2, billsec=0) for i in range(15)]
    assert rules(decide(rows, {"limits": {"concurrent": [0, 0], "sequential": [0, 0]}})) == [
        ("calls_per_minute", "warning"), ("calls_per_minute", "critical")]


# --- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize(("accounts", "problem"), [
    ({"limits": {"concurrent": [6, 3]}}, "accounts.limits.concurrent: the warning level 6 is above the critical"),
    ({"limits": {"concurrent": 3}}, r"accounts.limits.concurrent: expected \[warning, critical\]"),
    ({"profiles": {"night": {"hours": "25:00-07:00"}}}, "accounts.profiles.night.hours: expected a time range"),
    ({"profiles": {"we": {"days": ["saturday"]}}}, "accounts.profiles.we.days: 'saturday' is not a weekday"),
    ({"profiles": {"xmas": {"dates": ["25.12."]}}}, "accounts.profiles.xmas.dates: '25.12.' is not a date"),
    ({"profiles": {"night": {"hour": "20:00-07:00"}}}, "accounts.profiles.night.hour: unknown key"),
    ({"account": {"6001": {"deny": ["882"]}}}, "accounts.account.6001.deny: '882' is not an E.164 prefix"),
    ({"rates": "/nonexistent/rates.csv"}, "accounts.rates: cannot read /nonexistent/rates.csv"),
])
def test_malformed_account_settings_name_the_key(accounts: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        from_dict({"accounts": accounts})


def test_a_broken_rate_table_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("+44,0.05\n+881,expensive\n")
    with pytest.raises(ConfigError, match=r"rates.csv:2: expected 'prefix,price per minute'"):
        from_dict({"accounts": {"rates": str(path)}})


# --- scan reproduces it ---------------------------------------------------------------------------

def test_scan_of_a_master_csv_decides_the_same(scan_log: Callable[..., Any]) -> None:
    rows = [cdr(T0 + i * 10, number=SATELLITE, duration=600, src="198.51.100.7:5060") for i in range(6)]
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                       "access_codes": []}})
    result = scan_log(rows, config)
    expected = rules(decide(rows))
    assert rules(result.account_decisions["6001"]) == expected
    (offender,) = result.offenders.values()
    assert [(d.action, d.rule) for d in offender.decisions] == [(Action.ALERT, "concurrent"), (Action.BAN, None)]


def test_the_example_configuration_s_commented_account_sections_are_valid() -> None:
    """The profiles and per-account lists shown commented out in examples/sipwatch.toml load as they are."""
    import re
    import tomllib

    example = (Path(__file__).resolve().parent.parent / "examples" / "sipwatch.toml").read_text()
    uncommented = re.sub(r"(?m)^# (\[accounts\.|hours|days|dates|calls_per_window|concurrent|allow|deny)", r"\1",
                         example)
    config = from_dict(tomllib.loads(uncommented))
    assert sorted(config.accounts.profiles) == ["holidays", "night", "weekend"]
    assert config.accounts.account["6001"].deny == ["+882", "satellite", "premium_rate"]


def test_the_daemon_following_master_csv_decides_the_same(tmp_path: Path) -> None:
    """`sipwatch run --watch …/cdr-csv/Master.csv`: rows appended as calls end, decided as they come."""
    from sipwatch.daemon import Daemon
    from sipwatch.responders.firewall.dryrun import DryRunBackend
    from sipwatch.store import Store

    master = tmp_path / "Master.csv"
    master.touch()
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                       "access_codes": []},
                        "run": {"watch": [str(master)], "backend": "dry-run", "read_existing": True},
                        "behaviour": {"learning_days": 0}})  # a new installation's learning mode would hold them
    daemon = Daemon(config, DryRunBackend(), Store(str(tmp_path / "state" / "sipwatch.db")))
    daemon.reconcile()
    daemon.refresh()
    rows = sorted((cdr(T0 + i * 10, number=SATELLITE, duration=600, src="198.51.100.7:5060") for i in range(6)),
                  key=lambda r: one(r).time)
    found, banned = [], []
    for row in rows:
        with master.open("a") as fh:
            fh.write(row + "\n")
        step = daemon.step()
        found += [d for d in step.decisions if d.detector == "account_rules" and d.action is Action.ALERT]
        banned += step.banned
    assert rules(found) == rules(decide(rows))
    # a critical rule also bans the address the calls came from (pbx.actions has "ban" by default)
    assert [str(b.ip) for b in banned] == ["198.51.100.7"]


def test_an_account_s_own_thresholds_win_over_the_profile() -> None:
    night = datetime(2024, 5, 8, 22, 0, 0, tzinfo=UTC).timestamp()
    accounts = {"profiles": {"night": {"hours": "20:00-07:00", "concurrent": [1, 2]}},
                "account": {"6001": {"concurrent": [5, 9]}}}
    rows = [cdr(night + i * 10, account=a, duration=300) for a in ("6001", "6002") for i in range(2)]
    decisions = decide(rows, accounts)
    assert [(d.account, d.rule, d.level) for d in decisions] == [
        ("6002", "concurrent", "warning"), ("6002", "concurrent", "critical")]
    assert decisions[0].reason.endswith("(account 6002, night profile)")


def _log_lines(start: float, account: str, n: int, number: str, duration: int) -> list[tuple[float, str]]:
    """The `full` log's lines of one call: Dial, the far end answers 3 s later, the caller hangs up."""
    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("[%Y-%m-%d %H:%M:%S] VERBOSE[2101][C-00000001] ")

    channel = f"PJSIP/{account}-{n:08x}"
    return [
        (start, stamp(start) + f'pbx.c: Executing [{number}@from-internal:1] Dial("{channel}", '
                               f'"PJSIP/{number}@trunk,60") in new stack'),
        (start + 3, stamp(start + 3) + f"app_dial.c: PJSIP/trunk-{n + 1:08x} answered {channel}"),
        (start + duration, stamp(start + duration) + f"pbx.c: Spawn extension (from-internal, {number}, 1) "
                                                     f"exited non-zero on '{channel}'"),
    ]


def test_the_full_log_alone_and_master_csv_alone_flag_the_same_accounts(
        scan_log: Callable[..., Any]) -> None:
    """6001 dials six satellite calls at once; 6002 makes ordinary internal and national calls."""
    calls = [("6001", T0 + i * 20, SATELLITE, 900) for i in range(6)]
    calls += [("6002", T0 + 600 * i, n, 200) for i, n in enumerate(["6001", "6003", "00493012345678"])]
    log = sorted(line for n, (a, s, num, d) in enumerate(calls, 1)
                 for line in _log_lines(s, a, n, num, d))
    master = [cdr(s, number=num, duration=d, billsec=d - 3, account=a) for a, s, num, d in calls]
    config = from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                       "access_codes": []}})
    flagged = []
    for lines in ([text for _, text in log], master):
        result = scan_log(lines, config)
        flagged.append({a: sorted({(d.rule, d.level) for d in ds}) for a, ds in result.account_decisions.items()})
    assert flagged[0] == flagged[1] == {"6001": [("concurrent", "critical"), ("concurrent", "warning")]}
