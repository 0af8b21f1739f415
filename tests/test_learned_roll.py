"""The learned behaviour's new day in C (`_learned.c`): a profile rolled over as `Profile.roll` rolls it, and a
scan's records learned as the Python observe learns them across days (issue 7, item 4).

`test_behaviour.py` runs its specifications both ways, one at a time; these compare the two paths directly."""

from __future__ import annotations

import dataclasses
import random

import pytest

from sipwatch import core
from sipwatch.behaviour import AGE_AT, Profile, Today
from sipwatch.config import from_dict
from sipwatch.detectors.behaviour import BehaviourDetector
from sipwatch.event import Event
from sipwatch.pipeline import Pipeline
from test_account_rules import UK
from test_behaviour import BERLIN, CUBA, DAY, DAY0, OFFICE, PARIS, PREMIUM, ROME, SATELLITE, call, feed, login

pytestmark = pytest.mark.skipif(core._learned is None, reason="the C learned behaviour is not built (needs gcc and "
                                "python3-dev; `pip install -e .` builds it)")


def _pipeline(in_c: bool) -> tuple[Pipeline, BehaviourDetector]:
    p = Pipeline(from_dict({"timezone": "UTC", "numbers": {"country": "DE", "international_prefixes": ["00"],
                                                            "access_codes": []}}))
    detector = next(d for d in p.detectors if isinstance(d, BehaviourDetector))
    if in_c:
        observe = core.learned_observe(detector)
        assert observe is not None
        detector.observe = observe  # type: ignore[method-assign]
    return p, detector


@pytest.mark.parametrize("seed", range(12))
def test_days_roll_over_in_c_as_in_python(seed: int) -> None:
    """`_learned.c` rolls a profile over to a new local day itself and goes on in C: the same profiles and
    decisions as the Python observe, over days of calls with records of a call seen again after midnight (a
    second record that teaches nothing must not start the new day's counts)."""
    rng = random.Random(seed)
    numbers = [BERLIN, UK, PARIS, ROME, "6002", CUBA, SATELLITE, PREMIUM]
    events: list[Event] = []
    for d in range(6):
        for account in ("6001", "6003", "6005"):
            for _ in range(rng.randint(0, 7)):
                when = DAY0 + d * DAY + rng.uniform(0, DAY)
                src = rng.choice([OFFICE, OFFICE, "192.0.2.77", "198.51.100.9"])
                event = call(when, rng.choice(numbers), src=src, minutes=rng.choice([0.5, 3, 40]), account=account)
                events.append(event)
                if rng.random() < 0.3:  # the call's record seen again, up to an hour later (maybe a new day)
                    events.append(dataclasses.replace(event, time=event.time + rng.uniform(0, 3600)))
            if rng.random() < 0.5:
                events.append(login(DAY0 + d * DAY + rng.uniform(0, DAY), account=account))
    (python, in_python), (native, in_c) = _pipeline(False), _pipeline(True)
    decided = [[(d.rule, d.level, d.account) for d in feed(p, events)] for p in (python, native)]
    assert decided[0] == decided[1]
    assert {a: p.to_json() for a, p in in_python.book} == {a: p.to_json() for a, p in in_c.book}
    assert any(p.days for _, p in in_c.book)  # (days were learned)


@pytest.mark.parametrize("seed", range(6))
def test_the_day_counts_that_wait_in_c_are_in_whenever_a_profile_is_read(seed: int) -> None:
    """`_learned.c` keeps the count of each day dict's last key apart while the same key comes (`Pending`): read
    through the book after any record, a profile (its day's counts, their keys' order) is the Python observe's, and
    so it is after records that the Python observe itself handles in between (a login, a new destination)."""
    rng = random.Random(seed)
    numbers = [BERLIN, BERLIN, BERLIN, UK, PARIS, "6002", PREMIUM]
    (python, in_python), (native, in_c) = _pipeline(False), _pipeline(True)
    for i in range(400):
        when = DAY0 + 2 * DAY + i * rng.uniform(0, 900)
        account = rng.choice(["6001", "6003"])
        if rng.random() < 0.1:
            event = login(when, account=account)
        else:
            src = rng.choice([OFFICE, OFFICE, OFFICE, "192.0.2.77"])
            event = call(when, rng.choice(numbers), src=src, minutes=rng.choice([0.5, 3]), account=account)
        for p in (python, native):
            feed(p, [dataclasses.replace(event)])
        if i % 7 == 0 or i > 390:
            seen = [{a: dataclasses.asdict(p) for a, p in d.book} for d in (in_python, in_c)]
            assert seen[0] == seen[1] and list(map(repr, seen[0].values())) == list(map(repr, seen[1].values()))


def test_the_c_core_makes_one_learned_behaviour_for_all_its_kinds() -> None:
    """The learned behaviour reads several kinds of records; the counts it keeps apart are one table's."""
    p = Pipeline(from_dict({}))
    detector = next(d for d in p.detectors if isinstance(d, BehaviourDetector))
    kinds = core.fast_kinds(p)
    assert len({id(spec) for specs in kinds for spec in specs if isinstance(spec, tuple) and spec[0] == core.BEHAVIOUR
                 }) == 1
    assert len(detector.book.settlers) == 1


@pytest.mark.parametrize("seed", range(300))
def test_a_profile_rolls_over_in_c_as_profile_roll_does(seed: int) -> None:
    """`_learned.c`'s roll learns the day that is over as `Profile.roll` does: the baselines, the counts kept to
    the top few (the smallest go, the earlier learned first among equals) and halved past `AGE_AT`, the hours;
    a tainted day or none is not learned."""
    rng = random.Random(seed)

    def counts(keys: str, most: int) -> dict[str, int]:
        return {k: rng.randint(0, most) for k in rng.sample(keys, rng.randint(0, len(keys)))}

    def profile() -> Profile:
        big = rng.choice([5, 50, AGE_AT // 4, AGE_AT])
        p = Profile(DAY0, DAY0, day=738000, days=rng.randint(0, 3), calls=rng.randint(0, 99),
                    calls_per_day=rng.uniform(0, 9), minutes_per_day=rng.uniform(0, 99),
                    countries=counts("ABCDEFGHIJKLMNOPQRSTUV", big), types=counts("abcdefghijk", big),
                    networks=counts("0123456789", big), agents=counts("wxyz", big),
                    hours=[rng.randint(0, big // 40 + 1) for _ in range(48)])
        if rng.random() < 0.85:
            p.today = Today(rng.randint(0, 30), rng.uniform(0, 500), 0, 0.0, counts("ABCDEFGHIJKLMNOPQRSTUVWXYZ", big),
                            counts("abcdefghijklmn", big), counts("0123456789ab", 9), counts("wxyzv", 9),
                            {h: rng.randint(1, big) for h in rng.sample(range(48), rng.randint(0, 10))},
                            tainted=rng.random() < 0.15)
        return p

    state = rng.getstate()
    python = profile()
    rng.setstate(state)
    native = profile()
    _, detector = _pipeline(False)
    observe = core.learned_observe(detector)
    learned = observe.__self__  # type: ignore[union-attr]  # (the Learned whose method it is)
    day = 738000 + rng.choice([1, 2, 30])
    python.roll(day, detector.alpha)
    assert learned.roll(native, day) is True
    assert python.to_json() == native.to_json()
    assert (list(python.countries), list(python.hours)) == (list(native.countries), list(native.hours))
