"""nets.directional: dense Hessian, paths and barriers, mask overlap, and the diagnostics with their controls,
against float64 references (torch.func.hessian, numpy) on a tiny MLP."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nets.data import fixed_batches, load_dataset
from nets.directional import (
    BARRIER_DEFINITIONS,
    DiagnosticsConfig,
    PathLosses,
    bezier_point,
    dense_hessian,
    directional_diagnostics,
    fit_bezier,
    flat_parameters,
    functional_loss,
    hessian_eigen,
    mask_overlap,
    masks_of,
    path_losses,
    prunable_index,
    set_flat_parameters,
)
from nets.models import build_model
from nets.prune import global_magnitude_masks


@pytest.fixture(scope="module")
def tiny():
    """digits, an MLP with 3 hidden units (235 parameters), an 'SGD' point and a sparse perturbed 'gRDA' point."""
    data = load_dataset("digits", seed=0)
    g = torch.Generator().manual_seed(1)
    m1 = build_model("mlp", 10, (64,), generator=g, hidden=(3,))
    m2 = copy.deepcopy(m1)
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
            p.mul_((p.abs() > 0.05).to(p.dtype))
    return data, m1, m2


def test_dense_hessian_and_loss_match_torch_func(tiny):
    data, m1, _ = tiny
    batches = fixed_batches(data.train_eval, 500)  # several batches: the sample weighting is exercised
    H, hvps = dense_hessian(m1, batches)
    X = torch.cat([x for x, _ in batches]).double()
    y = torch.cat([t for _, t in batches])
    loss = functional_loss(m1, [(X, y)])
    w = flat_parameters(m1)
    ref = torch.func.hessian(loss)(w).numpy()
    assert hvps == w.numel()
    np.testing.assert_allclose(H, 0.5 * (ref + ref.T), rtol=1e-9, atol=1e-12)
    assert float(functional_loss(m1, batches)(w)) == pytest.approx(float(loss(w)), rel=1e-13)
    eig = hessian_eigen(m1, batches, top=4, solver="dense", generator=torch.Generator())
    np.testing.assert_allclose(eig.eigenvalues, np.linalg.eigvalsh(H)[::-1], rtol=1e-10, atol=1e-12)
    lan = hessian_eigen(m1, batches, top=4, solver="lanczos", generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(lan.eigenvalues, eig.eigenvalues[:4], rtol=1e-8)
    assert lan.converged and not lan.complete
    # flat vectors round-trip
    m3 = set_flat_parameters(m1, 2 * w)
    assert torch.equal(flat_parameters(m3), 2 * w) and torch.equal(flat_parameters(m1), w)
    assert prunable_index(m1).sum() == 64 * 3 + 3 * 10


def test_paths_and_barrier_definitions():
    t = np.linspace(0, 1, 5)
    mono = PathLosses(t, np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert mono.barrier_endpoints == 0.0 and mono.monotone  # "barrier 0" only says the rise is monotone
    assert mono.rise == pytest.approx(0.4) and mono.barrier_interpolation == pytest.approx(0.0, abs=1e-15)
    bump = PathLosses(t, np.array([0.1, 0.6, 0.3, 0.2, 0.1]))
    assert bump.barrier_endpoints == pytest.approx(0.5) and bump.barrier_interpolation == pytest.approx(0.5)
    convex = PathLosses(t, np.array([1.0, 0.2, 0.1, 0.2, 1.0]))
    assert convex.barrier_interpolation == pytest.approx(0.0) and convex.barrier_endpoints == 0.0
    assert set(BARRIER_DEFINITIONS) == {"barrier_endpoints", "barrier_interpolation", "rise"}
    # a quadratic loss: the straight line has exactly the chord-relative bump −¼ ... at t = ½
    loss = lambda w: (w**2).sum()  # noqa: E731
    w0, w1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 0.0], dtype=torch.float64)
    lin = path_losses(loss, w0, w1, points=3)
    assert lin.loss.tolist() == [1.0, 0.0, 1.0] and lin.barrier_interpolation == 0.0
    fit = fit_bezier(loss, w0, w1, steps=0, generator=torch.Generator())
    torch.testing.assert_close(fit.theta, 0.5 * (w0 + w1))
    theta = torch.tensor([0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(bezier_point(w0, theta, w1, 0.5), torch.tensor([0.0, 0.5], dtype=torch.float64))
    fitted = fit_bezier(loss, w0, w1, steps=100, generator=torch.Generator().manual_seed(0), lr=0.05)
    assert float(fitted.theta.norm()) < 0.1  # the optimal control point of E_t |φ(t)|² is near the origin


def test_mask_overlap_on_known_masks():
    a = {"l1.weight": torch.tensor([[True, True], [False, False]]), "l2.weight": torch.tensor([True, False, True])}
    b = {"l1.weight": torch.tensor([[True, False], [True, False]]), "l2.weight": torch.tensor([True, False, True])}
    o = mask_overlap(a, b)
    assert o.per_layer == {"l1.weight": pytest.approx(1 / 3), "l2.weight": 1.0}
    assert o.jaccard == pytest.approx(3 / 5)  # kept {0,1,4,6} vs {0,2,4,6}: 3 shared of 5
    # chance: k_a = k_b = 4 of 7: (16/7) / (8 − 16/7)
    assert o.chance == pytest.approx((16 / 7) / (8 - 16 / 7))
    assert o.kept_fraction_a == pytest.approx(4 / 7) and o.n == 7
    assert mask_overlap(a, a).jaccard == 1.0
    empty = {"w": torch.zeros(3, dtype=torch.bool)}
    assert mask_overlap(empty, empty).jaccard == 1.0
    # chance is what independent random masks give (Monte Carlo, 4 standard errors)
    g = torch.Generator().manual_seed(0)
    js = []
    for _ in range(400):
        ra = {"w": torch.randperm(1000, generator=g) < 300}
        rb = {"w": torch.randperm(1000, generator=g) < 500}
        js.append(mask_overlap(ra, rb).jaccard)
    ref = mask_overlap(ra, rb).chance
    assert abs(np.mean(js) - ref) <= 4 * np.std(js) / np.sqrt(len(js)) + 1e-3
    with pytest.raises(ValueError, match="name different weights"):
        mask_overlap(a, {"l1.weight": a["l1.weight"]})
    with pytest.raises(ValueError, match=r"has shapes \(2, 2\) and \(4,\)"):
        mask_overlap({"w": a["l1.weight"]}, {"w": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(TypeError, match="must be bool tensors"):
        mask_overlap({"w": torch.ones(2)}, {"w": torch.ones(2)})


def test_diagnostics_with_controls(tiny):
    data, m1, m2 = tiny
    before = [p.detach().clone() for p in m1.parameters()]
    cfg = DiagnosticsConfig(top_ks=(1, 4, 1000), path_points=5, bezier_steps=2, compensation_steps=5)
    d = directional_diagnostics(m1, m2, data, training_time=50.0, config=cfg, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, m1.parameters()))  # the caller's model is untouched
    assert set(d.points) == {"grda", "magnitude", "compensated", "compensated_grda_mask", "compensated_reopt",
                             "directional", "random"}
    assert sorted(d.random_expectation) == [1, 4]  # k >= D is dropped
    g = d.points["grda"]
    # every pruned control sits at gRDA's kept fraction of the prunable weights
    for name in ("magnitude", "compensated", "compensated_grda_mask", "compensated_reopt", "directional"):
        assert d.points[name].kept_fraction == pytest.approx(g.kept_fraction, abs=1.5 / d.n_prunable), name
    assert d.points["random"].distance == pytest.approx(g.distance, rel=1e-12)
    # the reference values: dense Hessian, numpy projections, the true loss
    batches = fixed_batches(data.train_eval, 4096)
    H, _ = dense_hessian(m1, batches)
    lam, V = np.linalg.eigh(H)
    lam, V = lam[::-1], V[:, ::-1]
    w1, w2 = flat_parameters(m1).numpy(), flat_parameters(m2).numpy()
    delta = w2 - w1
    assert g.projection_ratio[4] == pytest.approx(np.linalg.norm(V[:, :4].T @ delta) / np.linalg.norm(delta), rel=1e-8)
    sharp = np.abs(lam) > 1.0 / 50.0
    assert g.share_outside_flat[1.0] == pytest.approx(np.linalg.norm(V[:, sharp].T @ delta) / np.linalg.norm(delta),
                                                      rel=1e-8)
    loss = functional_loss(m1, batches)
    assert g.loss_increase == pytest.approx(float(loss(torch.from_numpy(w2)) - loss(torch.from_numpy(w1))), rel=1e-10)
    # the directional control lies in the flat subspace at the cut 1/t (by construction)
    assert d.points["directional"].share_outside_flat[1.0] <= 1e-8
    # the magnitude control is LOMP of w_SGD at gRDA's kept fraction
    lomp = global_magnitude_masks(m1, g.kept_fraction)
    mag = torch.from_numpy(w1.copy())
    flat_mask = torch.cat([lomp[n].reshape(-1) if n in lomp else torch.ones(p.numel(), dtype=torch.bool)
                           for n, p in m1.named_parameters()])
    assert d.points["magnitude"].distance == pytest.approx(float((mag - mag * flat_mask).norm()), rel=1e-12)
    for name in ("compensated", "compensated_reopt"):
        c = d.points[name].extra["compensation"]
        assert c["loss_after"] <= c["loss_pruned"] + 1e-12
    assert d.points["compensated_reopt"].extra["compensation"]["optimizer_evaluations"] <= 5
    # JSON-ready and a summary with the random expectation line
    out = d.to_dict()
    assert out["barrier_definitions"] == BARRIER_DEFINITIONS and "random expectation" in d.summary()
    assert masks_of(m2)["net.1.weight"].dtype == torch.bool
    with pytest.raises(ValueError, match="training_time must be a finite number > 0"):
        directional_diagnostics(m1, m2, data, training_time=0.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="top_ks"):
        DiagnosticsConfig(top_ks=())
