"""`sipwatch scan` of a large file forks its parse workers and hands them the first buffers while the command
still imports (`parallel.head_start`): the scan takes them over when its settings are the same, drops them when
not, and reports exactly what it reports without a head start."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from generated import genlog
from sipwatch import console, parallel
from sipwatch.cli import build_parser
from sipwatch.config import Accounts, Behaviour, Config, Numbers
from sipwatch.report import to_json
from sipwatch.scan import scan
from sipwatch.sources.files import FileSource


@pytest.mark.parametrize(("argv", "expected"), [
    (["scan", "a.log"], (["a.log"], None)),
    (["scan", "--json", "a.log", "b.log.gz"], (["a.log", "b.log.gz"], None)),
    (["scan", "--config", "s.toml", "a.log"], (["a.log"], "s.toml")),
    (["scan", "--config=s.toml", "--top", "5", "a.log"], (["a.log"], "s.toml")),
    (["scan", "--state-dir", "/var/lib/sipwatch", "a.log", "--json"], (["a.log"], None)),
    (["scan", "--", "--odd-name.log"], (["--odd-name.log"], None)),
    (["scan", "-"], (["-"], None)),
    (["scan"], None),  # no file: the command line says what is missing
    (["scan", "--help"], None),
    (["scan", "--conf", "s.toml", "a.log"], None),  # an abbreviation: left to argparse
    (["explain", "a.log"], None),
    ([], None),
])
def test_the_early_look_reads_the_files_and_the_configuration_of_a_scan(
        argv: list[str], expected: tuple[list[str], str | None] | None) -> None:
    assert console.scan_arguments(argv) == expected


def test_the_early_look_knows_every_option_of_the_scan_command() -> None:
    """An option it did not know would make it give up (a slower start, nothing worse); one it mistook for a
    flag would take its value for a file."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in sub.choices["scan"]._actions if a.option_strings and "--help" not in a.option_strings]
    valued = frozenset(s for a in options if a.nargs != 0 for s in a.option_strings)
    flags = frozenset(s for a in options if a.nargs == 0 for s in a.option_strings)
    assert (valued, flags) == (console.SCAN_VALUED, console.SCAN_FLAGS)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return genlog(tmp_path_factory.mktemp("gen") / "attacks.log", 20000, seed=5)


@pytest.fixture
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any file gets the workers, in many buffers; nothing a test began outlives it."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(FileSource.__init__, "__defaults__", (64 << 10,))
    yield
    parallel.drop_head_start()


def _report(path: Path, config: Config) -> dict[str, object]:
    report = to_json(scan([str(path)], config))
    report.pop("seconds", None)
    return report


@pytest.mark.usefixtures("small_buffers")
def test_a_scan_takes_over_the_head_start_and_reports_the_same(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _report(log, Config())
    pools: list[bool] = []
    fork = parallel.pool

    def counted(calls: bool = True) -> ProcessPoolExecutor:
        pools.append(calls)
        return fork(calls)

    monkeypatch.setattr(parallel, "pool", counted)
    console._head_start(["scan", "--json", str(log)])
    assert parallel._HEAD_START is not None and parallel._HEAD_START.feed is not None
    assert parallel._HEAD_START.feed.pending  # its first buffers are with the workers already
    assert _report(log, Config()) == expected
    assert pools == [True]  # the scan forked no pool of its own
    assert parallel._HEAD_START is None


@pytest.mark.usefixtures("small_buffers")
@pytest.mark.parametrize("scanned_with", [
    Config(numbers=Numbers(country="DE")),  # other jobs (the workers classify numbers otherwise): a new feed
    Config(timezone="Europe/Berlin"),
])
def test_a_head_start_with_other_settings_is_dropped(log: Path, scanned_with: Config) -> None:
    expected = _report(log, scanned_with)
    parallel.head_start([str(log)])
    parallel.feed_head_start(*parallel.job_settings(Config()))
    assert _report(log, scanned_with) == expected
    assert parallel._HEAD_START is None
    outbox = parallel._OUTBOX
    assert outbox is not None and sorted(outbox.free) == list(range(outbox.slots))  # every slot given back


@pytest.mark.usefixtures("small_buffers")
def test_a_head_start_whose_workers_read_no_calls_is_shut_down_for_a_scan_that_reads_them(log: Path) -> None:
    parallel.head_start([str(log)])
    started = parallel._HEAD_START
    assert started is not None
    assert parallel.adopt_pool(calls=False) is None
    assert parallel._HEAD_START is None
    assert started.pool.closed


@pytest.mark.usefixtures("small_buffers")
def test_a_head_start_no_scan_takes_gives_its_slots_back(log: Path) -> None:
    parallel.head_start([str(log)])
    parallel.feed_head_start(*parallel.DEFAULT_JOB)
    parallel.drop_head_start()
    outbox = parallel._OUTBOX
    assert outbox is not None and sorted(outbox.free) == list(range(outbox.slots))


@pytest.mark.usefixtures("small_buffers")
@pytest.mark.parametrize("files", [["/nonexistent.log"], ["-"]])
def test_no_head_start_without_a_plain_file_to_read(files: list[str]) -> None:
    parallel.head_start(files)
    assert parallel._HEAD_START is None


@pytest.mark.usefixtures("small_buffers")
def test_no_head_start_when_the_configuration_does_not_load(log: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors.brute_force]\nmax_failures = 'many'\n")
    console._head_start(["scan", "--config", str(bad), str(log)])
    assert parallel._HEAD_START is None  # (the command line reports the error)


def test_the_default_job_settings_are_the_default_configuration_s() -> None:
    """A scan with no `--config` hands its workers their first buffers before the configuration module imports,
    with `parallel.DEFAULT_JOB`: the settings that `Config()` gives a scan's jobs."""
    assert parallel.job_settings(Config()) == parallel.DEFAULT_JOB


def test_the_compiled_parts_are_built_on_another_thread_importing_nothing() -> None:
    """`sipwatch scan` builds the workers' prefilter, C engine and markers on a second thread while its main
    thread imports the rest of the parse side: the thread must import no module (no import lock shared), and
    they are there once it is waited for."""
    import subprocess
    import sys

    check = ("import sys\nfrom sipwatch.formats import ahead, native\nbefore = set(sys.modules)\n"
             "ahead.in_background(True)()\n"
             "print(sorted(set(sys.modules) - before), True in ahead._PREFILTERS,"
             " bool(native._ENGINES) or not native.available())")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["[]", "True", "True"]


def test_the_workers_fork_before_the_default_configuration_loads_which_reads_call_activity() -> None:
    """Without `--config`, the early look forks the workers for readers of call activity before it imports the
    configuration (~10 ms of the parse side's imports less before they can set up): the default reads it."""
    import subprocess
    import sys

    assert Config().calls
    check = "import sys, sipwatch.parallel; print('sipwatch.config' in sys.modules, 'zoneinfo' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.usefixtures("small_buffers")
def test_a_configuration_that_reads_no_calls_forks_its_workers_after_it_loads(log: Path, tmp_path: Path) -> None:
    settings = tmp_path / "attacks-only.toml"
    settings.write_text("[accounts]\nenabled = false\n[behaviour]\nenabled = false\n")
    console._head_start(["scan", "--config", str(settings), str(log)])
    started = parallel._HEAD_START
    assert started is not None and started.calls is False and started.feed is not None


@pytest.mark.usefixtures("small_buffers")
def test_workers_forked_for_call_activity_are_dropped_for_a_configuration_that_reads_none(log: Path) -> None:
    parallel.head_start([str(log)])
    started = parallel._HEAD_START
    assert started is not None and started.calls
    parallel.feed_head_start(*parallel.job_settings(Config(accounts=Accounts(enabled=False),
                                                           behaviour=Behaviour(enabled=False))))
    assert parallel._HEAD_START is None and started.pool.closed


def test_a_worker_forked_with_the_collector_off_collects_as_a_scan_does() -> None:
    """The head start forks while the command imports with the collector off: the worker turns it on."""
    gc.disable()
    try:
        executor = parallel.pool()
    finally:
        gc.enable()
    try:
        assert executor.submit(gc.isenabled).result() is True
        assert executor.submit(gc.get_threshold).result() == parallel.GC_THRESHOLDS
    finally:
        executor.shutdown()


def test_the_command_reports_on_a_large_file_what_a_scan_in_this_process_reports(tmp_path: Path) -> None:
    """Through the real entry point (`python -m sipwatch`): the head start forks the worker before the command
    line is imported, with the collector off; the report is the one a scan here makes."""
    import json
    import os
    import subprocess
    import sys

    log = genlog(tmp_path / "large.log", 110_000, seed=7)
    assert log.stat().st_size >= parallel.MIN_PARALLEL_BYTES and parallel.workers() > 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-m", "sipwatch", "scan", "--json", str(log)], capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    reported = json.loads(done.stdout)
    expected = json.loads(json.dumps(_report(log, Config())))
    reported.pop("seconds")
    assert reported == expected and reported["offenders"]
