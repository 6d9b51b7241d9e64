"""Kinematic formula, Crofton probabilities (anchors + empirical frequencies), Gordon's escape, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from theory.cones import CircularCone, LorentzCone, NonnegativeOrthant, Subspace
from theory.kinematics import a_eta, crofton_probability, gordon_escape_probability, kinematic_formula
from theory.statdim import statistical_dimension_mc
from theory.width import chi_mean, gaussian_width_mc

K_SE = 4.0


def test_a_eta():
    assert a_eta(0.01) == pytest.approx(6.9233, abs=5e-5)
    for eta in (1e-6, 0.01, 0.5, 0.99):
        assert 4 * math.exp(-a_eta(eta) ** 2 / 8) == pytest.approx(eta, rel=1e-12)


@pytest.mark.parametrize(
    "cone, m, p",
    [(CircularCone(10, math.pi / 6), 3, 0.457382), (CircularCone(10, math.pi / 6), 5, 0.126585),
     (LorentzCone(20), 8, 0.746094)],
    ids=["d10-m3", "d10-m5", "d20-m8"],
)
def test_crofton_anchors(cone, m, p):
    assert crofton_probability(cone, m) == pytest.approx(p, abs=1e-6)
    assert crofton_probability(cone.intrinsic_volumes(), m) == crofton_probability(cone, m)


def test_crofton_edges():
    C = CircularCone(8, 0.7)
    assert crofton_probability(C, 0) == pytest.approx(1.0, abs=1e-12)  # L = R^d
    assert crofton_probability(C, 8) == 0.0  # L = {0}
    assert crofton_probability(Subspace.coordinate(6, 3), 2) == 1.0
    assert crofton_probability(Subspace.coordinate(6, 3), 3) == 0.0
    # orthant: binomial tail (Wendel): P = 2^{1−d} Σ_{k≥m+1... } = P{Bin(d−1, ½) ≥ m}
    d = 7
    for m in range(d + 1):
        wendel = sum(math.comb(d - 1, k) for k in range(m, d)) / 2 ** (d - 1)
        assert crofton_probability(NonnegativeOrthant(d), m) == pytest.approx(wendel, abs=1e-12)


def _circular_meets(d, alpha, m, n, rng):
    """Exact test: L = range(B), B ∈ R^{d×(d−m)} Gaussian, meets Circ_d(α) iff max eig Bᵀ M B ≥ 0,
    M = diag(tan²α, −1, …, −1) (x₁² tan²α ≥ ‖x̄‖²; the sign of x₁ is free since L = −L)."""
    B = rng.standard_normal((n, d, d - m))
    M = np.full(d, -1.0)
    M[0] = math.tan(alpha) ** 2
    Q = np.einsum("nij,i,nik->njk", B, M, B)
    return np.linalg.eigvalsh(Q)[:, -1] >= 0


@pytest.mark.parametrize("m", [3, 5])
def test_random_subspace_frequency_matches_crofton(m):
    rng = np.random.default_rng(m)
    d, alpha, n = 10, math.pi / 6, 20_000
    hits = _circular_meets(d, alpha, m, n, rng)
    p = crofton_probability(CircularCone(d, alpha), m)
    se = math.sqrt(p * (1 - p) / n)
    assert abs(hits.mean() - p) <= K_SE * se


def test_random_subspace_orthant_cvxpy_feasibility():
    """cvxpy LP feasibility: does range(B) (codim m) contain a nonzero x ≥ 0 (normalised by Σx = 1)?"""
    import cvxpy as cp

    d, m, n = 6, 3, 150
    rng = np.random.default_rng(21)
    Bp = cp.Parameter((d, d - m))
    y = cp.Variable(d - m)
    prob = cp.Problem(cp.Minimize(0), [Bp @ y >= 0, cp.sum(Bp @ y) == 1])
    hits = 0
    for _ in range(n):
        Bp.value = rng.standard_normal((d, d - m))
        prob.solve(solver="CLARABEL")
        assert prob.status in ("optimal", "infeasible"), prob.status
        hits += prob.status == "optimal"
    p = crofton_probability(NonnegativeOrthant(d), m)
    se = math.sqrt(p * (1 - p) / n)
    assert abs(hits / n - p) <= K_SE * se


def test_kinematic_formula_regimes_consistent_with_crofton():
    """C = Circ_d(α), K = a random subspace of dimension d − m (δ = d − m): the kinematic regimes agree with
    the exact Crofton probability."""
    d, alpha = 1000, math.pi / 6
    C = CircularCone(d, alpha)
    dc = C.statistical_dimension()
    half = a_eta(0.01) * math.sqrt(d)
    for m, regime in ((int(dc + half) + 1, "infeasible"), (int(dc - half) - 1, "feasible"), (int(dc), "transition")):
        r = kinematic_formula(dc, d - m, d, eta=0.01)
        assert r.regime == regime
        p = crofton_probability(C, m)
        assert r.prob_lower - 1e-12 <= p <= r.prob_upper + 1e-12
        if regime == "infeasible":
            assert p <= 0.01 and r.prob_upper <= 0.01
        elif regime == "feasible":
            assert p >= 0.99 and r.prob_lower >= 0.99


def test_gordon_escape_below_exact():
    rng = np.random.default_rng(2)
    d, alpha = 200, math.pi / 8
    C = CircularCone(d, alpha)
    # w(C ∩ S) = E‖Π_C g‖ (for a cone, sup over C ∩ S of ⟨g, x⟩ is ‖Π_C g‖ when positive)
    w = gaussian_width_mc(lambda g: np.sqrt(C.sq_norm_projection(g)), d, 4000, rng)
    delta = statistical_dimension_mc(C, 4000, rng)
    assert w.mean**2 <= delta.mean + K_SE * delta.stderr and delta.mean <= w.mean**2 + 1 + K_SE * delta.stderr
    for m in (60, 80, 120):
        bound = gordon_escape_probability(w.mean + K_SE * w.stderr, m)
        assert 0 < bound <= 1 - crofton_probability(C, m) + 1e-12
    assert gordon_escape_probability(chi_mean(30), 30) == 0.0
    # λ_m, not √m: with w = λ_m the guarantee is void even though w < √m
    assert chi_mean(30) < math.sqrt(30)


@pytest.mark.parametrize("d", [100, 1000, 10**5])
@pytest.mark.parametrize("frac", [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0])
def test_kinematic_tail_pinned_at_known_margins(d, frac):
    """Margin λ = δ(C) + δ(K) − d set exactly: the bound is 4exp(−λ²/(8d)) (ALMT Thm. I), 1 − that above d."""
    margin = frac * math.sqrt(d) * 2.0  # exact in float64 for these d
    r = kinematic_formula(d / 2 + margin / 2, d / 2 + margin / 2, d)
    tail = min(1.0, 4 * math.exp(-margin * margin / (8 * d)))
    assert r.margin == pytest.approx(margin, abs=1e-9)
    if margin > 0:
        assert (r.prob_lower, r.prob_upper) == (pytest.approx(1 - tail, rel=1e-12, abs=1e-15), 1.0)
    else:
        assert (r.prob_lower, r.prob_upper) == (0.0, pytest.approx(tail, rel=1e-12))
    half = math.sqrt(8 * math.log(400)) * math.sqrt(d)
    assert r.half_width == pytest.approx(half, rel=1e-14)
    assert r.regime == ("infeasible" if margin <= -half else "feasible" if margin >= half else "transition")


@pytest.mark.parametrize("m", [1, 2, 7, 60, 1000])
@pytest.mark.parametrize("frac", [0.0, 0.5, 0.99])
def test_gordon_escape_pinned(m, frac):
    """1 − exp(−(λ_m − w)²/2) with λ_m the chi mean (scipy.stats), not √m."""
    lam = stats.chi(m).mean()
    w = frac * lam
    assert gordon_escape_probability(w, m) == pytest.approx(-math.expm1(-0.5 * (lam - w) ** 2), rel=1e-10)


@pytest.mark.parametrize(
    "fn, exc, msg",
    [
        (lambda: a_eta(0.0), ValueError, r"eta must be a finite number > 0 and < 1, got eta=0\.0"),
        (lambda: a_eta(1.5), ValueError, r"got eta=1\.5"),
        (lambda: a_eta(float("nan")), ValueError, r"got eta=nan"),
        (lambda: kinematic_formula(5.0, 2.0, 0), ValueError, r"d must be an integer >= 1, got d=0"),
        (lambda: kinematic_formula(12.0, 2.0, 10), ValueError, r"delta_C must be a finite number >= 0 and <= 10, got delta_C=12\.0"),
        (lambda: kinematic_formula(1.0, float("nan"), 10), ValueError, r"delta_K must be a finite number >= 0 and <= 10, got delta_K=nan"),
        (lambda: kinematic_formula(1.0, 2.0, 10.0), TypeError, r"d must be an integer, got d=10\.0 of type float"),
        (lambda: crofton_probability(CircularCone(5, 0.3), 6), ValueError, r"m must be an integer in \[0, 5\], got m=6"),
        (lambda: crofton_probability(CircularCone(5, 0.3), -1), ValueError, r"got m=-1"),
        (lambda: crofton_probability([0.5, 0.6], 0), ValueError, r"intrinsic volumes must sum to 1"),
        (lambda: crofton_probability([[0.5, 0.5]], 0), ValueError, r"must be a 1-D array"),
        (lambda: crofton_probability([0.5, np.nan], 0), ValueError, r"finite and non-negative"),
        (lambda: gordon_escape_probability(-1.0, 3), ValueError, r"width must be a finite number >= 0, got width=-1\.0"),
        (lambda: gordon_escape_probability(1.0, 0), ValueError, r"m must be an integer >= 1, got m=0"),
    ],
)
def test_errors(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()
