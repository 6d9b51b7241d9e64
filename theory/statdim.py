"""Statistical dimension: closed forms (labelled exact / bound / asymptotic) and exact Monte Carlo.

``δ(C) = E‖Π_C(g)‖²``, ``g ~ N(0, I_d)`` (ALMT Def. 2.1 / Prop. 3.1). The Monte Carlo estimator averages the
exact per-sample value ``‖Π_C(g)‖²`` (a closed-form projection, or for descent cones the exact 1-D
minimisation over ``τ`` of ALMT Prop. 4.1), so its only error is sampling error, reported as a standard error.

The ℓ1 functions ``ψ(ρ)`` and ``ψ₊(ρ)`` (ALMT Prop. 4.5 / Eq. (4.8); docs/math.md §1.2):

``ψ(ρ) = inf_{τ≥0} { ρ(1 + τ²) + (1 − ρ) E(|g| − τ)₊² }``, ``E(|g| − τ)₊² = (1+τ²) erfc(τ/√2) − τ√(2/π) e^{−τ²/2}``,

with the optimal ``τ`` solving ``√(2/π) e^{−τ²/2}/τ − erfc(τ/√2) = ρ/(1 − ρ)``; ``ψ₊`` halves the off-support
term, so its ``τ`` solves the same equation with right-hand side ``2ρ/(1 − ρ)``.

>>> from theory.cones import NonnegativeOrthant
>>> statistical_dimension(NonnegativeOrthant(6)).value
3.0
>>> r = l1_psi(0.1)
>>> round(r.value, 6), round(r.tau, 6)
(0.328794, 1.140171)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
from scipy import special

from theory.validation import check_int, check_rng
from theory.cones import (
    Cone,
    EllipticCone,
    L1DescentCone,
    NegatedCone,
    NuclearDescentCone,
    PolarCone,
)

__all__ = [
    "MonteCarloResult",
    "StatDimFormula",
    "PsiResult",
    "statistical_dimension",
    "statistical_dimension_mc",
    "l1_psi",
    "l1_psi_nonneg",
    "expected_sq_excess",
]

_EPS = np.finfo(np.float64).eps
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class MonteCarloResult:
    """A Monte Carlo mean with its standard error ``std/√n_samples``."""

    mean: float
    stderr: float
    n_samples: int
    std: float

    def z_score(self, value: float) -> float:
        """``(mean − value)/stderr`` (``±inf`` if the standard error is 0 and the values differ)."""
        diff = self.mean - value
        if self.stderr == 0:
            return 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return diff / self.stderr


@dataclass(frozen=True)
class StatDimFormula:
    """A closed-form statistical dimension and what kind of statement it is.

    ``kind`` is ``"exact"``; ``"bound"`` (``lower ≤ δ ≤ upper`` rigorously, ``value`` the point formula);
    ``"asymptotic"`` (exact only in a proportional limit; ``lower``/``upper`` are ``None``); or
    ``"leading order"`` (``value`` has an ``O(1)`` error; ``lower``/``upper`` are rigorous bounds).
    """

    value: float
    kind: str
    lower: float | None
    upper: float | None
    reference: str

    def deviation_in_stderr(self, mc: MonteCarloResult) -> float:
        """Distance of the Monte Carlo mean from the statement, in standard errors.

        Exact: the z-score. Bound / leading order: the distance outside ``[lower, upper]`` (0 inside).
        Asymptotic: the z-score against ``value`` (expected to grow with the sample size).
        """
        if self.kind == "exact" or self.lower is None or self.upper is None:
            return mc.z_score(self.value)
        if mc.mean < self.lower:
            return mc.z_score(self.lower)
        if mc.mean > self.upper:
            return mc.z_score(self.upper)
        return 0.0


class PsiResult(NamedTuple):
    """``ψ`` values and the optimal thresholds ``τ*`` (floats for scalar input, arrays otherwise)."""

    value: Any
    tau: Any


# ----------------------------------------------------------------------------------------------------------
def statistical_dimension(cone: Cone) -> StatDimFormula:
    """The closed-form statistical dimension of ``cone`` with its kind (see :class:`StatDimFormula`).

    Exact for cones whose :meth:`~theory.cones.Cone.statistical_dimension` is a closed form; ALMT Prop. 4.5
    bounds for the ℓ1 descent cone (``dψ(s/d) − 2√(d/s) ≤ δ ≤ dψ(s/d)``; only the upper bound for the
    non-negative variant); ALMT Prop. 4.7 (asymptotic) for the nuclear-norm descent cone; the leading order
    ``Σ a²/(1+a²)`` ([reconstructed], docs/math.md §2) with inclusion bounds for an elliptic cone with unequal
    slopes. Polars and negations follow from ``δ(C°) = d − δ(C)`` and ``δ(−C) = δ(C)``.

    >>> from theory.cones import CircularCone
    >>> round(statistical_dimension(CircularCone(4, np.pi / 4)).value, 12)
    2.0
    """
    if not isinstance(cone, Cone):
        raise TypeError(f"cone must be a theory.cones.Cone, got {type(cone).__name__}")
    d = cone.ambient_dim
    if isinstance(cone, NegatedCone):
        return statistical_dimension(cone.cone)
    if isinstance(cone, PolarCone):
        f = statistical_dimension(cone.cone)
        lo = None if f.upper is None else d - f.upper
        hi = None if f.lower is None else d - f.lower
        return StatDimFormula(d - f.value, f.kind, lo, hi, f"d − δ of the polar; {f.reference}")
    if isinstance(cone, L1DescentCone):
        rho = cone.s / d
        if cone.nonnegative:
            val = d * l1_psi_nonneg(rho).value
            return StatDimFormula(val, "bound", 0.0, val, "ALMT Prop. 4.1 recipe upper bound d·ψ₊(s/d)")
        val = d * l1_psi(rho).value
        return StatDimFormula(val, "bound", val - 2.0 * math.sqrt(d / cone.s), val, "ALMT Prop. 4.5: d·ψ(s/d)")
    if isinstance(cone, NuclearDescentCone):
        return StatDimFormula(cone.statistical_dimension_asymptotic(), "asymptotic", None, None, "ALMT Prop. 4.7")
    if isinstance(cone, EllipticCone) and not cone._equal_slopes():
        lo, hi = cone.statistical_dimension_bounds()
        return StatDimFormula(
            cone.statistical_dimension_leading_order(),
            "leading order",
            lo,
            hi,
            "Σ a²/(1+a²) + O(1) [reconstructed, docs/math.md §2]; bounds by inclusion of circular cones",
        )
    val = cone.statistical_dimension()
    return StatDimFormula(float(val), "exact", float(val), float(val), "closed form")


def statistical_dimension_mc(
    cone: Cone, n_samples: int, rng: np.random.Generator, *, batch_size: int | None = None
) -> MonteCarloResult:
    """Exact Monte Carlo estimate of ``δ(C) = E‖Π_C(g)‖²`` with its standard error.

    Each sample's ``‖Π_C(g)‖²`` is exact (closed-form projection, or the exact 1-D minimisation over ``τ`` for
    descent cones; a cvxpy solve for :class:`~theory.cones.CvxpyCone`). Samples are drawn in batches of at
    most ``batch_size`` rows (default: about 2·10⁶ numbers per batch) from ``rng``.

    >>> from theory.cones import Subspace
    >>> statistical_dimension_mc(Subspace.coordinate(5, 2), 4000, np.random.default_rng(0)).z_score(2.0) < 4
    True
    """
    if not isinstance(cone, Cone):
        raise TypeError(f"cone must be a theory.cones.Cone, got {type(cone).__name__}")
    n_samples = check_int("n_samples", n_samples, minimum=2)  # a standard error needs two samples
    check_rng("rng", rng)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    return _gaussian_mc(cone.sq_norm_projection, cone.ambient_dim, n_samples, rng, batch_size)


def _gaussian_mc(
    sample: Callable[[np.ndarray], np.ndarray],
    d: int,
    n_samples: int,
    rng: np.random.Generator,
    batch_size: int | None = None,
) -> MonteCarloResult:
    """Mean of ``sample(g)`` over ``n_samples`` rows ``g ~ N(0, I_d)`` with its standard error (``ddof=1``).

    Arguments are validated by the callers. ``sample`` maps a ``(b, d)`` batch to ``b`` values; batches have
    at most ``batch_size`` rows (default: about 2·10⁶ numbers per batch), drawn in order from ``rng``.
    """
    n = int(n_samples)
    bs = max(1, 2_000_000 // d) if batch_size is None else int(batch_size)
    vals = np.empty(n)
    done = 0
    while done < n:
        b = min(bs, n - done)
        vals[done : done + b] = sample(rng.standard_normal((b, d)))
        done += b
    std = float(np.std(vals, ddof=1))
    return MonteCarloResult(float(np.mean(vals)), std / math.sqrt(n), n, std)


# ----------------------------------------------------------------------------------------------------------
def expected_sq_excess(tau: Any) -> np.ndarray:
    """``E(|g| − τ)₊² = (1 + τ²) erfc(τ/√2) − τ √(2/π) e^{−τ²/2}`` for ``g ~ N(0, 1)`` (ALMT Eq. (4.9)).

    >>> float(expected_sq_excess(0.0))
    1.0
    """
    t = np.asarray(tau, dtype=np.float64)
    # e^{−τ²/2}[(1+τ²) erfcx(τ/√2) − τ√(2/π)]: same value, no underflow-induced cancellation for τ ≲ 38
    return np.exp(-0.5 * t * t) * ((1.0 + t * t) * special.erfcx(t / math.sqrt(2.0)) - t * _SQRT_2_OVER_PI)


def _check_rho(rho: Any) -> np.ndarray:
    try:
        r = np.asarray(rho, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"rho must be a real number or array, got {type(rho).__name__}") from None
    if np.any(~np.isfinite(r)) or np.any((r < 0) | (r > 1)):
        bad = r[~(np.isfinite(r) & (r >= 0) & (r <= 1))].ravel()[0]
        raise ValueError(f"rho must lie in [0, 1] (a sparsity fraction s/d), got rho={float(bad)!r}")
    return r


def _solve_tau(target: np.ndarray) -> np.ndarray:
    """Root ``τ > 0`` of ``log L(τ) = log target`` with ``L(τ) = √(2/π)e^{−τ²/2}/τ − erfc(τ/√2)``.

    ``L`` decreases from ``+∞`` to ``0`` with ``L'(τ) = −√(2/π) e^{−τ²/2}/τ²``. Written as
    ``L = e^{−τ²/2} A(τ)``, ``A = √(2/π)/τ − erfcx(τ/√2)``, ``d log L/dτ = −√(2/π)/(τ² A)``; a bracketed
    Newton iteration on ``log L`` in ``[0, 40]`` (``τ = 40`` covers every positive float ``target``).
    """
    logt = np.log(target)
    lo = np.zeros_like(target)
    hi = np.full_like(target, 40.0)
    # start: τ ≈ √(2/π)/target for large targets; √(2 log(1/target)) roughly for small ones
    tau = np.where(target > 1.0, _SQRT_2_OVER_PI / (target + 1.0), np.sqrt(np.maximum(-2.0 * logt, 0.0)) + 0.5)
    tau = np.clip(tau, 1e-300, 39.0)
    active = np.ones(target.shape, dtype=bool)
    for _ in range(100):
        t = tau[active]
        A = _SQRT_2_OVER_PI / t - special.erfcx(t / math.sqrt(2.0))
        A = np.maximum(A, np.finfo(np.float64).tiny)
        F = -0.5 * t * t + np.log(A) - logt[active]
        dF = -_SQRT_2_OVER_PI / (t * t * A)
        lo_a = np.where(F > 0, t, lo[active])
        hi_a = np.where(F <= 0, t, hi[active])
        newton = t - F / dF
        ok = np.isfinite(newton) & (newton >= lo_a) & (newton <= hi_a)
        new = np.where(ok, newton, 0.5 * (lo_a + hi_a))
        lo[active], hi[active] = lo_a, hi_a
        # converged: an accepted Newton step of a few ulps, an exact root, or a collapsed bracket
        done = (ok & (np.abs(newton - t) <= 4 * _EPS * t)) | (F == 0) | (hi_a - lo_a <= 4 * _EPS * hi_a)
        tau[active] = new
        idx = np.flatnonzero(active)
        active[idx[done]] = False
        if not active.any():
            break
    return tau


def _psi(rho: Any, half: bool) -> PsiResult:
    r = _check_rho(rho)
    scalar = r.ndim == 0
    r = np.atleast_1d(r)
    value = np.empty_like(r)
    tau = np.empty_like(r)
    zero, one = r == 0, r == 1
    value[zero], tau[zero] = 0.0, np.inf
    value[one], tau[one] = 1.0, 0.0
    mid = ~(zero | one)
    if mid.any():
        rm = r[mid]
        target = (2.0 if half else 1.0) * rm / (1.0 - rm)
        t = _solve_tau(target)
        factor = 0.5 if half else 1.0
        value[mid] = rm * (1.0 + t * t) + (1.0 - rm) * factor * expected_sq_excess(t)
        tau[mid] = t
    if scalar:
        return PsiResult(float(value[0]), float(tau[0]))
    return PsiResult(value, tau)


def l1_psi(rho: Any) -> PsiResult:
    """``ψ(ρ)`` and its optimal ``τ*`` (ALMT Eq. (4.8); docs/math.md §1.2), vectorised over ``rho ∈ [0, 1]``.

    ``d·ψ(s/d)`` is the statistical dimension of the ℓ1 descent cone at an ``s``-sparse point up to
    ``2√(d/s)`` (ALMT Prop. 4.5). ``ψ(0) = 0`` (``τ* = ∞``), ``ψ(1) = 1`` (``τ* = 0``).

    >>> round(l1_psi(0.5).value, 6)
    0.8313
    """
    return _psi(rho, half=False)


def l1_psi_nonneg(rho: Any) -> PsiResult:
    """``ψ₊(ρ) = inf_τ { ρ(1+τ²) + (1−ρ)·½E(|g|−τ)₊² }`` and ``τ₊*`` (non-negative ℓ1 descent cone).

    >>> round(l1_psi_nonneg(0.1).value, 6)
    0.265304
    """
    return _psi(rho, half=True)
