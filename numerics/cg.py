"""Conjugate gradients for ``A x = b`` with a symmetric, possibly indefinite operator: failures as values.

:func:`cg` minimises the quadratic model ``q(x) = ½ xᵀ(A + λI)x − bᵀx`` by the conjugate-gradient method of
Hestenes & Stiefel (1952) (Golub & Van Loan, *Matrix Computations*, 4th ed., Alg. 11.3.1), one operator
product per iteration. For a positive definite ``A + λI`` the iterates converge to the solution and ``q``
decreases monotonically; a Hessian restricted to a network's kept weights need not be definite, so every
search direction's curvature ``pᵀ(A + λI)p`` is checked:

* ``trust_radius=None`` (default): a direction with curvature ``≤ curvature_tol·‖p‖²·‖A‖`` stops the run
  with ``status="negative_curvature"`` and the iterate reached so far (the CG minimiser over the Krylov space
  before that step), together with the Rayleigh quotient ``pᵀAp/‖p‖²`` that failed — the caller can add
  damping ``λ > −quotient`` and call again (:func:`damped_cg` does that);
* ``trust_radius=Δ``: Steihaug's truncated CG (Steihaug 1983, SIAM J. Numer. Anal. 20(3); Nocedal & Wright,
  *Numerical Optimization*, 2nd ed., Alg. 7.2): on negative curvature, or when an iterate would leave the
  ball ``‖x‖ ≤ Δ``, the step is continued to the boundary along the current direction and the run stops
  (``status="negative_curvature"`` or ``"trust_region_boundary"``). The result then minimises ``q`` over the
  Krylov iterates inside the ball, the standard trust-region subproblem approximation.

The operator is any :class:`numerics.operators.LinearOperator` (or a dense matrix); ``b`` is a vector of
its dimension. Products are accumulated in float64 regardless of the operator's dtype. Everything the run
did is returned in a :class:`CGResult` (lineax-style: the solver never raises on a numerical failure; it
raises only on invalid input).

>>> import numpy as np, torch
>>> from numerics.operators import DenseOperator
>>> A = DenseOperator(np.array([[4.0, 1.0], [1.0, 3.0]]))
>>> r = cg(A, torch.tensor([1.0, 2.0], dtype=torch.float64), rtol=1e-14)
>>> r.status, r.iterations, [round(v, 12) for v in r.x.tolist()]   # exact in n = 2 steps
('converged', 2, [0.090909090909, 0.636363636364])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from numerics.operators import aslinearoperator
from theory.validation import check_int, check_real

__all__ = ["CGResult", "cg", "damped_cg", "STATUSES"]

#: The possible :attr:`CGResult.status` values.
STATUSES: tuple[str, ...] = ("converged", "max_iter", "negative_curvature", "trust_region_boundary", "zero_rhs")


@dataclass(frozen=True)
class CGResult:
    """Result of :func:`cg` / :func:`damped_cg`.

    Attributes
    ----------
    x:
        The final iterate (float64, on the operator's device).
    status:
        One of :data:`STATUSES`.
    iterations:
        CG iterations taken (of the last attempt for :func:`damped_cg`).
    matvecs:
        Operator products used (all attempts).
    residual_norm, rhs_norm:
        ``‖b − (A + λI)x‖`` (the recurrence's residual) and ``‖b‖``.
    model_value:
        ``q(x) = ½ xᵀ(A + λI)x − bᵀx`` at the returned ``x`` (≤ 0; ``−½ bᵀx`` on convergence).
    damping:
        ``λ`` of the returned attempt.
    negative_curvature_events:
        Number of directions with curvature below the tolerance met (all attempts).
    min_curvature:
        The smallest Rayleigh quotient ``pᵀ(A + λI)p/‖p‖²`` seen over the search directions (all attempts), an
        upper bound on ``λ_min(A) + λ`` (``inf`` before the first product).
    norm_estimate:
        The largest ``|pᵀAp|/‖p‖²`` seen (a lower bound on ``‖A‖₂``), the scale of the curvature test.
    attempts:
        Number of CG runs (``damped_cg`` raises ``λ`` between them).
    """

    x: torch.Tensor
    status: str
    iterations: int
    matvecs: int
    residual_norm: float
    rhs_norm: float
    model_value: float
    damping: float
    negative_curvature_events: int
    min_curvature: float
    norm_estimate: float = 0.0
    attempts: int = 1

    @property
    def converged(self) -> bool:
        """Whether the relative residual reached the tolerance."""
        return self.status in ("converged", "zero_rhs")

    @property
    def relative_residual(self) -> float:
        """``‖b − (A + λI)x‖ / ‖b‖`` (0 for ``b = 0``)."""
        return 0.0 if self.rhs_norm == 0 else self.residual_norm / self.rhs_norm

    def to_dict(self) -> dict[str, Any]:
        """Diagnostics (without ``x``) as a JSON-ready dict."""
        return {"status": self.status, "iterations": self.iterations, "matvecs": self.matvecs,
                "residual_norm": self.residual_norm, "rhs_norm": self.rhs_norm,
                "relative_residual": self.relative_residual, "model_value": self.model_value,
                "damping": self.damping, "negative_curvature_events": self.negative_curvature_events,
                "min_curvature": self.min_curvature, "norm_estimate": self.norm_estimate, "attempts": self.attempts}


def _to_boundary(x: torch.Tensor, p: torch.Tensor, radius: float) -> torch.Tensor:
    """``x + τp`` with ``τ ≥ 0`` and ``‖x + τp‖ = radius`` (``‖x‖ ≤ radius``)."""
    a = float(p @ p)
    b = 2.0 * float(x @ p)
    c = float(x @ x) - radius * radius
    tau = (-b + math.sqrt(max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)
    return x + tau * p


def cg(
    op: Any,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    max_iter: int | None = None,
    damping: float = 0.0,
    trust_radius: float | None = None,
    curvature_tol: float = 1e-12,
) -> CGResult:
    """Conjugate gradients for ``(A + λI) x = b`` (module docstring).

    Parameters
    ----------
    op:
        Symmetric operator ``A`` (``n × n``).
    b:
        Right-hand side, length ``n``.
    x0:
        Start (default 0). With a trust region the start must be 0.
    rtol, atol:
        Stop when ``‖r‖ ≤ max(rtol·‖b‖, atol)``.
    max_iter:
        Iteration limit (default ``n``; exact arithmetic converges in at most ``n``).
    damping:
        ``λ ≥ 0`` added to the diagonal (Levenberg damping).
    trust_radius:
        ``Δ > 0`` for Steihaug's truncated CG, or None.
    curvature_tol:
        A direction is treated as non-positive curvature when ``pᵀ(A + λI)p ≤ curvature_tol·‖p‖²·‖A‖_est``,
        ``‖A‖_est`` the largest ``|pᵀAp|/‖p‖²`` seen so far.
    """
    A = aslinearoperator(op)
    n = A.shape[0]
    if A.shape[0] != A.shape[1] or not A.symmetric:
        raise ValueError(f"cg needs a square operator declared symmetric, got {A!r}")
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}")
    if b.ndim != 1 or b.shape[0] != n:
        raise ValueError(f"b must be a vector of length {n}, got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()):
        raise ValueError("b must be finite (got NaN or inf)")
    rtol = check_real("rtol", rtol, minimum=0.0)
    atol = check_real("atol", atol, minimum=0.0)
    damping = check_real("damping", damping, minimum=0.0)
    curvature_tol = check_real("curvature_tol", curvature_tol, minimum=0.0)
    max_iter = n if max_iter is None else check_int("max_iter", max_iter, minimum=1)
    if trust_radius is not None:
        trust_radius = check_real("trust_radius", trust_radius, minimum=0.0, open_min=True)
        if x0 is not None and bool((x0 != 0).any()):
            raise ValueError("x0 must be zero (or None) with a trust region")
    dev = A.device
    b64 = b.detach().to(device=dev, dtype=torch.float64)
    bnorm = float(torch.linalg.vector_norm(b64))
    if x0 is None:
        x = torch.zeros(n, dtype=torch.float64, device=dev)
    else:
        if not isinstance(x0, torch.Tensor) or x0.shape != (n,):
            raise ValueError(f"x0 must be a tensor of shape ({n},), got {getattr(x0, 'shape', type(x0).__name__)}")
        x = x0.detach().to(device=dev, dtype=torch.float64).clone()

    matvecs = 0

    def apply(v: torch.Tensor) -> torch.Tensor:
        nonlocal matvecs
        matvecs += 1
        out = A.matmat(v.to(A.dtype).reshape(-1, 1)).reshape(-1).to(torch.float64)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"non-finite operator product at CG product {matvecs}")
        return out + damping * v if damping else out

    if bnorm == 0.0 and x0 is None:
        return CGResult(x, "zero_rhs", 0, 0, 0.0, 0.0, 0.0, damping, 0, math.inf, 0.0)
    r = b64 - apply(x) if x0 is not None else b64.clone()
    p = r.clone()
    rr = float(r @ r)
    stop = max(rtol * bnorm, atol)
    anorm = 0.0
    neg_events = 0
    min_curv = math.inf
    status = "max_iter"
    it = 0
    if math.sqrt(rr) <= stop:
        status = "converged"
    while status == "max_iter" and it < max_iter:
        Ap = apply(p)
        pp = float(p @ p)
        pAp = float(p @ Ap)
        q = pAp / pp
        min_curv = min(min_curv, q)
        anorm = max(anorm, abs(q - damping))
        if pAp <= curvature_tol * pp * max(anorm, 1e-300):
            neg_events += 1
            status = "negative_curvature"
            if trust_radius is not None:
                x = _to_boundary(x, p, trust_radius)
            break
        alpha = rr / pAp
        x_next = x + alpha * p
        if trust_radius is not None and float(torch.linalg.vector_norm(x_next)) >= trust_radius:
            x = _to_boundary(x, p, trust_radius)
            status = "trust_region_boundary"
            it += 1
            break
        x = x_next
        r = r - alpha * Ap
        rr_new = float(r @ r)
        it += 1
        if math.sqrt(rr_new) <= stop:
            status = "converged"
            rr = rr_new
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    # residual and model value of the returned iterate: one more product, so that both are exact (the
    # recurrence's residual drifts, and a boundary step has no recurrence residual at all)
    Ax = apply(x)
    res = b64 - Ax
    model = 0.5 * float(x @ Ax) - float(b64 @ x)
    return CGResult(x, status, it, matvecs, float(torch.linalg.vector_norm(res)), bnorm, model, damping, neg_events,
                    min_curv, anorm)


def damped_cg(
    op: Any,
    b: torch.Tensor,
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
    max_iter: int | None = None,
    max_attempts: int = 6,
    curvature_tol: float = 1e-12,
    damping: float = 0.0,
) -> CGResult:
    """CG with Levenberg damping raised on negative curvature: ``(A + λI)x = b`` for the least ``λ`` tried.

    Starts with ``λ = damping`` (default 0; a known bound ``−λ_min(A)`` saves the restarts); when an attempt meets a direction of non-positive curvature with Rayleigh quotient
    ``κ`` (an upper bound on ``λ_min(A) + λ``), the next attempt uses ``λ' = max(2λ, λ + 2|κ|) + 10⁻⁶‖A‖_est``,
    which makes that direction's curvature positive and at least doubles ``λ`` (so ``−λ_min(A)`` is exceeded
    within a logarithmic number of attempts) (the Levenberg–Marquardt strategy of raising the damping until the
    model is convex along every explored direction; Nocedal & Wright, *Numerical Optimization*, §10.3). At
    most ``max_attempts`` runs; the last result is returned (its ``status`` says whether it converged), with
    ``matvecs`` and ``negative_curvature_events`` summed over the attempts.

    >>> import numpy as np, torch
    >>> from numerics.operators import DiagonalOperator
    >>> r = damped_cg(DiagonalOperator(np.array([2.0, -1.0])), torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> r.status, r.damping > 1.0, r.negative_curvature_events >= 1, r.relative_residual < 1e-6
    ('converged', True, True, True)
    """
    max_attempts = check_int("max_attempts", max_attempts, minimum=1)
    lam = check_real("damping", damping, minimum=0.0)
    total, events = 0, 0
    min_curv = math.inf
    attempt = 1
    res = cg(op, b, rtol=rtol, atol=atol, max_iter=max_iter, damping=lam, curvature_tol=curvature_tol)
    while True:
        total += res.matvecs
        events += res.negative_curvature_events
        if math.isfinite(res.min_curvature):
            min_curv = min(min_curv, res.min_curvature - lam)  # the quotient of A itself
        if res.status != "negative_curvature" or attempt == max_attempts:
            break
        # κ ≤ curvature_tol·‖A‖: raise λ past it, plus a margin on the scale of ‖A‖ so that a zero-curvature
        # direction (κ ≈ 0) is also lifted
        lam = max(2.0 * lam, lam + 2.0 * abs(res.min_curvature)) + 1e-6 * max(res.norm_estimate, 1e-300)
        attempt += 1
        res = cg(op, b, rtol=rtol, atol=atol, max_iter=max_iter, damping=lam, curvature_tol=curvature_tol)
    return CGResult(res.x, res.status, res.iterations, total, res.residual_norm, res.rhs_norm, res.model_value,
                    res.damping, events, min_curv, res.norm_estimate, attempt)
