"""Hypothesis strategies for the closed-form cones and formulas: every strategy reaches its boundary points
(explicit examples: dimension 1 or 2 and the largest dimension, angles near 0, π/4 and π/2, fractions 0, ½, 1,
input scales 1e-3 and 1e3, the θ = ½ root of the elliptic projection) besides the interior.

Each cone strategy draws ``(cone, points)`` where ``points`` mixes generic Gaussian points (at scales 1e-3…1e3)
with points on the cone's boundary, on its polar's boundary, the apex and the axis.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from theory.cones import (
    CircularCone,
    EllipticCone,
    L1DescentCone,
    LinfDescentCone,
    LorentzCone,
    NonnegativeOrthant,
    NuclearDescentCone,
    PSDCone,
    Subspace,
)

#: input scales reached explicitly
SCALES = (1e-3, 1.0, 1e3)


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats log-uniform on ``[lo, hi]``, with both ends as explicit examples."""
    return st.one_of(st.sampled_from([lo, hi]), st.floats(math.log(lo), math.log(hi)).map(math.exp))


def dims(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers in ``[lo, hi]`` with both extremes as explicit examples."""
    return st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi))


def fractions(*, open_ends: bool = False) -> st.SearchStrategy[float]:
    """A fraction in [0, 1] reaching 0, ½, 1 and values within 1e-12 of the ends."""
    specials = [1e-12, 0.5, 1 - 1e-12] + ([] if open_ends else [0.0, 1.0])
    lo, hi = (1e-12, 1 - 1e-12) if open_ends else (0.0, 1.0)
    return st.one_of(st.sampled_from(specials), st.floats(lo, hi))


def angles() -> st.SearchStrategy[float]:
    """Cone half-angles in (0, π/2): near both ends, π/4 (where the v₀ ↔ v_d swap is invisible) and inside."""
    return st.one_of(st.sampled_from([1e-3, math.pi / 8, math.pi / 4, 1.3, math.pi / 2 - 1e-3]),
                     st.floats(1e-3, math.pi / 2 - 1e-3))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


@st.composite
def cones(draw, max_dim: int = 400):
    """One closed-form cone of any family, at dimension extremes and in between."""
    family = draw(st.sampled_from(["subspace", "orthant", "circular", "lorentz", "psd", "l1", "l1+", "linf",
                                   "nuclear", "elliptic"]))
    rng = np.random.default_rng(draw(seeds()))
    if family == "subspace":
        d = draw(dims(1, max_dim))
        k = draw(dims(1, d))
        return Subspace(rng.standard_normal((d, k)))
    if family == "orthant":
        return NonnegativeOrthant(draw(dims(1, max_dim)))
    if family == "circular":
        return CircularCone(draw(dims(2, max_dim)), draw(angles()))
    if family == "lorentz":
        return LorentzCone(draw(dims(2, max_dim)))
    if family == "psd":
        return PSDCone(draw(dims(1, 12)))
    if family in ("l1", "l1+"):
        d = draw(dims(1, max_dim))
        s = draw(dims(1, d))
        nonneg = family == "l1+"
        signs = np.ones(s) if nonneg else rng.choice([-1.0, 1.0], s)
        return L1DescentCone(d, s, nonnegative=nonneg, signs=signs, support=rng.permutation(d)[:s])
    if family == "linf":
        d = draw(dims(1, max_dim))
        k = draw(dims(1, d))
        return LinfDescentCone(d, k, signs=rng.choice([-1.0, 1.0], k))
    if family == "nuclear":
        m, n = draw(dims(1, 12)), draw(dims(1, 12))
        return NuclearDescentCone(m, n, draw(dims(1, min(m, n))))
    n = draw(dims(1, max_dim - 1))
    spread = draw(st.sampled_from([0.0, 1.0, 3.0, 7.0]))  # slopes from e^{−spread} to e^{spread}; 0: equal slopes
    return EllipticCone(np.exp(rng.uniform(-spread, spread, size=n)) if spread else np.full(n, draw(log_uniform(1e-2, 1e2))))


def special_points(cone, rng: np.random.Generator) -> np.ndarray:
    """Points where the projection's case distinctions meet: the apex, points of the cone and of its polar
    (projected Gaussians, i.e. on the boundary when the projection is not the identity), the first axis."""
    d = cone.ambient_dim
    g = rng.standard_normal((2, d))
    pts = [np.zeros(d), cone.project(g[0]), cone.polar().project(g[1]), np.eye(d)[0], -np.eye(d)[0]]
    if isinstance(cone, EllipticCone):
        y = rng.standard_normal(d - 1)
        pts.append(np.concatenate([[0.0], y]))  # s = 0: θ = ½
    return np.array(pts)


@st.composite
def cone_and_points(draw, max_dim: int = 400):
    """``(cone, x)`` with ``x`` of shape ``(k, d)``: generic points at scales 1e-3…1e3 plus special points."""
    cone = draw(cones(max_dim))
    rng = np.random.default_rng(draw(seeds()))
    scale = draw(log_uniform(1e-3, 1e3))
    x = np.concatenate([scale * rng.standard_normal((4, cone.ambient_dim)), scale * special_points(cone, rng)])
    return cone, x
