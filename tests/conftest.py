"""Shared test configuration: Hypothesis runs under a deterministic (derandomized) profile.

Profiles (``PRUNELIMIT_HYPOTHESIS_PROFILE``): ``ci`` (default) draws 50 examples per property, derandomized so
that a CI run is reproducible; ``dev`` draws 10 for quick local iteration; ``thorough`` draws 1000 with a
random seed (``print_blob`` prints how to reproduce a failure). ``PRUNELIMIT_HYPOTHESIS_EXAMPLES`` overrides the
number of examples of the chosen profile.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
_EXAMPLES = {"ci": 50, "dev": 10, "thorough": 1000}

for _name, _n in _EXAMPLES.items():
    settings.register_profile(
        _name,
        derandomize=_name != "thorough",
        max_examples=int(os.environ.get("PRUNELIMIT_HYPOTHESIS_EXAMPLES", _n)),
        **_COMMON,
    )
settings.load_profile(os.environ.get("PRUNELIMIT_HYPOTHESIS_PROFILE", "ci"))
