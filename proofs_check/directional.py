"""Derivation checks for gRDA and directional pruning (docs/math.md §4; nets/grda.py; theory/directional.py).

Each check verifies, in exact (sympy) or high-precision (mpmath) arithmetic, an identity the code relies on.
"""

from __future__ import annotations

import itertools

import mpmath
import sympy as sp

from proofs_check.registry import CheckResult, check


@check(
    "grda_threshold_telescopes",
    "docs/math.md §4: Σ_{k=1}^n c·γ^{μ+½}(k^μ − (k−1)^μ) = c·γ^{μ+½}·n^μ = c·γ^{½}(nγ)^μ = g(n, γ)",
)
def grda_threshold_telescopes() -> CheckResult:
    c, g, mu = sp.symbols("c gamma mu", positive=True)
    bad = []
    for n in (1, 2, 5, 17):
        s = sum(c * g ** (mu + sp.Rational(1, 2)) * (sp.Integer(k) ** mu - sp.Integer(k - 1) ** mu) for k in range(1, n + 1))
        if sp.simplify(s - c * g ** (mu + sp.Rational(1, 2)) * sp.Integer(n) ** mu) != 0:
            bad.append(n)
    n = sp.symbols("n", positive=True)
    same = sp.simplify(sp.powsimp(c * g ** (mu + sp.Rational(1, 2)) * n**mu - c * sp.sqrt(g) * (n * g) ** mu, force=True))
    return CheckResult(not bad and same == 0, f"telescoping fails for n={bad}" if bad else "exact for n=1,2,5,17")


@check(
    "grda_increment_no_cancellation",
    "nets.grda.threshold_increment: k^μ − (k−1)^μ = −k^μ·expm1(μ·log1p(−1/k)), to 10 eps at k up to 1e12",
)
def grda_increment_no_cancellation() -> CheckResult:
    from nets.grda import threshold_increment

    worst = 0.0
    with mpmath.workdps(60):
        for mu in (0.4, 0.501, 0.55, 0.9):
            for k in (2, 10, 10**4, 10**8, 10**12):
                exact = mpmath.mpf(k) ** mu - mpmath.mpf(k - 1) ** mu
                got = threshold_increment(k, 1.0, 1.0, mu)
                worst = max(worst, float(abs(got - exact) / exact))
    eps = 2.0**-52
    return CheckResult(worst <= 10 * eps, f"max relative error {worst:.2e} (eps = {eps:.2e})")


@check(
    "grda_paper_convention_offset",
    "docs/math.md §4: paper threshold after n steps is g(n−1, γ) (g(0, γ) = 0); authors' is g(n, γ)",
)
def grda_paper_convention_offset() -> CheckResult:
    from nets.grda import threshold_closed_form

    ok = True
    for n in (1, 2, 10, 1000):
        gp = 0.005 * 0.1**0.5 * ((n - 1) * 0.1) ** 0.55
        ga = 0.005 * 0.1**0.5 * (n * 0.1) ** 0.55
        ok &= abs(threshold_closed_form(n, 0.1, 0.005, 0.55, "paper") - gp) <= 1e-15 * max(gp, 1e-300)
        ok &= abs(threshold_closed_form(n, 0.1, 0.005, 0.55, "authors") - ga) <= 1e-15 * ga
    return CheckResult(bool(ok), "closed forms match g(n−1, γ) and g(n, γ)")


@check(
    "grdam_ema_gain_is_one",
    "nets.grda gRDAM: b_1 = d_1, b_n = β b_{n−1} + (1−β) d_n ⇒ b_n = Σ_k w_k d_k with Σ_k w_k = 1 for all n; "
    "steady-state gain Σ_j (1−β)β^j = 1; undamped buffer gain 1/(1−β)",
)
def grdam_ema_gain_is_one() -> CheckResult:
    beta = sp.symbols("beta", positive=True)
    n, j = sp.symbols("n j", integer=True, positive=True)
    # weights of d_1 .. d_n: β^{n−1} for d_1, (1−β)β^{n−k} for k ≥ 2
    total = beta ** (n - 1) + sp.summation((1 - beta) * beta ** (n - j), (j, 2, n))
    finite_ok = sp.simplify(total - 1) == 0
    # explicit unrolling for n = 1..6 as an independent check of the weights
    ds = sp.symbols("d1:7")
    b = ds[0]
    unroll_ok = True
    for k in range(1, 6):
        b = sp.expand(beta * b + (1 - beta) * ds[k])
        unroll_ok &= sp.simplify(b.subs({d: 1 for d in ds}) - 1) == 0
    steady = sp.summation((1 - beta) * beta**j, (j, 0, sp.oo))
    steady_ok = sp.simplify(sp.refine(steady, sp.Q.positive(1 - beta)).subs(beta, sp.Rational(9, 10)) - 1) == 0
    und = sp.summation(beta**j, (j, 0, sp.oo))
    und_ok = sp.simplify(und.subs(beta, sp.Rational(9, 10)) - 10) == 0
    ok = finite_ok and unroll_ok and steady_ok and und_ok
    return CheckResult(bool(ok), f"finite-n sum=1: {finite_ok}, unrolled n≤6: {unroll_ok}, steady 1: {steady_ok}, "
                                 f"undamped 1/(1−β)=10 at β=0.9: {und_ok}")


@check(
    "soft_threshold_subgradient",
    "S_λ(a) = sign(a)max(|a|−λ,0) ⇒ a − S_λ(a) ∈ λ∂|·|(S_λ(a)) (prox of λ|·|), all three regions",
)
def soft_threshold_subgradient() -> CheckResult:
    lam, t = sp.symbols("lambda t", positive=True)

    def soft(a):
        return sp.sign(a) * sp.Max(sp.Abs(a) - lam, 0)

    ok = True
    for a, expected_xi in ((lam + t, lam), (-lam - t, -lam)):  # |a| > λ: ξ = λ·sign(S_λ(a)), S_λ(a) ≠ 0
        S = sp.simplify(soft(a))
        ok &= sp.simplify(a - S - expected_xi) == 0 and sp.simplify(sp.sign(S) * sp.sign(expected_xi)) == 1
    for frac in (sp.Integer(-1), sp.Rational(-1, 3), sp.Integer(0), sp.Rational(1, 2), sp.Integer(1)):
        a = frac * lam  # |a| ≤ λ: S_λ(a) = 0 and ξ = a with |ξ| ≤ λ
        S = sp.simplify(soft(a))
        ok &= S == 0 and sp.simplify(sp.Abs(a - S) - lam) <= 0
    return CheckResult(bool(ok), "ξ = λ·sign on the support, |ξ| ≤ λ off it")


def _constrained_solution_exact(w_sgd, U, lam):
    """Exact rational solution of min ½‖w − w_sgd‖² + λ‖w‖₁ s.t. w − w_sgd ∈ range(U) by enumerating the sign
    pattern (−, 0, +) of w and checking the KKT conditions."""
    d, k = U.shape
    for pattern in itertools.product((-1, 0, 1), repeat=d):
        S = [i for i in range(d) if pattern[i] != 0]
        Z = [i for i in range(d) if pattern[i] == 0]
        sigma = sp.Matrix([pattern[i] for i in S])
        z = sp.Matrix(sp.symbols(f"z0:{k}"))
        nu = sp.Matrix(sp.symbols(f"nu0:{len(Z)}")) if Z else sp.zeros(0, 1)
        # stationarity z + U_Sᵀ λσ + U_Zᵀ ν = 0 and feasibility (w_sgd + U z)_Z = 0
        eqs = list(z + (U.extract(S, list(range(k))).T * (lam * sigma) if S else sp.zeros(k, 1))
                   + (U.extract(Z, list(range(k))).T * nu if Z else sp.zeros(k, 1)))
        eqs += [(w_sgd + U * z)[i] for i in Z]
        sol = sp.solve(eqs, list(z) + list(nu), dict=True)
        for s in sol:
            zz = z.subs(s)
            if any(v.free_symbols for v in zz):
                continue
            w = w_sgd + U * zz
            nus = [nu[i].subs(s) for i in range(len(Z))]
            if any(getattr(v, "free_symbols", set()) for v in nus):
                continue
            if all(sp.sign(w[i]) == pattern[i] for i in S) and all(abs(v) <= lam for v in nus):
                return w, zz, pattern
    return None


@check(
    "constrained_dp_kkt_and_grda_fixed_point",
    "docs/math.md §4 constrained form: KKT z + Uᵀξ = 0, ξ ∈ λ∂‖w‖₁; its solution is a fixed point of gRDA "
    "(a = w + ξ: S_λ(a) = w, P₀a = P₀w^SGD, P₁w = P₁w^SGD); the ADMM solver agrees",
)
def constrained_dp_kkt_and_grda_fixed_point() -> CheckResult:
    import numpy as np

    from theory.directional import constrained_dp_admm, flat_subspace

    # rational orthonormal basis of a 2-D flat subspace of R^3
    U = sp.Matrix([[1, 2], [2, 1], [2, -2]]) / 3
    w_sgd = sp.Matrix([sp.Rational(1, 5), sp.Rational(1, 10), 1])
    lam = sp.Rational(2, 5)
    out = _constrained_solution_exact(w_sgd, U, lam)
    if out is None:
        return CheckResult(False, "no sign pattern satisfies the KKT conditions")
    w, z, pattern = out
    if 0 not in pattern:  # the example must exercise the zero set (|ξ_j| ≤ λ off the support)
        return CheckResult(False, f"example has no zero coordinate: pattern {pattern}")
    # gRDA fixed point: ξ from stationarity restricted to range(U): a = w + ξ with ξ = λ sign(w) on S, chosen on Z
    # so that Uᵀξ = −z; then S_λ(a) must equal w and P₀ a = P₀ w_sgd.
    S = [i for i in range(3) if pattern[i] != 0]
    Z = [i for i in range(3) if pattern[i] == 0]
    xi = sp.zeros(3, 1)
    for i in S:
        xi[i] = lam * pattern[i]
    if Z:
        xz = sp.Matrix(sp.symbols(f"x0:{len(Z)}"))
        rhs = -z - U.extract(S, [0, 1]).T * sp.Matrix([xi[i] for i in S])
        sol = sp.solve(list(U.extract(Z, [0, 1]).T * xz - rhs), list(xz), dict=True)
        if not sol:
            return CheckResult(False, "no multiplier on the zero set")
        for j, i in enumerate(Z):
            xi[i] = xz[j].subs(sol[0])
    a = w + xi
    soft = sp.Matrix([sp.sign(v) * sp.Max(abs(v) - lam, 0) for v in a])
    P0 = U * U.T
    fixed = sp.simplify(soft - w) == sp.zeros(3, 1) and sp.simplify(P0 * (a - w_sgd)) == sp.zeros(3, 1)
    feas = sp.simplify((sp.eye(3) - P0) * (w - w_sgd)) == sp.zeros(3, 1)
    # numeric solver vs the exact solution
    Uf = np.array(U, dtype=float)
    H = (np.eye(3) - Uf @ Uf.T) * 5.0
    res = constrained_dp_admm(np.array(w_sgd, dtype=float).ravel(), flat_subspace(H), float(lam))
    err = float(np.max(np.abs(res.w - np.array(w, dtype=float).ravel())))
    ok = fixed and feas and err <= 1e-12
    return CheckResult(bool(ok), f"pattern {pattern}, w = {list(w)}, gRDA fixed point {fixed}, ADMM error {err:.1e}")


@check(
    "grda_noise_sqrt_gamma",
    "gRDA noise at fixed time t = Nγ: flat directions Var(γΣ_{i≤N}ξ_i) = γ t σ²; sharp direction h (OU "
    "recursion e ← (1−γh)e − γξ) stationary Var = γσ²/(2h − γh²) ~ γσ²/(2h): both ∝ γ, so the error ∝ √γ",
)
def grda_noise_sqrt_gamma() -> CheckResult:
    g, t, s, h = sp.symbols("gamma t sigma h", positive=True)
    N = t / g
    flat = sp.simplify(N * g**2 * s**2 - g * t * s**2) == 0
    V = sp.symbols("V", positive=True)
    stat = sp.solve(sp.Eq(V, (1 - g * h) ** 2 * V + g**2 * s**2), V)[0]
    sharp = sp.simplify(stat - g * s**2 / (2 * h - g * h**2)) == 0
    lim = sp.limit(stat / g, g, 0) == s**2 / (2 * h)
    return CheckResult(bool(flat and sharp and lim), f"flat: {flat}, sharp stationary variance: {sharp}, limit: {lim}")


@check(
    "dp_vs_obs_rank_one_valley",
    "issue 13 (ours): H = h·vvᵀ, v = (1,1)/√2, w^SGD = (a, −b), a > b > 0: for λ ≥ b the constrained DP solution "
    "is (a−b, 0) (KKT), OBS on the magnitude support gives the same point, both with ΔL = 0; magnitude pruning "
    "ΔL = h b²/4; the weighted lasso gives (a−λ, 0) with ΔL = h(λ−b)²/4 > 0 for λ > b",
)
def dp_vs_obs_rank_one_valley() -> CheckResult:
    a, b, h, lam = sp.symbols("a b h lambda", positive=True)
    v = sp.Matrix([1, 1]) / sp.sqrt(2)
    u = sp.Matrix([1, -1]) / sp.sqrt(2)  # the flat direction
    H = h * v * v.T
    w_sgd = sp.Matrix([a, -b])

    def dL(w):
        d = w - w_sgd
        return sp.simplify((d.T * H * d)[0] / 2)

    # constrained DP: w = w_sgd + z u with z = −√2 b; KKT z + uᵀξ = 0, ξ₁ = λ (w₁ = a − b > 0), ξ₂ free in [−λ, λ]
    z = -sp.sqrt(2) * b
    w_dp = w_sgd + z * u
    xi2 = sp.solve(sp.Eq(z + (u.T * sp.Matrix([lam, sp.Symbol("x")]))[0], 0), sp.Symbol("x"))[0]
    dp_point = sp.simplify(w_dp - sp.Matrix([a - b, 0])) == sp.zeros(2, 1)
    # |ξ₂| ≤ λ  ⟺  λ − 2b ≥ −λ (and ≤ λ): holds iff λ ≥ b
    tt = sp.symbols("t", nonnegative=True)  # λ = b + t, t ≥ 0
    lower = sp.simplify((xi2 + lam).subs(lam, b + tt))  # ξ₂ ≥ −λ  ⟺  2t ≥ 0
    upper = sp.simplify((lam - xi2).subs(lam, b + tt))  # ξ₂ ≤ λ   ⟺  2b ≥ 0
    kkt = sp.simplify(xi2 - (lam - 2 * b)) == 0 and lower == 2 * tt and upper == 2 * b
    # OBS on the magnitude support T = {1} (|a| > |b|): d_T = H_TT⁻¹ H_TP c_P with c_P = w_P
    HTT, HTP = H[0, 0], H[0, 1]
    w_obs = sp.Matrix([a + HTP * (-b) / HTT, 0])
    obs_point = sp.simplify(w_obs - w_dp) == sp.zeros(2, 1)
    mag = sp.Matrix([a, 0])
    # weighted lasso: s = sign(w)·P₀ sign(w) = (1, 1); w = sign(w)·max(|w| − λ s, 0) = (a − λ, 0) for b < λ < a
    wl = sp.Matrix([a - lam, 0])
    ok = (dp_point and kkt and obs_point and dL(w_dp) == 0 and dL(w_obs) == 0
          and sp.simplify(dL(mag) - h * b**2 / 4) == 0 and sp.simplify(dL(wl) - h * (lam - b) ** 2 / 4) == 0)
    # the code on one instance (a, b, h, λ) = (2, 1/2, 2, 1): theory.directional.valley_comparison
    import numpy as np

    from theory.directional import flat_subspace, valley_comparison

    Hn = np.array([[1.0, 1.0], [1.0, 1.0]])
    cmp_ = valley_comparison(Hn, np.array([2.0, -0.5]), lam=1.0, flat=flat_subspace(Hn))
    err = max(float(np.max(np.abs(cmp_.points[k] - np.array([1.5, 0.0])))) for k in ("directional", "obs_magnitude"))
    code_ok = err <= 1e-12 and abs(cmp_.loss_increase["magnitude"] - 2.0 * 0.25 / 4) <= 1e-15
    return CheckResult(bool(ok and code_ok),
                       f"DP = OBS = (a−b, 0): {dp_point and obs_point}; KKT iff λ ≥ b: {kkt}; magnitude ΔL = h b²/4; "
                       f"weighted lasso ΔL = h(λ−b)²/4; valley_comparison error {err:.1e}")


def _schur_increase(H, w, kept):
    """½ c_Pᵀ (H_PP − H_PT H_TT⁺ H_TP) c_P in exact arithmetic (pseudo-inverse for singular H_TT)."""
    n = H.shape[0]
    T = [i for i in range(n) if kept[i]]
    P = [i for i in range(n) if not kept[i]]
    if not P:
        return sp.Integer(0)
    cP = sp.Matrix([w[i] for i in P])
    S = H.extract(P, P)
    if T:
        S = S - H.extract(P, T) * H.extract(T, T).pinv() * H.extract(T, P)
    return sp.nsimplify(sp.simplify((cP.T * S * cP)[0] / 2))


@check(
    "obs_free_iff_flat_completion",
    "issue 13 (ours): H PSD with null space range(U): min_{d_T} ½dᵀHd with d_P = −w_P is 0 iff w_P ∈ range(U_P) "
    "(the pruned part extends to a flat direction); exact over all pruning sets of two 3-D valleys",
)
def obs_free_iff_flat_completion() -> CheckResult:
    cases = {
        "generic": sp.Matrix([[1, 2], [2, 1], [2, -2]]) / 3,  # every row of U nonzero, U_P full row rank for |P| ≤ 2
        "axis": sp.Matrix([[1, 0], [0, 1], [0, 0]]),  # coordinate 3 is sharp: pruning it is never free
    }
    w = sp.Matrix([sp.Rational(3, 2), sp.Rational(-1, 3), sp.Rational(5, 7)])
    bad = []
    free_counts = {}
    for name, U in cases.items():
        H = 4 * (sp.eye(3) - U * U.T)
        free_counts[name] = 0
        for kept in itertools.product((True, False), repeat=3):
            P = [i for i in range(3) if not kept[i]]
            inc = _schur_increase(H, w, kept)
            if P:
                UP = U.extract(P, [0, 1])
                completes = UP.rank() == UP.row_join(sp.Matrix([w[i] for i in P])).rank()
            else:
                completes = True
            free_counts[name] += int(inc == 0)
            if (inc == 0) != completes or inc < 0:
                bad.append((name, kept, inc, completes))
    return CheckResult(not bad, f"free pruning sets: {free_counts} of 8 each" if not bad else f"violations: {bad}")
