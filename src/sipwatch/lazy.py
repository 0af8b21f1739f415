"""Modules imported on first use.

`phonenumbers` takes ~25 ms to import, an eighth of the command's start, and many commands never ask it
anything (`explain`, `bans`, `accounts`, a scan of a small log with no toll fraud in it).
`importlib.util.LazyLoader` defers the import to the first attribute read.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # (importlib.abc imports importlib.resources: ~20 ms)
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

Setup = Callable[[ModuleType], object]


def module(name: str, setup: Setup | None = None) -> ModuleType:
    """`name`, imported when an attribute of it is first read; `setup(module)` runs right after (at once when
    the module was imported already)."""
    found = sys.modules.get(name)
    if found is not None:
        if setup is not None:
            setup(found)
        return found
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    if setup is not None:
        spec.loader = cast("Loader", _ThenSetUp(spec, setup))
    lazy = importlib.util.LazyLoader(spec.loader)
    spec.loader = lazy
    made = importlib.util.module_from_spec(spec)
    sys.modules[name] = made
    lazy.exec_module(made)
    return made


class _ThenSetUp:
    """The module's own loader, then `setup`; the module keeps its own loader afterwards."""

    def __init__(self, spec: ModuleSpec, setup: Setup) -> None:
        assert spec.loader is not None
        self.loader = spec.loader
        self.setup = setup

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.setup(module)
