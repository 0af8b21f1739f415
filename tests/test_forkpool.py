"""`forkpool.ForkPool`: forked workers that answer calls as a process pool does, forked before anything is
imported (`fork_early`), so that a large scan's parse worker sets up while the command imports."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from sipwatch import forkpool, parallel
from sipwatch.forkpool import BrokenWorker, ForkPool


@pytest.fixture
def pool() -> Iterator[ForkPool]:
    made = ForkPool(1)
    yield made
    made.shutdown(cancel_futures=True)


def _pid() -> int:
    return os.getpid()


def _slow(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def _fail(message: str) -> None:
    raise ValueError(message)


def _unpicklable() -> object:
    return lambda: None


def test_calls_are_answered_in_a_worker_in_the_order_given(pool: ForkPool) -> None:
    futures = [pool.submit(divmod, n, 7) for n in range(50)]
    assert [f.result(timeout=30) for f in futures] == [divmod(n, 7) for n in range(50)]
    assert pool.submit(_pid).result(timeout=30) != os.getpid()


def test_an_exception_in_the_worker_is_raised_by_its_future(pool: ForkPool) -> None:
    with pytest.raises(ValueError, match="no such buffer"):
        pool.submit(_fail, "no such buffer").result(timeout=30)
    assert pool.submit(abs, -3).result(timeout=30) == 3  # (the worker goes on)


def test_an_answer_that_cannot_be_sent_back_is_a_clear_error(pool: ForkPool) -> None:
    with pytest.raises(RuntimeError, match="could not be sent"):
        pool.submit(_unpicklable).result(timeout=30)


def test_a_large_argument_travels_whole(pool: ForkPool) -> None:
    """(A compressed file's buffer travels in its call: more than a pipe holds.)"""
    data = os.urandom(9 << 20)
    assert pool.submit(bytes.hex, data[:64]).result(timeout=30) == data[:64].hex()
    assert pool.submit(len, data).result(timeout=30) == len(data)


def test_calls_not_yet_given_to_a_worker_can_be_cancelled(pool: ForkPool) -> None:
    running = [pool.submit(_slow, 0.3, n) for n in range(forkpool.GIVEN)]
    waiting = pool.submit(_slow, 0.0, "never")
    assert waiting.cancel()
    assert [f.result(timeout=30) for f in running] == list(range(forkpool.GIVEN))
    with pytest.raises(CancelledError):
        waiting.result()


def test_shutdown_cancels_what_waits_answers_what_was_given_and_ends_the_workers() -> None:
    pool = ForkPool(1)
    given = [pool.submit(_slow, 0.2, n) for n in range(forkpool.GIVEN)]
    waiting = pool.submit(_slow, 0.0, "never")
    pids = [w.pid for w in pool._workers]
    pool.shutdown(wait=True, cancel_futures=True)
    assert pool.closed
    assert [f.result(timeout=0) for f in given] == list(range(forkpool.GIVEN))
    assert waiting.cancelled()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # (ended, and reaped)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(abs, 1)


def test_a_worker_that_dies_fails_its_calls_and_the_pool_says_so() -> None:
    pool = ForkPool(1)
    try:
        assert pool.submit(abs, -1).result(timeout=30) == 1
        given = pool.submit(_slow, 30, "never")
        os.kill(pool._workers[0].pid, signal.SIGKILL)
        with pytest.raises(BrokenWorker, match=r"ended unexpectedly \(killed by SIGKILL"):
            given.result(timeout=30)
        with pytest.raises(BrokenWorker):
            pool.submit(abs, 1).result(timeout=30)
    finally:
        pool.shutdown(wait=True)


def test_a_later_pool_does_not_keep_an_earlier_pools_workers_alive() -> None:
    """A worker forked later closes this process's ends of the earlier pool's pipes, else the earlier pool's
    workers would never see their calls end (and `shutdown` would wait forever)."""
    first = ForkPool(1)
    second = ForkPool(1)
    try:
        assert first.submit(abs, -2).result(timeout=30) == 2
        started = time.monotonic()
        first.shutdown(wait=True)
        assert time.monotonic() - started < 10
    finally:
        second.shutdown(wait=True)


def _initialized(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def test_the_initializer_sets_each_worker_up_before_its_first_call(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    pool = ForkPool(1, f"{__name__}:_initialized", (str(marker),))
    try:
        pid = pool.submit(_pid).result(timeout=30)
        assert marker.read_text() == str(pid)
    finally:
        pool.shutdown()


@pytest.fixture
def no_early_pool() -> Iterator[None]:
    assert forkpool.EARLY is None
    yield
    forkpool.drop_early()


@pytest.mark.usefixtures("no_early_pool")
def test_fork_early_forks_only_for_a_file_large_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(b"x\n" * 1000)
    forkpool.fork_early([str(small), str(tmp_path / "missing.log"), "-"], True, "")
    assert forkpool.EARLY is None
    monkeypatch.setattr(forkpool, "MIN_PARALLEL_BYTES", 1000)
    forkpool.fork_early([str(small)], True, "")
    assert forkpool.EARLY is not None or forkpool.workers() == 0


@pytest.mark.usefixtures("no_early_pool")
def test_an_early_pool_set_up_otherwise_is_shut_down_not_taken(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if forkpool.workers() == 0:
        pytest.skip("one core: a scan forks no workers")
    monkeypatch.setattr(forkpool, "MIN_PARALLEL_BYTES", 0)
    forkpool.fork_early([str(tmp_path)], True, "")
    assert forkpool.EARLY is not None
    early = forkpool.EARLY[0]
    assert forkpool.take_early(calls=False) is None
    assert early.closed and forkpool.EARLY is None


@pytest.mark.usefixtures("no_early_pool")
def test_workers_forked_early_leave_their_results_in_the_outbox_the_scan_reads(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared memory is made before the fork; the workers and this process find the same outbox in it, also
    when the parse side was imported before (as here): results do not go through the pipe."""
    if forkpool.workers() == 0:
        pytest.skip("one core: a scan forks no workers")
    monkeypatch.setattr(forkpool, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(forkpool, "SHARED", None)
    monkeypatch.setattr(parallel, "_OUTBOX", None)
    forkpool.fork_early([str(tmp_path)], True, "sipwatch.parallel:worker_started")
    shared = forkpool.SHARED
    assert shared is not None
    pool = parallel._take_early(calls=True)
    assert pool is not None
    try:
        assert parallel._OUTBOX is not None and parallel._OUTBOX.memory is shared.memory
        assert pool.submit(_outbox_token).result(timeout=30) == shared.token == parallel._OUTBOX.token
    finally:
        pool.shutdown()


def _outbox_token() -> str | None:
    return parallel._OUTBOX.token if parallel._OUTBOX is not None else None


def _die(*args: object) -> None:
    os._exit(3)


def test_a_scan_whose_worker_dies_says_so_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Not a traceback: what happened, and exit status 2 (the report would be incomplete)."""
    if forkpool.workers() == 0:
        pytest.skip("one core: a scan forks no workers")
    from generated import genlog
    from sipwatch import cli

    log = genlog(tmp_path / "gen.log", 2000, seed=4)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "parse_job", _die)
    assert cli.main(["scan", "--json", str(log)]) == 2
    err = capsys.readouterr().err
    assert "a parse worker failed, the scan is incomplete" in err and "exit status 3" in err
