"""Logs made by bench/genlog.py (realistic mixes of attacks and ordinary call traffic) for the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GENLOG = Path(__file__).resolve().parent.parent / "bench" / "genlog.py"


def genlog(out: Path, lines: int, seed: int) -> Path:
    """Write `lines` generated lines (fixed `seed`) to `out`."""
    subprocess.run([sys.executable, str(GENLOG), "--lines", str(lines), "--seed", str(seed), "-o", str(out)],
                   check=True, timeout=120)
    return out
