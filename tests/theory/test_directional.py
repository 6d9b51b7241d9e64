"""Tests of :mod:`theory.directional`: projector, weighted lasso, constrained form (ADMM vs cvxpy), and the
docs/math.md §4 verification that deterministic gRDA converges to the constrained form in a quadratic valley."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import torch

import theory.directional as dmod
from nets.grda import grda_update, threshold_closed_form
from theory.directional import (
    FlatSubspace,
    constrained_dp_admm,
    constrained_dp_cvxpy,
    flat_subspace,
    flat_subspace_at_time,
    kkt_residual,
    projection_ratio,
    support_agreement,
    tau_sweep,
    valley_comparison,
    weighted_lasso_dp,
    weighted_lasso_limit,
)

from tests.theory.tolerances import CLARABEL_TIGHT, cvx_point_tol

EPS = np.finfo(np.float64).eps


def valley(seed=0, d=8, r=3, lo=10.0, hi=50.0):
    """Quadratic valley f(w) = ½(w − w*)ᵀH(w − w*), H of rank r with eigenvalues in [lo, hi] and a Haar
    eigenbasis. Gradient descent from w0 converges to w^SGD = P₀w0 + P₁w*."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    H = Q[:, :r] @ np.diag(np.linspace(lo, hi, r)) @ Q[:, :r].T
    w_star, w0 = rng.standard_normal(d), rng.standard_normal(d)
    fs = flat_subspace(H)
    return H, w_star, w0, fs, fs.project_flat(w0) + fs.project_sharp(w_star)


def run_grda(H, w_star, w0, gamma, t, lam, mu=0.55, noise=0.0, replicates=1, seed=0):
    """nets.grda's functional core on the valley for N = t/γ steps (float64), with c chosen so that the final
    threshold c·γ^{μ+½}·N^μ equals λ. Columns are independent replicates (gradient noise σ = ``noise``)."""
    N = int(round(t / gamma))
    c = lam / (gamma ** (mu + 0.5) * N**mu)
    g = torch.Generator().manual_seed(seed)
    Ht, ws = torch.tensor(H), torch.tensor(w_star)[:, None]
    w = torch.tensor(w0)[:, None].repeat(1, replicates).contiguous()
    a = w.clone()
    for n in range(1, N + 1):
        grad = Ht @ (w - ws)
        if noise:
            grad += noise * torch.randn(grad.shape, generator=g, dtype=torch.float64)
        grda_update([w], [grad], [a], lr=gamma, threshold=threshold_closed_form(n, gamma, c, mu))
    assert threshold_closed_form(N, gamma, c, mu) == pytest.approx(lam, rel=1e-12)
    return w.numpy()


# ---------------------------------------------------------------------------------------------------------
# Flat subspace
# ---------------------------------------------------------------------------------------------------------
def test_flat_subspace_of_known_spectrum():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    lam = np.array([5.0, 2.0, 1e-3, 1e-7, 0.0, 0.0, -1e-7, -0.5, 1.0, 3.0])
    H = Q @ np.diag(lam) @ Q.T
    fs = flat_subspace(H, tau=1e-6)
    assert fs.k == 4 and fs.lambda_max == pytest.approx(5.0, rel=1e-12)
    expected = Q[:, np.abs(lam) <= 5e-6]
    np.testing.assert_allclose(fs.P0, expected @ expected.T, atol=1e3 * EPS)
    np.testing.assert_allclose(fs.P0 + fs.P1, np.eye(10), atol=1e2 * EPS)
    np.testing.assert_allclose(fs.P0 @ fs.P0, fs.P0, atol=1e2 * EPS)
    v = rng.standard_normal(10)
    np.testing.assert_allclose(fs.project_flat(v) + fs.project_sharp(v), v, atol=1e2 * EPS)
    assert flat_subspace(H, tau=0.5).k == 8  # |λ| ≤ 2.5 except 5.0 and 3.0


@pytest.mark.parametrize(
    "H,kw,exc,match",
    [
        (np.ones((2, 3)), {}, ValueError, r"H must be a non-empty square matrix, got shape \(2, 3\)"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), {}, ValueError, "H must be symmetric"),
        (np.array([[np.nan, 0], [0, 1.0]]), {}, ValueError, "H must be finite"),
        (-np.eye(2), {}, ValueError, "H must have a positive eigenvalue"),
        (np.eye(2), dict(tau=1.5), ValueError, r"tau must be a finite number >= 0 and < 1, got tau=1.5"),
        (np.eye(2), dict(tau=float("nan")), ValueError, "tau must be a finite number"),
        (np.eye(2).astype(complex), {}, TypeError, "H must be a real matrix"),
    ],
)
def test_flat_subspace_errors(H, kw, exc, match):
    with pytest.raises(exc, match=match):
        flat_subspace(H, **kw)


def test_input_errors_of_solvers():
    fs = flat_subspace(np.diag([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"w_sgd must be a vector of length 2, got shape \(3,\)"):
        weighted_lasso_dp(np.ones(3), fs, 0.1)
    with pytest.raises(ValueError, match="lam must be a finite number >= 0, got lam=-1"):
        constrained_dp_admm(np.ones(2), fs, -1)
    with pytest.raises(TypeError, match="flat must be a FlatSubspace"):
        constrained_dp_admm(np.ones(2), np.eye(2), 0.1)
    with pytest.raises(ValueError, match="w_sgd must be finite"):
        constrained_dp_cvxpy(np.array([np.inf, 1.0]), fs, 0.1)
    with pytest.raises(ValueError, match="rho must be a finite number > 0, got rho=0"):
        constrained_dp_admm(np.ones(2), fs, 0.1, rho=0)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1, got max_iter=0"):
        constrained_dp_admm(np.ones(2), fs, 0.1, max_iter=0)
    with pytest.raises(ValueError, match="delta is zero"):
        projection_ratio(np.zeros(2), np.eye(2)[:, :1])
    with pytest.raises(ValueError, match=r"V must be \(d, k\) and delta \(d,\)"):
        projection_ratio(np.ones(3), np.eye(2))


# ---------------------------------------------------------------------------------------------------------
# Weighted lasso and constrained form
# ---------------------------------------------------------------------------------------------------------
def test_weighted_lasso_equals_constrained_form_before_any_coordinate_reaches_zero():
    """docs/math.md §4: the two agree until a coordinate reaches 0 (then both equal w^SGD − λP₀ sign(w^SGD))."""
    H, _, _, fs, w_sgd = valley(0)
    s = np.sign(w_sgd) * fs.project_flat(np.sign(w_sgd))
    lam_first_zero = np.min(np.abs(w_sgd)[s > 0] / s[s > 0])
    for lam in (0.1 * lam_first_zero, 0.9 * lam_first_zero):
        wl = weighted_lasso_dp(w_sgd, fs, lam)
        cf = constrained_dp_admm(w_sgd, fs, lam)
        np.testing.assert_allclose(wl, w_sgd - lam * fs.project_flat(np.sign(w_sgd)), atol=1e2 * EPS)
        np.testing.assert_allclose(cf.w, wl, atol=1e-12)
    # beyond the first crossing the two differ (the weighted lasso ignores the constraint)
    lam = 3 * lam_first_zero
    with pytest.warns(UserWarning, match="exceeds weighted_lasso_limit"):
        wl = weighted_lasso_dp(w_sgd, fs, lam)
    cf = constrained_dp_admm(w_sgd, fs, lam)
    assert np.linalg.norm(wl - cf.w) > 1e-3
    assert np.linalg.norm(fs.project_sharp(cf.w - w_sgd)) <= 1e-12


def test_weighted_lasso_matches_cvxpy_when_weights_are_nonnegative():
    import cvxpy as cp

    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    fs = flat_subspace(U[:, :9] @ np.diag(np.linspace(1, 3, 9)) @ U[:, :9].T)
    w_sgd = rng.standard_normal(12)
    s = np.sign(w_sgd) * fs.project_flat(np.sign(w_sgd))
    s_pos = np.maximum(s, 0)  # the convex case: compare the formula on coordinates with s_j >= 0
    keep = s >= 0
    x = cp.Variable(int(keep.sum()))
    lam = 0.4
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - w_sgd[keep]) + lam * cp.sum(cp.multiply(s_pos[keep], cp.abs(x)))))
    prob.solve(solver="CLARABEL", **CLARABEL_TIGHT)
    assert prob.status == "optimal", prob.status
    with pytest.warns(UserWarning, match="exceeds weighted_lasso_limit"):  # the formula is still its closed form
        wl = weighted_lasso_dp(w_sgd, fs, lam)
    # ½‖x − w‖² + (convex) is strongly convex with modulus 1; tolerance from the solver's gap at the input scale
    tol = cvx_point_tol(float(np.linalg.norm(w_sgd)), objective=prob.value, modulus=1.0, tol=CLARABEL_TIGHT)
    np.testing.assert_allclose(wl[keep], x.value, rtol=0, atol=tol)


@pytest.mark.parametrize("seed,d,k,lam", [(0, 8, 5, 0.3), (1, 30, 20, 0.2), (2, 30, 6, 0.5), (3, 50, 40, 0.05)])
def test_admm_matches_cvxpy(seed, d, k, lam):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    H = Q[:, k:] @ np.diag(rng.uniform(1, 10, d - k)) @ Q[:, k:].T
    fs = flat_subspace(H)
    assert fs.k == k
    w_sgd = rng.standard_normal(d)
    cv = constrained_dp_cvxpy(w_sgd, fs, lam)
    ad = constrained_dp_admm(w_sgd, fs, lam)
    assert cv.converged and cv.status == "optimal"
    assert ad.converged and ad.polished and ad.iterations < 20_000
    assert 0 < ad.support.sum() < d  # the problem has active constraints
    # cvxpy/Clarabel at 1e-12 tolerances on ½‖z‖² + λ‖w‖₁ (modulus 1); the polished ADMM answer is exact to
    # rounding; support_tol of constrained_dp_cvxpy zeroes entries below 1e-7·max(1, ‖w^SGD‖_∞)
    tol = cvx_point_tol(float(np.linalg.norm(w_sgd)), objective=cv.objective, modulus=1.0, tol=CLARABEL_TIGHT)
    np.testing.assert_allclose(ad.w, cv.w, rtol=0, atol=max(tol, 1e-7 * max(1, np.abs(w_sgd).max())))
    assert np.array_equal(ad.support, cv.support)
    assert ad.objective <= cv.objective + 1e-10
    for v in ad.kkt.values():
        assert v <= 1e3 * EPS * d
    assert ad.primal_residual <= 1e-8 and np.isfinite(ad.dual_residual) and ad.history is not None


@pytest.mark.parametrize("rho", [0.2, 5.0])
def test_unpolished_admm_iteration_converges_to_the_solution(rho):
    """The ADMM iteration itself (no polish, fixed penalty ρ ≠ 1, so the prox threshold λ/ρ matters) reaches the
    polished solution: its stopping rule bounds the residuals by eps_abs√d + eps_rel‖·‖ = 1e-13·O(1)."""
    _, _, _, fs, w_sgd = valley(2)
    ref = constrained_dp_admm(w_sgd, fs, 0.3)
    assert ref.polished
    raw = constrained_dp_admm(w_sgd, fs, 0.3, rho=rho, adaptive_rho=False, polish=False, eps_abs=1e-13, eps_rel=1e-13,
                              max_iter=200_000)
    assert raw.converged and not raw.polished
    np.testing.assert_allclose(raw.w, ref.w, rtol=0, atol=1e-9)


def test_admm_reports_non_convergence():
    _, _, _, fs, w_sgd = valley(0)
    res = constrained_dp_admm(w_sgd, fs, 0.3, max_iter=2, polish=False, adaptive_rho=False)
    assert not res.converged and res.status == "max_iter reached" and res.iterations == 2
    assert not res.polished and res.kkt["feasibility"] > 0


def test_kkt_residual_detects_wrong_points():
    _, _, _, fs, w_sgd = valley(1)
    sol = constrained_dp_admm(w_sgd, fs, 0.3)
    assert max(sol.kkt.values()) <= 1e-12
    bad = kkt_residual(sol.w * 1.01, w_sgd, fs, 0.3)
    assert max(bad.values()) > 1e-4
    assert kkt_residual(w_sgd, w_sgd, fs, 0.3)["stationarity"] > 1e-2  # w^SGD is not optimal for λ > 0


# ---------------------------------------------------------------------------------------------------------
# Verification (issue 6, requirement 5): gRDA in a quadratic valley converges to the constrained form
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [1e-2, 1e-3])
def test_deterministic_grda_matches_constrained_form(gamma):
    H, w_star, w0, fs, w_sgd = valley(0)
    assert fs.k == 5  # d = 8, rank 3
    lam = 0.3
    ref = constrained_dp_admm(w_sgd, fs, lam)
    assert ref.converged and ref.polished and 0 < ref.support.sum() < 8
    w = run_grda(H, w_star, w0, gamma, t=20.0, lam=lam)[:, 0]
    rel = np.linalg.norm(w - ref.w) / np.linalg.norm(ref.w)
    off_valley = np.linalg.norm(fs.project_sharp(w - w_sgd)) / np.linalg.norm(w_sgd)
    # measured: rel ≈ 4.3e-4 and off-valley ≈ 3.3e-4 for both γ: the residual is the lag behind the growing
    # threshold, ≈ μ/(λ_min t) relative (λ_min = 10, t = 20), independent of γ.
    assert rel <= 1e-3
    assert off_valley <= 1e-3
    assert np.array_equal(w != 0, ref.support)


def test_grda_error_under_gradient_noise_shrinks_like_sqrt_gamma():
    """Fixed time t = Nγ and final threshold λ; gradient noise σ = 0.1. The dual sum random-walks in the flat
    directions with variance γ t σ² (and the sharp ones fluctuate with variance ∝ γ), so the RMS error over
    replicates scales like √γ. The log-log slope over γ ∈ {1.6e-2, 4e-3, 1e-3} is checked against 0.5 within
    0.15 (≈ 3 standard errors of the slope from 64 replicates; measured slope ≈ 0.47)."""
    H, w_star, w0, fs, w_sgd = valley(0)
    lam = 0.3
    ref = constrained_dp_admm(w_sgd, fs, lam).w
    gammas = np.array([1.6e-2, 4e-3, 1e-3])
    rmse, se = [], []
    for i, gamma in enumerate(gammas):
        W = run_grda(H, w_star, w0, gamma, t=20.0, lam=lam, noise=0.1, replicates=64, seed=10 + i)
        e2 = (np.linalg.norm(W - ref[:, None], axis=0) / np.linalg.norm(ref)) ** 2
        rmse.append(np.sqrt(e2.mean()))
        se.append(e2.std(ddof=1) / np.sqrt(e2.size) / (2 * rmse[-1]))  # delta method
    rmse = np.array(rmse)
    slope = np.polyfit(np.log(gammas), np.log(rmse), 1)[0]
    assert abs(slope - 0.5) <= 0.15, (slope, rmse, se)
    assert np.all(np.diff(rmse) < 0)
    # normalised errors err/√γ agree within 3 standard errors of their differences (plus 15 % model slack)
    norm = rmse / np.sqrt(gammas)
    norm_se = np.array(se) / np.sqrt(gammas)
    assert np.ptp(norm) <= 3 * np.sqrt(2) * norm_se.max() + 0.15 * norm.mean()


# ---------------------------------------------------------------------------------------------------------
def test_projection_ratio_of_random_vectors_is_sqrt_k_over_d():
    rng = np.random.default_rng(0)
    d, k = 2000, 10
    V, _ = np.linalg.qr(rng.standard_normal((d, k)))
    r = np.array([projection_ratio(rng.standard_normal(d), V) for _ in range(200)])
    # E r² = k/d exactly for isotropic δ; 200 samples, 4 standard errors
    assert abs(np.mean(r**2) - k / d) <= 4 * np.std(r**2, ddof=1) / np.sqrt(r.size)


def test_status_labels_and_doctests():
    assert "reconstructed" in dmod.STATUS["weighted_lasso_dp"]
    assert "ours" in dmod.STATUS["constrained_dp"]
    _, _, _, fs, w_sgd = valley(0)
    assert isinstance(fs, FlatSubspace)
    assert constrained_dp_admm(w_sgd, fs, 0.1).method_status == dmod.STATUS["constrained_dp"]
    res = doctest.testmod(dmod)
    assert res.attempted >= 4 and res.failed == 0


# ---------------------------------------------------------------------------------------------------------
# Issue 13: the flat subspace at training time t, the weighted lasso's limit, noise, and OBS
# ---------------------------------------------------------------------------------------------------------
def test_flat_subspace_at_time_cuts_at_one_over_t():
    H = np.diag([50.0, 1.0, 0.2, 0.04, 0.0])
    for t, k in ((2.0, 3), (20.0, 2), (200.0, 1)):  # |λ| <= 1/t: 0.5, 0.05, 0.005
        fs = flat_subspace_at_time(H, t)
        assert fs.tau == pytest.approx(1.0 / (50.0 * t)) and fs.k == k
    assert flat_subspace_at_time(H, 20.0, multiplier=5.0).k == 3  # |λ| <= 0.25
    with pytest.raises(ValueError, match="t must be a finite number > 0, got t=0.0"):
        flat_subspace_at_time(H, 0.0)


def no_gap_valley(seed, d=8):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (Q * np.geomspace(1e-3, 50.0, d)) @ Q.T, rng.standard_normal(d), rng.standard_normal(d)


def test_time_cut_beats_the_default_cut_without_a_spectral_gap():
    """Small nonzero eigenvalues and no gap (issue 13): the default τ = 1e-6 treats slow-but-moving directions
    as flat; the cut 1/(λ_max t) tracks gRDA at both training times, the default does not (measured: 0.05 vs
    0.17 at t = 20, 0.013 vs 0.061 at t = 200 for seed 0, γ = 1e-3; here γ = 1e-2 for speed)."""
    H, w_star, w0 = no_gap_valley(0)
    lam = 0.3
    for t in (20.0, 200.0):
        N = int(t / 1e-2)
        c = lam / (1e-2 ** 1.05 * N**0.55)
        w, a, sgd = torch.tensor(w0), torch.tensor(w0), torch.tensor(w0)
        Ht, ws = torch.tensor(H), torch.tensor(w_star)
        for n in range(1, N + 1):
            grda_update([w], [Ht @ (w - ws)], [a], lr=1e-2, threshold=threshold_closed_form(n, 1e-2, c, 0.55))
            sgd = sgd - 1e-2 * (Ht @ (sgd - ws))
        wg, w_sgd = w.numpy(), sgd.numpy()
        err = {name: np.linalg.norm(constrained_dp_admm(w_sgd, fs, lam).w - wg) / np.linalg.norm(wg)
               for name, fs in (("time", flat_subspace_at_time(H, t)), ("default", flat_subspace(H)))}
        sweep = tau_sweep(H, w_sgd, lam, np.geomspace(1e-8, 0.5, 30), reference=wg)
        best = min(p.relative_error for p in sweep)
        assert err["time"] <= 0.07 and err["default"] >= 2 * err["time"], err
        assert err["time"] <= 1.5 * best + 1e-3  # at or next to the best cut of the sweep
        assert [p.flat_dim for p in sweep] == sorted(p.flat_dim for p in sweep)


def test_weighted_lasso_warns_past_its_limit():
    H, _, _, fs, w_sgd = valley(0)
    lim = weighted_lasso_limit(w_sgd, fs)
    s = np.sign(w_sgd) * fs.project_flat(np.sign(w_sgd))
    assert lim == pytest.approx(np.min(np.abs(w_sgd)[s > 0] / s[s > 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weighted_lasso_dp(w_sgd, fs, 0.99 * lim)
    # measured on valley(0): 0.3 % off at 2λ*, 1.1 % at λ = 0.1, 4.6 % at λ = 0.3 (13λ*), 9.9 % at λ = 0.5
    for lam, least in ((2.0 * lim, 1e-3), (0.3, 0.02)):
        with pytest.warns(UserWarning, match="exceeds weighted_lasso_limit"):
            wl = weighted_lasso_dp(w_sgd, fs, lam)
        ref = constrained_dp_admm(w_sgd, fs, lam).w
        assert np.linalg.norm(wl - ref) / np.linalg.norm(ref) > least
        assert np.linalg.norm(fs.project_sharp(wl - w_sgd)) > 1e-3  # it has left the valley


def test_support_agreement_rates():
    ref = np.array([1.0, 0.0, 2.0, 0.0])
    W = np.array([[1.0, 0.0, 3.0, 0.0], [1.0, 0.1, 3.0, 0.0], [0.0, 0.2, 1.0, 0.0], [5.0, 0.0, 5.0, 0.0]])
    a = support_agreement(W, ref)
    assert a.exact_rate == 0.5 and a.mean_mismatches == 0.75 and a.max_mismatches == 2
    np.testing.assert_allclose(a.per_coordinate, [0.75, 0.5, 1.0, 1.0])
    assert support_agreement(W, ref != 0).exact_rate == 0.5
    with pytest.raises(ValueError, match=r"solutions must be \(R, d\) and reference \(d,\)"):
        support_agreement(W, ref[:3])


def test_obs_comparison_on_a_rank_one_valley_in_closed_form():
    """H = h vvᵀ, v = (1,1)/√2, w^SGD = (a, −b), a > b > 0, λ ≥ b (proofs_check dp_vs_obs_rank_one_valley):
    directional pruning = OBS on the magnitude support = (a − b, 0) with ΔL = 0; magnitude pruning
    ΔL = h b²/4; deterministic gRDA converges to the same point."""
    a, b, h = 2.0, 0.5, 3.0
    H = h * 0.5 * np.ones((2, 2))
    w_sgd = np.array([a, -b])
    fs = flat_subspace(H)
    for lam in (0.6, 1.0, 1.7):
        cmp_ = valley_comparison(H, w_sgd, lam=lam, flat=fs)
        for name in ("directional", "obs_magnitude", "obs_directional_support"):
            np.testing.assert_allclose(cmp_.points[name], [a - b, 0.0], atol=1e-12)
            assert abs(cmp_.loss_increase[name]) <= 1e-14
        assert cmp_.loss_increase["magnitude"] == pytest.approx(h * b**2 / 4, rel=1e-14)
        assert cmp_.kept_count == 1
    # below λ = b nothing is pruned and the constrained form moves along the flat direction only
    below = valley_comparison(H, w_sgd, lam=0.2, flat=fs)
    np.testing.assert_allclose(below.points["directional"], [a - 0.2, -(b - 0.2)], atol=1e-12)
    assert below.kept_count == 2 and below.loss_increase["magnitude"] == 0.0
    # gRDA itself (deterministic, quadratic loss with minimiser w* = w^SGD) ends at the same point
    N, gamma, lam, mu = 4000, 1e-2, 1.0, 0.55
    c = lam / (gamma ** (mu + 0.5) * N**mu)
    w, acc = torch.tensor(w_sgd), torch.tensor(w_sgd)
    for n in range(1, N + 1):
        grda_update([w], [torch.tensor(H) @ (w - torch.tensor(w_sgd))], [acc], lr=gamma,
                    threshold=threshold_closed_form(n, gamma, c, mu))
    g = valley_comparison(H, w_sgd, lam=lam, flat=fs, w_grda=w.numpy())
    # measured 1.4908: the lag behind the growing threshold, ≈ μ/(h t) relative (docs/math.md §4), not γ
    assert g.points["grda"][1] == 0.0 and g.points["grda"][0] == pytest.approx(a - b, rel=0.01)
    assert g.loss_increase["grda"] <= 1e-4 and g.kept_count == 1


def test_obs_cannot_compensate_a_diagonal_hessian():
    """Diagonal H: H_TP = 0, so OBS = plain magnitude pruning; the constrained form only moves flat coordinates."""
    H = np.diag([0.0, 0.0, 2.0, 5.0])
    w_sgd = np.array([0.3, -1.2, 0.2, 0.9])
    fs = flat_subspace(H)
    cmp_ = valley_comparison(H, w_sgd, lam=0.5, flat=fs)
    np.testing.assert_allclose(cmp_.points["directional"], [0.0, -0.7, 0.2, 0.9], atol=1e-12)
    assert cmp_.kept_count == 3
    np.testing.assert_array_equal(cmp_.points["obs_magnitude"], cmp_.points["magnitude"])  # prunes w_3 = 0.2
    assert cmp_.loss_increase["magnitude"] == pytest.approx(0.5 * 2.0 * 0.2**2)
    assert cmp_.loss_increase["directional"] == 0.0


def test_obs_comparison_away_from_the_minimum_includes_the_gradient():
    """w^SGD not a minimum (finite training time without a spectral gap): increases are f(w) − f(w^SGD) of the
    true quadratic, and OBS is the minimiser of f on the magnitude support (zero gradient on the kept set)."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((6, 6))
    H = A @ A.T / 6 + 0.1 * np.eye(6)
    w_min = rng.standard_normal(6)
    w_sgd = w_min + 0.3 * rng.standard_normal(6)
    f = lambda w: 0.5 * (w - w_min) @ H @ (w - w_min)  # noqa: E731
    cmp_ = valley_comparison(H, w_sgd, lam=0.2, flat=flat_subspace(H, tau=0.2), w_min=w_min)
    for name, w in cmp_.points.items():
        assert cmp_.loss_increase[name] == pytest.approx(f(w) - f(w_sgd), rel=1e-10, abs=1e-14)
    obs, mag = cmp_.points["obs_magnitude"], cmp_.points["magnitude"]
    kept = mag != 0
    assert np.array_equal(obs != 0, kept) and kept.sum() == cmp_.kept_count
    np.testing.assert_allclose((H @ (obs - w_min))[kept], 0.0, atol=1e-12)
    assert cmp_.loss_increase["obs_magnitude"] <= cmp_.loss_increase["magnitude"]
