"""Masks and pruning methods: exact counts, tie handling, invariants, sweeps in memory, IMP, Smart-Ratio."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from nets.data import load_dataset
from nets.models import build_model
from nets.params import prunable_parameters
from nets.prune import (
    apply_masks,
    compute_masks,
    fine_tune,
    global_magnitude_masks,
    iterative_magnitude_pruning,
    kept_count,
    layerwise_magnitude_masks,
    magnitude_sweep,
    mask_kept_fraction,
    model_masks,
    random_masks,
    remove_masks,
    smart_ratio_kept_counts,
    smart_ratio_masks,
)
from nets.train import TrainConfig, evaluate


def _mlp(seed=0, hidden=(6, 5)):
    return build_model("mlp", 3, (4,), hidden=hidden, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _flat(model):
    return torch.cat([w.detach().reshape(-1) for _, w in prunable_parameters(model)])


def _kept(masks):
    return sum(int(m.sum()) for m in masks.values())


@given(rho=st.floats(0.0, 1.0), seed=st.integers(0, 10))
def test_lomp_keeps_exactly_ceil_and_the_largest(rho, seed):
    model = _mlp(seed)
    masks = global_magnitude_masks(model, rho)
    w, keep = _flat(model).abs(), torch.cat([m.reshape(-1) for m in masks.values()])
    n = w.numel()
    k = int(keep.sum())
    assert k == kept_count(rho, n)
    # the least count whose fraction reaches ρ, up to float64 rounding of ρ·n (exact rational arithmetic)
    u = Fraction(2) ** -53
    assert Fraction(k, n) >= Fraction(rho) * (1 - 16 * u) and (k == 0 or Fraction(k - 1, n) < Fraction(rho))
    if 0 < keep.sum() < n:  # every kept magnitude >= every removed one
        assert float(w[keep].min()) >= float(w[~keep].max())


def test_lomp_ties_go_to_the_smaller_flat_index():
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0, 1.0], [1.0, 0.5, 1.0]]))
        model[1].weight.copy_(torch.tensor([[1.0, -1.0], [3.0, 1.0]]))
    m = global_magnitude_masks(model, 0.5)  # 5 of 10: 3, 2, then the first three |w| = 1 by flat index
    assert m["0.weight"].tolist() == [[True, True, True], [True, False, False]]
    assert m["1.weight"].tolist() == [[False, False], [True, False]]
    assert kept_count(0.3, 10) == 3  # 0.3*10 is 3.0000000000000004 in floating point


def test_masks_do_not_touch_model_and_leave_biases_and_bn():
    model = build_model("resnet20", 10, (3, 32, 32), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    for method in ("global_magnitude", "layerwise_magnitude", "random", "smart_ratio"):
        masks = compute_masks(model, method, 0.1, generator=g)
        assert set(masks) == {n for n, _ in prunable_parameters(model)}
        expect = (sum(kept_count(0.1, m.numel()) for m in masks.values()) if method == "layerwise_magnitude"
                  else kept_count(0.1, sum(m.numel() for m in masks.values())))  # per-layer vs global ceiling
        assert _kept(masks) == expect, method
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    apply_masks(model, masks)
    remove_masks(model)
    after = model.state_dict()
    for k, v in before.items():
        if "bn" in k or k.endswith("bias") or "running" in k:
            assert torch.equal(after[k], v), k


def test_layerwise_magnitude_counts_per_layer():
    model = _mlp(1)
    masks = layerwise_magnitude_masks(model, {"net.1.weight": 0.5, "net.3.weight": 0.25, "net.5.weight": 1.0})
    assert [int(m.sum()) for m in masks.values()] == [12, 8, 15]
    w = model.net[1].weight.detach().abs()
    assert float(w[masks["net.1.weight"]].min()) >= float(w[~masks["net.1.weight"]].max())


def test_random_masks_are_reproducible_and_uniform():
    model = _mlp(2, hidden=(50,))
    a = random_masks(model, 0.3, generator=torch.Generator().manual_seed(5))
    b = random_masks(model, 0.3, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(a[k], b[k]) for k in a) and _kept(a) == kept_count(0.3, 350)
    # Uniformity: over 400 draws each weight is kept with probability k/N; check the per-weight frequency
    # of the first layer stays within 5 binomial standard errors of 105/350.
    g = torch.Generator().manual_seed(0)
    freq = torch.stack([random_masks(model, 0.3, generator=g)["net.1.weight"].double() for _ in range(400)]).mean(0)
    p = 105 / 350
    assert float((freq - p).abs().max()) < 5 * math.sqrt(p * (1 - p) / 400)
    per_layer = random_masks(model, {"net.1.weight": 0.1, "net.3.weight": 0.5}, generator=g)
    assert [int(m.sum()) for m in per_layer.values()] == [20, 75]


def test_smart_ratio_quadratic_decay_and_exact_total():
    model = build_model("vgg16", 10, (3, 32, 32), device="meta")
    counts = smart_ratio_kept_counts(model, 0.05)
    names = list(counts)
    sizes = {n: w.numel() for n, w in prunable_parameters(model)}
    assert sum(counts.values()) == kept_count(0.05, sum(sizes.values()))
    assert counts["classifier.weight"] == kept_count(0.3, 5120)  # the Linear layer keeps 30 %
    convs = names[:-1]
    L = len(convs)
    ratios = np.array([counts[n] / sizes[n] for n in convs])
    q = np.array([(L - l + 1) ** 2 + (L - l + 1) for l in range(1, L + 1)])
    unclipped = ratios < 1
    # Away from the clip at 1, p_l / q_l is one constant up to integer rounding (1/N_l).
    c = ratios[unclipped] / q[unclipped]
    tol = np.array([1 / sizes[n] for n, u in zip(convs, unclipped) if u]) / q[unclipped]
    assert np.all(np.abs(c - c[-1]) <= tol + tol[-1])
    assert np.all(np.diff(ratios) <= 1e-12)  # decreasing with depth
    # Clipping: a large keep fraction saturates the first layers at 1.
    big = smart_ratio_kept_counts(model, 0.6)
    assert big[names[0]] == sizes[names[0]] and sum(big.values()) == kept_count(0.6, sum(sizes.values()))


def test_smart_ratio_mlp_and_errors():
    model = build_model("fc5", 10, (3, 32, 32), device="meta")
    counts = smart_ratio_kept_counts(model, 0.1)
    assert sum(counts.values()) == kept_count(0.1, 3_883_000)
    masks = smart_ratio_masks(_mlp(0), 0.5, generator=torch.Generator().manual_seed(0))
    assert _kept(masks) == kept_count(0.5, 24 + 30 + 15)
    alex = build_model("alexnet", 10, (3, 32, 32), device="meta")
    with pytest.raises(ValueError, match="the Linear layers alone keep"):
        smart_ratio_kept_counts(alex, 0.05)


def test_masks_survive_optimizer_steps_and_fine_tuning():
    data = load_dataset("teacher-student", n_train=64, n_test=32, input_dim=4, hidden=8, num_classes=3)
    model = _mlp(0)
    masks = global_magnitude_masks(model, 0.4)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, l1=1e-3, l1_params="all")
    res = fine_tune(model, masks, data, cfg)
    assert res.history and not any(hasattr(m, "weight_mask") for m in model.modules())
    for name, w in prunable_parameters(model):
        assert torch.all(w[~masks[name]] == 0), name
        assert torch.any(w[masks[name]] != 0)
    assert res.final["sparsity"] == (69 - kept_count(0.4, 69)) / 69  # exactly the pruned ones are zero
    # apply_masks + model_masks round trip, and AND with an existing mask.
    m2 = _mlp(1)
    apply_masks(m2, masks)
    assert all(torch.equal(model_masks(m2)[k], masks[k]) for k in masks)
    second = random_masks(_mlp(1), 0.5, generator=torch.Generator().manual_seed(0))
    apply_masks(m2, second)
    assert all(torch.equal(model_masks(m2)[k], masks[k] & second[k]) for k in masks)
    assert mask_kept_fraction(model_masks(m2)) < mask_kept_fraction(masks) == kept_count(0.4, 69) / 69


def test_sweep_in_memory_matches_explicit_pruning():
    data = load_dataset("teacher-student", n_train=64, n_test=32, input_dim=4, hidden=8, num_classes=3)
    model = _mlp(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fr = [1.0, 0.5, 0.2, 0.0]
    res = magnitude_sweep(model, fr, lambda m: dict(zip(("loss", "acc"), evaluate(m, data.test))))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert res.kept_counts.tolist() == [69, 35, 14, 0] and res.n_prunable == 69
    for i, rho in enumerate(fr):
        ref = _mlp(3)
        apply_masks(ref, global_magnitude_masks(ref, rho))
        loss, acc = evaluate(ref, data.test)
        assert res.metrics["loss"][i] == pytest.approx(loss, rel=1e-12) and res.metrics["acc"][i] == acc
    assert magnitude_sweep(model, [0.5], lambda m: 1.0).metrics["value"].tolist() == [1.0]


def test_sweep_on_a_model_carrying_prune_masks():
    # torch.nn.utils.prune makes `weight` a non-leaf tensor that copy.deepcopy refuses; the sweep must still work
    # on such a model, leave its masks in place, and start from its already-pruned weights.
    data = load_dataset("teacher-student", n_train=64, n_test=32, input_dim=4, hidden=8, num_classes=3)
    model = _mlp(3)
    apply_masks(model, global_magnitude_masks(model, 0.5))
    masks_before = {k: v.clone() for k, v in model_masks(model).items()}
    res = magnitude_sweep(model, [1.0, 0.5, 0.25], lambda m: dict(zip(("loss", "acc"), evaluate(m, data.test))))
    assert res.kept_counts.tolist() == [69, 35, 18]
    # kept fractions 1.0 and 0.5 keep the same weights (the masked model already has 34 zeros)
    assert res.metrics["loss"][0] == pytest.approx(res.metrics["loss"][1], rel=1e-12)
    assert all(torch.equal(masks_before[k], v) for k, v in model_masks(model).items())


def test_imp_with_rewinding_gives_nested_masks():
    data = load_dataset("teacher-student", n_train=64, n_test=32, input_dim=4, hidden=8, num_classes=3)
    model = _mlp(4)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05)
    out = iterative_magnitude_pruning(model, data, cfg, rounds=2, prune_fraction=0.5, rewind_epoch=0)
    assert [r["round"] for r in out.rounds] == [0, 1, 2]
    assert _kept(out.masks) == kept_count(0.25, 69)
    for name, w in prunable_parameters(model):
        assert torch.all(w[~out.masks[name]] == 0)
    assert not torch.equal(model.state_dict()["net.1.weight"], init["net.1.weight"])
    # Layerwise rounds and rewinding to epoch 1 run too.
    out2 = iterative_magnitude_pruning(_mlp(4), data, cfg, rounds=1, prune_fraction=0.5, rewind_epoch=1, layerwise=True)
    assert [int(m.sum()) for m in out2.masks.values()] == [12, 15, 8]


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda m: global_magnitude_masks(m, 1.5), ValueError, r"kept_fraction must be a number in \[0, 1\], got kept_fraction=1.5"),
        (lambda m: compute_masks(m, "snip", 0.5), ValueError, "pruning_method must be one of .*got pruning_method='snip'"),
        (lambda m: compute_masks(m, "random", 0.5), ValueError, "needs an explicit torch.Generator"),
        (lambda m: random_masks(m, 0.5, generator=None), TypeError, "generator must be a torch.Generator"),
        (lambda m: layerwise_magnitude_masks(m, {"net.1.weight": 0.5}), ValueError, "must name every prunable weight"),
        (lambda m: apply_masks(m, {"net.1.bias": torch.ones(6, dtype=torch.bool)}), ValueError, "not a prunable weight"),
        (lambda m: apply_masks(m, {"net.1.weight": torch.ones(6, 4)}), TypeError, "must be a bool tensor"),
        (lambda m: apply_masks(m, {"net.1.weight": torch.ones(4, 6, dtype=torch.bool)}), ValueError, "has shape"),
        (lambda m: magnitude_sweep(m, [], lambda x: 0.0), ValueError, "kept_fractions is empty"),
        (lambda m: iterative_magnitude_pruning(m, None, TrainConfig(epochs=1), rounds=0), ValueError, "rounds must be"),
        (lambda m: iterative_magnitude_pruning(m, None, TrainConfig(epochs=1), rounds=1, prune_fraction=1.0),
         ValueError, r"prune_fraction must lie in \(0, 1\)"),
        (lambda m: iterative_magnitude_pruning(m, None, TrainConfig(epochs=2), rounds=1, rewind_epoch=2),
         ValueError, r"rewind_epoch must be an integer in \[0, 1\], got rewind_epoch=2"),
    ],
)
def test_prune_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_mlp(0))


def test_non_finite_weights_are_refused():
    m = _mlp(0)
    with torch.no_grad():
        m.net[1].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight 'net.1.weight' has non-finite entries"):
        global_magnitude_masks(m, 0.5)
