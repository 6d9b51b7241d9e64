"""Rare Gems / Gem-Miner (nets.raregems): the ticket's exact sparsity, a search that never changes the model, a
mask that stays fixed through fine-tuning, the straight-through gradient, the annealing schedule and the
projected score step, against independent computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nets.data import load_dataset
from nets.models import build_model, init_weights
from nets.params import count_parameters, prunable_parameters
from nets.prune import mask_kept_fraction
from nets.raregems import (
    GemMinerConfig,
    annealing_schedule,
    finetune_config,
    freeze_lowest,
    gem_miner,
    rare_gems,
    score_step,
    straight_through_mask,
)
from nets.train import evaluate
from theory.limits import kept_count

TS = {"n_train": 256, "n_test": 128, "input_dim": 8, "hidden": 8, "num_classes": 4}


@pytest.fixture(scope="module")
def data():
    return load_dataset("teacher-student", **TS)


def _mlp(seed: int = 0, bn: bool = False) -> nn.Module:
    if bn:
        return init_weights(nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)),
                            torch.Generator().manual_seed(seed))
    return build_model("mlp", 4, (8,), generator=torch.Generator().manual_seed(seed), hidden=(16,))


@pytest.mark.parametrize("rho", [0.5, 0.1, 0.013, 1.0])
def test_ticket_keeps_exactly_the_target_count(data, rho):
    model = _mlp()
    n = count_parameters(model, prunable_only=True)
    res = gem_miner(model, data, GemMinerConfig(rho, epochs=4, iter_period=1, batch_size=64))
    kept = sum(int(m.sum()) for m in res.masks.values())
    assert kept == res.kept_count == kept_count(rho, n)
    assert mask_kept_fraction(res.masks) == pytest.approx(kept / n)
    assert set(res.masks) == {name for name, _ in prunable_parameters(model)}
    assert all(m.dtype == torch.bool and m.shape == w.shape for (name, w), m in
               zip(prunable_parameters(model), res.masks.values()))
    # the active fraction follows the annealing schedule epoch by epoch and ends at the target
    sched = annealing_schedule(rho, n, 4, 1)
    for rec in res.history:
        if rec["epoch"] in sched:
            assert rec["active_fraction"] == pytest.approx(sched[rec["epoch"]] / n)
    assert res.history[-1]["active_fraction"] == pytest.approx(kept / n)


def test_search_never_changes_the_model(data):
    model = _mlp(bn=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad for p in model.parameters()]
    res = gem_miner(model, data, GemMinerConfig(0.3, epochs=3, iter_period=1, batch_size=64))
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # weights, biases, BatchNorm affine parameters and running statistics: bit for bit
        assert torch.equal(before[k], after[k]), k
    assert model.training and [p.grad for p in model.parameters()] == grads
    assert all(p.requires_grad for p in model.parameters())
    s = res.scores
    assert s.shape == (count_parameters(model, prunable_only=True),)
    assert bool(((s >= 0) & (s <= 1)).all())


def test_scores_move_and_the_search_is_deterministic(data):
    cfg = GemMinerConfig(0.25, epochs=3, iter_period=1, batch_size=64, seed=3)
    a = gem_miner(_mlp(), data, cfg)
    b = gem_miner(_mlp(), data, cfg)
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert torch.equal(a.scores, b.scores)
    init = torch.rand(a.scores.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64).float()
    assert not torch.equal(a.scores, init)  # the scores were trained
    c = gem_miner(_mlp(), data, GemMinerConfig(0.25, epochs=3, iter_period=1, batch_size=64, seed=4))
    assert any(not torch.equal(a.masks[k], c.masks[k]) for k in a.masks)


def test_search_beats_a_random_ticket_at_initialisation(data):
    """Gem-Miner minimises the training loss of the masked initial network: its ticket must beat a random mask
    of the same sparsity there (fixed seeds; the margin is large)."""
    model = _mlp()
    res = gem_miner(model, data, GemMinerConfig(0.3, epochs=12, iter_period=2, batch_size=64, score_l2=0.0))

    def masked_loss(masks):
        m = _mlp()
        with torch.no_grad():
            for name, w in prunable_parameters(m):
                w.mul_(masks[name].to(w.dtype))
        return evaluate(m, data.train_eval)[0]

    g = torch.Generator().manual_seed(0)
    random = {}
    for name, m in res.masks.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=g)[: int(m.sum())]] = True
        random[name] = flat.reshape(m.shape)
    assert masked_loss(res.masks) < masked_loss(random) - 0.05


def test_mask_is_fixed_through_finetuning(data):
    model = _mlp()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    search = GemMinerConfig(0.2, epochs=3, iter_period=1, batch_size=64)
    res = rare_gems(model, data, search, finetune_config(search, epochs=4, lr=0.05))
    for name, w in prunable_parameters(model):
        mask = res.masks[name]
        assert bool((w.detach()[~mask] == 0).all()), name          # pruned weights stay exactly zero
        assert not torch.equal(w.detach()[mask], init[name][mask])  # kept weights were fine-tuned
    assert not any(hasattr(m, "weight_mask") for m in model.modules())  # the masks were made permanent
    assert res.finetune.epochs_run == 4 and 0.0 <= res.gem_test_acc <= 1.0
    assert res.extra["kept_fraction"] == pytest.approx(res.search.kept_fraction)


def test_straight_through_gradient_is_the_masked_weight_gradient():
    """d/dp of L(w ⊙ m(p)) equals a ⊙ w ⊙ ∂L/∂(w ⊙ m): the gradient at the rounded mask, passed straight through."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 5, generator=g, dtype=torch.float64)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    p = torch.rand(6, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    active = torch.rand(6, 5, generator=g) < 0.7
    m = straight_through_mask(p, active, 0.5)
    assert torch.equal(m.detach(), (active & (p.detach() > 0.5)).double())
    loss = torch.tanh(x @ (w * m).T).pow(2).sum()
    (gp,) = torch.autograd.grad(loss, p)
    weff = (w * m.detach()).requires_grad_(True)
    (gw,) = torch.autograd.grad(torch.tanh(x @ weff.T).pow(2).sum(), weff)
    torch.testing.assert_close(gp, active.double() * w * gw, rtol=1e-12, atol=1e-14)


def test_score_step_is_sgd_on_the_regularised_objective_then_clipping():
    g = torch.Generator().manual_seed(1)
    p0 = torch.rand(50, generator=g, dtype=torch.float64)
    grads = [torch.randn(50, generator=g, dtype=torch.float64) for _ in range(4)]
    lam, lr, mom = 0.3, 0.2, 0.9
    ours, buf = p0.clone(), None
    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([ref], lr=lr, momentum=mom)
    for gr in grads:
        buf = score_step(ours, buf, gr, lr=lr, momentum=mom, weight_decay=0.0, score_l2=lam)
        opt.zero_grad()
        (ref * gr).sum().add(lam * ref.pow(2).sum()).backward()
        opt.step()
        with torch.no_grad():
            ref.clamp_(0.0, 1.0)
    torch.testing.assert_close(ours, ref.detach(), rtol=0, atol=1e-15)
    assert bool(((ours >= 0) & (ours <= 1)).all())


def test_freeze_lowest_never_revives_and_breaks_ties_by_index():
    s = torch.tensor([0.5, 0.9, 0.5, 0.1, 0.95])
    active = torch.tensor([True, True, True, True, False])
    keep = freeze_lowest(s, active, 2)
    assert keep.tolist() == [True, True, False, False, False]  # 0.95 is frozen; tie at 0.5 keeps index 0
    assert freeze_lowest(s, active, 0).sum() == 0
    with pytest.raises(ValueError, match="k must be an integer in"):
        freeze_lowest(s, active, 5)


@pytest.mark.parametrize("rho,n,epochs,period", [(0.1, 1000, 30, 5), (0.013, 777, 12, 3), (0.5, 10, 1, 5),
                                                 (1.0, 50, 20, 5)])
def test_annealing_schedule_is_geometric_and_exact(rho, n, epochs, period):
    sched = annealing_schedule(rho, n, epochs, period)
    ks = list(sched.values())
    assert ks[-1] == kept_count(rho, n)
    assert all(a >= b for a, b in zip(ks, ks[1:]))
    assert all(1 <= e <= epochs for e in sched)
    J = len(sched)
    if J > 1:
        for j, k in enumerate(ks[:-1], 1):
            assert k == max(kept_count(rho ** (j / J), n), kept_count(rho, n))
        assert J == (epochs - 1) // period


def test_finetune_config_scales_the_authors_milestones():
    cfg = finetune_config(GemMinerConfig(0.1, epochs=30, seed=2))
    assert cfg.milestones == (16, 24) and cfg.lr == 0.01 and cfg.l1 == 0.0 and cfg.seed == 2
    assert finetune_config(GemMinerConfig(0.1, epochs=1)).schedule == "constant"


@pytest.mark.parametrize("kwargs,match", [
    ({"kept_fraction": 0.0}, "kept_fraction must be > 0"),
    ({"kept_fraction": 1.5}, r"kept_fraction must be a number in \[0, 1\]"),
    ({"kept_fraction": 0.5, "epochs": 0}, "epochs must be an integer >= 1"),
    ({"kept_fraction": 0.5, "threshold": 1.0}, "threshold must be a finite number > 0 and < 1"),
    ({"kept_fraction": 0.5, "schedule": "step"}, "schedule must be one of"),
    ({"kept_fraction": 0.5, "score_l2": -1.0}, "score_l2 must be a finite number >= 0"),
    ({"kept_fraction": 0.5, "momentum": 1.0}, "momentum must be a finite number >= 0 and < 1"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GemMinerConfig(**kwargs)


def test_bad_arguments_are_refused(data):
    with pytest.raises(TypeError, match="config must be a GemMinerConfig"):
        gem_miner(_mlp(), data, {"kept_fraction": 0.5})
    with pytest.raises(ValueError, match="no prunable"):
        gem_miner(nn.Sequential(nn.Flatten(), nn.Softmax(dim=1)), data, GemMinerConfig(0.5, epochs=1))
    with pytest.raises(TypeError, match="finetune must be a TrainConfig"):
        rare_gems(_mlp(), data, GemMinerConfig(0.5, epochs=1, iter_period=1), finetune={"epochs": 1})
    assert math.isclose(GemMinerConfig(0.1, epochs=10).lr_at(5), 0.05)
