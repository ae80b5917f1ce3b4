"""Issue 15: the Lease is no NamedTuple any more; ``lease[0]`` must still type as it did.

mypy --strict user code that returned ``lease[0]`` as an ``Endpoint`` (as the integrations read
it) was refused with "Returning Any" once ``__getitem__`` returned ``Any``. Unpacking
(``endpoint, token, started = lease``) types each name as ``Any`` now (a class's ``__iter__`` has
one item type): README says to read the attributes where the types matter.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import balancekit

mypy_api = pytest.importorskip("mypy.api")

USER_CODE = """
from balancekit import Endpoint, Lease


def endpoint(lease: Lease) -> Endpoint:
    return lease[0]


def token(lease: Lease) -> int:
    return lease[1]


def started(lease: Lease) -> float:
    return lease[-1] + lease[2]


def head(lease: Lease) -> tuple[object, ...]:
    return lease[:2]


def address(lease: Lease) -> str:
    return lease.endpoint.address + lease.address
"""


def test_user_code_indexing_a_lease_is_mypy_strict_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the balancekit under test (not whichever one an editable install points at)
    monkeypatch.setenv("MYPYPATH", str(Path(balancekit.__file__).resolve().parent.parent))
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE))
    out, err, status = mypy_api.run(
        [
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(tmp_path / "user.py"),
        ]
    )
    assert status == 0, out + err
