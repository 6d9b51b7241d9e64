"""The linear-operator protocol used throughout :mod:`numerics` and :mod:`nets.hessian`.

An operator is a small contract (after ``scipy.sparse.linalg.LinearOperator`` and curvlinops'
``_torch_base``): ``shape``, ``dtype``, ``device``, a declared symmetry, and a *batched* product
``matmat(V)`` on an ``(n, k)`` block, so that one application serves ``k`` probes. Subclasses implement
only :meth:`LinearOperator._matmat` on a validated ``torch.Tensor``; :meth:`LinearOperator.to_scipy`
exposes the operator to ``scipy.sparse.linalg`` (e.g. ``eigsh``) as an independent oracle.

Numpy inputs are accepted and answered in numpy; torch inputs are answered in torch on the operator's
device, so GPU operators work unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from theory.validation import check_int, check_real

__all__ = [
    "LinearOperator",
    "DenseOperator",
    "DiagonalOperator",
    "SumOperator",
    "ScaledOperator",
    "DeflatedOperator",
    "aslinearoperator",
]


class LinearOperator:
    """Abstract square-or-rectangular linear operator acting on torch tensors.

    Parameters
    ----------
    shape:
        ``(m, n)`` with positive integers.
    dtype:
        ``torch.float32`` or ``torch.float64`` (the dtype of products).
    device:
        The device on which products are computed.
    symmetric:
        Declared symmetry ``A = Aᵀ``. Algorithms that need it (Lanczos, SLQ) check this flag; nothing
        assumes positive definiteness.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        symmetric: bool = False,
    ) -> None:
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise TypeError(f"shape must be a tuple of two integers, got shape={shape!r}")
        rows = check_int("shape[0]", shape[0], minimum=1)
        cols = check_int("shape[1]", shape[1], minimum=1)
        shape = (rows, cols)
        dtype = _float_dtype(dtype, None)
        if symmetric and shape[0] != shape[1]:
            raise ValueError(f"a symmetric operator must be square, got shape {shape!r}")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype: torch.dtype = dtype
        self.device: torch.device = torch.device(device)
        self.symmetric: bool = bool(symmetric)

    # -- the one method subclasses write -------------------------------------------------------------
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Return ``A @ V`` for a validated ``(n, k)`` tensor of this operator's dtype and device."""
        raise NotImplementedError

    # -- public, validated entry points --------------------------------------------------------------
    def matmat(self, V: Any) -> Any:
        """Apply the operator to a block ``V`` of shape ``(n, k)``; numpy in, numpy out."""
        is_numpy = isinstance(V, np.ndarray)
        if not is_numpy and not isinstance(V, torch.Tensor):
            raise TypeError(f"V must be a torch.Tensor or numpy.ndarray, got {type(V).__name__}")
        Vt = torch.as_tensor(V) if is_numpy else V
        if Vt.ndim != 2 or Vt.shape[0] != self.shape[1]:
            raise ValueError(f"V must have shape ({self.shape[1]}, k), got {tuple(Vt.shape)}")
        if not torch.is_floating_point(Vt):
            raise TypeError(f"V must be floating point, got dtype {Vt.dtype}")
        Vt = Vt.to(device=self.device, dtype=self.dtype)
        out = self._matmat(Vt)
        if out.shape != (self.shape[0], Vt.shape[1]):
            raise RuntimeError(
                f"{type(self).__name__}._matmat returned shape {tuple(out.shape)}, "
                f"expected {(self.shape[0], Vt.shape[1])}"
            )
        return out.detach().cpu().numpy() if is_numpy else out

    def matvec(self, v: Any) -> Any:
        """Apply the operator to a single vector of shape ``(n,)``."""
        is_numpy = isinstance(v, np.ndarray)
        if not is_numpy and not isinstance(v, torch.Tensor):
            raise TypeError(f"v must be a torch.Tensor or numpy.ndarray, got {type(v).__name__}")
        if v.ndim != 1:
            raise ValueError(f"v must be one-dimensional of length {self.shape[1]}, got shape {tuple(v.shape)}")
        return self.matmat(v.reshape(-1, 1))[:, 0]

    def __matmul__(self, other: Any) -> Any:
        return self.matvec(other) if getattr(other, "ndim", 2) == 1 else self.matmat(other)

    def to_scipy(self) -> "scipy.sparse.linalg.LinearOperator":  # noqa: F821
        """A ``scipy.sparse.linalg.LinearOperator`` view (float64 numpy in and out), for oracles."""
        import scipy.sparse.linalg as spla

        def mm(X: np.ndarray) -> np.ndarray:
            X = np.asarray(X, dtype=np.float64)
            X2 = X.reshape(self.shape[1], -1)
            Y = self.matmat(torch.as_tensor(X2)).detach().to(torch.float64).cpu().numpy()
            return Y.reshape(self.shape[0], *X.shape[1:]) if X.ndim == 2 else Y.reshape(-1)

        rm = mm if self.symmetric else None
        return spla.LinearOperator(self.shape, matvec=mm, matmat=mm, rmatvec=rm, dtype=np.float64)

    def to_dense(self) -> torch.Tensor:
        """Materialise the operator by applying it to the identity (small operators only)."""
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return self.matmat(eye)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device}, "
            f"symmetric={self.symmetric})"
        )


# ---------------------------------------------------------------------------------------------------------
# Arithmetic on operators and concrete operators
# ---------------------------------------------------------------------------------------------------------


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _op_add(self: LinearOperator, other: Any) -> "SumOperator":
    if not isinstance(other, LinearOperator):
        return NotImplemented
    return SumOperator(self, other)


def _op_mul(self: LinearOperator, other: Any) -> "ScaledOperator":
    if not _is_scalar(other):
        return NotImplemented
    return ScaledOperator(self, float(other))


def _op_neg(self: LinearOperator) -> "ScaledOperator":
    return ScaledOperator(self, -1.0)


def _op_sub(self: LinearOperator, other: Any) -> "SumOperator":
    if not isinstance(other, LinearOperator):
        return NotImplemented
    return SumOperator(self, ScaledOperator(other, -1.0))


# ``A + B``, ``c * A``, ``A * c``, ``-A``, ``A - B`` build lazy Sum/Scaled operators (no materialisation).
LinearOperator.__add__ = _op_add  # type: ignore[attr-defined]
LinearOperator.__mul__ = _op_mul  # type: ignore[attr-defined]
LinearOperator.__rmul__ = _op_mul  # type: ignore[attr-defined]
LinearOperator.__neg__ = _op_neg  # type: ignore[attr-defined]
LinearOperator.__sub__ = _op_sub  # type: ignore[attr-defined]
# numpy defers to the operator's methods (so ``np.float64(2) * A`` scales and ``A * ndarray`` is a TypeError).
LinearOperator.__array_ufunc__ = None  # type: ignore[attr-defined]


def _float_dtype(dtype: torch.dtype | None, fallback: torch.dtype | None) -> torch.dtype:
    """``dtype`` if float32/float64; ``None`` → ``fallback`` if that is float32/float64, else float64 (``fallback``
    None: ``dtype`` is required)."""
    if dtype is None and fallback is not None:
        return fallback if fallback in (torch.float32, torch.float64) else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got dtype={dtype!r}")
    return dtype


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got numpy dtype {arr.dtype}")
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be numeric, got numpy dtype {arr.dtype}")
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    return t


def _symmetry_tolerance(A: torch.Tensor) -> float:
    """``c · n · eps(dtype) · max|A_ij|`` with c = 10.

    A matrix formed in floating point as a symmetric product (``XᵀX``, a Hessian from automatic
    differentiation, ``Q Λ Qᵀ``) is symmetric up to the rounding of an n-term inner product per entry,
    i.e. ``|A_ij − A_ji| ≲ n · eps · max|A|``; the factor 10 absorbs the constant.
    """
    n = A.shape[0]
    scale = float(A.abs().max()) if A.numel() else 0.0
    return 10.0 * n * float(torch.finfo(A.dtype).eps) * scale


class DenseOperator(LinearOperator):
    """An explicit matrix as an operator: ``matmat(V) = A @ V``.

    Parameters
    ----------
    matrix:
        A 2-D ``torch.Tensor`` or ``numpy.ndarray`` (integer inputs are converted to float64).
    symmetric:
        ``None`` (default): decided by checking ``max|A − Aᵀ| ≤ 10 · n · eps · max|A|`` (see
        :func:`_symmetry_tolerance`). ``True``: the same check must pass, else ``ValueError``.
        ``False``: declared non-symmetric (Lanczos will refuse it).
    dtype, device:
        Default to the matrix's own (float64 for non-float inputs) and ``"cpu"`` / the tensor's device.

    >>> import numpy as np
    >>> A = DenseOperator(np.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> A.symmetric, A.matvec(np.array([1.0, 1.0])).tolist()
    (True, [3.0, 3.0])
    """

    def __init__(
        self,
        matrix: Any,
        symmetric: bool | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        A = _as_tensor(matrix, "matrix")
        if A.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {tuple(A.shape)}")
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"matrix must be non-empty, got shape {tuple(A.shape)}")
        dt = _float_dtype(dtype, A.dtype)
        dev = torch.device(device) if device is not None else A.device
        A = A.to(device=dev, dtype=dt)
        if not bool(torch.isfinite(A).all()):
            raise ValueError("matrix must be finite (got NaN or inf)")
        square = A.shape[0] == A.shape[1]
        if symmetric is None and not square:
            symmetric = False
        elif symmetric is None or symmetric:
            if not square:
                raise ValueError(f"symmetric=True but matrix is not square: shape {tuple(A.shape)}")
            asym = float((A - A.T).abs().max())
            tol = _symmetry_tolerance(A)
            if symmetric is None:
                symmetric = asym <= tol
            elif asym > tol:
                raise ValueError(
                    f"symmetric=True but max|A - A^T| = {asym:.3e} exceeds the tolerance {tol:.3e}"
                )
        super().__init__((int(A.shape[0]), int(A.shape[1])), dt, dev, bool(symmetric))
        self.matrix: torch.Tensor = A

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V

    def to_dense(self) -> torch.Tensor:
        return self.matrix.clone()


class DiagonalOperator(LinearOperator):
    """``diag(d)`` as a symmetric operator: ``matmat(V) = d[:, None] * V``.

    >>> import numpy as np
    >>> DiagonalOperator(np.array([1.0, -2.0])).matvec(np.array([3.0, 1.0])).tolist()
    [3.0, -2.0]
    """

    def __init__(
        self,
        diag: Any,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        d = _as_tensor(diag, "diag")
        if d.ndim != 1 or d.shape[0] == 0:
            raise ValueError(f"diag must be a non-empty 1-D array, got shape {tuple(d.shape)}")
        dt = _float_dtype(dtype, d.dtype)
        dev = torch.device(device) if device is not None else d.device
        d = d.to(device=dev, dtype=dt)
        if not bool(torch.isfinite(d).all()):
            raise ValueError("diag must be finite (got NaN or inf)")
        n = int(d.shape[0])
        super().__init__((n, n), dt, dev, True)
        self.diag: torch.Tensor = d

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.diag[:, None] * V

    def to_dense(self) -> torch.Tensor:
        return torch.diag(self.diag)


class SumOperator(LinearOperator):
    """``A_1 + … + A_p`` (lazy). Shapes and devices must agree; the dtype is the widest of the terms.

    Symmetric when every term is declared symmetric.
    """

    def __init__(self, *operators: LinearOperator) -> None:
        if len(operators) == 0:
            raise ValueError("SumOperator needs at least one operator")
        for i, op in enumerate(operators):
            if not isinstance(op, LinearOperator):
                raise TypeError(f"operators[{i}] must be a LinearOperator, got {type(op).__name__}")
        shape, device = operators[0].shape, operators[0].device
        for i, op in enumerate(operators[1:], start=1):
            if op.shape != shape:
                raise ValueError(f"operators[{i}] has shape {op.shape}, expected {shape}")
            if op.device != device:
                raise ValueError(f"operators[{i}] is on device {op.device}, expected {device}")
        dtype = torch.float64 if any(op.dtype == torch.float64 for op in operators) else torch.float32
        super().__init__(shape, dtype, device, all(op.symmetric for op in operators))
        self.operators: tuple[LinearOperator, ...] = tuple(operators)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        out = self.operators[0].matmat(V).to(self.dtype)
        for op in self.operators[1:]:
            out = out + op.matmat(V).to(self.dtype)
        return out


class ScaledOperator(LinearOperator):
    """``c · A`` for a finite real scalar ``c`` (lazy); symmetric iff ``A`` is."""

    def __init__(self, operator: LinearOperator, scale: float) -> None:
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"operator must be a LinearOperator, got {type(operator).__name__}")
        scale = check_real("scale", scale)
        super().__init__(operator.shape, operator.dtype, operator.device, operator.symmetric)
        self.operator = operator
        self.scale = float(scale)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.scale * self.operator.matmat(V)


class DeflatedOperator(LinearOperator):
    """Hotelling deflation ``A − Σ_i λ_i u_i u_iᵀ = A − U diag(λ) Uᵀ`` of a symmetric operator.

    When ``(λ_i, u_i)`` are exact orthonormal eigenpairs of ``A``, the deflated operator has the same
    eigenvectors, with the deflated eigenvalues replaced by 0 (Saad 2011, *Numerical Methods for Large
    Eigenvalue Problems*, ch. 4). The eigenpairs are not re-verified here (that would cost operator
    applications): pass pairs with small residuals (e.g. from :func:`numerics.eigs.eigs`), and see
    :func:`numerics.slq.slq_deflated` for the projected variant used by SLQ.

    Parameters
    ----------
    operator:
        A symmetric :class:`LinearOperator` of shape ``(n, n)``.
    eigenvalues:
        ``(k,)`` array/tensor.
    eigenvectors:
        ``(n, k)`` with orthonormal columns, checked to ``max|UᵀU − I| ≤ √eps(dtype)`` (the accuracy
        any reorthogonalised eigensolver reaches comfortably).

    >>> import numpy as np
    >>> A = DiagonalOperator(np.array([3.0, 1.0]))
    >>> D = DeflatedOperator(A, np.array([3.0]), np.array([[1.0], [0.0]]))
    >>> D.to_dense().numpy().tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, operator: LinearOperator, eigenvalues: Any, eigenvectors: Any) -> None:
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"operator must be a LinearOperator, got {type(operator).__name__}")
        if not operator.symmetric:
            raise ValueError(f"operator must be declared symmetric for deflation, got {operator!r}")
        n = operator.shape[0]
        lam = _as_tensor(eigenvalues, "eigenvalues").reshape(-1).to(operator.device, operator.dtype)
        U = _as_tensor(eigenvectors, "eigenvectors").to(operator.device, operator.dtype)
        if U.ndim == 1:
            U = U.reshape(-1, 1)
        if U.ndim != 2 or U.shape[0] != n or U.shape[1] != lam.shape[0]:
            raise ValueError(
                f"eigenvectors must have shape ({n}, {lam.shape[0]}) to match {lam.shape[0]} eigenvalues, "
                f"got {tuple(U.shape)}"
            )
        if not (bool(torch.isfinite(lam).all()) and bool(torch.isfinite(U).all())):
            raise ValueError("eigenvalues and eigenvectors must be finite (got NaN or inf)")
        k = U.shape[1]
        if k > 0:
            err = float((U.T @ U - torch.eye(k, dtype=U.dtype, device=U.device)).abs().max())
            tol = math.sqrt(float(torch.finfo(U.dtype).eps))
            if err > tol:
                raise ValueError(f"eigenvectors must be orthonormal: max|U^T U - I| = {err:.3e} > {tol:.3e}")
        super().__init__(operator.shape, operator.dtype, operator.device, True)
        self.operator = operator
        self.eigenvalues: torch.Tensor = lam
        self.eigenvectors: torch.Tensor = U

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        AV = self.operator.matmat(V)
        U = self.eigenvectors
        return AV - U @ (self.eigenvalues[:, None] * (U.T @ V))


def aslinearoperator(x: Any, symmetric: bool | None = None) -> LinearOperator:
    """Return ``x`` as a :class:`LinearOperator`.

    A :class:`LinearOperator` is returned unchanged; a 2-D ``numpy.ndarray`` or ``torch.Tensor`` becomes a
    :class:`DenseOperator` (symmetry checked when ``symmetric`` is None).

    >>> import numpy as np
    >>> aslinearoperator(np.eye(3)).shape
    (3, 3)
    """
    if isinstance(x, LinearOperator):
        if symmetric is not None and bool(symmetric) != x.symmetric:
            raise ValueError(f"symmetric={symmetric!r} conflicts with the operator's declared {x.symmetric}")
        return x
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim != 2:
            raise ValueError(f"an array operator must be 2-D, got shape {tuple(x.shape)}")
        return DenseOperator(x, symmetric=symmetric)
    raise TypeError(f"cannot interpret {type(x).__name__} as a linear operator")
