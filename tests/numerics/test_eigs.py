"""Tests for numerics.eigs: agreement with scipy.sparse.linalg.eigsh on known spectra, residual certificates."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

import numerics.eigs as eigs_mod
from numerics.eigs import eigs
from numerics.operators import DenseOperator, DiagonalOperator, LinearOperator
from numerics.testing import goe, path_laplacian, rotated_diagonal, spiked_wigner, wishart

EPS = np.finfo(np.float64).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_doctests() -> None:
    assert doctest.testmod(eigs_mod, raise_on_error=False).failed == 0


MATRICES = {
    "goe": lambda: goe(300, np.random.default_rng(0)),
    "spiked": lambda: spiked_wigner(300, [3.0, -2.5], np.random.default_rng(1)),
    "wishart": lambda: wishart(200, 400, np.random.default_rng(2)),
    "path": lambda: path_laplacian(120),
    "indefinite": lambda: rotated_diagonal(np.linspace(-4.0, 3.0, 150) ** 3, np.random.default_rng(3)),
}


@pytest.mark.parametrize("name", sorted(MATRICES))
@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_agrees_with_eigsh(name: str, which: str) -> None:
    ks = MATRICES[name]()
    k = 3
    res = eigs(ks.operator(), k, which=which, generator=gen(0))
    assert res.converged.all()
    ref = spla.eigsh(ks.operator().to_scipy(), k=k, which=which, return_eigenvectors=False, tol=0)
    ref = ref[np.argsort(-ref) if which == "LA" else np.argsort(ref) if which == "SA" else np.argsort(-np.abs(ref))]
    # symmetric A: every Ritz value is within its residual norm of an eigenvalue (Parlett 1998, ch. 4); eigsh
    # is accurate to ~n·eps·‖A‖. Both bounds together, with a factor 10.
    tol = 10 * (res.residuals.max() + ks.n * EPS * np.abs(ks.eigenvalues).max())
    np.testing.assert_allclose(res.eigenvalues, ref, rtol=0, atol=tol)
    # and the exact eigenvalues (closed form or eigvalsh)
    exact = ks.eigenvalues
    want = {"LA": exact[::-1][:k], "SA": exact[:k], "LM": exact[np.argsort(-np.abs(exact))][:k]}[which]
    np.testing.assert_allclose(res.eigenvalues, want, rtol=0, atol=tol)


def test_residuals_are_true_residuals_and_vectors_orthonormal() -> None:
    ks = spiked_wigner(200, [4.0], np.random.default_rng(4))
    res = eigs(ks.operator(), 2, which="LA", generator=gen(1))
    X = res.eigenvectors.numpy()
    R = ks.matrix @ X - X * res.eigenvalues
    np.testing.assert_allclose(res.residuals, np.linalg.norm(R, axis=0), rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(X.T @ X, np.eye(2), atol=100 * 200 * EPS)
    assert (res.residuals <= res.tol * res.norm_estimate).all()
    assert res.matvecs > 0 and res.which == "LA"


def test_block_size_and_clusters() -> None:
    # a 3-fold cluster at the top: block size 3 resolves it
    lam = np.concatenate([np.linspace(-1, 1, 97), [5.0, 5.0, 5.0]])
    op = DiagonalOperator(lam)
    res = eigs(op, 3, which="LA", generator=gen(2), block_size=3)
    np.testing.assert_allclose(res.eigenvalues, [5.0, 5.0, 5.0], atol=1e-10)


def test_small_n_spans_whole_space() -> None:
    lam = np.array([3.0, -7.0, 1.0, 2.0, 0.5])
    res = eigs(DiagonalOperator(lam), 2, which="LM", generator=gen(3))
    np.testing.assert_allclose(res.eigenvalues, [-7.0, 3.0], atol=1e-12)


def test_non_convergence_is_reported_not_hidden(caplog: pytest.LogCaptureFixture) -> None:
    ks = path_laplacian(200)  # tiny relative gaps at both ends: slow convergence
    with caplog.at_level("WARNING", logger="numerics.eigs"):
        res = eigs(ks.operator(), 1, which="LA", generator=gen(4), max_restarts=0, max_basis=10)
    assert not res.converged.all() and res.restarts == 0
    assert "not converged" in caplog.text


def test_float32_operator() -> None:
    ks = goe(150, np.random.default_rng(5))
    res = eigs(ks.operator(dtype=torch.float32), 2, which="LA", generator=gen(5))
    assert res.converged.all()
    # float32 products: accuracy ~ √n·eps32·‖A‖ (the default tolerance is 100× that)
    np.testing.assert_allclose(res.eigenvalues, ks.eigenvalues[::-1][:2], atol=res.tol * res.norm_estimate * 10)


class _NaNOp(LinearOperator):
    def __init__(self) -> None:
        super().__init__((10, 10), torch.float64, "cpu", True)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return V * float("nan")


def test_error_inputs() -> None:
    op = DiagonalOperator(np.arange(10.0))
    cases = [
        (lambda: eigs(DenseOperator(np.ones((3, 4))), 1, generator=gen(0)), ValueError, "eigs needs a square operator"),
        (lambda: eigs(DenseOperator(np.triu(np.ones((3, 3)))), 1, generator=gen(0)), ValueError,
         "eigs needs an operator declared symmetric"),
        (lambda: eigs(op, 10, generator=gen(0)), ValueError, r"k must be an integer in \[1, 9\], got k=10"),
        (lambda: eigs(op, 1, which="LR", generator=gen(0)), ValueError, "which must be one of .*got which='LR'"),
        (lambda: eigs(op, 1, generator=None), TypeError, "generator must be a torch.Generator, got NoneType"),
        (lambda: eigs(op, 1, generator=gen(0), block_size=0), ValueError, r"block_size must be an integer in \[1, 10\], got block_size=0"),
        (lambda: eigs(op, 2, generator=gen(0), max_basis=2), ValueError, r"max_basis must be an integer in \[4, 10\], got max_basis=2"),
        (lambda: eigs(op, 1, generator=gen(0), tol=-1.0), ValueError, "tol must be a finite number > 0, got tol=-1.0"),
        (lambda: eigs(_NaNOp(), 1, generator=gen(0)), ValueError, "operator product is not finite"),
        (lambda: eigs(op, 1.0, generator=gen(0)), TypeError, "k must be an integer, got k=1.0"),
        (lambda: eigs(op, 1, generator=gen(0), max_restarts=-1), ValueError, "max_restarts must be an integer >= 0"),
        (lambda: eigs(op, 1, generator=gen(0), accumulate_dtype=torch.int32), TypeError,
         "accumulate_dtype must be torch.float32, torch.float64 or None, got accumulate_dtype=torch.int32"),
        (lambda: eigs(DiagonalOperator(np.ones(1)), 1, generator=gen(0)), ValueError, "eigs needs n >= 2"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
