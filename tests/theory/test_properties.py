"""Property tests (Hypothesis, ``ci`` profile: 50 examples each) of every closed-form cone and formula, over
boundary points, θ = ½, input scales 1e-3…1e3 and dimension extremes (tests/theory/strategies.py).

Tolerances are rounding bounds ``c·n·eps·scale`` of backward-stable computations (tests/theory/tolerances.py);
the properties are exact identities (Moreau, homogeneity, duality, invariances) or the inequalities a formula
promises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.theory.strategies import angles, cone_and_points, cones, dims, fractions, log_uniform, seeds
from tests.theory.tolerances import EPS, round_tol
from theory.cones import EllipticCone, NuclearDescentCone, PSDCone
from theory.kinematics import a_eta, crofton_probability, gordon_escape_probability, kinematic_formula
from theory.limits import MagnitudeProfile, kept_count, pruning_limit
from theory.statdim import expected_sq_excess, l1_psi, l1_psi_nonneg
from theory.width import chi_mean, gaussian_width_ellipsoid, gaussian_width_sparse_bound


def _tol(cone, x: np.ndarray) -> float:
    # eigen/SVD-based projections (PSD, nuclear) and the elliptic root carry a larger constant
    c = 1e3 if isinstance(cone, (PSDCone, NuclearDescentCone, EllipticCone)) else 64.0
    return round_tol(cone.ambient_dim, float(np.abs(x).max()) + 1e-300, c)


# ---------------------------------------------------------------------------------------------------------
# cones
# ---------------------------------------------------------------------------------------------------------
@given(cone_and_points())
def test_moreau_decomposition_at_all_scales(case):
    """x = Π_C x + Π_C° x with both parts in their cones (defining inequalities), orthogonal; ‖Π_C x‖² agrees
    with the projection; the projection is idempotent."""
    cone, x = case
    p, q = cone.project(x), cone.polar().project(x)
    tol = _tol(cone, x)
    np.testing.assert_allclose(p + q, x, rtol=0, atol=tol)
    scale = float(np.abs(x).max()) + 1e-300
    assert np.all(cone.contains(p, atol=tol / max(scale, 1.0) * 10))
    assert np.all(cone.polar().contains(q, atol=tol / max(scale, 1.0) * 10))
    assert np.max(np.abs(np.sum(p * q, axis=-1))) <= 10 * tol * scale
    np.testing.assert_allclose(cone.project(p), p, rtol=0, atol=tol)
    np.testing.assert_allclose(cone.sq_norm_projection(x), np.sum(p * p, axis=-1), rtol=0, atol=4 * tol * scale)


@given(cone_and_points(max_dim=60), log_uniform(1e-3, 1e3))
def test_projection_is_positively_homogeneous(case, c):
    """Π_C(c·x) = c·Π_C(x) for c > 0 (cones are invariant under scaling), across six orders of magnitude."""
    cone, x = case
    np.testing.assert_allclose(cone.project(c * x), c * cone.project(x), rtol=0, atol=_tol(cone, c * x) * 4)


@given(cones(max_dim=200))
def test_closed_form_statistical_dimension_identities(cone):
    """δ(C) + δ(C°) = d; intrinsic volumes non-negative, summing to 1, reversed for the polar; δ = Σ k v_k;
    the Crofton probability is in [0, 1] and non-increasing in the codimension."""
    d = cone.ambient_dim
    try:
        delta = cone.statistical_dimension()
    except NotImplementedError:
        return
    assert 0 <= delta <= d
    assert delta + cone.polar().statistical_dimension() == pytest.approx(d, abs=round_tol(d, d))
    try:
        v = cone.intrinsic_volumes()
    except NotImplementedError:
        return
    assert np.all(v >= 0) and v.sum() == pytest.approx(1.0, abs=round_tol(d, 1.0))
    np.testing.assert_allclose(cone.polar().intrinsic_volumes(), v[::-1], rtol=0, atol=round_tol(d, 1.0))
    assert float(np.arange(d + 1) @ v) == pytest.approx(delta, abs=round_tol(d, d))
    probs = [crofton_probability(cone, m) for m in range(d + 1)]
    assert all(0.0 <= p <= 1.0 for p in probs) and all(a >= b - round_tol(d, 1.0) for a, b in zip(probs, probs[1:]))


@given(dims(2, 300), angles())
def test_circular_polar_swaps_the_angle(d, alpha):
    """Circ_d(α)° = −Circ_d(π/2 − α): the polar's projection from its own closed form equals x − Π_C x."""
    from theory.cones import CircularCone

    C = CircularCone(d, alpha)
    x = np.random.default_rng(d).standard_normal((5, d))
    np.testing.assert_allclose(C.polar().project(x), x - C.project(x), rtol=0, atol=round_tol(d, float(np.abs(x).max())))


# ---------------------------------------------------------------------------------------------------------
# ψ, widths
# ---------------------------------------------------------------------------------------------------------
@given(fractions(), fractions())
def test_psi_properties(r1, r2):
    """ψ and ψ₊ increase from 0 to 1, ψ₊ ≤ ψ, ψ(ρ) ≥ ρ (the support alone contributes ρ(1 + τ²) ≥ ρ) and ψ is
    the minimum over τ of its objective (τ* ± 1e-3 is not better)."""
    lo, hi = sorted((r1, r2))
    a, b = l1_psi(lo), l1_psi(hi)
    assert a.value <= b.value + 4 * EPS and 0 <= a.value <= 1 and 0 <= b.value <= 1
    assert l1_psi_nonneg(hi).value <= b.value + 4 * EPS and b.value >= hi - 4 * EPS
    if 1e-9 < hi < 1 - 1e-9:
        obj = lambda t: hi * (1 + t * t) + (1 - hi) * float(expected_sq_excess(t))  # noqa: E731
        assert obj(b.tau + 1e-3) >= b.value - 8 * EPS and obj(max(b.tau - 1e-3, 0.0)) >= b.value - 8 * EPS


@given(log_uniform(1e-6, 1e14))
def test_chi_mean_bounds(k):
    """k/√(k+1) < λ_k < √k for every k > 0 (docs/math.md §1.3); λ_k² + Var = k ⇒ λ_k ≤ √k."""
    lam = chi_mean(k)
    assert k / math.sqrt(k + 1) < lam * (1 + 4 * EPS) and lam < math.sqrt(k) * (1 + 4 * EPS)


@given(st.lists(log_uniform(1e-3, 1e3), min_size=1, max_size=30), log_uniform(1e-3, 1e3))
def test_ellipsoid_width_scaling_and_bounds(mu, c):
    """w(cμ) = √c·w(μ) (the ellipsoid scales by √c) and √(2/π)√tr, √(tr − max μ) ≤ w ≤ √tr."""
    e = gaussian_width_ellipsoid(mu)
    ec = gaussian_width_ellipsoid([c * m for m in mu])
    assert ec.value == pytest.approx(math.sqrt(c) * e.value, rel=1e-10)
    assert e.lower_bound <= e.value * (1 + 1e-12) and e.value <= e.upper_bound * (1 + 1e-12)


@given(dims(1, 10**6), st.data())
def test_sparse_width_bound_properties(d, data):
    """The bound is non-decreasing in k, equals √d at k = d and is at least the width of the 1-sparse set
    E‖g‖_∞ ≥ λ_1 = √(2/π)."""
    k1 = data.draw(dims(1, d))
    k2 = data.draw(dims(k1, d))
    b1, b2 = gaussian_width_sparse_bound(d, k1), gaussian_width_sparse_bound(d, k2)
    assert b1 <= b2 * (1 + 1e-12) and b1 >= math.sqrt(2 / math.pi) * (1 - 1e-12)
    if k2 == d:
        assert b2 == pytest.approx(math.sqrt(d), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# kinematics
# ---------------------------------------------------------------------------------------------------------
@given(dims(1, 10**7), fractions(), fractions(), fractions(open_ends=True))
def test_kinematic_formula_properties(d, u, v, eta):
    """Bounds in [0, 1] and ordered; the regime matches the margin against a_η√d; the tail 4exp(−λ²/(8d)) is
    at most η exactly when |margin| ≥ a_η√d; symmetric in (δ_C, δ_K)."""
    r = kinematic_formula(u * d, v * d, d, eta=eta)
    assert 0.0 <= r.prob_lower <= r.prob_upper <= 1.0
    assert r == kinematic_formula(v * d, u * d, d, eta=eta)
    half = a_eta(eta) * math.sqrt(d)
    assert r.half_width == pytest.approx(half, rel=4 * EPS)
    tail = r.prob_upper if r.margin <= 0 else 1 - r.prob_lower
    if r.regime == "infeasible":
        assert r.margin <= -half and r.prob_upper <= eta * (1 + 1e-9)
    elif r.regime == "feasible":
        assert r.margin >= half and r.prob_lower >= 1 - eta * (1 + 1e-9)
    else:
        assert abs(r.margin) < half and tail >= eta * (1 - 1e-9)


@given(log_uniform(1e-12, 0.999))
def test_a_eta_inverts_the_tail(eta):
    assert 4 * math.exp(-a_eta(eta) ** 2 / 8) == pytest.approx(eta, rel=1e-12)


@given(dims(1, 10**6), fractions(), fractions())
def test_gordon_escape_properties(m, u, v):
    """In [0, 1], non-increasing in the width, 0 once w ≥ λ_m (never √m)."""
    lam = chi_mean(m)
    w1, w2 = sorted((2 * lam * u, 2 * lam * v))
    p1, p2 = gordon_escape_probability(w1, m), gordon_escape_probability(w2, m)
    assert 0.0 <= p2 <= p1 <= 1.0
    if w1 >= lam:
        assert p1 == 0.0


# ---------------------------------------------------------------------------------------------------------
# the pruning limit
# ---------------------------------------------------------------------------------------------------------
@st.composite
def limit_problems(draw):
    n = draw(dims(2, 300))
    rng = np.random.default_rng(draw(seeds()))
    kind = draw(st.sampled_from(["one atom", "two atoms", "exponential", "half zero"]))
    if kind == "one atom":
        lam = np.full(n, draw(log_uniform(1e-3, 1e3)))
    elif kind == "two atoms":
        lam = np.where(np.arange(n) < n // 2, draw(log_uniform(1e-3, 1.0)), draw(log_uniform(1.0, 1e3)))
    elif kind == "exponential":
        lam = rng.exponential(draw(log_uniform(1e-3, 1e3)), n)
    else:
        lam = np.concatenate([np.zeros(n // 2), rng.exponential(1.0, n - n // 2)])
    w = draw(log_uniform(1e-3, 1e3)) * rng.laplace(size=n)
    eps = draw(log_uniform(1e-6, 1e6)) * float(np.mean(lam) * np.sum(w * w) + 1e-300)
    return lam, w, eps


@given(limit_problems(), st.sampled_from(["free", "flat"]))
def test_pruning_limit_promises(problem, method):
    """ρ* in [0, rank fraction]; lower band ≤ ρ* ≤ upper band, all in [0, 1]; the sharpness bound dominates the
    flat ρ*, the uncompensated bound the free ρ*; the predicted increase at ρ* is ε unless ρ* = 0."""
    lam, w, eps = problem
    r = pruning_limit(lam, w, eps, method=method, n_curve=0)
    assert 0.0 <= r.kept_fraction <= r.rank_fraction + 1e-12
    assert 0.0 <= r.kept_fraction_lower <= r.kept_fraction <= r.kept_fraction_upper <= 1.0
    if method == "flat":
        assert r.kept_fraction <= r.sharpness_bound + 1e-10
    else:
        assert r.kept_fraction <= r.uncompensated_bound + 1e-10
    if r.kept_fraction > 1e-9 and method == "free":
        assert r.predicted_increase == pytest.approx(eps, rel=1e-6)


@given(limit_problems(), st.sampled_from(["free", "flat"]), log_uniform(1e-3, 1e3), log_uniform(1e-3, 1e3))
def test_pruning_limit_invariances(problem, method, c, s):
    """Both thresholds depend on (λ, ε) only through λ/ε and on w only through w/√ε: scaling the curvature by c
    and ε by c, or the weights by s and ε by s², leaves ρ* unchanged (across six orders of magnitude)."""
    lam, w, eps = problem
    base = pruning_limit(lam, w, eps, method=method, n_curve=0).kept_fraction
    assert pruning_limit(c * lam, w, c * eps, method=method, n_curve=0).kept_fraction == pytest.approx(base, abs=1e-9)
    assert pruning_limit(lam, s * w, s * s * eps, method=method, n_curve=0).kept_fraction == pytest.approx(base, abs=1e-9)


@given(limit_problems(), log_uniform(1.0, 1e3))
def test_pruning_limit_monotone_in_eps(problem, factor):
    """A larger tolerance never keeps more weights (both methods)."""
    lam, w, eps = problem
    for method in ("free", "flat"):
        a = pruning_limit(lam, w, eps, method=method, n_curve=0).kept_fraction
        b = pruning_limit(lam, w, eps * factor, method=method, n_curve=0).kept_fraction
        assert b <= a + 1e-10


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60), fractions(), fractions())
def test_magnitude_profile_properties(w, r1, r2):
    """R² is non-increasing, R²(0) = ‖w‖², R²(1) = 0, and at ρ = k/N it is the sum of the N − k smallest w²."""
    prof = MagnitudeProfile(w)
    lo, hi = sorted((r1, r2))
    tol = round_tol(len(w), max(float(np.sum(np.square(w))), 1e-300))
    assert prof.R2(hi) <= prof.R2(lo) + tol and prof.R2(1.0) == 0.0
    assert prof.R2(0.0) == pytest.approx(float(np.sum(np.square(w))), abs=tol)
    k = int(round(lo * len(w)))
    assert prof.R2(k / len(w)) == pytest.approx(float(np.sum(np.sort(np.square(w))[: len(w) - k])), abs=tol)


@given(fractions(), dims(0, 10**9), fractions())
def test_kept_count_properties(rho, n, rho2):
    """0 ≤ k ≤ n, non-decreasing in ρ, and (k − 1)/n < ρ ≤ k/n up to float rounding of ρn."""
    k = kept_count(rho, n)
    assert 0 <= k <= n
    assert kept_count(max(rho, rho2), n) >= kept_count(min(rho, rho2), n)
    x = rho * n
    assert k >= x - 8 * EPS * x - 1e-300 and k - 1 < x + 1e-9


@given(dims(2, 50), angles(), seeds(), st.sampled_from([1e-300, 1e-200, 1e-160, 1e160, 1e200, 1e300]))
def test_norm_based_projections_at_extreme_scales(d, alpha, seed, c):
    """The circular and elliptic projections take norms of the input (the elliptic root equation squares it):
    they stay positively homogeneous where squares over- or underflow (|x| beyond 1e±154)."""
    from theory.cones import CircularCone

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, d))
    x[1, 0] = 0.0  # θ = ½ for the elliptic cone
    for cone in (CircularCone(d, alpha), EllipticCone(np.exp(rng.uniform(-2, 2, d - 1)))):
        p = cone.project(x)
        np.testing.assert_allclose(cone.project(c * x) / c, p, rtol=0, atol=_tol(cone, x) * 4)


# ---------------------------------------------------------------------------------------------------------
# the exact quadratic oracle and the gRDA threshold
# ---------------------------------------------------------------------------------------------------------
@given(dims(1, 40), seeds(), log_uniform(1e-3, 1e3), log_uniform(1e-3, 1e3), fractions())
def test_quadratic_oracle_properties(n, seed, c, s, rho):
    """For PSD H: Δ(T) ≤ uncompensated increase, Δ(T) is the loss at the compensated weights, the LDLᵀ curve equals
    the Schur value, and Δ scales as c·s² under H → cH, w → s·w."""
    from theory.quadratic import QuadraticModel

    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, max(n // 2, 1)))
    H = B @ B.T + 0.1 * np.eye(n)
    w = rng.laplace(size=n)
    m, ms = QuadraticModel(H, w), QuadraticModel(c * H, s * w)
    k = kept_count(rho, n)
    T = m.magnitude_support(k)
    delta = m.compensated_increase(T)
    scale = float(np.abs(H).max() * np.sum(w * w))
    tol = round_tol(n, scale, 1e4)
    assert -tol <= delta <= m.uncompensated_increase(T) + tol
    assert m.loss_increase(m.compensated_weights(T)) == pytest.approx(delta, abs=tol)
    assert m.magnitude_curve().compensated[k] == pytest.approx(delta, abs=tol)
    assert ms.compensated_increase(ms.magnitude_support(k)) == pytest.approx(c * s * s * delta, abs=c * s * s * tol)


@given(log_uniform(1e-4, 1.0), log_uniform(1e-4, 10.0), st.floats(0.3, 0.99), dims(1, 300), st.sampled_from(["authors", "paper"]))
def test_grda_increments_telescope(lr, c, mu, n, convention):
    """Σ_{k ≤ n} threshold_increment(k) = threshold_closed_form(n) = c·lr^{μ+½}·k^μ (k = n or n − 1)."""
    from nets.grda import threshold_closed_form, threshold_increment

    total = math.fsum(threshold_increment(k, lr, c, mu, convention) for k in range(1, n + 1))
    closed = threshold_closed_form(n, lr, c, mu, convention)
    kk = n if convention == "authors" else n - 1
    assert total == pytest.approx(closed, rel=1e-13 * n, abs=1e-300)
    assert closed == pytest.approx(c * lr ** (mu + 0.5) * kk**mu if kk > 0 else 0.0, rel=1e-14)


@example(70, 100, 1)  # 0.07·100 = 7.000000000000001 in float64 (0.3·10 is exactly 3.0)
@example(140, 1000, 3)
@given(st.integers(0, 1000), dims(0, 10**9), dims(1, 10**6))
def test_kept_count_of_decimals_is_the_exact_ceiling(i, n, m):
    """For a decimal ρ = i/1000 (whose binary value times n may land ulps above an integer: 0.07·100 =
    7.000000000000001), kept_count is the exact ⌈ρn⌉ of the decimal; in particular exactly ρn when that is an
    integer (n a multiple of 1000/gcd(i, 1000))."""
    from fractions import Fraction

    assert kept_count(i / 1000, n) == math.ceil(Fraction(i, 1000) * n)
    n_int = m * (1000 // math.gcd(i, 1000))
    assert kept_count(i / 1000, n_int) == i * n_int // 1000
