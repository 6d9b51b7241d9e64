"""Shared test configuration: Hypothesis runs under a deterministic (derandomized) profile."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "prunelimit",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("PRUNELIMIT_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("prunelimit")
