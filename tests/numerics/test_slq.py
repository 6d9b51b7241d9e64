"""Tests for numerics.slq: exactness, the Chen–Trogdon–Ubaru bound, statistics, functionals, persistence."""

from __future__ import annotations

import doctest
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats
import torch

import numerics.slq as slq_mod
import theory.spectrum as spectrum_mod
from numerics.operators import DenseOperator, DiagonalOperator
from numerics.slq import slq
from theory.spectrum import Spectrum, ctu_parameters, pyhessian_sigma
from numerics.testing import goe, rotated_diagonal, spiked_wigner

EPS = np.finfo(np.float64).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mod", [slq_mod, spectrum_mod], ids=lambda m: m.__name__)
def test_doctests(mod) -> None:
    res = doctest.testmod(mod, raise_on_error=False)
    assert res.attempted > 0 and res.failed == 0


def test_spectrum_module_is_numpy_only() -> None:
    # theory.* takes a Spectrum as input and is numpy/scipy only: neither may import torch.
    import subprocess
    import sys

    code = "import sys, theory.spectrum, theory.limits, theory.quadratic; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dense", [False, True])
def test_m_equals_n_recovers_spectrum(dense: bool) -> None:
    n = 50
    rng = np.random.default_rng(0)
    lam = np.sort(rng.uniform(-2, 3, n))
    op = DenseOperator(rotated_diagonal(lam, rng).matrix) if dense else DiagonalOperator(lam)
    # counting eigenvalues (m = n recovers the spectrum) is what needs the reorthogonalised basis
    s = slq(op, steps=n, n_probes=4, generator=gen(0), reorth="full").spectrum
    assert s.dim == n and s.n_probes == 4
    for l in range(4):
        np.testing.assert_allclose(np.sort(s.nodes[l]), lam, rtol=0, atol=1e-10)
    # smooth functionals: per-probe value is qᵀf(A)q; for a Rademacher probe on a *diagonal* matrix
    # q_i² = 1/n, so the estimate is exact; for the dense one it is a Hutchinson sample (tested below).
    if not dense:
        mean, _ = s.expect(np.sin)
        assert abs(mean - np.sin(lam).mean()) < 1e-12


def ctu_check(ks, seed: int, t: float = 0.1, eta: float = 0.01) -> None:
    n = ks.n
    m, nv = ctu_parameters(n, t, eta)
    s = slq(ks.operator(), steps=m, n_probes=nv, generator=gen(seed), probe="gaussian").spectrum
    spread = ks.eigenvalues[-1] - ks.eigenvalues[0]
    w1 = s.wasserstein1(ks.eigenvalues)
    # Chen–Trogdon–Ubaru 2021 (docs/math.md §3): W1 ≤ t·(λmax − λmin) with probability ≥ 1 − η
    assert w1 <= t * spread, (w1, t * spread)
    # for L-Lipschitz f: |(1/n) tr f(A) − expect(f)| ≤ L·W1 ≤ L·t·spread
    for f, L in [(np.sin, 1.0), (np.tanh, 1.0), (lambda x: np.exp(-(x**2)), math.sqrt(2 / math.e))]:
        est, se = s.expect(f)
        exact = f(ks.eigenvalues).mean()
        assert abs(est - exact) <= L * w1 + 1e-12, f
        assert abs(est - exact) <= L * t * spread
        # the error is dominated by probe sampling, not quadrature: within 4 standard errors
        assert abs(est - exact) <= 4 * se + 1e-12, (est, exact, se)


def test_ctu_bound_goe() -> None:
    ctu_check(goe(400, np.random.default_rng(1)), seed=1)


def test_ctu_bound_spiked_wigner() -> None:
    ks = spiked_wigner(400, [4.0, -3.0], np.random.default_rng(2))
    ctu_check(ks, seed=2)
    # and the outliers are found: the extreme nodes converge to the realisation's outliers
    s = slq(ks.operator(), steps=60, n_probes=2, generator=gen(3)).spectrum
    assert abs(s.nodes.max() - ks.eigenvalues[-1]) < 1e-8
    assert abs(s.nodes.min() - ks.eigenvalues[0]) < 1e-8


def _cms_bound(s: Spectrum, x: float) -> float:
    """Chebyshev–Markov–Stieltjes: per probe |F(x) − F_quad(x)| ≤ max weight of the two nodes around x."""
    b = []
    for l in range(s.n_probes):
        keep = s.weights[l] > 0
        th, w = s.nodes[l][keep], s.weights[l][keep]
        order = np.argsort(th)
        th, w = th[order], w[order]
        j = np.searchsorted(th, x, side="right")
        b.append(max(w[j - 1] if j > 0 else 0.0, w[j] if j < th.size else 0.0))
    return float(np.mean(b))


def test_goe_negative_mass() -> None:
    ks = goe(800, np.random.default_rng(3))
    s = slq(ks.operator(), steps=80, n_probes=20, generator=gen(4)).spectrum
    mass, se = s.negative_mass()
    exact = float(np.mean(ks.eigenvalues < 0))
    # sampling error: 3 standard errors; discretisation of an indicator: the CMS bound (one node weight)
    assert abs(mass - exact) <= 3 * se + _cms_bound(s, 0.0), (mass, exact, se)
    # GOE is symmetric in law: the realised fraction is ½ up to O(log n / n) rigidity, so 0.5 within 3 s.e.
    assert abs(mass - 0.5) <= 3 * se + _cms_bound(s, 0.0) + abs(exact - 0.5)
    assert abs(exact - 0.5) < 0.02 and se < 0.02  # the test is sharp enough to mean something


def test_reorth_parity_for_densities() -> None:
    # Without reorthogonalisation ghosts of the converged outlier appear (Paige 1976), but the Gauss rule of
    # plain Lanczos still matches the true measure's low moments (Greenbaum 1989; Knizhnerman 1996), so
    # smoothed densities agree. Same probes, so the difference is purely numerical.
    ks = spiked_wigner(300, [5.0], np.random.default_rng(5))
    full = slq(ks.operator(), steps=80, n_probes=4, generator=gen(6), reorth="full").spectrum
    none = slq(ks.operator(), steps=80, n_probes=4, generator=gen(6), reorth="none").spectrum
    grid = np.linspace(-3, 6, 901)
    sigma = 0.15
    d_full, d_none = full.density(grid, sigma), none.density(grid, sigma)
    dx = grid[1] - grid[0]
    l1 = np.sum(np.abs(d_full - d_none)) * dx
    # Greenbaum (1989): finite-precision Lanczos is exact Lanczos on a matrix whose eigenvalues are spread over
    # tiny intervals around those of A, so the smoothed densities differ by a perturbation of the nodes of
    # order √eps·‖A‖ at worst (measured: ~5e-15 in L1). Tolerance 1e-6, far below the 4-probe sampling error.
    assert l1 < 1e-6, l1
    ghosts = np.sum((none.nodes > 5.0) & (none.weights > 0), axis=1)
    assert ghosts.max() >= 2  # the ghosts really exist (so the parity is not vacuous)
    assert np.sum((full.nodes > 5.0) & (full.weights > 0), axis=1).max() == 1


def test_same_generator_identical_spectrum() -> None:
    op = goe(100, np.random.default_rng(7)).operator()
    a = slq(op, steps=20, n_probes=3, generator=gen(9)).spectrum
    b = slq(op, steps=20, n_probes=3, generator=gen(9)).spectrum
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_batched_vs_per_probe_spectrum() -> None:
    from numerics.lanczos import draw_probes, lanczos

    op = goe(120, np.random.default_rng(8)).operator()
    V0 = draw_probes(120, 3, generator=gen(1))
    batched = Spectrum.from_lanczos(lanczos(op, V0=V0, steps=25))
    for l in range(3):
        single = Spectrum.from_lanczos(lanczos(op, V0=V0[:, l : l + 1], steps=25))
        np.testing.assert_allclose(single.nodes[0], batched.nodes[l], rtol=0, atol=1e-11)
        np.testing.assert_allclose(single.weights[0], batched.weights[l], rtol=0, atol=1e-11)


def test_density_normalised_and_semicircle() -> None:
    ks = goe(600, np.random.default_rng(9))
    s = slq(ks.operator(), steps=60, n_probes=8, generator=gen(2)).spectrum
    grid = np.linspace(-4, 4, 4001)
    d = s.density(grid, 0.05)
    # a mixture of unit-mass Gaussians: integral 1 up to the trapezoid error and the tails beyond ±4 (< 1e-12)
    assert abs(np.trapezoid(d, grid) - 1.0) < 1e-6
    # near the semicircle in L1 (smoothing + sampling + finite n: a loose sanity bound)
    assert np.trapezoid(np.abs(d - ks.limit_density(grid)), grid) < 0.1


def test_pyhessian_sigma_reproduces_pyhessian_kernel() -> None:
    # Re-implementation of PyHessian 0.1's density_generate formula (variance = sigma_squared·max(1, range)).
    rng = np.random.default_rng(10)
    nodes = rng.uniform(-1, 4, (3, 10))
    weights = rng.dirichlet(np.ones(10), size=3)
    s = Spectrum(nodes, weights, 100)
    sigma_squared, overhead = 1e-3, 0.01
    lmax = np.mean(np.max(nodes, axis=1)) + overhead
    lmin = np.mean(np.min(nodes, axis=1)) - overhead
    var = sigma_squared * max(1, lmax - lmin)
    grid = np.linspace(lmin, lmax, 20001)
    ph = np.mean(
        [
            (np.exp(-((nodes[i][None, :] - grid[:, None]) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)) @ weights[i]
            for i in range(3)
        ],
        axis=0,
    )
    ours = s.density(grid, s.pyhessian_sigma(sigma_squared, overhead))
    np.testing.assert_allclose(ours, ph, rtol=1e-12, atol=1e-12)
    assert pyhessian_sigma(1e-5, 0.0, 0.5) == math.sqrt(1e-5)  # range below 1: max(1, ·) keeps 1


def test_cdf_and_wasserstein_against_scipy() -> None:
    rng = np.random.default_rng(11)
    s = Spectrum(rng.normal(size=(4, 7)), rng.dirichlet(np.ones(7), size=4), 30)
    lam = rng.normal(size=30)
    x, w = s.atoms()
    ref = scipy.stats.wasserstein_distance(x, lam, u_weights=w)
    assert abs(s.wasserstein1(lam) - ref) < 1e-12
    other = Spectrum.from_eigenvalues(lam)
    assert abs(s.wasserstein1(other) - ref) < 1e-12
    assert abs(other.wasserstein1(s) - ref) < 1e-12
    assert s.wasserstein1(s) == 0.0
    pts = np.linspace(-3, 3, 13)
    want = np.array([w[x <= p].sum() for p in pts])
    np.testing.assert_allclose(s.cdf(pts), want, atol=1e-14)
    assert s.cdf(100.0) == 1.0 and s.cdf(-100.0) == 0.0


def test_plot() -> None:
    s = Spectrum.from_eigenvalues([-1.0, 0.0, 2.0])
    fig, ax = plt.subplots()
    (line,) = s.plot(ax, sigma=0.1)
    xd, yd = line.get_data()
    assert np.diff(xd).max() <= 0.1 / 4 + 1e-12  # grid resolves the kernel
    (line2,) = s.plot(ax)
    assert line2.get_data()[1].max() == pytest.approx(1.0)
    plt.close(fig)


def test_error_inputs() -> None:
    s = Spectrum.from_eigenvalues([0.0, 1.0])
    op = DiagonalOperator(np.arange(4.0))
    cases = [
        (lambda: s.density(np.zeros(3), 0.0), ValueError, "sigma must be a finite positive number, got 0.0"),
        (lambda: s.density(np.array([np.nan]), 1.0), ValueError, "grid must be finite"),
        (lambda: s.density(np.zeros(3), "a"), TypeError, "sigma must be a real number, got str"),
        (lambda: s.negative_mass(-1.0), ValueError, "tol must be a finite non-negative number, got -1.0"),
        (lambda: s.wasserstein1([]), ValueError, "other must be a Spectrum or a non-empty finite array"),
        (lambda: s.cdf(np.nan), ValueError, "x must not contain NaN"),
        (lambda: pyhessian_sigma(1e-5, 1.0, 0.0), ValueError, "need finite lambda_min <= lambda_max"),
        (lambda: ctu_parameters(10, 1.5, 0.1), ValueError, r"t must lie in \(0, 1\), got 1.5"),
        (lambda: slq(op, steps=5, n_probes=1, generator=gen(0)).spectrum, ValueError, r"steps must be an integer in \[1, 4\], got steps=5"),
        (lambda: slq(op, steps=2, n_probes=1, generator=None).spectrum, TypeError, "generator must be a torch.Generator, got NoneType"),
        (lambda: slq(DenseOperator(np.triu(np.ones((4, 4)))), steps=2, n_probes=1, generator=gen(0)).spectrum, ValueError,
         "Lanczos needs an operator declared symmetric"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


# -- top-k deflation ---------------------------------------------------------------------------------------
def _spiked(seed: int = 20):
    return spiked_wigner(300, [25.0, 15.0, -12.0], np.random.default_rng(seed))


def test_deflated_weights_combine_exactly_for_polynomials() -> None:
    # With deflated Ritz pairs (θ_i, u_i) and q = Pz/‖Pz‖, each probe's rule must give
    # (1/n) Σ θ_i^p + ((n−k)/n) qᵀ(PAP)^p q exactly for p ≤ 2m − 1.
    from numerics.eigs import eigs
    from numerics.lanczos import draw_probes

    ks = _spiked()
    n, k, m = ks.n, 3, 5
    g = gen(1)
    s = slq_mod.slq_deflated(ks.operator(), deflate=k, steps=m, n_probes=2, generator=g).spectrum
    # replay the same random stream: eigs first, then the probes
    g2 = gen(1)
    top = eigs(ks.operator(), k, which="LM", generator=g2)
    U = top.eigenvectors.numpy()
    Z = draw_probes(n, 2, generator=g2).numpy()
    P = np.eye(n) - U @ U.T
    PAP = P @ ks.matrix @ P
    for l in range(2):
        q = P @ (P @ Z[:, l])
        q /= np.linalg.norm(q)
        for p in range(2 * m):
            want = np.sum(top.eigenvalues**p) / n + (n - k) / n * (q @ np.linalg.matrix_power(PAP, p) @ q)
            got = s.per_probe(lambda x, p=p: x**p)[l]
            # |moments| ≤ 25^p: relative rounding c·p·eps
            assert abs(got - want) <= 1e3 * EPS * max(1.0, 25.0**p), (l, p, got, want)
    assert s.weights.sum(axis=1) == pytest.approx(np.ones(2))


def test_deflated_m_equals_rest_recovers_spectrum() -> None:
    ks = _spiked(21)
    n, k = ks.n, 3
    s = slq(ks.operator(), steps=n - k, n_probes=2, generator=gen(2), deflate=k, reorth="full").spectrum
    for l in range(2):
        np.testing.assert_allclose(np.sort(s.nodes[l]), ks.eigenvalues, rtol=0, atol=1e-10)
    # exact spectrum ⇒ W1 is only the weight fluctuation of the one-probe rule, small
    assert s.wasserstein1(ks.eigenvalues) < 0.1


def test_deflation_tightens_the_ctu_guarantee_for_sharp_functionals() -> None:
    # CTU on the rest: W1(rest) ≤ t·(range of the rest); deflation removes the outliers from that range.
    ks = _spiked(22)
    n, k, t, eta = ks.n, 3, 0.1, 0.01
    m, nv = ctu_parameters(n - k, t, eta)
    from numerics.eigs import eigs

    s = slq(ks.operator(), steps=m, n_probes=nv, generator=gen(3), probe="gaussian", deflate=k).spectrum
    res = eigs(ks.operator(), k, which="LM", generator=gen(3))  # the same stream start: same eigenpairs
    rest = np.sort(np.setdiff1d(ks.eigenvalues, ks.eigenvalues[np.argsort(-np.abs(ks.eigenvalues))[:k]]))
    full_range = ks.eigenvalues[-1] - ks.eigenvalues[0]
    # Weyl: the deflated pairs perturb the measure by ≤ ‖R‖₂ ≤ ‖R‖_F; the rest carries mass (n−k)/n
    bound = (n - k) / n * t * (rest[-1] - rest[0]) + np.linalg.norm(res.residuals)
    w1 = s.wasserstein1(ks.eigenvalues)
    assert w1 <= bound, (w1, bound)
    assert bound < 0.25 * t * full_range  # the guarantee is >4× tighter than without deflation
    # a sharp, bounded functional of the pruning type (docs/math.md §2): f(λ) = 2ε/(2ε + |λ| R²),
    # ε = 1e-3, R = 1
    eps_, R2 = 1e-3, 1.0
    f = lambda x: 2 * eps_ / (2 * eps_ + np.abs(x) * R2)  # noqa: E731
    L = R2 / (2 * eps_)  # Lipschitz constant of f
    est, se = s.expect(f)
    exact = f(ks.eigenvalues).mean()
    assert abs(est - exact) <= L * w1
    assert abs(est - exact) <= 4 * se + 0.01, (est, exact, se)


def test_deflated_error_inputs() -> None:
    op = DiagonalOperator(np.arange(6.0))
    cases = [
        (lambda: slq(op, steps=2, n_probes=1, generator=gen(0), deflate=6).spectrum, ValueError, r"deflate must be an integer in \[1, 5\], got deflate=6"),
        (lambda: slq(op, steps=5, n_probes=1, generator=gen(0), deflate=2).spectrum, ValueError,
         r"steps must be an integer in \[1, 4\], got steps=5"),
        (lambda: slq_mod.slq_deflated(DenseOperator(np.triu(np.ones((4, 4)))), deflate=1, steps=2, n_probes=1, generator=gen(0)).spectrum,
         ValueError, "slq_deflated needs a square operator declared symmetric"),
        (lambda: slq(op, steps=2, n_probes=0, generator=gen(0), deflate=1).spectrum, ValueError,
         "n_probes must be an integer >= 1, got n_probes=0"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_negative_mass_bounds_contain_each_probe_measure() -> None:
    # A network-like spectrum: a heavy cluster straddling 0 plus a spread of positive curvature. With few
    # steps the Gauss rule lumps the cluster into a node next to 0, so the quadrature value of the mass below
    # 0 is biased beyond its probe standard error; the Chebyshev–Markov–Stieltjes interval must contain the
    # exact probe-weighted mass Σ_i (q_iᵀv)² [λ_i < 0] for every probe (a guarantee, not a statistic).
    rng = np.random.default_rng(11)
    n = 300
    lam = np.concatenate([rng.normal(0.0, 1e-4, 200), rng.exponential(1.0, 100)])
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)
    V0 = rng.standard_normal((n, 6))
    V0 /= np.linalg.norm(V0, axis=0)
    from numerics.lanczos import lanczos

    for steps in (5, 12, 40):
        spec = Spectrum.from_lanczos(lanczos(DenseOperator(A), steps=steps, V0=torch.as_tensor(V0)))
        lo, hi = spec.mass_bounds_per_probe(0.0)
        exact = ((Q.T @ V0) ** 2 * (lam < 0)[:, None]).sum(axis=0)
        # slack: the rule's own rounding, c · m · eps
        assert np.all(lo <= exact + 1e3 * steps * EPS) and np.all(exact <= hi + 1e3 * steps * EPS), (steps, lo, exact, hi)
        assert np.all(hi - lo > 0)
        mean_lo, mean_hi = spec.negative_mass_bounds()
        assert mean_lo == pytest.approx(lo.mean()) and mean_hi == pytest.approx(hi.mean())
    # the bounds narrow to the quadrature value for an exact spectrum
    lo_e, hi_e = Spectrum.from_eigenvalues(lam).negative_mass_bounds()
    assert lo_e == hi_e == pytest.approx(float((lam < 0).mean()), abs=10 * n * EPS)


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_negative_mass_bounds_reject_bad_tol(bad) -> None:
    with pytest.raises(ValueError, match="tol must be a finite non-negative number"):
        Spectrum.from_eigenvalues([1.0, -1.0]).negative_mass_bounds(bad)


def test_per_probe_ignores_f_at_zero_weight_nodes() -> None:
    # a padded node (zero weight) may sit where f is not finite; it must not reach the sum
    s = Spectrum(np.array([[1.0, 2.0, 0.0], [4.0, 4.0, 4.0]]), np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]]), 4)
    with np.errstate(divide="ignore"):
        vals = s.per_probe(lambda x: 1.0 / x)
    assert vals.tolist() == [0.75, 0.25]


# -- fast paths against the reference path (each fast path has a parity test) ------------------------------
def _w1_discrete(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    """Wasserstein-1 distance of two discrete probability measures on the line: ∫|F − G| dx."""
    pts = np.concatenate([x, y])
    order = np.argsort(pts, kind="stable")
    jumps = np.concatenate([wx, -wy])[order]
    diff = np.cumsum(jumps)[:-1]  # F − G on each gap between consecutive support points
    return float(np.sum(np.abs(diff) * np.diff(pts[order])))


KNOWN = {
    "goe": lambda: goe(300, np.random.default_rng(30)),
    "spiked": lambda: spiked_wigner(300, [6.0, -4.0], np.random.default_rng(31)),  # outliers converge: ghosts
    "indefinite": lambda: rotated_diagonal(
        np.concatenate([-np.geomspace(1e-3, 3.0, 150), np.geomspace(1e-4, 40.0, 150)]), np.random.default_rng(32)),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_fast_path_gauss_rules_within_jackson_bound_of_each_probe_measure(name: str) -> None:
    # Each probe's Gauss rule Q_m integrates polynomials of degree ≤ 2m − 1 exactly, so for a 1-Lipschitz f on an
    # interval of length R containing both supports, |∫f dμ_q − Q_m(f)| ≤ 2 E_{2m−1}(f) ≤ 2 · πR/(8m) (Jackson's
    # theorem: E_d(f) ≤ (π/2)·L·(R/2)/(d+1)); hence W1(Q_m, μ_q) ≤ πR/(4m) for the probe's own measure
    # μ_q = Σ_i (u_iᵀq)² δ_{λ_i} — a deterministic bound, no sampling error. The reference path (full
    # reorthogonalisation, float64) satisfies it in exact arithmetic; the fast path (no reorthogonalisation, float32
    # vectors and float32 operator) must too, up to Greenbaum's perturbation of the measure (eigenvalues spread over
    # intervals of width ~ m·eps32·‖A‖: allowance 1e3·eps32·‖A‖).
    ks = KNOWN[name]()
    lam, U = np.linalg.eigh(ks.matrix)
    R = lam[-1] - lam[0]
    m, k = 40, 3
    runs = {
        "reference": slq(ks.operator(), steps=m, n_probes=k, generator=gen(5), reorth="full",
                         accumulate_dtype=torch.float64),
        "fast": slq(ks.operator(dtype=torch.float32), steps=m, n_probes=k, generator=gen(5)),  # the defaults
        "partial": slq(ks.operator(dtype=torch.float32), steps=m, n_probes=k, generator=gen(5), reorth="partial"),
    }
    assert runs["fast"].reorth == "none" and runs["fast"].basis_dtype == "torch.float32"
    assert runs["fast"].orthogonality_loss is None and runs["reference"].orthogonality_loss.max() < 1e-12
    # partial reorthogonalisation keeps semi-orthogonality (≤ √eps32), with fewer reorthogonalisations than steps
    assert runs["partial"].orthogonality_loss.max() <= np.sqrt(np.finfo(np.float32).eps)
    assert (runs["partial"].reorthogonalisations < m).all() and (runs["reference"].reorthogonalisations == m).all()
    from numerics.lanczos import draw_probes

    Z = draw_probes(ks.n, k, generator=gen(5)).numpy()  # the same probes both runs drew
    bound = np.pi * R / (4 * m)
    slack32 = 1e3 * np.finfo(np.float32).eps * np.abs(lam).max()
    slack = {"reference": 1e3 * EPS * np.abs(lam).max(), "fast": slack32, "partial": slack32}
    for key, res in runs.items():
        s = res.spectrum
        for l in range(k):
            q = Z[:, l] / np.linalg.norm(Z[:, l])
            mu = (U.T @ q) ** 2
            w1 = _w1_discrete(s.nodes[l], s.weights[l], lam, mu)
            assert w1 <= bound + slack[key], (name, key, l, w1, bound)
    # the two paths estimate smooth functionals alike (same probes): the difference of the per-probe values is
    # bounded by the sum of the two W1 errors for a 1-Lipschitz f
    f = lambda x: np.abs(x - 0.1)  # noqa: E731
    diff = np.abs(runs["fast"].spectrum.per_probe(f) - runs["reference"].spectrum.per_probe(f))
    assert diff.max() <= 2 * bound + slack["fast"]
    # semi-orthogonality makes the partial path's rule the reference's, up to float32 rounding of T (no ghosts)
    np.testing.assert_allclose(runs["partial"].spectrum.per_probe(f), runs["reference"].spectrum.per_probe(f),
                               rtol=0, atol=1e-3 * R)


def test_fast_path_ghosts_split_weight_not_add_it() -> None:
    # Planted ghosts: a well-separated outlier converges within a few steps, after which plain Lanczos repeats it.
    # The weight on the outlier summed over all nodes near it must equal the probe's weight (u_1ᵀq)² (Greenbaum):
    # ghosts share the weight, they do not add to it.
    lam = np.concatenate([np.linspace(0.0, 1.0, 399), [30.0]])
    from numerics.operators import DiagonalOperator

    op = DiagonalOperator(lam, dtype=torch.float32)
    res = slq(op, steps=120, n_probes=2, generator=gen(8))
    s = res.spectrum
    from numerics.lanczos import draw_probes

    Z = draw_probes(lam.size, 2, generator=gen(8)).numpy()
    for l in range(2):
        near = (np.abs(s.nodes[l] - 30.0) < 1e-3) & (s.weights[l] > 0)
        assert near.sum() >= 2  # the ghosts exist (the test is not vacuous)
        want = Z[-1, l] ** 2 / np.sum(Z[:, l] ** 2)
        assert abs(s.weights[l][near].sum() - want) <= 1e-4, (s.weights[l][near], want)


def test_partial_reorthogonalisation_counts_like_full() -> None:
    # counting eigenvalues needs an orthogonal (or semi-orthogonal) basis: with m = n the partial path recovers the
    # spectrum, and a converged outlier is one node, as with full reorthogonalisation
    lam = np.concatenate([np.linspace(0.0, 1.0, 199), [30.0]])
    from numerics.operators import DiagonalOperator

    op = DiagonalOperator(lam)
    for reorth in ("partial", "full"):
        s = slq(op, steps=80, n_probes=2, generator=gen(3), reorth=reorth).spectrum
        assert (np.sum((s.nodes > 29.0) & (s.weights > 0), axis=1) == 1).all(), reorth
    small = rotated_diagonal(np.linspace(-2.0, 3.0, 40), np.random.default_rng(4))
    s = slq(small.operator(), steps=40, n_probes=2, generator=gen(4), reorth="partial").spectrum
    for l in range(2):
        np.testing.assert_allclose(np.sort(s.nodes[l]), small.eigenvalues, rtol=0, atol=1e-8)


def test_memory_budget_falls_back_to_basis_free_and_records_it() -> None:
    from numerics.lanczos import basis_bytes

    ks = goe(200, np.random.default_rng(40))
    full_need = basis_bytes(200, steps=30, n_probes=4, reorth="full", dtype=torch.float64)
    lean_need = basis_bytes(200, steps=30, n_probes=4, reorth="none", dtype=torch.float64)
    ok = slq(ks.operator(), steps=30, n_probes=4, generator=gen(1), reorth="full", memory_budget=full_need)
    assert ok.reorth == "full" and ok.warnings == () and ok.lanczos_bytes == full_need
    assert ok.to_dict()["reorthogonalisations"] == [30] * 4
    fb = slq(ks.operator(), steps=30, n_probes=4, generator=gen(1), reorth="full", memory_budget=full_need - 1)
    assert fb.reorth == "none" and fb.lanczos_bytes == lean_need and fb.orthogonality_loss is None
    assert fb.reorthogonalisations is None
    assert len(fb.warnings) == 1 and "ran reorth='none'" in fb.warnings[0]
    assert fb.to_dict()["warnings"] == list(fb.warnings) and fb.to_dict()["lanczos_bytes"] == lean_need
    # the same probes: the fallback is the basis-free run, bit for bit
    plain = slq(ks.operator(), steps=30, n_probes=4, generator=gen(1))
    np.testing.assert_array_equal(fb.spectrum.nodes, plain.spectrum.nodes)
    with pytest.raises(ValueError, match=r"memory_budget must cover the Lanczos vectors, \d+ bytes for n_probes=4"):
        slq(ks.operator(), steps=30, n_probes=4, generator=gen(1), memory_budget=lean_need - 1)
    with pytest.raises(ValueError, match="memory_budget must be an integer >= 0, got memory_budget=-1"):
        slq(ks.operator(), steps=30, n_probes=4, generator=gen(1), memory_budget=-1)
    # deflation: the eigensolver's basis is part of the budget
    d = slq(ks.operator(), steps=20, n_probes=2, generator=gen(1), deflate=2, memory_budget=10**9)
    assert d.lanczos_bytes > basis_bytes(200, steps=20, n_probes=2, reorth="none", dtype=torch.float64)


def test_slq_reports_operator_choice() -> None:
    # an operator's measured product choice travels with the result (a field, not re-derived afterwards)
    from numerics.operators import DiagonalOperator

    class Chooser(DiagonalOperator):
        hvp_path = "double-backward"
        hvp_choice = {"chosen": "double-backward", "seconds": {"double-backward": 1.0}}

    res = slq(Chooser(np.arange(1.0, 11.0)), steps=5, n_probes=2, generator=gen(0))
    assert res.hvp_path == "double-backward" and res.to_dict()["hvp_choice"]["chosen"] == "double-backward"
