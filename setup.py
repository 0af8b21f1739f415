"""The optional C parts: the record scanner's fast lane (src/sipwatch/formats/_fastlane.c; see
formats/native.py), the parallel scan's merge loop (src/sipwatch/_drain.c; see parallel.py), the call
book and its calls as C records (_calls.c, _callstate.c, with _numbers.c telling plain dialled numbers; see
core.py, calls.py, numbers.py), the detectors' counting (_core.c, _rules.c, _learned.c), and address
hashes (_addr.c; see netaddr.py).

It needs a C compiler, the Python headers and PCRE2 (Debian: gcc python3-dev libpcre2-dev). Without
them the build goes on without it, and sipwatch reads every record in Python: the same events, slower.
With libhs as well (Debian: libhyperscan-dev), the fast lane finds the prefilter's markers itself,
with no Python call per marker found (without it, the hyperscan wheel finds them for it).
Everything else about the package is in pyproject.toml.
"""

import os

from setuptools import Extension, setup

WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def libhs() -> dict[str, list]:
    """The build options for libhs, when its headers are installed."""
    for include in ("/usr/include", "/usr/local/include"):
        if os.path.exists(os.path.join(include, "hs", "hs.h")):
            return {"define_macros": [("HAVE_HS", "1")], "libraries": ["hs"]}
    return {"define_macros": [], "libraries": []}


def _slots(name: str, *more: str) -> Extension:
    """A module of the scan's hot path that reads and fills slotted objects (`_event_slots.h`) and calls
    (`_callstate.h`), made of its own file and `more`."""
    return Extension(f"sipwatch.{name}", sources=[f"src/sipwatch/{name}.c", *(f"src/sipwatch/{m}.c" for m in more)],
                     depends=["src/sipwatch/_event_slots.h", "src/sipwatch/_parts.h", "src/sipwatch/_callstate.h",
                              "src/sipwatch/_numbers.h"],
                     extra_compile_args=["-O2", *WARNINGS], optional=True)


setup(
    ext_modules=[
        Extension(
            "sipwatch.formats._fastlane",
            sources=["src/sipwatch/formats/_fastlane.c"],
            depends=["src/sipwatch/formats/_rows.h", "src/sipwatch/_parts.h"],
            libraries=["pcre2-8", *libhs()["libraries"]],
            define_macros=libhs()["define_macros"],
            extra_compile_args=["-O2", *WARNINGS],
            optional=True,
        ),
        _slots("_drain"),  # the parallel scan's merge loop (see sipwatch/parallel.py)
        _slots("_calls", "_callstate", "_numbers"),  # CallBook.observe and CallState (see sipwatch/core.py, calls.py)
        _slots("_rules"),  # the account rules' window measures (see sipwatch/detectors/account_rules.py)
        _slots("_learned"),  # the learned behaviour's quiet path (see sipwatch/core.py)
        _slots("_core"),  # the security detectors' counting (see sipwatch/core.py)
        Extension(  # address hashes read in C (see sipwatch/netaddr.py)
            "sipwatch._addr",
            sources=["src/sipwatch/_addr.c"],
            extra_compile_args=["-O2", *WARNINGS],
            optional=True,
        ),
    ]
)
