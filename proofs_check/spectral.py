"""Derivation checks for spectra (docs/math.md §3: :mod:`numerics`, :mod:`theory.spectrum`): Gauss quadrature
from Lanczos (Golub–Welsch) against Gauss–Legendre at 40 digits and against exact moments, the
Chebyshev–Markov–Stieltjes bounds against the exact measure, the Hutchinson variances proved symbolically,
and the spectrum conventions against their closed forms.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import sympy as sp

from proofs_check._compare import EPS, Tally
from proofs_check.registry import CheckResult, check

_DPS = 40


def _gauss_legendre(m: int) -> tuple[list, list]:
    """Nodes and weights of the m-point Gauss–Legendre rule for the probability measure dx/2 on [−1, 1]: the
    roots of P_m (exact rational coefficients, mpmath polyroots) and 1/((1 − x²)P_m'(x)²)."""
    x = sp.Symbol("x")
    coeffs = [mp.mpf(sp.Rational(c).p) / sp.Rational(c).q for c in sp.Poly(sp.legendre(m, x), x).all_coeffs()]
    roots = sorted(mp.re(r) for r in mp.polyroots(coeffs, maxsteps=200, extraprec=200))
    weights = []
    for r in roots:
        dP = m * (r * mp.legendre(m, r) - mp.legendre(m - 1, r)) / (r * r - 1)
        weights.append(1 / ((1 - r * r) * dP * dP))  # 2/((1−x²)P'²) for dx, halved for dx/2
    return roots, weights


@check(
    "gauss_quadrature_exactness",
    "Golub–Welsch: eig of the Jacobi matrix = Gauss nodes, (e1ᵀy)² = weights (Legendre at 40 digits); SLQ with m "
    "steps integrates x^j exactly for j <= 2m - 1 (diagonal operator, Rademacher probes: each probe's measure is "
    "uniform), underestimates x^{2m}; deflated SLQ weights 1/n and (n-k)/n  [§3]",
    covers=(
        "numerics.lanczos.tridiagonal_quadrature",
        "numerics.slq.slq",
        "numerics.slq.slq_deflated",
        "theory.spectrum.Spectrum.expect",
        "theory.spectrum.Spectrum.trace",
    ),
)
def gauss_quadrature_exactness() -> CheckResult:
    import torch

    from numerics.lanczos import tridiagonal_quadrature
    from numerics.operators import DiagonalOperator
    from numerics.slq import slq, slq_deflated

    tally = Tally()
    with mp.workdps(_DPS):
        for m in (1, 2, 3, 5, 8):
            beta = np.array([k / math.sqrt(4 * k * k - 1) for k in range(1, m)])
            nodes, weights = tridiagonal_quadrature(np.zeros(m), beta)
            ref_x, ref_w = _gauss_legendre(m)
            for i in range(m):
                # a symmetric tridiagonal eigensolver: c·m·eps absolute on nodes in [−1, 1] and weights ≤ 1
                tally.close(f"Legendre m={m} node {i}", nodes[i], ref_x[i], rtol=0, atol=16 * m * EPS)
                tally.close(f"Legendre m={m} weight {i}", weights[i], ref_w[i], rtol=0, atol=16 * m * EPS)
    lam = [Fraction(v, 4) for v in (-9, -4, -3, 0, 1, 2, 5, 6, 7, 11, 13, 20)]
    n = len(lam)
    op = DiagonalOperator(np.array([float(v) for v in lam]))
    lmax = max(abs(v) for v in lam)
    for m in (2, 3, 5):
        res = slq(op, steps=m, n_probes=3, generator=torch.Generator().manual_seed(m), probe="rademacher")
        spec = res.spectrum
        for j in range(2 * m + 1):
            exact = sum(v**j for v in lam) / n
            mean, se = spec.expect(lambda x, j=j: x**j)
            per = spec.per_probe(lambda x, j=j: x**j)
            if j <= 2 * m - 1:
                # Lanczos in float64 with full reorthogonalisation: moments to ≈ 64·m·j·eps·max|λ|^j
                tol = 64 * m * (j + 1) * EPS * float(lmax) ** j
                for l, v in enumerate(per):
                    tally.close(f"probe {l} E[x^{j}] (m={m})", v, exact, rtol=0, atol=tol)
                tally.close(f"expect E[x^{j}] (m={m})", mean, exact, rtol=0, atol=tol)
                tally.close(f"trace x^{j} (m={m})", spec.trace(lambda x, j=j: x**j)[0], exact * n, rtol=0, atol=n * tol)
                tally.check(f"stderr ≈ 0 for identical probes (m={m}, j={j})", se <= tol)
            else:
                tally.check(f"Gauss rule underestimates x^{2 * m} (m={m})", all(v < float(exact) for v in per))
    # deflation: two outliers exactly, SLQ on the rest
    d = np.concatenate([np.linspace(0.0, 1.0, 20), [50.0, -40.0]])
    res = slq_deflated(DiagonalOperator(d), deflate=2, steps=4, n_probes=2, generator=torch.Generator().manual_seed(0))
    s = res.spectrum
    tally.check("deflated weights 1/n", np.allclose(s.weights[:, :2], 1 / 22, rtol=0, atol=4 * EPS))
    tally.check("deflated rest weights sum to (n−k)/n", np.allclose(s.weights[:, 2:].sum(axis=1), 20 / 22, rtol=0, atol=16 * EPS))
    resid = float(np.max(res.deflation_residuals))
    for j in range(8):
        exact = float(np.mean(d**j))
        # Ritz pairs with residual ‖R‖ move the moments by ≲ j·max|λ|^{j−1}·‖R‖ (Weyl) plus Lanczos rounding
        tol = (j * 50.0 ** max(j - 1, 0) * resid + 256 * (j + 1) * EPS * 50.0**j)
        tally.close(f"deflated E[x^{j}]", s.expect(lambda x, j=j: x**j)[0], exact, rtol=0, atol=tol)
    return tally.result(f"deflation residual {resid:.1e}")


@check(
    "spectrum_bounds_and_conventions",
    "Chebyshev–Markov–Stieltjes: sum_{theta_k < x, not adjacent} tau_k <= mu((-inf, x)) <= sum up to the node above x; "
    "W1 = int |F - G|; Gaussian density sum tau phi_sigma(x - theta); PyHessian sigma = sqrt(s² max(1, range + 2 o)); "
    "CTU m = ceil(12/t + ½), n_v = ceil(4 (n+2)^-1 t^-2 ln(2n/eta))  [§3]",
    covers=(
        "theory.spectrum.Spectrum.expect",
        "theory.spectrum.Spectrum.trace",
        "theory.spectrum.Spectrum.mass_bounds_per_probe",
        "theory.spectrum.Spectrum.cdf",
        "theory.spectrum.Spectrum.wasserstein1",
        "theory.spectrum.Spectrum.density",
        "theory.spectrum.pyhessian_sigma",
        "theory.spectrum.ctu_parameters",
    ),
)
def spectrum_bounds_and_conventions() -> CheckResult:
    import torch

    from numerics.operators import DiagonalOperator
    from numerics.slq import slq
    from theory.spectrum import Spectrum, ctu_parameters, pyhessian_sigma

    tally = Tally()
    lam = np.array([-3.0, -2.5, -1.0, -0.2, 0.0, 0.1, 0.4, 1.0, 2.0, 2.2, 3.0, 5.0, 8.0, 9.0])
    spec = slq(DiagonalOperator(lam), steps=4, n_probes=3, generator=torch.Generator().manual_seed(1)).spectrum
    for x in (-2.7, -1.0, -0.1, 0.0, 0.05, 1.5, 8.5):
        exact = float(np.mean(lam < x))  # each Rademacher probe's measure is the uniform one on lam
        lo, hi = spec.mass_bounds_per_probe(x)
        for l in range(spec.n_probes):
            keep = spec.weights[l] > 0
            order = np.argsort(spec.nodes[l][keep])
            th, tau = spec.nodes[l][keep][order], spec.weights[l][keep][order]
            j = int(np.sum(th < x))
            want_lo = max(float(tau[: max(j - 1, 0)].sum()), 0.0)
            want_hi = min(1.0, float(tau[: min(j + 1, th.size)].sum()))
            tally.check(f"CMS bounds contain the measure at x={x} (probe {l}): {lo[l]:.3f} ≤ {exact:.3f} ≤ {hi[l]:.3f}",
                        lo[l] - 1e-12 <= exact <= hi[l] + 1e-12)
            tally.close(f"CMS lower x={x} probe {l}", lo[l], want_lo, rtol=0, atol=8 * EPS)
            tally.close(f"CMS upper x={x} probe {l}", hi[l], want_hi, rtol=0, atol=8 * EPS)
    ex = Spectrum.from_eigenvalues(lam)
    for x in (-1.0, 0.05):
        lo, hi = ex.mass_bounds_per_probe(x)
        tally.check(f"exact spectrum: bounds equal the mass at {x}", lo[0] == hi[0] and abs(lo[0] - float(np.mean(lam < x))) <= 16 * EPS)
    # Spectrum.expect: the mean of the per-probe rules and std(ddof=1)/√n_v across probes; 0 for exact spectra
    three = Spectrum(np.array([[1.0, 2.0], [0.5, 4.0], [3.0, 3.0]]), np.array([[0.5, 0.5], [0.75, 0.25], [1.0, 0.0]]), 8)
    per = [Fraction(3, 2), Fraction(3, 8) + 1, Fraction(3)]
    mean = sum(per) / 3
    var = sum((v - mean) ** 2 for v in per) / 2
    got_mean, got_se = three.expect(lambda x: x)
    tally.close("expect mean over probes", got_mean, mean, rtol=8 * EPS)
    with mp.workdps(30):
        tally.close("expect stderr std/√n_v", got_se, mp.sqrt(mp.mpf(var.numerator) / var.denominator) / mp.sqrt(3), rtol=16 * EPS)
        tally.close("trace = n·expect (value and stderr)", three.trace(lambda x: x)[1], 8 * mp.sqrt(mp.mpf(var.numerator) / var.denominator) / mp.sqrt(3),
                    rtol=16 * EPS)
    tally.check("exact spectrum: stderr 0", Spectrum.from_eigenvalues([1.0, 5.0]).expect(lambda x: x) == (3.0, 0.0))
    a = Spectrum.from_eigenvalues([0.0, 1.0, 3.0])
    b = [0.5, 2.0]
    # F_a − F_b on [0, 0.5): 1/3; [0.5, 1): 1/3 − 1/2; [1, 2): 2/3 − 1/2; [2, 3): 2/3 − 1
    w1 = Fraction(1, 3) * Fraction(1, 2) + Fraction(1, 6) * Fraction(1, 2) + Fraction(1, 6) * 1 + Fraction(1, 3) * 1
    tally.close("W1 of two discrete measures", a.wasserstein1(np.array(b)), w1, rtol=4 * EPS)
    tally.close("W1 symmetric", Spectrum.from_eigenvalues(b).wasserstein1(a), w1, rtol=4 * EPS)
    tally.check("cdf steps", a.cdf([-1.0, 0.0, 0.5, 1.0, 2.9, 3.0]).tolist() == [0.0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])
    with mp.workdps(30):
        two = Spectrum(np.array([[0.5, 2.0], [1.0, 1.0]]), np.array([[0.25, 0.75], [1.0, 0.0]]), 10)
        for x in (-0.3, 0.5, 1.2, 2.5):
            for sigma in (0.1, 0.7):
                ref = (mp.mpf(1) / 2) * (mp.mpf("0.25") * mp.npdf(x, 0.5, sigma) + mp.mpf("0.75") * mp.npdf(x, 2.0, sigma)) \
                    + (mp.mpf(1) / 2) * mp.npdf(x, 1.0, sigma)
                tally.close(f"density({x}, σ={sigma})", two.density(np.array([x]), sigma)[0], ref, rtol=64 * EPS, atol=1e-300)
        for s2, lo, hi, ov in ((1e-5, -0.3, 4.0, 0.01), (1e-4, -0.01, 0.01, 0.0), (2e-3, 0.0, 0.2, 0.5)):
            ref = mp.sqrt(mp.mpf(s2) * max(1, mp.mpf(hi) - lo + 2 * mp.mpf(ov)))
            tally.close(f"pyhessian_sigma({s2}, {lo}, {hi}, {ov})", pyhessian_sigma(s2, lo, hi, overhead=ov), ref, rtol=4 * EPS)
        for n, t, eta in ((400, 0.1, 0.01), (10**6, 0.05, 0.1), (50, 0.3, 0.5), (5, 0.01, 0.01)):
            m_ref = min(n, int(mp.ceil(12 / mp.mpf(t) + mp.mpf(1) / 2)))
            nv_ref = max(1, int(mp.ceil(4 / ((n + 2) * mp.mpf(t) ** 2) * mp.log(2 * n / mp.mpf(eta)))))
            tally.check(f"ctu_parameters({n}, {t}, {eta}) = {(m_ref, nv_ref)}", ctu_parameters(n, t, eta) == (m_ref, nv_ref))
    return tally.result()


@check(
    "hutchinson_variance",
    "Var(zᵀAz) = 2(||A||_F² - sum A_ii²) for Rademacher z (all sign vectors), 2||A||_F² for Gaussian z (Isserlis); "
    "Hutchinson unbiased with that variance; Hutch++ exact on rank <= n_matvecs/3 and unbiased  [Avron–Toledo 2011; "
    "Meyer et al. 2021; §3]",
    covers=("numerics.trace.hutchinson_variance", "numerics.trace.hutchinson", "numerics.trace.hutchpp"),
)
def hutchinson_variance_check() -> CheckResult:
    import itertools

    import torch

    from numerics.operators import DenseOperator
    from numerics.trace import hutchinson, hutchinson_variance, hutchpp

    tally = Tally()
    a = sp.symbols("a0:6")
    A = sp.Matrix([[a[0], a[1], a[2]], [a[1], a[3], a[4]], [a[2], a[4], a[5]]])
    fro2 = sum(v**2 for v in A)
    diag2 = sum(A[i, i] ** 2 for i in range(3))
    rad = sum(((sp.Matrix(z).T * A * sp.Matrix(z))[0]) ** 2 for z in itertools.product((-1, 1), repeat=3)) / 8
    tally.check("Rademacher Var = 2(‖A‖_F² − ΣA_ii²)", sp.expand(rad - A.trace() ** 2 - 2 * (fro2 - diag2)) == 0)
    # Gaussian: E[z_i z_j z_k z_l] = δ_ij δ_kl + δ_ik δ_jl + δ_il δ_jk
    d = lambda i, j: 1 if i == j else 0  # noqa: E731
    g4 = sum(A[i, j] * A[k, l] * (d(i, j) * d(k, l) + d(i, k) * d(j, l) + d(i, l) * d(j, k))
             for i in range(3) for j in range(3) for k in range(3) for l in range(3))
    tally.check("Gaussian Var = 2‖A‖_F²", sp.expand(g4 - A.trace() ** 2 - 2 * fro2) == 0)
    rng = np.random.default_rng(40)
    for _ in range(3):
        M = rng.integers(-5, 6, (4, 4)).astype(float) / 4
        S = (M + M.T) / 2
        fro = sum(Fraction(v).limit_denominator(64) ** 2 for v in S.ravel())
        dg = sum(Fraction(S[i, i]).limit_denominator(64) ** 2 for i in range(4))
        for N in (1, 7):
            tally.close(f"Gaussian variance N={N}", hutchinson_variance(M, "gaussian", N), 2 * fro / N, rtol=8 * EPS)
            tally.close(f"Rademacher variance N={N}", hutchinson_variance(M, "rademacher", N), 2 * (fro - dg) / N,
                        rtol=8 * EPS, atol=8 * EPS)
    n = 30
    B = rng.standard_normal((n, n))
    Asym = B + B.T
    tr = float(np.trace(Asym))
    for probe in ("rademacher", "gaussian"):
        N = 4000
        est = hutchinson(DenseOperator(torch.from_numpy(Asym)), n_probes=N, generator=torch.Generator().manual_seed(7), probe=probe)
        var = hutchinson_variance(Asym, probe, N)
        tally.check(f"{probe}: estimate within 4 standard errors", abs(est.estimate - tr) <= 4 * math.sqrt(var))
        x = est.samples
        kurt = float(np.mean((x - x.mean()) ** 4) / np.var(x) ** 2)
        # relative sd of a sample variance: √((κ − 1)/N)
        tally.check(f"{probe}: reported variance {est.variance:.4g} vs exact {var:.4g}",
                    abs(est.variance / var - 1) <= 4 * math.sqrt((kurt - 1) / N))
        tally.check(f"{probe}: stderr = √variance, mean of samples", abs(est.stderr - math.sqrt(est.variance)) <= 4 * EPS * est.stderr
                    and abs(est.estimate - float(x.mean())) <= 4 * EPS * abs(est.estimate) + 1e-12)
    # Hutch++: a PSD matrix of rank 3 with 9 matvecs (s = 3 sketch columns capture its range exactly)
    U = np.linalg.qr(rng.standard_normal((n, 3)))[0]
    low = U @ np.diag([5.0, 2.0, 0.5]) @ U.T
    est = hutchpp(DenseOperator(torch.from_numpy(low)), n_matvecs=9, generator=torch.Generator().manual_seed(3))
    tally.close("Hutch++ exact on rank 3", est.estimate, 7.5, rtol=1e3 * n * EPS)
    tally.check("Hutch++ matvecs", est.matvecs == 9)
    vals = [hutchpp(DenseOperator(torch.from_numpy(Asym)), n_matvecs=12, generator=torch.Generator().manual_seed(100 + i)).estimate
            for i in range(300)]
    se = float(np.std(vals, ddof=1) / math.sqrt(len(vals)))
    tally.check(f"Hutch++ unbiased: mean {np.mean(vals):.3f} vs {tr:.3f} ± 4·{se:.3f}", abs(float(np.mean(vals)) - tr) <= 4 * se)
    return tally.result()
