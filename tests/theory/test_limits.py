"""The pruning limit: closed forms, the exact quadratic oracle (each method within its measured error band,
free never worse than flat beyond noise), monotonicity, bounds, the authors' formula, negative-eigenvalue
policies, SLQ standard errors and error inputs."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.spectrum import Spectrum
from numerics.testing import haar_orthogonal
from theory.limits import (
    MagnitudeProfile,
    authors_pruning_ratio,
    magnitude_scaling,
    pruning_limit,
)
from theory.quadratic import QuadraticModel


def _case(kind: str, n: int, seed: int):
    rng = np.random.default_rng([seed, n, len(kind)])
    if kind == "mixed":
        n1 = int(round(0.7 * n))
        lam = np.concatenate([rng.exponential(0.05, n1), rng.exponential(5.0, n - n1)])
    elif kind == "exponential":
        lam = rng.exponential(1.0, n)
    else:  # half-zero
        lam = np.concatenate([np.zeros(n // 2), rng.exponential(2.0, n - n // 2)])
    Q = haar_orthogonal(n, rng)
    H = (Q * lam) @ Q.T
    w = 0.1 * rng.laplace(size=n)
    return lam, QuadraticModel(0.5 * (H + H.T), w), w


# ---------------------------------------------------------------------------------------------------------
def test_single_atom_closed_forms():
    # one atom λ: m_S ≡ λ, so free solves ½R(ρ)²λ = ε; flat solves ρ = λR²/(λR² + 2ε)
    lam, eps, N = 2.0, 1.0, 4
    w = np.ones(N)  # R(ρ)² = (1 − ρ)N
    free = pruning_limit(np.full(N, lam), w, eps, method="free")
    assert free.kept_fraction == pytest.approx(1 - 2 * eps / (lam * N), abs=1e-10)
    flat = pruning_limit(np.full(N, lam), w, eps, method="flat")
    # ρ(λN(1−ρ) + 2ε) = λN(1−ρ)  ⇒  λN ρ² − (2λN + 2ε) ρ + λN = 0
    a, b, c = lam * N, -(2 * lam * N + 2 * eps), lam * N
    assert flat.kept_fraction == pytest.approx((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a), abs=1e-10)
    assert free.removed_fraction == pytest.approx(1 - free.kept_fraction)
    assert free.kept_fraction == free.kept_fraction and free.removed_fraction == free.removed_fraction
    assert free.predicted_increase == pytest.approx(eps, rel=1e-8)
    assert flat.predicted_increase == pytest.approx(eps, rel=1e-8)


def test_magnitude_profile_continuous_and_exact_at_integers():
    rng = np.random.default_rng(0)
    w = rng.laplace(size=50)
    prof = MagnitudeProfile(w)
    sq = np.sort(w * w)
    for k in (0, 1, 25, 49, 50):
        assert prof.R2(k / 50) == pytest.approx(sq[: 50 - k].sum(), rel=1e-12, abs=1e-15)
    rho = np.linspace(0, 1, 2001)
    R2 = prof.R2(rho)
    assert np.all(np.diff(R2) <= 1e-15) and np.max(np.abs(np.diff(R2))) <= sq.max() * 50 / 2000 + 1e-12


# ---------------------------------------------------------------------------------------------------------
# against the exact oracle (docs/math.md §2 measured bands at D = 300: free worst 0.030, flat worst 0.203)
@pytest.mark.parametrize("kind", ["mixed", "exponential", "half-zero"])
def test_methods_within_measured_error_bands(kind):
    n = 300
    errs = {"free": [], "flat": []}
    for seed in range(2):
        lam, model, w = _case(kind, n, seed)
        curve = model.magnitude_curve()
        for eps in (0.005, 0.05, 0.5, 2.0):
            exact = curve.threshold(eps) / n
            for method in errs:
                errs[method].append(abs(pruning_limit(lam, w, eps, method=method).kept_fraction - exact))
    # bands: the measured worst errors (0.030 free / 0.203 flat at D = 300) plus the finite-D fluctuation
    # between Haar draws (≈ 0.02 at D = 300, bench/limits_synthetic.py "surrogate")
    assert max(errs["free"]) <= 0.05, errs["free"]
    assert max(errs["flat"]) <= 0.25, errs["flat"]
    assert np.mean(errs["free"]) <= np.mean(errs["flat"])


@given(
    small=st.floats(0.01, 0.5),
    large=st.floats(1.0, 10.0),
    frac_small=st.floats(0.0, 0.9),
    zero=st.sampled_from([0.0, 0.3]),
    log_eps=st.floats(-2.5, 0.3),
    seed=st.integers(0, 10_000),
)
def test_free_never_worse_than_flat_beyond_noise(small, large, frac_small, zero, log_eps, seed):
    n = 200
    rng = np.random.default_rng(seed)
    n0 = int(zero * n)
    n1 = int(frac_small * (n - n0))
    lam = np.concatenate([np.zeros(n0), rng.exponential(small, n1), rng.exponential(large, n - n0 - n1)])
    Q = haar_orthogonal(n, rng)
    H = (Q * lam) @ Q.T
    w = 0.1 * rng.laplace(size=n)
    eps = 10.0**log_eps
    exact = QuadraticModel(0.5 * (H + H.T), w).magnitude_threshold(eps).kept_fraction
    e_free = abs(pruning_limit(lam, w, eps, method="free").kept_fraction - exact)
    e_flat = abs(pruning_limit(lam, w, eps, method="flat").kept_fraction - exact)
    # noise: the finite-D fluctuation of the exact threshold between Haar draws at D = 200 (≲ 0.04)
    assert e_free <= e_flat + 0.04, (e_free, e_flat)


# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["free", "flat"])
def test_monotonicity_in_eps_magnitude_and_sharpness(method):
    rng = np.random.default_rng(3)
    lam = rng.exponential(1.0, 400)
    w = 0.1 * rng.laplace(size=400)
    by_eps = [pruning_limit(lam, w, e, method=method).kept_fraction for e in (0.001, 0.01, 0.1, 1.0, 10.0)]
    assert all(a >= b for a, b in zip(by_eps, by_eps[1:])) and by_eps[0] > by_eps[-1]
    by_mag = [r.kept_fraction for r in magnitude_scaling(lam, w, 0.05, method=method)]
    assert all(a <= b for a, b in zip(by_mag, by_mag[1:])) and by_mag[0] < by_mag[-1]
    by_sharp = [pruning_limit(c * lam, w, 0.05, method=method).kept_fraction for c in (0.25, 1.0, 4.0)]
    assert all(a <= b for a, b in zip(by_sharp, by_sharp[1:])) and by_sharp[0] < by_sharp[-1]


def test_bounds_and_bands():
    rng = np.random.default_rng(4)
    for _ in range(10):
        lam = rng.exponential(rng.uniform(0.1, 3), 300) * (rng.uniform(size=300) < rng.uniform(0.4, 1))
        w = rng.uniform(0.02, 0.3) * rng.laplace(size=300)
        eps = float(10 ** rng.uniform(-3, 0.5))
        flat = pruning_limit(lam, w, eps, method="flat")
        free = pruning_limit(lam, w, eps, method="free")
        assert flat.kept_fraction <= flat.sharpness_bound + 1e-12
        assert free.kept_fraction <= free.uncompensated_bound + 1e-12
        for r in (flat, free):
            assert 0.0 <= r.kept_fraction_lower <= r.kept_fraction <= r.kept_fraction_upper <= 1.0
            assert r.kept_fraction <= r.rank_fraction + 1e-12


# ---------------------------------------------------------------------------------------------------------
# bounds, bands and the standard error pinned to closed-form cases (independent scipy references, 1e-10)
# ---------------------------------------------------------------------------------------------------------
def _flat_one_atom(lam: float, N: int, eps: float) -> float:
    """One atom λ, N unit weights (R² = (1 − ρ)N): ρ(λN(1−ρ) + 2ε) = λN(1−ρ), the smaller quadratic root."""
    a, b = lam * N, -(2 * lam * N + 2 * eps)
    return (-b - math.sqrt(b * b - 4 * a * a)) / (2 * a)


@pytest.mark.parametrize("lam, N, eps", [(2.0, 400, 200.0), (0.5, 2500, 312.5), (7.0, 900, 100.0), (0.3, 64, 1.0)])
def test_one_atom_bounds_and_bands_pinned(lam, N, eps):
    """One atom: m_S ≡ λ, so the free ρ* and the uncompensated bound are both 1 − 2ε/(λN); Jensen is an equality,
    so the sharpness bound at the flat ρ* is that ρ*; the bands are ρ* − 1/N − a_η/√N and ρ* + a_η/√N."""
    spec, w = np.full(N, lam), np.ones(N)
    free = pruning_limit(spec, w, eps, method="free", n_curve=0)
    flat = pruning_limit(spec, w, eps, method="flat", n_curve=0)
    rho_free, rho_flat = 1 - 2 * eps / (lam * N), _flat_one_atom(lam, N, eps)
    assert free.kept_fraction == pytest.approx(rho_free, abs=1e-10)
    assert free.uncompensated_bound == pytest.approx(rho_free, abs=1e-10)
    assert flat.kept_fraction == pytest.approx(rho_flat, abs=1e-10)
    assert flat.sharpness_bound == pytest.approx(rho_flat, abs=1e-10)
    t = lam * (1 - rho_free) * N  # Tr(H)R²/D at the free ρ*
    assert free.sharpness_bound == pytest.approx(t / (t + 2 * eps), abs=1e-10)
    a = math.sqrt(8 * math.log(4 / 0.01))
    for r, rho in ((free, rho_free), (flat, rho_flat)):
        assert r.kept_fraction_lower == pytest.approx(max(rho - 1 / N - a / math.sqrt(N), 0.0), abs=1e-10)
        assert r.kept_fraction_upper == pytest.approx(min(rho + a / math.sqrt(N), 1.0), abs=1e-10)


def _two_atom_s(rho: float, a: float, b: float, p: float) -> float:
    """The positive root of ρs² + (ρ(a + b) − pa − (1 − p)b)s + (ρ − 1)ab = 0, i.e. p a/(a+s) + (1−p) b/(b+s) = ρ."""
    B = rho * (a + b) - p * a - (1 - p) * b
    return (-B + math.sqrt(B * B - 4 * rho * (rho - 1) * a * b)) / (2 * rho)


@pytest.mark.parametrize("a, b, N, eps", [(0.5, 4.0, 600, 60.0), (1.0, 9.0, 200, 5.0), (0.05, 2.0, 1000, 3.0)])
def test_two_atom_free_threshold_and_bounds_pinned(a, b, N, eps):
    """Two atoms (half each), unit weights: ½R²ρs/(1−ρ) = ½Nρ s(ρ) = ε with the quadratic s(ρ); the uncompensated
    bound ½(1 − ρ)N·(a + b)/2 = ε; the sharpness bound at ρ*."""
    from scipy.optimize import brentq

    lam = np.where(np.arange(N) < N // 2, a, b)
    r = pruning_limit(lam, np.ones(N), eps, method="free", n_curve=0)
    rho = brentq(lambda x: 0.5 * N * x * _two_atom_s(x, a, b, 0.5) - eps, 1e-12, 1 - 1e-12, xtol=1e-15)
    assert r.kept_fraction == pytest.approx(rho, abs=1e-10)
    assert r.s == pytest.approx(_two_atom_s(rho, a, b, 0.5), rel=1e-8)
    mean = (a + b) / 2
    assert r.uncompensated_bound == pytest.approx(max(1 - 2 * eps / (N * mean), 0.0), abs=1e-10)
    t = mean * (1 - rho) * N
    assert r.sharpness_bound == pytest.approx(t / (t + 2 * eps), abs=1e-10)


@pytest.mark.parametrize("method", ["flat", "free"])
def test_delta_method_stderr_pinned(method):
    """Two probes with one atom each (λ₁ = 1, λ₂ = 1.2), unit weights: per-probe values and derivatives in closed
    form. flat: se(T)/(1 − T'), T_l = λ_l R²/(λ_l R² + 2ε), R² = (1 − ρ)N; free: se(g)/(s E[λ/(λ+s)²])/|d log Δ/dρ|
    with d log Δ/dρ = 1/ρ + s'/s (the (1 − ρ) factors cancel), s' = −1/E[λ/(λ+s)²]. Tolerance: the library's
    central differences (h = 1e-5) are accurate to ≈ 1e-9 relative at ρ* ≈ 0.6."""
    N, eps, lams = 900, 198.0, np.array([1.0, 1.2])
    spec = Spectrum(lams[:, None], np.ones((2, 1)), N)
    r = pruning_limit(spec, np.ones(N), eps, method=method, n_curve=0)
    rho = r.kept_fraction
    R2 = (1 - rho) * N
    if method == "flat":
        T = lams * R2 / (lams * R2 + 2 * eps)
        dT = np.mean(2 * eps * lams * (-N) / (lams * R2 + 2 * eps) ** 2)
        want = abs(T[0] - T[1]) / 2 / (1 - dT)
    else:
        s = r.s
        g = lams / (lams + s)
        e2 = np.mean(lams / (lams + s) ** 2)
        want = abs(g[0] - g[1]) / 2 / (s * e2) / abs(1 / rho - 1 / (e2 * s))
    assert r.stderr == pytest.approx(want, rel=1e-7)
    z = 2.0
    a = math.sqrt(8 * math.log(400))
    assert r.kept_fraction_lower == pytest.approx(rho - 1 / N - z * want - a / 30, abs=1e-9)
    assert r.kept_fraction_upper == pytest.approx(rho + z * want + a / 30, abs=1e-9)


@pytest.mark.parametrize("policy, atoms, counts", [("abs", (2.0, 1.0, 4.0), (20, 50, 30)), ("clip", (0.0, 1.0, 4.0), (20, 50, 30)),
                                                   ("drop", (1.0, 4.0), (50, 30))])
def test_negative_policies_pinned(policy, atoms, counts):
    """Each policy equals the limit of the measure it defines: abs folds λ = −2 to 2, clip maps it to 0, drop
    removes it and renormalises (independent brentq on the three-atom measure, unit weights)."""
    from scipy.optimize import brentq

    lam = np.array([-2.0] * 20 + [1.0] * 50 + [4.0] * 30)
    N, eps = 100, 1.5
    p = np.array(counts, dtype=float) / sum(counts)
    at = np.array(atoms)

    def s_of(rho):  # E[λ/(λ + s)] = ρ, solved in log s
        return math.exp(brentq(lambda u: float(np.sum(p * at / (at + math.exp(u)))) - rho, -700, 700, xtol=1e-14, rtol=1e-15))

    rank = float(np.sum(p[at > 0]))
    rho = brentq(lambda x: 0.5 * N * x * s_of(x) - eps, 1e-9, rank - 1e-12, xtol=1e-15)
    assert pruning_limit(lam, np.ones(N), eps, method="free", negative=policy, n_curve=0).kept_fraction == pytest.approx(rho, abs=1e-10)


@pytest.mark.parametrize("lam, N, eps", [(2.0, 4, 1.0), (0.37, 50, 0.2), (5.0, 400, 0.9)])
def test_haar_magnitude_limit_pinned(lam, N, eps):
    """One atom, unit weights: ½(1 − ρ)Nλ = ε; the Haar value is the uncompensated bound of pruning_limit for a
    non-negative spectrum, uses the signed mean otherwise, and propagates se(m) by 2ε/m²·se(m)/|dR²/dρ|."""
    from theory.limits import haar_magnitude_limit

    r = haar_magnitude_limit(np.full(N, lam), np.ones(N), eps)
    assert r.kept_fraction == pytest.approx(1 - 2 * eps / (lam * N), abs=1e-10)
    assert r.predicted_increase == pytest.approx(eps, rel=1e-9) and r.stderr == 0.0
    rng = np.random.default_rng(N)
    ev, w = rng.exponential(lam, N), 0.1 * rng.laplace(size=N)
    assert haar_magnitude_limit(ev, w, eps / N).kept_fraction == pytest.approx(
        pruning_limit(ev, w, eps / N, n_curve=0).uncompensated_bound, abs=1e-10)
    signed = np.concatenate([ev, -ev[: N // 4]])[:N]
    assert haar_magnitude_limit(signed, w, eps / N).mean_eigenvalue == pytest.approx(float(np.mean(signed)), rel=1e-13)
    assert haar_magnitude_limit(-np.abs(ev), w, eps).kept_fraction == 0.0
    spec = Spectrum(np.array([[lam], [1.5 * lam]]), np.ones((2, 1)), 400)
    m, m_se = 1.25 * lam, 0.25 * lam
    eps2 = 0.5 * 0.5 * 400 * m  # ρ* = ½
    rs = haar_magnitude_limit(spec, np.ones(400), eps2)
    assert rs.kept_fraction == pytest.approx(0.5, abs=1e-10)
    assert rs.stderr == pytest.approx(2 * eps2 / m**2 * m_se / 400, rel=1e-8)


def test_zero_mass_input_and_rank_fraction():
    rng = np.random.default_rng(5)
    lam = rng.exponential(2.0, 300)
    w = 0.1 * rng.laplace(size=600)
    both = np.concatenate([np.zeros(300), lam])
    # the measure of the non-zero part of a 600-dimensional Hessian, plus the zero mass as an input
    nonzero = Spectrum(lam[None, :], np.full((1, 300), 1 / 300), 600, exact=True)
    for method in ("free", "flat"):
        a = pruning_limit(nonzero, w, 0.05, method=method, zero_mass=0.5)
        b = pruning_limit(both, w, 0.05, method=method)
        assert a.kept_fraction == pytest.approx(b.kept_fraction, abs=1e-10)
    tiny = pruning_limit(nonzero, w, 1e-9, zero_mass=0.5, method="free")
    assert tiny.kept_fraction <= 0.5 + 1e-12 and tiny.rank_fraction == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------------------
def test_flat_agrees_with_authors_formula_without_rounding_and_grid():
    rng = np.random.default_rng(6)
    lam = rng.exponential(1.0, 500)
    w = rng.laplace(size=500)  # ‖w‖ ≈ 30, so integer rounding of R is a visible effect
    spec = Spectrum.from_eigenvalues(lam)
    for eps, z in ((0.05, 0.0), (0.5, 0.2)):
        ours = pruning_limit(lam, w, eps, method="flat", zero_mass=z)
        theirs = authors_pruning_ratio(spec.nodes, spec.weights, w, eps, zero_fraction=z, round_R=False, grid=False)
        # the only remaining difference: their sweep resolution 1/1000 in the removed fraction
        assert theirs.kept_fraction == pytest.approx(ours.kept_fraction, abs=1.5e-3)
    # with their integer rounding and grid smoothing the answer moves (the distortion we removed)
    orig = authors_pruning_ratio(spec.nodes, spec.weights, 0.1 * w, 0.05, num_bins=20_000)
    assert 0.0 <= orig.kept_fraction <= 1.0 and orig.grid and orig.round_R


def test_authors_sweep_uses_their_ceil_count():
    """Their get_sparse_model removes max(1, ⌈(i/sweep)·N⌉) weights at level i: R_i² is the sum of that many
    smallest squares (exact rational ceilings; N = 333 makes (i/1000)·N non-integer at most levels)."""
    rng = np.random.default_rng(9)
    N = 333
    w = rng.laplace(size=N)
    res = authors_pruning_ratio(np.array([[1.0]]), np.array([[1.0]]), w, 0.05, round_R=False, grid=False, sweep=1000)
    sq = np.sort(w * w)
    for i in (0, 1, 2, 3, 7, 100, 501, 999):
        n_removed = max(1, math.ceil(Fraction(i, 1000) * N))
        assert res.R_used[i] == pytest.approx(math.sqrt(sq[:n_removed].sum()), rel=1e-12), i


# ---------------------------------------------------------------------------------------------------------
def test_negative_policies_on_indefinite_spectrum():
    rng = np.random.default_rng(7)
    lam = rng.exponential(1.0, 400)
    lam[:20] *= -1  # 5 % negative mass
    w = 0.1 * rng.laplace(size=400)
    for method in ("free", "flat"):
        res = {p: pruning_limit(lam, w, 0.05, method=method, negative=p) for p in ("abs", "clip", "drop")}
        assert all(r.negative_mass == pytest.approx(0.05) for r in res.values())
        # clip turns negative curvature into zero curvature: fewer weights need to be kept
        assert res["clip"].kept_fraction <= res["abs"].kept_fraction and res["clip"].kept_fraction <= res["drop"].kept_fraction
        assert res["clip"].rank_fraction == pytest.approx(0.95)
    # abs equals the spectrum with the signs folded
    assert pruning_limit(lam, w, 0.05).kept_fraction == pytest.approx(pruning_limit(np.abs(lam), w, 0.05).kept_fraction)
    with pytest.raises(ValueError, match="no spectral mass"):
        pruning_limit(-np.ones(4), np.ones(4), 0.1, negative="drop")


def test_slq_spectrum_and_delta_method_stderr():
    from numerics.operators import DenseOperator
    from numerics.slq import slq

    lam, model, w = _case("exponential", 300, 0)
    spec = slq(DenseOperator(torch.from_numpy(model.H)), steps=40, n_probes=12, generator=torch.Generator().manual_seed(0)).spectrum
    exact = pruning_limit(lam, w, 0.05, method="free")
    est = pruning_limit(spec, w, 0.05, method="free")
    assert 0 < est.stderr < 0.05 and est.settings["stderr_method"] == "delta"
    assert abs(est.kept_fraction - exact.kept_fraction) <= 4 * est.stderr + 2e-3
    # the delta-method error bar agrees with the spread of per-probe thresholds (within a factor 3)
    per = [
        pruning_limit(Spectrum(spec.nodes[i : i + 1], spec.weights[i : i + 1], spec.dim), w, 0.05).kept_fraction
        for i in range(spec.n_probes)
    ]
    spread = np.std(per, ddof=1) / math.sqrt(len(per))
    assert est.stderr / 3 <= spread <= 3 * est.stderr
    single = pruning_limit(Spectrum(spec.nodes[:1], spec.weights[:1], spec.dim), w, 0.05)
    assert math.isinf(single.stderr) and single.kept_fraction_lower == 0.0


def test_curves_for_plotting():
    rng = np.random.default_rng(8)
    lam = np.concatenate([np.zeros(100), rng.exponential(1.0, 100)])
    w = 0.1 * rng.laplace(size=200)
    r = pruning_limit(lam, w, 0.05, method="free", n_curve=51)
    c = r.curves
    assert c.kept_fraction.shape == c.loss_increase.shape == c.R.shape == c.s.shape == (51,)
    assert np.all(np.isnan(c.s[c.kept_fraction > 0.5 + 1e-9])) and np.all(c.s[(c.kept_fraction > 0) & (c.kept_fraction < 0.5)] > 0)
    assert np.all(np.diff(c.loss_increase) <= 1e-12)
    # kept_count is ⌈ρ*N⌉ of the exact binary value of ρ* (a generic root, far from a multiple of 1/N)
    exact = Fraction(r.kept_fraction) * 200
    assert min(abs(exact - math.floor(exact)), abs(math.ceil(exact) - exact)) > Fraction(1, 10**6)
    assert r.kept_count == math.ceil(exact) and (r.kept_count - 1) / 200 < r.kept_fraction <= r.kept_count / 200
    # n_curve=0 skips the curves and changes nothing else
    r0 = pruning_limit(lam, w, 0.05, method="free", n_curve=0)
    assert r0.curves is None and (r0.kept_fraction, r0.kept_fraction_lower, r0.kept_fraction_upper, r0.stderr) == (r.kept_fraction, r.kept_fraction_lower, r.kept_fraction_upper, r.stderr)
    with pytest.raises(ValueError, match="n_curve must be 0 \\(no curves\\) or an integer >= 2, got n_curve=1"):
        pruning_limit(lam, np.ones(200), 0.05, n_curve=1)


# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"eps": 0.0}, ValueError, "eps must be a finite number > 0, got eps=0.0"),
        ({"eps": -1.0}, ValueError, "eps must be a finite number > 0, got eps=-1.0"),
        ({"eps": float("nan")}, ValueError, "eps must be a finite number > 0, got eps=nan"),
        ({"eps": "1"}, TypeError, "eps must be a real number"),
        ({"weights": []}, ValueError, "weights must be non-empty"),
        ({"weights": [1.0, np.nan, 1.0, 1.0]}, ValueError, "weights must be finite, got 1 NaN/inf"),
        ({"spectrum": [1.0, np.nan, 1.0, 1.0]}, ValueError, "spectrum eigenvalues must be finite, got 1"),
        ({"spectrum": []}, ValueError, "spectrum must be non-empty"),
        ({"spectrum": [1.0, 1.0, 1.0]}, ValueError, "D=3 < N=4"),
        ({"spectrum": [1.0] * 5}, ValueError, "D=5 but there are N=4"),
        ({"method": "exact"}, ValueError, "method must be one of"),
        ({"negative": "fold"}, ValueError, "negative must be one of"),
        ({"zero_mass": 1.0}, ValueError, "zero_mass must be a finite number >= 0 and < 1, got zero_mass=1.0"),
        ({"eta": 0.0}, ValueError, "eta"),
        ({"hessian_space": "weights"}, ValueError, "hessian_space must be one of"),
    ],
)
def test_error_inputs(kwargs, exc, match):
    args = {"spectrum": [1.0, 2.0, 3.0, 4.0], "weights": [1.0, -1.0, 0.5, 0.2], "eps": 0.1}
    args.update(kwargs)
    spectrum, weights, eps = args.pop("spectrum"), args.pop("weights"), args.pop("eps")
    with pytest.raises(exc, match=match):
        pruning_limit(spectrum, weights, eps, **args)


def test_spectrum_object_with_nan_is_refused_and_larger_hessian_allowed():
    with pytest.raises(ValueError, match="finite"):
        Spectrum(np.array([[1.0, np.nan]]), np.array([[0.5, 0.5]]), 2)
    r = pruning_limit(np.ones(6), np.ones(4), 0.1, hessian_space="all")
    assert r.D == 6 and r.N == 4
