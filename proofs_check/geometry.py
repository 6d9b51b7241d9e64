"""Derivation checks for :mod:`theory` (convex geometry): sympy where symbolic, mpmath (40 digits) otherwise.

Each check names the equation it verifies (MATH.md §1–2, ALMT = Amelunxen, Lotz, McCoy & Tropp 2014).
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp

from proofs_check.registry import CheckResult, check

_DPS = 40


def _is_zero(expr: sp.Expr) -> bool:
    # erfc is rewritten as 1 − erf first: sympy's simplify does not always combine erf + erfc (it depends on
    # its cache state), which made a plain simplify pass or fail with the order in which checks ran.
    return sp.simplify(sp.expand(sp.sympify(expr).rewrite(sp.erf))) == 0


@check("l1_excess_closed_form", "E(|g|-t)_+^2 = (1+t^2) erfc(t/sqrt2) - t sqrt(2/pi) e^{-t^2/2}  [ALMT (4.9); MATH.md 1.2]")
def l1_excess_closed_form() -> CheckResult:
    x, t = sp.symbols("x t", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    integral = 2 * sp.integrate((x - t) ** 2 * phi, (x, t, sp.oo))
    closed = (1 + t**2) * sp.erfc(t / sp.sqrt(2)) - t * sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2)
    diff = sp.simplify(sp.expand((integral - closed).rewrite(sp.erf)))
    # τ = 0: E g² = 1
    return CheckResult(diff == 0 and closed.subs(t, 0) == 1, f"integral − closed form = {diff}")


@check("psi_stationarity", "d/dt[rho(1+t^2) + (1-rho)E(|g|-t)_+^2] = 0 <=> sqrt(2/pi)e^{-t^2/2}/t - erfc(t/sqrt2) = rho/(1-rho)  [MATH.md 1.2]")
def psi_stationarity() -> CheckResult:
    t, rho = sp.symbols("t rho", positive=True)
    excess = (1 + t**2) * sp.erfc(t / sp.sqrt(2)) - t * sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2)
    obj = rho * (1 + t**2) + (1 - rho) * excess
    deriv = sp.diff(obj, t)
    # the derivative equals 2(1−ρ)t · [ρ/(1−ρ) − L(t)] with L the left side of the stationarity equation
    L = sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2) / t - sp.erfc(t / sp.sqrt(2))
    ok1 = _is_zero(deriv - 2 * (1 - rho) * t * (rho / (1 - rho) - L))
    # and L is decreasing: L'(t) = −sqrt(2/π) e^{−t²/2}/t² (so the root is unique)
    ok2 = _is_zero(sp.diff(L, t) + sp.sqrt(2 / sp.pi) * sp.exp(-t**2 / 2) / t**2)
    # nonnegative variant: half the off-support term doubles the right-hand side
    obj_p = rho * (1 + t**2) + (1 - rho) * excess / 2
    ok3 = _is_zero(sp.diff(obj_p, t) - (1 - rho) * t * (2 * rho / (1 - rho) - L))
    return CheckResult(ok1 and ok2 and ok3, f"derivative identity {ok1}, L' {ok2}, nonneg variant {ok3}")


@check("orthant_statdim", "delta(R^d_+) = sum_k k C(d,k)/2^d = d/2, sum_k C(d,k)/2^d = 1  [ALMT Sec. 5.5]")
def orthant_statdim() -> CheckResult:
    d = sp.symbols("d", integer=True, positive=True)
    k = sp.symbols("k", integer=True, nonnegative=True)
    total = sp.simplify(sp.summation(sp.binomial(d, k), (k, 0, d)) / 2**d)
    delta = sp.simplify(sp.summation(k * sp.binomial(d, k), (k, 0, d)) / 2**d)
    ok = sp.simplify(total - 1) == 0 and sp.simplify(delta - d / 2) == 0
    # also concretely for d = 1..12 (guards against a summation shortcut)
    ok_c = all(sum(kk * sp.binomial(dd, kk) for kk in range(dd + 1)) * 2 == dd * 2**dd for dd in range(1, 13))
    return CheckResult(bool(ok and ok_c), f"sum v_k = {total}, delta = {delta}")


def _circ_volumes(d: int, alpha: mp.mpf) -> list:
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


@check("circular_volumes", "sum_k v_k(Circ_d(a)) = 1 and delta -> d sin^2 a + cos 2a  [conivol; ALMT Prop. 3.4; MATH.md 1.2]")
def circular_volumes() -> CheckResult:
    with mp.workdps(_DPS):
        worst_sum = mp.mpf(0)
        gaps = []
        for alpha in (mp.pi / 8, mp.pi / 6, mp.pi / 4, mp.mpf("1.3")):
            for d in (2, 3, 10, 40):
                v = _circ_volumes(d, alpha)
                worst_sum = max(worst_sum, abs(mp.fsum(v) - 1))
            row = []
            for d in (20, 80, 320):
                v = _circ_volumes(d, alpha)
                delta = mp.fsum(k * vk for k, vk in enumerate(v))
                row.append(abs(delta - (d * mp.sin(alpha) ** 2 + mp.cos(2 * alpha))))
            gaps.append(row)
        # the gap to the asymptotic form decreases (exponentially) with d
        decreasing = all(r[2] < r[1] < r[0] or r[2] < mp.mpf(10) ** (-30) for r in gaps)
        anchor = _circ_volumes(4, mp.pi / 4)
        ok_anchor = abs(anchor[2] - 1 / mp.pi) < mp.mpf(10) ** (-30)  # v_2 = 0.31830989 = 1/π
        ok = worst_sum < mp.mpf(10) ** (-30) and decreasing and max(r[2] for r in gaps) < 1e-6 and ok_anchor
        return CheckResult(bool(ok), f"max |sum-1| = {mp.nstr(worst_sum, 3)}, gap at d=320: {mp.nstr(max(r[2] for r in gaps), 3)}")


@check("sqrt_integral_identity", "sqrt(x) = 1/(2 sqrt(pi)) int_0^inf (1 - e^{-tx}) t^{-3/2} dt; E e^{-t mu g^2} = (1+2t mu)^{-1/2}  [MATH.md 1.3 ellipsoid width]")
def sqrt_integral_identity() -> CheckResult:
    x, t, mu, g = sp.symbols("x t mu g", positive=True)
    val = sp.integrate((1 - sp.exp(-t * x)) * t ** sp.Rational(-3, 2), (t, 0, sp.oo))
    ok1 = _is_zero(val / (2 * sp.sqrt(sp.pi)) - sp.sqrt(x))
    gg = sp.symbols("gg", real=True)
    mgf = sp.integrate(sp.exp(-t * mu * gg**2) * sp.exp(-gg**2 / 2) / sp.sqrt(2 * sp.pi), (gg, -sp.oo, sp.oo))
    ok2 = _is_zero(mgf - 1 / sp.sqrt(1 + 2 * t * mu))
    return CheckResult(bool(ok1 and ok2), f"integral = {sp.simplify(val)}, mgf = {sp.simplify(mgf)}")


@check("elliptic_projection_kkt", "KKT of min ½(t-s)²+½|z-y|² s.t. |Bz| <= t: z_i = y_i/(1+mu b_i²), t = s/(1-mu); monotone root  [MATH.md 2]")
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
    ok1 = _is_zero(sol[t] - s / (1 - mu)) and all(_is_zero(sol[zi] - yi / (1 + mu * bi**2)) for zi, yi, bi in zip(z, y, b))
    # substitution μ = θ/(1−θ): (1−μ) b z_i = (1−2θ) b y_i/(1−θ+θ b²), each term strictly decreasing in θ
    term = (1 - mu) * b[0] * y[0] / (1 + mu * b[0] ** 2)
    term_th = sp.simplify(term.subs(mu, th / (1 - th)))
    ok2 = _is_zero(term_th - (1 - 2 * th) * b[0] * y[0] / (1 - th + th * b[0] ** 2))
    dterm = sp.simplify(sp.diff((1 - 2 * th) * b[0] / (1 - th + th * b[0] ** 2), th))
    ok3 = _is_zero(dterm + b[0] * (1 + b[0] ** 2) / (1 - th + th * b[0] ** 2) ** 2)
    # the end points: θ=0 gives |b∘y| (compare with s: inside), θ=1 gives −|y/b| = −|a∘y| (polar)
    ok4 = _is_zero(term_th.subs(th, 0) - b[0] * y[0]) and _is_zero(term_th.subs(th, 1) + y[0] / b[0])
    return CheckResult(bool(ok1 and ok2 and ok3 and ok4), f"stationarity {ok1}, substitution {ok2}, monotone {ok3}, ends {ok4}")


@check("elliptic_leading_order", "delta(elliptic cone) = sum a²/(1+a²) + O(1): mu -> 1 limit; exact gap cos²(alpha) for equal slopes  [MATH.md 2, reconstructed]")
def elliptic_leading_order() -> CheckResult:
    a, yy = sp.symbols("a y", positive=True)
    b = 1 / a
    # at μ = 1 (t/s → ∞): |Π|² = t² + |z|² with t² = Σ b²y²/(1+b²)², |z|² = Σ y²/(1+b²)²
    per_coord = b**2 * yy**2 / (1 + b**2) ** 2 + yy**2 / (1 + b**2) ** 2
    ok1 = _is_zero(per_coord - yy**2 * a**2 / (1 + a**2))  # E y² = 1 gives a²/(1+a²)
    # equal slopes: the elliptic cone in R^{n+1} is Circ_{n+1}(arctan a); exact δ − n·a²/(1+a²) → cos²α ∈ [0, 1]
    with mp.workdps(_DPS):
        worst = mp.mpf(0)
        for aval in (mp.mpf("0.3"), mp.mpf(1), mp.mpf(3)):
            alpha = mp.atan(aval)
            n = 300
            v = _circ_volumes(n + 1, alpha)
            delta = mp.fsum(k * vk for k, vk in enumerate(v))
            gap = delta - n * aval**2 / (1 + aval**2)
            worst = max(worst, abs(gap - mp.cos(alpha) ** 2))
        ok2 = worst < 1e-6  # the circular δ approaches d sin²α + cos 2α exponentially fast (slowest for α near π/2)
        return CheckResult(bool(ok1 and ok2), f"mu=1 identity {ok1}; |gap − cos²α| at n=300: {mp.nstr(worst, 3)}")


@check("a_eta_tail", "a_eta = sqrt(8 log(4/eta)) solves 4 exp(-a²/8) = eta  [ALMT Thm I; MATH.md 1.4]")
def a_eta_tail() -> CheckResult:
    eta = sp.symbols("eta", positive=True)
    a = sp.sqrt(8 * sp.log(4 / eta))
    ok = _is_zero(4 * sp.exp(-(a**2) / 8) - eta)
    val = float(a.subs(eta, sp.Rational(1, 100)))
    return CheckResult(bool(ok and abs(val - 6.9233) < 5e-5), f"a_0.01 = {val:.6f}")


@check("sparse_width_bound", "E(g²-t²)_+ = 2t phi(t) + 2(1-t²)Q(t); minimiser of k t² + d E(g²-t²)_+ at 2Q(t) = k/d  [theory.width, ours]")
def sparse_width_bound() -> CheckResult:
    x, t, k, d = sp.symbols("x t k d", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    val = 2 * sp.integrate((x**2 - t**2) * phi, (x, t, sp.oo))
    Q = sp.erfc(t / sp.sqrt(2)) / 2
    phit = sp.exp(-t**2 / 2) / sp.sqrt(2 * sp.pi)
    diff = val - (2 * t * phit + 2 * (1 - t**2) * Q)
    # sympy does not always simplify erfc/erf combinations to 0: fall back to 40-digit evaluation at points
    ok1 = _is_zero(diff) or all(abs(sp.N(diff.subs(t, tv), _DPS)) < 1e-30 for tv in (sp.Rational(1, 3), 1, sp.Rational(5, 2), 6))
    deriv = sp.diff(k * t**2 + d * (2 * t * phit + 2 * (1 - t**2) * Q), t)
    ok2 = _is_zero(deriv - 2 * t * (k - 2 * d * Q))
    return CheckResult(bool(ok1 and ok2), f"closed form {ok1}, stationarity {ok2}")
