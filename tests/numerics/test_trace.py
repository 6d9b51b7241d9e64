"""Tests for numerics.trace: Hutchinson variance formulas (statistically), Hutch++ exactness and accuracy."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import numerics.trace as trace_mod
from numerics.operators import DenseOperator, DiagonalOperator
from numerics.testing import goe, rotated_diagonal
from numerics.trace import hutchinson, hutchinson_variance, hutchpp


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_doctests() -> None:
    assert doctest.testmod(trace_mod, raise_on_error=False).failed == 0


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_variance_matches_formula(probe: str) -> None:
    # A non-diagonal symmetric matrix with a sizeable diagonal, so the two formulas differ clearly.
    rng = np.random.default_rng(0)
    A = goe(30, rng).matrix + np.diag(rng.uniform(-2, 2, 30))
    N = 4000
    est = hutchinson(DenseOperator(A), n_probes=N, generator=gen(1), probe=probe, block_size=1000)
    x = est.samples
    sigma2 = hutchinson_variance(A, probe)
    s2 = x.var(ddof=1)
    # Var(s²) ≈ (μ₄ − σ⁴)/N for the sample variance; μ₄ estimated from the samples. 4 standard errors.
    mu4 = np.mean((x - x.mean()) ** 4)
    assert abs(s2 - sigma2) <= 4 * math.sqrt((mu4 - s2**2) / N), (s2, sigma2)
    # the estimator is unbiased: tr A within 4 standard errors of the mean
    assert abs(est.estimate - np.trace(A)) <= 4 * est.stderr
    assert est.variance == pytest.approx(s2 / N) and est.matvecs == N
    # and the two probe laws really differ here (the test discriminates between the formulas)
    assert abs(hutchinson_variance(A, "gaussian") - hutchinson_variance(A, "rademacher")) > 8 * math.sqrt(
        (mu4 - s2**2) / N
    )


def test_hutchinson_exact_on_diagonal_with_rademacher() -> None:
    d = np.array([3.0, -1.0, 0.5, 2.0])
    est = hutchinson(DiagonalOperator(d), n_probes=5, generator=gen(0))
    assert est.estimate == pytest.approx(d.sum(), abs=1e-14) and est.stderr == 0.0


def test_hutchinson_block_size_does_not_change_the_estimate() -> None:
    A = DenseOperator(goe(40, np.random.default_rng(2)).matrix)
    a = hutchinson(A, n_probes=12, generator=gen(3))
    b = hutchinson(A, n_probes=12, generator=gen(3), block_size=5)
    np.testing.assert_allclose(a.samples, b.samples, rtol=0, atol=1e-12)
    one = hutchinson(A, n_probes=1, generator=gen(3))
    assert math.isinf(one.stderr)


def test_hutchpp_exact_for_low_rank() -> None:
    # rank 4 ≤ s = 10: Q spans range(A), the remainder is 0 and the estimate is exact up to rounding
    lam = np.concatenate([[5.0, -3.0, 2.0, 7.0], np.zeros(56)])
    ks = rotated_diagonal(lam, np.random.default_rng(4))
    est = hutchpp(ks.operator(), n_matvecs=30, generator=gen(5))
    assert abs(est.estimate - lam.sum()) < 1e-10
    assert est.matvecs == 30 and est.stderr < 1e-10


def test_hutchpp_beats_hutchinson_on_decaying_spectrum() -> None:
    # Meyer et al. 2021: for fast-decaying spectra Hutch++ error ≪ Hutchinson error at equal budget.
    n = 300
    lam = np.sign(np.random.default_rng(6).standard_normal(n)) * np.arange(1, n + 1, dtype=float) ** -2.0
    ks = rotated_diagonal(lam, np.random.default_rng(7))
    op = ks.operator()
    budget = 60
    errs_pp, errs_h = [], []
    for seed in range(10):
        pp = hutchpp(op, n_matvecs=budget, generator=gen(100 + seed))
        h = hutchinson(op, n_probes=budget, generator=gen(200 + seed))
        errs_pp.append(pp.estimate - lam.sum())
        errs_h.append(h.estimate - lam.sum())
        # the conditional standard error covers the error (4 s.e.; the exact part has no error)
        assert abs(pp.estimate - lam.sum()) <= 4 * pp.stderr + 1e-12
    assert np.sqrt(np.mean(np.square(errs_pp))) < 0.25 * np.sqrt(np.mean(np.square(errs_h)))


def test_error_inputs() -> None:
    op = DiagonalOperator(np.ones(3))
    cases = [
        (lambda: hutchinson(op, n_probes=0, generator=gen(0)), ValueError, "n_probes must be an integer >= 1, got n_probes=0"),
        (lambda: hutchinson(op, n_probes=2, generator=None), TypeError, "generator must be a torch.Generator, got NoneType"),
        (lambda: hutchinson(op, n_probes=2, generator=gen(0), probe="x"), ValueError, "probe must be one of"),
        (lambda: hutchinson(op, n_probes=2, generator=gen(0), block_size=0), ValueError, "block_size must be an integer >= 1, got block_size=0"),
        (lambda: hutchinson(DenseOperator(np.ones((2, 3))), n_probes=2, generator=gen(0)), ValueError,
         r"a trace needs a square operator, got shape \(2, 3\)"),
        (lambda: hutchpp(op, n_matvecs=2, generator=gen(0)), ValueError, "n_matvecs must be an integer >= 3, got n_matvecs=2"),
        (lambda: hutchinson_variance(np.ones((2, 3))), ValueError, r"matrix must be square, got shape \(2, 3\)"),
        (lambda: hutchinson_variance(np.eye(2), n_probes=1.5), TypeError, "n_probes must be an integer, got n_probes=1.5"),
        (lambda: hutchinson_variance(np.eye(2), probe="x"), ValueError, r"probe must be one of \('rademacher', 'gaussian'\), got probe='x'"),
        (lambda: hutchinson(DenseOperator(np.full((2, 2), np.inf)), n_probes=1, generator=gen(0)), ValueError,
         "matrix must be finite"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_non_finite_products_raise() -> None:
    class Bad(DiagonalOperator):
        def _matmat(self, V: torch.Tensor) -> torch.Tensor:
            return V * float("nan")

    with pytest.raises(ValueError, match="operator product is not finite"):
        hutchinson(Bad(np.ones(3)), n_probes=2, generator=gen(0))
