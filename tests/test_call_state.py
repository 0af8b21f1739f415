"""`_calls.CallState`, the C record of a call (`_callstate.c`), is its specification, the dataclass
`calls.PlainCallState`, to every reader: the same constructor, fields, `answered`, `talk`, `open_at` and `add_key`,
on random calls with the shapes the call book makes (times missing, zero, equal, ints for floats)."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
from typing import Any

import pytest

from sipwatch import calls

_calls: Any = vars(calls)["_native_calls"]  # (None: not built, or SIPWATCH_NATIVE=0)
native = pytest.mark.skipif(_calls is None, reason="the C call book is not built (needs gcc and python3-dev; "
                            "`pip install -e .` builds it), or SIPWATCH_NATIVE=0")
NOW = 1_714_557_600.0
TIMES = [None, 0, 0.0, NOW, NOW - 1.5, NOW + 30, int(NOW) + 61, NOW - calls.MAX_OPEN, NOW - calls.MAX_OPEN - 1]
FIELDS = ("account", "start", "number", "classified", "answer", "end", "billsec", "disposition", "ip", "record",
          "judged", "learned_minutes")


def _both(rng: random.Random) -> tuple[Any, calls.PlainCallState]:
    """The same random call, made both ways (positionally or by keyword)."""
    start = rng.choice([NOW, NOW - 100.0, int(NOW) - 5, 0.0])
    values: dict[str, Any] = {
        "number": rng.choice([None, "0044207946000"]), "answer": rng.choice(TIMES), "end": rng.choice(TIMES),
        "billsec": rng.choice([None, 0, 0.0, 20, 7.5]), "disposition": rng.choice([None, "ANSWERED"]),
        "judged": rng.choice([0, 1, 7]), "learned_minutes": rng.choice([0.0, 2.5])}
    keys = rng.choice([[], ["id:1"], ["id:1", "ch:PJSIP/6001-01"], ["id:1", "id:2", "ch:a", "ch:b", "id:3"]])
    if rng.random() < 0.5:
        return (_calls.CallState("6001", start, keys=keys, **values),
                calls.PlainCallState("6001", start, keys=list(keys), **values))
    native, plain = _calls.CallState("6001", start), calls.PlainCallState("6001", start)
    for call in (native, plain):
        for name, value in values.items():
            setattr(call, name, value)
        call.keys = list(keys)
    return native, plain


def _fields(call: Any) -> dict[str, object]:
    return {**{name: getattr(call, name) for name in FIELDS}, "keys": list(call.keys)}


@native
@pytest.mark.parametrize("seed", range(200))
def test_a_call_reads_as_the_dataclass_reads(seed: int) -> None:
    native, plain = _both(random.Random(seed))
    assert _fields(native) == _fields(plain)
    assert native.answered == plain.answered


@native
@pytest.mark.parametrize("seed", range(200))
def test_talk_and_open_at_are_the_dataclass_s(seed: int) -> None:
    rng = random.Random(seed)
    native, plain = _both(rng)
    for when in [NOW, NOW + 45.5, NOW - 200.0, NOW + calls.MAX_OPEN, 0.0, rng.uniform(NOW - 1e5, NOW + 1e5)]:
        assert native.talk(when) == plain.talk(when)
        assert native.open_at(when) == plain.open_at(when)


@native
@pytest.mark.parametrize("seed", range(50))
def test_keys_are_added_once_in_the_order_they_came(seed: int) -> None:
    rng = random.Random(seed)
    native, plain = _calls.CallState("6001", NOW), calls.PlainCallState("6001", NOW)
    for _ in range(rng.randint(0, 12)):
        key = rng.choice(["id:1", "id:2", "ch:PJSIP/6001-01", "ch:PJSIP/6001-02", "id:3", "id:4", "ch:c"])
        native.add_key(key)
        plain.add_key(key)
        assert list(native.keys) == plain.keys


@native
@pytest.mark.parametrize(("name", "value", "read"), [
    ("start", 5, 5.0),  # times are floats, whatever number they were given as
    ("answer", 7, 7.0),
    ("end", None, None),
    ("billsec", 0, 0.0),
    ("learned_minutes", 1, 1.0),
    ("judged", 3, 3),
    ("record", "anything", "anything"),
])
def test_a_field_set_reads_back(name: str, value: object, read: object) -> None:
    call = _calls.CallState("6001", NOW)
    setattr(call, name, value)
    assert getattr(call, name) == read
    assert type(getattr(call, name)) is type(read)


@native
@pytest.mark.parametrize(("name", "value"), [("start", None), ("start", "noon"), ("answer", "noon"), ("judged", 1.5)])
def test_a_time_that_is_no_number_is_refused(name: str, value: object) -> None:
    with pytest.raises(TypeError):
        setattr(_calls.CallState("6001", NOW), name, value)


@native
@pytest.mark.parametrize("name", [*FIELDS, "keys"])
def test_a_field_cannot_be_deleted(name: str) -> None:
    with pytest.raises(AttributeError):
        delattr(_calls.CallState("6001", NOW), name)


@native
def test_a_call_is_equal_only_to_itself_and_keys_a_dict() -> None:
    one, other = _calls.CallState("6001", NOW), _calls.CallState("6001", NOW)
    assert one == one and one != other
    assert {one: True, other: False}[other] is False


@native
def test_a_call_in_a_cycle_is_collected() -> None:
    gc.collect()
    call = _calls.CallState("6001", NOW)
    call.record = [call]
    del call
    assert gc.collect() >= 2


@native
def test_the_c_record_forgets_an_open_call_when_python_does() -> None:
    assert _calls.MAX_OPEN == calls.MAX_OPEN


@native
def test_a_build_s_calls_are_the_c_record() -> None:
    assert calls.CallState is _calls.CallState



def test_sipwatch_native_0_takes_the_dataclass() -> None:
    code = "from sipwatch import calls; print(calls.CallState is calls.PlainCallState)"
    found = subprocess.run([sys.executable, "-c", code], env={**os.environ, "SIPWATCH_NATIVE": "0"},
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "True"
