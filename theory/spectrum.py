"""The :class:`Spectrum`: quadrature approximations of a normalised spectral measure (numpy only).

A :class:`Spectrum` is a set of Gauss quadrature rules, one per probe: nodes ``θ_{l,k}`` (Ritz values)
and weights ``τ_{l,k} = (e₁ᵀ y_{l,k})²`` summing to one per probe, for an ``n``-dimensional symmetric
operator ``A``. It approximates the normalised spectral measure ``(1/n) Σ_i δ_{λ_i}``:

    (1/n) tr f(A) ≈ (1/n_v) Σ_l Σ_k τ_{l,k} f(θ_{l,k})

(Ubaru, Chen & Saad 2017; Golub & Meurant 2010). The quadrature is used directly: no density on a grid.
This module imports no torch, so :mod:`theory` (numpy/scipy) can take a :class:`Spectrum` as input;
:func:`numerics.slq.slq` builds one from Lanczos recurrences.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


__all__ = ["Spectrum", "FORMAT", "pyhessian_sigma", "ctu_parameters"]

logger = logging.getLogger(__name__)

#: The ``format`` tag of serialised spectra.
FORMAT = "prunelimit.Spectrum/1"


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
        # f's value at a padded node (zero weight) may be anything, even non-finite: it is replaced by 0
        return (self.weights * np.where(self.weights > 0, vals, 0.0)).sum(axis=1)

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

    # -- construction from Lanczos ------------------------------------------------------------------------
    @classmethod
    def from_lanczos(cls, result: "LanczosResult") -> "Spectrum":  # noqa: F821
        """The Gauss quadrature rules of a :class:`numerics.lanczos.LanczosResult`, one per probe."""
        nodes, weights = result.quadrature()
        return cls(nodes, weights, result.dim)

    # -- pooled measure -------------------------------------------------------------------------------------
    def atoms(self) -> tuple[np.ndarray, np.ndarray]:
        """The averaged measure ``(1/n_v) Σ_l Σ_k τ_{l,k} δ_{θ_{l,k}}`` as sorted atoms and masses (sum 1).

        Zero-weight (padding) nodes are dropped.
        """
        x = self.nodes.reshape(-1)
        w = (self.weights / self.n_probes).reshape(-1)
        keep = w > 0
        x, w = x[keep], w[keep]
        order = np.argsort(x, kind="stable")
        return x[order], w[order]

    # -- functionals ----------------------------------------------------------------------------------------
    def density(self, grid: Any, sigma: float) -> np.ndarray:
        """Gaussian-smoothed density ``ρ_σ(x) = (1/n_v) Σ_l Σ_k τ_{l,k} φ_σ(x − θ_{l,k})`` on ``grid``.

        ``σ`` is the kernel's *standard deviation*, in eigenvalue units (``φ_σ(u) = e^{−u²/2σ²}/(σ√(2π))``),
        so ``∫ρ_σ = 1`` exactly (no renormalisation on the grid). To reproduce PyHessian's smoothing, whose
        ``sigma_squared`` is a variance relative to the spectral range, pass
        ``sigma = self.pyhessian_sigma(sigma_squared)``.

        >>> s = Spectrum.from_eigenvalues([0.0])
        >>> round(float(s.density(np.array([0.0]), 1.0)[0]), 12) == round(1 / math.sqrt(2 * math.pi), 12)
        True
        """
        sigma = _positive_float(sigma, "sigma")
        g = np.asarray(grid, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise ValueError("grid must be finite (got NaN or inf)")
        x, w = self.atoms()
        flat = g.reshape(-1)
        out = np.empty_like(flat)
        chunk = max(1, 2_000_000 // max(1, x.size))  # bound the (grid × atoms) temporary to ~16 MB
        for start in range(0, flat.size, chunk):
            u = (flat[start : start + chunk, None] - x[None, :]) / sigma
            out[start : start + chunk] = np.exp(-0.5 * u * u) @ w
        return (out / (sigma * math.sqrt(2.0 * math.pi))).reshape(g.shape)

    def pyhessian_sigma(self, sigma_squared: float = 1e-5, overhead: float = 0.01) -> float:
        """The standard deviation equivalent to PyHessian's ``density_generate(sigma_squared, overhead)``.

        See :func:`pyhessian_sigma`; PyHessian's ``λ_max``/``λ_min`` are means over probes of each probe's
        largest/smallest node (zero-weight padding excluded here).
        """
        hi = np.array([self.nodes[l][self.weights[l] > 0].max() for l in range(self.n_probes)]).mean()
        lo = np.array([self.nodes[l][self.weights[l] > 0].min() for l in range(self.n_probes)]).mean()
        return pyhessian_sigma(sigma_squared, float(lo), float(hi), overhead)

    def negative_mass(self, tol: float = 0.0) -> tuple[float, float]:
        """Estimate the fraction of eigenvalues ``< −tol``, with its standard error across probes.

        An indicator is not a polynomial, so besides the sampling error the Gauss rule has a discretisation
        error at most the weight of the nodes adjacent to ``−tol`` (Chebyshev–Markov–Stieltjes
        inequalities; Golub & Meurant 2010, ch. 6).

        >>> Spectrum.from_eigenvalues([-2.0, -1.0, 3.0, 4.0]).negative_mass()
        (0.5, 0.0)
        """
        t = float(tol)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
        return self.expect(lambda x: (x < -t).astype(np.float64))

    def mass_bounds_per_probe(self, x: float) -> tuple[np.ndarray, np.ndarray]:
        """Guaranteed bounds on each probe's measure of ``(−∞, x)`` from its Gauss rule.

        Probe ``l``'s rule is the Gauss quadrature of the measure ``μ_l = Σ_i (q_iᵀ v_l)² δ_{λ_i}`` (``v_l`` the
        normalised probe). By the Chebyshev–Markov–Stieltjes inequalities (Golub & Meurant 2010, ch. 6;
        Karlin & Shapley 1953), with nodes ``θ_1 < … < θ_m`` and ``θ_j < x ≤ θ_{j+1}``,
        ``Σ_{k<j} τ_k ≤ μ_l((−∞, x)) ≤ Σ_{k≤j+1} τ_k``: the quadrature value ``Σ_{k≤j} τ_k`` can be off by at
        most the weight of a node adjacent to ``x``. This is the discretisation error that the standard error
        across probes does not include; it is large when a heavy Ritz node sits next to ``x`` (a cluster of
        near-zero eigenvalues around ``x = 0``, typical of network Hessians). For an exact spectrum
        (:meth:`from_eigenvalues`) the rule is the measure and both bounds equal the quadrature value. Returns
        ``(lower, upper)``, each of shape ``(n_probes,)``.

        >>> s = Spectrum([[-2.0, -1.0, 3.0, 4.0]], [[0.1, 0.2, 0.3, 0.4]], dim=100)
        >>> lo, hi = s.mass_bounds_per_probe(0.0)
        >>> round(float(lo[0]), 12), round(float(hi[0]), 12)
        (0.1, 0.6)
        """
        xv = float(x)
        if not math.isfinite(xv):
            raise ValueError(f"x must be finite, got {x!r}")
        lower = np.empty(self.n_probes)
        upper = np.empty(self.n_probes)
        for i in range(self.n_probes):
            keep = self.weights[i] > 0
            order = np.argsort(self.nodes[i][keep], kind="stable")
            theta, tau = self.nodes[i][keep][order], self.weights[i][keep][order]
            j = int(np.searchsorted(theta, xv, side="left"))  # nodes θ_0..θ_{j-1} lie below x
            below = float(tau[:j].sum())
            if self.exact:
                lower[i] = upper[i] = below
                continue
            lower[i] = below - (float(tau[j - 1]) if j > 0 else 0.0)
            upper[i] = min(1.0, below + (float(tau[j]) if j < tau.size else 0.0))
        return np.maximum(lower, 0.0), upper

    def negative_mass_bounds(self, tol: float = 0.0) -> tuple[float, float]:
        """Bounds on the fraction of eigenvalues ``< −tol`` that include the quadrature (discretisation) error:
        the probe averages of :meth:`mass_bounds_per_probe` at ``−tol``. Each probe's interval is guaranteed for
        that probe's measure; their average estimates the true fraction up to the sampling error that
        :meth:`negative_mass` reports.

        >>> Spectrum.from_eigenvalues([-2.0, -1.0, 3.0, 4.0]).negative_mass_bounds()
        (0.5, 0.5)
        """
        t = float(tol)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
        lo, hi = self.mass_bounds_per_probe(-t)
        return float(lo.mean()), float(hi.mean())

    def cdf(self, x: Any) -> Any:
        """``F(x) = (1/n_v) Σ_l Σ_{k: θ_{l,k} ≤ x} τ_{l,k}`` (right-continuous); scalar in, float out.

        >>> Spectrum.from_eigenvalues([0.0, 1.0]).cdf([-1.0, 0.0, 0.5, 1.0]).tolist()
        [0.0, 0.5, 0.5, 1.0]
        """
        xs = np.asarray(x, dtype=np.float64)
        if np.any(np.isnan(xs)):
            raise ValueError("x must not contain NaN")
        atoms, masses = self.atoms()
        cum = np.concatenate([[0.0], np.cumsum(masses)])
        out = np.minimum(cum[np.searchsorted(atoms, xs, side="right")], 1.0)
        return float(out) if out.ndim == 0 else out

    def wasserstein1(self, other: Any) -> float:
        """Wasserstein-1 distance ``∫|F(x) − G(x)| dx`` to another :class:`Spectrum` or to exact eigenvalues.

        Exact for the two discrete measures (each Spectrum pooled over its probes), by
        ``scipy.stats.wasserstein_distance`` on the atoms and their weights.

        >>> Spectrum.from_eigenvalues([0.0, 1.0]).wasserstein1(np.array([0.0, 2.0]))
        0.5
        """
        from scipy.stats import wasserstein_distance

        if isinstance(other, Spectrum):
            y, v = other.atoms()
        else:
            lam = np.asarray(other, dtype=np.float64).reshape(-1)
            if lam.size == 0 or not np.all(np.isfinite(lam)):
                raise ValueError("other must be a Spectrum or a non-empty finite array of eigenvalues")
            y, v = lam, np.full(lam.size, 1.0 / lam.size)
        x, w = self.atoms()
        return float(wasserstein_distance(x, y, u_weights=w, v_weights=v))

    # -- serialisation (file I/O lives in nets.io: save_spectrum / load_spectrum) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (floats round-trip exactly through JSON); :meth:`from_dict` inverts it."""
        return {"format": FORMAT, "dim": self.dim, "exact": self.exact, "nodes": self.nodes.tolist(),
                "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: Any) -> "Spectrum":
        """The Spectrum of a :meth:`to_dict` record (format checked).

        >>> s = Spectrum.from_eigenvalues([1.0, 2.0])
        >>> Spectrum.from_dict(s.to_dict()) == s
        True
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} record")
        return cls(np.array(data["nodes"]), np.array(data["weights"]), int(data["dim"]), bool(data["exact"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spectrum):
            return NotImplemented
        return (self.dim == other.dim and self.exact == other.exact and np.array_equal(self.nodes, other.nodes)
                and np.array_equal(self.weights, other.weights))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    # -- plotting -------------------------------------------------------------------------------------------
    def plot(self, ax: Any, sigma: float | None = None, *, num: int | None = None, **kwargs: Any) -> Any:
        """Draw on a matplotlib ``ax``: the smoothed density if ``sigma`` is given, else the exact CDF.

        The density grid spans ``[min θ − 5σ, max θ + 5σ]`` with spacing at most ``σ/4`` (default ``num``),
        so the kernel is resolved (a grid coarser than the kernel distorts the quadrature weights: mistake
        2 of docs/experiments.md §1.4). Returns the list of matplotlib lines.
        """
        x, w = self.atoms()
        if sigma is None:
            xs = np.repeat(x, 2)[1:]
            ys = np.repeat(np.cumsum(w), 2)[:-1]
            ax.set_ylabel("cumulative spectral mass")
            lines = ax.plot(xs, ys, **kwargs)
        else:
            sigma = _positive_float(sigma, "sigma")
            lo, hi = x.min() - 5 * sigma, x.max() + 5 * sigma
            if num is None:
                num = int(min(1_000_000, max(512, math.ceil(4 * (hi - lo) / sigma) + 1)))
            grid = np.linspace(lo, hi, num)
            ax.set_ylabel(f"spectral density (Gaussian σ = {sigma:.3g})")
            lines = ax.plot(grid, self.density(grid, sigma), **kwargs)
        ax.set_xlabel("eigenvalue")
        return lines


def _positive_float(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {x!r}")
    return v


def pyhessian_sigma(sigma_squared: float, lambda_min: float, lambda_max: float, overhead: float = 0.01) -> float:
    """Convert PyHessian's smoothing parameter into a standard deviation in eigenvalue units.

    PyHessian 0.1's ``density_generate(eigenvalues, weights, num_bins, sigma_squared=1e-5, overhead=0.01)``
    sets ``λ_max = mean_l max θ_l + overhead``, ``λ_min = mean_l min θ_l − overhead`` and passes
    ``sigma_squared · max(1, λ_max − λ_min)`` to its Gaussian as the *variance*. The equivalent standard
    deviation is therefore ``σ = √(sigma_squared · max(1, λ_max − λ_min + 2·overhead))``. (PyHessian also
    renormalises the density on its grid; :meth:`Spectrum.density` needs no renormalisation.)

    >>> pyhessian_sigma(1e-4, -0.01, 0.01, overhead=0.0)
    0.01
    """
    s2 = _positive_float(sigma_squared, "sigma_squared")
    lo, hi, ov = float(lambda_min), float(lambda_max), float(overhead)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"need finite lambda_min <= lambda_max, got {lambda_min!r}, {lambda_max!r}")
    if not math.isfinite(ov) or ov < 0:
        raise ValueError(f"overhead must be a finite non-negative number, got {overhead!r}")
    return math.sqrt(s2 * max(1.0, hi - lo + 2.0 * ov))


def ctu_parameters(n: int, t: float, eta: float) -> tuple[int, int]:
    """Steps and probes for ``W₁ ≤ t (λ_max − λ_min)`` with probability ``1 − η`` (Chen, Trogdon & Ubaru
    2021, "Analysis of stochastic Lanczos quadrature for spectrum approximation", ICML; docs/math.md §3):
    ``m = ⌈12/t + ½⌉``, ``n_v = ⌈4 (n+2)⁻¹ t⁻² ln(2n/η)⌉``. The step count is capped at ``n`` (``m = n``
    is exact).

    >>> ctu_parameters(400, 0.1, 0.01)
    (121, 12)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not (0 < t < 1):
        raise ValueError(f"t must lie in (0, 1), got {t!r}")
    if not (0 < eta < 1):
        raise ValueError(f"eta must lie in (0, 1), got {eta!r}")
    m = min(int(n), math.ceil(12.0 / t + 0.5))
    nv = math.ceil(4.0 / ((n + 2) * t * t) * math.log(2.0 * n / eta))
    return m, max(1, nv)
