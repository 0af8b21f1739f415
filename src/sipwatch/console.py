"""The `sipwatch` command's entry point: the command line, imported with Python's cyclic collector held back,
and the parse workers of a large scan started before it.

Importing the command line makes about 30,000 objects that the collector tracks (modules, classes, functions,
the code that dataclasses and named tuples generate), which live as long as the process: the collector, which
runs every 700 allocations, would walk them again and again while they are made (~6 ms of a one-second scan,
7% of its imports). Once made, they are frozen: no later collection walks them either.

`sipwatch scan` of a large file forks its parse workers before it imports anything else (`forkpool.fork_early`,
with the default configuration): a worker imports the parse side and builds its compiled parts (prefilter, C
engine, markers: on a second thread while it imports, `worker_started` below) on one core while this process
imports the parse side and the detectors on the other; the file's first buffers go out with the default job
settings as soon as the parse side is imported here (`parallel.head_start`, `parallel.feed_head_start`). With
`--config`, the workers fork once it is read. The command line below reads the same arguments again, properly;
this early look only needs the files and the configuration, and gives up on anything it does not know (the scan
then starts its workers itself, as it would have).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import NoReturn

#: the options of `sipwatch scan` that take a value (a test holds them to the command line's)
SCAN_VALUED = frozenset({"--config", "--top", "--state-dir"})
#: ... and those that take none
SCAN_FLAGS = frozenset({"--json"})


def main() -> NoReturn:
    gc.disable()
    try:
        _head_start(sys.argv[1:])
        from sipwatch.cli import console
    finally:
        gc.enable()
    gc.freeze()
    console()


def scan_arguments(argv: Sequence[str]) -> tuple[list[str], str | None] | None:
    """(the files, the configuration file or None) of a `sipwatch scan` command line; None for another
    command, or one this early look does not understand (a typo, help, an abbreviated option)."""
    if not argv or argv[0] != "scan":
        return None
    files: list[str] = []
    config: str | None = None
    args = iter(argv[1:])
    for arg in args:
        name, equals, value = arg.partition("=")
        if arg == "--":
            files.extend(args)
        elif name in SCAN_VALUED:
            value = value if equals else next(args, "")
            config = value if name == "--config" else config
        elif arg in SCAN_FLAGS:
            continue
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            files.append(arg)
    return (files, config) if files else None


def _head_start(argv: Sequence[str]) -> None:
    """Start the parse workers of a large scan now (see the module's docstring). Any problem (a configuration
    that does not load, say) is left for the command line to report."""
    found = scan_arguments(argv)
    if found is None:
        return
    files, config_path = found
    if config_path is None:  # the default configuration: its job settings are known (`parallel.DEFAULT_JOB`)
        from sipwatch import forkpool

        forkpool.fork_early(files, True, "sipwatch.console:worker_started")
        from sipwatch import parallel

        parallel.head_start(files, calls=True)
        parallel.feed_head_start(*parallel.DEFAULT_JOB)
        return
    from sipwatch import parallel
    from sipwatch.config import ConfigError, load

    try:
        config = load(config_path)
    except ConfigError:
        return
    parallel.head_start(files, config.calls)
    parallel.feed_head_start(*parallel.job_settings(config))


def worker_started(calls: bool) -> None:
    """A parse worker that `forkpool.fork_early` forked before anything was imported: its prefilter, C engine
    and markers compile on a second thread (`formats.ahead`) while it imports the parse side."""
    from sipwatch.formats import ahead

    wait = ahead.in_background(calls)
    try:
        from sipwatch import parallel
    finally:
        wait()
    parallel.worker_started(calls)
