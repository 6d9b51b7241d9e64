"""Cones: exact projections against cvxpy, Moreau decomposition, closed forms, docs/math.md §1.2 anchors, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate

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

from tests.theory.strategies import log_uniform
from tests.theory.tolerances import cvx_point_tol, round_tol

# closed-form projections are backward stable: residuals are a small multiple of eps times the input scale
ROUND_TOL = 1e-10


def _cvx_tol(x: np.ndarray) -> float:
    """CvxpyCone runs CLARABEL at its default tolerances on ‖v − x‖² (tests/theory/tolerances.py)."""
    return cvx_point_tol(float(np.linalg.norm(x, axis=-1).max()))


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

    @given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), scale=log_uniform(1e-3, 1e3),
           theta_half=st.booleans())
    def test_matches_cvxpy(self, seed, n, scale, theta_half):
        rng = np.random.default_rng(seed)
        K = EllipticCone(np.exp(rng.uniform(-2, 2, size=n)))
        ref = CvxpyCone.from_cone(K)
        x = rng.standard_normal((2, n + 1))
        if theta_half:
            x[:, 0] = 0.0  # s = 0: the root is θ = ½ exactly (μ = 1, where t = s/(1 − μ) is 0/0)
        x *= scale
        np.testing.assert_allclose(K.project(x), ref.project(x), atol=_cvx_tol(x))
        assert set(ref.statuses) == {"optimal"}

    @given(y=arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
           seed=st.integers(0, 2**16))
    def test_theta_half_closed_form(self, y, seed):
        """At s = 0 the KKT root is θ = ½: z_i = y_i/(1 + b_i²), t = ‖b∘z‖ (b = 1/a)."""
        a = np.exp(np.random.default_rng(seed).uniform(-3, 3, size=y.size))
        p = EllipticCone(a).project(np.concatenate([[0.0], y]))
        z = y / (1.0 + 1.0 / a**2)
        # rounding relative to ‖y‖, floored at the smallest normal number (products of tiny inputs underflow)
        tol = max(round_tol(y.size, float(np.linalg.norm(y)), 1e3), np.finfo(np.float64).tiny)
        np.testing.assert_allclose(p[1:], z, rtol=round_tol(y.size, 1.0, 1e3), atol=tol)
        v = z / a
        m = float(np.abs(v).max())
        t = m * float(np.linalg.norm(v / m)) if m > 0 else 0.0  # ‖v‖ without underflow of the squares
        assert p[0] == pytest.approx(t, rel=round_tol(y.size, 1.0, 1e3), abs=tol)

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


# ---------------------------------------------------------------------------------------------------------
# all cones: Moreau decomposition, cvxpy ground truth, δ(C) + δ(C°) = d
# ---------------------------------------------------------------------------------------------------------
def _cone_zoo():
    rng = np.random.default_rng(11)
    return {
        "subspace": Subspace(rng.standard_normal((7, 3))),
        "orthant": NonnegativeOrthant(6),
        "circular-narrow": CircularCone(6, 0.3),
        "circular-wide": CircularCone(5, 1.3),
        "lorentz": LorentzCone(5),
        "psd": PSDCone(3),
        "l1": L1DescentCone(8, 3, signs=[1.0, -1.0, 1.0], support=[0, 4, 6]),
        "l1-full-support": L1DescentCone(4, 4, signs=[1.0, -1.0, -1.0, 1.0]),
        "l1-nonneg": L1DescentCone(7, 2, nonnegative=True, support=[1, 5]),
        "linf": LinfDescentCone(6, 3, signs=[1.0, -1.0, 1.0]),
        "nuclear": NuclearDescentCone(4, 3, 1),
        "nuclear-r2": NuclearDescentCone(3, 4, 2),
        "elliptic": EllipticCone([0.3, 1.0, 2.5, 4.0]),
    }


ZOO = _cone_zoo()


@pytest.mark.parametrize("name", list(ZOO))
def test_moreau_decomposition(name):
    cone = ZOO[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, cone.ambient_dim)) * rng.exponential(size=(400, 1))
    _moreau_check(cone, x, tol=1e-9)
    # batched shapes: (..., d)
    x3 = x[:12].reshape(3, 4, cone.ambient_dim)
    np.testing.assert_allclose(cone.project(x3), cone.project(x[:12]).reshape(3, 4, -1), atol=1e-12)
    assert cone.project(x[0]).shape == (cone.ambient_dim,)


@pytest.mark.parametrize("name", list(ZOO))
def test_projection_matches_cvxpy(name):
    cone = ZOO[name]
    ref = CvxpyCone.from_cone(cone)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, cone.ambient_dim))
    np.testing.assert_allclose(cone.project(x), ref.project(x), atol=_cvx_tol(x))
    assert ref.statuses == ["optimal"] * 4


# Cones whose polar is given by Moreau only (x − Π_C x) are covered by test_moreau_decomposition.
_CLOSED_POLARS = [name for name, cone in ZOO.items() if not isinstance(cone.polar(), PolarCone)]


@pytest.mark.parametrize("name", _CLOSED_POLARS)
def test_polar_projection_matches_cvxpy_of_polar_where_closed(name):
    """Where the polar has a closed-form description, project onto it independently with cvxpy."""
    cone = ZOO[name]
    polar = cone.polar()
    ref = CvxpyCone.from_cone(polar)
    x = np.random.default_rng(5).standard_normal((3, cone.ambient_dim))
    np.testing.assert_allclose(polar.project(x), ref.project(x), atol=_cvx_tol(x))
    assert ref.statuses == ["optimal"] * 3


@pytest.mark.parametrize(
    "cone",
    [Subspace.coordinate(9, 4), NonnegativeOrthant(7), CircularCone(12, 0.4), LorentzCone(9), PSDCone(4),
     LinfDescentCone(10, 3), EllipticCone(np.full(6, 2.0))],
    ids=repr,
)
def test_statdim_of_polar_closed_forms(cone):
    """δ(C) + δ(C°) = d with both sides from closed forms (polar built independently where possible)."""
    assert cone.statistical_dimension() + cone.polar().statistical_dimension() == pytest.approx(
        cone.ambient_dim, abs=1e-10
    )
    if isinstance(cone, PSDCone):
        return  # intrinsic volumes of the PSD cone are not implemented
    v, vp = cone.intrinsic_volumes(), cone.polar().intrinsic_volumes()
    np.testing.assert_allclose(vp, v[::-1], atol=1e-13)
    assert v.sum() == pytest.approx(1.0, abs=1e-12) and np.all(v >= 0)


def test_cvxpy_cone_from_constraints_and_status():
    import cvxpy as cp

    # the cone {x : x1 ≥ |x2|} in R^2 described directly; projection of (0, 1) is (1/2, 1/2)
    cone = CvxpyCone(2, lambda v: [v[0] >= cp.abs(v[1])])
    np.testing.assert_allclose(cone.project(np.array([0.0, 1.0])), [0.5, 0.5], atol=cvx_point_tol(1.0))
    assert cone.statuses == ["optimal"]
    with pytest.raises(ValueError, match=r"solver must be one of \(.*\), got solver='NOPE'"):
        CvxpyCone(2, lambda v: [v >= 0], solver="NOPE")
    with pytest.raises(TypeError, match="constraints must be callable"):
        CvxpyCone(2, [1, 2])
    infeasible = CvxpyCone(2, lambda v: [v >= 1, v <= -1])
    with pytest.raises(RuntimeError, match="returned status 'infeasible' projecting row 0"):
        infeasible.project(np.zeros(2))


# ---------------------------------------------------------------------------------------------------------
# closed forms and docs/math.md §1.2 anchors (1e-6)
# ---------------------------------------------------------------------------------------------------------
def test_circular_intrinsic_volume_anchor():
    v = circular_intrinsic_volumes(4, math.pi / 4)
    np.testing.assert_allclose(v, [0.09084506, 0.25, 0.31830989, 0.25, 0.09084506], atol=1e-8)
    assert float(np.arange(5) @ v) == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize(
    "d, alpha, delta",
    [(10, math.pi / 8, 2.123580), (10, math.pi / 6, 2.983547), (50, math.pi / 6, 12.999991),
     (100, math.pi / 8, 15.351764), (1000, math.pi / 6, 250.500000)],
)
def test_circular_statdim_table(d, alpha, delta):
    C = CircularCone(d, alpha)
    assert C.statistical_dimension() == pytest.approx(delta, abs=1e-6)
    assert C.intrinsic_volumes().sum() == pytest.approx(1.0, abs=1e-12)
    # exponentially accurate asymptotic form once d is moderate (ALMT Prop. 3.4)
    if d >= 50:
        assert C.statistical_dimension_asymptotic() == pytest.approx(delta, abs=1e-5)


def _circular_by_angle(d: int, alpha: float) -> tuple[float, float, float]:
    """(P{g ∈ C}, P{g ∈ C°}, δ) of Circ_d(α) from the angle φ between g and e₁ (density ∝ sin^{d−2}φ on [0, π],
    independent of ‖g‖² with mean d): ‖Π_C g‖² = ‖g‖²·f(φ), f = 1 on [0, α], cos²(φ − α) up to α + π/2, then 0.
    Independent of the intrinsic-volume formula (scipy quadrature, 1e-13 relative)."""
    w = lambda p: math.sin(p) ** (d - 2)  # noqa: E731
    q = lambda f, a, b: integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]  # noqa: E731
    Z = q(w, 0, math.pi)
    inside = q(w, 0, alpha) / Z
    polar = q(w, alpha + math.pi / 2, math.pi) / Z
    mid = q(lambda p: math.cos(p - alpha) ** 2 * w(p), alpha, alpha + math.pi / 2) / Z
    return inside, polar, d * (inside + mid)


@pytest.mark.parametrize("d", [2, 3, 10, 51])
@pytest.mark.parametrize("alpha", [0.3, math.pi / 4, 1.2])
def test_circular_and_lorentz_against_the_angle_of_g(d, alpha):
    """v_d = P{g ∈ C} and v₀ = P{g ∈ C°} separately (the polar-duality and sum-to-one checks cannot see a
    v₀ ↔ v_d swap; α = π/4 alone hides it), and δ, all from an independent integral over the angle of g."""
    inside, polar, delta = _circular_by_angle(d, alpha)
    v = CircularCone(d, alpha).intrinsic_volumes()
    assert v[d] == pytest.approx(inside, rel=1e-11) and v[0] == pytest.approx(polar, rel=1e-11)
    assert CircularCone(d, alpha).statistical_dimension() == pytest.approx(delta, rel=1e-11)
    if alpha == math.pi / 4:
        assert LorentzCone(d).statistical_dimension() == pytest.approx(delta, rel=1e-11)


def test_circular_membership_frequency_matches_v_d():
    """Exact Monte Carlo: the fraction of Gaussian samples inside Circ_d(α) (by the defining inequality) is v_d,
    inside the polar v₀, within 4 binomial standard errors."""
    rng = np.random.default_rng(7)
    n = 200_000
    for d, alpha in ((5, 0.5), (5, 1.1), (3, 0.2)):
        C = CircularCone(d, alpha)
        g = rng.standard_normal((n, d))
        v = C.intrinsic_volumes()
        for frac, p in ((np.mean(C.contains(g, atol=0.0)), v[d]), (np.mean(C.polar().contains(g, atol=0.0)), v[0])):
            assert abs(frac - p) <= 4 * math.sqrt(p * (1 - p) / n), (d, alpha, frac, p)


def test_orthant_closed_forms():
    for d in (1, 2, 3, 10, 51):
        v = NonnegativeOrthant(d).intrinsic_volumes()
        np.testing.assert_allclose(v, [math.comb(d, k) / 2**d for k in range(d + 1)], rtol=1e-12)
        assert NonnegativeOrthant(d).statistical_dimension() == pytest.approx(float(np.arange(d + 1) @ v), rel=1e-13)


def test_svec_is_an_isometry():
    rng = np.random.default_rng(6)
    A, B = rng.standard_normal((2, 5, 5))
    A, B = A + A.T, B + B.T
    assert float(svec(A) @ svec(B)) == pytest.approx(float(np.trace(A @ B)), rel=1e-12)
    np.testing.assert_allclose(smat(svec(A)), A, atol=1e-14)
    assert svec(A).shape == (15,)
    P = PSDCone(5)
    lam = np.linalg.eigvalsh(smat(P.project(svec(A))))
    assert lam.min() >= -1e-12


def test_nuclear_asymptotic_formula():
    from theory.statdim import statistical_dimension_mc

    # r = min(m, n): ∂‖X‖_* is the single point UVᵀ, D is a half-space and δ = mn − ½ exactly (exact Monte
    # Carlo); the asymptotic formula reduces to r(m + n − r) = mn, within its O(1) error
    for m, n in ((3, 3), (2, 4)):
        mc = statistical_dimension_mc(NuclearDescentCone(m, n, min(m, n)), 40_000, np.random.default_rng(m))
        assert abs(mc.z_score(m * n - 0.5)) <= 4
        assert nuclear_statdim_asymptotic(m, n, min(m, n)) == pytest.approx(m * n - 0.5, abs=0.5)
    # symmetric in (m, n); between the dimension of the tangent-space part r(m + n − r) and mn; increasing in r
    assert nuclear_statdim_asymptotic(20, 30, 4) == pytest.approx(nuclear_statdim_asymptotic(30, 20, 4), rel=1e-12)
    vals = [nuclear_statdim_asymptotic(30, 40, r) for r in (1, 3, 10, 29)]
    assert all(r * (70 - r) <= v <= 1200 for r, v in zip((1, 3, 10, 29), vals)) and np.all(np.diff(vals) > 0)


def test_l1_descent_at_point():
    x = np.array([0.0, 2.0, 0.0, -1.0, 0.0])
    D = L1DescentCone.at(x)
    np.testing.assert_array_equal(D.support, [1, 3])
    np.testing.assert_array_equal(D.signs, [1.0, -1.0])
    # x itself shrinks under −x direction: −x ∈ D (‖x − x‖₁ ≤ ‖x‖₁)
    assert D.contains(-x)[()]
    assert not D.contains(x)[()]


# ---------------------------------------------------------------------------------------------------------
# error-input table
# ---------------------------------------------------------------------------------------------------------
ERROR_CASES = [
    (lambda: NonnegativeOrthant(0), ValueError, r"d must be an integer >= 1, got d=0"),
    (lambda: NonnegativeOrthant(-3), ValueError, r"d must be an integer >= 1, got d=-3"),
    (lambda: NonnegativeOrthant(2.5), TypeError, r"d must be an integer, got d=2\.5 of type float"),
    (lambda: NonnegativeOrthant(True), TypeError, r"d must be an integer, got d=True of type bool"),
    (lambda: CircularCone(1, 0.5), ValueError, r"d must be an integer >= 2, got d=1"),
    (lambda: CircularCone(5, 0.0), ValueError, r"alpha must be a finite number > 0 and < 1\.5708, got alpha=0\.0"),
    (lambda: CircularCone(5, math.pi / 2), ValueError, r"alpha must be a finite number > 0 and < 1\.5708, got alpha=1\.57079"),
    (lambda: CircularCone(5, -0.1), ValueError, r"alpha=-0\.1"),
    (lambda: CircularCone(5, float("nan")), ValueError, r"alpha=nan"),
    (lambda: CircularCone(5, "x"), TypeError, r"alpha must be a real number, got alpha='x' of type str"),
    (lambda: PSDCone(0), ValueError, r"n must be an integer >= 1, got n=0"),
    (lambda: L1DescentCone(5, 6), ValueError, r"s must be an integer in \[1, 5\], got s=6"),
    (lambda: L1DescentCone(5, 0), ValueError, r"s must be an integer in \[1, 5\], got s=0"),
    (lambda: L1DescentCone(5, 2, signs=[1.0, 0.5]), ValueError, r"signs must be an array of 2 entries equal to \+1 or -1"),
    (lambda: L1DescentCone(5, 2, support=[0, 0]), ValueError, r"support must be 2 distinct indices in \[0, 5\)"),
    (lambda: L1DescentCone(5, 1, nonnegative=True, signs=[-1.0]), ValueError, "signs must all be \\+1 for the nonnegative"),
    (lambda: L1DescentCone.at(np.zeros(3)), ValueError, r"x must be nonzero"),
    (lambda: L1DescentCone.at([1.0, -1.0], nonnegative=True), ValueError, r"x must be non-negative .* got min -1\.0"),
    (lambda: L1DescentCone.at([1.0, np.inf]), ValueError, r"x must be finite"),
    (lambda: LinfDescentCone(4, 5), ValueError, r"k must be an integer in \[1, 4\], got k=5"),
    (lambda: NuclearDescentCone(3, 4, 4), ValueError, r"r must be an integer in \[1, 3\], got r=4"),
    (lambda: nuclear_statdim_asymptotic(3, 4, 0), ValueError, r"r must be an integer in \[1, 3\], got r=0"),
    (lambda: Subspace(np.ones((3, 2))), ValueError, r"basis must have full column rank"),
    (lambda: Subspace(np.ones((2, 3))), ValueError, r"basis must have at most d columns, got shape \(2, 3\)"),
    (lambda: Subspace(np.ones(3)), ValueError, r"basis must be a \(d, k\) array"),
    (lambda: Subspace.coordinate(3, 4), ValueError, r"k must be an integer in \[1, 3\], got k=4"),
    (lambda: NonnegativeOrthant(3).project(np.zeros((2, 4))), ValueError, r"x must have shape \(\.\.\., 3\)"),
    (lambda: NonnegativeOrthant(3).project(5.0), ValueError, r"got shape \(\)"),
    (lambda: NonnegativeOrthant(3).project([1.0, np.nan, 0.0]), ValueError, r"x must be finite, got NaN or inf"),
    (lambda: NonnegativeOrthant(3).project([1.0, -np.inf, 0.0]), ValueError, r"x must be finite"),
    (lambda: NonnegativeOrthant(3).project(["a", "b", "c"]), TypeError, r"x must be a real numeric array"),
    (lambda: CircularCone(3, 0.5).sq_norm_projection(np.zeros(2)), ValueError, r"x must have shape \(\.\.\., 3\)"),
    (lambda: smat(np.zeros(4)), ValueError, r"triangular number n\(n\+1\)/2, got 4"),
    (lambda: svec(np.zeros((2, 3))), ValueError, r"S must have shape \(\.\.\., n, n\), got \(2, 3\)"),
    (lambda: PolarCone("orthant"), TypeError, r"cone must be a Cone, got str"),
    (lambda: EllipticCone([1.0]).statistical_dimension_bounds() and EllipticCone([np.nan]), ValueError, "slopes must be finite"),
]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
def test_error_inputs(case):
    fn, exc, msg = ERROR_CASES[case]
    with pytest.raises(exc, match=msg):
        fn()


def test_intrinsic_volumes_not_known_message():
    with pytest.raises(NotImplementedError, match="L1DescentCone: intrinsic volumes are not known in closed form"):
        L1DescentCone(5, 2).intrinsic_volumes()
