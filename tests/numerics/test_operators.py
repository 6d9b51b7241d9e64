"""Tests for numerics.operators: dense/diagonal/sum/scaled/deflated operators against explicit matrices."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

import numerics.operators as ops_mod
from numerics.operators import (
    DeflatedOperator,
    DenseOperator,
    DiagonalOperator,
    LinearOperator,
    ScaledOperator,
    SumOperator,
    aslinearoperator,
)
from numerics.testing import haar_orthogonal, rotated_diagonal

EPS = np.finfo(np.float64).eps


def test_doctests() -> None:
    assert doctest.testmod(ops_mod, raise_on_error=False).failed == 0


def test_dense_matches_matrix_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 5))
    op = DenseOperator(A)
    assert op.shape == (7, 5) and not op.symmetric
    V = rng.standard_normal((5, 3))
    out = op.matmat(V)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, A @ V, rtol=0, atol=10 * 5 * EPS * np.abs(A).max() * np.abs(V).max())
    out_t = op.matmat(torch.as_tensor(V))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_array_equal(out_t.numpy(), out)


def test_dense_symmetry_detection_and_declaration() -> None:
    rng = np.random.default_rng(1)
    G = rng.standard_normal((6, 6))
    assert DenseOperator(G + G.T).symmetric
    assert not DenseOperator(G).symmetric
    assert not DenseOperator(G + G.T, symmetric=False).symmetric
    # symmetric up to rounding of a product: accepted (tolerance 10·n·eps·max|A|)
    X = rng.standard_normal((50, 6))
    assert DenseOperator(X.T @ X, symmetric=True).symmetric
    with pytest.raises(ValueError, match=r"symmetric=True but max\|A - A\^T\|"):
        DenseOperator(G, symmetric=True)
    with pytest.raises(ValueError, match=r"symmetric=True but matrix is not square: shape \(3, 4\)"):
        DenseOperator(np.zeros((3, 4)), symmetric=True)


def test_dense_float32_and_integer_inputs() -> None:
    op = DenseOperator(np.eye(3, dtype=np.float32))
    assert op.dtype == torch.float32
    op = DenseOperator(np.eye(3, dtype=np.int64))
    assert op.dtype == torch.float64 and op.symmetric
    op = DenseOperator(torch.eye(3), dtype=torch.float64)
    assert op.matrix.dtype == torch.float64


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (np.zeros(3), ValueError, r"matrix must be 2-D, got shape \(3,\)"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "matrix must be finite"),
        ("abc", TypeError, "matrix must be a torch.Tensor or numpy.ndarray, got str"),
        (np.zeros((2, 2), dtype=complex), TypeError, "matrix must be real"),
    ],
)
def test_dense_bad_inputs(bad: object, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        DenseOperator(bad)


def test_dense_bad_dtype() -> None:
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64, got dtype=torch.int32"):
        DenseOperator(np.eye(2), dtype=torch.int32)


def test_diagonal() -> None:
    d = np.array([1.0, -2.0, 0.5])
    op = DiagonalOperator(d)
    assert op.symmetric and op.shape == (3, 3)
    np.testing.assert_array_equal(op.to_dense().numpy(), np.diag(d))
    np.testing.assert_array_equal(op.matvec(np.ones(3)), d)
    with pytest.raises(ValueError, match=r"diag must be a non-empty 1-D array, got shape \(2, 2\)"):
        DiagonalOperator(np.eye(2))
    with pytest.raises(ValueError, match="diag must be finite"):
        DiagonalOperator(np.array([1.0, np.inf]))


def test_sum_scaled_and_arithmetic() -> None:
    rng = np.random.default_rng(2)
    G = rng.standard_normal((5, 5))
    A, B = G + G.T, np.diag(rng.standard_normal(5))
    a, b = DenseOperator(A), DiagonalOperator(np.diag(B))
    tol = 10 * 5 * EPS * (np.abs(A).max() + np.abs(B).max()) * 3
    cases = {
        "a+b": (a + b, A + B),
        "2a": (2 * a, 2 * A),
        "a*0.5": (a * 0.5, 0.5 * A),
        "-a": (-a, -A),
        "a-b": (a - b, A - B),
        "sum3": (SumOperator(a, b, a), 2 * A + B),
    }
    for name, (op, ref) in cases.items():
        assert op.symmetric, name
        np.testing.assert_allclose(op.to_dense().numpy(), ref, rtol=0, atol=tol, err_msg=name)
    assert isinstance(2 * a, ScaledOperator) and isinstance(a + b, SumOperator)
    c = DenseOperator(rng.standard_normal((5, 5)))
    assert not (a + c).symmetric


def test_sum_dtype_promotion_and_errors() -> None:
    a32 = DiagonalOperator(np.ones(3, dtype=np.float32))
    a64 = DiagonalOperator(np.ones(3))
    assert (a32 + a64).dtype == torch.float64
    with pytest.raises(ValueError, match=r"operators\[1\] has shape \(4, 4\), expected \(3, 3\)"):
        SumOperator(a64, DiagonalOperator(np.ones(4)))
    with pytest.raises(ValueError, match="SumOperator needs at least one operator"):
        SumOperator()
    with pytest.raises(TypeError, match=r"operators\[1\] must be a LinearOperator, got ndarray"):
        SumOperator(a64, np.eye(3))
    with pytest.raises(ValueError, match="scale must be a finite number, got scale=nan"):
        ScaledOperator(a64, float("nan"))
    with pytest.raises(TypeError, match="scale must be a real number, got scale='2'"):
        ScaledOperator(a64, "2")
    with pytest.raises(TypeError):
        a64 * np.eye(3)  # matrix "scaling" is not defined: NotImplemented → TypeError


def test_deflated_replaces_deflated_eigenvalues_by_zero() -> None:
    rng = np.random.default_rng(3)
    lam = np.array([5.0, -3.0, 1.0, 0.5, -0.25, 2.0])
    Q = haar_orthogonal(6, rng)
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)
    op = DeflatedOperator(DenseOperator(A), lam[:2], Q[:, :2])
    assert op.symmetric
    got = np.linalg.eigvalsh(op.to_dense().numpy())
    want = np.sort(np.concatenate([[0.0, 0.0], lam[2:]]))
    # forming A and the deflation each cost O(n·eps·max|λ|) per entry; the eigenvalues move by
    # ‖E‖₂ ≤ n·max|E_ij| (factor 100 for the constants)
    np.testing.assert_allclose(got, want, rtol=0, atol=100 * 6 * EPS * 5.0)


def test_deflated_errors() -> None:
    A = DiagonalOperator(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="eigenvectors must be orthonormal"):
        DeflatedOperator(A, [1.0], np.array([[2.0], [0.0], [0.0]]))
    with pytest.raises(ValueError, match=r"eigenvectors must have shape \(3, 2\) to match 2 eigenvalues, got \(3, 1\)"):
        DeflatedOperator(A, [1.0, 2.0], np.array([[1.0], [0.0], [0.0]]))
    with pytest.raises(ValueError, match="operator must be declared symmetric for deflation"):
        DeflatedOperator(DenseOperator(np.triu(np.ones((3, 3)))), [1.0], np.eye(3)[:, :1])


def test_aslinearoperator() -> None:
    op = DiagonalOperator(np.ones(2))
    assert aslinearoperator(op) is op
    assert isinstance(aslinearoperator(np.eye(2)), DenseOperator)
    assert isinstance(aslinearoperator(torch.eye(2)), DenseOperator)
    with pytest.raises(ValueError, match=r"an array operator must be 2-D, got shape \(2,\)"):
        aslinearoperator(np.ones(2))
    with pytest.raises(TypeError, match="cannot interpret list as a linear operator"):
        aslinearoperator([[1.0]])
    with pytest.raises(ValueError, match="symmetric=False conflicts"):
        aslinearoperator(op, symmetric=False)


def test_to_scipy_eigsh_oracle() -> None:
    lam = np.linspace(-3, 4, 40)
    ks = rotated_diagonal(lam, np.random.default_rng(4))
    sop = DenseOperator(ks.matrix).to_scipy()
    top = spla.eigsh(sop, k=2, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(top), lam[-2:], atol=1e-10)


def test_matmat_validation_is_inherited() -> None:
    op = DenseOperator(np.eye(3))
    assert isinstance(op, LinearOperator)
    with pytest.raises(ValueError, match=r"V must have shape \(3, k\), got \(2, 1\)"):
        op.matmat(np.ones((2, 1)))


def test_numpy_scalar_scales() -> None:
    op = np.float64(3.0) * DiagonalOperator(np.array([1.0, 2.0]))
    assert isinstance(op, ScaledOperator)
    np.testing.assert_array_equal(op.matvec(np.ones(2)), [3.0, 6.0])


@pytest.mark.parametrize(
    "shape, dtype, exc, msg",
    [
        ([3, 3], torch.float64, TypeError, r"shape must be a tuple of two integers, got shape=\[3, 3\]"),
        ((3, 0), torch.float64, ValueError, r"shape\[1\] must be an integer >= 1, got shape\[1\]=0"),
        ((3.0, 3), torch.float64, TypeError, r"shape\[0\] must be an integer, got shape\[0\]=3.0"),
        ((3, 3), torch.float16, TypeError, "dtype must be torch.float32 or torch.float64, got dtype=torch.float16"),
    ],
)
def test_linear_operator_base_validation(shape: object, dtype: torch.dtype, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        LinearOperator(shape, dtype)  # type: ignore[arg-type]
