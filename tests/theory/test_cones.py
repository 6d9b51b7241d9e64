"""Cones: exact projections against cvxpy, Moreau decomposition, closed forms, MATH.md §1 anchors, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.cones import (
    CircularCone,
    Cone,
    CvxpyCone,
    EllipticCone,
    L1DescentCone,
    LinfDescentCone,
    LorentzCone,
    NegatedCone,
    NonnegativeOrthant,
    NuclearDescentCone,
    PolarCone,
    PSDCone,
    Subspace,
    circular_intrinsic_volumes,
    nuclear_statdim_asymptotic,
    smat,
    svec,
)

# CvxpyCone runs CLARABEL with its default gap tolerance 1e-8 on the objective ‖v − x‖²; by strong
# convexity the point error is ≲ √(2·gap) ≈ 1.4e-4 for O(1)-scaled inputs (observed: ≤ 4e-5).
CVX_TOL = 2e-4
# closed-form projections are backward stable: residuals are a small multiple of eps times the input scale
ROUND_TOL = 1e-10


def _moreau_check(cone: Cone, x: np.ndarray, tol: float = ROUND_TOL) -> None:
    """x = Π_C x + Π_{C°} x, both parts in their cones (by defining inequalities), orthogonal."""
    p = cone.project(x)
    q = cone.polar().project(x)
    scale = max(1.0, float(np.abs(x).max()))
    np.testing.assert_allclose(p + q, x, atol=tol * scale)
    assert np.all(cone.contains(p, atol=1e-9))
    assert np.all(cone.polar().contains(q, atol=1e-9))
    assert np.max(np.abs(np.sum(p * q, axis=-1))) <= tol * scale**2 * cone.ambient_dim
    # idempotence
    np.testing.assert_allclose(cone.project(p), p, atol=tol * scale)
    # ‖Π_C x‖² + ‖Π_C° x‖² = ‖x‖² through the (independent) sq-norm paths
    np.testing.assert_allclose(
        cone.sq_norm_projection(x) + cone.polar().sq_norm_projection(x), np.sum(x * x, axis=-1), rtol=1e-10
    )


# ---------------------------------------------------------------------------------------------------------
# elliptic cone
# ---------------------------------------------------------------------------------------------------------
class TestEllipticCone:
    @pytest.mark.parametrize("spread", [(0.1, 3.0), (1e-3, 1e3), (1.0, 1.0), (0.5, 0.5)])
    def test_moreau(self, spread):
        rng = np.random.default_rng(0)
        K = EllipticCone(rng.uniform(*spread, size=40))
        x = rng.standard_normal((500, 41)) * rng.exponential(size=(500, 1))
        _moreau_check(K, x, tol=1e-9)

    def test_regions(self):
        K = EllipticCone([2.0, 0.5])
        inside = np.array([3.0, 1.0, 0.1])  # t ≥ ‖z/a‖ = √(0.25 + 0.04)
        np.testing.assert_array_equal(K.project(inside), inside)
        polar_pt = np.array([-3.0, 1.0, 0.1])  # −t ≥ ‖a z‖ = √(4 + 0.0025)
        np.testing.assert_array_equal(K.project(polar_pt), np.zeros(3))

    def test_equal_slopes_is_circular(self):
        rng = np.random.default_rng(1)
        a = 0.7
        K = EllipticCone(np.full(9, a))
        C = CircularCone(10, math.atan(a))
        x = rng.standard_normal((300, 10))
        np.testing.assert_allclose(K.project(x), C.project(x), atol=1e-12)
        assert K.statistical_dimension() == pytest.approx(C.statistical_dimension(), abs=1e-12)

    @settings(max_examples=10)
    @given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6))
    def test_matches_cvxpy(self, seed, n):
        rng = np.random.default_rng(seed)
        K = EllipticCone(np.exp(rng.uniform(-2, 2, size=n)))
        ref = CvxpyCone.from_cone(K)
        x = rng.standard_normal((3, n + 1))
        np.testing.assert_allclose(K.project(x), ref.project(x), atol=CVX_TOL)
        assert set(ref.statuses) == {"optimal"}

    def test_large_n_converges(self):
        rng = np.random.default_rng(2)
        K = EllipticCone(np.exp(rng.uniform(-4, 4, size=10_000)))
        x = rng.standard_normal((3, 10_001))
        _moreau_check(K, x, tol=1e-9)
        assert K.last_iterations < 60

    def test_polar_is_negated_reciprocal(self):
        K = EllipticCone([1.0, 2.0, 4.0])
        P = K.polar()
        assert isinstance(P, NegatedCone) and isinstance(P.cone, EllipticCone)
        np.testing.assert_allclose(P.cone.slopes, [1.0, 0.5, 0.25])

    def test_leading_order_and_bounds(self):
        K = EllipticCone([1.0, 1.0, 3.0])
        assert K.statistical_dimension_leading_order() == pytest.approx(0.5 + 0.5 + 0.9)
        lo, hi = K.statistical_dimension_bounds()
        assert lo == pytest.approx(CircularCone(4, math.pi / 4).statistical_dimension())
        assert hi == pytest.approx(CircularCone(4, math.atan(3.0)).statistical_dimension())
        with pytest.raises(NotImplementedError, match="no closed form for unequal slopes"):
            K.statistical_dimension()

    @pytest.mark.parametrize(
        "slopes, exc, msg",
        [
            ([1.0, 0.0], ValueError, r"slopes must be positive, got min\(slopes\)=0\.0"),
            ([1.0, -2.0], ValueError, r"slopes must be positive, got min\(slopes\)=-2\.0"),
            ([1.0, float("nan")], ValueError, "slopes must be finite"),
            ([1.0, float("inf")], ValueError, "slopes must be finite"),
            ([[1.0, 2.0]], ValueError, r"slopes must be a non-empty 1-D array, got shape \(1, 2\)"),
            ([], ValueError, r"slopes must be a non-empty 1-D array, got shape \(0,\)"),
            ("abc", TypeError, "slopes must be a real numeric array"),
        ],
    )
    def test_bad_slopes(self, slopes, exc, msg):
        with pytest.raises(exc, match=msg):
            EllipticCone(slopes)

    def test_bad_points(self):
        K = EllipticCone([1.0, 2.0])
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\) for a cone in R\^3, got shape \(2,\)"):
            K.project(np.zeros(2))
        with pytest.raises(ValueError, match="x must be finite, got NaN or inf"):
            K.project(np.array([np.nan, 0.0, 0.0]))
