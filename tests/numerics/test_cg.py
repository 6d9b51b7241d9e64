"""numerics.cg: conjugate gradients against dense solves; negative curvature, damping and trust regions."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import numerics.cg as cg_mod
from numerics.cg import cg, damped_cg
from numerics.operators import DenseOperator, DiagonalOperator
from numerics.testing import haar_orthogonal

EPS = np.finfo(np.float64).eps


def _spd(n: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q = haar_orthogonal(n, rng)
    lam = np.geomspace(1.0, cond, n)
    return (Q * lam) @ Q.T


def test_doctests() -> None:
    res = doctest.testmod(cg_mod, raise_on_error=False)
    assert res.attempted > 0 and res.failed == 0


@pytest.mark.parametrize("n,cond", [(5, 10.0), (40, 1e3), (120, 1e4)])
def test_spd_solution_matches_dense_solve(n: int, cond: float) -> None:
    A = _spd(n, cond, n)
    b = np.random.default_rng(1).standard_normal(n)
    # attainable relative residual of CG in float64 is O(κ·eps) (Greenbaum 1997, ch. 7): ask for 100× that
    rtol = max(1e-12, 100 * cond * EPS)
    r = cg(DenseOperator(A), torch.from_numpy(b), rtol=rtol, max_iter=5 * n)
    x_ref = np.linalg.solve(A, b)
    assert r.status == "converged" and r.negative_curvature_events == 0
    # forward error ≤ κ · (relative residual + rounding): the residual is measured, the bound derived from it
    rel_res = r.relative_residual
    assert rel_res <= rtol * 1.01 + 1e3 * n * EPS * cond
    assert np.linalg.norm(r.x.numpy() - x_ref) <= cond * (rel_res + 1e3 * n * EPS) * np.linalg.norm(x_ref)
    # the reported model value is q(x) = ½xᵀAx − bᵀx, = −½ bᵀx at the solution
    assert r.model_value == pytest.approx(-0.5 * b @ x_ref, rel=1e-9)


def test_exact_in_n_steps_and_monotone_model() -> None:
    """In exact arithmetic CG terminates in at most n steps: a 6×6 well-conditioned SPD system in ≤ 6."""
    A = _spd(6, 4.0, 3)
    r = cg(DenseOperator(A), torch.ones(6, dtype=torch.float64), rtol=1e-13)
    assert r.status == "converged" and r.iterations <= 6


def test_negative_curvature_is_reported_not_hidden() -> None:
    A = DiagonalOperator(np.array([3.0, -2.0, 1.0]))
    r = cg(A, torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    assert r.status == "negative_curvature" and r.negative_curvature_events == 1
    assert r.min_curvature < 0 and not r.converged


def test_damped_cg_solves_the_damped_system() -> None:
    d = np.array([3.0, -2.0, 1.0, 0.5])
    b = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    r = damped_cg(DiagonalOperator(d), b, rtol=1e-12)
    assert r.status == "converged" and r.attempts >= 2 and r.negative_curvature_events >= 1
    lam = r.damping
    assert lam > 2.0  # the damped operator must be positive definite: λ > −λ_min = 2
    np.testing.assert_allclose(r.x.numpy(), b.numpy() / (d + lam), rtol=1e-10)
    assert r.min_curvature <= 0.0  # the curvature of A itself that triggered the damping


def test_steihaug_stops_on_the_trust_region_boundary() -> None:
    A = DiagonalOperator(np.array([1.0, -1.0]))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    r = cg(A, b, trust_radius=0.5)
    assert r.status in ("negative_curvature", "trust_region_boundary")
    assert float(torch.linalg.vector_norm(r.x)) == pytest.approx(0.5, rel=1e-12)
    # the boundary point lowers the model below its value at 0
    assert r.model_value < 0
    # a convex problem whose solution lies outside the ball: boundary too
    r2 = cg(DiagonalOperator(np.array([1.0, 1.0])), b, trust_radius=0.5)
    assert r2.status == "trust_region_boundary" and float(torch.linalg.vector_norm(r2.x)) == pytest.approx(0.5)
    # and inside the ball: the unconstrained solution
    r3 = cg(DiagonalOperator(np.array([1.0, 1.0])), b, trust_radius=10.0, rtol=1e-14)
    assert r3.status == "converged" and np.allclose(r3.x.numpy(), [1.0, 1.0])


def test_zero_rhs_and_warm_start() -> None:
    A = DenseOperator(_spd(4, 10.0, 0))
    r = cg(A, torch.zeros(4, dtype=torch.float64))
    assert r.status == "zero_rhs" and r.matvecs == 0 and float(r.x.abs().max()) == 0.0
    b = torch.arange(1.0, 5.0, dtype=torch.float64)
    exact = torch.linalg.solve(A.to_dense().to(torch.float64), b)
    r = cg(A, b, x0=exact, rtol=1e-8)
    assert r.status == "converged" and r.iterations == 0


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda A: cg(A, torch.ones(3)), ValueError, r"b must be a vector of length 4"),
        (lambda A: cg(A, [1.0] * 4), TypeError, "b must be a torch.Tensor"),
        (lambda A: cg(A, torch.full((4,), math.nan)), ValueError, "b must be finite"),
        (lambda A: cg(A, torch.ones(4), rtol=-1.0), ValueError, "rtol must be a finite number >= 0, got rtol=-1.0"),
        (lambda A: cg(A, torch.ones(4), max_iter=0), ValueError, "max_iter must be an integer >= 1, got max_iter=0"),
        (lambda A: cg(A, torch.ones(4), damping=-1.0), ValueError, "damping must be a finite number >= 0"),
        (lambda A: cg(A, torch.ones(4), trust_radius=0.0), ValueError, "trust_radius must be a finite number > 0"),
        (lambda A: cg(A, torch.ones(4), trust_radius=1.0, x0=torch.ones(4)), ValueError, "x0 must be zero"),
        (lambda A: cg(DenseOperator(np.triu(np.ones((4, 4)))), torch.ones(4)), ValueError, "declared symmetric"),
        (lambda A: damped_cg(A, torch.ones(4), max_attempts=0), ValueError, "max_attempts must be an integer >= 1"),
    ],
)
def test_error_inputs(call, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        call(DenseOperator(_spd(4, 10.0, 0)))
