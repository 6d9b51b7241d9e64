"""Tolerances derived from what produced the numbers: solver tolerances times the input scale, float64 rounding
times the size of the computation, and standard errors for Monte Carlo.

cvxpy / CLARABEL: the solver stops when the duality gap is at most ``tol_gap_abs + tol_gap_rel·|objective|`` and
the primal residual at most ``tol_feas`` (relative). For an objective that is strongly convex with modulus ``m``
(``f(x) ≥ f(x*) + (m/2)‖x − x*‖²``) a feasible point with gap ``g`` lies within ``√(2g/m)`` of the minimiser;
the feasibility tolerance adds ``tol_feas`` times the scale. Projections ``min ‖v − x‖²`` have ``m = 2`` and an
objective of at most ``‖x‖²``.
"""

from __future__ import annotations

import math

#: float64 machine epsilon
EPS = 2.0**-52

#: CLARABEL's default tolerances (cvxpy passes them through unchanged)
CLARABEL_DEFAULT = {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8}
#: tight CLARABEL tolerances for ground truth where the default is too coarse
CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}

#: a closed form agrees with exact Monte Carlo within this many standard errors (fixed generators: the test
#: is deterministic; a correct formula fails it with probability ≈ 6e-5 per comparison)
K_SE = 4.0


def cvx_point_tol(scale: float, *, objective: float | None = None, modulus: float = 2.0,
                  tol: dict[str, float] = CLARABEL_DEFAULT) -> float:
    """Distance bound between a CLARABEL solution and the exact minimiser for an input of norm ``scale``.

    ``objective`` bounds the optimal objective value (default ``scale²``, the projection's ``‖x − 0‖²``);
    ``modulus`` is the strong-convexity modulus of the objective (2 for ``‖v − x‖²``, 1 for ``½‖v − x‖²``).
    """
    obj = scale * scale if objective is None else abs(objective)
    gap = tol["tol_gap_abs"] + tol["tol_gap_rel"] * obj
    return math.sqrt(2.0 * gap / modulus) + tol["tol_feas"] * max(scale, 1.0)


def round_tol(n: int, scale: float, c: float = 64.0) -> float:
    """``c·n·eps·scale``: rounding of a backward-stable computation of size ``n`` on inputs of size ``scale``."""
    return c * max(n, 1) * EPS * scale
