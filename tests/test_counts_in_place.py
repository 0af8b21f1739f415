"""The C parts add to a count or a sum in place when only its container holds it (`add_in_place` in
`_event_slots.h`): the totals are those of the Python code, and a number that anyone else holds never changes."""

from __future__ import annotations

import pytest

from conftest import one
from sipwatch import core
from sipwatch.calls import CallBook
from sipwatch.event import Event
from sipwatch.numbers import NumberClassifier

DE = NumberClassifier("DE", ("00",), ("0",))
DESTINATIONS = ("00442079460000", "0033142685300", "0301234567")


def cdr(i: int) -> Event:
    """The CDR row of account 6001's call number `i` (a call of its own: its own channel and unique id)."""
    number = DESTINATIONS[i % len(DESTINATIONS)]
    return one(f'"","6001","{number}","from-internal","""Alice"" <6001>","PJSIP/6001-{i:08x}",'
               f'"PJSIP/trunk-{i:08x}","Dial","PJSIP/x@trunk","2024-05-03 19:20:02","2024-05-03 19:20:05",'
               f'"2024-05-03 19:21:05",70,{60 + i % 7},"ANSWERED","DOCUMENTATION","1714764002.{i}",'
               f'"src=198.51.100.{i % 3}:5060"')


def book(in_c: bool) -> CallBook:
    made = CallBook(DE)
    if in_c and not core.native_calls(made):
        pytest.skip("the C call book is not built (needs gcc and python3-dev)")
    return made


def tallies(made: CallBook) -> dict[str, tuple[object, ...]]:
    return {account: (t.calls, t.answered, t.outside, t.seconds, dict(t.countries), dict(t.sources))
            for account, t in made.accounts.items()}


def test_the_c_book_counts_what_the_python_book_counts() -> None:
    """Past the small ints (256) the counts and sums go up in place: the same totals all the same."""
    python, c = book(False), book(True)
    for i in range(700):
        python.observe(cdr(i))
        c.observe(cdr(i))
    assert tallies(c) == tallies(python)
    assert tallies(c)["6001"][:3] == (700, 700, 700)


def test_a_count_someone_holds_does_not_change() -> None:
    """The report (or a test) that took a number keeps the number it took."""
    made = book(True)
    for i in range(300):
        made.observe(cdr(i))
    tally = made.accounts["6001"]
    calls, seconds, to_britain = tally.calls, tally.seconds, tally.countries["GB"]
    made.observe(cdr(300))
    assert (calls, to_britain) == (300, 100)
    assert seconds == sum(60 + i % 7 for i in range(300))
    assert (tally.calls, tally.countries["GB"]) == (301, 101)


def test_a_count_past_one_digit_is_added_the_usual_way() -> None:
    """CPython keeps an int below 2**30 in one digit: the count that leaves it is made anew, and right."""
    made = book(True)
    made.observe(cdr(0))
    tally = made.accounts["6001"]
    tally.calls = int("1073741822")  # 2**30 - 2, made at run time: only the tally holds it
    made.observe(cdr(1))
    made.observe(cdr(2))
    assert tally.calls == 2**30


def test_the_c_learned_behaviour_counts_a_busy_day_as_python_does() -> None:
    """A day's counters past the small ints (calls, hours, countries, networks, minutes) go up in place in
    `_learned.c`: the profiles learned are those of the Python observe."""
    from test_behaviour import BERLIN, DAY0, OFFICE, call, feed
    from test_learned_roll import _pipeline

    if core._learned is None:
        pytest.skip("the C learned behaviour is not built (needs gcc and python3-dev)")
    events = [call(DAY0 + 200.0 * i, f"{BERLIN[:-4]}{i:04d}", src=OFFICE, minutes=0.5) for i in range(400)]
    (python, in_python), (native, in_c) = _pipeline(False), _pipeline(True)
    for p in (python, native):
        feed(p, events)
    learned = {a: p.to_json() for a, p in in_c.book}
    assert learned == {a: p.to_json() for a, p in in_python.book}
    today = in_c.book.profiles["6001"].today
    assert today is not None and today.calls == 400 and today.countries == {"DE": 400}
