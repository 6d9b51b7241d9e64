"""Exact pruning oracle for a quadratic loss (our own; docs/math.md §2, "Exact oracle for quadratic models").

Model: ``L(w) = L(w*) + ½ (w − w*)ᵀ H (w − w*)``. Pruning to a kept support ``T`` (pruned ``P``) forces
``w_P = 0``; the remaining weights may compensate. With ``c = w* − w^T`` (so ``c_T = 0``, ``c_P = w*_P``):

* **uncompensated increase** ``½ c_Pᵀ H_PP c_P`` (pruned weights zeroed, nothing else moves);
* **least increase after optimal compensation** ``Δ(T) = min_{d_T} ½ dᵀHd`` with ``d_P = −c_P``, i.e.
  ``Δ(T) = ½ c_Pᵀ S c_P`` with the Schur complement ``S = H_PP − H_PT H_TT⁺ H_TP``. For PSD ``H`` the
  minimum exists even when ``H_TT`` is singular (``range H_TP ⊆ range H_TT``), which the pseudo-inverse
  handles; for invertible ``H``, ``S = [(H⁻¹)_PP]⁻¹`` (block inversion; ``proofs_check.limits``). For
  indefinite ``H`` the value is that of the *stationary* compensation (the infimum is −∞ as soon as
  ``H_TT`` has a negative eigenvalue), our convention for indefinite spectra.
* **exact threshold for magnitude supports** ``T_k`` (the ``k`` largest ``|w*_j|``): the least ``k`` with
  ``Δ(T_k') ≤ ε`` for every ``k' ≥ k`` (for PSD ``H``, ``Δ(T_k)`` is non-increasing in ``k`` and this is
  the least ``k`` with ``Δ ≤ ε``). Fast path: one unpivoted ``LDLᵀ`` of ``H`` with rows in decreasing
  ``|w*|`` order gives every ``k`` at once, ``Δ(T_k) = ½ Σ_{i ≥ k} d_i ((Lᵀ w*)_i)²`` (the trailing block
  of ``LDLᵀ`` is the Schur complement of the leading one). Reference path: bisection on ``k`` with
  Schur complements.
* **the cone over the sublevel ellipsoid** ``K = cone(S(ε) − w^T)``: with ``A = H/(2ε)`` (``H`` positive
  definite) and ``cᵀAc > 1``, ``K = {x : cᵀAx ≥ 0, xᵀQx ≥ 0}``, ``Q = Ac cᵀA − (cᵀAc − 1)A``, which has one
  positive eigenvalue ``q₀``; in its eigenbasis ``K`` is the elliptic cone with slopes ``√(q₀/|q_i|)``, so
  ``δ(K)`` is computed exactly by Monte Carlo with the elliptic cone's exact projection (rotation preserves
  ``δ``), and cross-checked against a cvxpy projection for small ``N``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from theory.validation import check_choice, check_int, check_positive, check_real, check_rng

__all__ = ["QuadraticModel", "MagnitudeCurve", "ExactThreshold"]

logger = logging.getLogger(__name__)

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class MagnitudeCurve:
    """Loss increases of global magnitude pruning for every kept count ``k = 0 … N``.

    ``compensated[k]`` is ``Δ(T_k)``; ``uncompensated[k]`` is ``½ c_Pᵀ H_PP c_P``; ``order`` lists the
    coordinates by decreasing ``|w*|`` (``T_k = order[:k]``).
    """

    kept_count: np.ndarray
    compensated: np.ndarray
    uncompensated: np.ndarray
    order: np.ndarray

    def threshold(self, eps: float, *, median_window: int = 1) -> int:
        """Least ``k`` with ``Δ(T_k') ≤ ε`` for every ``k' ≥ k``.

        ``median_window > 1`` (odd) first applies a running median to ``Δ`` (our convention for indefinite
        ``H``: where a leading block ``H_TT`` passes through a singular matrix the stationary value has an
        isolated pole, one per negative eigenvalue, which the median removes). For PSD ``H`` the curve is
        non-increasing and the window changes nothing but the ends.
        """
        d = self.compensated
        median_window = check_int("median_window", median_window, minimum=1)
        if median_window > 1:
            if median_window % 2 == 0:
                raise ValueError(f"median_window must be odd, got median_window={median_window!r}")
            from scipy.ndimage import median_filter

            d = median_filter(d, size=int(median_window), mode="nearest")
        bad = np.nonzero(d > eps)[0]
        return 0 if bad.size == 0 else int(bad[-1] + 1)


@dataclass(frozen=True)
class ExactThreshold:
    """The exact pruning threshold for magnitude supports.

    ``kept_count`` weights kept (``kept_fraction = kept_count/N``), ``delta`` ``= Δ(T_k)``, ``evaluations``
    the number of Schur complements (``"bisect"``) or 1 factorisation (``"ldl"``), ``solver`` which path
    computed it, ``monotone`` whether ``Δ(T_k)`` was non-increasing in ``k``.
    """

    kept_count: int
    kept_fraction: float
    delta: float
    evaluations: int
    solver: str
    monotone: bool


class QuadraticModel:
    """A quadratic loss ``½ (w − w*)ᵀ H (w − w*)`` around trained weights ``w*`` (our exact oracle).

    Parameters
    ----------
    H:
        Symmetric ``N × N`` Hessian (any inertia; PSD for the minimisation semantics).
    w_star:
        The trained weights ``w*`` (length ``N``).
    rcond:
        Relative cut-off for the pseudo-inverse and for zero pivots: eigenvalues / pivots with magnitude
        ``≤ rcond · max|H|`` are treated as zero. Default ``1000 · N · eps`` (rounding of forming and
        eliminating an ``N × N`` matrix, with a safety factor 1000).

    >>> m = QuadraticModel(np.diag([1.0, 2.0]), np.array([1.0, 1.0]))
    >>> m.compensated_increase([True, False])   # ½·2·1: a diagonal H cannot compensate
    1.0
    """

    def __init__(self, H: Any, w_star: Any, *, rcond: float | None = None) -> None:
        if hasattr(H, "detach"):
            H = H.detach().cpu().numpy()
        if hasattr(w_star, "detach"):
            w_star = w_star.detach().cpu().numpy()
        H = np.asarray(H, dtype=np.float64)
        w = np.asarray(w_star, dtype=np.float64).reshape(-1)
        if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
            raise ValueError(f"H must be a non-empty square matrix, got shape {H.shape}")
        if not np.all(np.isfinite(H)):
            raise ValueError("H must be finite (got NaN or inf)")
        n = H.shape[0]
        if w.size != n:
            raise ValueError(f"w_star must have length N={n} (the size of H), got {w.size}")
        if not np.all(np.isfinite(w)):
            raise ValueError("w_star must be finite (got NaN or inf)")
        scale = float(np.max(np.abs(H))) if H.size else 0.0
        # symmetric up to the rounding of forming it (c·n·eps·max|H|)
        if np.max(np.abs(H - H.T)) > 100 * n * _EPS * max(scale, 1e-300):
            raise ValueError(f"H must be symmetric, got max|H − Hᵀ| = {np.max(np.abs(H - H.T))!r}")
        if rcond is None:
            rcond = 1000.0 * n * _EPS
        rcond = check_real("rcond", rcond, minimum=0.0, maximum=1.0, open_max=True)
        self.H = 0.5 * (H + H.T)
        self.w_star = w
        self.N = n
        self.rcond = float(rcond)
        self._scale = scale
        self._eig: tuple[np.ndarray, np.ndarray] | None = None
        self._order = np.argsort(-np.abs(w), kind="stable")
        self._curve: MagnitudeCurve | None = None

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """``(eigenvalues ascending, eigenvectors)`` of ``H`` (cached)."""
        if self._eig is None:
            self._eig = np.linalg.eigh(self.H)
        return self._eig

    def _tol(self) -> float:
        return self.rcond * max(self._scale, 1e-300)

    def _kept_mask(self, kept: Any) -> np.ndarray:
        arr = np.asarray(kept)
        if arr.dtype == bool:
            if arr.shape != (self.N,):
                raise ValueError(f"a boolean kept mask must have shape ({self.N},), got {arr.shape}")
            return arr.copy()
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"kept must be a boolean mask or integer indices, got dtype {arr.dtype}")
        idx = arr.reshape(-1).astype(int)
        if idx.size and (idx.min() < 0 or idx.max() >= self.N):
            raise ValueError(f"kept indices must lie in [0, {self.N}), got range [{idx.min()}, {idx.max()}]")
        mask = np.zeros(self.N, dtype=bool)
        mask[idx] = True
        return mask

    def magnitude_support(self, k: int) -> np.ndarray:
        """Boolean mask of the ``k`` largest ``|w*_j|`` (ties broken by index)."""
        k = check_int("k", k, minimum=0, maximum=self.N)
        mask = np.zeros(self.N, dtype=bool)
        mask[self._order[: int(k)]] = True
        return mask

    def _psolve(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``A⁺ B`` for symmetric ``A`` (eigenvalues below the cut-off treated as zero)."""
        if A.shape[0] == 0:
            return np.zeros_like(B)
        lam, V = np.linalg.eigh(A)
        keep = np.abs(lam) > self._tol()
        inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
        return V @ (inv[:, None] * (V.T @ B)) if B.ndim == 2 else V @ (inv * (V.T @ B))

    # -- loss increases --------------------------------------------------------------------------------
    def loss_increase(self, w: Any) -> float:
        """``½ (w − w*)ᵀ H (w − w*)``."""
        d = np.asarray(w, dtype=np.float64).reshape(-1) - self.w_star
        if d.size != self.N:
            raise ValueError(f"w must have length {self.N}, got {d.size}")
        return float(0.5 * d @ self.H @ d)

    def uncompensated_increase(self, kept: Any) -> float:
        """``½ c_Pᵀ H_PP c_P``: prune ``P`` and leave the kept weights unchanged."""
        P = ~self._kept_mask(kept)
        c = self.w_star[P]
        return float(0.5 * c @ self.H[np.ix_(P, P)] @ c)

    def schur_complement(self, kept: Any) -> np.ndarray:
        """``S = H_PP − H_PT H_TT⁺ H_TP`` (``|P| × |P|``)."""
        T = self._kept_mask(kept)
        P = ~T
        H_PP = self.H[np.ix_(P, P)]
        H_TP = self.H[np.ix_(T, P)]
        S = H_PP - H_TP.T @ self._psolve(self.H[np.ix_(T, T)], H_TP)
        return 0.5 * (S + S.T)

    def compensated_weights(self, kept: Any) -> np.ndarray:
        """The optimally compensated weights: ``w_P = 0``, ``w_T = w*_T − H_TT⁺ H_TP (−c_P)``… i.e.
        ``d_T = H_TT⁺ H_TP c_P`` for the displacement ``d_P = −c_P``."""
        T = self._kept_mask(kept)
        P = ~T
        c_P = self.w_star[P]
        d_T = self._psolve(self.H[np.ix_(T, T)], self.H[np.ix_(T, P)] @ c_P)
        w = self.w_star.copy()
        w[P] = 0.0
        w[T] += d_T
        return w

    def compensated_increase(self, kept: Any, *, solver: str = "schur") -> float:
        """Least loss increase after optimal compensation, ``Δ(T) = ½ c_Pᵀ S c_P``.

        ``solver="schur"``: ``½ c_Pᵀ S c_P`` with :meth:`schur_complement` ``S`` (robust to singular
        ``H``). ``solver="inverse"``: ``½ c_Pᵀ [(H⁻¹)_PP]⁻¹ c_P`` (``H`` must be invertible).
        """
        check_choice("solver", solver, ("schur", "inverse"))
        T = self._kept_mask(kept)
        P = ~T
        c_P = self.w_star[P]
        if c_P.size == 0:
            return 0.0
        if solver == "schur":
            return float(0.5 * (c_P @ self.schur_complement(T) @ c_P))
        lam, V = self.eigh  # solver == "inverse"
        if np.min(np.abs(lam)) <= self._tol():
            raise ValueError(f"H is singular (min |λ| = {np.min(np.abs(lam))!r}); use solver='schur'")
        VP = V[P]
        G_PP = (VP / lam[None, :]) @ VP.T
        x = np.linalg.solve(G_PP, c_P)
        return float(0.5 * c_P @ x)

    # -- every magnitude support at once ----------------------------------------------------------------
    def magnitude_curve(self) -> MagnitudeCurve:
        """``Δ(T_k)`` and the uncompensated increase for ``k = 0 … N`` (one unpivoted LDLᵀ; cached)."""
        if self._curve is None:
            o = self._order
            Hp = self.H[np.ix_(o, o)]
            wp = self.w_star[o]
            L, d = _ldl_unpivoted(Hp, self._tol())
            y = L.T @ wp
            terms = d * y * y
            comp = np.zeros(self.N + 1)
            comp[:-1] = 0.5 * np.cumsum(terms[::-1])[::-1]
            # uncompensated: Q(k) = Σ_{i,j ≥ k} w_i H_ij w_j, Q(k) = Q(k+1) + w_k(H_kk w_k + 2 Σ_{j>k} H_kj w_j)
            Hw_tail = np.triu(Hp, 1) @ wp  # Σ_{j>i} H_ij w_j
            inc = wp * (np.diag(Hp) * wp + 2.0 * Hw_tail)
            unc = np.zeros(self.N + 1)
            unc[:-1] = 0.5 * np.cumsum(inc[::-1])[::-1]
            self._curve = MagnitudeCurve(np.arange(self.N + 1), comp, unc, o.copy())
        return self._curve

    def magnitude_threshold(self, eps: float, *, solver: str = "ldl") -> ExactThreshold:
        """The exact threshold for global magnitude pruning at tolerance ``ε``.

        ``solver="ldl"`` (default): every ``k`` from one factorisation; the least ``k`` with
        ``Δ(T_k') ≤ ε`` for all ``k' ≥ k``. ``solver="bisect"`` (reference path): bisection on ``k`` for
        the least ``k`` with ``Δ(T_k) ≤ ε``, each ``Δ`` a Schur complement — valid when ``Δ`` is monotone
        (PSD ``H``).
        """
        eps = check_positive("eps", eps)
        check_choice("solver", solver, ("ldl", "bisect"))
        if solver == "ldl":
            curve = self.magnitude_curve()
            k = curve.threshold(float(eps))
            monotone = bool(np.all(np.diff(curve.compensated) <= 1e-9 * max(curve.compensated[0], 1e-300)))
            return ExactThreshold(k, k / self.N, float(curve.compensated[k]), 1, "ldl", monotone)
        delta = lambda k: self.compensated_increase(self.magnitude_support(k))  # noqa: E731 - solver == "bisect"
        evals = 1
        d0 = delta(0)
        if d0 <= eps:
            return ExactThreshold(0, 0.0, d0, evals, "bisect", True)
        lo, hi = 0, self.N  # Δ(lo) > ε, Δ(hi) = 0 ≤ ε
        d_hi = 0.0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            dm = delta(mid)
            evals += 1
            if dm <= eps:
                hi, d_hi = mid, dm
            else:
                lo = mid
        return ExactThreshold(hi, hi / self.N, d_hi, evals, "bisect", True)

    # -- the cone over the sublevel ellipsoid ------------------------------------------------------------
    def _cone_setup(self, kept: Any, eps: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Validate ``eps`` and positive definite ``H``; return ``c`` (the pruned part), ``Hc`` and ``cᵀHc/(2ε)``."""
        eps = check_positive("eps", eps)
        lam = self.eigh[0]
        if lam[0] <= self._tol():
            raise ValueError(
                f"the cone over the sublevel set needs a positive definite H, got min λ = {lam[0]!r}"
            )
        T = self._kept_mask(kept)
        c = np.where(T, 0.0, self.w_star)
        Hc = self.H @ c
        return c, Hc, float(c @ Hc) / (2.0 * eps)

    def cone_basis(self, kept: Any, eps: float) -> tuple[np.ndarray, np.ndarray] | None:
        """``(slopes, U)`` of ``K = cone(S(ε) − w^T)``: ``Uᵀ x = (t, z)`` maps ``K`` onto the elliptic cone
        with these slopes (``U[:, 0]`` the axis, oriented towards ``c``). ``None`` when ``½ cᵀHc ≤ ε``
        (the pruned point is inside the sublevel set, so ``K`` is the whole space).

        Requires positive definite ``H`` (otherwise the sublevel set is unbounded and ``K`` not closed).
        """
        c, Hc, cAc = self._cone_setup(kept, eps)
        if cAc <= 1.0:
            return None
        Ac = Hc / (2.0 * eps)
        Q = np.outer(Ac, Ac) - (cAc - 1.0) * self.H / (2.0 * eps)
        q, U = np.linalg.eigh(0.5 * (Q + Q.T))
        q, U = q[::-1], U[:, ::-1]  # q[0] > 0 > q[1:]
        if not (q[0] > 0 and np.all(q[1:] < 0)):
            raise ValueError("the cone's quadratic form does not have inertia (1, N−1); H is ill-conditioned")
        if U[:, 0] @ c < 0:
            U[:, 0] = -U[:, 0]
        return np.sqrt(q[0] / -q[1:]), U

    def cone_statistical_dimension(
        self,
        kept: Any,
        eps: float,
        n_samples: int,
        rng: np.random.Generator,
        *,
        solver: str = "mc",
    ) -> tuple[float, float]:
        """``δ(K)`` for ``K = cone(S(ε) − w^T)`` and its Monte Carlo standard error.

        ``solver="mc"``: exact projection onto the elliptic cone in the rotated basis
        (:class:`theory.cones.EllipticCone`, :func:`theory.statdim.statistical_dimension_mc`).
        ``solver="cvxpy"``: projection of each sample by a conic program (small ``N`` only; cross-check).
        ``(N, 0)`` when the pruned point is already feasible (``K = R^N``).
        """
        check_choice("solver", solver, ("mc", "cvxpy"))
        n_samples = check_int("n_samples", n_samples, minimum=2)  # a standard error needs two samples
        check_rng("rng", rng)
        if solver == "mc":
            basis = self.cone_basis(kept, eps)
            if basis is None:
                return float(self.N), 0.0
            from theory.cones import EllipticCone
            from theory.statdim import statistical_dimension_mc

            res = statistical_dimension_mc(EllipticCone(basis[0]), n_samples, rng)
            return float(res.mean), float(res.stderr)
        if self._cone_setup(kept, eps)[2] <= 1.0:  # solver == "cvxpy"; the pruned point is feasible: K = R^N
            return float(self.N), 0.0
        from theory.statdim import _gaussian_mc

        project = self._cvxpy_projector(kept, eps)  # one compiled problem, re-solved per sample
        res = _gaussian_mc(lambda g: np.array([np.sum(project(row) ** 2) for row in g]), self.N, n_samples, rng)
        return float(res.mean), float(res.stderr)

    def cone_projection(self, kept: Any, eps: float, x: Any) -> np.ndarray:
        """Exact projection of ``x`` onto ``K`` (rotate, project onto the elliptic cone, rotate back)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        basis = self.cone_basis(kept, eps)
        if basis is None:
            return x.copy()
        from theory.cones import EllipticCone

        slopes, U = basis
        return U @ EllipticCone(slopes).project(U.T @ x)

    def cone_projection_cvxpy(self, kept: Any, eps: float, x: Any) -> np.ndarray:
        """Projection of ``x`` onto ``K`` by cvxpy: ``min ‖y − x‖²`` s.t. ``‖Lᵀ(y − τc)‖ ≤ √(2ε) τ``,
        ``τ ≥ 0`` with ``H = LLᵀ`` (small ``N``; checks the solver status)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return self._cvxpy_projector(kept, eps)(x)

    def _cvxpy_projector(self, kept: Any, eps: float) -> Callable[[np.ndarray], np.ndarray]:
        """The cvxpy projection onto ``K`` as a function of the point (the problem is built once, the point a
        :class:`cvxpy.Parameter`, so repeated solves reuse the compiled problem)."""
        import cvxpy as cp

        T = self._kept_mask(kept)
        c = np.where(T, 0.0, self.w_star)
        lam, V = self.eigh
        if lam[0] <= self._tol():
            raise ValueError(f"cvxpy projection needs a positive definite H, got min λ = {lam[0]!r}")
        Lt = (V * np.sqrt(lam)[None, :]).T  # LLᵀ = H with L = V√Λ
        y = cp.Variable(self.N)
        tau = cp.Variable(nonneg=True)
        xp = cp.Parameter(self.N)
        prob = cp.Problem(
            cp.Minimize(cp.sum_squares(y - xp)), [cp.norm(Lt @ (y - tau * c)) <= math.sqrt(2.0 * eps) * tau]
        )

        def project(x: np.ndarray) -> np.ndarray:
            xp.value = x
            prob.solve(solver=cp.CLARABEL)
            if prob.status not in (cp.OPTIMAL,):
                raise RuntimeError(f"cvxpy projection failed with status {prob.status!r}")
            return np.asarray(y.value, dtype=np.float64)

        return project


def _ldl_unpivoted(A: np.ndarray, tol: float, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Blocked right-looking ``A = L D Lᵀ`` without pivoting (so leading blocks stay nested).

    A pivot with ``|d_j| ≤ tol`` is treated as zero curvature: ``d_j = 0`` and the column of ``L`` below
    it is set to 0 (exact for PSD ``A``, whose Schur complement then has a zero row and column; this is
    the pseudo-inverse semantics of the Schur complement).
    """
    A = np.array(A, dtype=np.float64, order="C", copy=True)
    n = A.shape[0]
    d = np.zeros(n)
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        for j in range(k0, k1):
            dj = A[j, j]
            if abs(dj) <= tol:
                A[j + 1 :, j] = 0.0
                continue
            d[j] = dj
            col = A[j + 1 :, j].copy()
            lcol = col / dj
            if j + 1 < k1:
                A[j + 1 :, j + 1 : k1] -= np.outer(lcol, col[: k1 - j - 1])
            A[j + 1 :, j] = lcol
        if k1 < n:
            Lb = A[k1:, k0:k1]
            A[k1:, k1:] -= (Lb * d[k0:k1]) @ Lb.T
    L = np.tril(A, -1)
    L[np.diag_indices(n)] = 1.0
    return L, d
