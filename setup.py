"""Optional compiled build (issue 15): ``BALANCEKIT_COMPILE=1 pip install .`` compiles the core
and the strategies with mypyc (mypy's compiler; the code is mypy --strict). Without the variable
this is a plain pure-Python build that needs no compiler. The ``.py`` modules ship either way:
they are the reference, and ``BALANCEKIT_PURE=1`` loads them at import (``balancekit._native``).
"""

from __future__ import annotations

import os

from setuptools import setup

#: Compiled: the select/release path, a list (not a glob) so a new module is compiled only once
#: the suites pass against it: the base class and the per-endpoint state and their helpers,
#: every strategy and the hash rings. Not compiled (the pure-Python module is loaded, also in a
#: compiled install): package __init__ files; _native (it chooses the build); _protocols (the
#: runtime_checkable Balancer protocol and acquire's generator, which mypyc cannot compile
#: faithfully); registry (a plugin table); the rings' merge machinery, hashing/_points.py (off
#: the pick path but for one pick in PICK_EVERY; the tests count its work by patching its
#: methods, which a native class does not allow); Maglev's table fill (_maglev_fill,
#: _maglev_size: off the pick path, the tests patch its thresholds);
#: Endpoint (_endpoint) and LoadReport (strategies/_orca): frozen dataclasses whose int/float
#: fields refuse junk with InvalidEndpoint/InvalidOption; compiled, mypyc checks the declared
#: type on entry (TypeError for 2.5 or an int where a float is declared) and takes weight=True
#: as the int 1;
#: everything off the select+release path (options, config, health, routing, integrations).
COMPILED = [
    f"src/balancekit/{name}.py"
    for name in (
        "_bounded",
        "_clock",
        "_core",
        "_delta",
        "_lease",
        "_state",
        "_tally",
        "strategies/_guide",
        "strategies/_stride",
        "strategies/_weight_line",
        "strategies/_wrr_stats",
        "strategies/edf",
        "strategies/ewma",
        "strategies/least",
        "strategies/least_conn",
        "strategies/least_time",
        "strategies/load_report",
        "strategies/p2c",
        "strategies/random",
        "strategies/round_robin",
        "strategies/smooth",
        "strategies/hashing/_keyed",
        "strategies/hashing/_tombs",
        "strategies/hashing/_view",
        "strategies/hashing/bounded",
        "strategies/hashing/jump",
        "strategies/hashing/ketama",
        "strategies/hashing/maglev",
        "strategies/hashing/maglev_envoy",
        "strategies/hashing/rendezvous",
        "strategies/hashing/ring",
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
