"""Following a log file: whole lines only, rename rotation, copytruncate, and resuming after a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sipwatch.sources.tail import Follower, Position


def _lines(follower: Follower) -> list[bytes]:
    return [line for chunk in follower.read() for line in chunk.data.splitlines()]


def test_an_incomplete_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"one\ntw")
    follower = Follower(str(log))
    assert _lines(follower) == [b"one"]
    with log.open("ab") as fh:
        fh.write(b"o\nthree\n")
    assert _lines(follower) == [b"two", b"three"]


def test_rename_rotation_drains_the_old_file_then_reads_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"a\n")
    follower = Follower(str(log))
    assert _lines(follower) == [b"a"]
    with log.open("ab") as fh:
        fh.write(b"b\n")  # written just before the rotation, not read yet
    log.rename(tmp_path / "messages.1")
    log.write_bytes(b"c\n")
    assert _lines(follower) == [b"b", b"c"]


def test_copytruncate_reads_the_lines_that_went_into_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"first\n")
    follower = Follower(str(log))
    assert _lines(follower) == [b"first"]
    with log.open("ab") as fh:
        fh.write(b"second\n")
    shutil.copyfile(log, tmp_path / "messages.1")
    with log.open("r+b") as fh:
        fh.truncate(0)
    with log.open("ab") as fh:
        fh.write(b"third\n")
    assert _lines(follower) == [b"second", b"third"]


def test_resume_from_a_saved_position(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"a\nb\n")
    first = Follower(str(log))
    assert _lines(first) == [b"a", b"b"]
    saved = first.position
    first.close()
    with log.open("ab") as fh:
        fh.write(b"c\n")
    again = Follower(str(log), saved)
    chunks = again.read()
    assert [c.first_line for c in chunks] == [2] and chunks[0].data == b"c\n"


def test_resume_after_a_rotation_while_stopped_finishes_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"a\n")
    first = Follower(str(log))
    assert _lines(first) == [b"a"]
    saved = first.position
    first.close()
    with log.open("ab") as fh:
        fh.write(b"b\n")
    log.rename(tmp_path / "messages.1")
    log.write_bytes(b"c\n")
    assert _lines(Follower(str(log), saved)) == [b"b", b"c"]


def test_a_different_file_at_the_same_path_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_bytes(b"old\n")
    saved = Position(str(log), 0, 0, 4, "", 1)  # an inode that is not there any more
    assert _lines(Follower(str(log), saved)) == [b"old"]


def test_a_file_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    follower = Follower(str(log))
    assert _lines(follower) == []
    log.write_bytes(b"hello\n")
    assert _lines(follower) == [b"hello"]


WRITER = r"""
import os, shutil, sys, time
path, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
fh = open(path, "ab", buffering=0)
n = 0
start = time.monotonic()
next_rotation = start + 0.5
style = 0
while time.monotonic() - start < seconds and n < rate * seconds:
    burst = b"".join(b"line %08d\n" % (n + i) for i in range(rate // 100))
    fh.write(burst)
    n += rate // 100
    if time.monotonic() >= next_rotation:
        style += 1
        if style % 2:  # rename rotation
            os.rename(path, f"{path}.{style}")
            fh.close()
            fh = open(path, "ab", buffering=0)
        else:  # copytruncate
            shutil.copyfile(path, f"{path}.{style}")
            fh.truncate(0)
        next_rotation += 0.5
    time.sleep(0.01)
fh.close()
print(n)
"""


def test_every_line_exactly_once_under_rotation_at_ten_thousand_lines_a_second(tmp_path: Path) -> None:
    """A writer at ~10,000 lines/s rotates (rename and copytruncate alternately) twice a second."""
    log = tmp_path / "messages"
    log.touch()
    follower = Follower(str(log))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), "3", "10000"], stdout=subprocess.PIPE,
                              text=True)
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while writer.poll() is None and time.monotonic() < deadline:
        seen += [int(line.split()[1]) for line in _lines(follower)]
        time.sleep(0.02)
    written = int(writer.communicate(timeout=10)[0])
    seen += [int(line.split()[1]) for line in _lines(follower)]
    assert written > 10_000
    assert sorted(seen) == list(range(written)), f"{len(seen)} lines read of {written}"
    assert len(set(seen)) == len(seen)
    for name in os.listdir(tmp_path):
        (tmp_path / name).unlink()


def test_a_file_without_read_permission_is_reported_not_fatal(tmp_path: Path) -> None:
    """As root the test drops to `nobody` for the open, since root may read anything."""
    log = tmp_path / "messages"
    log.write_bytes(b"x\n")
    log.chmod(0)
    tmp_path.chmod(0o755)
    was_root = os.geteuid() == 0
    if was_root:
        os.seteuid(65534)
    try:
        follower = Follower(str(log))
        assert follower.read() == []
    finally:
        if was_root:
            os.seteuid(0)
    assert follower.problem is not None and "cannot read" in follower.problem


def test_a_directory_in_place_of_the_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "messages").mkdir()
    follower = Follower(str(tmp_path / "messages"))
    assert follower.read() == [] and follower.problem is not None and "cannot read" in follower.problem
