"""The `sipwatch` command's entry point: the command line, imported with Python's cyclic collector held back.

Importing the command line makes about 30,000 objects that the collector tracks (modules, classes, functions,
the code that dataclasses and named tuples generate), which live as long as the process: the collector, which
runs every 700 allocations, would walk them again and again while they are made (~6 ms of a one-second scan,
7% of its imports). Once made, they are frozen: no later collection walks them either.
"""

from __future__ import annotations

import gc
from typing import NoReturn


def main() -> NoReturn:
    gc.disable()
    try:
        from sipwatch.cli import console
    finally:
        gc.enable()
    gc.freeze()
    console()
