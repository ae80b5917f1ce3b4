"""Request construction is linear in the number of repeated names (issue 10, item 3).

Building the name index used to copy a name's tuple of values for every further line of that
name, O(n^2) for n lines of one name (32,000 lines of one header took seconds). The tests here
are not timings: each builds a Request from 2**18 lines of one name (1 MiB of headers, query or
cookies) in a child process with a generous timeout. The linear code needs a small fraction of
a second; the quadratic code needed about 64 x 1.4 s (the 128 KiB figure in
docs/request-aware.md) and so cannot finish within the timeout. What they prove: no quadratic
(or worse) cost at this scale, with a margin of two orders of magnitude for a loaded machine;
not an exact complexity.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import balancekit

LINES = 2**18
TIMEOUT = 30.0  # seconds; the linear code takes well under 1 s here, the quadratic ~90 s

BUILD = {
    "headers": f"Request(headers=[('x-a', 'b')] * {LINES})",
    "query": f"Request(query='&'.join(['a=b'] * {LINES}))",
    "cookies": f"Request(headers={{'cookie': '; '.join(['a=b'] * {LINES})}})",
}
CHECK = {
    "headers": "len(r.headers.get_all('X-A'))",
    "query": "len(r.query.get_all('a'))",
    "cookies": "len(r.cookies.get_all('a'))",
}


@pytest.mark.parametrize("field", sorted(BUILD))
def test_many_lines_of_one_name_build_in_linear_time(field: str) -> None:
    src = str(Path(balancekit.__file__).resolve().parents[1])  # the balancekit under test
    code = f"from balancekit import Request\nr = {BUILD[field]}\nprint({CHECK[field]})"
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == LINES  # every line kept, in one name's entry
