"""Call activity is read only when something uses it: with the account rules and the learned behaviour
both off, a `full` log's call lines are skipped like any benign line (in C, by the prefilter)."""

from __future__ import annotations

from pathlib import Path

from sipwatch.config import from_dict
from sipwatch.scan import scan

LINES = (
    "[2026-03-04 10:00:00] VERBOSE[1234][C-00000001] pbx.c: Executing [0049301234567@internal:1] "
    'Dial("PJSIP/6001-00000001", "PJSIP/0049301234567@carrier,30") in new stack\n'
    "[2026-03-04 10:00:01] NOTICE[1234] chan_sip.c: Registration from '\"6001\" <sip:6001@192.0.2.1>' "
    "failed for '198.51.100.7:5060' - Wrong password\n"
)


def _kinds(tmp_path: Path, config: dict[str, object]) -> dict[str, int]:
    log = tmp_path / "full"
    log.write_text(LINES)
    return dict(scan([str(log)], from_dict(config)).kinds)


def test_call_lines_are_read_when_the_account_rules_want_them(tmp_path: Path) -> None:
    assert _kinds(tmp_path, {}) == {"call_start": 1, "auth_failure": 1}


def test_with_account_rules_and_behaviour_off_only_security_events_are_read(tmp_path: Path) -> None:
    off = {"accounts": {"enabled": False}, "behaviour": {"enabled": False}}
    assert _kinds(tmp_path, off) == {"auth_failure": 1}
