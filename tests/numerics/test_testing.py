"""Tests for numerics.testing: the known-spectrum generators really have the spectra they claim."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import scipy.integrate

import numerics.testing as testing_mod
from numerics.testing import (
    goe,
    haar_orthogonal,
    marchenko_pastur_density,
    path_laplacian,
    rotated_diagonal,
    semicircle_density,
    spiked_wigner,
    wishart,
)

EPS = np.finfo(np.float64).eps


def test_doctests() -> None:
    assert doctest.testmod(testing_mod, raise_on_error=False).failed == 0


def test_haar_orthogonal_is_orthogonal_and_haar() -> None:
    rng = np.random.default_rng(0)
    Q = haar_orthogonal(50, rng)
    np.testing.assert_allclose(Q.T @ Q, np.eye(50), atol=10 * 50 * EPS)
    # Haar moments on O(3): E[Q_11] = 0, E[Q_11²] = 1/3, E[tr Q] = 0, E[(tr Q)²] = 1 (Diaconis & Shahshahani
    # 1994). Without the sign fix, numpy's QR biases Q_11's sign, so the first check fails.
    N = 4000
    qs = np.array([haar_orthogonal(3, rng) for _ in range(N)])
    q11, tr = qs[:, 0, 0], np.trace(qs, axis1=1, axis2=2)
    se = lambda x: x.std(ddof=1) / math.sqrt(N)  # noqa: E731
    assert abs(q11.mean()) <= 4 * se(q11)
    assert abs(np.mean(q11**2) - 1 / 3) <= 4 * se(q11**2)
    assert abs(tr.mean()) <= 4 * se(tr)
    assert abs(np.mean(tr**2) - 1.0) <= 4 * se(tr**2)


def test_without_sign_fix_the_test_above_would_fail() -> None:
    rng = np.random.default_rng(0)
    q11 = np.array([np.linalg.qr(rng.standard_normal((3, 3)))[0][0, 0] for _ in range(4000)])
    assert abs(q11.mean()) > 4 * q11.std(ddof=1) / math.sqrt(4000)


@pytest.mark.parametrize(
    "density, lo, hi",
    [
        (semicircle_density, -2.0, 2.0),
        (lambda x: marchenko_pastur_density(x, 0.25), 0.25, 2.25),
        (path_laplacian(3).limit_density, 0.0, 4.0),
    ],
)
def test_limit_densities_integrate_to_one(density, lo, hi) -> None:
    val, err = scipy.integrate.quad(lambda x: float(density(np.array(x))), lo, hi, limit=200)
    assert abs(val - 1.0) < 1e-6 + 10 * err


def _semicircle_cdf(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, -2, 2)
    return 0.5 + x * np.sqrt(4 - x * x) / (4 * math.pi) + np.arcsin(x / 2) / math.pi


def test_goe_follows_the_semicircle() -> None:
    ks = goe(1000, np.random.default_rng(1))
    A = ks.matrix
    assert np.array_equal(A, A.T)
    lam = ks.eigenvalues
    emp = np.arange(1, lam.size + 1) / lam.size
    # eigenvalue rigidity: sup|F_n − F| = O(log n / n) ≈ 0.007 at n = 1000; 0.03 is a 4× margin
    assert np.max(np.abs(emp - _semicircle_cdf(lam))) < 0.03
    assert -2.2 < lam[0] and lam[-1] < 2.2  # edges at ±2 with n^{-2/3} fluctuations
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(A), atol=1e-12)


def test_spiked_wigner_outliers_at_theta_plus_inverse() -> None:
    n = 1000
    ks = spiked_wigner(n, [3.0, -2.0, 0.5], np.random.default_rng(2))
    np.testing.assert_allclose(ks.outliers, [-2.5, 3.0 + 1 / 3.0])
    # outlier fluctuations are O(n^{-1/2}) (Capitaine, Donati-Martin & Féral 2009): 5·√(2/n) ≈ 0.22
    tol = 5 * math.sqrt(2 / n)
    assert abs(ks.eigenvalues[-1] - (3 + 1 / 3)) < tol
    assert abs(ks.eigenvalues[0] - (-2.5)) < tol
    # the sub-critical spike (θ = 0.5 ≤ 1) produces no outlier: the next eigenvalues stick to the edges ±2
    assert abs(ks.eigenvalues[-2] - 2.0) < 0.1 and abs(ks.eigenvalues[1] + 2.0) < 0.1


def test_wishart_marchenko_pastur() -> None:
    ks = wishart(400, 1600, np.random.default_rng(3))
    a, b = ks.support
    assert (a, b) == pytest.approx((0.25, 2.25)) and ks.atom_at_zero == 0.0
    lam = ks.eigenvalues
    assert a - 0.1 < lam[0] and lam[-1] < b + 0.1
    grid = np.linspace(a, b, 20001)
    dens = ks.limit_density(grid)
    F = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    emp = np.searchsorted(lam, grid, side="right") / lam.size
    assert np.max(np.abs(emp - F)) < 0.03
    assert wishart(30, 10, np.random.default_rng(4)).atom_at_zero == pytest.approx(2 / 3)


def test_rotated_diagonal_has_prescribed_spectrum() -> None:
    lam = np.concatenate([-np.geomspace(1e-4, 3.0, 40), np.zeros(5), np.geomspace(1e-3, 10.0, 55)])
    ks = rotated_diagonal(lam, np.random.default_rng(5))
    assert np.array_equal(ks.matrix, ks.matrix.T)
    # forming QΛQᵀ and eigvalsh each commit O(n·eps·max|λ|) errors
    np.testing.assert_allclose(np.linalg.eigvalsh(ks.matrix), np.sort(lam), atol=10 * lam.size * EPS * 10.0)
    np.testing.assert_array_equal(ks.eigenvalues, np.sort(lam))


def test_path_laplacian_closed_form() -> None:
    ks = path_laplacian(64)
    A = ks.matrix
    np.testing.assert_array_equal(A.sum(axis=1), np.zeros(64))
    assert A[0, 0] == 1.0 and A[5, 5] == 2.0 and A[5, 6] == -1.0
    np.testing.assert_allclose(np.linalg.eigvalsh(A), ks.eigenvalues, atol=10 * 64 * EPS * 4)
    assert ks.operator().symmetric


def test_error_inputs() -> None:
    rng = np.random.default_rng(0)
    cases = [
        (lambda: goe(0, rng), ValueError, "n must be a positive int, got 0"),
        (lambda: goe(5, 0), TypeError, "rng must be a numpy.random.Generator, got int"),
        (lambda: haar_orthogonal(3, None), TypeError, "rng must be a numpy.random.Generator, got NoneType"),
        (lambda: spiked_wigner(3, [1.0, 2.0, 3.0], rng), ValueError, "thetas must be 1 to n-1 finite numbers"),
        (lambda: wishart(5, 0, rng), ValueError, "n_samples must be a positive int, got 0"),
        (lambda: rotated_diagonal([np.nan], rng), ValueError, "eigenvalues must be a non-empty finite array"),
        (lambda: path_laplacian(2.5), ValueError, "n must be a positive int, got 2.5"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
