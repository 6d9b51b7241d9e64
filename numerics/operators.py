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

from typing import Any

import numpy as np
import torch

__all__ = ["LinearOperator"]


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
        if (
            not isinstance(shape, tuple)
            or len(shape) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
        ):
            raise TypeError(f"shape must be a tuple of two ints, got {shape!r}")
        if shape[0] <= 0 or shape[1] <= 0:
            raise ValueError(f"shape must have positive entries, got {shape!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
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
