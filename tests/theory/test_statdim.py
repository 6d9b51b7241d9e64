"""Statistical dimension: exact Monte Carlo vs closed forms (k = 4 standard errors), ψ anchors, errors."""

from __future__ import annotations

import numpy as np
import pytest

from theory.cones import EllipticCone
from theory.statdim import MonteCarloResult, statistical_dimension, statistical_dimension_mc

# a closed form agrees with exact Monte Carlo when within K_SE standard errors (fixed generators: deterministic)
K_SE = 4.0


def test_elliptic_leading_order_within_O1():
    """MATH.md §2: δ = Σ a²/(1+a²) + O(1) (n = 5000 random slopes: 2466.6 ± 1.8 against 2468.6)."""
    rng = np.random.default_rng(5)
    for n in (100, 5000):
        K = EllipticCone(rng.uniform(0.05, 3.0, size=n))
        mc = statistical_dimension_mc(K, 300, rng)
        lead = K.statistical_dimension_leading_order()
        assert abs(mc.mean - lead) <= 3.0 + K_SE * mc.stderr, (n, mc, lead)
        f = statistical_dimension(K)
        assert f.kind == "leading order" and f.lower <= mc.mean <= f.upper


def test_mc_result_fields():
    rng = np.random.default_rng(0)
    K = EllipticCone([1.0])
    mc = statistical_dimension_mc(K, 1000, rng, batch_size=7)
    assert isinstance(mc, MonteCarloResult) and mc.n_samples == 1000
    assert mc.stderr == pytest.approx(mc.std / np.sqrt(1000))
    # Circ_2(π/4) = quarter plane: δ = 1
    assert abs(mc.z_score(1.0)) <= K_SE
