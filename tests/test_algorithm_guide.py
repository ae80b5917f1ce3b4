"""docs/algorithms.md is generated from the docstrings and must be current."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_algorithm_guide.py"


def test_guide_is_current() -> None:
    module = runpy.run_path(str(SCRIPT))
    guide = module["GUIDE"]
    assert guide.read_text() == module["render"](), (
        "docs/algorithms.md is stale: run python scripts/build_algorithm_guide.py"
    )
