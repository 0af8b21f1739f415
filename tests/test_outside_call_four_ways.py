"""One real outside call on the testbed's Asterisk 22 (6001 registers, dials 0049301234567, the carrier
answers, 6001 hangs up after 2 s), recorded four ways in one run: AMI (`Newchannel`, `DialBegin`,
`Newstate`, `DialEnd`, `CEL` from cel_manager, `Hangup`, `Cdr`), cel_custom's legacy mapping of the
sample file, cdr_csv's Master.csv and the `full` log. Each alone, and all together, is one answered call
of 6001 to Germany (fixtures in tests/fixtures/asterisk22/outside-call/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwatch.calls import AccountTally, CallBook
from sipwatch.config import from_dict
from sipwatch.event import Kind
from sipwatch.formats.ami import render
from sipwatch.numbers import NumberClassifier
from sipwatch.scan import scan
from test_ami_calls import _read

HERE = Path(__file__).resolve().parent / "fixtures" / "asterisk22" / "outside-call"
CONFIG = from_dict({"timezone": "UTC", "numbers": {"country": "DE"}})
CALL = "1796230912.0"  # the call's linked id (the caller's unique id)


def _transcript() -> list[dict[str, str]]:
    blocks = (HERE / "ami-transcript.txt").read_bytes().decode().split("\r\n\r\n")
    return [dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line) for block in blocks
            if block.strip()]


def _tally(paths: list[Path]) -> AccountTally:
    result = scan([str(p) for p in paths], CONFIG, processes=False)
    assert not result.errors and result.stats.unmatched == 0
    return result.accounts["6001"]


@pytest.mark.parametrize("records", [
    pytest.param(["cel-custom-Master.csv"], id="cel_custom"),
    pytest.param(["cdr-csv-Master.csv"], id="cdr_csv"),
    pytest.param(["full.log"], id="full-log"),
    pytest.param(["cdr-csv-Master.csv", "full.log"], id="the-cdr-s-whole-second-end-before-the-log-s-hang-up"),
    pytest.param(["cel-custom-Master.csv", "cdr-csv-Master.csv", "full.log"], id="all-three"),
])
def test_each_record_alone_and_all_together_are_one_answered_call(records: list[str]) -> None:
    tally = _tally([HERE / r for r in records])
    assert (tally.calls, tally.answered, tally.outside, sorted(tally.countries)) == (1, 1, 1, ["DE"])


def test_the_cdr_bills_the_two_seconds_and_names_the_source() -> None:
    tally = _tally([HERE / "cdr-csv-Master.csv"])
    assert tally.seconds == 2 and dict(tally.sources) == {"127.0.0.1": 1}


def test_ami_tells_the_call_through_cel_newstate_and_dial_events() -> None:
    events, stats = _read(b"".join(render(e, 1796230912.0 + i / 100) for i, e in enumerate(_transcript())))
    assert stats.unmatched == 0 and stats.junk == 0
    forms = {(e.form, e.kind) for e in events if e.call is not None}
    assert forms >= {("ami.cel", Kind.CALL_START), ("ami.cel", Kind.CALL_ANSWER), ("ami.cel", Kind.CALL_END),
                     ("ami.newstate", Kind.CALL_ANSWER), ("ami.dial_end", Kind.CALL_ANSWER),
                     ("ami.new_channel", Kind.CALL_START), ("ami.cdr", Kind.CALL_END)}
    assert {e.call.linkedid or e.call.uniqueid for e in events if e.call is not None} == {CALL}
    callee_legs = [e for e in events if e.call is not None and e.account not in (None, "6001")]
    assert callee_legs == []  # the carrier's leg never counts as a call of its own


def test_ami_events_of_the_call_are_one_call_in_the_book() -> None:
    events, _ = _read(b"".join(render(e, 1796230912.0 + i / 100) for i, e in enumerate(_transcript())))
    book = CallBook(NumberClassifier("DE"))
    firsts = [seen[1] for e in events if (seen := book.observe(e)) is not None]
    assert firsts.count(True) == 1 and len(firsts) > 5
