"""Derivation checks for :mod:`theory` (convex geometry, docs/math.md §1–2): each proves its identity in sympy
where symbolic, and evaluates the library functions it covers at several non-degenerate points against an
independent reference in exact (sympy/fractions) or 40-digit (mpmath) arithmetic.

ALMT = Amelunxen, Lotz, McCoy & Tropp 2014, "Living on the edge". Tolerances are multiples of the float64
epsilon ``EPS`` times the conditioning of the computation, stated where they are set.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import sympy as sp

from proofs_check._compare import EPS, Tally, to_mp
from proofs_check.registry import CheckResult, check

_DPS = 40
_ALPHAS = (math.pi / 8, math.pi / 6, math.pi / 4, 1.3)  # π/4 alone hides the v₀ ↔ v_d swap


def _is_zero(expr: sp.Expr) -> bool:
    # erfc is rewritten as 1 − erf first: sympy's simplify does not always combine erf + erfc (it depends on
    # its cache state), which made a plain simplify pass or fail with the order in which checks ran.
    return sp.simplify(sp.expand(sp.sympify(expr).rewrite(sp.erf))) == 0


# ---------------------------------------------------------------------------------------------------------
# references (mpmath, independent of the library code)
# ---------------------------------------------------------------------------------------------------------
def _mp_excess(t) -> mp.mpf:
    """E(|g| − t)₊² = 2∫_t^∞ (x − t)² φ(x) dx by quadrature (the definition)."""
    t = mp.mpf(t)
    return 2 * mp.quad(lambda x: (x - t) ** 2 * mp.npdf(x), [t, t + 4, t + 12, mp.inf])


def _mp_excess_closed(t) -> mp.mpf:
    t = mp.mpf(t)
    return (1 + t * t) * mp.erfc(t / mp.sqrt(2)) - t * mp.sqrt(2 / mp.pi) * mp.exp(-t * t / 2)


def _mp_psi(rho, half: bool) -> tuple[mp.mpf, mp.mpf]:
    """(ψ(ρ), τ*) from the stationarity equation √(2/π)e^{−τ²/2}/τ − erfc(τ/√2) = c·ρ/(1−ρ) (c = 2 for ψ₊)."""
    rho = mp.mpf(rho)
    target = (2 if half else 1) * rho / (1 - rho)
    logL = lambda t: mp.log(mp.sqrt(2 / mp.pi) * mp.exp(-t * t / 2) / t - mp.erfc(t / mp.sqrt(2))) - mp.log(target)  # noqa: E731
    tau = mp.findroot(logL, (mp.mpf("1e-30"), mp.mpf(30)), solver="anderson")
    factor = mp.mpf(1) / 2 if half else 1
    return rho * (1 + tau * tau) + (1 - rho) * factor * _mp_excess_closed(tau), tau


def _circ_volumes(d: int, alpha) -> list:
    """conivol's circular-cone intrinsic volumes at the working precision."""
    alpha = mp.mpf(alpha)
    s, c = mp.sin(alpha), mp.cos(alpha)
    v = [mp.mpf(0)] * (d + 1)
    v[0] = mp.betainc((d - 1) / mp.mpf(2), mp.mpf(1) / 2, 0, c**2, regularized=True) / 2
    v[d] = mp.betainc((d - 1) / mp.mpf(2), mp.mpf(1) / 2, 0, s**2, regularized=True) / 2
    for k in range(1, d):
        v[k] = (
            mp.gamma(mp.mpf(d) / 2) / (mp.gamma(mp.mpf(k + 1) / 2) * mp.gamma(mp.mpf(d - k + 1) / 2)) / 2
            * s ** (k - 1) * c ** (d - k - 1)
        )
    return v


def _circ_angular(d: int, alpha) -> dict:
    """Independent of the intrinsic-volume formula: with φ the angle between g and e₁ (density ∝ sin^{d−2}φ
    on [0, π], independent of ‖g‖² whose mean is d), Π_C g = 0 for φ ≥ α + π/2, g for φ ≤ α, and
    ‖Π_C g‖ = ‖g‖cos(φ − α) in between. Returns P{g ∈ C} (= v_d), P{g ∈ C°} (= v₀), δ and E‖Π_C g‖."""
    alpha = mp.mpf(alpha)
    w = lambda phi: mp.sin(phi) ** (d - 2)  # noqa: E731
    cuts = sorted({mp.mpf(0), alpha, mp.pi / 2, alpha + mp.pi / 2, mp.pi})
    Z = mp.quad(w, cuts)
    inside = mp.quad(w, [0, alpha]) / Z
    polar = mp.quad(w, [alpha + mp.pi / 2, mp.pi]) / Z
    mid = [p for p in cuts if alpha <= p <= alpha + mp.pi / 2]
    cos2 = mp.quad(lambda p: mp.cos(p - alpha) ** 2 * w(p), mid) / Z
    cos1 = mp.quad(lambda p: mp.cos(p - alpha) * w(p), mid) / Z
    chi = mp.sqrt(2) * mp.gamma(mp.mpf(d + 1) / 2) / mp.gamma(mp.mpf(d) / 2)
    return {"v_d": inside, "v_0": polar, "delta": d * (inside + cos2), "mean_norm": chi * (inside + cos1)}


def _circ_project_ref(x, alpha) -> list:
    """Π onto Circ_d(α) by angles: ‖Π x‖ = max(0, sup_{u ∈ C, ‖u‖=1} ⟨x, u⟩) = ‖x‖cos(φ − α) and Π x points
    along the boundary ray in the plane of x and e₁ (φ = atan2(‖x̄‖, x₁))."""
    x = [mp.mpf(v) for v in x]
    alpha = mp.mpf(alpha)
    r = mp.sqrt(mp.fsum(v * v for v in x[1:]))
    phi = mp.atan2(r, x[0])
    if phi <= alpha:
        return x
    if phi >= alpha + mp.pi / 2:
        return [mp.mpf(0)] * len(x)
    length = mp.sqrt(x[0] ** 2 + r * r) * mp.cos(phi - alpha)
    return [length * mp.cos(alpha)] + [length * mp.sin(alpha) * v / r for v in x[1:]]


def _chi_mean(k) -> mp.mpf:
    k = mp.mpf(k)
    return mp.sqrt(2) * mp.exp(mp.loggamma((k + 1) / 2) - mp.loggamma(k / 2))


# ---------------------------------------------------------------------------------------------------------
@check(
    "l1_excess_closed_form",
    "E(|g|-t)_+^2 = (1+t^2) erfc(t/sqrt2) - t sqrt(2/pi) e^{-t^2/2}  [ALMT (4.9); §1.2]",
    covers=("theory.statdim.expected_sq_excess",),
)
def l1_excess_closed_form() -> CheckResult:
    x, t = sp.symbols("x t", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    integral = 2 * sp.integrate((x - t) ** 2 * phi, (x, t, sp.oo))
    closed = (1 + t**2) * sp.erfc(t / sp.sqrt(2)) - t * sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2)
    diff = sp.simplify(sp.expand((integral - closed).rewrite(sp.erf)))
    tally = Tally()
    tally.check(f"symbolic: integral − closed form = {diff}", diff == 0 and closed.subs(t, 0) == 1)
    from theory.statdim import expected_sq_excess

    with mp.workdps(_DPS):
        for tau in (0.0, 0.25, 1.0, 2.5, 6.0, 12.0):
            # the closed form cancels like τ⁴ (terms ≈ τ, result ≈ 2√(2/π)/τ³·e^{−τ²/2}): 64·eps·(1+τ²)²
            tally.close(f"τ={tau}", expected_sq_excess(tau), _mp_excess(tau), rtol=64 * EPS * (1 + tau * tau) ** 2)
    return tally.result()


@check(
    "psi_stationarity",
    "d/dt[rho(1+t^2) + (1-rho)E(|g|-t)_+^2] = 0 <=> sqrt(2/pi)e^{-t^2/2}/t - erfc(t/sqrt2) = rho/(1-rho); "
    "psi, psi_+ and the l1 bounds d psi(s/d) - 2 sqrt(d/s) <= delta <= d psi(s/d)  [§1.2]",
    covers=("theory.statdim.l1_psi", "theory.statdim.l1_psi_nonneg", "theory.statdim.statistical_dimension"),
)
def psi_stationarity() -> CheckResult:
    t, rho = sp.symbols("t rho", positive=True)
    excess = (1 + t**2) * sp.erfc(t / sp.sqrt(2)) - t * sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2)
    obj = rho * (1 + t**2) + (1 - rho) * excess
    deriv = sp.diff(obj, t)
    # the derivative equals 2(1−ρ)t · [ρ/(1−ρ) − L(t)] with L the left side of the stationarity equation
    L = sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2) / t - sp.erfc(t / sp.sqrt(2))
    tally = Tally()
    tally.check("derivative identity", _is_zero(deriv - 2 * (1 - rho) * t * (rho / (1 - rho) - L)))
    # L is decreasing: L'(t) = −sqrt(2/π) e^{−t²/2}/t² (so the root is unique)
    tally.check("L' < 0", _is_zero(sp.diff(L, t) + sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2) / t**2))
    # nonnegative variant: half the off-support term doubles the right-hand side
    obj_p = rho * (1 + t**2) + (1 - rho) * excess / 2
    tally.check("ψ₊ stationarity", _is_zero(sp.diff(obj_p, t) - (1 - rho) * t * (2 * rho / (1 - rho) - L)))

    from theory.cones import L1DescentCone
    from theory.statdim import l1_psi, l1_psi_nonneg, statistical_dimension

    with mp.workdps(_DPS):
        for r in (1e-4, 0.01, 0.3, 0.5, 0.9, 0.999):
            for half, fn in ((False, l1_psi), (True, l1_psi_nonneg)):
                ref, tau = _mp_psi(r, half)
                got = fn(r)
                # ψ is a minimum (first-order insensitive to τ) and τ* a well-conditioned root: 64 eps
                tally.close(f"ψ{'₊' if half else ''}({r})", got.value, ref, rtol=64 * EPS)
                tally.close(f"τ{'₊' if half else ''}*({r})", got.tau, tau, rtol=256 * EPS)
                obj_at = lambda tt: r * (1 + tt * tt) + (1 - r) * (0.5 if half else 1) * _mp_excess_closed(tt)  # noqa: E731
                tally.check(f"ψ({r}) is the minimum", obj_at(tau * 1.001) > ref and obj_at(tau * 0.999) > ref)
        for d, s in ((1000, 100), (60, 6), (10, 10), (7, 1)):
            ref = d * _mp_psi(mp.mpf(s) / d, False)[0] if s < d else mp.mpf(d)
            f = statistical_dimension(L1DescentCone(d, s))
            tally.close(f"dψ(s/d) d={d},s={s}", f.value, ref, rtol=64 * EPS)
            tally.close(f"lower d={d},s={s}", f.lower, ref - 2 * mp.sqrt(mp.mpf(d) / s), rtol=64 * EPS)
            tally.check(f"kind/upper d={d},s={s}", f.kind == "bound" and f.upper == f.value)
            fp = statistical_dimension(L1DescentCone(d, s, nonnegative=True))
            refp = d * _mp_psi(mp.mpf(s) / d, True)[0] if s < d else mp.mpf(d)
            tally.close(f"dψ₊ d={d},s={s}", fp.value, refp, rtol=64 * EPS)
            tally.check(f"ψ₊ bounds d={d},s={s}", fp.lower == 0.0 and fp.upper == fp.value)
    return tally.result()


@check(
    "orthant_statdim",
    "delta(R^d_+) = sum_k k C(d,k)/2^d = d/2; l-inf descent v_j = C(k,d-j)/2^k, delta = d - k/2; "
    "Crofton for the orthant = Wendel's formula  [ALMT Sec. 5.5, Fact 2.1]",
    covers=(
        "theory.cones.NonnegativeOrthant.intrinsic_volumes",
        "theory.cones.NonnegativeOrthant.statistical_dimension",
        "theory.cones.LinfDescentCone.intrinsic_volumes",
        "theory.cones.LinfDescentCone.statistical_dimension",
        "theory.cones.Subspace.intrinsic_volumes",
        "theory.cones.PolarCone.intrinsic_volumes",
        "theory.kinematics.crofton_probability",
        "theory.statdim.statistical_dimension",
    ),
)
def orthant_statdim() -> CheckResult:
    d = sp.symbols("d", integer=True, positive=True)
    k = sp.symbols("k", integer=True, nonnegative=True)
    total = sp.simplify(sp.summation(sp.binomial(d, k), (k, 0, d)) / 2**d)
    delta = sp.simplify(sp.summation(k * sp.binomial(d, k), (k, 0, d)) / 2**d)
    tally = Tally()
    tally.check(f"symbolic Σv = {total}, δ = {delta}", sp.simplify(total - 1) == 0 and sp.simplify(delta - d / 2) == 0)

    from theory.cones import LinfDescentCone, NonnegativeOrthant, PolarCone, Subspace
    from theory.kinematics import crofton_probability
    from theory.statdim import statistical_dimension

    for dd in (1, 2, 7, 12, 60):
        v = NonnegativeOrthant(dd).intrinsic_volumes()
        for kk in range(dd + 1):
            # exp of a sum of log-gammas of size ≈ d log d: relative error ≈ 8 d eps
            tally.close(f"v_{kk}(R^{dd}_+)", v[kk], Fraction(math.comb(dd, kk), 2**dd), rtol=8 * (dd + 1) * EPS)
        tally.check(f"δ(R^{dd}_+) = d/2", NonnegativeOrthant(dd).statistical_dimension() == dd / 2)
        pv = PolarCone(NonnegativeOrthant(dd)).intrinsic_volumes()
        tally.check(f"v(polar) reversed d={dd}", np.array_equal(pv, v[::-1]))
        for m in range(dd + 1):
            # Wendel (1962): P{R^d_+ ∩ L ≠ {0}} = 2^{1−d} Σ_{j<d−m} C(d−1, j) for L of codimension m
            wendel = Fraction(sum(math.comb(dd - 1, j) for j in range(dd - m)), 2 ** (dd - 1))
            tally.close(f"Crofton(R^{dd}_+, m={m})", crofton_probability(NonnegativeOrthant(dd), m), min(wendel, Fraction(1)),
                        rtol=16 * (dd + 1) * EPS, atol=1e-300)
    for dd, kk in ((6, 3), (10, 4), (30, 8), (5, 5)):
        C = LinfDescentCone(dd, kk)
        v = C.intrinsic_volumes()
        for j in range(dd + 1):
            ref = Fraction(math.comb(kk, dd - j), 2**kk) if dd - j <= kk else Fraction(0)
            tally.close(f"v_{j}(Linf d={dd},k={kk})", v[j], ref, rtol=8 * (kk + 1) * EPS)
        tally.check(f"δ(Linf d={dd},k={kk}) = d − k/2", C.statistical_dimension() == dd - kk / 2)
        tally.check("statistical_dimension(Linf) exact", statistical_dimension(C).kind == "exact"
                    and statistical_dimension(C).value == dd - kk / 2)
    for dd, kk in ((6, 3), (4, 1), (5, 5)):
        S = Subspace.coordinate(dd, kk)
        tally.check(f"subspace v = e_{kk}", np.array_equal(S.intrinsic_volumes(), np.eye(dd + 1)[kk]))
        for m in range(dd + 1):
            tally.check(f"Crofton(subspace {kk} in R^{dd}, m={m})", crofton_probability(S, m) == (1.0 if kk > m else 0.0))
    return tally.result()


@check(
    "circular_volumes",
    "v_k(Circ_d(a)) (conivol) against P{g in C} = v_d, P{g in C°} = v_0 and delta = d E f(angle) computed "
    "from the angle of g; Crofton 2h_d = 2v_d, 2h_2 = 1 - 2v_0; delta -> d sin^2 a + cos 2a  [ALMT Prop. 3.4; §1.2]",
    covers=(
        "theory.cones.circular_intrinsic_volumes",
        "theory.cones.CircularCone.statistical_dimension",
        "theory.cones.CircularCone.statistical_dimension_asymptotic",
        "theory.cones.LorentzCone.statistical_dimension",
        "theory.kinematics.crofton_probability",
        "theory.cones.PolarCone.intrinsic_volumes",
    ),
)
def circular_volumes() -> CheckResult:
    from theory.cones import CircularCone, LorentzCone, PolarCone, circular_intrinsic_volumes
    from theory.kinematics import crofton_probability

    tally = Tally()
    with mp.workdps(_DPS):
        for alpha in _ALPHAS:
            for d in (2, 3, 4, 10, 40):
                v = circular_intrinsic_volumes(d, alpha)
                ang = _circ_angular(d, alpha)
                ref = _circ_volumes(d, alpha)
                # exp of log-gamma sums of size ≈ d log d, betainc to ≈ 1e-15 relative: 64·d·eps
                rt = 64 * d * EPS
                tally.close(f"v_d(d={d},α={alpha:.3f}) = P(g∈C)", v[d], ang["v_d"], rtol=rt, atol=1e-300)
                tally.close(f"v_0(d={d},α={alpha:.3f}) = P(g∈C°)", v[0], ang["v_0"], rtol=rt, atol=1e-300)
                for kk in range(1, d):
                    tally.close(f"v_{kk}(d={d},α={alpha:.3f})", v[kk], ref[kk], rtol=rt, atol=1e-300)
                tally.close(f"δ(Circ_{d}({alpha:.3f}))", CircularCone(d, alpha).statistical_dimension(), ang["delta"], rtol=rt)
                tally.close(f"v_0(polar)(d={d})", PolarCone(CircularCone(d, alpha)).intrinsic_volumes()[0], ang["v_d"],
                            rtol=rt, atol=1e-300)
                # Crofton at the two ends: a line meets C iff ±u ∈ C; a hyperplane misses C iff ±normal ∈ int C°
                tally.close(f"Crofton m=d−1 (d={d})", crofton_probability(CircularCone(d, alpha), d - 1), 2 * ang["v_d"],
                            rtol=rt, atol=1e-300)
                if d >= 3:
                    tally.close(f"Crofton m=1 (d={d})", crofton_probability(CircularCone(d, alpha), 1), 1 - 2 * ang["v_0"],
                                rtol=rt, atol=1e-300)
            gaps = []
            for d in (20, 80, 320):
                C = CircularCone(d, alpha)
                asym = d * mp.sin(alpha) ** 2 + mp.cos(2 * mp.mpf(alpha))
                tally.close(f"asymptotic d={d}", C.statistical_dimension_asymptotic(), asym, rtol=16 * d * EPS)
                delta = mp.fsum(kk * vk for kk, vk in enumerate(_circ_volumes(d, alpha)))
                gaps.append(abs(delta - asym))
            # the gap to the asymptotic form decreases (exponentially) with d
            tally.check(f"asymptotic gap decreases α={alpha:.3f}", gaps[2] < gaps[1] < gaps[0] or gaps[2] < 1e-30)
            tally.check(f"asymptotic gap small α={alpha:.3f}", gaps[2] < 1e-6)
        for d in (2, 3, 9, 51):
            tally.close(f"δ(Lorentz_{d}) = d/2", LorentzCone(d).statistical_dimension(), _circ_angular(d, mp.pi / 4)["delta"],
                        rtol=64 * d * EPS)
        anchor = _circ_volumes(4, mp.pi / 4)
        tally.check("anchor v_2(Circ_4(π/4)) = 1/π", abs(anchor[2] - 1 / mp.pi) < mp.mpf(10) ** (-30))
    return tally.result()


@check(
    "circular_projection",
    "Pi_Circ(x) = ||x|| cos(phi - a)·(boundary ray in the plane of x and e1) in the middle region, x inside, 0 "
    "in the polar; Moreau for the polar and -C; PSD(2) = Lorentz(3) under svec; PSD(n) clips eigenvalues  [§1.2]",
    covers=(
        "theory.cones.CircularCone.project",
        "theory.cones.CircularCone.sq_norm_projection",
        "theory.cones.CircularCone.polar",
        "theory.cones.PolarCone.project",
        "theory.cones.NegatedCone.project",
        "theory.cones.svec",
        "theory.cones.smat",
        "theory.cones.PSDCone.project",
        "theory.cones.PSDCone.statistical_dimension",
        "theory.cones.Subspace.project",
        "theory.cones.NonnegativeOrthant.project",
    ),
)
def circular_projection() -> CheckResult:
    from theory.cones import CircularCone, NegatedCone, NonnegativeOrthant, PolarCone, PSDCone, Subspace, smat, svec

    tally = Tally()
    rng = np.random.default_rng(20)
    with mp.workdps(_DPS):
        for alpha in (0.3, math.pi / 4, 1.3):
            ca, sa = math.cos(alpha), math.sin(alpha)
            for d in (2, 3, 7):
                C = CircularCone(d, alpha)
                pts = [rng.standard_normal(d) for _ in range(6)]
                e = rng.standard_normal(d - 1)
                e /= np.linalg.norm(e)
                pts += [np.concatenate([[ca], sa * e]),  # on the boundary ray
                        np.concatenate([[-sa], ca * e]),  # on the polar's boundary ray
                        np.zeros(d), np.concatenate([[1.0], 0.0 * e]), np.concatenate([[-1.0], 0.0 * e])]
                for i, x0 in enumerate(pts):
                    for scale in (1e-3, 1.0, 1e3):
                        x = scale * x0
                        ref = _circ_project_ref(x, alpha)
                        nx = max(float(np.linalg.norm(x)), 1e-300)
                        # backward stable closed form: errors ≈ 16·d·eps·‖x‖ (tan/cos products of rounded inputs)
                        tol = 16 * d * EPS * nx
                        p = C.project(x)
                        for j in range(d):
                            tally.close(f"Π(d={d},α={alpha:.2f},pt {i},s={scale})[{j}]", p[j], ref[j], rtol=0, atol=tol)
                        sq = mp.fsum(r * r for r in ref)
                        tally.close(f"‖Π‖² (d={d},pt {i})", C.sq_norm_projection(x), sq, rtol=0, atol=2 * tol * nx)
                        q, qp = C.polar().project(x), PolarCone(C).project(x)
                        qn = NegatedCone(CircularCone(d, math.pi / 2 - alpha)).project(x)
                        for j in range(d):
                            tally.close(f"Π_C°(pt {i})[{j}]", q[j], mp.mpf(x[j]) - ref[j], rtol=0, atol=2 * tol)
                            tally.close(f"PolarCone(pt {i})[{j}]", qp[j], mp.mpf(x[j]) - ref[j], rtol=0, atol=2 * tol)
                            tally.close(f"−Circ(π/2−α)(pt {i})[{j}]", qn[j], mp.mpf(x[j]) - ref[j], rtol=0, atol=2 * tol)
        # PSD(2) ≅ Lorentz(3): svec([[a, b], [b, c]]) = (a, √2b, c); R = rotation to ((a+c)/√2, (a−c)/√2, √2b)
        R = np.array([[1, 0, 1], [1, 0, -1], [0, math.sqrt(2), 0]]) / math.sqrt(2)
        P2 = PSDCone(2)
        for i in range(8):
            X = rng.standard_normal((2, 2)) * 10.0 ** rng.integers(-3, 4)
            X = X + X.T
            if i == 0:
                X = np.array([[1.0, 1.0], [1.0, 1.0]])  # on the boundary (rank one)
            x = svec(X)
            tally.check("svec entries", x[0] == X[0, 0] and x[2] == X[1, 1] and abs(x[1] - math.sqrt(2) * X[0, 1]) <= 2 * EPS * abs(X[0, 1]))
            tally.check("smat(svec X) = X", np.allclose(smat(x), X, rtol=4 * EPS, atol=0))
            ref_rot = _circ_project_ref(R @ x, mp.pi / 4)
            ref = [mp.fsum(mp.mpf(R[k, j]) * ref_rot[k] for k in range(3)) for j in range(3)]
            p = P2.project(x)
            nx = float(np.linalg.norm(x))
            for j in range(3):
                tally.close(f"PSD(2) = Lorentz(3) [{i}][{j}]", p[j], ref[j], rtol=0, atol=64 * EPS * nx)
        for n in (3, 4):
            P = PSDCone(n)
            for i in range(4):
                X = rng.standard_normal((n, n))
                X = X + X.T
                E, Q = mp.eigsy(mp.matrix(X.tolist()))
                Pm = Q * mp.diag([max(E[j], 0) for j in range(n)]) * Q.T
                ref = [Pm[a, b] * (1 if a == b else mp.sqrt(2)) for a in range(n) for b in range(a, n)]
                p = P.project(svec(X))
                for j, r in enumerate(ref):
                    tally.close(f"PSD({n}) clip [{i}][{j}]", p[j], r, rtol=0, atol=64 * n * EPS * float(np.abs(X).max()))
        for n in range(1, 7):
            # self-dual (C° = −C) in dimension n(n+1)/2: δ = dim/2
            dim = svec(np.eye(n)).size
            tally.check(f"δ(PSD({n})) = {dim}/2", PSDCone(n).statistical_dimension() == dim / 2)
        # subspace: Q Qᵀ x against the exact rational projector B(BᵀB)⁻¹Bᵀ
        B = sp.Matrix([[1, 2], [0, 1], [3, -1], [1, 1]])
        Pexact = B * (B.T * B).inv() * B.T
        S = Subspace(np.array(B, dtype=float))
        for i in range(3):
            xr = sp.Matrix([sp.Rational(int(v), 7) for v in rng.integers(-20, 20, 4)])
            ref = Pexact * xr
            xf = np.array(xr, dtype=float).ravel()
            p = S.project(xf)
            for j in range(4):  # QR and two products: 64·eps·‖x‖
                tally.close(f"subspace Π[{i}][{j}]", p[j], to_mp(ref[j]), rtol=0, atol=64 * EPS * float(np.linalg.norm(xf)))
        x = rng.standard_normal(5)
        tally.check("orthant Π = max(x, 0)", np.array_equal(NonnegativeOrthant(5).project(x), np.maximum(x, 0.0)))
    return tally.result()


@check(
    "sqrt_integral_identity",
    "sqrt(x) = 1/(2 sqrt(pi)) int_0^inf (1 - e^{-tx}) t^{-3/2} dt; E e^{-t mu g^2} = (1+2t mu)^{-1/2}; the "
    "ellipsoid width against E sqrt(mu1 X + mu2 Y) = lambda_{a+b} E sqrt(mu2 + (mu1-mu2)B), B ~ Beta(a/2, b/2)  [§1.3]",
    covers=("theory.width.gaussian_width_ellipsoid",),
)
def sqrt_integral_identity() -> CheckResult:
    x, t, mu = sp.symbols("x t mu", positive=True)
    val = sp.integrate((1 - sp.exp(-t * x)) * t ** sp.Rational(-3, 2), (t, 0, sp.oo))
    tally = Tally()
    tally.check("√x integral", _is_zero(val / (2 * sp.sqrt(sp.pi)) - sp.sqrt(x)))
    gg = sp.symbols("gg", real=True)
    mgf = sp.integrate(sp.exp(-t * mu * gg**2) * sp.exp(-gg**2 / 2) / sp.sqrt(2 * sp.pi), (gg, -sp.oo, sp.oo))
    tally.check("Gaussian mgf of g²", _is_zero(mgf - 1 / sp.sqrt(1 + 2 * t * mu)))

    from theory.width import gaussian_width_ellipsoid

    with mp.workdps(30):
        # X ~ χ²_a, Y ~ χ²_b: X + Y ~ χ²_{a+b} is independent of B = X/(X + Y) ~ Beta(a/2, b/2)
        for m1, m2, a, b in ((1.0, 4.0, 1, 1), (1e-3, 1e3, 2, 3), (0.5, 0.5, 3, 2), (2.0, 0.0, 3, 5), (7.0, 0.25, 40, 1)):
            A, Bb = mp.mpf(a) / 2, mp.mpf(b) / 2
            dens = lambda u: u ** (A - 1) * (1 - u) ** (Bb - 1) / mp.beta(A, Bb)  # noqa: E731
            ref = _chi_mean(a + b) * mp.quad(lambda u: mp.sqrt(m2 + (m1 - m2) * u) * dens(u), [0, mp.mpf(1) / 2, 1])
            mus = [m1] * a + [m2] * b
            e = gaussian_width_ellipsoid(mus)
            # adaptive quadrature at epsrel 1e-12 over ≤ 4 pieces
            tally.close(f"w(μ={m1}×{a}, {m2}×{b})", e.value, ref, rtol=1e-10)
            em = gaussian_width_ellipsoid([m1, m2], multiplicities=[a, b])
            tally.close(f"multiplicities (μ={m1}×{a}, {m2}×{b})", em.value, ref, rtol=1e-10)
            tr = mp.mpf(m1) * a + mp.mpf(m2) * b
            mmax = max(m1 if a else 0.0, m2 if b else 0.0)
            tally.close("upper bound √tr", e.upper_bound, mp.sqrt(tr), rtol=4 * EPS)
            tally.close("lower bound √(2/π)√tr", e.lower_bounds[0], mp.sqrt(2 / mp.pi) * mp.sqrt(tr), rtol=4 * EPS)
            tally.close("lower bound √(tr − max μ)", e.lower_bounds[1], mp.sqrt(tr - mmax), rtol=8 * EPS, atol=1e-300)
            tally.check(f"bounds hold (μ={m1},{m2})", e.lower_bound <= e.value * (1 + 1e-12) and e.value <= e.upper_bound * (1 + 1e-12))
    return tally.result()


@check(
    "gaussian_widths",
    "lambda_k = sqrt2 Gamma((k+1)/2)/Gamma(k/2); w(l2 ball) = lambda_d; w(linf ball) = d sqrt(2/pi); "
    "w(l1 ball) = int_0^inf 1 - erf(t/sqrt2)^d dt  [§1.3]",
    covers=(
        "theory.width.chi_mean",
        "theory.width.gaussian_width_l2_ball",
        "theory.width.gaussian_width_linf_ball",
        "theory.width.gaussian_width_l1_ball",
    ),
)
def gaussian_widths() -> CheckResult:
    from theory.width import chi_mean, gaussian_width_l1_ball, gaussian_width_l2_ball, gaussian_width_linf_ball

    tally = Tally()
    with mp.workdps(_DPS):
        for k in (1, 2, 3, 50, 200, 201, 10**4, 10**12):
            # log-gamma difference (≲ 200) or Pochhammer: a few hundred eps
            tally.close(f"λ_{k}", chi_mean(k), _chi_mean(k), rtol=512 * EPS)
        tally.close("λ_2.5 (real k)", chi_mean(2.5), _chi_mean(mp.mpf(5) / 2), rtol=512 * EPS)
        for d in (1, 2, 10, 100, 1000):
            tally.close(f"w(l2 ball, d={d})", gaussian_width_l2_ball(d), _chi_mean(d), rtol=512 * EPS)
            tally.close(f"w(linf ball, d={d})", gaussian_width_linf_ball(d), d * mp.sqrt(2 / mp.pi), rtol=4 * EPS)
            mid = mp.sqrt(2 * mp.log(d)) if d > 1 else mp.mpf(1)
            ref = mp.quad(lambda u: 1 - mp.erf(u / mp.sqrt(2)) ** d, [0, mid, mid + 4, mp.inf])
            # scipy quad at epsrel 1e-13 over three pieces
            tally.close(f"w(l1 ball, d={d})", gaussian_width_l1_ball(d), ref, rtol=1e-11)
        tally.close("w(l1 ball, 2) = 2/√π", gaussian_width_l1_ball(2), 2 / mp.sqrt(mp.pi), rtol=1e-11)
    return tally.result()


@check(
    "elliptic_projection_kkt",
    "KKT of min ½(t-s)²+½|z-y|² s.t. |Bz| <= t: z_i = y_i/(1+mu b_i²), t = s/(1-mu); monotone root; the "
    "library projection against a 40-digit root (theta = ½ at s = 0), slopes 1e-3..1e3, and Moreau  [§2]",
    covers=("theory.cones.EllipticCone.project", "theory.cones.EllipticCone.polar", "theory.cones.PolarCone.project"),
)
def elliptic_projection_kkt() -> CheckResult:
    n = 3
    s, mu, th = sp.symbols("s mu theta", real=True)
    t = sp.Symbol("t", real=True)
    y = sp.symbols(f"y1:{n + 1}", real=True)
    z = sp.symbols(f"z1:{n + 1}", real=True)
    b = sp.symbols(f"b1:{n + 1}", positive=True)
    # Lagrangian with the smooth form of the active constraint |Bz|² − t² ≤ 0 (multiplier μ/2 ≥ 0)
    Lag = (t - s) ** 2 / 2 + sum((zi - yi) ** 2 for zi, yi in zip(z, y)) / 2 + mu / 2 * (
        sum((bi * zi) ** 2 for bi, zi in zip(b, z)) - t**2
    )
    sol = sp.solve([sp.diff(Lag, v) for v in (t, *z)], (t, *z), dict=True)[0]
    tally = Tally()
    tally.check("stationarity", _is_zero(sol[t] - s / (1 - mu)) and all(
        _is_zero(sol[zi] - yi / (1 + mu * bi**2)) for zi, yi, bi in zip(z, y, b)))
    # substitution μ = θ/(1−θ): (1−μ) b z_i = (1−2θ) b y_i/(1−θ+θ b²), each term strictly decreasing in θ
    term = (1 - mu) * b[0] * y[0] / (1 + mu * b[0] ** 2)
    term_th = sp.simplify(term.subs(mu, th / (1 - th)))
    tally.check("substitution", _is_zero(term_th - (1 - 2 * th) * b[0] * y[0] / (1 - th + th * b[0] ** 2)))
    dterm = sp.simplify(sp.diff((1 - 2 * th) * b[0] / (1 - th + th * b[0] ** 2), th))
    tally.check("monotone", _is_zero(dterm + b[0] * (1 + b[0] ** 2) / (1 - th + th * b[0] ** 2) ** 2))
    # the end points: θ=0 gives |b∘y| (compare with s: inside), θ=1 gives −|y/b| = −|a∘y| (polar)
    tally.check("ends", _is_zero(term_th.subs(th, 0) - b[0] * y[0]) and _is_zero(term_th.subs(th, 1) + y[0] / b[0]))

    from theory.cones import EllipticCone, PolarCone

    rng = np.random.default_rng(21)
    with mp.workdps(_DPS):
        for slopes in ([0.7], [0.5, 2.0, 3.0], [1e-3, 1.0, 1e3], [1.0, 1.0, 1.0], list(np.exp(rng.uniform(-3, 3, 6)))):
            K = EllipticCone(slopes)
            a = [mp.mpf(v) for v in slopes]
            bb = [1 / v for v in a]
            # the root's sensitivity grows with the slope spread (measured: ≤ 2 eps·‖x‖ for spreads ≤ 400,
            # 114 eps·‖x‖ at 10⁶); bound used: 64·n·√spread·eps·‖x‖
            kappa = math.sqrt(float(max(a) / min(a)))
            for i in range(7):
                yv = rng.standard_normal(len(slopes))
                nb = float(mp.sqrt(mp.fsum((bi * yi) ** 2 for bi, yi in zip(bb, yv))))
                na = float(mp.sqrt(mp.fsum((ai * yi) ** 2 for ai, yi in zip(a, yv))))
                sv = (0.0, 0.5 * nb, -0.5 * na, nb, -na, 2.0 * nb, 1e-9 * nb)[i]  # θ = ½, mid, boundary, inside
                for scale in (1e-3, 1.0, 1e3):
                    x = scale * np.concatenate([[sv], yv])
                    ref = _elliptic_project_ref(x, a)
                    nx = float(np.linalg.norm(x))
                    tol = 64 * len(slopes) * kappa * EPS * nx
                    p = K.project(x)
                    q = K.polar().project(x)
                    qp = PolarCone(K).project(x)
                    for j in range(x.size):
                        tally.close(f"Π_K(a={slopes[:2]}…, s-case {i}, scale {scale})[{j}]", p[j], ref[j], rtol=0, atol=tol)
                        tally.close(f"Π_K°(s-case {i})[{j}]", q[j], mp.mpf(x[j]) - ref[j], rtol=0, atol=tol)
                        tally.close(f"PolarCone(s-case {i})[{j}]", qp[j], mp.mpf(x[j]) - ref[j], rtol=0, atol=tol)
    return tally.result()


def _elliptic_project_ref(x, a) -> list:
    """Projection onto {(t, z) : t ≥ ‖z/a‖} at the working precision: the KKT point (root θ of
    (1 − 2θ)‖b∘y/(1 − θ + θb²)‖ = s by bisection-safe root finding), validated by Moreau's characterisation."""
    s = mp.mpf(x[0])
    y = [mp.mpf(v) for v in x[1:]]
    b = [1 / ai for ai in a]
    nb = mp.sqrt(mp.fsum((bi * yi) ** 2 for bi, yi in zip(b, y)))
    na = mp.sqrt(mp.fsum((ai * yi) ** 2 for ai, yi in zip(a, y)))
    if s >= nb:
        return [s] + y
    if -s >= na:
        return [mp.mpf(0)] * (len(y) + 1)
    h = lambda th: (1 - 2 * th) * mp.sqrt(mp.fsum((bi * yi / (1 - th + th * bi * bi)) ** 2 for bi, yi in zip(b, y))) - s  # noqa: E731
    lo, hi = mp.mpf(0), mp.mpf(1)
    for _ in range(mp.mp.prec + 10):  # bisection: h decreases from ‖b∘y‖ − s > 0 to −‖a∘y‖ − s < 0
        mid = (lo + hi) / 2
        if h(mid) > 0:
            lo = mid
        else:
            hi = mid
    th = (lo + hi) / 2
    zz = [yi * (1 - th) / (1 - th + th * bi * bi) for bi, yi in zip(b, y)]
    tt = mp.sqrt(mp.fsum((bi * zi) ** 2 for bi, zi in zip(b, zz)))
    p = [tt] + zz
    # Moreau: x − p in K° = {−t ≥ ‖a∘z‖}, ⟨p, x − p⟩ = 0
    r = [mp.mpf(xv) - pv for xv, pv in zip([s] + y, p)]
    slack = mp.mpf(10) ** (10 - mp.mp.dps) * mp.sqrt(s * s + mp.fsum(v * v for v in y)) * max(1, max(a))
    if not (-r[0] >= mp.sqrt(mp.fsum((ai * ri) ** 2 for ai, ri in zip(a, r[1:]))) - slack
            and abs(mp.fsum(pv * rv for pv, rv in zip(p, r))) <= slack * (1 + mp.sqrt(mp.fsum(v * v for v in p)))):
        raise ArithmeticError("the reference projection fails Moreau's characterisation")
    return p


@check(
    "elliptic_leading_order",
    "delta(elliptic cone) = sum a²/(1+a²) + O(1): mu -> 1 limit; exact gap cos²(alpha) for equal slopes; bounds "
    "by the circular cones at a_min, a_max  [§2, reconstructed]",
    covers=(
        "theory.cones.EllipticCone.statistical_dimension_leading_order",
        "theory.cones.EllipticCone.statistical_dimension_bounds",
        "theory.statdim.statistical_dimension",
    ),
)
def elliptic_leading_order() -> CheckResult:
    a, yy = sp.symbols("a y", positive=True)
    b = 1 / a
    # at μ = 1 (t/s → ∞): |Π|² = t² + |z|² with t² = Σ b²y²/(1+b²)², |z|² = Σ y²/(1+b²)²
    per_coord = b**2 * yy**2 / (1 + b**2) ** 2 + yy**2 / (1 + b**2) ** 2
    tally = Tally()
    tally.check("μ = 1 identity", _is_zero(per_coord - yy**2 * a**2 / (1 + a**2)))  # E y² = 1 gives a²/(1+a²)

    from theory.cones import EllipticCone
    from theory.statdim import statistical_dimension

    with mp.workdps(_DPS):
        # equal slopes: the elliptic cone in R^{n+1} is Circ_{n+1}(arctan a); exact δ − n·a²/(1+a²) → cos²α
        worst = mp.mpf(0)
        for aval in (mp.mpf("0.3"), mp.mpf(1), mp.mpf(3)):
            alpha = mp.atan(aval)
            n = 300
            delta = mp.fsum(k * vk for k, vk in enumerate(_circ_volumes(n + 1, alpha)))
            worst = max(worst, abs(delta - n * aval**2 / (1 + aval**2) - mp.cos(alpha) ** 2))
        tally.check(f"|gap − cos²α| at n=300 = {mp.nstr(worst, 3)}", worst < 1e-6)
        rng = np.random.default_rng(22)
        for slopes in ([1.0, 1.0, 3.0], [0.05, 0.4, 2.5, 9.0], list(rng.uniform(0.1, 3.0, 12))):
            K = EllipticCone(slopes)
            lead = mp.fsum(mp.mpf(v) ** 2 / (1 + mp.mpf(v) ** 2) for v in slopes)
            tally.close(f"Σa²/(1+a²) {slopes[:3]}", K.statistical_dimension_leading_order(), lead, rtol=8 * len(slopes) * EPS)
            lo, hi = K.statistical_dimension_bounds()
            d = len(slopes) + 1
            ref_lo = _circ_angular(d, mp.atan(min(slopes)))["delta"]
            ref_hi = _circ_angular(d, mp.atan(max(slopes)))["delta"]
            tally.close("bound at a_min", lo, ref_lo, rtol=64 * d * EPS)
            tally.close("bound at a_max", hi, ref_hi, rtol=64 * d * EPS)
            f = statistical_dimension(K)
            tally.check("statistical_dimension(K) labelled leading order", f.kind == "leading order"
                        and f.lower == lo and f.upper == hi and f.value == K.statistical_dimension_leading_order())
    return tally.result()


@check(
    "a_eta_tail",
    "a_eta = sqrt(8 log(4/eta)) solves 4 exp(-a²/8) = eta; kinematic bounds 4 exp(-(d_C + d_K - d)²/(8d)), "
    "regime at ±a_eta sqrt(d), bracketing the exact Crofton probability  [ALMT Thm I; §1.4]",
    covers=("theory.kinematics.a_eta", "theory.kinematics.kinematic_formula#tail", "theory.kinematics.kinematic_formula#regime"),
)
def a_eta_tail() -> CheckResult:
    eta = sp.symbols("eta", positive=True)
    a = sp.sqrt(8 * sp.log(4 / eta))
    tally = Tally()
    tally.check("4exp(−a²/8) = η", _is_zero(4 * sp.exp(-(a**2) / 8) - eta))
    tally.check("anchor a_0.01 = 6.9233", abs(float(a.subs(eta, sp.Rational(1, 100))) - 6.9233) < 5e-5)

    from theory.cones import CircularCone
    from theory.kinematics import a_eta, crofton_probability, kinematic_formula

    with mp.workdps(_DPS):
        for e in ("1e-6", "0.01", "0.3", "0.99"):
            tally.close(f"a_{e}", a_eta(float(e)), to_mp(a.subs(eta, sp.Rational(e))), rtol=8 * EPS)
        for d in (10, 1000, 10**6):
            for e in (0.01, 0.25):
                ae = mp.sqrt(8 * mp.log(4 / mp.mpf(e)))
                half = ae * mp.sqrt(d)
                for frac in (-2.0, -1.0001, -0.9999, -0.3, 0.0, 0.3, 0.9999, 1.0001, 2.0):
                    total = float(d + frac * half)  # δ(C) + δ(K)
                    if not 0 <= total <= 2 * d:
                        continue
                    r = kinematic_formula(total / 2, total / 2, d, eta=e)
                    margin = mp.mpf(total) - d
                    tail = min(mp.mpf(1), 4 * mp.exp(-margin * margin / (8 * d)))
                    lo, up = (1 - tail, mp.mpf(1)) if margin > 0 else (mp.mpf(0), tail)
                    # one rounding of the margin (relative eps) doubles in λ² and multiplies the exponent λ²/(8d);
                    # 1 − tail then has that error absolutely
                    rt = 8 * EPS * (1 + float(margin * margin / (8 * d)))
                    tally.close(f"upper d={d} η={e} frac={frac}", r.prob_upper, up, rtol=rt, atol=rt)
                    tally.close(f"lower d={d} η={e} frac={frac}", r.prob_lower, lo, rtol=rt, atol=rt)
                    tally.close(f"half width d={d} η={e}", r.half_width, half, rtol=8 * EPS)
                    tally.close(f"margin d={d}", r.margin, margin, rtol=0, atol=4 * EPS * d)
                    want = "infeasible" if frac <= -1.0001 else "feasible" if frac >= 1.0001 else "transition"
                    tally.check(f"regime d={d} η={e} frac={frac}: {r.regime} ≠ {want}", r.regime == want)
        # the promised inequality: C = Circ_d(α), K a uniformly random subspace of codimension m (δ = d − m):
        # the exact Crofton probability lies inside [prob_lower, prob_upper] for every m
        for d, alpha in ((40, 0.5), (200, math.pi / 6)):
            C = CircularCone(d, alpha)
            v = _circ_volumes(d, alpha)
            dC = mp.fsum(k * vk for k, vk in enumerate(v))
            for m in range(1, d):
                exact = min(mp.mpf(1), 2 * mp.fsum(v[m + 1 :: 2]))
                r = kinematic_formula(float(dC), float(d - m), d)
                tally.check(f"Crofton inside kinematic bounds d={d} m={m}",
                            r.prob_lower - 1e-12 <= exact <= r.prob_upper + 1e-12)
                tally.close(f"Crofton d={d} m={m}", crofton_probability(C, m), exact, rtol=64 * d * EPS, atol=1e-300)
    return tally.result()


@check(
    "gordon_escape",
    "P{K cap L = empty} >= 1 - exp(-(lambda_m - w)²/2) for w < lambda_m (not sqrt m), against the exact "
    "escape probability 1 - Crofton of circular cones with w = E||Pi_C g||  [Gordon 1988; CRPW Cor. 3.3; §1.4]",
    covers=("theory.kinematics.gordon_escape_probability", "theory.width.chi_mean"),
)
def gordon_escape() -> CheckResult:
    from theory.kinematics import gordon_escape_probability

    tally = Tally()
    with mp.workdps(_DPS):
        for m in (1, 5, 30, 120, 10**4):
            lam = _chi_mean(m)
            for frac in (0.0, 0.3, 0.9, 0.999):
                w = float(frac * lam)
                gap = lam - mp.mpf(w)
                # λ_m to a few hundred eps (chi_mean), propagated through 1 − e^{−gap²/2}
                rt = 1024 * EPS * (1 + float(lam / gap))  # d(1 − e^{−x²/2})/(1 − e^{−x²/2}) ≈ 2 dλ/gap
                tally.close(f"bound m={m} w={frac}λ", gordon_escape_probability(w, m), -mp.expm1(-gap * gap / 2),
                            rtol=rt, atol=1e-300)
            tally.check(f"no guarantee at w = λ_m (m={m})", gordon_escape_probability(float(lam) * (1 + 1e-12), m) == 0.0)
            if m > 1:
                # λ_m < √m: with w between them, √m would wrongly claim a guarantee
                tally.check(f"λ_m < √m (m={m})", gordon_escape_probability(float((lam + mp.sqrt(m)) / 2), m) == 0.0)
        for d, alpha in ((60, math.pi / 8), (200, math.pi / 8)):
            ang = _circ_angular(d, alpha)
            v = _circ_volumes(d, alpha)
            w = ang["mean_norm"]  # ≥ w(C ∩ S^{d−1}), so the bound below is a valid (weaker) guarantee
            for m in range(5, d, max(1, d // 12)):
                escape = 1 - min(mp.mpf(1), 2 * mp.fsum(v[m + 1 :: 2]))
                tally.check(f"exact escape ≥ Gordon d={d} m={m}", gordon_escape_probability(float(w), m) <= escape + 1e-12)
    return tally.result()


@check(
    "sparse_width_bound",
    "E(g²-t²)_+ = 2t phi(t) + 2(1-t²)Q(t); minimiser of k t² + d E(g²-t²)_+ at 2Q(t) = k/d; the library bound "
    "against the minimum by quadrature, >= the exact width at k = 1, d  [theory.width, ours]",
    covers=("theory.width.gaussian_width_sparse_bound",),
)
def sparse_width_bound() -> CheckResult:
    x, t, k, d = sp.symbols("x t k d", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    val = 2 * sp.integrate((x**2 - t**2) * phi, (x, t, sp.oo))
    Q = sp.erfc(t / sp.sqrt(2)) / 2
    phit = sp.exp(-t**2 / 2) / sp.sqrt(2 * sp.pi)
    diff = val - (2 * t * phit + 2 * (1 - t**2) * Q)
    tally = Tally()
    # sympy does not always simplify erfc/erf combinations to 0: fall back to 40-digit evaluation at points
    tally.check("closed form", _is_zero(diff) or all(
        abs(sp.N(diff.subs(t, tv), _DPS)) < 1e-30 for tv in (sp.Rational(1, 3), 1, sp.Rational(5, 2), 6)))
    deriv = sp.diff(k * t**2 + d * (2 * t * phit + 2 * (1 - t**2) * Q), t)
    tally.check("stationarity", _is_zero(deriv - 2 * t * (k - 2 * d * Q)))

    from theory.width import gaussian_width_sparse_bound

    with mp.workdps(30):
        for dd, kk in ((1000, 10), (50, 1), (7, 3), (25, 25), (1, 1), (10**5, 3)):
            tau = mp.sqrt(2) * mp.erfinv(1 - mp.mpf(kk) / dd)  # 2Q(τ) = erfc(τ/√2) = k/d
            ex = 2 * mp.quad(lambda u: (u * u - tau * tau) * mp.npdf(u), [tau, tau + 4, mp.inf])
            ref = mp.sqrt(kk * tau * tau + dd * ex)
            # the bound is stationary in τ, so the root's error enters at second order; scipy's isf/sf: 1e-14
            tally.close(f"bound d={dd},k={kk}", gaussian_width_sparse_bound(dd, kk), ref, rtol=1e-12)
            if kk == dd:
                tally.close(f"k = d: √d (d={dd})", gaussian_width_sparse_bound(dd, kk), mp.sqrt(dd), rtol=4 * EPS)
            if kk == 1:  # 1-sparse unit vectors: the width is E‖g‖_∞
                mid = mp.sqrt(2 * mp.log(dd)) if dd > 1 else mp.mpf(1)
                exact = mp.quad(lambda u: 1 - mp.erf(u / mp.sqrt(2)) ** dd, [0, mid, mid + 4, mp.inf])
                tally.check(f"bound ≥ E‖g‖_∞ (d={dd})", gaussian_width_sparse_bound(dd, 1) >= exact)
            if kk == dd:
                tally.check(f"bound ≥ λ_d (d={dd})", gaussian_width_sparse_bound(dd, kk) >= _chi_mean(dd))
    return tally.result()


def _mp_nuclear(m: int, n: int, r: int) -> mp.mpf:
    """ALMT Prop. 4.7 at the working precision: min_t of the quarter-circle formula (root of its derivative)."""
    if m > n:
        m, n = n, m
    if r == m:
        return mp.mpf(r * (m + n - r))  # the τ-terms vanish (n − r = 0 or the t² term is minimised at 0)
    y = mp.mpf(m - r) / (n - r)
    am, ap = 1 - mp.sqrt(y), 1 + mp.sqrt(y)
    dens = lambda u: mp.sqrt(max((u * u - am * am) * (ap * ap - u * u), 0)) / (mp.pi * y * u)  # noqa: E731

    def tail(tt, power):
        lo = max(am, tt)
        return mp.quad(lambda u: (u - tt) ** power * dens(u), [lo, ap]) if lo < ap else mp.mpf(0)

    # d/dt: 2r(n−r)t − 2(m−r)(n−r)∫(u − t)₊ φ = 0 (increasing in t)
    dobj = lambda tt: r * tt - (m - r) * tail(tt, 1)  # noqa: E731
    tt = mp.mpf(0) if dobj(mp.mpf(0)) >= 0 else mp.findroot(dobj, (mp.mpf(0), ap), solver="anderson")
    return r * (m + n - r) + r * (n - r) * tt * tt + (m - r) * (n - r) * tail(tt, 2)


@check(
    "nuclear_asymptotic",
    "delta(nuclear descent) ~ min_t r(m+n-r) + r(n-r)t² + (m-r)(n-r) int (u-t)_+² phi_y(u) du (quarter circle); "
    "r = m: r(m+n-r), r = m = n: mn - 1; symmetric in (m, n)  [ALMT Prop. 4.7; §1.2]",
    covers=("theory.cones.nuclear_statdim_asymptotic", "theory.statdim.statistical_dimension"),
)
def nuclear_asymptotic() -> CheckResult:
    from theory.cones import NuclearDescentCone, nuclear_statdim_asymptotic
    from theory.statdim import statistical_dimension

    tally = Tally()
    with mp.workdps(25):
        for m, n, r in ((20, 30, 4), (30, 20, 4), (10, 10, 3), (5, 8, 1), (60, 60, 5), (3, 3, 3), (3, 5, 3)):
            ref = _mp_nuclear(m, n, r)
            # scipy: bounded Brent at xatol 1e-10 (the value is quadratic at the minimum) and quad at 1e-12
            tally.close(f"δ_asym({m},{n},{r})", nuclear_statdim_asymptotic(m, n, r), ref, rtol=1e-10)
            f = statistical_dimension(NuclearDescentCone(m, n, r))
            tally.check(f"labelled asymptotic ({m},{n},{r})", f.kind == "asymptotic" and f.value == nuclear_statdim_asymptotic(m, n, r))
            tally.check(f"r(m+n−r) ≤ δ ≤ mn ({m},{n},{r})", r * (m + n - r) <= f.value <= m * n)
    # r = min(m, n): the descent cone is the half-space {V : ⟨UVᵀ, V⟩ ≤ 0}, δ = mn − ½ exactly; the
    # asymptotic formula (mn) is within its O(1) error, and exact Monte Carlo sees the half-space
    from theory.statdim import statistical_dimension_mc

    for m, n in ((3, 3), (2, 4)):
        mc = statistical_dimension_mc(NuclearDescentCone(m, n, min(m, n)), 40_000, np.random.default_rng(m + n))
        tally.check(f"half-space δ = mn − ½ ({m}×{n}): MC {mc.mean:.3f} ± {mc.stderr:.3f}", abs(mc.z_score(m * n - 0.5)) <= 4)
        tally.check(f"formula mn at r = min(m, n) ({m}×{n})", nuclear_statdim_asymptotic(m, n, min(m, n)) == m * n)
    return tally.result()


def _exact_tau_min(c: Fraction, s: int, h: list[Fraction]) -> tuple[Fraction, Fraction]:
    """(τ*, F(τ*)) minimising F(τ) = s τ² − 2cτ + Σ_k (h_k − τ)₊² (+ a constant) exactly over τ ≥ 0, by the
    stationary point of each quadratic piece between consecutive knots."""
    knots = sorted({Fraction(0)} | {v for v in h if v > 0})
    F = lambda tau: s * tau * tau - 2 * c * tau + sum((v - tau) ** 2 for v in h if v > tau)  # noqa: E731
    cands = [Fraction(0)]
    edges = knots + [None]
    for lo, hi in zip(edges[:-1], edges[1:]):
        act = [v for v in h if v > lo]
        tau = (c + sum(act)) / (s + len(act))
        if tau >= lo and (hi is None or tau <= hi):
            cands.append(tau)
    best = min(cands, key=F)
    return best, F(best)


@check(
    "descent_cone_projections",
    "||Pi_D(x)||² = min_{tau >= 0} ||x_S - tau sigma||² + sum_{off} (|x_i| - tau)_+² (l1; nonneg: (x_i - tau)_+), "
    "the nuclear analogue with singular values, the l-inf descent cone a signed clip: exact rational minima  [ALMT Prop. 4.1]",
    covers=(
        "theory.cones.L1DescentCone.sq_norm_projection",
        "theory.cones.L1DescentCone.project",
        "theory.cones.NuclearDescentCone.sq_norm_projection",
        "theory.cones.NuclearDescentCone.project",
        "theory.cones.LinfDescentCone.project",
    ),
)
def descent_cone_projections() -> CheckResult:
    from theory.cones import L1DescentCone, LinfDescentCone, NuclearDescentCone

    tally = Tally()
    rng = np.random.default_rng(23)
    cases = [(8, 3, False), (8, 3, True), (5, 5, False), (9, 1, False), (9, 1, True), (6, 2, False)]
    for d, s, nonneg in cases:
        support = np.sort(rng.permutation(d)[:s])
        signs = np.ones(s) if nonneg else rng.choice([-1.0, 1.0], s)
        D = L1DescentCone(d, s, nonnegative=nonneg, signs=signs, support=support)
        off = np.setdiff1d(np.arange(d), support)
        for i in range(6):
            xi = [Fraction(int(v), 8) for v in rng.integers(-40, 41, d)]
            if i == 1 and off.size >= 2:
                xi[off[0]] = xi[off[1]]  # a tie among the off-support terms
            if i == 2:
                xi = [Fraction(0)] * d  # apex
            if i == 3 and off.size:
                for j in off:
                    xi[j] = Fraction(100)  # every off-support term above every candidate τ
            x = np.array([float(v) for v in xi])
            c = sum(Fraction(int(sg)) * xi[j] for j, sg in zip(support, signs))
            h = [abs(xi[j]) for j in off] if not nonneg else [xi[j] for j in off]
            tau, Fmin = _exact_tau_min(c, s, h)
            sq = Fmin + sum(xi[j] ** 2 for j in support)  # F omitted the constant Σ_S x_j²
            nx2 = float(sum(v * v for v in xi)) or 1.0
            tally.close(f"‖Π_D‖² (d={d},s={s},nonneg={nonneg},{i})", D.sq_norm_projection(x), sq, rtol=0, atol=64 * d * EPS * nx2)
            u = [Fraction(0)] * d
            for j, sg in zip(support, signs):
                u[j] = tau * int(sg)
            for j in off:
                u[j] = min(xi[j], tau) if nonneg else max(-tau, min(xi[j], tau))
            p = D.project(x)
            for j in range(d):
                tally.close(f"Π_D[{j}] (d={d},s={s},{i})", p[j], xi[j] - u[j], rtol=0, atol=64 * d * EPS * math.sqrt(nx2))
    # nuclear: G22 diagonal (rectangular), so its singular values are |diag|: exact rational minimum
    for m, n, r in ((4, 3, 1), (3, 5, 2), (4, 4, 4), (5, 5, 2)):
        D = NuclearDescentCone(m, n, r)
        for i in range(4):
            G = [[Fraction(int(v), 4) for v in rng.integers(-12, 13, n)] for _ in range(m)]
            for a in range(r, m):
                for bcol in range(r, n):
                    if a - r != bcol - r:
                        G[a][bcol] = Fraction(0)
            sig = [abs(G[r + j][r + j]) for j in range(min(m, n) - r)]
            c = sum(G[j][j] for j in range(r))
            tau, Fmin = _exact_tau_min(c, r, sig)
            total = sum(v * v for row in G for v in row)
            sq = Fmin + sum(G[j][j] ** 2 for j in range(r)) + total - sum(G[a][b] ** 2 for a in range(r) for b in range(r)) \
                - sum(G[a][b] ** 2 for a in range(r, m) for b in range(r, n)) \
                + sum(G[a][b] ** 2 for a in range(r) for b in range(r) if a != b)
            x = np.array([float(v) for row in G for v in row])
            nx2 = float(total) or 1.0
            tally.close(f"nuclear ‖Π‖² ({m},{n},{r},{i})", D.sq_norm_projection(x), sq, rtol=0, atol=256 * m * n * EPS * nx2)
            P = [[Fraction(0)] * n for _ in range(m)]
            for j in range(r):
                P[j][j] = tau
            for j in range(min(m, n) - r):
                g = G[r + j][r + j]
                P[r + j][r + j] = (1 if g >= 0 else -1) * min(abs(g), tau)
            p = D.project(x)
            for a in range(m):
                for b in range(n):
                    tally.close(f"nuclear Π[{a},{b}] ({m},{n},{r},{i})", p[a * n + b], G[a][b] - P[a][b], rtol=0,
                                atol=256 * m * n * EPS * math.sqrt(nx2))
    # nuclear, general G22: singular values at 40 digits
    with mp.workdps(_DPS):
        D = NuclearDescentCone(5, 4, 2)
        for i in range(3):
            G = rng.standard_normal((5, 4))
            sv = mp.svd_r(mp.matrix(G[2:, 2:].tolist()), compute_uv=False)
            sig = sorted((mp.mpf(sv[j]) for j in range(2)), reverse=True)
            c = mp.mpf(G[0, 0]) + mp.mpf(G[1, 1])
            best = None
            for J in range(3):  # J singular values above τ*
                tau = max((c + mp.fsum(sig[:J])) / (2 + J), mp.mpf(0))
                val = (mp.mpf(G[0, 0]) - tau) ** 2 + (mp.mpf(G[1, 1]) - tau) ** 2 + mp.mpf(G[0, 1]) ** 2 + mp.mpf(G[1, 0]) ** 2 \
                    + mp.fsum(max(sv_ - tau, 0) ** 2 for sv_ in sig)
                best = val if best is None else min(best, val)
            ref = best + mp.fsum(mp.mpf(v) ** 2 for v in G[:2, 2:].ravel()) + mp.fsum(mp.mpf(v) ** 2 for v in G[2:, :2].ravel())
            tally.close(f"nuclear general G22 ({i})", D.sq_norm_projection(G.ravel()), ref, rtol=256 * EPS * 20)
    # ℓ∞ descent cone: signed clip on the saturated coordinates
    D = LinfDescentCone(6, 3, signs=[1.0, -1.0, 1.0])
    for i in range(5):
        x = rng.standard_normal(6)
        ref = x.copy()
        ref[:3] = np.minimum(x[:3] * D.signs, 0.0) * D.signs
        tally.check(f"ℓ∞ descent signed clip ({i})", np.array_equal(D.project(x), ref))
    return tally.result()


@check(
    "monte_carlo_estimators",
    "E||Pi g||² estimator: mean within 4 standard errors of delta = k for a k-dim subspace (||Pi g||² ~ chi²_k) "
    "and the reported stderr within 4 of its own standard errors of sqrt(2k/n); widths: E||g|| = lambda_d  [§1.1, §1.3]",
    covers=(
        "theory.statdim.statistical_dimension_mc",
        "theory.statdim.MonteCarloResult.z_score",
        "theory.width.gaussian_width_mc",
        "theory.width.gaussian_width_sparse_mc",
    ),
)
def monte_carlo_estimators() -> CheckResult:
    from theory.cones import Subspace
    from theory.statdim import statistical_dimension_mc
    from theory.width import gaussian_width_mc, gaussian_width_sparse_mc

    tally = Tally()
    n = 20_000
    for d, k in ((10, 3), (50, 50), (200, 1)):
        mc = statistical_dimension_mc(Subspace.coordinate(d, k), n, np.random.default_rng(d + k))
        sd = math.sqrt(2 * k)  # χ²_k
        se = sd / math.sqrt(n)
        tally.check(f"mean δ (d={d},k={k}) {mc.mean:.4f} vs {k} ± 4·{se:.4f}", abs(mc.mean - k) <= 4 * se)
        # relative sd of a sample standard deviation: √((κ − 1)/(4n)), κ = 3 + 12/k the kurtosis of χ²_k
        rel_sd = math.sqrt((2 + 12 / k) / (4 * n))
        tally.check(f"stderr (d={d},k={k}) {mc.stderr:.5f} vs {se:.5f}", abs(mc.stderr / se - 1) <= 4 * rel_sd)
        tally.check("stderr = std/√n", abs(mc.stderr - mc.std / math.sqrt(n)) <= 4 * EPS * mc.stderr and mc.n_samples == n)
        tally.check("z_score", abs(mc.z_score(k) - (mc.mean - k) / mc.stderr) <= 4 * EPS * abs(mc.z_score(k)) + 1e-300)
    with mp.workdps(30):
        for d in (1, 7, 100):
            lam = float(_chi_mean(d))
            sd = math.sqrt(d - lam * lam)
            mc = gaussian_width_mc(lambda g: np.linalg.norm(g, axis=1), d, n, np.random.default_rng(d))
            tally.check(f"E‖g‖ (d={d}) {mc.mean:.4f} vs {lam:.4f}", abs(mc.mean - lam) <= 4 * sd / math.sqrt(n))
            # relative sd of a sample sd √((κ − 1)/(4n)) with the kurtosis κ of χ_d at most 5 (3.87 at d = 1)
            tally.check(f"width stderr (d={d})", abs(mc.stderr * math.sqrt(n) / sd - 1) <= 4 * math.sqrt(4 / (4 * n)))
            sp_mc = gaussian_width_sparse_mc(d, d, n, np.random.default_rng(d + 1))  # k = d: the sphere
            tally.check(f"sparse k=d (d={d}) {sp_mc.mean:.4f} vs {lam:.4f}", abs(sp_mc.mean - lam) <= 4 * sd / math.sqrt(n))
        d = 30
        mid = mp.sqrt(2 * mp.log(d))
        emax = float(mp.quad(lambda u: 1 - mp.erf(u / mp.sqrt(2)) ** d, [0, mid, mid + 4, mp.inf]))
        sp1 = gaussian_width_sparse_mc(d, 1, n, np.random.default_rng(5))  # k = 1: E‖g‖_∞
        tally.check(f"sparse k=1 {sp1.mean:.4f} vs E‖g‖_∞ {emax:.4f}", abs(sp1.mean - emax) <= 4 * sp1.stderr)
    return tally.result()
