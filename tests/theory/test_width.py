"""Gaussian widths: docs/math.md §1.3 anchors, Monte Carlo (4 standard errors), bounds, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from theory.width import (
    chi_mean,
    gaussian_width_ellipsoid,
    gaussian_width_l1_ball,
    gaussian_width_l2_ball,
    gaussian_width_linf_ball,
    gaussian_width_mc,
    gaussian_width_sparse_bound,
    gaussian_width_sparse_mc,
)

K_SE = 4.0


@pytest.mark.parametrize("d, w", [(100, 2.74696), (1000, 3.43541)])
def test_l1_ball_anchor(d, w):
    # docs/math.md §1.3 quotes 5 decimals: agreement to half a unit in the last place
    assert gaussian_width_l1_ball(d) == pytest.approx(w, abs=5e-6)


def test_l1_ball_small_d_exact():
    assert gaussian_width_l1_ball(1) == pytest.approx(math.sqrt(2 / math.pi), abs=1e-12)
    # E max(|g1|, |g2|) = 2/√π
    assert gaussian_width_l1_ball(2) == pytest.approx(2 / math.sqrt(math.pi), abs=1e-12)


@pytest.mark.parametrize("d", [3, 50])
def test_ball_widths_against_mc(d):
    rng = np.random.default_rng(d)
    for width, support in (
        (gaussian_width_l2_ball(d), lambda g: np.linalg.norm(g, axis=1)),
        (gaussian_width_l1_ball(d), lambda g: np.abs(g).max(axis=1)),
        (gaussian_width_linf_ball(d), lambda g: np.abs(g).sum(axis=1)),
    ):
        mc = gaussian_width_mc(support, d, 20_000, rng)
        assert abs(mc.z_score(width)) <= K_SE


def test_chi_mean():
    for k in (1, 2, 7, 50, 300):
        assert chi_mean(k) == pytest.approx(stats.chi(k).mean(), rel=1e-12)
    k = np.array([1e3, 1e6])
    lam = chi_mean(k)
    assert np.all(k / np.sqrt(k + 1) < lam) and np.all(lam < np.sqrt(k))
    # huge k: λ_k = √k (1 − 1/(4k) + …), finite and correct to rounding (Γ ratios would overflow)
    assert chi_mean(1e12) == pytest.approx(1e6 * (1 - 1 / 4e12), rel=1e-14)
    assert chi_mean(np.array([200.0, 201.0])) == pytest.approx([stats.chi(200).mean(), stats.chi(201).mean()], rel=1e-11)


def test_sparse_width():
    rng = np.random.default_rng(0)
    mc = gaussian_width_sparse_mc(1000, 10, 2000, rng)
    assert abs(mc.z_score(9.123)) <= K_SE  # docs/math.md §1.3
    bound = gaussian_width_sparse_bound(1000, 10)
    classical = math.sqrt(2 * 10 * math.log(math.e * 1000 / 10))
    assert mc.mean <= bound <= classical
    # k = 1: the 1-sparse unit vectors give E‖g‖_∞, the ℓ1-ball width
    mc1 = gaussian_width_sparse_mc(30, 1, 20_000, rng)
    assert abs(mc1.z_score(gaussian_width_l1_ball(30))) <= K_SE
    # k = d: the sphere, width λ_d ≤ √d = the bound
    assert gaussian_width_sparse_bound(25, 25) == pytest.approx(5.0, abs=1e-12)
    mcd = gaussian_width_sparse_mc(25, 25, 5000, rng)
    assert abs(mcd.z_score(chi_mean(25))) <= K_SE


def test_ellipsoid_width():
    for n in (1, 4, 100):
        assert gaussian_width_ellipsoid(np.ones(n)).value == pytest.approx(chi_mean(n), rel=1e-11)
    rng = np.random.default_rng(1)
    mu = rng.exponential(size=200) ** 2
    e = gaussian_width_ellipsoid(mu)
    mc = gaussian_width_mc(lambda g: np.sqrt((g * g) @ mu), 200, 20_000, rng)
    assert abs(mc.z_score(e.value)) <= K_SE
    assert e.lower_bounds[0] <= e.value and e.lower_bounds[1] <= e.value <= e.upper_bound
    assert e.upper_bound == pytest.approx(math.sqrt(mu.sum()))
    # multiplicities are repetitions; zero eigenvalues (flat directions) contribute nothing
    e2 = gaussian_width_ellipsoid([1.0, 3.0, 0.0], multiplicities=[2, 1, 5])
    assert e2.value == pytest.approx(gaussian_width_ellipsoid([1.0, 1.0, 3.0]).value, rel=1e-12)
    assert gaussian_width_ellipsoid([0.0, 0.0]).value == 0.0
    # extreme spread
    e3 = gaussian_width_ellipsoid([1e-8, 1e6])
    assert e3.value == pytest.approx(1e3 * math.sqrt(2 / math.pi), rel=1e-9)


@pytest.mark.parametrize("d, k", [(1000, 10), (50, 1), (7, 3), (200, 199)])
def test_sparse_bound_is_the_minimum_over_tau(d, k):
    """The bound is min_τ √(kτ² + d E(g² − τ²)₊), with E(g² − τ²)₊ by quadrature (independent of the closed form)."""
    from scipy import integrate, optimize

    def excess(t):
        return 2 * integrate.quad(lambda x: (x * x - t * t) * stats.norm.pdf(x), t, np.inf, epsabs=0, epsrel=1e-13)[0]

    res = optimize.minimize_scalar(lambda t: k * t * t + d * excess(t), bounds=(0, 10), method="bounded",
                                   options={"xatol": 1e-10})
    assert gaussian_width_sparse_bound(d, k) == pytest.approx(math.sqrt(res.fun), rel=1e-9)


@pytest.mark.parametrize("m1, m2, a, b", [(1.0, 4.0, 1, 1), (1e-3, 1e3, 2, 3), (7.0, 0.25, 40, 1)])
def test_ellipsoid_width_against_beta_mixture(m1, m2, a, b):
    """E√(μ₁X + μ₂Y), X ~ χ²_a, Y ~ χ²_b: = λ_{a+b}·E√(μ₂ + (μ₁ − μ₂)B), B ~ Beta(a/2, b/2) independent of X + Y;
    the rigorous bounds are their closed forms."""
    from scipy import integrate

    ref = chi_mean(a + b) * integrate.quad(lambda u: math.sqrt(m2 + (m1 - m2) * u) * stats.beta(a / 2, b / 2).pdf(u), 0, 1,
                                           epsabs=0, epsrel=1e-12, limit=200)[0]
    e = gaussian_width_ellipsoid([m1] * a + [m2] * b)
    assert e.value == pytest.approx(ref, rel=1e-9)
    tr = m1 * a + m2 * b
    assert e.upper_bound == pytest.approx(math.sqrt(tr), rel=1e-14)
    assert e.lower_bounds == pytest.approx((math.sqrt(2 / math.pi * tr), math.sqrt(tr - max(m1, m2))), rel=1e-14)


@pytest.mark.parametrize(
    "fn, exc, msg",
    [
        (lambda: chi_mean(0), ValueError, r"k must be positive and finite, got k=0\.0"),
        (lambda: chi_mean(np.nan), ValueError, r"got k=nan"),
        (lambda: gaussian_width_l1_ball(0), ValueError, r"d must be an integer >= 1, got d=0"),
        (lambda: gaussian_width_l2_ball(2.0), TypeError, r"d must be an integer, got d=2\.0 of type float"),
        (lambda: gaussian_width_sparse_bound(5, 6), ValueError, r"k must be an integer in \[1, 5\], got k=6"),
        (lambda: gaussian_width_sparse_mc(5, 0, 10, np.random.default_rng()), ValueError, r"k must be an integer in \[1, 5\], got k=0"),
        (lambda: gaussian_width_ellipsoid([1.0, -1.0]), ValueError, r"mu must be non-negative .* got min\(mu\)=-1\.0"),
        (lambda: gaussian_width_ellipsoid([1.0, np.inf]), ValueError, r"mu must be finite"),
        (lambda: gaussian_width_ellipsoid([]), ValueError, r"mu must be non-empty"),
        (lambda: gaussian_width_ellipsoid([1.0], multiplicities=[1, 2]), ValueError, r"multiplicities must have the shape"),
        (lambda: gaussian_width_mc(lambda g: g, 3, 10, np.random.default_rng()), ValueError,
         r"support must return shape \(10,\)"),
        (lambda: gaussian_width_mc(lambda g: g[:, 0], 3, 10, None), TypeError, r"rng must be a numpy.random.Generator"),
        (lambda: gaussian_width_mc(5, 3, 10, np.random.default_rng()), TypeError, r"support must be callable"),
    ],
)
def test_errors(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()
