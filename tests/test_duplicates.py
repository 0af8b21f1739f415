"""One record read through two sources counts once: `messages` and `full` hold the same NOTICE lines,
`full` and `security` the same security events, AMI what the security log writes. Identical records
within one file are distinct requests (a cracker's guesses within one second look alike)."""

from __future__ import annotations

from pathlib import Path

from sipwatch.config import from_dict
from sipwatch.scan import scan

GUESS = ("[2026-03-04 22:10:0{s}] NOTICE[1234] chan_sip.c: Registration from '\"6001\" <sip:6001@203.0.113.10>' "
         "failed for '198.51.100.7:5060' - Wrong password\n")
CONFIG = from_dict({"detectors": {"brute_force": {"attempts": 5}}})


def _write(path: Path, seconds: list[int]) -> str:
    path.write_text("".join(GUESS.format(s=s) for s in seconds))
    return str(path)


def _decision(*paths: str) -> str:
    (offender,) = scan(list(paths), CONFIG).offenders.values()
    return offender.decision


def test_the_same_guesses_in_messages_and_full_count_once(tmp_path: Path) -> None:
    messages = _write(tmp_path / "messages", [1, 2, 3, 4])
    full = _write(tmp_path / "full", [1, 2, 3, 4])
    assert _decision(messages, full) == "none"  # 4 guesses, not 8


def test_a_guess_only_one_source_saw_still_counts(tmp_path: Path) -> None:
    messages = _write(tmp_path / "messages", [1, 2, 3, 4])
    full = _write(tmp_path / "full", [1, 2, 3, 4, 5])
    assert _decision(messages, full) == "ban"


def test_identical_guesses_within_one_second_of_one_file_are_each_counted(tmp_path: Path) -> None:
    assert _decision(_write(tmp_path / "messages", [1, 1, 1, 1, 1])) == "ban"


def test_identical_guesses_within_one_second_are_matched_as_multisets_across_files(tmp_path: Path) -> None:
    messages = _write(tmp_path / "messages", [1, 1, 1])
    full = _write(tmp_path / "full", [1, 1, 1, 1])
    assert _decision(messages, full) == "none"  # four, not seven
