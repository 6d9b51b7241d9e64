"""The pruning-limit pipeline (nets.limit) end to end on digits with tiny settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nets.data import DataSplit, fixed_batches, load_dataset
from nets.limit import (
    ActualLimit,
    LimitResult,
    actual_limit,
    default_kept_fractions,
    dense_loss_std,
    estimate_pruning_limit,
    load_state_dict,
    summarize_spectrum,
    train_default_model,
)
from nets.models import build_model
from nets.params import prunable_parameters
from nets.train import TrainConfig, train
from theory.spectrum import Spectrum

GRID = np.round(np.linspace(0.0, 1.0, 41), 12)  # kept fractions on a 0.025 grid


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
    return estimate_pruning_limit(trained, digits, generator=torch.Generator().manual_seed(1), slq_steps=40,
                                  slq_probes=3, kept_fractions=GRID)


def test_predicted_and_actual_limits_finite_in_unit_interval(result):
    for m in ("free", "flat"):
        lim = result.predicted[m]
        assert 0.0 <= lim.kept_fraction_lower <= lim.kept_fraction <= lim.kept_fraction_upper <= 1.0
        assert math.isfinite(lim.stderr)  # 3 probes: a finite SLQ standard error
    assert result.primary is result.predicted["free"]
    for name in ("train_loss", "test_accuracy"):
        a = result.actual[name]
        assert a.kept_fraction is not None and 0.0 <= a.kept_fraction <= 1.0
        assert a.kept_fraction_any <= a.kept_fraction
        assert a.kept_count == math.ceil(round(a.kept_fraction * result.model["n_prunable"], 6))
    q = result.quadratic
    assert q is not None  # N = 592 <= exact_max_n
    assert 0.0 <= q.kept_fraction_compensated <= 1.0 and 0.0 <= q.kept_fraction_uncompensated <= 1.0
    # optimal compensation can only lower the loss increase in a convex model; with this indefinite H we only
    # check the definitions' outputs are consistent kept counts
    assert q.kept_count_compensated == round(q.kept_fraction_compensated * 592)
    gaps = result.gaps()
    assert gaps["free"]["train_loss"] == pytest.approx(result.predicted["free"].kept_fraction - result.actual["train_loss"].kept_fraction)


def test_sweep_matches_an_independent_magnitude_pruning(result, trained, digits):
    """Recompute two sweep levels by hand: zero all but the ⌈ρN⌉ largest |w|, evaluate the training loss."""
    w = torch.cat([p.detach().reshape(-1) for _, p in prunable_parameters(trained)])
    order = torch.argsort(w.abs(), descending=True, stable=True)
    x = torch.cat([b[0] for b in fixed_batches(digits.train_eval, 4096)])
    y = torch.cat([b[1] for b in fixed_batches(digits.train_eval, 4096)])
    for i in (8, 30):
        rho = GRID[i]
        k = math.ceil(round(rho * w.numel(), 6))
        flat = torch.zeros_like(w)
        flat[order[:k]] = w[order[:k]]
        l1, l2 = trained.net[1], trained.net[3]
        W1 = flat[: l1.weight.numel()].reshape(l1.weight.shape)
        W2 = flat[l1.weight.numel():].reshape(l2.weight.shape)
        with torch.no_grad():
            loss = float(F.cross_entropy(torch.relu(x @ W1.T + l1.bias) @ W2.T + l2.bias, y))
        assert result.sweep["kept_count"][i] == k
        assert result.sweep["train_loss"][i] == pytest.approx(loss, rel=1e-5)  # float32 summation order
    # the dense end reproduces the dense model
    assert result.sweep["train_loss"][-1] == pytest.approx(result.dense["train_loss"], rel=1e-6)


def test_default_eps_is_the_std_of_128_batch_losses(result, trained, digits):
    losses = []
    xs, ys = digits.train_eval.inputs, digits.train_eval.targets
    with torch.no_grad():
        for start in range(0, len(ys) - 127, 128):
            losses.append(float(F.cross_entropy(trained(xs[start:start + 128]), ys[start:start + 128])))
    assert len(losses) == len(ys) // 128  # the short last batch is dropped
    expected = float(np.std(losses, ddof=1))
    assert result.eps.source == "batch-loss-std"
    assert result.eps.eps == pytest.approx(expected, rel=1e-6)
    assert result.eps.n_batches == len(losses) and result.eps.batch_size == 128
    assert result.eps.dropped_samples == len(ys) % 128


def test_quadratic_comparison_against_its_definitions(result, trained, digits):
    from theory.quadratic import QuadraticModel

    q = result.quadratic
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
    ref = QuadraticModel((V * np.abs(ref_lam)) @ V.T, w.numpy()).magnitude_threshold(result.eps.eps, solver="bisect")
    assert q.kept_count_compensated == ref.kept_count
    tol = 1000 * 592 * np.finfo(float).eps * np.abs(lam).max()  # ≥ max|H|·eps·1000N / 592: a loose cut-off check
    assert q.eigenvalue_min == lam[0] and np.mean(lam < -tol) - 0.01 <= q.negative_fraction <= np.mean(lam < 0)
    # the SLQ spectrum is close to the exact one: W1 far below the spectral range (CTU bound with m = 40)
    assert q.slq_wasserstein1 < 0.05 * (lam[-1] - lam[0])
    # the Taylor prediction of the sweep loss is exact at the dense end and close where little is pruned
    assert q.taylor_loss[-1] == pytest.approx(result.dense["train_loss"], rel=1e-6)
    near = result.sweep["kept_fraction"] >= 0.9
    np.testing.assert_allclose(q.taylor_loss[near], result.sweep["train_loss"][near], rtol=0.02)
    # the predicted limit from the exact eigenvalues is what SLQ estimates
    for m in ("free", "flat"):
        ex, est = q.predicted_exact_spectrum[m], result.predicted[m]
        assert ex.stderr == 0.0
        assert abs(ex.kept_fraction - est.kept_fraction) <= 4 * est.stderr + 0.02


def test_json_schema_and_atomic_save(result, tmp_path):
    d = result.to_dict()
    text = json.dumps(d, allow_nan=False)  # strict JSON: no NaN/inf
    back = json.loads(text)
    for key in ("eps", "dense", "model", "spectrum_summary", "predicted", "actual", "quadratic", "sweep",
                "timings_seconds", "cost", "settings", "gaps_predicted_minus_actual_kept_fraction", "spectrum"):
        assert key in back
    p = back["predicted"]["free"]
    assert p["removed_fraction"] == pytest.approx(1.0 - p["kept_fraction"])
    assert {"kept_fraction_lower", "kept_fraction_upper", "kept_fraction_stderr", "kept_count"} <= set(p)
    assert "rho" not in p
    a = back["actual"]["train_loss"]
    assert a["removed_fraction"] == pytest.approx(1.0 - a["kept_fraction"])
    assert len(back["sweep"]["kept_fraction"]) == GRID.size == len(back["sweep"]["test_acc"])
    assert back["cost"]["spectrum"]["hvps"] == 3 * 40
    assert set(back["timings_seconds"]) == {"eps", "spectrum", "limit", "sweep", "exact_quadratic"}
    out = result.save_json(tmp_path / "r.json")
    assert json.loads(out.read_text()) == back
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_callers_model_unchanged(digits):
    model = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(3), hidden=(4,))
    model.train()
    model.net[1].weight.requires_grad_(False)
    model.net[3].weight.grad = torch.ones_like(model.net[3].weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    estimate_pruning_limit(model, digits, generator=torch.Generator().manual_seed(0), slq_steps=5, slq_probes=2,
                           kept_fractions=[0.0, 0.5, 1.0], progress=lambda s, i, n: calls.append((s, i, n)))
    assert model.training
    assert not model.net[1].weight.requires_grad and model.net[3].weight.requires_grad
    assert torch.equal(model.net[3].weight.grad, torch.ones_like(model.net[3].weight))
    assert model.net[1].bias.grad is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    stages = {s for s, _, _ in calls}
    assert stages == {"eps", "spectrum", "limit", "sweep", "exact_quadratic"}
    assert ("sweep", 3, 3) in calls and ("spectrum", 5, 5) in calls


def test_no_level_qualifies_is_handled(trained, digits):
    r = estimate_pruning_limit(trained, digits, generator=torch.Generator().manual_seed(0), eps=1e-6, slq_steps=5,
                               slq_probes=2, kept_fractions=[0.0, 0.01], exact_quadratic=False,
                               hessian_samples=300)
    for a in r.actual.values():
        assert a.kept_fraction is None and a.kept_count is None and a.removed_fraction is None
        assert a.kept_fraction_any is None and a.n_qualifying == 0
    assert r.quadratic is None
    assert r.gaps()["free"] == {"train_loss": None, "test_accuracy": None, "authors_strict_accuracy": None}
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["actual"]["train_loss"]["kept_fraction"] is None
    assert d["settings"]["hessian_samples"] == 300 and d["eps"]["source"] == "given"


def test_actual_limit_definitions():
    a = actual_limit([1.0, 0.0, 0.5, 0.25, 0.75], [True, True, True, False, True], kept_counts=[4, 0, 2, 1, 3])
    assert (a.kept_fraction, a.kept_count, a.kept_fraction_any, a.n_qualifying) == (0.5, 2, 0.0, 4)
    assert a.removed_fraction == 0.5 and a.removed_fraction_any == 1.0
    b = actual_limit([0.0, 1.0], [True, False])  # the dense end fails: contiguous limit undefined
    assert b.kept_fraction is None and b.kept_fraction_any == 0.0
    assert isinstance(b, ActualLimit)
    with pytest.raises(ValueError, match="equal length"):
        actual_limit([0.0, 1.0], [True])
    np.testing.assert_allclose(default_kept_fractions(0.001)[[0, 1, -1]], [0.0, 0.001, 1.0])
    with pytest.raises(ValueError, match="step must divide 1"):
        default_kept_fractions(0.3)


def test_summarize_spectrum_exact():
    s = summarize_spectrum(Spectrum.from_eigenvalues([-2.0, 0.0, 1.0, 5.0]))
    assert (s.ritz_min, s.ritz_max, s.negative_mass, s.negative_mass_stderr) == (-2.0, 5.0, 0.25, 0.0)
    assert (s.trace, s.mean_eigenvalue, s.dim) == (4.0, 1.0, 4)
    with pytest.raises(TypeError, match="numerics.slq.Spectrum"):
        summarize_spectrum([1.0])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"model": "net"}, TypeError, "model must be a torch.nn.Module, got str"),
        ({"data": (1, 2)}, TypeError, "data must be a nets.data.DataSplit, got tuple"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator, got int"),
        ({"method": "exact"}, ValueError, "method must be one of .*'exact'"),
        ({"eps": -1.0}, ValueError, "eps must be a positive finite number, got eps=-1.0"),
        ({"eps": float("nan")}, ValueError, "eps must be a positive finite number, got eps=nan"),
        ({"eps": True}, TypeError, "eps must be a real number or None, got bool"),
        ({"slq_steps": 0}, ValueError, "slq_steps must be an int >= 1, got slq_steps=0"),
        ({"slq_probes": 1.5}, ValueError, "slq_probes must be an int >= 1, got slq_probes=1.5"),
        ({"kept_fractions": [0.5, 1.2]}, ValueError, r"kept_fractions must lie in \[0, 1\]"),
        ({"kept_fractions": []}, ValueError, "kept_fractions must be non-empty"),
        ({"accuracy_tolerance": 2}, ValueError, "accuracy_tolerance must be a number in \\[0, 1\\], got accuracy_tolerance=2"),
        ({"exact_quadratic": "yes"}, TypeError, "exact_quadratic must be None, True or False, got 'yes'"),
        ({"negative": "fold"}, ValueError, "negative must be one of .*'fold'"),
        ({"hvp_method": "fd"}, ValueError, "hvp_method must be one of .*'fd'"),
        ({"hessian_samples": 0}, ValueError, "hessian_samples must be an int >= 1, got hessian_samples=0"),
    ],
)
def test_error_inputs(kwargs, exc, match, digits):
    args = {"model": torch.nn.Linear(64, 10), "data": digits, "generator": torch.Generator()}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        estimate_pruning_limit(args.pop("model"), args.pop("data"), **args)


def test_error_inputs_model_and_eps(digits):
    with pytest.raises(ValueError, match="no prunable"):
        estimate_pruning_limit(torch.nn.Sequential(torch.nn.ReLU()), digits, generator=torch.Generator())
    from nets.data import ArrayDataset

    small = ArrayDataset(torch.zeros(200, 64), torch.zeros(200, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 full training batches of batch_size=128"):
        dense_loss_std(torch.nn.Linear(64, 10), small)


def test_load_state_dict_and_train_default_model(digits, tmp_path):
    model, res = train_default_model(digits, epochs=1, checkpoint_dir=tmp_path / "run")
    assert res.config.l1 == 1e-3 and res.config.epochs == 1 and len(res.history) == 1
    fresh = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(9))
    load_state_dict(fresh, tmp_path / "run" / "checkpoint.pt")  # train's checkpoint format
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    torch.save(model.state_dict(), tmp_path / "plain.pt")  # a plain state_dict
    fresh2 = build_model("mlp", 10, digits.input_shape, generator=torch.Generator().manual_seed(9))
    load_state_dict(fresh2, tmp_path / "plain.pt")
    assert torch.equal(fresh2.net[1].weight, model.net[1].weight)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_state_dict(fresh2, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="does not fit the model"):
        load_state_dict(build_model("mlp", 10, digits.input_shape, hidden=(5,)), tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read checkpoint"):
        load_state_dict(fresh2, tmp_path / "junk.pt")


def test_masked_model_is_pruned_on_the_copy_only(trained, digits):
    """A model carrying torch.nn.utils.prune masks: the pipeline sees the masked weights, the caller keeps the masks."""
    import copy

    from nets.prune import apply_masks, global_magnitude_masks

    model = copy.deepcopy(trained)
    apply_masks(model, global_magnitude_masks(model, 0.5))
    r = estimate_pruning_limit(model, digits, generator=torch.Generator().manual_seed(0), slq_steps=5, slq_probes=2,
                               kept_fractions=[0.5, 1.0], exact_quadratic=False)
    assert hasattr(model.net[1], "weight_orig") and hasattr(model.net[1], "weight_mask")  # caller unchanged
    assert r.model["n_prunable"] == 592
    # the copy holds exactly the masked weights: keeping 50 % by magnitude changes nothing
    assert r.sweep["train_loss"][0] == pytest.approx(r.sweep["train_loss"][1], rel=1e-12)
    assert r.dense["train_loss"] == pytest.approx(r.sweep["train_loss"][1], rel=1e-6)


def test_dense_level_of_the_sweep_is_the_dense_model(result):
    """ρ = 1 keeps every weight: the sweep reports the dense metrics without evaluating the model again."""
    i = int(np.nonzero(result.sweep["kept_fraction"] == 1.0)[0][0])
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert result.sweep[key][i] == result.dense[key]
    assert result.cost["sweep"]["forward_passes"] == 2 * (GRID.size - 1)


def test_hessian_batches_whole_set_or_fixed_subset(digits):
    from nets.limit import hessian_batches

    ds = digits.train_eval
    for (x, y), (x0, y0) in zip(hessian_batches(ds, 500), fixed_batches(ds, 500)):
        assert torch.equal(x, x0) and torch.equal(y, y0)
    n = len(ds)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(3))[:300].sort().values
    sub = hessian_batches(ds, 128, samples=300, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert [int(b[1].shape[0]) for b in sub] == [128, 128, 44] and sub[0][0].dtype == torch.float64
    assert torch.equal(torch.cat([b[1] for b in sub]), ds.batch(idx)[1])
    assert len(hessian_batches(ds, 4096, samples=n + 5)) == 1  # more samples than the set: the whole set
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        hessian_batches(ds, 128, samples=10)


def test_train_default_model_passes_model_kwargs(digits):
    from nets.limit import default_train_config

    model, res = train_default_model(digits, epochs=1, model_kwargs={"hidden": (5,)})
    assert model.net[1].weight.shape == (5, 64) and res.config == default_train_config("mlp", epochs=1)
    assert default_train_config("resnet18").epochs == 200 and default_train_config("resnet18").lr == 0.1
