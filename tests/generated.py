"""Logs made by bench/genlog.py (realistic mixes of attacks and ordinary call traffic) for the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
GENLOG = BENCH / "genlog.py"


def genlog(out: Path, lines: int, seed: int) -> Path:
    """Write `lines` generated lines (fixed `seed`) to `out`."""
    subprocess.run([sys.executable, str(GENLOG), "--lines", str(lines), "--seed", str(seed), "-o", str(out)],
                   check=True, timeout=120)
    return out


def gencdr(out: Path, rows: int, seed: int, accounts: int = 60) -> Path:
    """Write `rows` generated `Master.csv` rows of an office of `accounts` phones (bench/gencdr.py)."""
    subprocess.run([sys.executable, str(BENCH / "gencdr.py"), "--rows", str(rows), "--seed", str(seed),
                    "--accounts", str(accounts), "-o", str(out)], check=True, timeout=120)
    return out
