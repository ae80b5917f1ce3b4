"""Hypothesis profiles: no per-example deadline on this shared 2-core machine; CI derandomized.

``.ci/run`` sets ``CI=true``, which selects Hypothesis's built-in ``ci`` profile (derandomized,
no deadline, no example database), so a red CI run is reproducible by running it again.
"""

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
