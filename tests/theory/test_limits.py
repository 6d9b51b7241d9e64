"""The pruning limit: closed forms, the exact quadratic oracle (each method within its measured error band,
free never worse than flat beyond noise), monotonicity, bounds, the authors' formula, negative-eigenvalue
policies, SLQ standard errors and error inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
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
    free = pruning_limit(np.full(N, lam), w, eps)
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
# against the exact oracle (MATH.md §2 measured bands at D = 300: free worst 0.030, flat worst 0.203)
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


@settings(max_examples=15)
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
    e_free = abs(pruning_limit(lam, w, eps).kept_fraction - exact)
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
        free = pruning_limit(lam, w, eps)
        assert flat.kept_fraction <= flat.sharpness_bound + 1e-12
        assert free.kept_fraction <= free.uncompensated_bound + 1e-12
        for r in (flat, free):
            assert 0.0 <= r.kept_fraction_lower <= r.kept_fraction <= r.kept_fraction_upper <= 1.0
            assert r.kept_fraction <= r.rank_fraction + 1e-12


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
    tiny = pruning_limit(nonzero, w, 1e-9, zero_mass=0.5)
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
    exact = pruning_limit(lam, w, 0.05)
    est = pruning_limit(spec, w, 0.05)
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
    r = pruning_limit(lam, w, 0.05, n_curve=51)
    c = r.curves
    assert c.kept_fraction.shape == c.loss_increase.shape == c.R.shape == c.s.shape == (51,)
    assert np.all(np.isnan(c.s[c.kept_fraction > 0.5 + 1e-9])) and np.all(c.s[(c.kept_fraction > 0) & (c.kept_fraction < 0.5)] > 0)
    assert np.all(np.diff(c.loss_increase) <= 1e-12) and r.kept_count == math.ceil(r.kept_fraction * 200 - 1e-9)
    # n_curve=0 skips the curves and changes nothing else
    r0 = pruning_limit(lam, w, 0.05, n_curve=0)
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
