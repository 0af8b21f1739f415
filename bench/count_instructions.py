"""Instructions that `sipwatch scan --json FILE` runs, in the main process and in each parse worker apart,
counted by valgrind's callgrind: a figure that stays the same from run to run (to a few in a million), where
timing on a shared machine moves by 10-20%. Use it to tell a change of a per cent or two from the noise.

    .venv/bin/python bench/count_instructions.py FILE                      # this tree
    .venv/bin/python bench/count_instructions.py FILE --against /tmp/base/src  # and another tree, side by side

`--against` is the `src` folder of another checkout (a `git worktree` of the commit to compare with, its C
parts built with `python setup.py build_ext --inplace`). Each tree is run once untimed first, so that its
`.pyc` files exist (else Python's compiler counts too), and with PYTHONHASHSEED=0 (string hashes decide dict
layouts, and with them the count). Needs Debian's `valgrind`; a run takes ~50 times the scan's own time: use
a slice of a large log (`head -250000`) rather than the whole bench file.

Instructions are not time: the main process, which walks large dicts and objects, runs about half as many
instructions per second as a parse worker. Compare each process with itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWN_SRC = HERE.parent / "src"


def counts(src: Path, log: Path) -> list[int]:
    """Instructions of each process of one scan of `log` with the sources in `src`, the main process first."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(src), PYTHONHASHSEED="0")
    command = [sys.executable, "-m", "sipwatch", "scan", "--json", str(log)]
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)  # (writes the .pyc files)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes",
                        f"--callgrind-out-file={out}/cg.%p", *command],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        found = []
        for name in sorted(os.listdir(out), key=lambda n: int(n.split(".")[1])):  # by pid: the main process first
            summary = re.search(r"^summary: (\d+)", (Path(out) / name).read_text(errors="replace"), re.M)
            if summary:
                found.append(int(summary[1]))
        return found


def show(label: str, found: list[int]) -> None:
    names = ["main"] + [f"worker {i}" for i in range(1, len(found))]
    print(f"{label:>10}  " + "  ".join(f"{n} {c / 1e9:.4f} G" for n, c in zip(names, found, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--against", type=Path, help="the src folder of another checkout, to compare with")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    this = counts(OWN_SRC, args.file)
    show("this", this)
    if args.against is not None:
        other = counts(args.against, args.file)
        show("against", other)
        print("   this/against  " + "  ".join(f"{a / b:.4f}" for a, b in zip(this, other, strict=False)))


if __name__ == "__main__":
    main()
