"""Modules imported on first use (`sipwatch.lazy`): phonenumbers is not imported until a number is asked
about, and is set up (its pattern cache on) when it is."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run(code: str) -> str:
    """`code` in a fresh interpreter (this one imported phonenumbers long ago): what it prints."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_command_starts_without_importing_phonenumbers() -> None:
    assert run("""
        import sys
        import sipwatch.cli
        print(type(sys.modules["phonenumbers"]).__name__, "phonenumbers.phonenumberutil" in sys.modules)
    """) == "_LazyModule False"


def test_the_first_question_imports_it_and_turns_its_pattern_cache_on() -> None:
    assert run("""
        import sys
        from sipwatch.numbers import NumberClassifier
        print(NumberClassifier("GB").classify("09067123456").number_type,
              sys.modules["phonenumbers.re_util"]._COMPILED_PATTERNS is not None)
    """) == "premium_rate True"


def test_a_module_imported_already_is_set_up_at_once() -> None:
    assert run("""
        import phonenumbers
        from sipwatch import lazy
        seen = []
        print(lazy.module("phonenumbers", seen.append) is phonenumbers, seen == [phonenumbers])
    """) == "True True"


def test_a_configured_country_is_checked_against_phonenumbers() -> None:
    assert run("""
        from sipwatch.config import ConfigError, Numbers, _check_numbers
        _check_numbers(Numbers(country="DE"))
        try:
            _check_numbers(Numbers(country="XX"))
        except ConfigError as error:
            print(error)
    """).startswith("numbers.country: 'XX'")


def test_a_parallel_read_loads_it_while_it_waits_for_a_worker(tmp_path: Path) -> None:
    """The main process classifies numbers too: it imports phonenumbers while it would wait for the parse workers
    (here they are busy with something else first), rather than before the detectors begin."""
    log = tmp_path / "full"
    log.write_text("[2024-03-04 00:00:01] VERBOSE[1][C-1] pbx.c: Executing [0044207946000@from-internal:1] "
                   'Dial("PJSIP/6001-00000001", "PJSIP/0044207946000@trunk") in new stack\n')
    assert run(f"""
        import sys, time
        from sipwatch import parallel
        from sipwatch.formats.records import ScanStats
        from sipwatch.sources.files import FileSource
        from sipwatch.tally import Tally
        pool = parallel.pool()
        busy = [pool.submit(time.sleep, 0.5) for _ in range(parallel.workers())]
        before = type(sys.modules["phonenumbers"]).__name__
        events = parallel.parallel_events(pool, FileSource({str(log)!r}), (2024, None), ("", ""), ScanStats(),
                                          Tally(), {{}})
        print(before, len(list(events)), type(sys.modules["phonenumbers"]).__name__)
        pool.shutdown()
    """) == "_LazyModule 1 module"


def test_a_reader_that_never_waits_does_no_idle_work(tmp_path: Path) -> None:
    """What is left for the waits is not done when the workers' results are there already (it does itself when
    first needed)."""
    from concurrent.futures import wait

    from sipwatch import parallel
    from sipwatch.sources.files import FileSource

    log = tmp_path / "small.log"
    log.write_text("[2024-03-04 00:00:01] VERBOSE[1][C-1] pbx.c: nothing\n")
    pool = parallel.pool()
    try:
        feed = parallel.Feed(pool, FileSource(str(log)), (2024, None), ("", ""), None, True)
        feed.submit()
        wait([future for future, _, _ in feed.pending])
        ran: list[int] = []
        feed.idle.append(lambda: ran.append(1))
        assert feed.take() is not None and ran == [] and feed.take() is None
    finally:
        pool.shutdown()


def test_the_command_imports_its_command_line_with_the_collector_off_then_turns_it_on() -> None:
    """`sipwatch.console`: the import's objects live as long as the process; they are frozen, not walked."""
    assert run("""
        import builtins, gc
        import sipwatch.console
        real_import = builtins.__import__
        def spy(name, *args, **kwargs):
            module = real_import(name, *args, **kwargs)
            if name == "sipwatch.cli":  # the command line, imported: its console tells what it sees
                on_while_imported = gc.isenabled()
                module.console = lambda: print(on_while_imported, gc.isenabled(), gc.get_freeze_count() > 0)
            return module
        builtins.__import__ = spy
        sipwatch.console.main()
    """) == "False True True"
