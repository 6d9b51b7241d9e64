"""Sparsity on target (nets.grda.calibrate and its pieces), gRDA from a pretrained model, the stopping rule."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from nets.data import load_dataset
from nets.grda import (
    GRDA,
    CalibrationConfig,
    PilotRun,
    StoppingCallback,
    StoppingRule,
    StopTraining,
    calibrate,
    calibrate_training,
    predict_c,
    predict_sparsity,
    step_learning_rates,
    threshold_closed_form,
    threshold_factor,
    threshold_increment,
    train_with_stopping,
    training_pilot,
)
from nets.models import build_model
from nets.params import prunable_parameters
from nets.train import TrainConfig, train

EPS64 = np.finfo(np.float64).eps


def tiny_task():
    """A small teacher-student task (256 samples, 8 inputs, 3 classes) and an MLP with 16 hidden units."""
    data = load_dataset("teacher-student", n_train=256, n_test=128, input_dim=8, hidden=8, num_classes=3)
    net = build_model("mlp", 3, (8,), generator=torch.Generator().manual_seed(0), hidden=(16,))
    return data, net


# ---------------------------------------------------------------------------------------------------------
# The threshold of a schedule
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("convention", ["authors", "paper"])
def test_threshold_factor_is_the_optimizers_threshold_per_unit_c(convention):
    """Φ_N·c equals the threshold GRDA accumulates under a schedule with a drop (and the closed form at a
    constant rate): the identity calibrate relies on."""
    lrs = [0.1] * 30 + [0.01] * 20 + [0.05] * 7
    p = nn.Parameter(torch.zeros(3))
    opt = GRDA([p], lr=lrs[0], c=0.37, mu=0.55, convention=convention)
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        p.grad = torch.ones(3)
        opt.step()
    phi = threshold_factor(lrs, len(lrs), 0.55, convention)
    assert 0.37 * phi == pytest.approx(opt.threshold(), rel=100 * EPS64)
    assert threshold_factor([0.1] * 40, 40, 0.55) == threshold_closed_form(40, 0.1, 1.0, 0.55)
    assert threshold_factor(lambda n: 0.1 if n < 30 else 0.01, 50, 0.55) == pytest.approx(
        math.fsum(threshold_increment(n, 0.1 if n <= 30 else 0.01, 1.0, 0.55) for n in range(1, 51)), rel=1e-15)


def test_step_learning_rates_follow_the_epoch_schedule():
    cfg = TrainConfig(optimizer="grda", epochs=4, batch_size=10, lr=0.1, schedule="multistep", milestones=(2,))
    lrs = step_learning_rates(cfg, 25)  # 3 steps per epoch (the last batch has 5 samples)
    assert lrs.tolist() == pytest.approx([0.1] * 6 + [0.1 * 0.1] * 6)
    assert step_learning_rates(replace(cfg, drop_last=True), 25).size == 8


def test_predictor_and_its_inverse():
    a = np.array([0.5, -0.1, 0.3, 0.9, -0.7])  # signs do not matter: |a| counts
    assert predict_sparsity(0.1, a, 3.0) == 0.4  # |a| <= 0.3: 0.1, 0.3
    c = predict_c(0.6, a, 2.0)  # remove 3 of 5: threshold between 0.5 and 0.7
    assert c == pytest.approx(0.3)
    assert predict_sparsity(c, a, 2.0) == 0.6
    assert predict_c(0.0, a, 1.0) == 0.0


# ---------------------------------------------------------------------------------------------------------
# calibrate on a synthetic pilot whose answer is known
# ---------------------------------------------------------------------------------------------------------
def feedback_pilot(kappa, phi, n=2000):
    """Dual sums |a(c)| = u·(1 + κc), u uniform on (0, 1): pruning pushes the sums outward (the feedback of
    the real runs). Then s(c) = F_u(cΦ/(1 + κc)) = cΦ/(1 + κc), and the exact answer is c* = s/(Φ − κs)."""
    u = (np.arange(n) + 0.5) / n

    def pilot(c):
        a = u * (1 + kappa * c)
        return PilotRun(c, float(np.mean(a <= c * phi)), a, threshold=c * phi)

    return pilot


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95])
def test_calibrate_corrects_the_feedback_the_predictor_misses(target):
    phi, kappa = 2.0, 1.5  # s(c) = 2c/(1 + 1.5c) reaches every target below 4/3
    cal = calibrate(target, [1.0] * 4, 4, mu=0.5, pilot=feedback_pilot(kappa, phi), config=CalibrationConfig(0.005))
    exact = target / (phi - kappa * target)
    assert threshold_factor([1.0] * 4, 4, 0.5) == pytest.approx(phi)
    # the predictor alone (the c = 0 pilot) misses by far...
    assert cal.predicted_c == pytest.approx(target / phi, rel=1e-3)
    assert abs(cal.predictor_error) > 0.1
    # ...and the correction reaches the target within tolerance (the sparsity is measured, not predicted)
    assert cal.converged and abs(cal.sparsity - target) <= 0.005
    assert cal.c == pytest.approx(exact, rel=0.05)
    assert len(cal.runs) <= cal.config.max_runs
    assert cal.to_dict()["n_training_runs"] == 1 + len(cal.runs)


def test_calibrate_reports_a_miss_and_checks_the_pilot(caplog):
    def flat(c):  # sparsity never reaches the target
        return PilotRun(c, 0.1, np.linspace(1, 2, 50), threshold=c)

    with caplog.at_level(logging.WARNING, logger="nets.grda"):
        cal = calibrate(0.5, [1.0], 1, mu=0.5, pilot=flat, config=CalibrationConfig(max_runs=3))
    assert not cal.converged and len(cal.runs) == 3 and "no run within" in caplog.text
    with pytest.raises(ValueError, match="differs from c·Φ_N"):
        calibrate(0.5, [1.0], 1, mu=0.5, pilot=lambda c: PilotRun(c, 0.5, np.ones(4), threshold=2 * c + 1))
    with pytest.raises(TypeError, match="pilot must return a PilotRun"):
        calibrate(0.5, [1.0], 1, mu=0.5, pilot=lambda c: 0.5)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(target_sparsity=1.0), ValueError, r"target_sparsity must lie in \(0, 1\), got target_sparsity=1.0"),
        (dict(target_sparsity=-0.1), ValueError, r"target_sparsity must be a number in \[0, 1\]"),
        (dict(steps=0), ValueError, r"steps must be an integer >= 1, got steps=0"),
        (dict(schedule=[0.1, 0.1]), ValueError, r"one learning rate per step \(steps=3\), got 2 rates"),
        (dict(schedule=[0.1, -1.0, 0.1]), ValueError, r"got schedule\[1\]=-1.0"),
        (dict(schedule=[0.0] * 3), ValueError, "never raises the threshold"),
        (dict(mu=0.0), ValueError, r"mu must be a finite number > 0, got mu=0.0"),
        (dict(pilot=3), TypeError, "pilot must be callable"),
        (dict(config={"tolerance": 0.1}), TypeError, "config must be a CalibrationConfig"),
    ],
)
def test_calibrate_error_inputs(kwargs, exc, match):
    args = dict(target_sparsity=0.5, schedule=[0.1] * 3, steps=3, mu=0.55, pilot=feedback_pilot(0.0, 1.0))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        calibrate(args.pop("target_sparsity"), args.pop("schedule"), args.pop("steps"), **args)
    with pytest.raises(ValueError, match=r"tolerance must be a finite number > 0 and <= 0.5, got tolerance=0"):
        CalibrationConfig(tolerance=0)


# ---------------------------------------------------------------------------------------------------------
# calibrate_training on a tiny real task
# ---------------------------------------------------------------------------------------------------------
def test_calibration_reaches_the_target_on_a_tiny_task(tmp_path):
    """Requirement 9: the end-of-training sparsity of a gRDA run at the calibrated c is within ±2 pp of the
    target (measured: the calibrator's own run, and a fresh training run at that c)."""
    data, net = tiny_task()
    before = [p.detach().clone() for p in net.parameters()]
    cfg = TrainConfig(optimizer="grda", epochs=6, batch_size=32, lr=0.1, grda_mu=0.55, schedule="cosine")
    for target in (0.5, 0.8):
        cal = calibrate_training(net, data, cfg, target, workdir=tmp_path / str(target))
        assert cal.converged and abs(cal.error) <= 0.01
        model = copy.deepcopy(net)
        train(model, data, replace(cfg, grda_c=cal.c))
        ws = torch.cat([w.detach().flatten() for _, w in prunable_parameters(model)])
        assert abs(float((ws == 0).double().mean()) - target) <= 0.02
        assert float((ws == 0).double().mean()) == pytest.approx(cal.sparsity, abs=1e-12)  # deterministic rerun
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the caller's model is untouched
    # the pilot's dual sums at c = 0 are the SGD weights; finished runs are reused from the workdir
    pilot = training_pilot(net, data, cfg, workdir=tmp_path / "0.5")
    r0 = pilot(0.0)
    sgd = copy.deepcopy(net)
    train(sgd, data, replace(cfg, optimizer="sgd", momentum=0.0))
    ws = torch.cat([w.detach().flatten().double().abs() for _, w in prunable_parameters(sgd)]).numpy()
    np.testing.assert_array_equal(r0.dual_sums, ws)
    assert r0.threshold == 0.0 and r0.sparsity == 0.0


# ---------------------------------------------------------------------------------------------------------
# From a pretrained model
# ---------------------------------------------------------------------------------------------------------
def test_pretrained_warm_start_semantics():
    """gRDA started at trained weights: the dual sum starts at them (a₁ = w_pre − γ g₁), and with c = 0 the run
    is the pretrained weights' SGD trajectory, bit for bit, epoch by epoch."""
    data, net = tiny_task()
    train(net, data, TrainConfig(optimizer="sgd", momentum=0.0, epochs=3, batch_size=32, lr=0.1))
    w_pre = [p.detach().clone() for p in net.parameters()]
    # one step by hand
    m = copy.deepcopy(net)
    opt = GRDA(m.parameters(), lr=0.05, c=0.5, mu=0.55)
    x, y = data.train.inputs[:32], data.train.targets[:32]
    nn.functional.cross_entropy(m(x), y).backward()
    grads = [p.grad.detach().clone() for p in m.parameters()]
    opt.step()
    for p, w0, g in zip(m.parameters(), w_pre, grads):
        # the foreach kernel may fuse the multiply-add: equal to one rounding of float32
        torch.testing.assert_close(opt.state[p]["accumulator"], w0 - 0.05 * g, rtol=2 ** -23, atol=0)
    # c = 0: the same trajectory as SGD from the pretrained weights
    cfg = TrainConfig(optimizer="grda", grda_c=0.0, epochs=3, batch_size=32, lr=0.05, seed=4)
    traj = {}
    for name, c in (("grda", cfg), ("sgd", replace(cfg, optimizer="sgd", momentum=0.0))):
        model = copy.deepcopy(net)
        snaps = []
        train(model, data, c, progress=lambda r, _m=model, _s=snaps: _s.append([p.detach().clone() for p in _m.parameters()]))
        traj[name] = snaps
    for a, b in zip(traj["grda"], traj["sgd"]):
        assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(traj["sgd"][-1], w_pre))  # it did move
    # c > 0 from the pretrained start prunes (the calibrated path uses the same start)
    model = copy.deepcopy(net)
    train(model, data, replace(cfg, grda_c=2.0))
    assert any((p == 0).any() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------
# The stopping rule
# ---------------------------------------------------------------------------------------------------------
def _history(sparsity, loss):
    return [{"epoch": i + 1, "sparsity": s, "train_loss": l} for i, (s, l) in enumerate(zip(sparsity, loss))]


def test_stopping_rule_conditions():
    rule = StoppingRule(window=4, sparsity_tol=0.01, loss_tol=0.1)
    flat_s, flat_l = [0.5] * 10, [1.0] * 10
    assert rule.first_stop(_history(flat_s, flat_l)) == 5  # needs window + 1 records
    rising = [0.1 * i for i in range(10)]
    assert rule.first_stop(_history(rising, flat_l)) is None  # sparsity still moving
    falling = [2.0**-i for i in range(10)]
    assert rule.first_stop(_history(flat_s, falling)) is None  # loss still falling by half each epoch
    # the sparsity plateaus from epoch 6 on: the window 6..10 is the first inside the tolerance
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.603, 0.605, 0.607, 0.609, 0.61]
    assert rule.first_stop(_history(s, [1.0] * 11)) == 10
    assert "sparsity moved" in rule.check(_history(s, [1.0] * 11)[:10])
    assert StoppingRule(window=4, min_epochs=8).first_stop(_history(flat_s, flat_l)) == 8
    with pytest.raises(ValueError, match="window must be an integer >= 2, got window=1"):
        StoppingRule(window=1)
    with pytest.raises(ValueError, match="sparsity_tol must be a finite number >= 0"):
        StoppingRule(sparsity_tol=-1.0)


def test_stopping_callback_stops_training_at_the_rule():
    data, net = tiny_task()
    cfg = TrainConfig(optimizer="grda", grda_c=0.3, grda_mu=0.55, epochs=40, batch_size=64, lr=0.1)
    full = copy.deepcopy(net)
    hist = train(full, data, cfg).history
    rule = StoppingRule(window=3, sparsity_tol=0.02, loss_tol=0.2)
    e = rule.first_stop(hist)
    assert e is not None and e < cfg.epochs  # the test must exercise a stop
    stopped = copy.deepcopy(net)
    seen = []
    run = train_with_stopping(stopped, data, cfg, rule, progress=seen.append)
    assert run.stopped_epoch == e and run.epochs_saved == cfg.epochs - e and len(seen) == e
    assert [r["test_acc"] for r in run.history] == [r["test_acc"] for r in hist[:e]]
    # constant rate: the stopped model is exactly a run of e epochs
    short = copy.deepcopy(net)
    train(short, data, replace(cfg, epochs=e))
    assert all(torch.equal(p, q) for p, q in zip(stopped.parameters(), short.parameters()))
    assert run.to_dict()["rule"]["window"] == 3
    cb = StoppingCallback(StoppingRule(window=2, sparsity_tol=1.0, loss_tol=10.0))
    cb({"epoch": 1, "sparsity": 0.0, "train_loss": 1.0})
    cb({"epoch": 2, "sparsity": 0.0, "train_loss": 1.0})
    with pytest.raises(StopTraining, match="stopped after epoch 3"):
        cb({"epoch": 3, "sparsity": 0.0, "train_loss": 1.0})
    assert cb.stopped_epoch == 3
