"""The pruning limit: the smallest kept fraction of weights compatible with a loss tolerance.

Setting (docs/math.md §2): trained weights ``w* ∈ R^N`` (the prunable ones), Hessian ``H`` at ``w*`` with
normalised spectral measure ``μ = (1/D) Σ_i δ_{λ_i}``, loss tolerance ``ε``. Keeping the ``k = ρN``
largest magnitudes moves the weights by ``c = w* − w^k`` with ``‖c‖ = R(ρ)``, the root of the sum of the
``N − k`` smallest squared weights. Two thresholds are computed from ``μ`` and ``R``:

``method="flat"`` -- **the authors' formula** (Zhang, Zhang, Sun & Liu, NeurIPS 2024, "How sparse can we
prune a deep network"; their code ``cal_rate.py``): the cone over the sublevel set is approximated by the
cone over a "flat" ellipsoid with semi-axes ``r_i = √(2ε/λ_i)`` transverse to ``c``, whose statistical
dimension is ``Σ_i r_i²/(R² + r_i²)``; the limit is the fixed point

    ρ = 1 − (1/D) Σ_i 2ε/(2ε + λ_i R(ρ)²)  =  E_μ[ λR(ρ)²/(λR(ρ)² + 2ε) ].

``method="free"`` -- **our free-probability threshold** (docs/math.md §2, [ours], not the paper's):
with a Haar-random eigenbasis the Schur complement ``S = [(H⁻¹)_PP]⁻¹`` of the pruned block has normalised
trace ``m_S(ρ) = ρ s(ρ)/(1 − ρ)`` (free compression, Nica & Speicher 2006, Lecture 14), where ``s > 0``
solves ``E_μ[λ/(λ + s)] = ρ``. The least loss increase after optimal compensation is predicted as
``Δ(ρ) = ½ R(ρ)² m_S(ρ)`` and the limit is the least ``ρ`` with ``Δ(ρ) ≤ ε``. The flat condition is
exactly ``½ R(ρ)² s(ρ) = ε``: the same condition without the factor ``ρ/(1 − ρ)``.

Both are computed with the quadrature of a :class:`numerics.slq.Spectrum` used directly (no density on a
grid), ``R(ρ)`` interpolated linearly in the cumulative sum of sorted squares (continuous, non-increasing),
and a bracketing root finder (``scipy.optimize.brentq``) on a function whose monotonicity makes the root
unique (``proofs_check.limits``).

:func:`authors_pruning_ratio` reproduces the authors' original computation (integer-rounded ``R``, Gaussian
density on a grid, a sweep of removed fractions) as a labelled reference for comparison only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import brentq

from theory.spectrum import Spectrum
from theory.kinematics import a_eta
from theory.validation import check_choice, check_fraction, check_int, check_positive, check_real

__all__ = [
    "kept_count",
    "PruningLimit",
    "HaarMagnitudeLimit",
    "haar_magnitude_limit",
    "LimitCurves",
    "MagnitudeProfile",
    "pruning_limit",
    "magnitude_scaling",
    "authors_pruning_ratio",
    "AuthorsRatio",
    "a_eta",
    "NEGATIVE_POLICIES",
    "METHODS",
    "DEFAULT_METHOD",
]

logger = logging.getLogger(__name__)

NEGATIVE_POLICIES: tuple[str, ...] = ("abs", "clip", "drop")
METHODS: tuple[str, ...] = ("free", "flat")
HESSIAN_SPACES: tuple[str, ...] = ("prunable", "all")

#: Default prediction method: the authors' flat formula. On 60 trained networks (``bench/limits_trained.py``:
#: digits and teacher-student MLPs, widths 32–512, depth 1–3, ℓ1 λ ∈ {0, 1e-3, 1e-2}, 2 seeds) its mean absolute error
#: against the measured fundamental limit was 0.032 (worst 0.175) against 0.035 (worst 0.200) for ``"free"``;
#: our free threshold is better on Haar-rotated synthetic spectra but not on real eigenbases (docs/guide.md §4).
DEFAULT_METHOD = "flat"

#: Default negative-eigenvalue policy. Chosen by comparison with the exact quadratic oracle on indefinite
#: synthetic spectra (5 % negative mass; ``bench/limits_synthetic.py``): see :func:`pruning_limit`.
DEFAULT_NEGATIVE = "abs"

# float64 unit roundoff
_U = float(np.finfo(np.float64).eps) / 2.0
# Root-finding tolerance on ρ (a kept *fraction*): far below any statistical error of the estimate.
_XTOL = 1e-12
# Number of standard errors of the SLQ estimate added to the bands (≈95 % for a Gaussian error).
_BAND_Z = 2.0


# --------------------------------------------------------------------------------------------------------
# The one kept fraction -> kept count rule
# --------------------------------------------------------------------------------------------------------
def kept_count(kept_fraction: float, n: int) -> int:
    """The number of weights kept at kept fraction ``ρ`` out of ``n``: ``k = ⌈ρn⌉`` up to rounding.

    The one fraction→count rule of the package (masks, sweeps, limits, results). ``ρ`` is usually a
    decimal (0.3, 0.001) whose binary value times ``n`` lands a few ulps above an integer
    (``0.3 · 10 = 3.0000000000000004``); the product is therefore lowered by ``8·u·ρn`` (``u`` the float64
    unit roundoff, far above the two roundings of ``ρ`` and of the product) before the ceiling, and no more:
    a genuine excess such as ``ρn = 3.0000004`` still keeps 4.

    >>> kept_count(0.3, 10), kept_count(0.001, 3883000), kept_count(0.25, 3), kept_count(3.0000004e-7, 10**7)
    (3, 3883, 1, 4)
    """
    rho = check_fraction("kept_fraction", kept_fraction)
    n = check_int("n", n, minimum=0)
    x = rho * n
    return min(n, max(0, math.ceil(x - 8.0 * _U * x)))


# --------------------------------------------------------------------------------------------------------
# R(ρ): the magnitude-pruning distance, continuous in ρ
# --------------------------------------------------------------------------------------------------------
class MagnitudeProfile:
    """``R(ρ) = ‖w* − w^k‖`` for global magnitude pruning, made continuous in the kept fraction ρ.

    With the squared weights sorted ascending, ``a_1 ≤ … ≤ a_N`` and ``C(j) = Σ_{i≤j} a_i``, keeping
    ``k`` weights leaves ``R² = C(N − k)``. For a fractional ``j = (1 − ρ)N`` we interpolate ``C``
    linearly, so ``R²(ρ)`` is continuous, piecewise linear and non-increasing in ρ, with ``R(1) = 0``.

    >>> MagnitudeProfile([3.0, -1.0, 2.0]).R(1 / 3)   # keep |3|: remove 1 and 2
    2.23606797749979
    """

    def __init__(self, weights: Any) -> None:
        w = _as_weight_vector(weights)
        self.N: int = int(w.size)
        sq = np.sort(w * w)
        self._cum = np.concatenate([[0.0], np.cumsum(sq)])
        self._j = np.arange(self.N + 1, dtype=np.float64)
        #: The kept fraction at which every non-zero weight is kept (R vanishes from there on).
        self.kept_fraction_nonzero: float = float(np.count_nonzero(sq)) / self.N

    def R2(self, rho: Any) -> Any:
        """``R(ρ)²`` (vectorised over ρ ∈ [0, 1])."""
        j = (1.0 - np.clip(np.asarray(rho, dtype=np.float64), 0.0, 1.0)) * self.N
        out = np.interp(j, self._j, self._cum)
        return float(out) if np.ndim(out) == 0 else out

    def R(self, rho: Any) -> Any:
        """``R(ρ)`` (vectorised over ρ ∈ [0, 1])."""
        out = np.sqrt(self.R2(rho))
        return float(out) if np.ndim(out) == 0 else out

    @property
    def norm2(self) -> float:
        """``‖w*‖²`` (= ``R(0)²``)."""
        return float(self._cum[-1])


# --------------------------------------------------------------------------------------------------------
# The spectral measure after the negative-eigenvalue policy and the zero mass
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Measure:
    """Per-probe quadrature rules with non-negative nodes; pooled rule = the average over probes."""

    nodes: np.ndarray  # (n_probes, m), all ≥ 0
    weights: np.ndarray  # (n_probes, m), rows sum to 1
    exact: bool

    @property
    def n_probes(self) -> int:
        return int(self.nodes.shape[0])

    def per_probe(self, f_vals: np.ndarray) -> np.ndarray:
        return (self.weights * f_vals).sum(axis=1)

    def mean(self, f_vals: np.ndarray) -> float:
        return float(self.per_probe(f_vals).mean())

    def stderr(self, f_vals: np.ndarray) -> float:
        if self.exact:
            return 0.0
        vals = self.per_probe(f_vals)
        if vals.size < 2:
            return math.inf
        return float(vals.std(ddof=1) / math.sqrt(vals.size))

    # the Stieltjes-type functional of the free threshold
    def g(self, s: float) -> float:
        """``E[λ/(λ + s)]`` for ``s > 0`` (decreasing from the rank fraction to 0)."""
        lam = self.nodes
        return self.mean(lam / (lam + s))

    @property
    def rank_fraction(self) -> float:
        return self.mean((self.nodes > 0).astype(np.float64))

    @property
    def mean_eigenvalue(self) -> float:
        return self.mean(self.nodes)

    @property
    def min_positive(self) -> float:
        pos = self.nodes[(self.nodes > 0) & (self.weights > 0)]
        return float(pos.min()) if pos.size else 0.0


def _as_weight_vector(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().cpu().numpy()
    try:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"weights must be a numeric array, got {type(weights).__name__}") from exc
    if w.size == 0:
        raise ValueError("weights must be non-empty, got an empty array")
    if not np.all(np.isfinite(w)):
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise ValueError(f"weights must be finite, got {bad} NaN/inf entries")
    return w


def _as_spectrum(spectrum: Any) -> Spectrum:
    if isinstance(spectrum, Spectrum):
        return spectrum
    if hasattr(spectrum, "detach"):
        spectrum = spectrum.detach().cpu().numpy()
    try:
        lam = np.asarray(spectrum, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"spectrum must be a numerics.Spectrum or an array of eigenvalues, got {type(spectrum).__name__}"
        ) from exc
    if lam.size == 0:
        raise ValueError("spectrum must be non-empty, got an empty array of eigenvalues")
    if not np.all(np.isfinite(lam)):
        bad = int(np.count_nonzero(~np.isfinite(lam)))
        raise ValueError(f"spectrum eigenvalues must be finite, got {bad} NaN/inf entries")
    return Spectrum.from_eigenvalues(lam)


def _apply_policy(spec: Spectrum, negative: str, zero_mass: float) -> tuple[_Measure, float]:
    """Apply the negative-eigenvalue policy and add the exact-zero atom; return (measure, negative mass)."""
    nodes = np.array(spec.nodes, dtype=np.float64)
    weights = np.array(spec.weights, dtype=np.float64)
    neg = nodes < 0
    negative_mass = float((weights * neg).sum(axis=1).mean())
    if negative == "abs":  # the authors' folding |λ|
        nodes = np.abs(nodes)
    elif negative == "clip":  # negative curvature treated as zero curvature (contributes 1 to δ/D)
        nodes = np.where(neg, 0.0, nodes)
    elif negative == "drop":  # remove the negative part of the measure and renormalise each probe
        weights = np.where(neg, 0.0, weights)
        sums = weights.sum(axis=1)
        if np.any(sums <= 0):
            raise ValueError(
                "negative='drop' leaves no spectral mass on some probe (all its nodes are negative); "
                "use negative='abs' or 'clip'"
            )
        weights = weights / sums[:, None]
        nodes = np.where(neg, 0.0, nodes)  # irrelevant (zero weight) but keeps nodes ≥ 0
    if zero_mass > 0:
        z = float(zero_mass)
        nodes = np.concatenate([nodes, np.zeros((nodes.shape[0], 1))], axis=1)
        weights = np.concatenate([(1.0 - z) * weights, np.full((weights.shape[0], 1), z)], axis=1)
    return _Measure(nodes, weights, spec.exact), negative_mass


# --------------------------------------------------------------------------------------------------------
# The free threshold: s(ρ) and Δ(ρ)
# --------------------------------------------------------------------------------------------------------
def _solve_s(meas: _Measure, rho: float) -> float:
    """The unique ``s > 0`` with ``E[λ/(λ + s)] = ρ`` for ``0 < ρ < rank fraction`` (brentq in log s).

    Bracket: ``E[λ/(λ+s)] ≤ E[λ]/s`` gives ``g(2E[λ]/ρ) ≤ ρ/2``; and
    ``g(s) ≥ r λ₊/(λ₊ + s)`` (``r`` the rank fraction, ``λ₊`` the least positive node) gives
    ``g(s) > ρ`` for ``s < λ₊ (r − ρ)/ρ``.
    """
    r = meas.rank_fraction
    if not 0.0 < rho < r:
        raise ValueError(f"s(ρ) exists only for 0 < ρ < rank fraction {r!r}, got ρ={rho!r}")
    hi = 2.0 * meas.mean_eigenvalue / rho
    lo = 0.5 * meas.min_positive * (r - rho) / rho
    if not (lo > 0 and math.isfinite(lo)):
        lo = hi * 1e-300
    f = lambda x: meas.g(math.exp(x)) - rho  # noqa: E731
    flo, fhi = f(math.log(lo)), f(math.log(hi))
    if flo <= 0:  # only through rounding when ρ is within an ulp of the rank fraction
        return lo
    if fhi >= 0:  # pragma: no cover - excluded by the bound above
        return hi
    x = brentq(f, math.log(lo), math.log(hi), xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    return math.exp(x)


def _free_m(meas: _Measure, rho: float) -> tuple[float, float]:
    """``(m_S(ρ), s(ρ))`` with ``m_S = ρ s/(1 − ρ)``; ``m_S(0) = E[λ]``, ``m_S = 0`` at/after the rank."""
    r = meas.rank_fraction
    if rho <= 0.0:
        return meas.mean_eigenvalue, math.inf
    if rho >= r or rho >= 1.0:
        return 0.0, 0.0
    s = _solve_s(meas, rho)
    return rho * s / (1.0 - rho), s


def _flat_T(meas: _Measure, R2: float, eps: float) -> np.ndarray:
    """Per-node ``λR²/(λR² + 2ε)`` (= 1 − r_i²/(R² + r_i²)); zero curvature gives 0."""
    lam = meas.nodes
    return lam * R2 / (lam * R2 + 2.0 * eps)


# --------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimitCurves:
    """Curves for plotting, evaluated on a grid of kept fractions (not used to solve anything).

    ``loss_increase`` is the method's predicted least loss increase: ``½R²·ρs/(1−ρ)`` for ``"free"``,
    ``½R²·s`` for ``"flat"`` (its threshold is where the curve crosses ε); ``s`` is NaN where undefined
    (ρ = 0, or ρ at/after the rank fraction where it is 0).
    """

    kept_fraction: np.ndarray
    loss_increase: np.ndarray
    R: np.ndarray
    s: np.ndarray


@dataclass(frozen=True)
class PruningLimit:
    """The predicted pruning limit and its diagnostics.

    Attributes
    ----------
    method:
        ``"free"`` (ours, docs/math.md §2) or ``"flat"`` (the authors').
    kept_fraction:
        Kept fraction ``ρ* = k/N`` (the final paper's "pruning ratio" is this kept fraction).
    removed_fraction:
        Removed fraction ``1 − ρ*`` (a property derived from ``kept_fraction``; what the authors' code prints).
    kept_count:
        :func:`kept_count` ``(ρ*, N)`` (a property).
    kept_fraction_lower, kept_fraction_upper:
        **Our** bands (docs/math.md §2; not the paper's statements, which were unavailable):
        ``ρ* − (1 + z·D·se)/D − a_η/√D`` and ``ρ* + z·se + a_η/√D`` with ``z = 2``, clipped to [0, 1].
    R:
        ``R(ρ*)``, the distance moved by magnitude pruning at the limit.
    s:
        ``s(ρ*)`` (the free-compression parameter); ``inf`` when ``ρ* = 0``.
    predicted_increase:
        The method's predicted least loss increase at ``ρ*`` (``= ε`` unless ``ρ* = 0``).
    eps, D, N:
        The tolerance, the Hessian dimension the spectrum describes, and the number of prunable weights.
    stderr:
        Standard error of ``ρ*`` from the SLQ probes by the delta method (0 for exact eigenvalues, ``inf``
        with a single probe); see :func:`pruning_limit`.
    negative_mass, zero_mass, rank_fraction, mean_eigenvalue:
        The spectral measure's mass on λ < 0 (before the policy), the exact-zero mass added, the mass on
        λ > 0 and ``Tr(H)/D`` after the policy.
    sharpness_bound:
        ``Tr(H)R²/(Tr(H)R² + 2εD)`` at ``R = R(ρ*)`` (docs/math.md §2): an upper bound on the flat ``ρ*`` by
        concavity of ``λ ↦ λR²/(λR² + 2ε)``.
    uncompensated_bound:
        The least ρ with ``½ R(ρ)² Tr(H)/D ≤ ε`` (the loss increase of magnitude pruning without
        compensation, in the same Haar model): an upper bound on the free ``ρ*``, since ``m_S(ρ)`` is
        non-increasing from ``m_S(0) = Tr(H)/D``.
    settings:
        The settings used (method, eta, negative, zero_mass, hessian_space, band_z, ...).
    curves:
        :class:`LimitCurves` for plotting.
    iterations, converged:
        Root-finder diagnostics (0 iterations when the limit sits at a boundary).
    """

    method: str
    kept_fraction: float
    kept_fraction_lower: float
    kept_fraction_upper: float
    R: float
    s: float
    predicted_increase: float
    eps: float
    D: int
    N: int
    stderr: float
    negative_mass: float
    zero_mass: float
    rank_fraction: float
    mean_eigenvalue: float
    sharpness_bound: float
    uncompensated_bound: float
    settings: dict[str, Any] = field(default_factory=dict)
    curves: LimitCurves | None = None
    iterations: int = 0
    converged: bool = True

    @property
    def removed_fraction(self) -> float:
        """``1 − ρ*``, the fraction removed (what the authors' code prints as the pruning ratio)."""
        return 1.0 - self.kept_fraction

    @property
    def kept_count(self) -> int:
        """The number of weights kept at ``ρ*``: :func:`kept_count` ``(ρ*, N)``."""
        return kept_count(self.kept_fraction, self.N)


# --------------------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------------------
def pruning_limit(
    spectrum: Spectrum | Sequence[float] | np.ndarray,
    weights: Any,
    eps: float,
    *,
    eta: float = 0.01,
    negative: str = DEFAULT_NEGATIVE,
    zero_mass: float = 0.0,
    method: str = DEFAULT_METHOD,
    hessian_space: str = "prunable",
    n_curve: int = 201,
) -> PruningLimit:
    r"""Predict the smallest kept fraction ``ρ*`` of the prunable weights with loss increase ``≤ ε``.

    Parameters
    ----------
    spectrum:
        A :class:`numerics.slq.Spectrum` (SLQ quadrature, used directly) or explicit eigenvalues of the
        Hessian ``H`` at ``w*``.
    weights:
        The prunable weights ``w*`` (any shape; flattened). ``N = weights.size``.
    eps:
        Loss tolerance ``ε > 0``. The authors use the standard deviation of the per-minibatch (128)
        training loss of the dense model (docs/math.md §2). ``ρ*`` decreases as ``ε`` grows.
    eta:
        Failure probability of the kinematic formula for the bands (``a_η``, docs/math.md §1.4); 0.01 as in
        ALMT's examples.
    negative:
        Negative-eigenvalue policy: ``"abs"`` (the authors' folding ``|λ|``), ``"clip"`` (zero curvature,
        contributes 1 to ``δ/D``) or ``"drop"`` (remove and renormalise). Default ``"abs"``: on indefinite
        synthetic spectra (5 % negative mass) it was the closest of the three to the exact quadratic oracle
        for both methods (``bench/limits_synthetic.py``; the three differ by less than the method error).
    zero_mass:
        Fraction ``z ∈ [0, 1)`` of directions with exactly zero curvature, added as an atom at 0 (each
        contributes 1 to ``δ/D``); the rest of the measure is scaled by ``1 − z``. The free limit never
        exceeds the rank fraction ``1 − z``.
    method:
        ``"flat"`` (default, :data:`DEFAULT_METHOD`; the authors' formula) or ``"free"`` (our free-probability
        threshold).
    hessian_space:
        ``"prunable"`` (default): the Hessian is over the N prunable weights, so its dimension ``D`` must
        equal ``N``. ``"all"``: the authors' mixture (Hessian over all trainable parameters, ``R`` over the
        prunable weights); then ``D ≥ N`` is allowed and ``D`` is used in the bands and sharpness bound.
    n_curve:
        Number of grid points of the plotting curves (each point is one root solve); ``0`` skips them
        (``curves`` is then None), for callers that need only the limit.

    Returns
    -------
    PruningLimit

    Notes
    -----
    *Free* (ours): ``ρ* = min{ρ : ½ R(ρ)² ρ s(ρ)/(1 − ρ) ≤ ε}`` with ``E_μ[λ/(λ+s(ρ))] = ρ``. The
    left side is non-increasing in ρ (``R`` decreases; ``m_S = ρs/(1−ρ)`` decreases by the variance
    argument in ``proofs_check.limits``), so brentq on ``[0, min(rank, ρ_nonzero)]`` finds the unique
    crossing. *Flat* (the authors'): ``ρ* = E_μ[λR(ρ*)²/(λR(ρ*)² + 2ε)]``; ``ρ − E[…]`` is strictly
    increasing, so brentq on ``[0, 1]``.

    Standard error (delta method, from the SLQ probes): at ``ρ*`` the per-probe values of the functional
    that carries the spectrum (flat: ``T = E[λR²/(λR²+2ε)]``; free: ``g = E[λ/(λ+s*)]``) give its
    standard error; it is propagated through the implicit function, ``se(ρ*) = se(T)/(1 − T'(ρ*))`` for
    flat and ``se(ρ*) = se(g)/(s E[λ/(λ+s)²]) / |d log Δ/dρ|`` for free (derivatives in ρ by central
    differences of the pooled functions).

    >>> lim = pruning_limit([2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], eps=1.0, method="free")
    >>> round(lim.kept_fraction, 6)  # ½·4(1−ρ)·2 = 1
    0.75
    """
    # ---- validation -----------------------------------------------------------------------------------
    check_choice("method", method, METHODS)
    check_choice("negative", negative, NEGATIVE_POLICIES)
    check_choice("hessian_space", hessian_space, HESSIAN_SPACES)
    eps = check_positive("eps", eps)
    zero_mass = check_real("zero_mass", zero_mass, minimum=0.0, maximum=1.0, open_max=True)
    a = a_eta(eta)
    n_curve = check_int("n_curve", n_curve, minimum=0)
    if n_curve == 1:
        raise ValueError("n_curve must be 0 (no curves) or an integer >= 2, got n_curve=1")
    spec = _as_spectrum(spectrum)
    profile = MagnitudeProfile(weights)
    N, D = profile.N, spec.dim
    if D < N:
        raise ValueError(
            f"the spectrum has dimension D={D} < N={N} prunable weights; the Hessian must cover every "
            "prunable weight"
        )
    if hessian_space == "prunable" and D != N:
        raise ValueError(
            f"the spectrum has dimension D={D} but there are N={N} prunable weights; pass "
            "hessian_space='all' to use a Hessian over all parameters (the authors' choice)"
        )
    meas, negative_mass = _apply_policy(spec, negative, float(zero_mass))
    rank = meas.rank_fraction
    mean_lam = meas.mean_eigenvalue
    D_band = N if hessian_space == "prunable" else D

    # ---- the threshold --------------------------------------------------------------------------------
    iterations, converged = 0, True
    if method == "free":

        def excess(rho: float) -> float:  # Δ(ρ) − ε, Δ non-increasing
            m, _ = _free_m(meas, rho)
            return 0.5 * profile.R2(rho) * m - eps

        rho_hi = min(rank, profile.kept_fraction_nonzero)
        if excess(0.0) <= 0.0:
            rho_star = 0.0
        else:
            # Δ(rho_hi) = 0 < ε (R = 0 or m_S = 0 there), so the bracket is valid.
            rho_star, info = brentq(excess, 0.0, rho_hi, xtol=_XTOL, full_output=True, maxiter=500)
            iterations, converged = info.iterations, info.converged
        m_star, s_star = _free_m(meas, rho_star)
        predicted = 0.5 * profile.R2(rho_star) * m_star
    else:

        def flat_F(rho: float) -> float:  # ρ − T(ρ), strictly increasing
            return rho - meas.mean(_flat_T(meas, profile.R2(rho), eps))

        if flat_F(0.0) >= 0.0:  # T(0) = 0: no curvature or no weights to move
            rho_star = 0.0
        else:
            rho_star, info = brentq(flat_F, 0.0, 1.0, xtol=_XTOL, full_output=True, maxiter=500)
            iterations, converged = info.iterations, info.converged
        s_star = _free_m(meas, rho_star)[1]
        predicted = 0.5 * profile.R2(rho_star) * s_star if rho_star > 0 else math.inf
    R_star = float(profile.R(rho_star))

    # ---- standard error (delta method) ----------------------------------------------------------------
    stderr = _delta_stderr(meas, profile, eps, method, rho_star, s_star)

    # ---- bands (ours), bounds ---------------------------------------------------------------------------
    se_term = _BAND_Z * stderr if math.isfinite(stderr) else math.inf
    rho_lower = float(np.clip(rho_star - 1.0 / D_band - se_term - a / math.sqrt(D_band), 0.0, 1.0))
    rho_upper = float(np.clip(rho_star + se_term + a / math.sqrt(D_band), 0.0, 1.0))
    trR2 = mean_lam * profile.R2(rho_star)  # Tr(H) R² / D
    sharp = trR2 / (trR2 + 2.0 * eps) if trR2 > 0 else 0.0
    unc = _uncompensated_bound(profile, mean_lam, eps)

    curves = _curves(meas, profile, eps, method, n_curve) if n_curve else None
    settings = {
        "method": method,
        "eta": float(eta),
        "a_eta": a,
        "negative": negative,
        "zero_mass": float(zero_mass),
        "hessian_space": hessian_space,
        "band_z": _BAND_Z,
        "xtol": _XTOL,
        "n_probes": spec.n_probes,
        "exact_spectrum": bool(spec.exact),
        "stderr_method": "delta",
    }
    logger.debug("pruning_limit %s: rho*=%.6f (iterations %d)", method, rho_star, iterations)
    return PruningLimit(
        method=method,
        kept_fraction=float(rho_star),
        kept_fraction_lower=rho_lower,
        kept_fraction_upper=rho_upper,
        R=R_star,
        s=float(s_star),
        predicted_increase=float(predicted),
        eps=eps,
        D=int(D),
        N=int(N),
        stderr=float(stderr),
        negative_mass=negative_mass,
        zero_mass=float(zero_mass),
        rank_fraction=float(rank),
        mean_eigenvalue=float(mean_lam),
        sharpness_bound=float(sharp),
        uncompensated_bound=float(unc),
        settings=settings,
        curves=curves,
        iterations=int(iterations),
        converged=bool(converged),
    )


def _uncompensated_bound(profile: MagnitudeProfile, mean_lam: float, eps: float) -> float:
    """Least ρ with ``½ R(ρ)² E[λ] ≤ ε`` (R² is piecewise linear and non-increasing)."""
    if 0.5 * profile.norm2 * mean_lam <= eps:
        return 0.0
    f = lambda rho: 0.5 * profile.R2(rho) * mean_lam - eps  # noqa: E731
    return float(brentq(f, 0.0, 1.0, xtol=_XTOL))


def _delta_stderr(
    meas: _Measure, profile: MagnitudeProfile, eps: float, method: str, rho: float, s: float
) -> float:
    if meas.exact:
        return 0.0
    if meas.n_probes < 2:
        return math.inf
    h = 1e-5
    lo, hi = max(rho - h, 0.0), min(rho + h, 1.0)
    if method == "flat":
        if rho <= 0.0:
            return 0.0
        se_T = meas.stderr(_flat_T(meas, profile.R2(rho), eps))
        T = lambda r: meas.mean(_flat_T(meas, profile.R2(r), eps))  # noqa: E731
        dT = (T(hi) - T(lo)) / (hi - lo)
        return float(se_T / (1.0 - dT))
    if rho <= 0.0 or not (0.0 < s < math.inf):
        return 0.0  # at the boundary ρ* = 0 the condition holds with slack
    lam = meas.nodes
    se_g = meas.stderr(lam / (lam + s))
    dlog_s = s * meas.mean(lam / (lam + s) ** 2)  # = −s g'(s) > 0

    def logD(r: float) -> float:
        m, _ = _free_m(meas, r)
        val = 0.5 * profile.R2(r) * m
        return math.log(val) if val > 0 else -math.inf

    hi = min(hi, meas.rank_fraction - 1e-12, profile.kept_fraction_nonzero - 1e-12)
    if hi <= lo:
        return math.inf
    dlogD = (logD(hi) - logD(lo)) / (hi - lo)
    if not (math.isfinite(dlogD) and dlogD < 0):
        return math.inf
    return float(se_g / dlog_s / abs(dlogD))


def _curves(meas: _Measure, profile: MagnitudeProfile, eps: float, method: str, n: int) -> LimitCurves:
    rho = np.linspace(0.0, 1.0, n)
    R2 = np.asarray(profile.R2(rho))
    s = np.full(n, np.nan)
    loss = np.empty(n)
    for i, r in enumerate(rho):
        m, si = _free_m(meas, float(r))
        if 0.0 < si < math.inf:
            s[i] = si
        if method == "free":
            loss[i] = 0.5 * R2[i] * m
        else:
            loss[i] = 0.5 * R2[i] * si if math.isfinite(si) else np.nan
    return LimitCurves(kept_fraction=rho, loss_increase=loss, R=np.sqrt(R2), s=s)


@dataclass(frozen=True)
class HaarMagnitudeLimit:
    """The magnitude-pruning (LOMP, uncompensated) limit predicted by the Haar model (ours; docs/math.md §2.2).

    Attributes
    ----------
    kept_fraction:
        The least ``ρ`` with ``½ R(ρ)² · m ≤ ε``, ``m = tr(H)/N`` (0 when ``m ≤ 0`` or when even ``ρ = 0``
        satisfies it). ``removed_fraction`` and ``kept_count`` are derived properties.
    mean_eigenvalue, mean_eigenvalue_stderr:
        ``m = tr(H)/N`` from the spectrum (signed: no negative-eigenvalue policy applies, since
        ``E[w_Pᵀ Q Λ Qᵀ w_P] = ‖w_P‖² tr(Λ)/N`` holds for any real ``Λ``), and its SLQ standard error.
    stderr:
        Standard error of ``kept_fraction`` propagated from ``mean_eigenvalue_stderr`` (delta method).
    R:
        ``R(ρ*)``.
    predicted_increase:
        ``½ R(ρ*)² m`` (``= ε`` unless the limit sits at 0).
    eps, N:
        The tolerance and the number of prunable weights.
    """

    kept_fraction: float
    mean_eigenvalue: float
    mean_eigenvalue_stderr: float
    stderr: float
    R: float
    predicted_increase: float
    eps: float
    N: int

    @property
    def removed_fraction(self) -> float:
        """``1 − ρ*``."""
        return 1.0 - self.kept_fraction

    @property
    def kept_count(self) -> int:
        """:func:`kept_count` ``(ρ*, N)``."""
        return kept_count(self.kept_fraction, self.N)


def haar_magnitude_limit(spectrum: Spectrum | Sequence[float] | np.ndarray, weights: Any, eps: float
                         ) -> HaarMagnitudeLimit:
    r"""The magnitude-pruning limit of the Haar model: the least ``ρ`` with ``½ R(ρ)² tr(H)/N ≤ ε`` (ours).

    Plain global magnitude pruning (no compensation) moves the weights by ``d = −w*_P``; the quadratic model
    of its loss increase is ``½ w*_Pᵀ H_PP w*_P``. If the eigenbasis ``Q`` of ``H = QΛQᵀ`` is Haar-distributed
    relative to the coordinates, ``E[w_Pᵀ H w_P] = ‖w_P‖² · tr(Λ)/N = R(ρ)² · tr(H)/N`` (``proofs_check``:
    ``E[QᵀE_{ii}Q] = I/N`` for Haar ``Q``), so the predicted limit is the least kept fraction with
    ``½ R(ρ)² tr(H)/N ≤ ε``. ``tr(H)/N`` is the signed mean eigenvalue of the spectrum (SLQ is exact for it up
    to the probe error: it is a degree-1 polynomial). The gradient term ``−g_Pᵀ w_P`` of a weight vector that
    is not a stationary point is not spectral; :mod:`nets.limit` adds it in its Taylor prediction.

    >>> r = haar_magnitude_limit([2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], eps=1.0)  # ½·4(1−ρ)·2 ≤ 1
    >>> round(r.kept_fraction, 10), r.mean_eigenvalue
    (0.75, 2.0)
    """
    eps = check_positive("eps", eps)
    spec = _as_spectrum(spectrum)
    profile = MagnitudeProfile(weights)
    N = profile.N
    if spec.dim != N:
        raise ValueError(f"the spectrum has dimension D={spec.dim} but there are N={N} prunable weights")
    m, m_se = spec.expect(lambda x: x)
    if spec.exact:
        m_se = 0.0
    if m <= 0 or 0.5 * profile.norm2 * m <= eps:
        rho = 0.0
    else:
        rho = float(brentq(lambda r: 0.5 * profile.R2(r) * m - eps, 0.0, 1.0, xtol=_XTOL))
    se = 0.0
    if 0.0 < rho < 1.0 and m > 0:
        if not math.isfinite(m_se):
            se = math.inf
        elif m_se > 0:
            h = 1e-6
            lo, hi = max(rho - h, 0.0), min(rho + h, 1.0)
            slope = (profile.R2(hi) - profile.R2(lo)) / (hi - lo)  # dR²/dρ < 0
            # R²(ρ*) = 2ε/m  ⇒  dρ*/dm = (−2ε/m²) / (dR²/dρ)
            se = float(2.0 * eps / (m * m) * m_se / abs(slope)) if slope < 0 else math.inf
    R2 = profile.R2(rho)
    return HaarMagnitudeLimit(kept_fraction=rho, mean_eigenvalue=float(m), mean_eigenvalue_stderr=float(m_se),
                              stderr=se, R=math.sqrt(R2), predicted_increase=0.5 * R2 * m, eps=eps, N=N)


def magnitude_scaling(
    spectrum: Spectrum | Sequence[float] | np.ndarray,
    weights: Any,
    eps: float,
    factors: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 5.0),
    **kwargs: Any,
) -> list[PruningLimit]:
    """The predicted limit when the weights are scaled by each factor with the Hessian fixed.

    The paper's magnitude experiment (weights ×2…×5, docs/experiments.md §1.5): scaling ``w*`` by ``c`` scales
    ``R(ρ)`` by ``c``, so both thresholds keep more weights as ``c`` grows (``ρ*`` is non-decreasing in
    ``c``; the flat one solves ``ρ = E[λc²R²/(λc²R² + 2ε)]``). ``kwargs`` go to :func:`pruning_limit`.
    """
    w = _as_weight_vector(weights)
    out = []
    for c in factors:
        if not (isinstance(c, (int, float, np.floating, np.integer)) and math.isfinite(c) and c > 0):
            raise ValueError(f"factors must be positive finite numbers, got {c!r}")
        out.append(pruning_limit(spectrum, float(c) * w, eps, **kwargs))
    return out


# --------------------------------------------------------------------------------------------------------
# The authors' original computation (reference only)
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorsRatio:
    """Result of :func:`authors_pruning_ratio`: the removed fraction their code prints, and what it used."""

    removed_fraction: float
    kept_fraction: float
    index: int
    R_used: np.ndarray
    predicted_removed: np.ndarray
    grid: bool
    round_R: bool


def authors_pruning_ratio(
    nodes: np.ndarray,
    node_weights: np.ndarray,
    weights: Any,
    eps: float,
    *,
    zero_fraction: float = 0.0,
    round_R: bool = True,
    grid: bool = True,
    num_bins: int = 100_000,
    sigma_squared: float = 1e-10,
    overhead: float = 0.01,
    sweep: int = 1000,
) -> AuthorsRatio:
    """**The authors' computation** of the pruning ratio, reproduced as a reference (not for use).

    After Zhang et al.'s ``density_plot.py`` / ``cal_rate.py`` (QiaozheZhang/Global-One-shot-Pruning):

    1. *Grid* (``grid=True``): the Ritz values are smoothed onto ``num_bins`` equally spaced points on
       ``[mean λ_min − overhead, mean λ_max + overhead]`` with a Gaussian kernel of **variance**
       ``sigma_squared · max(1, range)``, averaged over runs (``sigma_squared=1e-10``, 10⁵ bins: the kernel
       is far narrower than the grid spacing, which distorts the quadrature weights by orders of
       magnitude). Zero-density bins are dropped. ``grid=False`` uses the quadrature directly.
    2. *Zero mass*: an atom of relative mass ``z/(1−z)`` at ``λ = 1e-30`` (their
       ``important_ev_num/(sparse_epoch − important_ev_num)``); ``zero_fraction`` is ``z``.
    3. ``gw(R) = Σ p · r²/(R² + r²) / Σ p`` with ``r² = 2ε/|λ|`` (written here in the algebraically equal
       form ``2ε/(2ε + |λ|R²)`` so that a grid point at 0 does not divide by zero).
    4. *Sweep*: for removed fractions ``i/sweep``, ``R_i`` is the distance moved by removing the
       ``max(1, ⌈(i/sweep)·N⌉)`` smallest magnitudes — their ``get_sparse_model`` (``utils.py``) prunes
       ``np.ceil(sparsity_rate * N)`` weights and at least one, in the same float64 arithmetic reproduced
       here (so level 0 already removes one weight; with ``⌊·⌋`` instead the answer was one sweep step off in
       4 of 12 cases compared side by side with their ``gaussian_width.py``);
       ``round_R=True`` rounds it to an integer and reads ``gw`` at that integer (their ``gw_list[R]``).
       The answer is the ``i`` minimising ``|gw(R_i) − i/sweep|``, i.e. the removed fraction ``i/sweep``.

    With ``grid=False, round_R=False`` this is the flat formula of :func:`pruning_limit` up to the sweep
    resolution ``1/sweep``.
    """
    w = _as_weight_vector(weights)
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    node_weights = np.atleast_2d(np.asarray(node_weights, dtype=np.float64))
    if nodes.shape != node_weights.shape:
        raise ValueError(f"nodes and node_weights must have equal shapes, got {nodes.shape}, {node_weights.shape}")
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(node_weights))):
        raise ValueError("nodes and node_weights must be finite")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    if not 0.0 <= zero_fraction < 1.0:
        raise ValueError(f"zero_fraction must be in [0, 1), got {zero_fraction!r}")
    if grid:
        lam_max = float(np.mean(np.max(nodes, axis=1))) + overhead
        lam_min = float(np.mean(np.min(nodes, axis=1))) - overhead
        grids = np.linspace(lam_min, lam_max, num_bins)
        var = sigma_squared * max(1.0, lam_max - lam_min)
        dens = np.zeros(num_bins)
        width = 40.0 * math.sqrt(var)  # only bins within 40 standard deviations of a node carry non-negligible mass
        for run in range(nodes.shape[0]):
            for th, tw in zip(nodes[run], node_weights[run]):
                if tw == 0:
                    continue
                i0 = max(int(np.searchsorted(grids, th - width)), 0)
                i1 = min(int(np.searchsorted(grids, th + width, side="right")), num_bins)
                x = grids[i0:i1]
                dens[i0:i1] += tw * np.exp(-((x - th) ** 2) / (2.0 * var)) / math.sqrt(2.0 * math.pi * var)
        dens /= nodes.shape[0]
        keep = dens > 0
        p, lam = dens[keep], grids[keep]
    else:
        p, lam = node_weights.reshape(-1) / nodes.shape[0], nodes.reshape(-1)
    if p.sum() <= 0:
        raise ValueError("the authors' grid density has no mass (every node fell between grid points)")
    if zero_fraction > 0:
        p = np.append(p, zero_fraction / (1.0 - zero_fraction) * p.sum())
        lam = np.append(lam, 1e-30)
    lam = np.abs(lam)
    psum = p.sum()

    def gw(R: np.ndarray) -> np.ndarray:
        R2 = np.asarray(R, dtype=np.float64)[:, None] ** 2
        return (p * (2.0 * eps / (2.0 * eps + lam * R2))).sum(axis=1) / psum

    profile = MagnitudeProfile(w)
    N, cum = profile.N, profile._cum  # cum[j] = sum of the j smallest squared magnitudes
    removed = np.arange(sweep) / sweep
    n_removed = np.maximum(1, np.ceil(removed * float(N))).astype(int)  # the authors' count, at least 1
    R = np.sqrt(cum[n_removed])
    if round_R:
        R_int = np.round(R).astype(int)
        table = gw(np.arange(int(math.sqrt(cum[-1])) + 2))
        pred = table[np.minimum(R_int, table.size - 1)]
        R_used = R_int.astype(np.float64)
    else:
        pred = gw(R)
        R_used = R
    idx = int(np.argmin(np.abs(pred - removed)))
    return AuthorsRatio(
        removed_fraction=float(removed[idx]),
        kept_fraction=float(1.0 - removed[idx]),
        index=idx,
        R_used=R_used,
        predicted_removed=pred,
        grid=bool(grid),
        round_R=bool(round_R),
    )
