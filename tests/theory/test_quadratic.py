"""The exact quadratic oracle: Schur complement vs inverse vs direct minimisation, LDLᵀ fast path vs the
bisection reference, singular and indefinite H, the cone over the ellipsoid (exact MC vs cvxpy)."""

from __future__ import annotations

import numpy as np
import pytest

from numerics.testing import haar_orthogonal
from tests.theory.tolerances import cvx_point_tol
from theory.quadratic import QuadraticModel


def _rotated(lam, rng):
    Q = haar_orthogonal(lam.size, rng)
    H = (Q * lam) @ Q.T
    return 0.5 * (H + H.T)


@pytest.fixture(scope="module")
def pd_model():
    rng = np.random.default_rng(0)
    n = 120
    return QuadraticModel(_rotated(rng.exponential(1.0, n), rng), 0.1 * rng.laplace(size=n))


def test_schur_equals_inverse_and_direct_minimisation(pd_model):
    m = pd_model
    rng = np.random.default_rng(1)
    for k in (0, 7, 60, 119):
        T = m.magnitude_support(k)
        schur = m.compensated_increase(T)
        inv = m.compensated_increase(T, solver="inverse")
        w = m.compensated_weights(T)
        assert np.all(w[~T] == 0)
        direct = m.loss_increase(w)
        # tolerance: solves of a matrix with condition ≲ 1e4, c·n·eps·κ relative
        assert schur == pytest.approx(inv, rel=1e-8, abs=1e-12)
        assert schur == pytest.approx(direct, rel=1e-8, abs=1e-12)
        # any other compensation is worse
        w2 = w.copy()
        w2[T] += 1e-3 * rng.standard_normal(int(T.sum()))
        assert m.loss_increase(w2) >= direct - 1e-12
        assert m.uncompensated_increase(T) >= schur - 1e-12


def test_ldl_curve_matches_schur_and_bisection(pd_model):
    m = pd_model
    curve = m.magnitude_curve()
    for k in (0, 3, 50, 100, 120):
        T = m.magnitude_support(k)
        assert curve.compensated[k] == pytest.approx(m.compensated_increase(T), rel=1e-8, abs=1e-13)
        assert curve.uncompensated[k] == pytest.approx(m.uncompensated_increase(T), rel=1e-10, abs=1e-13)
    assert np.all(np.diff(curve.compensated) <= 1e-12)  # non-increasing for PSD H
    for eps in (1e-3, 0.05, 1.0):
        a, b = m.magnitude_threshold(eps), m.magnitude_threshold(eps, solver="bisect")
        assert a.kept_count == b.kept_count and a.monotone
        assert a.delta <= eps and (a.kept_count == 0 or m.compensated_increase(m.magnitude_support(a.kept_count - 1)) > eps)
        assert b.evaluations <= int(np.ceil(np.log2(m.N))) + 2


def test_singular_psd_uses_pseudo_inverse():
    rng = np.random.default_rng(2)
    n = 80
    lam = np.concatenate([np.zeros(n // 2), rng.exponential(2.0, n - n // 2)])
    m = QuadraticModel(_rotated(lam, rng), 0.1 * rng.laplace(size=n))
    curve = m.magnitude_curve()
    for k in (10, 30, 39, 45, 70):
        T = m.magnitude_support(k)
        ref = m.compensated_increase(T)
        assert curve.compensated[k] == pytest.approx(ref, abs=1e-9 * curve.compensated[0])
        assert m.loss_increase(m.compensated_weights(T)) == pytest.approx(ref, abs=1e-9 * curve.compensated[0])
    # once |T| reaches the rank, the kept coordinates span range(H): zero increase
    assert abs(curve.compensated[n // 2 + 2]) <= 1e-9 * curve.compensated[0]
    with pytest.raises(ValueError, match="singular"):
        m.compensated_increase(m.magnitude_support(10), solver="inverse")


def test_indefinite_stationary_value_and_median_threshold():
    rng = np.random.default_rng(3)
    n = 150
    lam = rng.exponential(1.0, n)
    lam[rng.choice(n, 8, replace=False)] *= -1
    m = QuadraticModel(_rotated(lam, rng), 0.1 * rng.laplace(size=n))
    curve = m.magnitude_curve()
    for k in (20, 80, 140):
        T = m.magnitude_support(k)
        ref = m.compensated_increase(T)
        assert curve.compensated[k] == pytest.approx(ref, rel=1e-6, abs=1e-10)
        # stationary: the gradient of the loss in the kept coordinates vanishes
        w = m.compensated_weights(T)
        grad = m.H @ (w - m.w_star)
        assert np.max(np.abs(grad[T])) <= 1e-8 * np.max(np.abs(m.H)) * np.max(np.abs(m.w_star))
    k_raw = curve.threshold(0.05)
    k_med = curve.threshold(0.05, median_window=5)
    assert 0 <= k_med <= n and 0 <= k_raw <= n
    with pytest.raises(ValueError, match="odd"):
        curve.threshold(0.05, median_window=4)


def test_cone_statistical_dimension_mc_vs_cvxpy():
    rng = np.random.default_rng(4)
    n = 6
    M = rng.standard_normal((n, n))
    H = M @ M.T + 0.5 * np.eye(n)
    m = QuadraticModel(H, rng.standard_normal(n))
    T = m.magnitude_support(2)
    eps = 0.05
    slopes, U = m.cone_basis(T, eps)
    assert slopes.shape == (n - 1,) and np.allclose(U.T @ U, np.eye(n), atol=1e-10)
    # projections agree (cvxpy's CLARABEL at its default tolerances on ‖y − x‖², status checked inside; the
    # distance bound from the gap at this input scale, tests/theory/tolerances.py)
    for scale in (1e-3, 1.0, 1e3):
        x = scale * rng.standard_normal(n)
        np.testing.assert_allclose(m.cone_projection(T, eps, x), m.cone_projection_cvxpy(T, eps, x), rtol=0,
                                   atol=cvx_point_tol(float(np.linalg.norm(x))))
    mc, se = m.cone_statistical_dimension(T, eps, 20000, np.random.default_rng(5))
    cv, se_cv = m.cone_statistical_dimension(T, eps, 60, np.random.default_rng(6), solver="cvxpy")
    # independent estimates: agree within 4 combined standard errors
    assert abs(mc - cv) <= 4 * np.hypot(se, se_cv)
    # the pruned point already feasible: K is the whole space
    assert m.cone_statistical_dimension(m.magnitude_support(n - 1), 1e6, 10, rng) == (float(n), 0.0)


def test_errors():
    with pytest.raises(ValueError, match="square"):
        QuadraticModel(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="symmetric"):
        QuadraticModel(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2))
    with pytest.raises(ValueError, match="length N=2"):
        QuadraticModel(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        QuadraticModel(np.array([[np.nan, 0.0], [0.0, 1.0]]), np.ones(2))
    m = QuadraticModel(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got eps=0\.0"):
        m.magnitude_threshold(0.0)
    with pytest.raises(TypeError, match=r"eps must be a real number, got eps='1' of type str"):
        m.magnitude_threshold("1")
    with pytest.raises(ValueError, match=r"solver must be one of \('ldl', 'bisect'\), got solver='lu'"):
        m.magnitude_threshold(0.1, solver="lu")
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 3\], got k=4"):
        m.magnitude_support(4)
    with pytest.raises(TypeError, match=r"k must be an integer, got k=1\.0 of type float"):
        m.magnitude_support(1.0)
    with pytest.raises(ValueError, match=r"solver must be one of \('schur', 'inverse'\), got solver='qr'"):
        m.compensated_increase([0], solver="qr")
    with pytest.raises(ValueError, match=r"rcond must be a finite number >= 0 and < 1, got rcond=1\.5"):
        QuadraticModel(np.eye(2), np.ones(2), rcond=1.5)
    with pytest.raises(ValueError, match=r"median_window must be odd, got median_window=4"):
        m.magnitude_curve().threshold(0.1, median_window=4)
    pd = QuadraticModel(np.diag([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 2, got n_samples=1"):
        pd.cone_statistical_dimension([2], 0.1, 1, np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator, got int"):
        pd.cone_statistical_dimension([2], 0.1, 10, 0)
    with pytest.raises(ValueError, match=r"solver must be one of \('mc', 'cvxpy'\), got solver='exact'"):
        pd.cone_statistical_dimension([2], 0.1, 10, np.random.default_rng(0), solver="exact")
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got eps=-1\.0"):
        pd.cone_basis([2], -1.0)
    with pytest.raises(ValueError, match="positive definite"):
        QuadraticModel(np.diag([1.0, 0.0]), np.ones(2)).cone_basis([0], 0.1)


def test_schur_complement_is_inverse_of_inverse_block(pd_model):
    """``S = H_PP − H_PT H_TT⁻¹ H_TP`` equals ``[(H⁻¹)_PP]⁻¹`` for invertible ``H``, and gives ``Δ(T) = ½ c_Pᵀ S c_P``."""
    m = pd_model
    Hinv = np.linalg.inv(m.H)
    for k in (1, 30, 119):
        T = m.magnitude_support(k)
        P = ~m._kept_mask(T)
        S = m.schur_complement(T)
        assert S.shape == (P.sum(), P.sum())
        np.testing.assert_allclose(S, S.T, rtol=0, atol=0)
        ref = np.linalg.inv(Hinv[np.ix_(P, P)])
        np.testing.assert_allclose(S, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
        c_P = m.w_star[P]
        assert m.compensated_increase(T) == pytest.approx(0.5 * c_P @ ref @ c_P, rel=1e-8)
