"""Derivation checks for the pruning limit (MATH.md §2): symbolic (sympy) where a closed form exists,
numerical against an independent computation otherwise. Each check names the equation it verifies."""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs_check.registry import CheckResult, check


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/schur-compensation",
    "MATH.md §2 exact oracle: min_{d_T} ½dᵀHd (d_P fixed) = ½ d_Pᵀ(H_PP − H_PT H_TT⁻¹ H_TP)d_P = ½ d_Pᵀ[(H⁻¹)_PP]⁻¹ d_P",
)
def schur_compensation() -> CheckResult:
    # generic symmetric 3×3, T = {0}, P = {1, 2}
    h = sp.symbols("h00 h01 h02 h11 h12 h22")
    H = sp.Matrix([[h[0], h[1], h[2]], [h[1], h[3], h[4]], [h[2], h[4], h[5]]])
    x, p1, p2 = sp.symbols("x p1 p2")
    d = sp.Matrix([x, p1, p2])
    q = (d.T * H * d)[0] / 2
    xs = sp.solve(sp.diff(q, x), x)[0]
    val = sp.simplify(q.subs(x, xs))
    S = H[1:, 1:] - H[1:, :1] * H[:1, :1].inv() * H[:1, 1:]
    dP = sp.Matrix([p1, p2])
    r1 = sp.simplify(val - (dP.T * S * dP)[0] / 2)
    r2 = sp.simplify(S - H.inv()[1:, 1:].inv())
    ok_sym = r1 == 0 and r2 == sp.zeros(2, 2)
    # singular PSD H, |T| > rank: pseudo-inverse Schur value vs direct least squares on H = BBᵀ
    rng = np.random.default_rng(0)
    n, r = 8, 4
    B = rng.standard_normal((n, r))
    Hn = B @ B.T
    T = np.array([True] * 5 + [False] * 3)
    P = ~T
    cP = rng.standard_normal(3)
    b = Hn[np.ix_(T, P)] @ cP
    schur_val = 0.5 * (cP @ Hn[np.ix_(P, P)] @ cP - b @ np.linalg.pinv(Hn[np.ix_(T, T)], rcond=1e-10) @ b)
    # min_{d_T} ‖B_Tᵀ d_T − B_Pᵀ c_P‖²/2  (d_P = −c_P)
    dT, *_ = np.linalg.lstsq(B[T].T, B[P].T @ cP, rcond=None)
    direct = 0.5 * np.sum((B[T].T @ dT - B[P].T @ cP) ** 2)
    ok_num = abs(schur_val - direct) <= 1e-9 * max(1.0, abs(direct))
    return CheckResult(bool(ok_sym and ok_num), f"symbolic residuals {r1}, {r2 == sp.zeros(2, 2)}; "
                       f"singular PSD: pinv {schur_val:.12g} vs lstsq {direct:.12g}")


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/free-compression-two-atom",
    "MATH.md §2: R_{(H⁻¹)_PP}(w) = R_{H⁻¹}(αw), α = 1−ρ (Nica–Speicher) ⇒ m_S = ρ s/(1−ρ), E[λ/(λ+s)] = ρ",
)
def free_compression_symbolic() -> CheckResult:
    a, b, p, s = sp.symbols("a b p s", positive=True)
    z = sp.Symbol("z")
    G_X = p / (z - 1 / a) + (1 - p) / (z - 1 / b)  # Cauchy transform of X = H⁻¹ (atoms 1/a, 1/b)
    g = p * a / (a + s) + (1 - p) * b / (b + s)  # E[λ/(λ+s)]
    # (i) z G_X(z) at z = −1/s is E[λ/(λ+s)]
    r1 = sp.simplify((z * G_X).subs(z, -1 / s) - g)
    rho = g
    alpha = 1 - rho
    u = G_X.subs(z, -1 / s)  # = G_X(z₀), so G_X⁻¹(u) = z₀ = −1/s on the branch (−∞, 0)
    w0 = u / alpha
    # (ii) subordination: G_Y⁻¹(w0) = R_X(αw0) + 1/w0 = G_X⁻¹(u) − 1/u + 1/w0 must vanish (G_Y(0) = w0)
    r2 = sp.simplify(-1 / s - 1 / u + 1 / w0)
    # (iii) m_S = tr(Y⁻¹) = −G_Y(0) = −w0 = ρ s/(1 − ρ)
    r3 = sp.simplify(-w0 - rho * s / (1 - rho))
    # branch: G_X is strictly decreasing on (−∞, 0) (so its inverse there is single-valued)
    dG = sp.diff(G_X, z)
    vals = [float(dG.subs({a: 1.3, b: 4.0, p: 0.4, z: zz})) for zz in np.linspace(-50, -1e-3, 40)]
    ok = r1 == 0 and r2 == 0 and r3 == 0 and all(v < 0 for v in vals)
    return CheckResult(bool(ok), f"residuals {r1}, {r2}, {r3}; G_X' < 0 on (−∞,0): {all(v < 0 for v in vals)}")


@check(
    "limits/free-compression-haar",
    "MATH.md §2: tr([(H⁻¹)_PP]⁻¹)/|P| → ρ s/(1−ρ) for Haar eigenbasis; ½c_PᵀSc_P ≈ ½‖c‖² m_S for generic c",
)
def free_compression_haar() -> CheckResult:
    from scipy.optimize import brentq

    from numerics.testing import haar_orthogonal

    rng = np.random.default_rng(1)
    n = 400
    lam = np.where(np.arange(n) < n // 2, 1.0, 5.0)  # two atoms, p = ½
    Q = haar_orthogonal(n, rng)
    Hinv = (Q / lam[None, :]) @ Q.T
    details, ok = [], True
    for rho in (0.2, 0.5, 0.8):
        s = brentq(lambda x: np.mean(lam / (lam + x)) - rho, 1e-9, 1e6)
        m_pred = rho * s / (1 - rho)
        P = rng.permutation(n)[: int(round((1 - rho) * n))]
        S = np.linalg.inv(Hinv[np.ix_(P, P)])
        m_emp = np.trace(S) / P.size
        c = rng.standard_normal(P.size)
        quad = c @ S @ c / (c @ c)
        rel, rel_c = abs(m_emp - m_pred) / m_pred, abs(quad - m_pred) / m_pred
        # tolerances: O(1/n) finite-size bias for the trace (2 %), and the O(1/√n) fluctuation of a
        # random quadratic form (‖S‖_F/(tr S)·√2 ≈ 0.06 here, 3 standard deviations ≈ 15 %)
        ok &= rel < 0.02 and rel_c < 0.15
        details.append(f"ρ={rho}: m_S {m_emp:.4f} vs {m_pred:.4f} (rel {rel:.1e}), cᵀSc/‖c‖² {quad:.4f}")
    return CheckResult(bool(ok), "; ".join(details))


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/flat-is-free-without-factor",
    "MATH.md §2: ρ = E[λR²/(λR²+2ε)] ⇔ ½R² s(ρ) = ε (free condition without ρ/(1−ρ)); equal at ρ = ½",
)
def flat_vs_free() -> CheckResult:
    lam, R, eps = sp.symbols("lambda R epsilon", positive=True)
    s = 2 * eps / R**2  # ½R²s = ε
    per_atom = sp.simplify(lam / (lam + s) - lam * R**2 / (lam * R**2 + 2 * eps))
    rho = sp.Symbol("rho", positive=True)
    factor_half = (rho / (1 - rho)).subs(rho, sp.Rational(1, 2))
    # numerically: the flat fixed point equals the root of ½R(ρ)²s(ρ) = ε computed by theory.limits' s(ρ)
    from theory.limits import MagnitudeProfile, _apply_policy, _solve_s, pruning_limit
    from theory.spectrum import Spectrum

    rng = np.random.default_rng(2)
    ev = rng.exponential(1.0, 400)
    w = 0.1 * rng.laplace(size=400)
    e = 0.05
    res = pruning_limit(ev, w, e, method="flat")
    meas, _ = _apply_policy(Spectrum.from_eigenvalues(ev), "abs", 0.0)
    cond = 0.5 * MagnitudeProfile(w).R2(res.kept_fraction) * _solve_s(meas, res.kept_fraction)
    ok = per_atom == 0 and factor_half == 1 and abs(cond - e) < 1e-8 * e
    return CheckResult(bool(ok), f"per-atom residual {per_atom}; ½R²s at flat ρ* = {cond:.10g} (ε = {e})")


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/ellipsoid-cone-slopes",
    "MATH.md §2: cone over ellipsoid with axis r₀ along c (‖c‖=R) is elliptic with slopes r_i/√(R²−r₀²) → r_i/R",
)
def ellipsoid_cone() -> CheckResult:
    r0, r1, r2, R = sp.symbols("r0 r1 r2 R", positive=True)
    A = sp.diag(1 / r0**2, 1 / r1**2, 1 / r2**2)
    c = sp.Matrix([R, 0, 0])
    cAc = (c.T * A * c)[0]
    # K = {x : cᵀAx ≥ 0, xᵀQx ≥ 0},  Q = Ac cᵀA − (cᵀAc − 1)A  (min over τ of (x−τc)ᵀA(x−τc) − τ²)
    Q = A * c * c.T * A - (cAc - 1) * A
    q0, q1 = Q[0, 0], Q[1, 1]  # Q is diagonal in this basis (checked below)
    slope1 = sp.sqrt(q0 / -q1)
    ok_slopes = sp.simplify(q0 / -q1 - r1**2 / (R**2 - r0**2)) == 0 and Q.is_diagonal()
    ok_limit = sp.simplify(sp.limit(slope1, r0, 0) - r1 / R) == 0
    # the τ-minimisation: derivative of f(τ) = (x−τc)ᵀA(x−τc) − τ² vanishes at τ* = cᵀAx/(cᵀAc−1)
    x = sp.Matrix(sp.symbols("x0 x1 x2"))
    tau = sp.Symbol("tau")
    f = ((x - tau * c).T * A * (x - tau * c))[0] - tau**2
    tstar = (c.T * A * x)[0] / (cAc - 1)
    ok_tau = sp.simplify(sp.diff(f, tau).subs(tau, tstar)) == 0
    ok_min = sp.simplify(f.subs(tau, tstar) - (-(x.T * Q * x)[0] / (cAc - 1))) == 0
    # numerically, general position: points τ(c + e) with e on the ellipsoid boundary lie on the elliptic
    # cone's boundary in the rotated basis, interior points inside
    rng = np.random.default_rng(3)
    n = 6
    M = rng.standard_normal((n, n))
    H = M @ M.T + 0.5 * np.eye(n)
    eps = 0.05
    cn = rng.standard_normal(n)
    An = H / (2 * eps)
    Qn = np.outer(An @ cn, An @ cn) - (cn @ An @ cn - 1) * An
    qv, U = np.linalg.eigh(Qn)
    qv, U = qv[::-1], U[:, ::-1]
    if U[:, 0] @ cn < 0:
        U[:, 0] *= -1
    slopes = np.sqrt(qv[0] / -qv[1:])
    L = np.linalg.cholesky(np.linalg.inv(An))  # e = L v with ‖v‖ ≤ 1 is in the ellipsoid
    cAc_n = cn @ An @ cn

    def min_dist(x: np.ndarray) -> float:  # min_τ (τx − c)ᵀA(τx − c), independent 1-D minimisation
        return cAc_n - (x @ An @ cn) ** 2 / (x @ An @ x) if x @ An @ cn > 0 else np.inf

    worst_in, worst_tan, worst_out = np.inf, 0.0, np.inf
    for _ in range(50):
        v = rng.standard_normal(n)
        v *= rng.uniform(0, 1) / np.linalg.norm(v)
        y = U.T @ (rng.uniform(0.1, 3.0) * (cn + L @ v))  # generated by the ellipsoid: inside the cone
        worst_in = min(worst_in, (y[0] - np.linalg.norm(y[1:] / slopes)) / np.linalg.norm(y))
        zz = rng.standard_normal(n - 1)
        yb = np.concatenate([[np.linalg.norm(zz / slopes)], zz])  # on the elliptic cone's boundary
        worst_tan = max(worst_tan, abs(min_dist(U @ yb) - 1.0))  # its ray touches the ellipsoid
        yo = np.concatenate([[0.9 * yb[0]], zz])  # outside: the ray misses the ellipsoid
        worst_out = min(worst_out, min_dist(U @ yo) - 1.0)
    ok_num = worst_in >= -1e-12 and worst_tan < 1e-8 and worst_out > 0
    ok = ok_slopes and ok_limit and ok_tau and ok_min and ok_num
    return CheckResult(bool(ok), f"slopes {ok_slopes}, limit {ok_limit}, τ* {ok_tau}, min {ok_min}, "
                       f"inside margin {worst_in:.1e}, tangency residual {worst_tan:.1e}, outside gap {worst_out:.1e}")


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/threshold-uniqueness",
    "MATH.md §2: m_S(ρ) = ρs/(1−ρ) non-increasing ((A/B)' = Var(v)/(u²B²), u = 1/s); flat T(ρ) non-increasing",
)
def uniqueness() -> CheckResult:
    u = sp.Symbol("u", positive=True)
    lams = sp.symbols("l1 l2 l3", positive=True)
    ps = sp.symbols("p1 p2", positive=True)
    pr = [ps[0], ps[1], 1 - ps[0] - ps[1]]
    E = lambda f: sum(pi * f(li) for pi, li in zip(pr, lams))  # noqa: E731
    A = E(lambda l: 1 / (1 + l * u))  # 1 − ρ
    B = E(lambda l: l / (1 + l * u))  # ρ s  (so 1/m_S = A/B)
    v = lambda l: 1 - 1 / (1 + l * u)  # noqa: E731
    var_v = E(lambda l: v(l) ** 2) - E(v) ** 2
    r = sp.simplify(sp.diff(A / B, u) - var_v / (u**2 * B**2))
    # ρ(u) = E[λu/(1+λu)] increasing in u, so m_S decreases as ρ grows; Var(v) ≥ 0.
    drho = sp.simplify(sp.diff(E(lambda l: l * u / (1 + l * u)), u) - E(lambda l: l / (1 + l * u) ** 2))
    # flat: λR²/(λR²+2ε) increasing in R² (and R² non-increasing in ρ)
    lam, R2, eps = sp.symbols("lambda R2 epsilon", positive=True)
    dflat = sp.simplify(sp.diff(lam * R2 / (lam * R2 + 2 * eps), R2) - 2 * eps * lam / (lam * R2 + 2 * eps) ** 2)
    # numerically: the free predicted-increase curve of theory.limits is non-increasing
    from theory.limits import pruning_limit

    rng = np.random.default_rng(4)
    ev = np.concatenate([rng.exponential(0.05, 140), rng.exponential(5.0, 60), np.zeros(100)])
    res = pruning_limit(ev, 0.1 * rng.laplace(size=300), 0.05, method="free", n_curve=120)
    inc = res.curves.loss_increase
    mono = bool(np.all(np.diff(inc) <= 1e-12 * inc[0]))
    ok = r == 0 and drho == 0 and dflat == 0 and mono
    return CheckResult(bool(ok), f"residuals {r}, {drho}, {dflat}; free curve non-increasing: {mono}")


# ---------------------------------------------------------------------------------------------------------
@check(
    "limits/sharpness-bound",
    "MATH.md §2: by concavity of λ ↦ λR²/(λR²+2ε), ρ* ≤ Tr(H)R²/(Tr(H)R² + 2εD)",
)
def sharpness_bound() -> CheckResult:
    lam, R, eps = sp.symbols("lambda R epsilon", positive=True)
    f = lam * R**2 / (lam * R**2 + 2 * eps)
    d2 = sp.simplify(sp.diff(f, lam, 2) + 4 * eps * R**4 / (lam * R**2 + 2 * eps) ** 3)
    from theory.limits import pruning_limit

    rng = np.random.default_rng(5)
    worst = -np.inf
    for _ in range(20):
        ev = rng.exponential(rng.uniform(0.1, 3.0), 200) * (rng.uniform(size=200) < rng.uniform(0.3, 1.0))
        w = rng.laplace(size=200) * rng.uniform(0.01, 0.3)
        res = pruning_limit(ev, w, float(10 ** rng.uniform(-3, 0.5)), method="flat")
        worst = max(worst, res.kept_fraction - res.sharpness_bound)
    ok = d2 == 0 and worst <= 1e-10
    return CheckResult(bool(ok), f"f'' + 4εR⁴/(λR²+2ε)³ = {d2}; max(ρ* − bound) over 20 spectra = {worst:.2e}")
