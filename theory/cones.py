"""Closed convex cones with exact Euclidean projections (numpy, float64).

Every cone ``C ⊂ R^d`` exposes

* ``ambient_dim`` (``d``);
* ``project(x)``: the exact Euclidean projection ``Π_C`` applied to each row of an ``(..., d)`` array;
* ``sq_norm_projection(x)``: ``‖Π_C(x)‖²`` per row (what the Monte Carlo estimator of ``δ(C)`` needs; for
  descent cones it is the exact 1-D minimisation over ``τ`` of ALMT Prop. 4.1, without forming ``Π_C``);
* ``contains(x, atol)``: membership from the cone's *defining inequalities* (independent of ``project``, so
  the Moreau decomposition can be tested);
* ``polar()``: a closed-form polar where one exists, otherwise :class:`PolarCone` (exact by Moreau:
  ``Π_{C°}(x) = x − Π_C(x)``);
* ``statistical_dimension()``: the exact value where a closed form exists (raises ``NotImplementedError``
  otherwise; :func:`theory.statdim.statistical_dimension` also returns bounds and asymptotic formulas, each
  labelled);
* ``intrinsic_volumes()``: the conic intrinsic volumes ``(v_0, …, v_d)`` where known;
* ``cvxpy_constraints(v)``: the defining constraints for a cvxpy variable ``v`` (used by :class:`CvxpyCone`
  as independent ground truth).

References: ALMT = Amelunxen, Lotz, McCoy & Tropp (2014), "Living on the edge: phase transitions in convex
programs with random data", Inf. Inference 3:224–294. Circular-cone intrinsic volumes follow Amelunxen's
``conivol`` R package (docs/math.md §1.2; checked by ``proofs_check`` ``circular_volumes``).

>>> import numpy as np
>>> NonnegativeOrthant(4).statistical_dimension()
2.0
>>> NonnegativeOrthant(3).project(np.array([1.0, -2.0, 3.0]))
array([1., 0., 3.])
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from scipy import special

from theory.validation import check_choice, check_int, check_real

__all__ = [
    "Cone",
    "PolarCone",
    "NegatedCone",
    "Subspace",
    "NonnegativeOrthant",
    "CircularCone",
    "LorentzCone",
    "PSDCone",
    "L1DescentCone",
    "LinfDescentCone",
    "NuclearDescentCone",
    "EllipticCone",
    "CvxpyCone",
    "svec",
    "smat",
    "circular_intrinsic_volumes",
    "nuclear_statdim_asymptotic",
]

_EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------------------------------------
# array validation (scalars use theory.validation: errors name the argument and carry the bad value)
# ----------------------------------------------------------------------------------------------------------
def _finite_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real numeric array, got {type(value).__name__}: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got NaN or inf in {name} (shape {arr.shape})")
    return arr


def _norm(a: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis without overflow or underflow: ``m·‖a/m‖`` with ``m = max|a_i|``
    (``numpy.linalg.norm`` squares the entries, so it returns inf above ~1e154 and loses everything below
    ~1e-154, which made the circular and elliptic projections wrong there)."""
    m = np.max(np.abs(a), axis=-1) if a.shape[-1] else np.zeros(a.shape[:-1])
    safe = np.where(m > 0, m, 1.0)
    return m * np.sqrt(np.einsum("...i,...i->...", a / safe[..., None], a / safe[..., None]))


def _angle(alpha: Any) -> float:
    """A cone half-angle in the open interval (0, π/2)."""
    return check_real("alpha", alpha, minimum=0.0, maximum=math.pi / 2, open_min=True, open_max=True)


# ----------------------------------------------------------------------------------------------------------
# base class and generic constructions
# ----------------------------------------------------------------------------------------------------------
class Cone:
    """A closed convex cone in ``R^d`` with an exact Euclidean projection.

    Subclasses implement ``_project`` (on a validated ``(..., d)`` float64 array) and ``_contains``; the
    rest has generic defaults.
    """

    #: short human-readable name used by the CLI
    name: str = "cone"

    def __init__(self, ambient_dim: int) -> None:
        self._d = check_int("ambient_dim", ambient_dim, minimum=1)

    @property
    def ambient_dim(self) -> int:
        """The dimension ``d`` of the ambient space ``R^d``."""
        return self._d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ambient_dim={self._d})"

    # -- input checking ---------------------------------------------------------------------------------
    def _points(self, x: Any, name: str = "x") -> np.ndarray:
        arr = _finite_array(name, x)
        if arr.ndim == 0 or arr.shape[-1] != self._d:
            raise ValueError(
                f"{name} must have shape (..., {self._d}) for a cone in R^{self._d}, got shape {arr.shape}"
            )
        return arr

    # -- public API -------------------------------------------------------------------------------------
    def project(self, x: Any) -> np.ndarray:
        """Exact Euclidean projection ``Π_C`` of each row of ``x`` (shape ``(..., d)``)."""
        return self._project(self._points(x))

    def sq_norm_projection(self, x: Any) -> np.ndarray:
        """``‖Π_C(x)‖²`` for each row of ``x``; ``E‖Π_C(g)‖² = δ(C)`` (ALMT Prop. 3.1)."""
        return self._sq_norm(self._points(x))

    def contains(self, x: Any, atol: float = 1e-9) -> np.ndarray:
        """Boolean array: does each row of ``x`` satisfy the defining inequalities up to ``atol·max(1, ‖x‖)``?"""
        arr = self._points(x)
        scale = np.maximum(1.0, np.linalg.norm(arr, axis=-1))
        return self._contains(arr, atol * scale)

    def polar(self) -> "Cone":
        """The polar cone ``C° = {y : ⟨y, x⟩ ≤ 0 ∀x ∈ C}`` (generic: :class:`PolarCone`, exact by Moreau)."""
        return PolarCone(self)

    def statistical_dimension(self) -> float:
        """Exact ``δ(C) = Σ_k k v_k(C)`` (ALMT Prop. 5.11); raises ``NotImplementedError`` without a closed form."""
        v = self.intrinsic_volumes()
        return float(np.dot(np.arange(v.size, dtype=np.float64), v))

    def intrinsic_volumes(self) -> np.ndarray:
        """Conic intrinsic volumes ``(v_0, …, v_d)``; raises ``NotImplementedError`` where not known."""
        raise NotImplementedError(f"{type(self).__name__}: intrinsic volumes are not known in closed form")

    def cvxpy_constraints(self, v: Any) -> list:
        """The cone's defining constraints on a cvxpy vector variable ``v`` of length ``d``."""
        raise NotImplementedError(f"{type(self).__name__}: no cvxpy description")

    # -- defaults for subclasses ------------------------------------------------------------------------
    def _project(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        p = self._project(x)
        return np.einsum("...i,...i->...", p, p)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}: membership test not implemented")

    def _polar_contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}: polar membership test not implemented")


class PolarCone(Cone):
    """The polar ``C°`` of a cone with exact projection, via Moreau: ``Π_{C°}(x) = x − Π_C(x)``.

    ``δ(C°) = d − δ(C)`` and ``v_k(C°) = v_{d−k}(C)`` (ALMT Prop. 3.1, Fact 5.5).
    """

    def __init__(self, cone: Cone) -> None:
        if not isinstance(cone, Cone):
            raise TypeError(f"cone must be a Cone, got {type(cone).__name__}")
        super().__init__(cone.ambient_dim)
        self.cone = cone
        self.name = f"polar of {cone.name}"

    def __repr__(self) -> str:
        return f"PolarCone({self.cone!r})"

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x - self.cone._project(x)

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        # ‖x‖² = ‖Π_C x‖² + ‖Π_{C°} x‖² (Moreau)
        return np.einsum("...i,...i->...", x, x) - self.cone._sq_norm(x)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return self.cone._polar_contains(x, tol)

    def polar(self) -> Cone:
        return self.cone

    def statistical_dimension(self) -> float:
        return float(self.ambient_dim - self.cone.statistical_dimension())

    def intrinsic_volumes(self) -> np.ndarray:
        return self.cone.intrinsic_volumes()[::-1].copy()


class NegatedCone(Cone):
    """``−C``: ``Π_{−C}(x) = −Π_C(−x)``; same intrinsic volumes and statistical dimension as ``C``."""

    def __init__(self, cone: Cone) -> None:
        if not isinstance(cone, Cone):
            raise TypeError(f"cone must be a Cone, got {type(cone).__name__}")
        super().__init__(cone.ambient_dim)
        self.cone = cone
        self.name = f"-({cone.name})"

    def __repr__(self) -> str:
        return f"NegatedCone({self.cone!r})"

    def _project(self, x: np.ndarray) -> np.ndarray:
        return -self.cone._project(-x)

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        return self.cone._sq_norm(-x)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return self.cone._contains(-x, tol)

    def polar(self) -> Cone:
        # (−C)° = −(C°)
        p = self.cone.polar()
        return p.cone if isinstance(p, NegatedCone) else NegatedCone(p)

    def statistical_dimension(self) -> float:
        return self.cone.statistical_dimension()

    def intrinsic_volumes(self) -> np.ndarray:
        return self.cone.intrinsic_volumes()

    def cvxpy_constraints(self, v: Any) -> list:
        return self.cone.cvxpy_constraints(-v)


# ----------------------------------------------------------------------------------------------------------
# subspace, orthant
# ----------------------------------------------------------------------------------------------------------
class Subspace(Cone):
    """A linear subspace ``L = range(basis)`` of ``R^d``; ``δ(L) = dim L``, ``v = e_{dim L}``.

    ``basis`` is a ``(d, k)`` array of full column rank (orthonormalised internally by QR). Use
    :meth:`coordinate` for the span of the first ``k`` coordinate vectors.
    """

    name = "subspace"

    def __init__(self, basis: Any) -> None:
        b = _finite_array("basis", basis)
        if b.ndim != 2 or b.shape[0] < 1 or b.shape[1] < 1:
            raise ValueError(f"basis must be a (d, k) array with d, k >= 1, got shape {b.shape}")
        d, k = b.shape
        if k > d:
            raise ValueError(f"basis must have at most d columns, got shape {b.shape}")
        q, r = np.linalg.qr(b)
        diag = np.abs(np.diag(r))
        if diag.min() <= 1e3 * max(d, k) * _EPS * max(diag.max(), 1.0):
            raise ValueError(f"basis must have full column rank, got shape {b.shape} with rank < {k}")
        super().__init__(d)
        self.q = q
        self.dim = k

    @classmethod
    def coordinate(cls, d: int, k: int) -> "Subspace":
        """The span of ``e_1, …, e_k`` in ``R^d``."""
        d = check_int("d", d, minimum=1)
        k = check_int("k", k, minimum=1, maximum=d)
        return cls(np.eye(d)[:, :k])

    def __repr__(self) -> str:
        return f"Subspace(d={self.ambient_dim}, dim={self.dim})"

    def _project(self, x: np.ndarray) -> np.ndarray:
        return (x @ self.q) @ self.q.T

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        c = x @ self.q
        return np.einsum("...i,...i->...", c, c)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x - self._project(x), axis=-1) <= tol

    def _polar_contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x @ self.q, axis=-1) <= tol

    def polar(self) -> Cone:
        if self.dim == self.ambient_dim:
            return PolarCone(self)  # the zero subspace has no basis
        q_full, _ = np.linalg.qr(self.q, mode="complete")
        return Subspace(q_full[:, self.dim :])

    def intrinsic_volumes(self) -> np.ndarray:
        v = np.zeros(self.ambient_dim + 1)
        v[self.dim] = 1.0
        return v

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        w = cp.Variable(self.dim)
        return [v == self.q @ w]


class NonnegativeOrthant(Cone):
    """``R^d_+``: ``Π(x) = max(x, 0)``; ``v_k = C(d, k)/2^d``, ``δ = d/2`` (ALMT Sec. 5.5).

    >>> NonnegativeOrthant(10).statistical_dimension()
    5.0
    """

    name = "orthant"

    def __init__(self, d: int) -> None:
        super().__init__(check_int("d", d, minimum=1))

    def _project(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.all(x >= -tol[..., None], axis=-1)

    def polar(self) -> Cone:
        return NegatedCone(self)

    def statistical_dimension(self) -> float:
        return self.ambient_dim / 2.0

    def intrinsic_volumes(self) -> np.ndarray:
        d = self.ambient_dim
        k = np.arange(d + 1)
        return np.exp(special.gammaln(d + 1) - special.gammaln(k + 1) - special.gammaln(d - k + 1) - d * math.log(2))

    def cvxpy_constraints(self, v: Any) -> list:
        return [v >= 0]


# ----------------------------------------------------------------------------------------------------------
# circular / Lorentz cone
# ----------------------------------------------------------------------------------------------------------
def circular_intrinsic_volumes(d: int, alpha: float) -> np.ndarray:
    """Intrinsic volumes of ``Circ_d(α) = {x : x₁ ≥ ‖x‖ cos α}`` (Amelunxen's ``conivol``; docs/math.md §1.2).

    ``v₀ = ½ I_{cos²α}((d−1)/2, ½)``, ``v_d = ½ I_{sin²α}((d−1)/2, ½)`` and, for ``1 ≤ k ≤ d−1``,
    ``v_k = ½ Γ(d/2) / (Γ((k+1)/2) Γ((d−k+1)/2)) sin^{k−1}α cos^{d−k−1}α`` (computed in logs).

    >>> np.round(circular_intrinsic_volumes(4, np.pi / 4), 8)
    array([0.09084506, 0.25      , 0.31830989, 0.25      , 0.09084506])
    """
    d = check_int("d", d, minimum=2)
    a = _angle(alpha)
    v = np.empty(d + 1)
    s, c = math.sin(a), math.cos(a)
    v[0] = 0.5 * special.betainc((d - 1) / 2, 0.5, c * c)
    v[d] = 0.5 * special.betainc((d - 1) / 2, 0.5, s * s)
    k = np.arange(1, d, dtype=np.float64)
    logv = (
        math.log(0.5)
        + special.gammaln(d / 2)
        - special.gammaln((k + 1) / 2)
        - special.gammaln((d - k + 1) / 2)
        + (k - 1) * math.log(s)
        + (d - k - 1) * math.log(c)
    )
    v[1:d] = np.exp(logv)
    return v


class CircularCone(Cone):
    """``Circ_d(α) = {x ∈ R^d : x₁ ≥ ‖x‖ cos α}``, ``0 < α < π/2`` (ALMT Sec. 3.4; docs/math.md §1.2).

    Projection (``x = (x₁, x̄)``, ``r = ‖x̄‖``): ``x`` if ``r ≤ x₁ tan α``; ``0`` if ``r tan α ≤ −x₁``;
    otherwise ``(x₁ cos α + r sin α)·(cos α, sin α · x̄/r)``. Polar: ``−Circ_d(π/2 − α)``.
    ``δ = Σ_k k v_k`` exactly; ``δ = d sin²α + cos 2α + o(1)`` (:meth:`statistical_dimension_asymptotic`).

    >>> round(CircularCone(10, np.pi / 6).statistical_dimension(), 6)
    2.983547
    """

    name = "circular"

    def __init__(self, d: int, alpha: float) -> None:
        super().__init__(check_int("d", d, minimum=2))
        self.alpha = _angle(alpha)
        self._cos, self._sin, self._tan = math.cos(self.alpha), math.sin(self.alpha), math.tan(self.alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.ambient_dim}, alpha={self.alpha!r})"

    def _split(self, x: np.ndarray):
        x1 = x[..., 0]
        r = _norm(x[..., 1:])
        inside = r <= x1 * self._tan
        zero = (r * self._tan <= -x1) & ~inside
        return x1, r, inside, zero

    def _project(self, x: np.ndarray) -> np.ndarray:
        x1, r, inside, zero = self._split(x)
        mid = ~(inside | zero)
        c = x1 * self._cos + r * self._sin  # length of the projection onto the boundary ray
        out = np.where(inside[..., None], x, 0.0)
        safe_r = np.where(mid, r, 1.0)
        scale = np.where(mid, c * self._sin / safe_r, 0.0)
        out[..., 0] = np.where(mid, c * self._cos, out[..., 0])
        out[..., 1:] = np.where(mid[..., None], x[..., 1:] * scale[..., None], out[..., 1:])
        return out

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        x1, r, inside, zero = self._split(x)
        c = x1 * self._cos + r * self._sin
        return np.where(inside, x1 * x1 + r * r, np.where(zero, 0.0, c * c))

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return x[..., 0] * self._sin - _norm(x[..., 1:]) * self._cos >= -tol

    def polar(self) -> Cone:
        return NegatedCone(CircularCone(self.ambient_dim, math.pi / 2 - self.alpha))

    def intrinsic_volumes(self) -> np.ndarray:
        return circular_intrinsic_volumes(self.ambient_dim, self.alpha)

    def statistical_dimension_asymptotic(self) -> float:
        """``d sin²α + cos 2α`` (ALMT Prop. 3.4: the error is exponentially small in ``d``)."""
        return self.ambient_dim * self._sin**2 + math.cos(2 * self.alpha)

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        return [cp.SOC(self._tan * v[0], v[1:])]


class LorentzCone(CircularCone):
    """The second-order cone ``{x : x₁ ≥ ‖x̄‖}`` = ``Circ_d(π/4)``; self-dual, ``δ = d/2``.

    >>> LorentzCone(7).statistical_dimension()
    3.5
    """

    name = "Lorentz"

    def __init__(self, d: int) -> None:
        super().__init__(d, math.pi / 4)

    def __repr__(self) -> str:
        return f"LorentzCone(d={self.ambient_dim})"

    def statistical_dimension(self) -> float:
        # self-dual: δ + δ = d (ALMT Prop. 3.1)
        return self.ambient_dim / 2.0


# ----------------------------------------------------------------------------------------------------------
# PSD cone
# ----------------------------------------------------------------------------------------------------------
def _triu(n: int):
    return np.triu_indices(n)


def svec(S: Any) -> np.ndarray:
    """Isometric vectorisation of symmetric ``(..., n, n)`` matrices to ``(..., n(n+1)/2)``.

    Convention: the upper triangle in row-major order, diagonal entries as they are and off-diagonal
    entries multiplied by ``√2``, so ``⟨svec A, svec B⟩ = tr(AB)`` (Frobenius). A standard Gaussian vector in
    ``R^{n(n+1)/2}`` is therefore a symmetric matrix with ``N(0, 1)`` diagonal and ``N(0, ½)`` off-diagonal
    entries (a GOE matrix). Only the upper triangle of ``S`` is read.

    >>> svec(np.array([[1.0, 2.0], [2.0, 3.0]]))
    array([1.        , 2.82842712, 3.        ])
    """
    S = _finite_array("S", S)
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise ValueError(f"S must have shape (..., n, n), got {S.shape}")
    n = S.shape[-1]
    i, j = _triu(n)
    w = np.where(i == j, 1.0, math.sqrt(2.0))
    return S[..., i, j] * w


def smat(v: Any) -> np.ndarray:
    """Inverse of :func:`svec`: ``(..., n(n+1)/2)`` vectors to symmetric ``(..., n, n)`` matrices."""
    v = _finite_array("v", v)
    if v.ndim < 1:
        raise ValueError(f"v must have shape (..., n(n+1)/2), got {v.shape}")
    m = v.shape[-1]
    n = int(round((math.isqrt(8 * m + 1) - 1) / 2))
    if n * (n + 1) // 2 != m or m == 0:
        raise ValueError(f"v's last dimension must be a triangular number n(n+1)/2, got {m}")
    i, j = _triu(n)
    w = np.where(i == j, 1.0, 1.0 / math.sqrt(2.0))
    S = np.zeros(v.shape[:-1] + (n, n))
    S[..., i, j] = v * w
    S[..., j, i] = v * w
    return S


class PSDCone(Cone):
    """Positive semidefinite ``n × n`` matrices, in ``R^{n(n+1)/2}`` via :func:`svec` (Frobenius isometry).

    ``Π(X) = U max(Λ, 0) Uᵀ`` (clip eigenvalues); self-dual, so ``δ = n(n+1)/4`` (ALMT Sec. 5.5).

    >>> PSDCone(3).statistical_dimension()
    3.0
    """

    name = "PSD"

    def __init__(self, n: int) -> None:
        self.n = check_int("n", n, minimum=1)
        super().__init__(self.n * (self.n + 1) // 2)

    def __repr__(self) -> str:
        return f"PSDCone(n={self.n})"

    def _project(self, x: np.ndarray) -> np.ndarray:
        lam, U = np.linalg.eigh(smat(x))
        return svec((U * np.maximum(lam, 0.0)[..., None, :]) @ np.swapaxes(U, -1, -2))

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        lam = np.linalg.eigvalsh(smat(x))
        return np.sum(np.maximum(lam, 0.0) ** 2, axis=-1)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.linalg.eigvalsh(smat(x))[..., 0] >= -tol

    def polar(self) -> Cone:
        return NegatedCone(self)

    def statistical_dimension(self) -> float:
        return self.n * (self.n + 1) / 4.0

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        n = self.n
        X = cp.Variable((n, n), symmetric=True)
        i, j = _triu(n)
        w = np.where(i == j, 1.0, math.sqrt(2.0))
        # svec as a linear map on vec(X) (cvxpy's vec is column-major: entry (i, j) sits at i + j n)
        A = np.zeros((self.ambient_dim, n * n))
        A[np.arange(self.ambient_dim), i + j * n] = w
        return [X >> 0, v == A @ cp.vec(X, order="F")]


# ----------------------------------------------------------------------------------------------------------
# descent cones
# ----------------------------------------------------------------------------------------------------------
def _optimal_tau(c: np.ndarray, s: float, h_desc: np.ndarray) -> np.ndarray:
    """Exact minimiser over ``τ ≥ 0`` of ``F(τ) = Σ_{i∈S}(g_i − τσ_i)² + Σ_k (h_k − τ)₊²`` (piecewise quadratic).

    ``F'(τ)/2 = sτ − c − Σ_k (h_k − τ)₊`` with ``c = Σ_S σ_i g_i`` is increasing; with ``h`` sorted
    decreasingly and ``C_j`` its cumulative sums, ``F'(h_j)/2 = (s + j − 1)h_j − c − C_{j−1}``. If ``J``
    knots lie above the root, ``τ* = (c + C_J)/(s + J)``, clipped at 0.
    """
    h = np.maximum(h_desc, 0.0)
    m = h.shape[-1]
    if m == 0:
        return np.maximum(c / s, 0.0)
    C = np.cumsum(h, axis=-1)
    Cprev = np.concatenate([np.zeros(h.shape[:-1] + (1,)), C[..., :-1]], axis=-1)
    j = np.arange(1, m + 1, dtype=np.float64)
    knots = (s + j - 1.0) * h - c[..., None] - Cprev
    J = np.sum(knots > 0, axis=-1)
    CJ = np.where(J > 0, np.take_along_axis(C, np.maximum(J - 1, 0)[..., None], axis=-1)[..., 0], 0.0)
    return np.maximum((c + CJ) / (s + J), 0.0)


class L1DescentCone(Cone):
    """Descent cone of the ℓ1 norm at an ``s``-sparse point of ``R^d`` (ALMT Sec. 4.3; docs/math.md §1.2).

    ``D = {v : Σ_{i∈S} σ_i v_i + Σ_{i∉S} |v_i| ≤ 0}`` (support ``S``, signs ``σ``). Its polar is
    ``cone(∂‖x‖₁) = {τu : τ ≥ 0, u_S = σ_S, |u_i| ≤ 1 off S}``, so per sample
    ``‖Π_D(g)‖² = dist²(g, D°) = min_{τ≥0} [‖g_S − τσ_S‖² + Σ_{i∉S}(|g_i| − τ)₊²]``, minimised exactly over
    the sorted ``|g_i|`` (a piecewise quadratic; ALMT Prop. 4.1 makes ``E`` of it equal ``δ(D)``).

    ``nonnegative=True``: descent cone of ``‖x‖₁ + 𝟙{x ≥ 0}`` at a non-negative point,
    ``D = {v : v_i ≥ 0 off S, Σ_i v_i ≤ 0}``; off-support terms become ``(g_i − τ)₊²``.

    Closed forms (see :func:`theory.statdim.l1_psi`): ``d ψ(s/d) − 2√(d/s) ≤ δ ≤ d ψ(s/d)`` (ALMT Prop. 4.5);
    ``δ ≤ d ψ₊(s/d)`` for the non-negative variant (recipe upper bound, ALMT Prop. 4.1).
    The descent cone depends only on the support and signs; by default the point is ``e_1 + … + e_s``.
    """

    def __init__(self, d: int, s: int, *, nonnegative: bool = False, signs: Any = None, support: Any = None) -> None:
        d = check_int("d", d, minimum=1)
        s = check_int("s", s, minimum=1, maximum=d)
        super().__init__(d)
        self.s = s
        self.nonnegative = bool(nonnegative)
        self.name = "l1 descent (nonneg)" if self.nonnegative else "l1 descent"
        if support is None:
            support = np.arange(s)
        support = np.asarray(support)
        if support.shape != (s,) or not np.issubdtype(support.dtype, np.integer):
            raise ValueError(f"support must be {s} integer indices, got {support!r}")
        if np.unique(support).size != s or support.min() < 0 or support.max() >= d:
            raise ValueError(f"support must be {s} distinct indices in [0, {d}), got {support!r}")
        if signs is None:
            signs = np.ones(s)
        signs = _finite_array("signs", signs)
        if signs.shape != (s,) or not np.all(np.abs(signs) == 1):
            raise ValueError(f"signs must be an array of {s} entries equal to +1 or -1, got {signs!r}")
        if self.nonnegative and np.any(signs < 0):
            raise ValueError("signs must all be +1 for the nonnegative variant")
        self.support = np.sort(support)
        self.signs = signs[np.argsort(support)]
        mask = np.zeros(d, dtype=bool)
        mask[self.support] = True
        self.off = np.flatnonzero(~mask)

    @classmethod
    def at(cls, x: Any, *, nonnegative: bool = False) -> "L1DescentCone":
        """The descent cone of ``‖·‖₁`` (or ``‖·‖₁ + 𝟙{· ≥ 0}``) at the point ``x`` (1-D, not zero)."""
        x = _finite_array("x", x)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
        support = np.flatnonzero(x)
        if support.size == 0:
            raise ValueError("x must be nonzero (0 is a minimiser of the l1 norm; its descent cone is {0})")
        if nonnegative and np.any(x < 0):
            raise ValueError(f"x must be non-negative for the nonnegative variant, got min {float(x.min())!r}")
        return cls(x.size, int(support.size), nonnegative=nonnegative, signs=np.sign(x[support]), support=support)

    def __repr__(self) -> str:
        return f"L1DescentCone(d={self.ambient_dim}, s={self.s}, nonnegative={self.nonnegative})"

    def _tau(self, x: np.ndarray):
        """``(τ*, off, h)``: the optimal ``τ``, the off-support coordinates and the off-support terms ``h``."""
        c = x[..., self.support] @ self.signs
        off = x[..., self.off]
        h = off if self.nonnegative else np.abs(off)
        h_desc = -np.sort(-h, axis=-1)
        return _optimal_tau(c, float(self.s), h_desc), off, h

    def _polar_project(self, x: np.ndarray) -> np.ndarray:
        tau, off, _ = self._tau(x)
        u = np.zeros_like(x)
        u[..., self.support] = tau[..., None] * self.signs
        lo = -np.inf if self.nonnegative else -tau[..., None]
        u[..., self.off] = np.minimum(np.maximum(off, lo), tau[..., None])
        return u

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x - self._polar_project(x)

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        tau, _, h = self._tau(x)
        r_s = x[..., self.support] - tau[..., None] * self.signs
        r_off = np.maximum(h - tau[..., None], 0.0)
        return np.sum(r_s * r_s, axis=-1) + np.sum(r_off * r_off, axis=-1)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        off = x[..., self.off]
        if self.nonnegative:
            return np.all(off >= -tol[..., None], axis=-1) & (np.sum(x, axis=-1) <= tol)
        return x[..., self.support] @ self.signs + np.sum(np.abs(off), axis=-1) <= tol

    def _polar_contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        xs = x[..., self.support] * self.signs
        tau = xs[..., 0]
        ok = np.all(np.abs(xs - tau[..., None]) <= tol[..., None], axis=-1) & (tau >= -tol)
        off = x[..., self.off]
        bound = off if self.nonnegative else np.abs(off)
        return ok & np.all(bound <= tau[..., None] + tol[..., None], axis=-1)

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        vs = v[self.support] @ self.signs
        if self.nonnegative:
            return ([v[self.off] >= 0] if self.off.size else []) + [cp.sum(v) <= 0]
        if self.off.size == 0:
            return [vs <= 0]
        return [vs + cp.norm1(v[self.off]) <= 0]


class LinfDescentCone(Cone):
    """Descent cone of the ℓ∞ norm at a point of ``R^d`` with ``k`` saturated coordinates (ALMT Sec. 4.3).

    ``D = {v : σ_i v_i ≤ 0 for every saturated i}``. Its polar, ``cone(∂‖x‖_∞)``, is the signed orthant
    ``{u : σ_i u_i ≥ 0 on the saturated set, u_i = 0 elsewhere}`` of dimension ``k``, so
    ``δ(D) = d − k/2`` exactly and ``v_j(D) = C(k, d−j)/2^k``. Default point: ``e_1 + … + e_k``.

    >>> LinfDescentCone(10, 4).statistical_dimension()
    8.0
    """

    name = "linf descent"

    def __init__(self, d: int, k: int, *, signs: Any = None) -> None:
        d = check_int("d", d, minimum=1)
        k = check_int("k", k, minimum=1, maximum=d)
        super().__init__(d)
        self.k = k
        if signs is None:
            signs = np.ones(k)
        signs = _finite_array("signs", signs)
        if signs.shape != (k,) or not np.all(np.abs(signs) == 1):
            raise ValueError(f"signs must be an array of {k} entries equal to +1 or -1, got {signs!r}")
        self.signs = signs

    def __repr__(self) -> str:
        return f"LinfDescentCone(d={self.ambient_dim}, k={self.k})"

    def _project(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        xs = x[..., : self.k] * self.signs
        out[..., : self.k] = np.minimum(xs, 0.0) * self.signs
        return out

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.all(x[..., : self.k] * self.signs <= tol[..., None], axis=-1)

    def _polar_contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        ok = np.all(x[..., : self.k] * self.signs >= -tol[..., None], axis=-1)
        return ok & np.all(np.abs(x[..., self.k :]) <= tol[..., None], axis=-1)

    def statistical_dimension(self) -> float:
        return self.ambient_dim - self.k / 2.0

    def intrinsic_volumes(self) -> np.ndarray:
        # D = (signed orthant of dim k) × R^{d−k}: v_j(D) = v_{j−(d−k)}(R^k_+) (ALMT Fact 5.5, product rule)
        d, k = self.ambient_dim, self.k
        v = np.zeros(d + 1)
        v[d - k :] = NonnegativeOrthant(k).intrinsic_volumes()
        return v

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        return [cp.multiply(self.signs, v[: self.k]) <= 0]


def nuclear_statdim_asymptotic(m: int, n: int, r: int) -> float:
    """Asymptotic statistical dimension of the nuclear-norm descent cone at a rank-``r`` ``m × n`` matrix.

    ALMT Prop. 4.7 (McCoy's ``sdim_sone``), evaluated at the finite sizes (``m ≤ n`` after transposing):

    ``δ ≈ min_{t≥0} [ r(m+n−r) + r(n−r)t² + (m−r)(n−r) ∫ (u−t)₊² φ_y(u) du ]``

    with ``y = (m−r)/(n−r)`` and the quarter-circle law ``φ_y(u) = √((u²−a₋²)(a₊²−u²))/(π y u)`` on
    ``[a₋, a₊] = [1−√y, 1+√y]`` (singular values of the ``(m−r)×(n−r)`` Gaussian block over ``√(n−r)``).
    This is an **asymptotic** formula (exact as ``m, n, r → ∞`` proportionally): at 60×60 the exact
    Monte Carlo value lies 0.1–0.5 % above it (docs/math.md §1.2). At ``r = min(m, n)`` it gives ``mn`` while the
    descent cone is then a half-space with ``δ = mn − ½`` exactly.
    """
    from scipy import integrate, optimize

    m = check_int("m", m, minimum=1)
    n = check_int("n", n, minimum=1)
    r = check_int("r", r, minimum=1, maximum=min(m, n))
    if m > n:
        m, n = n, m
    if r == m:
        # the orthogonal block is empty and the formula reduces to r(m+n−r) + min_t r(n−r)t² = r(m+n−r) = mn.
        # (Exactly, ∂‖X‖_* = {UVᵀ} is a point, D is a half-space and δ = mn − ½: the formula's O(1) error.)
        return float(r * (m + n - r))
    y = (m - r) / (n - r)
    am, ap = 1 - math.sqrt(y), 1 + math.sqrt(y)

    def dens(u: float) -> float:
        return math.sqrt(max((u * u - am * am) * (ap * ap - u * u), 0.0)) / (math.pi * y * u)

    def tail(t: float) -> float:
        lo = max(am, t)
        if lo >= ap:
            return 0.0
        val, _ = integrate.quad(lambda u: (u - t) ** 2 * dens(u), lo, ap, epsabs=1e-13, epsrel=1e-12, limit=200)
        return val

    def obj(t: float) -> float:
        return r * (m + n - r) + r * (n - r) * t * t + (m - r) * (n - r) * tail(t)

    res = optimize.minimize_scalar(obj, bounds=(0.0, ap), method="bounded", options={"xatol": 1e-10})
    return float(min(res.fun, obj(0.0)))


class NuclearDescentCone(Cone):
    """Descent cone of the nuclear norm at a rank-``r`` ``m × n`` matrix, in ``R^{mn}`` (row-major vec).

    At ``X = [[I_r, 0], [0, 0]]`` (the cone depends only on the row/column spaces), with blocks ``G11``
    (``r×r``), ``G12``, ``G21``, ``G22`` of ``G``: ``D° = cone(∂‖X‖_*)`` ``= {[[τI, 0], [0, W]] : ‖W‖ ≤ τ}``,
    so ``dist²(G, D°) = min_{τ≥0} ‖G11 − τI‖² + ‖G12‖² + ‖G21‖² + Σ_i (σ_i(G22) − τ)₊²``, minimised exactly
    (piecewise quadratic in ``τ``) — an exact projection for Monte Carlo.
    ``D = {V : tr V11 + ‖V22‖_* ≤ 0}``. The closed form :func:`nuclear_statdim_asymptotic` is asymptotic.
    """

    name = "nuclear descent"

    def __init__(self, m: int, n: int, r: int) -> None:
        self.m = check_int("m", m, minimum=1)
        self.n = check_int("n", n, minimum=1)
        self.r = check_int("r", r, minimum=1, maximum=min(self.m, self.n))
        super().__init__(self.m * self.n)

    def __repr__(self) -> str:
        return f"NuclearDescentCone(m={self.m}, n={self.n}, r={self.r})"

    def _blocks(self, x: np.ndarray):
        G = x.reshape(x.shape[:-1] + (self.m, self.n))
        r = self.r
        return G, G[..., :r, :r], G[..., r:, r:]

    def _tau(self, G11: np.ndarray, sv: np.ndarray) -> np.ndarray:
        return _optimal_tau(np.trace(G11, axis1=-2, axis2=-1), float(self.r), sv)

    def _sq_norm(self, x: np.ndarray) -> np.ndarray:
        G, G11, G22 = self._blocks(x)
        if G22.shape[-1] and G22.shape[-2]:
            sv = np.linalg.svd(G22, compute_uv=False)  # descending
        else:
            sv = np.zeros(x.shape[:-1] + (0,))
        tau = self._tau(G11, sv)
        r = self.r
        total = np.einsum("...ij,...ij->...", G, G) - np.einsum("...ij,...ij->...", G11, G11)
        total = total - np.einsum("...ij,...ij->...", G22, G22)  # ‖G12‖² + ‖G21‖²
        d11 = G11 - tau[..., None, None] * np.eye(r)
        total = total + np.einsum("...ij,...ij->...", d11, d11)
        return total + np.sum(np.maximum(sv - tau[..., None], 0.0) ** 2, axis=-1)

    def _project(self, x: np.ndarray) -> np.ndarray:
        G, G11, G22 = self._blocks(x)
        r = self.r
        P = np.zeros_like(G)  # projection onto D°
        if G22.shape[-1] and G22.shape[-2]:
            U, s, Vt = np.linalg.svd(G22, full_matrices=False)  # s descending
            tau = self._tau(G11, s)
            P[..., r:, r:] = (U * np.minimum(s, tau[..., None])[..., None, :]) @ Vt
        else:
            tau = self._tau(G11, np.zeros(x.shape[:-1] + (0,)))
        P[..., :r, :r] = tau[..., None, None] * np.eye(r)
        return (G - P).reshape(x.shape)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        G, G11, G22 = self._blocks(x)
        nuc = np.sum(np.linalg.svd(G22, compute_uv=False), axis=-1) if G22.size else 0.0
        return np.trace(G11, axis1=-2, axis2=-1) + nuc <= tol

    def _polar_contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        G, G11, G22 = self._blocks(x)
        r = self.r
        tau = np.trace(G11, axis1=-2, axis2=-1) / r
        ok = np.linalg.norm(G11 - tau[..., None, None] * np.eye(r), axis=(-2, -1)) <= tol
        off = np.sqrt(np.sum(G[..., :r, r:] ** 2, axis=(-2, -1)) + np.sum(G[..., r:, :r] ** 2, axis=(-2, -1)))
        ok &= off <= tol
        if G22.size:
            ok &= np.linalg.svd(G22, compute_uv=False)[..., 0] <= tau + tol
        return ok & (tau >= -tol)

    def statistical_dimension_asymptotic(self) -> float:
        """:func:`nuclear_statdim_asymptotic` at this cone's ``(m, n, r)`` (asymptotic, not exact)."""
        return nuclear_statdim_asymptotic(self.m, self.n, self.r)

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        m, n, r = self.m, self.n, self.r
        V = cp.reshape(v, (m, n), order="C")
        expr = cp.trace(V[:r, :r])
        if r < min(m, n):
            expr = expr + cp.normNuc(V[r:, r:])
        return [expr <= 0]


# ----------------------------------------------------------------------------------------------------------
# elliptic cone
# ----------------------------------------------------------------------------------------------------------
class EllipticCone(Cone):
    """``K = {(t, z) ∈ R × R^n : t ≥ ‖diag(1/a) z‖}`` with slopes ``a_i > 0`` (docs/math.md §2, [reconstructed]).

    Vectors are ``(t, z)`` with ``t`` first, so ``ambient_dim = n + 1``. The cone over an ellipsoid with
    transverse semi-axes ``r_i`` at distance ``R`` has slopes ``a_i = r_i/R``; equal slopes ``a`` give the
    circular cone ``Circ_{n+1}(arctan a)``.

    **Exact projection** of ``(s, y)`` (our derivation; KKT checked in ``proofs_check.geometry``), with
    ``b = 1/a``: ``(s, y)`` itself if ``s ≥ ‖b∘y‖``; ``0`` if ``−s ≥ ‖a∘y‖`` (the polar
    ``K° = {(t, z) : −t ≥ ‖a∘z‖}``); otherwise ``z_i = y_i/(1 + μ b_i²)``, ``t = s/(1 − μ) = ‖b∘z‖`` with the
    multiplier ``μ > 0`` the unique root of ``(1 − μ)‖b∘z(μ)‖ = s``. We substitute ``μ = θ/(1 − θ)``,
    ``θ ∈ (0, 1)``: the function ``h(θ) = (1 − 2θ)·√(Σ_i b_i²y_i²/(1 − θ + θb_i²)²) − s`` is strictly
    decreasing from ``‖b∘y‖ − s > 0`` to ``−‖a∘y‖ − s < 0`` (each term ``(1 − 2θ) b_i/(1 − θ + θ b_i²)``
    decreases), and is solved by a bracketed, vectorised Newton iteration to machine precision.
    ``t`` is then recomputed as ``‖b∘z‖`` (stable near ``θ = ½``, where ``s/(1 − μ)`` is ``0/0``).

    ``δ(K) = Σ_i a_i²/(1 + a_i²) + O(1)`` (:meth:`statistical_dimension_leading_order`; [reconstructed],
    docs/math.md §2); exact only for equal slopes (circular cone).

    >>> K = EllipticCone([1.0, 1.0])
    >>> K.project(np.array([0.0, 1.0, 0.0]))
    array([0.5, 0.5, 0. ])
    """

    name = "elliptic"

    def __init__(self, slopes: Any) -> None:
        a = _finite_array("slopes", slopes)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"slopes must be a non-empty 1-D array, got shape {a.shape}")
        if np.any(a <= 0):
            raise ValueError(f"slopes must be positive, got min(slopes)={float(a.min())!r}")
        super().__init__(a.size + 1)
        self.slopes = a
        self._b = 1.0 / a
        self._b2 = self._b * self._b
        #: iterations used by the last call of :meth:`project` (diagnostic)
        self.last_iterations = 0

    def __repr__(self) -> str:
        return f"EllipticCone(n={self.slopes.size})"

    def _solve_theta(self, s: np.ndarray, y: np.ndarray) -> np.ndarray:
        b2 = self._b2
        by2 = y * y * b2  # (B, n)
        lo = np.zeros_like(s)
        hi = np.ones_like(s)
        theta = np.full_like(s, 0.5)
        active = np.ones(s.shape, dtype=bool)
        it = 0
        for it in range(1, 200):
            th = theta[active][:, None]
            D = 1.0 - th + th * b2
            q = by2[active] / (D * D)
            N = np.sqrt(np.sum(q, axis=-1))
            t = theta[active]
            f = (1.0 - 2.0 * t) * N - s[active]
            # dN/dθ = −(1/N) Σ b²y²(b² − 1)/D³
            dN = -np.sum(q * (b2 - 1.0) / D, axis=-1) / np.where(N > 0, N, 1.0)
            df = -2.0 * N + (1.0 - 2.0 * t) * dN
            lo_a, hi_a = lo[active], hi[active]
            lo_a = np.where(f > 0, t, lo_a)
            hi_a = np.where(f <= 0, t, hi_a)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = t - f / df
            ok = np.isfinite(newton) & (newton >= lo_a) & (newton <= hi_a)
            new = np.where(ok, newton, 0.5 * (lo_a + hi_a))
            lo[active], hi[active] = lo_a, hi_a
            # converged: an accepted Newton step of a few ulps, an exact root, or a collapsed bracket
            # the bracket test is relative: near the inside boundary the root θ is tiny and z is sensitive to it
            # (dz/z ≈ θ·b² for b up to 1e3), so an absolute 4·eps bracket left 1e-10 relative errors
            done = (ok & (np.abs(newton - t) <= 4 * _EPS * t)) | (hi_a - lo_a <= 4 * _EPS * hi_a) | (f == 0)
            theta[active] = new
            idx = np.flatnonzero(active)
            active[idx[done]] = False
            if not active.any():
                break
        self.last_iterations = it
        return theta

    def _project(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, self.ambient_dim)
        s, y = flat[:, 0], flat[:, 1:]
        nb = _norm(y * self._b)
        na = _norm(y * self.slopes)
        inside = s >= nb
        zero = (-s >= na) & ~inside
        mid = ~(inside | zero)
        out = np.where(inside[:, None], flat, 0.0)
        self.last_iterations = 0
        if mid.any():
            # θ is scale invariant: solve on rows scaled to max-abs 1 (the root equation squares y)
            sc = np.max(np.abs(flat[mid]), axis=-1)
            theta = self._solve_theta(s[mid] / sc, y[mid] / sc[:, None])[:, None]
            z = y[mid] * (1.0 - theta) / (1.0 - theta + theta * self._b2)
            t = _norm(z * self._b)
            out[mid, 0] = t
            out[mid, 1:] = z
        return out.reshape(x.shape)

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return x[..., 0] - _norm(x[..., 1:] * self._b) >= -tol

    def polar(self) -> Cone:
        # K = M·L with L the Lorentz cone and M = diag(1, a): K° = M⁻ᵀ L° = {(t, z) : −t ≥ ‖a∘z‖}
        return NegatedCone(EllipticCone(1.0 / self.slopes))

    def _equal_slopes(self) -> bool:
        return bool(np.all(self.slopes == self.slopes[0]))

    def _as_circular(self) -> CircularCone:
        return CircularCone(self.ambient_dim, math.atan(float(self.slopes[0])))

    def intrinsic_volumes(self) -> np.ndarray:
        if self._equal_slopes() and self.ambient_dim >= 2:
            return self._as_circular().intrinsic_volumes()
        raise NotImplementedError("EllipticCone: intrinsic volumes are known only for equal slopes (circular cone)")

    def statistical_dimension(self) -> float:
        if self._equal_slopes():
            return self._as_circular().statistical_dimension()
        raise NotImplementedError(
            "EllipticCone: no closed form for unequal slopes; use statistical_dimension_leading_order() "
            "or theory.statdim.statistical_dimension_mc"
        )

    def statistical_dimension_leading_order(self) -> float:
        """``Σ_i a_i²/(1 + a_i²)``: the leading order of ``δ(K)``, with an ``O(1)`` error ([reconstructed])."""
        a2 = self.slopes * self.slopes
        return float(np.sum(a2 / (1.0 + a2)))

    def statistical_dimension_bounds(self) -> tuple[float, float]:
        """Rigorous bounds by inclusion: ``Circ(arctan a_min) ⊂ K ⊂ Circ(arctan a_max)`` and δ is monotone."""
        lo = CircularCone(self.ambient_dim, math.atan(float(self.slopes.min()))).statistical_dimension()
        hi = CircularCone(self.ambient_dim, math.atan(float(self.slopes.max()))).statistical_dimension()
        return lo, hi

    def cvxpy_constraints(self, v: Any) -> list:
        import cvxpy as cp

        return [cp.SOC(v[0], cp.multiply(self._b, v[1:]))]


# ----------------------------------------------------------------------------------------------------------
# cvxpy ground truth
# ----------------------------------------------------------------------------------------------------------
class CvxpyCone(Cone):
    """Any closed convex cone given by cvxpy constraints, projected by solving ``min ‖v − x‖²`` per point.

    ``constraints(v)`` returns a list of cvxpy constraints on the vector variable ``v`` (length ``d``). The
    problem is built once with ``x`` as a parameter (DPP) and re-solved per row with ``solver``
    (default CLARABEL, an interior-point QP/SOCP/SDP solver). Every solve's status is checked: a
    non-optimal status is retried on freshly compiled equivalent problems (objective scaled by ½; then SCS at
    ``eps = 1e-10``), counted in ``retries``; if none is ``optimal`` a ``RuntimeError`` is raised (set
    ``allow_inaccurate=True`` to accept ``optimal_inaccurate``). Final statuses are kept in ``statuses``.
    Accuracy is the solver's: CLARABEL's default tolerances (``1e-8`` on the objective gap) give points to
    about ``√(2·1e-8) ≈ 1e-4`` (strong convexity: ``‖v − v*‖² ≤ 2·gap``), ``1e-5`` typically; tighter
    tolerances (``1e-9``) make CLARABEL report ``optimal_inaccurate`` on some small SOCPs; this class is the slow,
    independent ground truth for the closed-form projections.
    """

    def __init__(
        self,
        ambient_dim: int,
        constraints: Callable[[Any], Sequence[Any]],
        *,
        solver: str = "CLARABEL",
        solver_options: dict | None = None,
        allow_inaccurate: bool = False,
        name: str = "cvxpy cone",
    ) -> None:
        import cvxpy as cp

        super().__init__(ambient_dim)
        if not callable(constraints):
            raise TypeError(f"constraints must be callable v -> list of constraints, got {constraints!r}")
        check_choice("solver", solver, tuple(cp.installed_solvers()))  # the installed cvxpy solvers
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        self.allow_inaccurate = bool(allow_inaccurate)
        self.name = name
        self._constraints = constraints
        self._v, self._x, self._problem = self._build()
        #: final status of every projection so far
        self.statuses: list[str] = []
        #: how many solves were repeated on a freshly built problem after a non-optimal status
        self.retries = 0

    def _build(self, weight: float = 1.0):
        import cvxpy as cp

        v = cp.Variable(self.ambient_dim)
        x = cp.Parameter(self.ambient_dim)
        problem = cp.Problem(cp.Minimize(weight * cp.sum_squares(v - x)), list(self._constraints(v)))
        return v, x, problem

    @classmethod
    def from_cone(cls, cone: Cone, **kwargs: Any) -> "CvxpyCone":
        """The cvxpy description of ``cone`` from its defining constraints (``cone.cvxpy_constraints``)."""
        kwargs.setdefault("name", f"cvxpy {cone.name}")
        return cls(cone.ambient_dim, cone.cvxpy_constraints, **kwargs)

    def _project(self, x: np.ndarray) -> np.ndarray:
        import cvxpy as cp

        flat = x.reshape(-1, self.ambient_dim)
        out = np.empty_like(flat)
        ok = {cp.OPTIMAL} | ({cp.OPTIMAL_INACCURATE} if self.allow_inaccurate else set())
        for i, row in enumerate(flat):
            self._x.value = row
            with warnings.catch_warnings():
                # "Solution may be inaccurate": the status is checked (and retried) below
                warnings.simplefilter("ignore", UserWarning)
                self._problem.solve(solver=self.solver, **self.solver_options)
            status = self._problem.status
            value = self._v.value
            if status not in ok:
                # CLARABEL occasionally reports optimal_inaccurate on an (often already accurate) point; retry
                # on freshly compiled equivalent problems: the objective scaled by ½, then SCS at tight eps
                for weight, solver, opts in self._fallbacks():
                    self.retries += 1
                    v, xp, prob = self._build(weight)
                    xp.value = row
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        prob.solve(solver=solver, **opts)
                    status, value = prob.status, v.value
                    if status in ok:
                        break
            self.statuses.append(status)
            if status not in ok:
                raise RuntimeError(f"cvxpy solver {self.solver} returned status {status!r} projecting row {i}")
            out[i] = value
        return out.reshape(x.shape)

    def _fallbacks(self):
        import cvxpy as cp

        yield 0.5, self.solver, self.solver_options
        if "SCS" in cp.installed_solvers():
            yield 1.0, "SCS", {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200_000}

    def _contains(self, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x - self._project(x), axis=-1) <= tol
