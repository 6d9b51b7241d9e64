"""Kinematic formula, Crofton probabilities and Gordon's escape through a mesh (docs/math.md §1.4).

>>> round(a_eta(0.01), 4)
6.9233
>>> from theory.cones import CircularCone
>>> round(crofton_probability(CircularCone(10, np.pi / 6), 3), 6)
0.457382
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from theory.cones import Cone
from theory.validation import check_int, check_real
from theory.width import chi_mean

__all__ = ["a_eta", "KinematicResult", "kinematic_formula", "crofton_probability", "gordon_escape_probability"]


def _eta(eta: Any) -> float:
    """A failure probability in the open interval (0, 1)."""
    return check_real("eta", eta, minimum=0.0, maximum=1.0, open_min=True, open_max=True)


def a_eta(eta: float) -> float:
    """``a_η = √(8 log(4/η))`` (ALMT Thm. I): ``4 exp(−a_η²/8) = η``, the kinematic tail bound at level η."""
    return math.sqrt(8.0 * math.log(4.0 / _eta(eta)))


@dataclass(frozen=True)
class KinematicResult:
    """Outcome of the approximate kinematic formula for ``P{C ∩ QK ≠ {0}}``.

    ``regime``: ``"infeasible"`` (``δ(C)+δ(K) ≤ d − a_η√d``: intersection trivial w.p. ≥ 1 − η),
    ``"feasible"`` (``≥ d + a_η√d``: nontrivial w.p. ≥ 1 − η) or ``"transition"``. ``prob_lower`` /
    ``prob_upper`` bound the intersection probability using the sharpest level the margin allows,
    ``4 exp(−λ²/(8d))`` with ``λ = |δ(C) + δ(K) − d|`` (ALMT Thm. I); ``margin`` is ``δ(C)+δ(K)−d``.
    """

    regime: str
    prob_lower: float
    prob_upper: float
    margin: float
    half_width: float


def kinematic_formula(delta_C: float, delta_K: float, d: int, eta: float = 0.01) -> KinematicResult:
    """Approximate kinematic formula (ALMT Thm. I) for cones ``C, K ⊂ R^d``, not both subspaces.

    ``δ(C) + δ(K) ≤ d − a_η√d ⇒ P{C ∩ QK ≠ {0}} ≤ η``; ``≥ d + a_η√d ⇒ P ≥ 1 − η`` (``Q`` Haar-random).
    Default ``η = 0.01`` (the level quoted in docs/math.md §1.4).

    >>> r = kinematic_formula(10.0, 10.0, 1000)
    >>> r.regime, r.prob_lower, r.prob_upper < 1e-50
    ('infeasible', 0.0, True)
    """
    d = check_int("d", d, minimum=1)
    delta_C = check_real("delta_C", delta_C, minimum=0.0, maximum=d)
    delta_K = check_real("delta_K", delta_K, minimum=0.0, maximum=d)
    e = _eta(eta)
    margin = delta_C + delta_K - d
    half = a_eta(e) * math.sqrt(d)
    tail = min(1.0, 4.0 * math.exp(-margin * margin / (8.0 * d)))
    lower, upper = (1.0 - tail, 1.0) if margin > 0 else (0.0, tail)
    if margin <= -half:
        regime = "infeasible"
    elif margin >= half:
        regime = "feasible"
    else:
        regime = "transition"
    return KinematicResult(regime, lower, upper, margin, half)


def crofton_probability(cone_or_volumes: Any, m: int) -> float:
    """``P{C ∩ L ≠ {0}}`` for a uniformly random subspace ``L`` of codimension ``m`` (exact).

    Crofton formula (ALMT Fact 2.1 / Eq. (5.10)): ``2 h_{m+1}(C)``, ``h_k = v_k + v_{k+2} + …``, for a cone
    that is not a subspace; for a subspace of dimension ``k`` the probability is ``1`` if ``k > m`` else
    ``0``. Accepts a :class:`~theory.cones.Cone` with known intrinsic volumes or the vector
    ``(v_0, …, v_d)`` itself. ``0 ≤ m ≤ d``.

    >>> from theory.cones import LorentzCone
    >>> round(crofton_probability(LorentzCone(20), 8), 6)
    0.746094
    """
    if isinstance(cone_or_volumes, Cone):
        v = cone_or_volumes.intrinsic_volumes()
    else:
        try:
            v = np.asarray(cone_or_volumes, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"cone_or_volumes must be a Cone or an array of intrinsic volumes, got {type(cone_or_volumes).__name__}"
            ) from None
        if v.ndim != 1 or v.size < 2:
            raise ValueError(f"intrinsic volumes must be a 1-D array (v_0, ..., v_d) with d >= 1, got shape {v.shape}")
        if not np.all(np.isfinite(v)) or np.any(v < -1e-12):
            raise ValueError("intrinsic volumes must be finite and non-negative")
        if abs(v.sum() - 1.0) > 1e-9:
            raise ValueError(f"intrinsic volumes must sum to 1, got sum {float(v.sum())!r}")
    d = v.size - 1
    m = check_int("m", m, minimum=0, maximum=d)  # the codimension
    nz = np.flatnonzero(v > 1e-15)
    if nz.size == 1 and abs(v[nz[0]] - 1.0) < 1e-12:
        # a single unit intrinsic volume at k: the cone is a k-dimensional subspace
        return 1.0 if nz[0] > m else 0.0
    return float(min(1.0, 2.0 * np.sum(v[m + 1 :: 2])))


def gordon_escape_probability(width: float, m: int) -> float:
    """Lower bound on ``P{K ∩ L = ∅}`` for ``K ⊂ S^{d−1}`` and ``L`` a uniformly random codimension-``m`` subspace.

    Gordon's escape through a mesh (Gordon 1988, Cor. 3.4) in the form of Chandrasekaran, Recht, Parrilo &
    Willsky (2012), Cor. 3.3: if ``w(K) < λ_m`` then ``P ≥ 1 − exp(−(λ_m − w)²/2)``, where
    ``λ_m = E‖g_m‖`` (:func:`~theory.width.chi_mean`) — not ``√m``, which is larger and would overstate the
    guarantee. Returns 0 when ``w ≥ λ_m`` (no guarantee).

    >>> gordon_escape_probability(10.0, 5)
    0.0
    """
    width = check_real("width", width, minimum=0.0)
    m = check_int("m", m, minimum=1)  # the codimension
    gap = chi_mean(m) - width
    if gap <= 0:
        return 0.0
    return -math.expm1(-0.5 * gap * gap)
