"""Statistical dimension: exact Monte Carlo vs closed forms (k = 4 standard errors), ψ anchors, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from theory.cones import (
    CircularCone,
    CvxpyCone,
    EllipticCone,
    L1DescentCone,
    LinfDescentCone,
    LorentzCone,
    NonnegativeOrthant,
    NuclearDescentCone,
    PSDCone,
    Subspace,
)
from theory.statdim import (
    MonteCarloResult,
    expected_sq_excess,
    l1_psi,
    l1_psi_nonneg,
    statistical_dimension,
    statistical_dimension_mc,
)

from tests.theory.tolerances import K_SE, cvx_point_tol  # noqa: E402

EXACT_CONES = [
    Subspace(np.random.default_rng(0).standard_normal((12, 5))),
    NonnegativeOrthant(20),
    CircularCone(10, math.pi / 6),
    CircularCone(100, math.pi / 8),
    LorentzCone(15),
    PSDCone(5),
    LinfDescentCone(30, 8),
    EllipticCone(np.full(11, 0.6)),
]


@pytest.mark.parametrize("cone", EXACT_CONES, ids=repr)
def test_exact_closed_forms_within_4_stderr(cone):
    rng = np.random.default_rng(101)
    f = statistical_dimension(cone)
    assert f.kind == "exact"
    mc = statistical_dimension_mc(cone, 4000, rng)
    assert abs(mc.z_score(f.value)) <= K_SE, (mc, f)
    # and of the polar (independent projection code where the polar is a closed-form cone)
    fp = statistical_dimension(cone.polar())
    assert fp.value == pytest.approx(cone.ambient_dim - f.value, abs=1e-10)
    mcp = statistical_dimension_mc(cone.polar(), 4000, rng)
    assert abs(mcp.z_score(fp.value)) <= K_SE, (mcp, fp)


def test_l1_descent_bounds_and_anchor():
    """docs/math.md §1.2: d = 1000, s = 100, 2000 samples: 328.39 ± 0.67 against dψ = 328.79."""
    rng = np.random.default_rng(7)
    D = L1DescentCone(1000, 100)
    f = statistical_dimension(D)
    assert f.kind == "bound" and f.value == pytest.approx(328.7935, abs=1e-3)
    mc = statistical_dimension_mc(D, 2000, rng)
    assert f.lower - K_SE * mc.stderr <= mc.mean <= f.upper + K_SE * mc.stderr
    assert abs(mc.z_score(f.value)) <= K_SE  # the bound is tight at this size (as in docs/math.md §1.2)
    assert f.deviation_in_stderr(mc) <= K_SE


def test_l1_descent_bounds_pinned_to_the_psi_anchor():
    """ALMT Prop. 4.5 at d = 1000, s = 100 with ψ(0.1) = 0.328794 (docs/math.md §1.2 anchor):
    dψ − 2√(d/s) ≤ δ ≤ dψ."""
    f = statistical_dimension(L1DescentCone(1000, 100))
    assert f.upper == pytest.approx(328.794, abs=1e-3)
    assert f.lower == pytest.approx(328.794 - 2 * math.sqrt(10), abs=1e-3)
    fp = statistical_dimension(L1DescentCone(1000, 100, nonnegative=True))
    assert (fp.lower, fp.upper) == (0.0, pytest.approx(265.304, abs=1e-3))  # ψ₊(0.1) = 0.265304


@pytest.mark.parametrize("d, s", [(60, 6), (40, 20), (10, 10)])
def test_l1_descent_small_sizes(d, s):
    rng = np.random.default_rng(8)
    D = L1DescentCone(d, s, signs=rng.choice([-1.0, 1.0], size=s), support=rng.permutation(d)[:s])
    f = statistical_dimension(D)
    mc = statistical_dimension_mc(D, 4000, rng)
    assert f.lower - K_SE * mc.stderr <= mc.mean <= f.upper + K_SE * mc.stderr, (mc, f)
    if s == d:
        # full support: D is the half-space {⟨σ, v⟩ ≤ 0}, δ = d − ½
        assert abs(mc.z_score(d - 0.5)) <= K_SE


def test_l1_nonneg_upper_bound():
    rng = np.random.default_rng(9)
    D = L1DescentCone(200, 20, nonnegative=True)
    f = statistical_dimension(D)
    mc = statistical_dimension_mc(D, 3000, rng)
    assert mc.mean <= f.upper + K_SE * mc.stderr
    assert mc.mean >= 0.9 * f.upper  # the recipe bound is tight to O(√d) here


def test_nuclear_asymptotic_close_to_mc():
    """docs/math.md §1.2: at 60×60 exact Monte Carlo lies 0.1–0.5 % above the asymptotic formula."""
    rng = np.random.default_rng(10)
    D = NuclearDescentCone(60, 60, 5)
    f = statistical_dimension(D)
    assert f.kind == "asymptotic" and f.lower is None
    mc = statistical_dimension_mc(D, 400, rng)
    rel = (mc.mean - f.value) / f.value
    assert -K_SE * mc.stderr / f.value <= rel <= 0.005 + K_SE * mc.stderr / f.value, (mc, f)


@pytest.mark.parametrize("m, n, r", [(30, 50, 5), (40, 20, 3)])
def test_nuclear_asymptotic_rectangular(m, n, r):
    """Rectangular sizes (where the τ² coefficient r(n − r) differs from r(m − r)): the asymptotic formula within
    0.5 % (its finite-size error at these sizes, measured −0.2 % and +0.3 %) plus 4 standard errors of exact MC."""
    D = NuclearDescentCone(m, n, r)
    f = statistical_dimension(D)
    mc = statistical_dimension_mc(D, 1000, np.random.default_rng(m + n + r))
    assert abs(mc.mean - f.value) <= 0.005 * f.value + K_SE * mc.stderr, (mc, f)


def test_cvxpy_monte_carlo_agrees_with_closed_form():
    """Monte Carlo through cvxpy projections (ground truth) against the closed form, and paired samples."""
    rng = np.random.default_rng(12)
    for cone in (CircularCone(5, 0.5), L1DescentCone(8, 2)):
        ref = CvxpyCone.from_cone(cone)
        mc = statistical_dimension_mc(ref, 150, rng)
        f = statistical_dimension(cone)
        assert f.deviation_in_stderr(mc) <= K_SE, (cone, mc, f)
        assert set(ref.statuses) == {"optimal"}
        g = rng.standard_normal((20, cone.ambient_dim))
        # ‖p‖² − ‖p̃‖² ≤ (2‖p‖ + δ)δ with δ the solver's distance bound at this scale
        scale = float(np.linalg.norm(g, axis=1).max())
        delta = cvx_point_tol(scale)
        np.testing.assert_allclose(cone.sq_norm_projection(g), ref.sq_norm_projection(g), rtol=0, atol=(2 * scale + delta) * delta)


def test_elliptic_leading_order_within_O1():
    """docs/math.md §2: δ = Σ a²/(1+a²) + O(1) (n = 5000 random slopes: 2466.6 ± 1.8 against 2468.6)."""
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


# ---------------------------------------------------------------------------------------------------------
# ψ
# ---------------------------------------------------------------------------------------------------------
PSI_TABLE = [  # ρ, ψ, τ*, ψ₊, τ₊*  (docs/math.md §1.2)
    (0.01, 0.061244, 1.945111, 0.052219, 1.720783),
    (0.1, 0.328794, 1.140171, 0.265304, 0.901462),
    (0.25, 0.582858, 0.765775, 0.468587, 0.549156),
    (0.5, 0.831300, 0.436327, 0.695631, 0.276030),
    (0.9, 0.993620, 0.080044, 0.948324, 0.042031),
]


@pytest.mark.parametrize("rho, psi, tau, psip, taup", PSI_TABLE)
def test_psi_table(rho, psi, tau, psip, taup):
    r = l1_psi(rho)
    assert r.value == pytest.approx(psi, abs=1e-6) and r.tau == pytest.approx(tau, abs=1e-6)
    rp = l1_psi_nonneg(rho)
    assert rp.value == pytest.approx(psip, abs=1e-6) and rp.tau == pytest.approx(taup, abs=1e-6)


def test_psi_against_brute_force_minimisation():
    for rho in (1e-6, 0.03, 0.3, 0.7, 0.999):
        obj = lambda t: rho * (1 + t * t) + (1 - rho) * float(expected_sq_excess(t))  # noqa: E731
        res = optimize.minimize_scalar(obj, bounds=(0, 10), method="bounded", options={"xatol": 1e-12})
        assert l1_psi(rho).value == pytest.approx(res.fun, rel=1e-9, abs=1e-12)
        assert l1_psi(rho).value <= res.fun + 1e-15


def test_expected_sq_excess_by_quadrature():
    for tau in (0.0, 0.3, 1.7, 5.0):
        val, _ = integrate.quad(lambda x: 2 * (x - tau) ** 2 * stats.norm.pdf(x), tau, np.inf, epsabs=1e-14)
        assert float(expected_sq_excess(tau)) == pytest.approx(val, rel=1e-10, abs=1e-300)


def test_psi_vectorised():
    # speed (target < 50 ms for 10⁴ values) is measured in bench/geometry.py, not asserted here
    rho = np.random.default_rng(0).uniform(0, 1, size=10_000)
    rho[:3] = [0.0, 1.0, 1e-300]
    r = l1_psi(rho)
    assert r.value.shape == (10_000,) and r.tau.shape == (10_000,)
    assert r.value[0] == 0.0 and r.tau[0] == np.inf and r.value[1] == 1.0 and r.tau[1] == 0.0
    assert np.all(np.isfinite(r.value)) and np.all(np.diff(r.value[np.argsort(rho)]) >= -1e-15)
    for i in (5, 500, 9999):
        assert r.value[i] == l1_psi(float(rho[i])).value
    rp = l1_psi_nonneg(rho.reshape(100, 100))
    assert rp.value.shape == (100, 100) and np.all(rp.value <= r.value.reshape(100, 100) + 1e-15)


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn, exc, msg",
    [
        (lambda: l1_psi(1.5), ValueError, r"rho must lie in \[0, 1\] .* got rho=1\.5"),
        (lambda: l1_psi(-0.1), ValueError, r"got rho=-0\.1"),
        (lambda: l1_psi(np.array([0.2, np.nan])), ValueError, r"got rho=nan"),
        (lambda: l1_psi_nonneg(np.inf), ValueError, r"got rho=inf"),
        (lambda: l1_psi("a"), TypeError, r"rho must be a real number or array"),
        (lambda: statistical_dimension_mc(NonnegativeOrthant(3), 1, np.random.default_rng()), ValueError,
         r"n_samples must be an integer >= 2, got n_samples=1"),
        (lambda: statistical_dimension_mc(NonnegativeOrthant(3), 10.0, np.random.default_rng()), TypeError,
         r"n_samples must be an integer, got n_samples=10\.0 of type float"),
        (lambda: statistical_dimension_mc(NonnegativeOrthant(3), 10, 0), TypeError,
         r"rng must be a numpy.random.Generator, got int"),
        (lambda: statistical_dimension_mc("orthant", 10, np.random.default_rng()), TypeError,
         r"cone must be a theory.cones.Cone, got str"),
        (lambda: statistical_dimension_mc(NonnegativeOrthant(3), 10, np.random.default_rng(), batch_size=0),
         ValueError, r"batch_size must be an integer >= 1, got batch_size=0"),
        (lambda: statistical_dimension_mc(NonnegativeOrthant(3), 10, np.random.default_rng(), batch_size=2.0),
         TypeError, r"batch_size must be an integer, got batch_size=2\.0 of type float"),
        (lambda: statistical_dimension(3), TypeError, r"cone must be a theory.cones.Cone, got int"),
    ],
)
def test_errors(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()
