"""Stochastic Lanczos quadrature (SLQ) and the :class:`Spectrum` it returns.

A :class:`Spectrum` is a set of Gauss quadrature rules, one per probe: nodes ``θ_{l,k}`` (Ritz values)
and weights ``τ_{l,k} = (e₁ᵀ y_{l,k})²`` summing to one per probe, for an ``n``-dimensional symmetric
operator ``A``. It approximates the normalised spectral measure ``(1/n) Σ_i δ_{λ_i}``:

    (1/n) tr f(A) ≈ (1/n_v) Σ_l Σ_k τ_{l,k} f(θ_{l,k})

(Ubaru, Chen & Saad 2017; Golub & Meurant 2010). The quadrature is used directly: no density on a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Spectrum"]


@dataclass(frozen=True)
class Spectrum:
    """Quadrature approximation of a normalised spectral measure.

    Attributes
    ----------
    nodes, weights:
        float64 arrays of shape ``(n_probes, m)``; each row of ``weights`` is non-negative and sums to 1.
        Rows of different lengths are padded with zero weights (the padded node value is irrelevant).
    dim:
        The dimension ``n`` of the operator, so that ``trace(f) = n · expect(f)``.
    exact:
        True when the rule is the exact spectral measure (built by :meth:`from_eigenvalues`); its standard
        errors are then 0.

    >>> s = Spectrum.from_eigenvalues([-1.0, 0.0, 2.0])
    >>> s.expect(lambda x: x)[0]
    0.3333333333333333
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    exact: bool = False

    def __post_init__(self) -> None:
        nodes = np.atleast_2d(np.asarray(self.nodes, dtype=np.float64))
        weights = np.atleast_2d(np.asarray(self.weights, dtype=np.float64))
        if nodes.ndim != 2 or nodes.shape != weights.shape:
            raise ValueError(
                f"nodes and weights must be 2-D arrays of equal shape, got {nodes.shape} and {weights.shape}"
            )
        if nodes.size == 0:
            raise ValueError("nodes must be non-empty")
        if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
            raise ValueError("nodes and weights must be finite (got NaN or inf)")
        if np.any(weights < 0):
            raise ValueError(f"weights must be non-negative, got minimum {weights.min()!r}")
        sums = weights.sum(axis=1)
        # tolerance: the weights are squared entries of an orthogonal matrix's first row; their sum is 1 up to
        # accumulated rounding c·m·eps.
        if np.any(np.abs(sums - 1.0) > 1e3 * nodes.shape[1] * np.finfo(np.float64).eps):
            raise ValueError(f"each probe's weights must sum to 1, got sums {sums!r}")
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {self.dim!r}")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "weights", weights / sums[:, None])
        object.__setattr__(self, "dim", int(self.dim))

    @classmethod
    def from_eigenvalues(cls, eigenvalues: np.ndarray) -> "Spectrum":
        """The exact spectral measure of a matrix with the given eigenvalues (one 'probe', equal weights)."""
        lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
        if lam.size == 0:
            raise ValueError("eigenvalues must be non-empty")
        if not np.all(np.isfinite(lam)):
            raise ValueError("eigenvalues must be finite (got NaN or inf)")
        return cls(lam[None, :], np.full((1, lam.size), 1.0 / lam.size), lam.size, exact=True)

    @property
    def n_probes(self) -> int:
        return int(self.nodes.shape[0])

    def per_probe(self, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``Σ_k τ_{l,k} f(θ_{l,k})`` for each probe ``l`` (shape ``(n_probes,)``)."""
        vals = np.asarray(f(self.nodes), dtype=np.float64)
        if vals.shape != self.nodes.shape:
            vals = np.broadcast_to(vals, self.nodes.shape)
        mask = self.weights > 0
        return np.where(mask, self.weights * np.where(mask, vals, 0.0), 0.0).sum(axis=1)

    def expect(self, f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """Estimate ``(1/n) tr f(A)`` and its standard error across probes.

        The standard error is ``std(per-probe values, ddof=1)/√n_v``; with a single probe it is ``inf``
        (unknown), and it is 0 for an exact spectrum (:meth:`from_eigenvalues`).
        """
        vals = self.per_probe(f)
        if not np.all(np.isfinite(vals)):
            raise ValueError("f returned non-finite values on the spectrum's nodes")
        mean = float(vals.mean())
        if self.exact:
            se = 0.0
        elif vals.size > 1:
            se = float(vals.std(ddof=1) / math.sqrt(vals.size))
        else:
            se = math.inf
        return mean, se

    def trace(self, f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """Estimate ``tr f(A) = n · (1/n) tr f(A)`` and its standard error."""
        mean, se = self.expect(f)
        return self.dim * mean, self.dim * se
