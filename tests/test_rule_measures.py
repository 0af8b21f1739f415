"""The account rules' window measures in C (`_rules.c`) give what their Python specification gives
(`detectors/account_rules.py`: `_busiest`, `_peak_concurrency`, `_recent`, `_stale`, `_bill`), on random windows of
calls with the shapes the call book makes: ends missing or zero, equal times, calls still open or long lost."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from sipwatch.calls import MAX_OPEN, CallState
from sipwatch.detectors import account_rules
from sipwatch.detectors.account_rules import AccountRulesDetector, PythonMeasures, measures

pytestmark = pytest.mark.skipif(account_rules._rules is None, reason="the C measures are not built (needs gcc and "
                                "python3-dev; `pip install -e .` builds them)")
NOW = 1_714_557_600.0


def _calls(rng: random.Random, n: int) -> list[CallState]:
    calls = []
    for _ in range(n):
        start = NOW - rng.choice([0.0, 1.0, 30.0, 59.0, 60.0, 61.0, 600.0, 3599.0, 3601.0, MAX_OPEN, MAX_OPEN + 1])
        start += rng.choice([0.0, 0.5, -0.5])
        call = CallState("6001", start)
        call.end = rng.choice([None, None, 0.0, start, start + 1.0, start + 45.5, start + 4000.0, NOW + 10.0])
        if rng.random() < 0.3:
            call.start = int(start)  # an int start works alike
        calls.append(call)
    return calls


def _tracked(rng: random.Random, calls: list[CallState]) -> dict[CallState, bool]:
    return {c: rng.random() < 0.5 for c in calls}


SEEDS = range(300)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_busiest_minute_is_the_same(seed: int) -> None:
    rng = random.Random(seed)
    calls = _calls(rng, rng.randint(0, 40))
    seconds = rng.choice([60.0, 1.0, 3600.0])
    assert measures().busiest(calls, seconds) == account_rules._busiest(calls, seconds)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_peak_of_concurrent_calls_is_the_same_calls_in_the_same_order(seed: int) -> None:
    rng = random.Random(seed)
    calls = _calls(rng, rng.randint(0, 40))
    now = NOW + rng.choice([0.0, 5.0, -100.0])
    found = measures().peak(calls, now)
    assert [id(c) for c in found] == [id(c) for c in account_rules._peak_concurrency(calls, now)]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_recent_calls_and_their_minutes_are_the_same(seed: int) -> None:
    rng = random.Random(seed)
    calls = _calls(rng, rng.randint(1, 40))
    for call in calls:
        call.answer = rng.choice([None, call.start, call.start + 3.5, NOW + 100.0])
        call.billsec = rng.choice([None, None, 0, 20, 7.5])
    window, now = rng.choice([60.0, 3600.0]), NOW + rng.choice([0.0, 30.0])
    recent, minutes = measures().recent(calls, window, now)
    expected, expected_minutes = account_rules._recent(calls, window, now)
    assert [id(c) for c in recent] == [id(c) for c in expected]
    assert minutes == expected_minutes


@pytest.mark.parametrize("seed", SEEDS)
def test_the_stale_calls_are_the_same(seed: int) -> None:
    rng = random.Random(seed)
    tracked = _tracked(rng, _calls(rng, rng.randint(0, 40)))
    horizon = NOW - rng.choice([60.0, 3600.0, 7200.0])
    assert measures().stale(tracked, horizon, NOW) == account_rules._stale(tracked, horizon, NOW)


@pytest.mark.parametrize("seed", range(50))
def test_billing_without_a_rate_table_marks_the_same_calls(seed: int) -> None:
    rng = random.Random(seed)
    calls = _calls(rng, rng.randint(0, 40))
    python, native = _tracked(random.Random(seed), calls), _tracked(random.Random(seed), calls)
    PythonMeasures.bill(python)
    measures().bill(native)
    assert list(native.values()) == list(python.values())


@pytest.mark.parametrize("seed", range(200))
def test_the_newest_run_to_one_number_is_as_long(seed: int) -> None:
    """The C gate measures the sequential rule too (the newest run of calls to the same number or prefix): as
    long as `_sequential`'s, over numbers in E.164 form or as dialled or none, long and short, with "+"s and a
    "…" of their own, at every prefix length."""
    from sipwatch.config import Accounts
    from sipwatch.detectors.knowledge import Knowledge
    from sipwatch.numbers import Classified

    rng = random.Random(seed)
    calls = _calls(rng, rng.randint(1, 30))
    texts = [None, "", "6001", "+442079460000", "+442079460001", "442079460000", "++4420", "+44207…", "4420…",
             "?", "+", "00442079460000", "+4420794600001234567890"]
    for call in calls:
        call.number = rng.choice(texts)
        e164 = rng.choice([None, "", *[t for t in texts if t]])
        call.classified = rng.choice([None, Classified("x", e164, None, "unknown", True, None)])
    digits = rng.choice([0, 1, 2, 4, 6, 12, 20])
    detector = AccountRulesDetector(Accounts(sequential_prefix=digits), Knowledge())
    assert measures().sequential(calls, digits) == len(detector._sequential(calls))


def test_without_c_the_rules_measure_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipwatch.config import Accounts
    from sipwatch.detectors.knowledge import Knowledge

    monkeypatch.setenv("SIPWATCH_NATIVE", "0")
    detector = AccountRulesDetector(Accounts(), Knowledge())
    assert isinstance(detector._measures, PythonMeasures)


def test_calls_of_another_kind_are_refused() -> None:
    with pytest.raises(TypeError):
        measures().quiet({}, object(), NOW, 3600.0, (1.0,) * 6, False, 10)
    with pytest.raises(TypeError):
        measures().quiet({}, CallState("6001", NOW), NOW, 3600.0, (1.0,) * 5, False, 10)
    with pytest.raises(TypeError):
        measures().quiet({object(): False}, CallState("6001", NOW), NOW, 3600.0, (1.0,) * 6, False, 10)
    with pytest.raises(TypeError):
        measures().quiet({CallState("6001", NOW): 1}, CallState("6002", NOW), NOW, 3600.0, (1.0,) * 6, False, 10)
    with pytest.raises(TypeError):
        measures().busiest([object()], 60.0)
    with pytest.raises(TypeError):
        measures().stale({object(): True}, NOW, NOW)
    with pytest.raises(ValueError):
        measures().recent([], 60.0, NOW)


def test_sipwatch_native_0_leaves_the_python_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPWATCH_NATIVE", "0")
    assert measures() is None


# --- the quiet gate: bookkeeping and "no rule can fire" in one C call ------------------------------------------

def _random_cdrs(seed: int, n: int) -> list[str]:
    """Outside calls of three accounts in bursts, to few numbers (runs to one number), some long and dear."""
    from test_account_rules import cdr

    rng = random.Random(seed)
    rows, now = [], NOW
    for _ in range(n):
        now += rng.choice([0.5, 2.0, 7.0, 30.0, 200.0, 1800.0])
        number = rng.choice(["00442079460000", "00442079460001", "004930123456", "00881612345678", "09001234567"])
        duration = rng.choice([5, 60, 600, 1500, 4000])
        rows.append(cdr(now, number, duration=duration, billsec=rng.choice([None, 0, duration - 1]),
                        account=rng.choice(["6001", "6002", "6003"])))
    return rows


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("config", [
    {},
    {"accounts": {"limits": {"sequential": [3, 5], "concurrent": [2, 0], "calls_per_minute": [0, 3]}}},
    {"accounts": {"window": 600, "limits": {"minutes_per_window": [20, 60], "calls_per_window": [4, 8]},
                  "account": {"6002": {"deny": ["+881"]}}}},
    {"accounts": {"window": 600, "limits": {"sequential": [3, 0], "minutes_per_window": [20, 60]}}},
], ids=["default", "low-limits", "short-window-and-one-account's-own", "runs-and-minutes"])
def test_the_quiet_gate_decides_what_the_whole_rules_decide(seed: int, config: dict[str, object]) -> None:
    """A call that the C gate passes (nothing can fire) would have given no finding in Python either, and the
    calls each account keeps are the same: the rules decide alike with and without the gate."""
    from conftest import one
    from sipwatch.config import from_dict
    from sipwatch.pipeline import Pipeline

    numbers = {"numbers": {"country": "DE"}}
    gated, plain = Pipeline(from_dict({**config, **numbers})), Pipeline(from_dict({**config, **numbers}))
    rules = [next(d for d in p.detectors if isinstance(d, AccountRulesDetector)) for p in (gated, plain)]
    assert rules[0]._quiet is not None
    rules[1]._quiet = None
    decided: tuple[list[object], list[object]] = ([], [])
    for row in _random_cdrs(seed, 120):
        for pipeline, out in zip((gated, plain), decided, strict=True):
            out.extend(d.to_json() for d in pipeline.process(one(row)))
    assert decided[0] == decided[1]
    assert [[(c.start, billed) for c, billed in a.calls.items()] for a in rules[0].accounts.values()] == \
        [[(c.start, billed) for c, billed in a.calls.items()] for a in rules[1].accounts.values()]
    assert seed or decided[0]  # (the rules do fire on these calls)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("config", [
    {},
    {"accounts": {"limits": {"sequential": [3, 5], "concurrent": [2, 0], "calls_per_minute": [0, 3]}}},
    {"accounts": {"window": 600, "limits": {"minutes_per_window": [20, 60], "calls_per_window": [4, 8]},
                  "account": {"6002": {"deny": ["+881"]}}, "exclude": ["6003"]}},
    {"accounts": {"window": 600, "limits": {"sequential": [3, 0], "minutes_per_window": [20, 60]}}},
], ids=["default", "low-limits", "short-window-one-account's-own-one-excluded", "runs-and-minutes"])
def test_the_c_observe_decides_what_the_python_observe_decides(seed: int, config: dict[str, object]) -> None:
    """`gate` (observe's first lines and the quiet gate in one C call, which the scan's core calls) gives the same
    decisions and leaves the same calls per account as the Python observe; the calls it cannot settle (a new
    account, one with limits of its own, a call a rule may flag) go to the Python observe."""
    from conftest import one
    from sipwatch.config import from_dict
    from sipwatch.pipeline import Pipeline

    numbers = {"numbers": {"country": "DE"}}
    gated, plain = Pipeline(from_dict({**config, **numbers})), Pipeline(from_dict({**config, **numbers}))
    rules = [next(d for d in p.detectors if isinstance(d, AccountRulesDetector)) for p in (gated, plain)]
    passed: list[object] = []
    python_observe = rules[0].observe

    def observe(event: object) -> list[object]:
        passed.append(event)
        return python_observe(event)  # type: ignore[arg-type]

    rules[0].observe = observe  # type: ignore[method-assign]
    c_observe = account_rules.gate(rules[0])
    assert c_observe is not None
    rules[0].observe = c_observe  # type: ignore[method-assign]
    decided: tuple[list[object], list[object]] = ([], [])
    rows = _random_cdrs(seed, 120)
    for row in rows:
        for pipeline, out in zip((gated, plain), decided, strict=True):
            out.extend(d.to_json() for d in pipeline.process(one(row)))
    assert decided[0] == decided[1]
    assert [[(c.start, billed) for c, billed in a.calls.items()] for a in rules[0].accounts.values()] == \
        [[(c.start, billed) for c, billed in a.calls.items()] for a in rules[1].accounts.values()]
    assert 0 < len(passed) < len(rows)  # (some calls end in C, some go on to Python)


def test_no_c_observe_without_the_quiet_gate(tmp_path: Path) -> None:
    from sipwatch.config import from_dict
    from sipwatch.detectors.knowledge import Knowledge

    profiles = from_dict({"accounts": {"profiles": {"night": {"hours": "22:00-06:00"}}}}).accounts
    assert account_rules.gate(AccountRulesDetector(profiles, Knowledge())) is None


def test_the_scan_core_calls_the_c_observe() -> None:
    from sipwatch import core
    from sipwatch.config import Config
    from sipwatch.pipeline import Pipeline

    pipeline = Pipeline(Config())
    specs = [spec for kinds in core.fast_kinds(pipeline) for spec in kinds
             if isinstance(spec, tuple) and spec[0] == core.ACCOUNT_RULES]
    assert specs and all(type(spec[1]) is account_rules._rules.Gate for spec in specs)


def test_no_quiet_gate_with_a_rate_table_or_time_profiles(tmp_path: Path) -> None:
    from sipwatch.config import Accounts, from_dict
    from sipwatch.detectors.knowledge import Knowledge

    rates = tmp_path / "rates.csv"
    rates.write_text("prefix,price\n+44,0.02\n")
    assert AccountRulesDetector(Accounts(), Knowledge())._quiet is not None
    assert AccountRulesDetector(from_dict({"accounts": {"rates": str(rates)}}).accounts, Knowledge())._quiet is None
    profiles = from_dict({"accounts": {"profiles": {"night": {"hours": "22:00-06:00"}}}}).accounts
    assert AccountRulesDetector(profiles, Knowledge())._quiet is None


def test_the_quiet_gate_tracks_a_call_once_and_keeps_the_newest_within_the_limit() -> None:
    tracked: dict[CallState, bool] = {}
    calls = [CallState("6001", NOW + i) for i in range(5)]
    plain = (math.inf,) * 6  # no rule on
    for call in [*calls, calls[-1]]:
        assert measures().quiet(tracked, call, call.start, 3600.0, plain, False, 3) is True
    assert list(tracked.items()) == [(c, False) for c in calls[-3:]]  # the oldest went


def test_the_gate_sums_the_minutes_of_the_right_calls_after_measuring_a_run() -> None:
    """The sequential rule's measure orders the window's calls by start; the minutes the gate sums after it are
    still those of the calls that started within the window (here 25 minutes: the minute rule may fire)."""
    from sipwatch.numbers import Classified

    def outside(start: float, end: float, billsec: float, e164: str) -> CallState:
        call = CallState("6001", start)
        call.end, call.billsec = end, billsec
        call.classified = Classified(e164, e164, "GB", "fixed_line", True, None)
        return call

    talking = outside(NOW - 500, NOW + 1000, 1500.0, "+442079460001")  # 25 minutes, started in the window
    before = outside(NOW - 900, NOW - 100, 0.0, "+442079460002")  # started before it, no talk
    at_hand = outside(NOW - 10, NOW, 0.0, "+442079460003")
    tracked = {talking: True, before: True}
    lowest = (math.inf, math.inf, math.inf, 20.0, 2.0, math.inf)  # minutes per window 20, sequential 2
    assert measures().quiet(tracked, at_hand, NOW, 600.0, lowest, False, 10, 20) is False
