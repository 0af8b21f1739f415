"""The prefilter finds every marker of the readers in a buffer, with hyperscan or, where its wheel is missing,
with one `re` alternation (compiled only then): the same hits either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from generated import genlog
from sipwatch.formats import readers
from sipwatch.formats.parser import LineParser
from sipwatch.formats.prefilter import Prefilter
from sipwatch.timeparse import TimeParser


@pytest.mark.parametrize("calls", [True, False])
def test_the_re_fallback_finds_what_hyperscan_finds(tmp_path: Path, calls: bool) -> None:
    markers = LineParser(TimeParser(2024), readers(calls)).markers
    fast, fallback = Prefilter(markers), Prefilter(markers, use_hyperscan=False)
    if fast.engine != "hyperscan":
        pytest.skip("the hyperscan wheel is not installed: both are the re fallback")
    data = genlog(tmp_path / "full", 3000, seed=7).read_bytes()
    assert fallback.engine == "re" and fallback._regex is None  # not compiled before it is needed
    found = fast.hits(data)
    assert found and sorted(fallback.hits(data)) == sorted(found)

