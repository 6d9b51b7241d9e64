"""Derivation checks for gRDA and directional pruning (docs/math.md §4; nets/grda.py; theory/directional.py).

Each check verifies, in exact (sympy) or high-precision (mpmath) arithmetic, an identity the code relies on,
and evaluates the library functions it covers at several points against that exact answer.
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import sympy as sp

from proofs_check._compare import EPS, Tally
from proofs_check.registry import CheckResult, check


@check(
    "grda_threshold_telescopes",
    "§4: Σ_{k=1}^n c·γ^{μ+½}(k^μ − (k−1)^μ) = c·γ^{μ+½}·n^μ = c·γ^{½}(nγ)^μ = g(n, γ); the library's increments "
    "sum to its closed form, and both equal the exact value at 40 digits (both conventions)",
    covers=("nets.grda.threshold_increment", "nets.grda.threshold_closed_form"),
)
def grda_threshold_telescopes() -> CheckResult:
    c, g, mu = sp.symbols("c gamma mu", positive=True)
    tally = Tally()
    for n in (1, 2, 5, 17):
        s = sum(c * g ** (mu + sp.Rational(1, 2)) * (sp.Integer(k) ** mu - sp.Integer(k - 1) ** mu) for k in range(1, n + 1))
        tally.check(f"telescoping n={n}", sp.simplify(s - c * g ** (mu + sp.Rational(1, 2)) * sp.Integer(n) ** mu) == 0)
    n = sp.symbols("n", positive=True)
    tally.check("c γ^{μ+½} n^μ = c γ^½ (nγ)^μ",
                sp.simplify(sp.powsimp(c * g ** (mu + sp.Rational(1, 2)) * n**mu - c * sp.sqrt(g) * (n * g) ** mu, force=True)) == 0)
    from nets.grda import threshold_closed_form, threshold_increment

    with mpmath.workdps(40):
        for mu_ in ("0.4", "0.501", "0.55", "0.9"):
            for lr in ("0.001", "0.1", "0.5"):
                for cc in ("0.005", "1.3"):
                    m_, l_, c_ = mpmath.mpf(mu_), mpmath.mpf(lr), mpmath.mpf(cc)
                    acc = {"authors": 0.0, "paper": 0.0}
                    for step in range(1, 41):
                        for conv in acc:
                            acc[conv] += threshold_increment(step, float(lr), float(cc), float(mu_), conv)
                            k = step if conv == "authors" else step - 1
                            exact = c_ * l_ ** (m_ + mpmath.mpf(1) / 2) * mpmath.mpf(k) ** m_ if k > 0 else mpmath.mpf(0)
                            # powers x^y with a rounded exponent y carry |y·ln x|·eps; n summed increments n·4 eps
                            pw = 4 * (1 + abs(math.log(float(lr))) + math.log(step + 1))
                            tally.close(f"sum of increments n={step} {conv} μ={mu_}", acc[conv], exact, rtol=(4 * step + pw) * EPS)
                            tally.close(f"closed form n={step} {conv} μ={mu_}", threshold_closed_form(step, float(lr), float(cc), float(mu_), conv),
                                        exact, rtol=(8 + pw) * EPS)
                    big = 10**6
                    tally.close(f"closed form n=1e6 μ={mu_}", threshold_closed_form(big, float(lr), float(cc), float(mu_)),
                                c_ * l_ ** (m_ + mpmath.mpf(1) / 2) * mpmath.mpf(big) ** m_,
                                rtol=(8 + 4 * (1 + abs(math.log(float(lr))) + math.log(big))) * EPS)
    return tally.result()


@check(
    "grda_threshold_factor_and_predictor",
    "§4, §4.1: Φ_N = Σ_n γ_n^{μ+½}(k_n^μ − (k_n − 1)^μ) for a varying schedule (40 digits); ŝ(c) = #{|a_N| ≤ cΦ_N}/n "
    "and ĉ = F̂⁻¹(s)/Φ_N with the midpoint rule, ŝ(ĉ) = the kept_count fraction (exact rationals)",
    covers=("nets.grda.threshold_factor", "nets.grda.predict_sparsity", "nets.grda.predict_c"),
)
def grda_threshold_factor_and_predictor() -> CheckResult:
    from fractions import Fraction

    from nets.grda import predict_c, predict_sparsity, threshold_factor
    from theory.limits import kept_count

    tally = Tally()
    with mpmath.workdps(40):
        for conv in ("authors", "paper"):
            for mu in (0.51, 0.7):
                sched = [0.1] * 7 + [0.01] * 5 + [0.002] * 4  # a step schedule
                ref = mpmath.mpf(0)
                for n, g in enumerate(sched, 1):
                    k = n if conv == "authors" else n - 1
                    if k > 0:
                        ref += mpmath.mpf(g) ** (mpmath.mpf(mu) + mpmath.mpf(1) / 2) * (mpmath.mpf(k) ** mu - mpmath.mpf(k - 1) ** mu)
                tally.close(f"Φ_N step schedule ({conv}, μ={mu})", threshold_factor(sched, len(sched), mu, conv), ref, rtol=256 * EPS)
                lam = lambda i: 0.1 / (1 + i)  # noqa: E731 - a callable of the 0-based step
                ref_c = mpmath.fsum(mpmath.mpf(lam(i)) ** (mpmath.mpf(mu) + mpmath.mpf(1) / 2)
                                    * ((n if conv == "authors" else n - 1) ** mpmath.mpf(mu) - ((n if conv == "authors" else n - 1) - 1) ** mpmath.mpf(mu))
                                    for i, n in ((i, i + 1) for i in range(40)) if (n if conv == "authors" else n - 1) > 0)
                tally.close(f"Φ_N callable schedule ({conv}, μ={mu})", threshold_factor(lam, 40, mu, conv), ref_c, rtol=256 * EPS)
                tally.close(f"Φ_N constant rate ({conv}, μ={mu})", threshold_factor([0.05] * 30, 30, mu, conv),
                            mpmath.mpf("0.05") ** (mpmath.mpf(mu) + mpmath.mpf(1) / 2) * mpmath.mpf(30 if conv == "authors" else 29) ** mu,
                            rtol=64 * EPS)
    a = np.array([0.5, 0.125, 0.75, 0.25, 1.0, 0.375, 0.875, 0.625])  # distinct dual sums (exact in binary)
    af = sorted(Fraction(v) for v in a)
    for factor in (1.0, 2.0, 0.5):
        for c in (0.0, 0.1, 0.25, 0.3, 1.0):
            want = Fraction(sum(1 for v in af if v <= Fraction(c) * Fraction(factor)), len(af))
            tally.check(f"ŝ(c={c}, Φ={factor})", predict_sparsity(c, a, factor) == float(want))
        for s_ in (0.0, 0.125, 0.3, 0.5, 0.9, 1.0):
            m = len(af) - kept_count(1.0 - s_, len(af))
            T = Fraction(0) if m <= 0 else (af[m - 1] if m == len(af) else (af[m - 1] + af[m]) / 2)
            c_hat = predict_c(s_, a, factor)
            tally.close(f"ĉ(s={s_}, Φ={factor})", c_hat, T / Fraction(factor), rtol=4 * EPS, atol=0)
            if 0 < m:
                tally.check(f"ŝ(ĉ) = m/n (s={s_}, Φ={factor})", predict_sparsity(c_hat, a, factor) == m / len(af))
    return tally.result()


@check(
    "grda_increment_no_cancellation",
    "nets.grda.threshold_increment: k^μ − (k−1)^μ = −k^μ·expm1(μ·log1p(−1/k)), to 10 eps at k up to 1e12",
    covers=("nets.grda.threshold_increment",),
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
    "§4: paper threshold after n steps is g(n−1, γ) (g(0, γ) = 0); authors' is g(n, γ); the GRDA optimizer applies "
    "w_n = S_{T_n}(w_0 − γ n g) for a constant gradient g",
    covers=("nets.grda.threshold_closed_form", "nets.grda.GRDA"),
)
def grda_paper_convention_offset() -> CheckResult:
    import torch

    from nets.grda import GRDA, threshold_closed_form

    tally = Tally()
    with mpmath.workdps(40):
        for n in (1, 2, 10, 1000):
            g = lambda k: mpmath.mpf("0.005") * mpmath.sqrt(mpmath.mpf("0.1")) * (k * mpmath.mpf("0.1")) ** mpmath.mpf("0.55")  # noqa: E731
            tally.close(f"paper n={n}", threshold_closed_form(n, 0.1, 0.005, 0.55, "paper"), g(n - 1) if n > 1 else 0, rtol=8 * EPS, atol=1e-300)
            tally.close(f"authors n={n}", threshold_closed_form(n, 0.1, 0.005, 0.55, "authors"), g(n), rtol=8 * EPS)
        # the optimizer: constant gradient, float64 parameters; after n steps a_n = w₀ − γ n g and w_n = S_{T_n}(a_n)
        w0 = [0.3, -0.2, 0.05, -1.0, 0.0]
        grad = [0.5, -1.0, 0.25, 0.125, -0.75]
        for conv in ("authors", "paper"):
            for lr, cc, mu_ in ((0.1, 0.2, 0.55), (0.02, 1.0, 0.7)):
                p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
                opt = GRDA([p], lr=lr, c=cc, mu=mu_, convention=conv)
                for n in range(1, 31):
                    p.grad = torch.tensor(grad, dtype=torch.float64)
                    opt.step()
                    k = n if conv == "authors" else n - 1
                    T = mpmath.mpf(cc) * mpmath.mpf(lr) ** (mpmath.mpf(mu_) + mpmath.mpf(1) / 2) * mpmath.mpf(k) ** mpmath.mpf(mu_) if k > 0 else 0
                    tally.close(f"GRDA threshold n={n} {conv}", opt.threshold(), T, rtol=8 * EPS, atol=1e-300)
                    for i in range(5):
                        a = mpmath.mpf(w0[i]) - mpmath.mpf(lr) * n * mpmath.mpf(grad[i])
                        want = mpmath.sign(a) * max(abs(a) - T, 0)
                        # n accumulated float64 steps: ≈ 2n eps·max|a|
                        tally.close(f"GRDA w[{i}] n={n} {conv}", float(p.detach()[i]), want, rtol=0, atol=4 * n * EPS * (1 + float(abs(a))))
    return tally.result()


@check(
    "grdam_ema_gain_is_one",
    "nets.grda gRDAM: b_1 = d_1, b_n = β b_{n−1} + (1−β) d_n ⇒ b_n = Σ_k w_k d_k with Σ_k w_k = 1 for all n; "
    "steady-state gain Σ_j (1−β)β^j = 1; undamped buffer gain 1/(1−β); grda_update's dual sum for a constant "
    "direction, both paths",
    covers=("nets.grda.grda_update#momentum", "nets.grda.grda_update#dual"),
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
    tally = Tally()
    tally.check("finite-n weights sum to 1", finite_ok)
    tally.check("unrolled n ≤ 6", unroll_ok)
    tally.check("steady-state gain 1", steady_ok)
    tally.check("undamped gain 1/(1−β) = 10 at β = 0.9", und_ok)
    import torch

    from nets.grda import grda_update

    # the library, both paths: a constant direction d through the buffer (EMA, dampening = β: b_n = d and
    # a_n = a_0 − γ n d, the gain 1; undamped: b_n = d(1 − β^n)/(1 − β)), then a varying direction d_n = s_n·d
    # (a constant one cannot tell β from 1 − β in the EMA) against the recursion in 40-digit arithmetic
    with mpmath.workdps(40):
        for beta in (0.5, 0.9):
            for damp in (None, 0.0, 0.3):
                for foreach in (True, False):
                    for varying in (False, True):
                        p = torch.zeros(3, dtype=torch.float64)
                        a = torch.zeros(3, dtype=torch.float64)
                        bufs = [None]
                        d = [1.0, -0.5, 0.25]
                        acc = mpmath.mpf(0)
                        bn = None
                        B = mpmath.mpf(beta)
                        tau = B if damp is None else mpmath.mpf(damp)
                        for n in range(1, 25):
                            sn = (n % 5) - 1.5 if varying else 1.0  # exact in binary
                            grda_update([p], [torch.tensor([sn * v for v in d], dtype=torch.float64)], [a], bufs, lr=0.1,
                                        threshold=0.0, momentum=beta, dampening=damp, foreach=foreach)
                            bn = mpmath.mpf(sn) if bn is None else B * bn + (1 - tau) * sn
                            acc += bn
                            for i in range(3):
                                tally.close(f"β={beta} τ={damp} foreach={foreach} varying={varying} a[{i}] n={n}", float(a[i]),
                                            -mpmath.mpf("0.1") * acc * d[i], rtol=0, atol=16 * n * EPS)
                            if damp is None and not varying:
                                tally.close(f"EMA gain 1 (β={beta}, n={n})", float(bufs[0][0]), 1.0, rtol=8 * n * EPS)
    return tally.result()


@check(
    "soft_threshold_subgradient",
    "S_λ(a) = sign(a)max(|a|−λ,0) ⇒ a − S_λ(a) ∈ λ∂|·|(S_λ(a)) (prox of λ|·|), all three regions; grda_update's "
    "threshold (both paths) and the weighted lasso on a diagonal P₀ give S_λ exactly",
    covers=("nets.grda.grda_update#threshold", "nets.grda.grda_update#dual", "theory.directional.weighted_lasso_dp",
            "theory.directional.flat_subspace", "theory.directional.flat_subspace_at_time",
            "theory.directional.weighted_lasso_limit", "theory.directional.support_agreement"),
)
def soft_threshold_subgradient() -> CheckResult:
    lam, t = sp.symbols("lambda t", positive=True)

    def soft(a):
        return sp.sign(a) * sp.Max(sp.Abs(a) - lam, 0)

    tally = Tally()
    for a, expected_xi in ((lam + t, lam), (-lam - t, -lam)):  # |a| > λ: ξ = λ·sign(S_λ(a)), S_λ(a) ≠ 0
        S = sp.simplify(soft(a))
        tally.check(f"support region a={a}", sp.simplify(a - S - expected_xi) == 0 and sp.simplify(sp.sign(S) * sp.sign(expected_xi)) == 1)
    for frac in (sp.Integer(-1), sp.Rational(-1, 3), sp.Integer(0), sp.Rational(1, 2), sp.Integer(1)):
        a = frac * lam  # |a| ≤ λ: S_λ(a) = 0 and ξ = a with |ξ| ≤ λ
        S = sp.simplify(soft(a))
        tally.check(f"zero region a={a}", S == 0 and sp.simplify(sp.Abs(a - S) - lam) <= 0)

    import torch

    from nets.grda import grda_update
    from theory.directional import flat_subspace, weighted_lasso_dp

    vals = [sp.Rational(v, 8) for v in (-21, -8, -5, -1, 0, 1, 3, 8, 9, 40)]
    for T in (sp.Rational(1, 2), sp.Integer(1), sp.Rational(0)):
        want = [soft(v).subs(lam, T) for v in vals]
        for foreach in (True, False):
            for dtype in (torch.float64, torch.float32):
                a = torch.tensor([float(v) for v in vals], dtype=dtype)
                p = torch.zeros_like(a)
                # lr = 0 leaves the dual sum as it is: one soft threshold of a
                grda_update([p], [torch.zeros_like(a)], [a], lr=0.0, threshold=float(T), foreach=foreach)
                tally.check(f"grda threshold T={T} foreach={foreach} {dtype}", [float(x) for x in p] == [float(v) for v in want])
                # one step with gradient g and lr γ: a ← a − γ g, then S_T
                a2 = torch.tensor([float(v) for v in vals], dtype=dtype)
                g = torch.full_like(a2, 2.0)
                grda_update([p], [g], [a2], lr=0.25, threshold=float(T), foreach=foreach)
                want2 = [float(soft(v - sp.Rational(1, 2)).subs(lam, T)) for v in vals]
                tally.check(f"grda step T={T} foreach={foreach} {dtype}", [float(x) for x in p] == want2)
                # weight decay enters the dual step: d = g + λ_wd w
                a3 = torch.tensor([float(v) for v in vals], dtype=dtype)
                w3 = torch.full_like(a3, 4.0)
                grda_update([w3], [torch.zeros_like(a3)], [a3], lr=0.25, threshold=float(T), weight_decay=0.5, foreach=foreach)
                want3 = [float(soft(v - sp.Rational(1, 2)).subs(lam, T)) for v in vals]
                tally.check(f"grda weight decay T={T} foreach={foreach} {dtype}", [float(x) for x in w3] == want3)
    # weighted lasso with P₀ = diag(1, 1, 0, 1, 0): s_j = 1 on flat coordinates, 0 elsewhere, so
    # w_j = S_λ(w_j) on flat coordinates and w_j unchanged on sharp ones
    fs = flat_subspace(np.diag([0.0, 0.0, 3.0, 0.0, 1.0]))
    tally.check("flat subspace of a diagonal", fs.k == 3 and np.allclose(fs.P0, np.diag([1.0, 1.0, 0.0, 1.0, 0.0]), atol=0))
    # |λ| ≤ τλ_max: negative curvature beyond τλ_max is sharp, tiny negative curvature flat
    fneg = flat_subspace(np.diag([3.0, -2.0, 0.0, -1e-9, 1e-9, -0.5]), tau=1e-6)
    tally.check(f"flat subspace with negative eigenvalues: mask {fneg.flat_mask.tolist()}",
                fneg.k == 3 and sorted(np.flatnonzero(np.abs(fneg.basis).sum(axis=1) > 0.5).tolist()) == [2, 3, 4])
    w = [sp.Rational(v, 4) for v in (5, -1, 7, -9, 2)]
    import warnings

    for L in (sp.Rational(1, 2), sp.Rational(3, 2)):
        with warnings.catch_warnings():  # beyond weighted_lasso_limit it warns; the closed form is what is checked
            warnings.simplefilter("ignore", UserWarning)
            got = weighted_lasso_dp(np.array([float(v) for v in w]), fs, float(L))
        want = [soft(v).subs(lam, L) if j in (0, 1, 3) else v for j, v in enumerate(w)]
        tally.check(f"weighted lasso λ={L}", [float(x) for x in got] == [float(v) for v in want])
    # flat subspace at training time t: |λ| ≤ m/t (τ = m/(λ_max t))
    from theory.directional import flat_subspace_at_time, support_agreement, weighted_lasso_limit

    Hd = np.diag([10.0, 0.5, 0.01, -0.02, 0.2])
    # (t = 0.01: the cut 100 exceeds λ_max and τ is capped just below 1, so λ_max stays sharp)
    for t, m, k in ((10.0, 1.0, 2), (1.0, 1.0, 4), (100.0, 1.0, 1), (10.0, 3.0, 3), (0.01, 1.0, 4)):
        got = flat_subspace_at_time(Hd, t, multiplier=m)
        tally.check(f"flat subspace at t={t}, m={m}: k={got.k} ≠ {k}", got.k == k)
    # the weighted lasso's validity limit λ* = min_{s_j > 0} |w_j|/s_j (diagonal P₀: s_j = 1 on flat coordinates)
    wv = np.array([1.25, -0.25, 1.75, -2.25, 0.5])
    tally.check("weighted_lasso_limit (diagonal P₀)", weighted_lasso_limit(wv, fs) == 0.25)
    tally.check("weighted_lasso_limit = inf without positive s", weighted_lasso_limit(wv, flat_subspace(np.eye(5))) == math.inf)
    # support agreement of replicates: exact rate, mean and max mismatches, per-coordinate rate
    sols = np.array([[1.0, 0.0, 2.0], [1.0, 0.5, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, -1.0]])
    ag = support_agreement(sols, np.array([True, False, True]))
    tally.check(f"support agreement {ag}", ag.exact_rate == 0.5 and ag.mean_mismatches == 0.75 and ag.max_mismatches == 2
                and np.array_equal(ag.per_coordinate, [0.75, 0.75, 0.75]) and ag.replicates == 4)
    # a rotated P₀ (rank one along u = (1, 1)/√2): s = sign(w)∘P₀ sign(w)
    fs2 = flat_subspace(np.array([[1.0, -1.0], [-1.0, 1.0]]))
    for wv, L in (((3.0, 1.0), 0.5), ((3.0, -1.0), 0.5), ((-0.5, -2.0), 1.0)):
        sg = np.sign(wv)
        s_ = sg * (0.5 * np.array([[1.0, 1.0], [1.0, 1.0]]) @ sg)
        want = sg * np.maximum(np.abs(wv) - L * s_, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            got = weighted_lasso_dp(np.array(wv), fs2, L)
        tally.close(f"weighted lasso rotated w={wv} [0]", got[0], want[0], rtol=8 * EPS, atol=8 * EPS)
        tally.close(f"weighted lasso rotated w={wv} [1]", got[1], want[1], rtol=8 * EPS, atol=8 * EPS)
    return tally.result()


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
    "(a = w + ξ: S_λ(a) = w, P₀a = P₀w^SGD, P₁w = P₁w^SGD); ADMM and cvxpy agree with the exact solution, the "
    "KKT residuals vanish there and equal λ‖Uᵀsign(w)‖ at w^SGD; the objective and projection ratio are exact",
    covers=(
        "theory.directional.constrained_dp_admm",
        "theory.directional.constrained_dp_cvxpy",
        "theory.directional.kkt_residual",
        "theory.directional.constrained_dp_objective",
        "theory.directional.flat_subspace",
        "theory.directional.projection_ratio",
    ),
)
def constrained_dp_kkt_and_grda_fixed_point() -> CheckResult:
    from theory.directional import (
        constrained_dp_admm,
        constrained_dp_cvxpy,
        constrained_dp_objective,
        flat_subspace,
        kkt_residual,
        projection_ratio,
    )

    tally = Tally()
    # rational orthonormal bases of flat subspaces: 2-D in R^3, and 1-D in R^3
    cases = [
        (sp.Matrix([[1, 2], [2, 1], [2, -2]]) / 3, sp.Matrix([sp.Rational(1, 5), sp.Rational(1, 10), 1]), sp.Rational(2, 5)),
        (sp.Matrix([[1, 2], [2, 1], [2, -2]]) / 3, sp.Matrix([sp.Rational(-3, 4), sp.Rational(1, 2), sp.Rational(1, 3)]), sp.Rational(1, 10)),
        (sp.Matrix([[2], [-1], [2]]) / 3, sp.Matrix([sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(-1, 4)]), sp.Rational(1, 5)),
    ]
    zero_seen = False
    for ci, (U, w_sgd, lam) in enumerate(cases):
        k = U.shape[1]
        out = _constrained_solution_exact(w_sgd, U, lam)
        if out is None:
            tally.check(f"case {ci}: a sign pattern satisfies the KKT conditions", False)
            continue
        w, z, pattern = out
        zero_seen |= 0 in pattern
        S = [i for i in range(3) if pattern[i] != 0]
        Z = [i for i in range(3) if pattern[i] == 0]
        xi = sp.zeros(3, 1)
        for i in S:
            xi[i] = lam * pattern[i]
        if Z:
            xz = sp.Matrix(sp.symbols(f"x0:{len(Z)}"))
            rhs = -z - U.extract(S, list(range(k))).T * sp.Matrix([xi[i] for i in S]) if S else -z
            sol = sp.solve(list(U.extract(Z, list(range(k))).T * xz - rhs), list(xz), dict=True)
            if sol:
                for j, i in enumerate(Z):
                    xi[i] = xz[j].subs(sol[0]).subs({v: 0 for v in xz})
        a = w + xi
        soft = sp.Matrix([sp.sign(v) * sp.Max(abs(v) - lam, 0) for v in a])
        P0 = U * U.T
        tally.check(f"case {ci}: gRDA fixed point", sp.simplify(soft - w) == sp.zeros(3, 1)
                    and sp.simplify(P0 * (a - w_sgd)) == sp.zeros(3, 1))
        tally.check(f"case {ci}: feasibility", sp.simplify((sp.eye(3) - P0) * (w - w_sgd)) == sp.zeros(3, 1))
        # the library: H with range(P₁) sharp and U flat
        Uf = np.array(U, dtype=float)
        H = (np.eye(3) - Uf @ Uf.T) * 5.0
        fs = flat_subspace(H)
        wsf = np.array(w_sgd, dtype=float).ravel()
        wex = np.array(w, dtype=float).ravel()
        res = constrained_dp_admm(wsf, fs, float(lam))
        for i in range(3):
            tally.close(f"case {ci}: ADMM w[{i}]", res.w[i], w[i], rtol=0, atol=64 * EPS)
        tally.check(f"case {ci}: ADMM support {res.support.tolist()} = pattern {pattern}", res.support.tolist() == [p != 0 for p in pattern])
        # the iteration itself (no polish) at a penalty ρ ≠ 1: prox threshold λ/ρ; stopping at eps_abs√d + eps_rel‖·‖
        raw = constrained_dp_admm(wsf, fs, float(lam), rho=0.3, adaptive_rho=False, polish=False, eps_abs=1e-13, eps_rel=1e-13)
        tally.check(f"case {ci}: unpolished ADMM at ρ = 0.3 converged", raw.converged and not raw.polished)
        for i in range(3):
            # residuals below 1e-13·√d: the iterate is within ≈ 1e-12/min(ρ, 1) of the solution
            tally.close(f"case {ci}: unpolished ADMM w[{i}]", raw.w[i], w[i], rtol=0, atol=1e-10)
        cv = constrained_dp_cvxpy(wsf, fs, float(lam))
        tally.check(f"case {ci}: cvxpy status {cv.status}", cv.status == "optimal" and cv.converged)
        # CLARABEL at tol_gap = 1e-12 on ½‖z‖² (strongly convex, modulus 1): ‖z − z*‖ ≤ √(2·1e-12) ≈ 1.4e-6
        for i in range(3):
            tally.close(f"case {ci}: cvxpy w[{i}]", cv.w[i], w[i], rtol=0, atol=math.sqrt(2e-12) * max(1.0, float(np.abs(wsf).max())))
        kk = kkt_residual(wex, wsf, fs, float(lam))
        tally.check(f"case {ci}: KKT residuals vanish at the exact solution {kk}", max(kk.values()) <= 64 * EPS)
        tally.close(f"case {ci}: objective", constrained_dp_objective(wex, wsf, float(lam)),
                    sum((wi - si) ** 2 for wi, si in zip(w, w_sgd)) / 2 + lam * sum(abs(v) for v in w), rtol=8 * EPS)
        # at w^SGD (no zeros): z = 0, so stationarity = ‖λ Uᵀ sign(w^SGD)‖ and feasibility = 0
        at_sgd = kkt_residual(wsf, wsf, fs, float(lam))
        want = lam * (U.T * sp.Matrix([sp.sign(v) for v in w_sgd])).norm()
        tally.close(f"case {ci}: stationarity at w^SGD", at_sgd["stationarity"], want, rtol=64 * EPS)
        tally.check(f"case {ci}: feasibility at w^SGD", at_sgd["feasibility"] <= 64 * EPS)
        bad = kkt_residual(wex * 1.01, wsf, fs, float(lam))
        tally.check(f"case {ci}: residuals see a perturbed point", max(bad.values()) > 1e-4)
        delta = w - w_sgd
        tally.close(f"case {ci}: projection ratio onto the flat basis", projection_ratio(wex - wsf, Uf), (U.T * delta).norm() / delta.norm(),
                    rtol=16 * EPS)
    tally.check("an example exercises the zero set (|ξ_j| ≤ λ off the support)", zero_seen)
    return tally.result()


@check(
    "grda_noise_sqrt_gamma",
    "gRDA noise at fixed time t = Nγ: flat directions Var(γΣ_{i≤N}ξ_i) = γ t σ²; sharp direction h (OU "
    "recursion e ← (1−γh)e − γξ) stationary Var = γσ²/(2h − γh²) ~ γσ²/(2h): both ∝ γ, so the error ∝ √γ; "
    "grda_update's dual sum (c = 0) against both variances within 4 standard errors",
    covers=("nets.grda.grda_update#dual",),
)
def grda_noise_sqrt_gamma() -> CheckResult:
    g, t, s, h = sp.symbols("gamma t sigma h", positive=True)
    N = t / g
    tally = Tally()
    tally.check("flat variance γtσ²", sp.simplify(N * g**2 * s**2 - g * t * s**2) == 0)
    V = sp.symbols("V", positive=True)
    stat = sp.solve(sp.Eq(V, (1 - g * h) ** 2 * V + g**2 * s**2), V)[0]
    tally.check("sharp stationary variance", sp.simplify(stat - g * s**2 / (2 * h - g * h**2)) == 0)
    tally.check("γ → 0 limit", sp.limit(stat / g, g, 0) == s**2 / (2 * h))

    import torch

    from nets.grda import grda_update

    # f(w) = ½ h w₁² (w₀ flat), noisy gradients, c = 0: a = w is plain SGD on independent chains
    chains, gamma, hh, sigma, steps = 20_000, 0.05, 2.0, 0.5, 400
    gen = torch.Generator().manual_seed(11)
    w = torch.zeros(2, chains, dtype=torch.float64)
    a = w.clone()
    curv = torch.tensor([[0.0], [hh]], dtype=torch.float64)
    for _ in range(steps):
        grad = curv * w + sigma * torch.randn(2, chains, generator=gen, dtype=torch.float64)
        grda_update([w], [grad], [a], lr=gamma, threshold=0.0)
    flat = float(w[0].var())
    sharp = float(w[1].var())
    want_flat = gamma * (gamma * steps) * sigma**2
    want_sharp = gamma * sigma**2 / (2 * hh - gamma * hh**2)  # (1 − γh)^{2·400} ≈ 1e-37: stationary
    # a Gaussian sample variance has standard error var·√(2/(n − 1))
    se = math.sqrt(2 / (chains - 1))
    tally.check(f"flat Var {flat:.5f} vs γtσ² {want_flat:.5f}", abs(flat / want_flat - 1) <= 4 * se)
    tally.check(f"sharp Var {sharp:.6f} vs γσ²/(2h − γh²) {want_sharp:.6f}", abs(sharp / want_sharp - 1) <= 4 * se)
    return tally.result()


@check(
    "dp_vs_obs_rank_one_valley",
    "issue 13 (ours): H = h·vvᵀ, v = (1,1)/√2, w^SGD = (a, −b), a > b > 0: for λ ≥ b the constrained DP solution "
    "is (a−b, 0) (KKT), OBS on the magnitude support gives the same point, both with ΔL = 0; magnitude pruning "
    "ΔL = h b²/4; the weighted lasso gives (a−λ, 0) with ΔL = h(λ−b)²/4 > 0 for λ > b",
    covers=("theory.directional.valley_comparison",),
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
    "(the pruned part extends to a flat direction); exact over all pruning sets of two 3-D valleys, and "
    "QuadraticModel.compensated_increase equals the exact value on each",
    covers=("theory.quadratic.QuadraticModel.compensated_increase",),
)
def obs_free_iff_flat_completion() -> CheckResult:
    from theory.quadratic import QuadraticModel

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
            # the library on the same instance (pseudo-inverse Schur complement in float64)
            got = QuadraticModel(np.array(H, dtype=float), np.array(w, dtype=float).ravel()).compensated_increase(np.array(kept))
            if abs(got - float(inc)) > 1e3 * 3 * 2.0**-52 * 4 * float(sum(v * v for v in w)):
                bad.append((name, kept, "library", got, float(inc)))
    return CheckResult(not bad, f"free pruning sets: {free_counts} of 8 each" if not bad else f"violations: {bad}")
