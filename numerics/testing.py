"""Test matrices with known spectra (after scipy's ``_special_sparse_arrays``), for checking Lanczos and SLQ.

Each generator returns a :class:`KnownSpectrum`: the float64 matrix, its eigenvalues (closed form where one
exists, else ``numpy.linalg.eigvalsh`` of the realisation, accurate to ``O(n · eps · ‖A‖)``), the limit
density as ``n → ∞``, its support, and the limiting outliers.

Normalisations [literature]:

- GOE ``A = (G + Gᵀ)/√(2n)``, ``G_ij ~ N(0, 1)``: off-diagonal variance ``1/n``, semicircle
  ``ρ(x) = √(4 − x²)/(2π)`` on ``[−2, 2]`` (Wigner 1958; Anderson, Guionnet & Zeitouni 2010, ch. 2).
- Spiked Wigner ``A = W + Σ_i θ_i v_i v_iᵀ`` (orthonormal ``v_i``): for ``θ > 1`` an outlier converges to
  ``θ + 1/θ``; spikes with ``θ ≤ 1`` stick to the edge 2 (Féral & Péché 2007; Benaych-Georges & Nadakuditi
  2011, with the semicircle's ``G⁻¹(1/θ) = θ + 1/θ``).
- Wishart ``A = XᵀX/N``, ``X`` ``N × p`` standard normal, ratio ``γ = p/N``: Marchenko–Pastur on
  ``[(1−√γ)², (1+√γ)²]``, ``ρ(x) = √((b−x)(x−a))/(2πγx)``, plus an atom ``1 − 1/γ`` at 0 when ``γ > 1``
  (Marchenko & Pastur 1967).
- A prescribed diagonal conjugated by a Haar rotation ``Q diag(λ) Qᵀ`` (eigenvalues exactly ``λ``).
- Path-graph Laplacian on ``n`` vertices: eigenvalues ``2 − 2cos(kπ/n)``, ``k = 0 … n−1``; limit density
  the arcsine law ``1/(π√(x(4−x)))`` on ``[0, 4]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "KnownSpectrum",
    "haar_orthogonal",
    "goe",
    "spiked_wigner",
    "wishart",
    "rotated_diagonal",
    "path_laplacian",
    "semicircle_density",
    "marchenko_pastur_density",
]


@dataclass(frozen=True)
class KnownSpectrum:
    """A symmetric test matrix with its spectrum.

    Attributes
    ----------
    matrix:
        ``(n, n)`` float64, exactly symmetric.
    eigenvalues:
        ascending float64 eigenvalues of ``matrix``.
    limit_density:
        density of the limiting (``n → ∞``) spectral measure's continuous part, or None.
    support:
        ``(a, b)`` support of the limit density's bulk.
    outliers:
        limiting locations of eigenvalues outside the bulk (possibly empty).
    atom_at_zero:
        limiting mass of an atom at 0 (Wishart with ``γ > 1``), else 0.
    """

    matrix: np.ndarray
    eigenvalues: np.ndarray
    limit_density: Callable[[np.ndarray], np.ndarray] | None
    support: tuple[float, float]
    outliers: np.ndarray = field(default_factory=lambda: np.zeros(0))
    atom_at_zero: float = 0.0

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def operator(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Any:
        """The matrix as a symmetric :class:`numerics.operators.DenseOperator`."""
        from numerics.operators import DenseOperator

        return DenseOperator(self.matrix, symmetric=True, dtype=dtype, device=device)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_n(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")
    return int(n)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + A.T)


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed ``n × n`` orthogonal matrix: QR of a Gaussian matrix with the sign fix
    ``Q ← Q · diag(sign(diag R))`` (Mezzadri 2007, "How to generate random matrices from the classical
    compact groups", Notices AMS 54(5)); without the fix the law is not Haar.

    >>> Q = haar_orthogonal(4, np.random.default_rng(0))
    >>> bool(np.allclose(Q.T @ Q, np.eye(4)))
    True
    """
    n = _check_n(n)
    Z = _check_rng(rng).standard_normal((n, n))
    Q, R = np.linalg.qr(Z)
    d = np.sign(np.diag(R))
    d[d == 0] = 1.0
    return Q * d[None, :]


def semicircle_density(x: Any, radius: float = 2.0) -> np.ndarray:
    """Wigner semicircle ``2√(r² − x²)/(π r²)`` on ``[−r, r]`` (r = 2 gives ``√(4 − x²)/(2π)``)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) < radius, 2.0 * np.sqrt(np.clip(radius**2 - x * x, 0, None)) / (math.pi * radius**2), 0.0)


def marchenko_pastur_density(x: Any, gamma: float) -> np.ndarray:
    """Continuous part of Marchenko–Pastur with ratio ``γ`` (unit variance): ``√((b−x)(x−a))/(2πγx)``."""
    x = np.asarray(x, dtype=np.float64)
    a, b = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    inside = (x > a) & (x < b) & (x > 0)
    xs = np.where(inside, x, 1.0)
    return np.where(inside, np.sqrt(np.clip((b - xs) * (xs - a), 0, None)) / (2 * math.pi * gamma * xs), 0.0)


def goe(n: int, rng: np.random.Generator) -> KnownSpectrum:
    """GOE matrix ``(G + Gᵀ)/√(2n)`` with semicircle limit on ``[−2, 2]`` (eigenvalues by ``eigvalsh``)."""
    n = _check_n(n)
    G = _check_rng(rng).standard_normal((n, n))
    A = (G + G.T) / math.sqrt(2.0 * n)
    return KnownSpectrum(A, np.linalg.eigvalsh(A), semicircle_density, (-2.0, 2.0))


def spiked_wigner(n: int, thetas: Any, rng: np.random.Generator) -> KnownSpectrum:
    """GOE plus rank-r spikes ``Σ θ_i v_i v_iᵀ`` along Haar-random orthonormal ``v_i``.

    Limiting outliers: ``θ + 1/θ`` for each ``|θ| > 1`` (sign kept: ``θ < −1`` gives ``θ + 1/θ < −2``).
    """
    n = _check_n(n)
    th = np.asarray(thetas, dtype=np.float64).reshape(-1)
    if th.size == 0 or th.size >= n or not np.all(np.isfinite(th)):
        raise ValueError(f"thetas must be 1 to n-1 finite numbers, got {thetas!r}")
    rng = _check_rng(rng)
    base = goe(n, rng).matrix
    V = haar_orthogonal(n, rng)[:, : th.size]
    A = _sym(base + (V * th[None, :]) @ V.T)
    big = th[np.abs(th) > 1]
    return KnownSpectrum(A, np.linalg.eigvalsh(A), semicircle_density, (-2.0, 2.0), np.sort(big + 1.0 / big))


def wishart(p: int, n_samples: int, rng: np.random.Generator) -> KnownSpectrum:
    """Sample covariance ``XᵀX/N`` of ``N = n_samples`` standard normal rows in ``R^p``; MP with ``γ = p/N``."""
    p = _check_n(p, "p")
    N = _check_n(n_samples, "n_samples")
    X = _check_rng(rng).standard_normal((N, p))
    A = _sym(X.T @ X / N)
    gamma = p / N
    a, b = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    return KnownSpectrum(
        A,
        np.linalg.eigvalsh(A),
        lambda x: marchenko_pastur_density(x, gamma),
        (a, b),
        atom_at_zero=max(0.0, 1.0 - 1.0 / gamma),
    )


def rotated_diagonal(eigenvalues: Any, rng: np.random.Generator) -> KnownSpectrum:
    """``Q diag(λ) Qᵀ`` with Haar ``Q``: a dense matrix with exactly the prescribed (e.g. indefinite)
    spectrum ``λ`` (up to the rounding of forming it, ``O(n · eps · max|λ|)``)."""
    lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be a non-empty finite array")
    Q = haar_orthogonal(lam.size, _check_rng(rng))
    A = _sym((Q * lam[None, :]) @ Q.T)
    return KnownSpectrum(A, np.sort(lam), None, (float(lam.min()), float(lam.max())))


def path_laplacian(n: int) -> KnownSpectrum:
    """Laplacian ``D − W`` of the path graph on ``n`` vertices (degrees 1, 2, …, 2, 1).

    Eigenvalues ``2 − 2cos(kπ/n)``, ``k = 0, …, n−1`` (Chung 1997, *Spectral Graph Theory*; the DCT-II
    diagonalises it); limit density arcsine on ``[0, 4]``.

    >>> path_laplacian(3).eigenvalues.round(12).tolist()
    [0.0, 1.0, 3.0]
    """
    n = _check_n(n)
    A = np.zeros((n, n))
    idx = np.arange(n - 1)
    A[idx, idx + 1] = A[idx + 1, idx] = -1.0
    A[np.arange(n), np.arange(n)] = -A.sum(axis=1)
    lam = np.sort(2.0 - 2.0 * np.cos(np.arange(n) * math.pi / n))

    def arcsine(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        inside = (x > 0) & (x < 4)
        xs = np.where(inside, x, 1.0)
        return np.where(inside, 1.0 / (math.pi * np.sqrt(xs * (4.0 - xs))), 0.0)

    return KnownSpectrum(A, lam, arcsine, (0.0, 4.0))
