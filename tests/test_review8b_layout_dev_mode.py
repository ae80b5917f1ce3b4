"""review8b: tests/test_state_layout.py passes (or skips) in Python's development mode.

``python -X dev`` (or ``PYTHONDEVMODE=1``) installs the debug hooks on the memory allocators,
which pad every block (CPython's Objects/obmalloc.c, ``_PyMem_DebugRawAlloc``: two words before
and after), so an EndpointState no longer starts on a 64-byte boundary and
``test_states_start_on_a_cache_line`` fails there: its skip reads ``$PYTHONMALLOC`` only, not
``sys.flags.dev_mode`` (a6e628f). The layout it checks is a speed matter, not a behaviour, so in
that mode it should skip. Fails on a6e628f; 36920cf had no layout test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import balancekit as bk

pytestmark = pytest.mark.skipif(bk.compiled, reason="the layout test is pure Python's")

LAYOUT_TEST = Path(__file__).with_name("test_state_layout.py")


def test_the_layout_test_passes_in_development_mode() -> None:
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)  # the development mode's own allocator hooks
    run = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(LAYOUT_TEST),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:]
