"""The pruning-limit pipeline (nets.limit) end to end: both limits, each stage against an independent reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nets.compensate import CompensationConfig
from nets.data import DataSplit, load_dataset
from nets.limit import (
    LimitConfig,
    LimitResult,
    MeasureConfig,
    OracleConfig,
    PredictionConfig,
    SpectrumConfig,
    ToleranceConfig,
    estimate_pruning_limit,
    summarize_spectrum,
    threshold_search,
)
from nets.models import build_model
from nets.params import prunable_parameters
from nets.train import TrainConfig, train
from numerics.testing import haar_orthogonal
from theory.limits import kept_count
from theory.quadratic import QuadraticModel
from theory.spectrum import Spectrum

TINY = LimitConfig(spectrum=SpectrumConfig(steps=40, n_probes=3),
                   measurement=MeasureConfig(grid_step=0.025, compensation=CompensationConfig(steps=20)))


@pytest.fixture(scope="module")
def digits() -> DataSplit:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A 64→8→10 MLP (N = 592 prunable weights) trained briefly with ℓ1."""
    model = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(0), hidden=(8,))
    train(model, digits, TrainConfig(epochs=25, lr=0.05, l1=1e-3, seed=0))
    return model


@pytest.fixture(scope="module")
def result(trained, digits) -> LimitResult:
    return estimate_pruning_limit(trained, digits, config=TINY, seed=1)


def test_both_limits_are_predicted_and_measured(result):
    f, m = result.fundamental, result.magnitude
    for pair in (f, m):
        assert 0.0 <= pair.predicted <= 1.0 and pair.measured is not None and 0.0 <= pair.measured <= 1.0
        assert pair.gap == pytest.approx(pair.predicted - pair.measured)
    assert f.method == "flat" and m.method == "taylor"  # the defaults chosen on trained networks
    assert f.predicted_lower <= f.predicted <= f.predicted_upper
    # compensation can only help: the fundamental limit is at most the magnitude-pruning limit
    assert f.measured <= m.measured + 1.0 / 592
    fm = result.fundamental_measurement
    assert fm.kept_fraction_reoptimised <= fm.kept_fraction + 1e-12  # re-optimisation only lowers the loss
    assert f.measured_reoptimised == fm.kept_fraction_reoptimised
    # no level's CG solve is repeated by the re-optimised search: the operator counted exactly the levels' products
    assert fm.hvps == sum(d["hvps"] for d in fm.levels)
    for meth in ("free", "flat"):
        assert math.isfinite(result.fundamental_prediction.limits[meth].stderr)  # 3 probes: finite SLQ error


def test_lomp_measurement_matches_an_independent_magnitude_pruning(result, trained, digits):
    """Recompute the limit's level and the level below it by hand: zero all but the k largest |w|."""
    w = torch.cat([p.detach().reshape(-1) for _, p in prunable_parameters(trained)])
    order = torch.argsort(w.abs(), descending=True, stable=True)
    x, y = digits.train_eval.inputs, digits.train_eval.targets
    l1, l2 = trained.net[1], trained.net[3]

    def loss_at(k: int) -> float:
        flat = torch.zeros_like(w)
        flat[order[:k]] = w[order[:k]]
        W1 = flat[: l1.weight.numel()].reshape(l1.weight.shape)
        W2 = flat[l1.weight.numel():].reshape(l2.weight.shape)
        with torch.no_grad():
            return float(F.cross_entropy(torch.relu(x @ W1.T + l1.bias) @ W2.T + l2.bias, y))

    lim = result.magnitude_measurement.limits["train_loss"]
    thr = result.tolerance.threshold
    k = lim.kept_count
    assert loss_at(k) <= thr * (1 + 1e-6) and loss_at(k - 1) > thr * (1 - 1e-6)  # bisection to one weight
    curves = result.magnitude_measurement.curves
    i = 10
    assert curves["kept_count"][i] == kept_count(float(curves["kept_fraction"][i]), 592)
    assert curves["train_loss"][i] == pytest.approx(loss_at(int(curves["kept_count"][i])), rel=1e-5)
    assert curves["train_loss"][-1] == pytest.approx(result.tolerance.train.loss, rel=1e-6)


def test_default_eps_is_the_std_of_128_batch_losses(result, trained, digits):
    losses = []
    xs, ys = digits.train_eval.inputs, digits.train_eval.targets
    with torch.no_grad():
        for start in range(0, len(ys) - 127, 128):
            losses.append(float(F.cross_entropy(trained(xs[start:start + 128]), ys[start:start + 128])))
    assert len(losses) == len(ys) // 128  # the short last batch is dropped
    t = result.tolerance
    assert t.source == "batch-loss-std" and t.eps == pytest.approx(float(np.std(losses, ddof=1)), rel=1e-6)
    assert t.n_batches == len(losses) and t.batch_size == 128 and t.dropped_samples == len(ys) % 128
    assert t.threshold == pytest.approx(t.loss_dense + t.eps) and t.notes == ()


def test_oracle_against_its_definitions(result, trained, digits):
    q = result.oracle
    lam = q.eigenvalues
    assert lam.size == 592 and np.all(np.diff(lam) >= 0)
    # reference path: the Hessian by torch.func.hessian of the float64 loss in the flat prunable weights, the
    # |H| surrogate, and the exact threshold by bisection with Schur complements
    assert q.psd_surrogate == "abs" and lam[0] < 0  # a trained network's Hessian is indefinite
    x = digits.train_eval.inputs.double()
    y = digits.train_eval.targets
    l1, l2 = trained.net[1], trained.net[3]
    b1, b2 = l1.bias.detach().double(), l2.bias.detach().double()
    n1 = l1.weight.numel()

    def loss(flat):
        W1, W2 = flat[:n1].reshape(l1.weight.shape), flat[n1:].reshape(l2.weight.shape)
        return F.cross_entropy(torch.relu(x @ W1.T + b1) @ W2.T + b2, y)

    w = torch.cat([l1.weight.detach().reshape(-1), l2.weight.detach().reshape(-1)]).double()
    H = torch.func.hessian(loss)(w).numpy()
    ref_lam, V = np.linalg.eigh(0.5 * (H + H.T))
    np.testing.assert_allclose(lam, ref_lam, atol=1e-10 * np.abs(ref_lam).max())
    eps = result.tolerance.eps
    ref = QuadraticModel((V * np.abs(ref_lam)) @ V.T, w.numpy()).magnitude_threshold(eps, solver="bisect")
    assert q.kept_count_compensated == ref.kept_count
    # the SLQ spectrum is close to the exact one: W1 far below the spectral range (CTU bound with m = 40)
    assert q.slq_wasserstein1 < 0.05 * (lam[-1] - lam[0])
    # the Taylor model of the LOMP loss is exact at the dense end and close where little is pruned
    c = result.magnitude_measurement.curves
    assert q.taylor_loss[-1] == pytest.approx(result.tolerance.loss_dense, rel=1e-6)
    near = c["kept_fraction"] >= 0.9
    np.testing.assert_allclose(q.taylor_loss[near], c["train_loss"][near], rtol=0.02)
    for m in ("free", "flat"):
        ex, est = q.predicted_exact_spectrum[m], result.fundamental_prediction.limits[m]
        assert ex.stderr == 0.0 and abs(ex.kept_fraction - est.kept_fraction) <= 4 * est.stderr + 0.02


def test_taylor_prediction_against_the_dense_hessian(result):
    """The Taylor magnitude-pruning prediction (HVPs, bisection) equals the least k of the oracle's dense Taylor
    curve ``L* − gᵀc + ½cᵀHc`` crossing ``L* + ε`` (the same model, computed two ways)."""
    t = result.magnitude_prediction.taylor
    q = result.oracle
    thr = result.tolerance.threshold
    k = t.kept_count
    c = result.magnitude_measurement.curves
    # on the grid, the dense curve and the HVP values agree
    for kk, val in zip(t.search.grid_counts, t.search.grid_values):
        i = np.nonzero(c["kept_count"] == kk)[0]
        if i.size:
            assert result.tolerance.loss_dense + val == pytest.approx(q.taylor_loss[i[0]], rel=1e-4, abs=1e-7)
    assert result.tolerance.loss_dense + t.gradient_term + t.curvature_term <= thr + 1e-9
    assert 0 < k <= 592


def test_json_has_both_limits_and_provenance(result, tmp_path):
    d = result.to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))  # strict JSON: no NaN/inf
    for key in ("limits", "tolerance", "spectrum_summary", "spectrum_run", "predicted", "measured", "oracle",
                "warnings", "timings_seconds", "cost", "config", "provenance", "spectrum", "model"):
        assert key in back, key
    for name in ("fundamental", "magnitude"):
        lim = back["limits"][name]
        assert {"predicted", "measured", "gap", "method", "band_covers"} <= set(lim)
        assert lim["removed_fraction_predicted"] == pytest.approx(1.0 - lim["predicted"])
    p = back["predicted"]["fundamental"]["by_method"]["free"]
    assert {"kept_fraction", "kept_fraction_lower", "kept_fraction_upper", "kept_fraction_stderr", "kept_count"} <= set(p)
    run = back["spectrum_run"]
    assert run["steps"] == 40 and run["n_probes"] == 3 and run["hvp_path"] == "cached double-backward"
    assert back["cost"]["spectrum"]["hvps"] == 3 * 40 and back["spectrum"]["dim"] == 592
    assert back["provenance"]["package"] == "prunelimit" and "torch" in back["provenance"]
    assert back["measured"]["fundamental"]["search"]["evaluations"]
    out = result.save(tmp_path, extra={"note": "x"})
    assert out.name == "result.json" and json.loads(out.read_text())["note"] == "x"
    assert [f.name for f in tmp_path.iterdir()] == ["result.json"]  # no temporary left behind
    assert "fundamental" in repr(result) and len(repr(result)) < 400
    assert "fundamental (compensated)" in result.summary() and "magnitude pruning (LOMP)" in result.summary()


def _quadratic_task(N: int, seed: int, lam: np.ndarray):
    """A linear model with the half squared error whose Hessian is Q diag(lam) Qᵀ with a Haar Q, and w* the
    minimum (g = 0): the loss *is* its quadratic model. Laplace weights, as in the synthetic benchmark."""
    rng = np.random.default_rng(seed)
    Q = haar_orthogonal(N, rng)
    X = torch.from_numpy(np.sqrt(N) * (np.sqrt(lam)[:, None] * Q.T))  # XᵀX/N = Q Λ Qᵀ
    w = torch.from_numpy(rng.laplace(size=N))
    y = (X @ w).reshape(-1, 1)
    model = nn.Linear(N, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w.reshape(1, -1))
    H = (Q * lam) @ Q.T
    return model, (X, y), H, w.numpy()


def _half_se(out, t):
    return 0.5 * ((out - t) ** 2).sum(dim=1).mean()


def test_measured_fundamental_limit_on_a_quadratic_equals_the_exact_oracle():
    N, eps = 120, 0.05
    lam = np.random.default_rng(1).exponential(1.0, N)
    model, data, H, w = _quadratic_task(N, 0, lam)
    cfg = LimitConfig(tolerance=ToleranceConfig(eps=eps), spectrum=SpectrumConfig(steps=N, n_probes=2),
                      measurement=MeasureConfig(compensation=CompensationConfig(steps=0, cg_rtol=1e-12),
                                                compensated_resolution=1e-9),
                      oracle=OracleConfig(enabled=True))
    r = estimate_pruning_limit(model, data, loss=_half_se, config=cfg)
    exact = QuadraticModel(H, w).magnitude_threshold(eps)
    assert r.fundamental_measurement.kept_count == exact.kept_count
    assert r.fundamental_measurement.search_reoptimised is None  # steps=0: no re-optimisation
    assert r.oracle.kept_count_compensated == exact.kept_count
    assert r.model["task"] == "custom loss" and r.tolerance.train.accuracy is None
    # the LOMP measurement equals the uncompensated quadratic threshold, and the Taylor prediction equals both
    unc = QuadraticModel(H, w).magnitude_curve().uncompensated
    k_unc = int(np.nonzero(unc > eps)[0][-1] + 1)
    assert r.magnitude_measurement.limits["train_loss"].kept_count == k_unc
    assert r.magnitude_prediction.taylor.kept_count == k_unc


def test_haar_lomp_prediction_within_its_stated_error():
    """On a pure quadratic with a Haar eigenbasis, ½ w_PᵀHw_P concentrates at ½R²·tr(H)/N with relative standard
    deviation √(2 Var(λ)/(N + 2))/mean(λ) (the variance of uᵀQΛQᵀu for a unit u); at the Haar-predicted limit
    the measured LOMP increase is within 4 of those standard deviations of ε."""
    N, eps = 400, 0.5
    lam = np.random.default_rng(2).exponential(1.0, N)
    rel_sd = math.sqrt(2 * lam.var() / (N + 2)) / lam.mean()
    for seed in range(3):
        model, data, H, w = _quadratic_task(N, 10 + seed, lam)
        cfg = LimitConfig(tolerance=ToleranceConfig(eps=eps), spectrum=SpectrumConfig(steps=60, n_probes=2),
                          prediction=PredictionConfig(magnitude_method="haar"),
                          measurement=MeasureConfig(fundamental=False), oracle=OracleConfig(enabled=False))
        r = estimate_pruning_limit(model, data, loss=_half_se, config=cfg)
        k = r.magnitude_prediction.haar.kept_count
        o = np.argsort(-np.abs(w), kind="stable")
        wp = w.copy()
        wp[o[:k]] = 0.0
        increase = 0.5 * wp @ H @ wp
        assert abs(increase - eps) <= 4 * rel_sd * eps + 0.5 * abs(w[o[k - 1]]) ** 2 * lam.max(), (seed, increase)


def test_warnings_fire_on_an_untrained_model_and_degenerate_slq(digits):
    model = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(0), hidden=(4,))
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=5, n_probes=1, samples=200),
                      measurement=MeasureConfig(grid_step=0.1, fundamental=False), oracle=OracleConfig(enabled=False))
    r = estimate_pruning_limit(model, digits, config=cfg)
    codes = {w.code for w in r.warnings}
    assert {"untrained", "slq-steps", "slq-probes", "hessian-samples"} <= codes
    msgs = " ".join(w.message for w in r.warnings)
    assert "--slq-steps" in msgs and "--slq-probes" in msgs and "--hessian-samples" in msgs
    assert "warning [untrained]" in r.summary()


def test_no_warning_on_a_sound_run(result):
    assert not {"untrained", "slq-steps", "slq-probes", "hessian-samples"} & {w.code for w in result.warnings}


def test_users_own_model_and_data_in_every_form(digits):
    """A Dataset, a DataLoader, (X, y) tensors and a list of batches give the same result for the same samples."""
    torch.manual_seed(0)
    X, y = digits.train_eval.inputs[:400], digits.train_eval.targets[:400]
    model = nn.Sequential(nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=20, n_probes=2),
                      measurement=MeasureConfig(grid_step=0.1, compensation=CompensationConfig(steps=5)),
                      oracle=OracleConfig(enabled=False))
    ds = torch.utils.data.TensorDataset(X, y)
    forms = [(X, y), ds, torch.utils.data.DataLoader(ds, batch_size=64), [(X[:200], y[:200]), (X[200:], y[200:])]]
    results = [estimate_pruning_limit(model, f, config=cfg) for f in forms]
    for r in results[1:]:
        assert r.magnitude.measured == results[0].magnitude.measured
        assert r.fundamental.predicted == pytest.approx(results[0].fundamental.predicted, abs=1e-9)
        assert r.tolerance.eps == pytest.approx(results[0].tolerance.eps, rel=1e-6)
    assert results[0].tolerance.test is None and results[0].model["n_test"] == 0
    assert "test_accuracy" not in results[0].magnitude_measurement.limits  # no test data: no accuracy criterion
    # the eps batch size adapts to a small training set, with a recorded note
    assert results[0].tolerance.batch_size == 400 // 8 and results[0].tolerance.notes


def test_callers_model_unchanged(digits):
    model = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(3), hidden=(4,))
    model.train()
    model.net[1].weight.requires_grad_(False)
    model.net[3].weight.grad = torch.ones_like(model.net[3].weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=5, n_probes=2),
                      measurement=MeasureConfig(grid_step=0.5, compensation=CompensationConfig(steps=2)))
    estimate_pruning_limit(model, digits, config=cfg, progress=lambda s, i, n: calls.append((s, i, n)))
    assert model.training
    assert not model.net[1].weight.requires_grad and model.net[3].weight.requires_grad
    assert torch.equal(model.net[3].weight.grad, torch.ones_like(model.net[3].weight))
    assert model.net[1].bias.grad is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert {s for s, _, _ in calls} == {"tolerance", "spectrum", "predict", "sweep", "compensated", "oracle"}
    assert ("spectrum", 5, 5) in calls


def test_masked_model_is_pruned_on_the_copy_only(trained, digits):
    """A model carrying torch.nn.utils.prune masks: the pipeline sees the masked weights, the caller keeps the masks."""
    import copy

    from nets.prune import apply_masks, global_magnitude_masks

    model = copy.deepcopy(trained)
    apply_masks(model, global_magnitude_masks(model, 0.5))
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=5, n_probes=2),
                      measurement=MeasureConfig(grid_step=0.25, fundamental=False), oracle=OracleConfig(enabled=False))
    r = estimate_pruning_limit(model, digits, config=cfg)
    assert hasattr(model.net[1], "weight_orig") and hasattr(model.net[1], "weight_mask")  # caller unchanged
    c = r.magnitude_measurement.curves
    i = int(np.nonzero(c["kept_fraction"] == 0.5)[0][0])
    # the copy holds exactly the masked weights: keeping 50 % by magnitude changes nothing
    assert c["train_loss"][i] == pytest.approx(r.tolerance.train.loss, rel=1e-6)


def test_threshold_search_reports_non_monotone_levels():
    values = {0: 5.0, 25: 0.5, 50: 2.0, 75: 0.1, 100: 0.0}
    r = threshold_search(lambda ks: [values.get(k, 1.0 if k < 75 else 0.2) for k in ks], lambda v: v <= 1.0, 100,
                         [0, 25, 50, 75])
    assert r.kept_count == 51 and 25 in r.non_monotone and r.kept_count_any == 25


def test_summarize_spectrum_exact():
    s = summarize_spectrum(Spectrum.from_eigenvalues([-2.0, 0.0, 1.0, 5.0]))
    assert (s.ritz_min, s.ritz_max, s.negative_mass, s.negative_mass_stderr) == (-2.0, 5.0, 0.25, 0.0)
    assert (s.trace, s.mean_eigenvalue, s.dim) == (4.0, 1.0, 4)
    with pytest.raises(TypeError, match="theory.spectrum.Spectrum"):
        summarize_spectrum([1.0])


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: SpectrumConfig(steps=0), ValueError, "steps must be an integer >= 1, got steps=0"),
        (lambda: SpectrumConfig(n_probes=1.5), TypeError, "n_probes must be an integer"),
        (lambda: SpectrumConfig(hvp_method="fd"), ValueError, "hvp_method must be one of .*'fd'"),
        (lambda: SpectrumConfig(samples=0), ValueError, "samples must be an integer >= 1, got samples=0"),
        (lambda: ToleranceConfig(eps=-1.0), ValueError, "eps must be a finite number > 0, got eps=-1.0"),
        (lambda: ToleranceConfig(eps=float("nan")), ValueError, "eps must be a finite number > 0, got eps=nan"),
        (lambda: ToleranceConfig(eps=True), TypeError, "eps must be a real number"),
        (lambda: PredictionConfig(method="exact"), ValueError, "method must be one of .*'exact'"),
        (lambda: PredictionConfig(negative="fold"), ValueError, "negative must be one of .*'fold'"),
        (lambda: MeasureConfig(grid_step=1e-9), ValueError, "grid_step=1e-09 gives more than 10001 sweep levels"),
        (lambda: MeasureConfig(accuracy_tolerance=2), ValueError, r"accuracy_tolerance must be a number in \[0, 1\]"),
        (lambda: OracleConfig(enabled="yes"), TypeError, "enabled must be None, True or False, got enabled='yes'"),
        (lambda: LimitConfig(spectrum=3), TypeError, "spectrum must be a SpectrumConfig, got int"),
    ],
)
def test_config_error_inputs(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (("net", None), {}, TypeError, "model must be a torch.nn.Module, got str"),
        ((nn.Linear(64, 10), 3.0), {}, TypeError, "train_data must be a Dataset, a DataLoader"),
        ((nn.Linear(64, 10), None), {"config": {}}, TypeError, "config must be a nets.limit.LimitConfig, got dict"),
        ((nn.Linear(64, 10), None), {"seed": -5}, ValueError, "seed must be an integer >= 0, got seed=-5"),
        ((nn.Sequential(nn.ReLU()), None), {}, ValueError, "no prunable"),
        ((nn.Linear(3, 10), None), {}, ValueError, "cannot be applied to train_data inputs of shape \\(64,\\)"),
        ((nn.Linear(64, 1), None), {}, ValueError, "pass loss="),
        ((nn.Linear(64, 10), None), {"l1": -1.0}, ValueError, "l1 must be a finite number >= 0, got l1=-1.0"),
    ],
)
def test_error_inputs(args, kwargs, exc, match, digits):
    model, data = args
    with pytest.raises(exc, match=match):
        estimate_pruning_limit(model, digits if data is None else data, **kwargs)


def test_spectrum_reorth_auto_by_basis_memory():
    """``reorth="auto"``: full reorthogonalisation while the float64 basis fits REORTH_AUTO_MAX_BYTES, else the
    basis-free recurrence; what ran is recorded in the SLQ result."""
    from nets.hessian import HessianOperator
    from nets.limit.spectrum import REORTH_AUTO_MAX_BYTES, estimate_spectrum, resolve_reorth

    cfg = SpectrumConfig(steps=128, n_probes=4)
    per_weight = 128 * 4 * 8 + 4 * (3 * 8 + 4 + 4)  # stored basis + working vectors, float32 operator
    n_max = REORTH_AUTO_MAX_BYTES // per_weight
    assert resolve_reorth(cfg, n_max, 128, torch.float32) == "full"
    assert resolve_reorth(cfg, n_max + 1, 128, torch.float32) == "none"
    assert resolve_reorth(SpectrumConfig(reorth="partial"), 10**9, 128, torch.float32) == "partial"
    assert resolve_reorth(SpectrumConfig(steps=10**5), 10**5, 10**5, torch.float32) == "full"  # exact: no ghosts
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    X, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    op = HessianOperator(model, nn.CrossEntropyLoss(), [(X, y)])
    res = estimate_spectrum(op, SpectrumConfig(steps=10, n_probes=2), torch.Generator().manual_seed(0))
    assert res.reorth == "full" and res.basis_dtype == "torch.float64"
    res = estimate_spectrum(op, SpectrumConfig(steps=10, n_probes=2, reorth="none", basis_dtype=None),
                            torch.Generator().manual_seed(0))
    assert res.reorth == "none" and res.basis_dtype == "torch.float32"
    with pytest.raises(ValueError, match="reorth must be one of .*'some'"):
        SpectrumConfig(reorth="some")


def test_reoptimised_search_equals_reoptimising_every_level(trained, digits, result):
    """Levels whose quadratic step already qualifies are not re-optimised (the re-optimisation never raises the
    loss): the search must find what re-optimising every level finds, and skip only such levels."""
    from nets.compensate import Compensator
    from nets.data import fixed_batches
    from nets.limit.measure import measure_fundamental

    cfg = TINY.measurement
    comp = Compensator(trained, fixed_batches(digits.train, 512), config=cfg.compensation)
    tol = result.tolerance
    fm = measure_fundamental(comp, tol, cfg)
    got = fm.search_reoptimised
    full = {}

    def every_level(ks):
        for k in ks:
            if k not in full:
                full[k] = comp(k).loss_after
        return [full[k] for k in ks]

    ref = threshold_search(every_level, lambda v: v <= tol.threshold, comp.N, got.grid_counts.tolist(),
                           resolution=max(1, int(cfg.compensated_resolution * comp.N)))
    assert (got.kept_count, got.non_monotone, got.grid_ok.tolist()) == (ref.kept_count, ref.non_monotone,
                                                                        ref.grid_ok.tolist())
    assert [(k, ok) for k, _, ok in got.evaluations] == [(k, ok) for k, _, ok in ref.evaluations]
    evaluated = {k for k, *_ in got.evaluations}
    searched = [d for d in fm.levels if d["kept_count"] in evaluated and d["kept_count"] < comp.N]
    skipped = [d for d in searched if d["loss_after"] is None]
    run = [d for d in searched if d["loss_after"] is not None]
    assert skipped and run  # both kinds occur, so the comparison above covers the skip
    assert set(fm.reoptimisation_skipped) == {d["kept_count"] for d in skipped}
    assert fm.to_dict()["reoptimisation_skipped"] == sorted(fm.reoptimisation_skipped)
    for d in skipped:
        assert d["loss_quadratic_step"] <= tol.threshold and d["optimizer_evaluations"] == 0
        assert full[d["kept_count"]] <= tol.threshold  # re-optimised by the reference: it qualifies too
    # (the empty network, kept count 0, has nothing to re-optimise)
    assert all(d["loss_quadratic_step"] > tol.threshold and (d["optimizer_evaluations"] > 0 or d["kept_count"] == 0)
               for d in run)
