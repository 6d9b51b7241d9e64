"""nets.compensate: the quadratic step equals the dense Schur-complement oracle; masks are never violated;
compensation never makes the true loss worse than plain pruning."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch import nn

import nets.compensate as comp_mod
from nets.compensate import CompensationConfig, Compensator, compensate
from nets.prune import global_magnitude_masks
from theory.limits import kept_count
from theory.quadratic import QuadraticModel


def _half_mse(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out - t) ** 2).sum(dim=1).mean()


def _quadratic_problem(n: int = 200, d: int = 12, seed: int = 0, at_minimum: bool = True):
    """A linear model with the half mean squared error: L(w) = ½ (w − w_opt)ᵀ H (w − w_opt) + const exactly,
    H = XᵀX/n, so the compensated loss has a closed form. ``at_minimum`` puts w* at the least-squares solution
    (g = 0), else w* is perturbed (g ≠ 0)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3.0, d, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64) * torch.logspace(-2, 0, d, dtype=torch.float64)
    y = (X @ w_true + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).reshape(-1, 1)
    w_opt = torch.linalg.lstsq(X, y).solution.reshape(-1)
    w_star = w_opt if at_minimum else w_opt + 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star.reshape(1, -1))
    H = (X.T @ X / n).numpy()
    return model, [(X[:120], y[:120]), (X[120:], y[120:])], X, y, H, w_star.numpy()


def test_doctests() -> None:
    res = doctest.testmod(comp_mod, raise_on_error=False)
    assert res.attempted > 0 and res.failed == 0


@pytest.mark.parametrize("k", [1, 4, 7, 11])
def test_quadratic_step_equals_dense_schur_oracle(k: int) -> None:
    """At a minimum (g = 0) the compensated increase is ½ c_Pᵀ S c_P and the weights those of the dense oracle,
    to 1e-6 relative (CG tolerance 1e-12, float64)."""
    model, batches, X, y, H, w = _quadratic_problem()
    cfg = CompensationConfig(cg_rtol=1e-12, line_search=False)
    c = Compensator(model, batches, loss=_half_mse, config=cfg)
    res = c(k)
    oracle = QuadraticModel(H, w)
    kept = oracle.magnitude_support(k)
    want = oracle.compensated_increase(kept)
    assert res.cg.status == "converged"
    assert res.predicted_increase_compensated == pytest.approx(want, rel=1e-6)
    assert res.increase_after == pytest.approx(want, rel=1e-6)  # the loss is exactly quadratic
    np.testing.assert_allclose(res.weights.numpy(), oracle.compensated_weights(kept), rtol=1e-6, atol=1e-12)
    # uncompensated: the Taylor prediction equals the true loss of plain pruning and the oracle's ½ c_Pᵀ H_PP c_P
    assert res.predicted_increase_uncompensated == pytest.approx(oracle.uncompensated_increase(kept), rel=1e-9)
    assert res.increase_pruned == pytest.approx(oracle.uncompensated_increase(kept), rel=1e-9)


def test_quadratic_step_with_gradient_term_reaches_the_constrained_minimum() -> None:
    """Away from the minimum (g ≠ 0) the quadratic step is still exact for a quadratic loss: the loss after
    compensation equals min over w_S of L(w_S, w_P = 0), computed by least squares on the kept columns."""
    model, batches, X, y, H, w = _quadratic_problem(at_minimum=False)
    c = Compensator(model, batches, loss=_half_mse, config=CompensationConfig(cg_rtol=1e-12))
    assert float(c.gradient.abs().max()) > 1e-3  # the gradient term is really there
    for k in (3, 8):
        res = c(k)
        S = np.sort(np.argsort(-np.abs(w), kind="stable")[:k])
        wS = np.linalg.lstsq(X.numpy()[:, S], y.numpy().reshape(-1), rcond=None)[0]
        best = 0.5 * np.mean((X.numpy()[:, S] @ wS - y.numpy().reshape(-1)) ** 2)
        assert res.loss_after == pytest.approx(best, rel=1e-8)
        assert res.step_size == 1.0
        assert res.loss_dense + res.predicted_increase_compensated == pytest.approx(best, rel=1e-8)


def _mlp_task(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 10, generator=g)
    y = (X[:, :3].sum(1) > 0).long() + (X[:, 3] > 1).long()
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    return model, [(X[:128], y[:128]), (X[128:], y[128:])]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_masks_are_never_violated_and_loss_never_worse(optimizer: str) -> None:
    model, batches = _mlp_task()
    before = [p.detach().clone() for p in model.parameters()]
    masks = global_magnitude_masks(model, 0.3)
    res = compensate(model, masks, batches, config=CompensationConfig(steps=30, optimizer=optimizer,
                                                                      lr=None if optimizer == "lbfgs" else 1e-2))
    for name, m in masks.items():
        w = dict(res.model.named_parameters())[name]
        assert bool((w[~m] == 0).all()), name  # exactly zero where pruned
    assert res.loss_after <= res.loss_quadratic_step <= res.loss_pruned
    assert res.optimizer_evaluations >= 1 and res.hvps >= 2 and res.cg.iterations >= 1
    # the caller's model is untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # the result's model and weights agree
    flat = torch.cat([w.detach().reshape(-1) for n, w in res.model.named_parameters() if n in masks])
    assert torch.equal(flat, res.weights)


def test_compensation_recovers_much_of_the_pruning_loss_on_an_mlp() -> None:
    model, batches = _mlp_task(1)
    c = Compensator(model, batches, config=CompensationConfig(steps=50))
    res = c(0.4)
    assert res.increase_after < 0.5 * res.increase_pruned
    assert res.kept_count == kept_count(0.4, c.N)


def test_kept_forms_agree() -> None:
    model, batches = _mlp_task()
    c = Compensator(model, batches)
    k = 100
    masks = global_magnitude_masks(model, k / c.N)
    a = c.kept_mask(k)
    assert torch.equal(a, c.kept_mask(masks)) and torch.equal(a, c.kept_mask(a)) and int(a.sum()) == k
    assert int(c.kept_mask(0.5).sum()) == int(np.ceil(0.5 * c.N))


def test_extremes_cost_nothing_and_are_exact() -> None:
    model, batches = _mlp_task()
    c = Compensator(model, batches)
    full = c(c.N)
    assert full.loss_pruned == pytest.approx(c.loss_dense, rel=1e-6) and full.hvps == 0
    empty = c(0)
    assert empty.kept_count == 0 and float(empty.weights.abs().max()) == 0.0


@pytest.mark.parametrize(
    "make, exc, msg",
    [
        (lambda: CompensationConfig(steps=-1), ValueError, "steps must be an integer >= 0, got steps=-1"),
        (lambda: CompensationConfig(optimizer="sgd"), ValueError, "optimizer must be one of"),
        (lambda: CompensationConfig(cg_rtol=0.0), ValueError, "cg_rtol must be a finite number > 0"),
        (lambda: CompensationConfig(line_search=1), TypeError, "line_search must be a bool"),
        (lambda: Compensator(nn.ReLU(), [(torch.ones(1, 1), torch.ones(1))]), ValueError, "no prunable"),
        (lambda: Compensator(nn.Linear(2, 2), []), TypeError, "data must be a non-empty list"),
        (lambda: Compensator(nn.Linear(2, 2), [(torch.ones(3, 2), torch.zeros(3).long())])(5), ValueError,
         r"kept must be an integer in \[0, 4\], got kept=5"),
    ],
)
def test_error_inputs(make, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        make()


def test_reoptimise_continues_a_quadratic_step_exactly() -> None:
    """Compensator.reoptimise(k, self(k, reoptimise=False)) is self(k, reoptimise=True) without a second CG solve
    (the compensated search's re-optimised pass reuses its grid levels this way); costs add up; a result of another
    kept set is refused."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(200, 6, generator=g), torch.randint(0, 3, (200,), generator=g)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    c = Compensator(model, [(X[:100], y[:100]), (X[100:], y[100:])], config=CompensationConfig(steps=10))
    k = 30
    c.damping  # the first solve's damping (an eigensolve, cached) is paid before the costs are compared
    direct = c(k, reoptimise=True)
    quad = c(k, reoptimise=False)
    h0 = c.operator.cost()["hvps"]
    cont = c.reoptimise(k, quad)
    assert c.operator.cost()["hvps"] == h0  # no CG solve repeated
    assert cont.loss_after == direct.loss_after and cont.loss_quadratic_step == direct.loss_quadratic_step
    assert torch.equal(cont.weights, direct.weights)
    assert cont.optimizer_evaluations == direct.optimizer_evaluations > 0
    assert cont.hvps == direct.hvps and cont.gradients == direct.gradients
    with pytest.raises(ValueError, match="quadratic-step-only result of the same kept set"):
        c.reoptimise(k + 1, quad)
    with pytest.raises(ValueError, match="quadratic-step-only result"):
        c.reoptimise(k, direct)
