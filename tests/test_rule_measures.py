"""The account rules' window measures in C (`_rules.c`) give what their Python specification gives
(`detectors/account_rules.py`: `_busiest`, `_peak_concurrency`, `_recent`, `_stale`, `_bill`), on random windows of
calls with the shapes the call book makes: ends missing or zero, equal times, calls still open or long lost."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from sipwatch.calls import MAX_OPEN, CallState
from sipwatch.detectors import account_rules
from sipwatch.detectors.account_rules import AccountRulesDetector, PythonMeasures, _Tracked, measures

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


def _tracked(rng: random.Random, calls: list[CallState]) -> OrderedDict[int, _Tracked]:
    return OrderedDict((i, _Tracked(c, rng.random() < 0.5)) for i, c in enumerate(calls))


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
    assert [t.billed for t in native.values()] == [t.billed for t in python.values()]


def test_without_c_the_rules_measure_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipwatch.config import Accounts
    from sipwatch.detectors.knowledge import Knowledge

    monkeypatch.setenv("SIPWATCH_NATIVE", "0")
    detector = AccountRulesDetector(Accounts(), Knowledge())
    assert isinstance(detector._measures, PythonMeasures)


def test_calls_of_another_kind_are_refused() -> None:
    with pytest.raises(TypeError):
        measures().busiest([object()], 60.0)
    with pytest.raises(TypeError):
        measures().stale(OrderedDict({1: object()}), NOW, NOW)
    with pytest.raises(ValueError):
        measures().recent([], 60.0, NOW)


def test_sipwatch_native_0_leaves_the_python_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPWATCH_NATIVE", "0")
    assert measures() is None
