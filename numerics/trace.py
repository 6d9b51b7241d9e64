"""Randomised trace estimators: Hutchinson and Hutch++, batched through ``matmat``, with variance estimates.

Hutchinson (1990; Girard 1989): for probes with ``E[zzᵀ] = I``, ``tr A = E[zᵀAz]``. The single-sample variance
is ``2‖A‖_F²`` for Gaussian and ``2(‖A‖_F² − Σ_i A_ii²)`` for Rademacher probes (Avron & Toledo 2011, JACM
58(2), Lemmas 1 and 9; docs/math.md §3), so the mean of ``N`` samples has these divided by ``N``.

Hutch++ (Meyer, Musco, Musco & Woodruff 2021, SOSA, Algorithm 1): spend a third of the budget on a sketch
``Q = orth(AS)`` of the top range, take its trace exactly, and Hutchinson on the deflated remainder:

    tr A ≈ tr(QᵀAQ) + (1/g) Σ_j g_jᵀ (I − QQᵀ) A (I − QQᵀ) g_j.

For indefinite ``A`` the error is additive in the nuclear norm, ``O(‖A‖_* /m)`` matvecs-wise versus
``O(‖A‖_F/√m)`` for Hutchinson (Meyer et al. 2021).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from numerics.lanczos import draw_probes
from numerics.operators import aslinearoperator
from theory.validation import check_choice, check_int, check_torch_generator

__all__ = ["TraceEstimate", "hutchinson", "hutchpp", "hutchinson_variance"]


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its uncertainty.

    Attributes
    ----------
    estimate:
        The estimate of ``tr A``.
    variance:
        Estimated variance of ``estimate`` (sample variance of ``samples`` / their number; ``inf`` with a
        single sample). For Hutch++ it is conditional on the sketch ``Q`` (the exact part has none).
    stderr:
        ``√variance``.
    samples:
        The Hutchinson samples ``zᵀAz`` (Hutch++: of the deflated remainder).
    matvecs:
        Operator–vector products used.
    method:
        ``"hutchinson"`` or ``"hutch++"``.
    """

    estimate: float
    variance: float
    stderr: float
    samples: np.ndarray
    matvecs: int
    method: str


def hutchinson_variance(matrix: Any, probe: str = "rademacher", n_probes: int = 1) -> float:
    """Exact variance of the Hutchinson mean of ``n_probes`` samples for a symmetric ``matrix``.

    ``2‖A‖_F²/N`` (Gaussian), ``2(‖A‖_F² − Σ A_ii²)/N`` (Rademacher).

    >>> hutchinson_variance(np.diag([1.0, 2.0]), "rademacher")
    0.0
    >>> hutchinson_variance(np.diag([1.0, 2.0]), "gaussian")
    10.0
    """
    A = np.asarray(matrix, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"matrix must be square, got shape {A.shape}")
    n_probes = check_int("n_probes", n_probes, minimum=1)
    check_choice("probe", probe, ("rademacher", "gaussian"))
    S = 0.5 * (A + A.T)  # zᵀAz only sees the symmetric part
    fro2 = float(np.sum(S * S))
    if probe == "gaussian":
        return 2.0 * fro2 / n_probes
    return 2.0 * (fro2 - float(np.sum(np.diag(S) ** 2))) / n_probes


def _check_common(op: Any, generator: Any) -> Any:
    op = aslinearoperator(op)
    if op.shape[0] != op.shape[1]:
        raise ValueError(f"a trace needs a square operator, got shape {op.shape}")
    check_torch_generator("generator", generator)
    return op


def _apply_blocks(op: Any, Z: torch.Tensor, block_size: int) -> torch.Tensor:
    outs = []
    for start in range(0, Z.shape[1], block_size):
        out = op.matmat(Z[:, start : start + block_size].to(op.dtype)).to(torch.float64)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"operator product is not finite (NaN or inf) for probes starting at column {start}")
        outs.append(out)
    return torch.cat(outs, dim=1)


def _summary(samples: np.ndarray, offset: float, matvecs: int, method: str) -> TraceEstimate:
    N = samples.size
    var = float(samples.var(ddof=1) / N) if N > 1 else math.inf
    return TraceEstimate(offset + float(samples.mean()), var, math.sqrt(var), samples, matvecs, method)


def hutchinson(
    op: Any,
    *,
    n_probes: int,
    generator: torch.Generator,
    probe: str = "rademacher",
    block_size: int | None = None,
) -> TraceEstimate:
    """Hutchinson's estimator ``(1/N) Σ_j z_jᵀ A z_j`` with ``N = n_probes`` probes, ``block_size`` columns per
    ``matmat`` (default all ``N`` in one call). Products are accumulated in float64.

    >>> from numerics.operators import DiagonalOperator
    >>> est = hutchinson(DiagonalOperator(np.array([1.0, -2.0, 4.0])), n_probes=4, generator=torch.Generator().manual_seed(0))
    >>> est.estimate, est.stderr, est.matvecs
    (3.0, 0.0, 4)
    """
    op = _check_common(op, generator)
    N = check_int("n_probes", n_probes, minimum=1)
    bs = N if block_size is None else check_int("block_size", block_size, minimum=1)
    Z = draw_probes(op.shape[0], N, generator=generator, probe=probe, dtype=torch.float64, device=op.device)
    AZ = _apply_blocks(op, Z, bs)
    samples = (Z * AZ).sum(dim=0).cpu().numpy()
    return _summary(samples, 0.0, N, "hutchinson")


def hutchpp(
    op: Any,
    *,
    n_matvecs: int,
    generator: torch.Generator,
    probe: str = "rademacher",
) -> TraceEstimate:
    """Hutch++ (Meyer et al. 2021, Algorithm 1) with a budget of ``n_matvecs ≥ 3`` products.

    ``s = ⌊n_matvecs/3⌋`` sketch columns ``S`` give ``Q = orth(AS)`` (``s`` products) and ``tr(QᵀAQ)`` (``s``
    products); the remaining ``g = n_matvecs − 2s`` go to Hutchinson on ``(I − QQᵀ)A(I − QQᵀ)``. Three
    ``matmat`` calls in all. The variance reported is that of the remainder's Hutchinson mean, conditional on
    ``Q``.

    >>> from numerics.operators import DenseOperator
    >>> u = np.array([[1.0], [2.0], [2.0], [0.0]]) / 3.0
    >>> est = hutchpp(DenseOperator(5.0 * u @ u.T), n_matvecs=6, generator=torch.Generator().manual_seed(0))
    >>> round(est.estimate, 10), est.matvecs
    (5.0, 6)
    """
    op = _check_common(op, generator)
    m = check_int("n_matvecs", n_matvecs, minimum=3)
    n = op.shape[0]
    s = m // 3
    g = m - 2 * s
    S = draw_probes(n, s, generator=generator, probe=probe, dtype=torch.float64, device=op.device)
    G = draw_probes(n, g, generator=generator, probe=probe, dtype=torch.float64, device=op.device)
    AS = _apply_blocks(op, S, s)
    Q, _ = torch.linalg.qr(AS)  # Householder QR: Q orthonormal even when AS is rank-deficient
    AQ = _apply_blocks(op, Q, s)
    exact_part = float(torch.trace(Q.T @ AQ))
    PG = G - Q @ (Q.T @ G)
    APG = _apply_blocks(op, PG, g)
    samples = (PG * (APG - Q @ (Q.T @ APG))).sum(dim=0).cpu().numpy()
    return _summary(samples, exact_part, m, "hutch++")
