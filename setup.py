"""Optional compiled build (issue 15): ``BALANCEKIT_COMPILE=1 pip install .`` compiles the core
and the strategies with mypyc (mypy's compiler; the code is mypy --strict). Without the variable
this is a plain pure-Python build that needs no compiler. The ``.py`` modules ship either way:
they are the reference, and ``BALANCEKIT_PURE=1`` loads them at import (``balancekit._native``).
"""

from __future__ import annotations

import os

from setuptools import setup

#: Compiled: the base class (select/release/cancel), the per-endpoint state and the strategies
#: that run as well compiled, a list (not a glob) so a new module is compiled only once its
#: suites pass against it. Not compiled (the pure-Python module is loaded, also in a compiled
#: install): package __init__ files; _native (it chooses the build); everything off the
#: select+release path (options, endpoints, errors, health, routing, ...); and
#: - smooth.py: SmoothWeighted.__next__ -> int makes mypyc 1.x emit a tagged int as
#:   tp_iternext (a C type error); it only steps schedules too long to precompute;
#: - least.py, least_time.py: they find their live heap entry by identity (state.rank is
#:   entry); mypyc unboxes tuple-typed locals and boxes them again on each store, so the entry
#:   in the heap and the one in state.rank are no longer the same object;
#: - hashing/ring.py, ketama.py, bounded.py, _view.py, _points.py: the ring's owner list holds
#:   None for its sentinel under an EndpointState annotation, which mypyc checks on each read.
COMPILED = [
    f"src/balancekit/{name}.py"
    for name in (
        "_core",
        "_state",
        "strategies/_orca",
        "strategies/edf",
        "strategies/ewma",
        "strategies/load_report",
        "strategies/p2c",
        "strategies/random",
        "strategies/round_robin",
        "strategies/hashing/_keyed",
        "strategies/hashing/jump",
        "strategies/hashing/maglev",
        "strategies/hashing/maglev_envoy",
        "strategies/hashing/rendezvous",
    )
]


def _extensions() -> tuple[list[object], list[str]]:
    """The extension modules to build, and what the build needs installed first."""
    if os.environ.get("BALANCEKIT_COMPILE", "") in ("", "0"):
        return [], []
    try:
        from mypyc.build import mypycify
    except ImportError:  # pip's isolated build environment: setuptools' PEP 517 hook turns
        return [], ["mypy>=1.10"]  # setup_requires into build requirements, then runs us again
    return list(mypycify(COMPILED, opt_level="3", group_name="balancekit")), []


extensions, build_requires = _extensions()
setup(ext_modules=extensions, setup_requires=build_requires)
