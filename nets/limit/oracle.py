"""Stage 5 of the pipeline (small models): the dense-Hessian quadratic oracle.

With ``N`` prunable weights small enough for an ``N × N`` float64 Hessian (default ``N ≤ 2500``: 50 MB and
``N`` HVPs), the pipeline computes the ground truth of the *quadratic model* and so separates the model error
of a prediction from its spectral error (docs/math.md §2):

* ``kept_fraction_compensated``: the exact quadratic-model threshold of
  :meth:`theory.quadratic.QuadraticModel.magnitude_threshold` — the least ``k/N`` with
  ``Δ(T_k') = ½ c_Pᵀ S c_P ≤ ε`` for all ``k' ≥ k`` (optimal compensation, magnitude supports): what the spectral
  predictions of the fundamental limit estimate, without the Haar-eigenbasis assumption. A trained network's
  Hessian is indefinite and the stationary compensation then has poles, so the threshold is taken for the PSD
  matrix matching the spectral policy (ours): ``V|Λ|Vᵀ`` for ``negative="abs"``, ``V max(Λ, 0) Vᵀ`` otherwise;
  ``kept_fraction_compensated_indefinite`` is the raw ``H`` after a running median over ``Δ`` (diagnostic only);
* ``kept_fraction_uncompensated``: the least ``k/N`` with ``½ c_Pᵀ H_PP c_P ≤ ε`` for all ``k' ≥ k`` (raw ``H``):
  plain magnitude pruning in the quadratic model without the gradient term;
* ``predicted_exact_spectrum``: ``pruning_limit`` by each method from the exact eigenvalues (no SLQ error),
  and ``slq_wasserstein1``, the distance of the SLQ spectrum to them;
* ``taylor_loss``: ``L(w*) − gᵀc(k) + ½ c(k)ᵀ H c(k)`` at every kept count (the Taylor model of the LOMP
  curve, for the plot; ``g`` includes the objective's ℓ1 term ``l1·sign(w*)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nets.hessian import HessianOperator
from theory.limits import METHODS, PruningLimit, pruning_limit
from theory.quadratic import QuadraticModel
from theory.spectrum import Spectrum
from theory.validation import check_int

__all__ = ["OracleConfig", "QuadraticOracle", "quadratic_oracle", "DEFAULT_ORACLE_MAX_N", "dense_hessian"]

#: Largest N for which the oracle runs by default: its cost (N float64 HVPs, an N×N eigendecomposition and two
#: unpivoted LDLᵀ factorisations, O(N³)) stays within ~10 s on one CPU thread at N = 2500 (6.5 s at N = 2368 on
#: the digits default, idle 2-core machine); it grows as N³, so it is off by default beyond.
DEFAULT_ORACLE_MAX_N = 2500

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class OracleConfig:
    """``enabled``: None (default) runs the oracle iff ``N ≤ max_n`` (:data:`DEFAULT_ORACLE_MAX_N`); True/False force it (the pipeline's
    preflight refuses ``True`` when the dense Hessian would not fit in memory)."""

    enabled: bool | None = None
    max_n: int = DEFAULT_ORACLE_MAX_N

    def __post_init__(self) -> None:
        if self.enabled not in (None, True, False):
            raise TypeError(f"enabled must be None, True or False, got enabled={self.enabled!r}")
        check_int("max_n", self.max_n, minimum=0)

    def runs(self, N: int) -> bool:
        return (N <= self.max_n) if self.enabled is None else bool(self.enabled)

    @staticmethod
    def memory_bytes(N: int) -> int:
        """Peak memory of the oracle: the dense Hessian, its eigenvectors, a rotated copy and the LDLᵀ work
        array (four ``N × N`` float64 matrices)."""
        return 4 * 8 * N * N


@dataclass(frozen=True)
class QuadraticOracle:
    """The dense-Hessian ground truth of a small model (module docstring; all fractions are kept fractions)."""

    kept_fraction_compensated: float
    kept_count_compensated: int
    kept_fraction_compensated_indefinite: float
    kept_fraction_uncompensated: float
    psd_surrogate: str
    median_window: int
    predicted_exact_spectrum: dict[str, PruningLimit]
    slq_wasserstein1: float
    eigenvalue_min: float
    eigenvalue_max: float
    negative_fraction: float
    gradient_norm: float
    taylor_loss: np.ndarray
    hvps: int
    seconds: float
    eigenvalues: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self, include_eigenvalues: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("eigenvalues", "predicted_exact_spectrum")}
        d["predicted_exact_spectrum"] = {m: {"kept_fraction": v.kept_fraction, "stderr": v.stderr}
                                         for m, v in self.predicted_exact_spectrum.items()}
        d["taylor_loss"] = self.taylor_loss.tolist()
        if include_eigenvalues:
            d["eigenvalues"] = self.eigenvalues.tolist()
        return d


def _least_k_below(values: np.ndarray, eps: float) -> int:
    """Least ``k`` with ``values[k'] ≤ eps`` for every ``k' ≥ k``."""
    bad = np.nonzero(values > eps)[0]
    return 0 if bad.size == 0 else int(bad[-1] + 1)


def dense_hessian(op: HessianOperator, progress: Progress | None = None, block: int = 256) -> np.ndarray:
    """The ``N × N`` matrix of ``op`` in float64 (``N`` products in blocks of ``block`` columns), symmetrised."""
    n = op.shape[0]
    out = np.empty((n, n), dtype=np.float64)
    eye = torch.eye(n, dtype=op.dtype, device=op.device)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        out[:, j0:j1] = op.matmat(eye[:, j0:j1]).to("cpu", torch.float64).numpy()
        if progress is not None:
            progress("oracle", j1, n)
    return 0.5 * (out + out.T)


def quadratic_oracle(
    op: HessianOperator,
    weights: np.ndarray,
    eps: float,
    loss_dense: float,
    spectrum: Spectrum,
    kept_counts: np.ndarray,
    *,
    negative: str = "abs",
    eta: float = 0.01,
    progress: Progress | None = None,
    l1: float = 0.0,
) -> QuadraticOracle:
    """The oracle of the module docstring from a float64 Hessian operator at ``w*`` (``weights``)."""
    import time

    t0 = time.perf_counter()
    h0 = op.cost()["hvps"]
    H = dense_hessian(op, progress)
    _, g = op.value_and_gradient()
    w = np.asarray(weights, dtype=np.float64)
    g = g.to("cpu", torch.float64).numpy() + l1 * np.sign(w)  # the objective's gradient (ℓ1 term exact)
    N = w.size
    # torch's LAPACK call honours torch.set_num_threads (numpy's OpenBLAS eigh was 5-10x slower under contention)
    lam_t, V_t = torch.linalg.eigh(torch.from_numpy(H))
    lam, V = lam_t.numpy(), V_t.numpy()
    # zero-pivot / zero-eigenvalue cut-off: QuadraticModel's default rcond (1000·N·eps) times max|H|
    tol = 1000.0 * N * np.finfo(np.float64).eps * float(np.max(np.abs(H)))
    indefinite = bool(lam[0] < -tol)
    raw = QuadraticModel(H, w)
    curve = raw.magnitude_curve()
    window = 2 * int(math.ceil(0.005 * N)) + 1 if indefinite else 1
    k_indef = curve.threshold(eps, median_window=window)
    k_unc = _least_k_below(curve.uncompensated, eps)
    if indefinite:
        surrogate = "abs" if negative == "abs" else "clip"
        lam_s = np.abs(lam) if surrogate == "abs" else np.maximum(lam, 0.0)
        exact = QuadraticModel((V * lam_s[None, :]) @ V.T, w).magnitude_threshold(eps)
    else:
        surrogate = "none"
        exact = raw.magnitude_threshold(eps)
    # Taylor model of the LOMP loss: L* − gᵀc(k) + ½ c(k)ᵀHc(k), c(k) = w* on the pruned coordinates
    o = curve.order
    gw = g[o] * w[o]
    lin = np.zeros(N + 1)
    lin[:-1] = np.cumsum(gw[::-1])[::-1]
    taylor_all = loss_dense - lin + curve.uncompensated
    exact_spec = Spectrum.from_eigenvalues(lam)
    predicted = {m: pruning_limit(exact_spec, w, eps, method=m, negative=negative, eta=eta, n_curve=0) for m in METHODS}
    return QuadraticOracle(
        kept_fraction_compensated=exact.kept_fraction,
        kept_count_compensated=int(exact.kept_count),
        kept_fraction_compensated_indefinite=k_indef / N,
        kept_fraction_uncompensated=k_unc / N,
        psd_surrogate=surrogate,
        median_window=window,
        predicted_exact_spectrum=predicted,
        slq_wasserstein1=float(spectrum.wasserstein1(lam)),
        eigenvalue_min=float(lam[0]),
        eigenvalue_max=float(lam[-1]),
        negative_fraction=float(np.mean(lam < -tol)),
        gradient_norm=float(np.linalg.norm(g)),
        taylor_loss=taylor_all[np.asarray(kept_counts, dtype=np.int64)],
        hvps=int(op.cost()["hvps"] - h0),
        seconds=time.perf_counter() - t0,
        eigenvalues=lam,
    )
