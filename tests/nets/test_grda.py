"""Tests of :mod:`nets.grda` against a float64 step-by-step reference written from docs/math.md §4."""

from __future__ import annotations

import doctest
import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import nets.grda as grda_mod
from nets.grda import GRDA, grda_update, threshold_closed_form, threshold_increment

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)


# ----------------------------------------------------------------------------------------------------------
# A reference implementation written from docs/math.md §4 (the authors' PyTorch semantics), numpy float64,
# one parameter at a time, with the threshold accumulated naively: n += 1; a -= lr*grad;
# T += c*lr^(mu+1/2)*(n^mu - (n-1)^mu); w = sign(a)*max(|a| - T, 0).
# ----------------------------------------------------------------------------------------------------------
class ReferenceGRDA:
    def __init__(self, weights, c, mu, paper=False):
        self.w = [np.array(w, dtype=np.float64) for w in weights]
        self.a = [w.copy() for w in self.w]
        self.T = [0.0 for _ in self.w]
        self.n = [0 for _ in self.w]
        self.c, self.mu, self.paper = c, mu, paper

    def step(self, grads, lr):
        for i, g in enumerate(grads):
            self.n[i] += 1
            self.a[i] = self.a[i] - lr * g
            k = self.n[i] - (1 if self.paper else 0)
            if k >= 1:
                self.T[i] += self.c * lr ** (self.mu + 0.5) * (k**self.mu - (k - 1) ** self.mu)
            self.w[i] = np.sign(self.a[i]) * np.maximum(np.abs(self.a[i]) - self.T[i], 0.0)


def _problem(seed=0):
    """Three tensors with a smooth nonlinear gradient g(w) = A w - b + 0.1 w^3 (per flattened tensor)."""
    rng = np.random.default_rng(seed)
    shapes = [(6, 5), (5,), (3, 2, 2)]
    w0, A, b = [], [], []
    for s in shapes:
        k = int(np.prod(s))
        M = rng.standard_normal((k, k)) / math.sqrt(k)
        A.append(M @ M.T + 0.1 * np.eye(k))
        b.append(rng.standard_normal(k))
        w0.append(rng.standard_normal(s))
    return shapes, w0, A, b


def _grad_np(w, A, b):
    v = w.reshape(-1)
    return (A @ v - b + 0.1 * v**3).reshape(w.shape)


def _grad_torch(p, A, b):
    v = p.detach().reshape(-1).to(torch.float64).numpy()
    return torch.from_numpy(_grad_np(v, A, b)).reshape(p.shape).to(p.dtype)


def _lr_at(step):  # LR schedule with a change: 0.05 for 100 steps, then 0.005 (the authors' 10x drop)
    return 0.05 if step < 100 else 0.005


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("convention", ["authors", "paper"])
def test_matches_float64_reference_over_200_steps_with_lr_change(foreach, convention):
    shapes, w0, A, b = _problem()
    c, mu = 3.0, 0.55
    ref = ReferenceGRDA(w0, c, mu, paper=convention == "paper")
    params = [nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in w0]
    opt = GRDA(params, lr=_lr_at(0), c=c, mu=mu, convention=convention, foreach=foreach)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_at(s) / _lr_at(0))
    worst = 0.0
    for n in range(200):
        for p, Ai, bi in zip(params, A, b):
            p.grad = _grad_torch(p, Ai, bi)
        ref.step([_grad_np(w, Ai, bi) for w, Ai, bi in zip(ref.w, A, b)], _lr_at(n))
        opt.step()
        sched.step()
        for p, w in zip(params, ref.w):
            worst = max(worst, float(np.max(np.abs(p.detach().numpy() - w))))
        assert opt.threshold() == pytest.approx(ref.T[0], rel=1e3 * EPS64, abs=1e-300)
    # float64 both sides; a few hundred roundings of O(1) numbers (tolerance 1e3 eps).
    assert worst <= 1e3 * EPS64
    sparsity = np.mean(np.concatenate([w.reshape(-1) == 0 for w in ref.w]))
    assert 0.1 < sparsity < 0.95, "the problem must actually exercise the threshold"
    assert all(opt.param_groups[0]["grda_step"] == n for n in ref.n)


def test_float32_parameters_track_float64_reference():
    shapes, w0, A, b = _problem(1)
    ref = ReferenceGRDA(w0, 0.3, 0.6)
    params = [nn.Parameter(torch.tensor(w, dtype=torch.float32)) for w in w0]
    opt = GRDA(params, lr=0.05, c=0.3, mu=0.6)
    for n in range(200):
        for p, Ai, bi in zip(params, A, b):
            p.grad = _grad_torch(p, Ai, bi)
        ref.step([_grad_np(w, Ai, bi) for w, Ai, bi in zip(ref.w, A, b)], 0.05)
        opt.step()
    err = max(float(np.max(np.abs(p.detach().double().numpy() - w))) for p, w in zip(params, ref.w))
    # 200 steps of float32 rounding of O(1) values on a contracting map: well within 200*eps32 per unit.
    assert err <= 200 * EPS32


def test_threshold_closed_form_equals_telescoped_sum():
    for mu in (0.501, 0.55, 0.9):
        T = 0.0
        for n in range(1, 100_001):
            T += threshold_increment(n, 0.1, 0.005, mu)
        closed = threshold_closed_form(100_000, 0.1, 0.005, mu)
        assert T == pytest.approx(closed, rel=100 * EPS64 * math.sqrt(1e5))
    # the expm1/log1p form has no cancellation: compare with exact rational arithmetic at large n
    from fractions import Fraction  # noqa: F401  (mpmath gives the exact reference)
    import mpmath

    mpmath.mp.dps = 50
    n, mu = 10**9, 0.55
    exact = float(mpmath.mpf(n) ** mu - mpmath.mpf(n - 1) ** mu)
    assert threshold_increment(n, 1.0, 1.0, mu) == pytest.approx(exact, rel=10 * EPS64)


def test_threshold_is_float64_and_closed_form_when_lr_constant():
    p = nn.Parameter(torch.zeros(3))
    opt = GRDA([p], lr=0.1, c=0.01, mu=0.51)
    for _ in range(1000):
        p.grad = torch.ones(3)
        opt.step()
    assert opt.threshold() == threshold_closed_form(1000, 0.1, 0.01, 0.51)  # exact: no accumulation
    assert opt.param_groups[0]["grda_constant"] == [0.1, 0.01, 0.51]
    opt.param_groups[0]["lr"] = 0.01
    p.grad = torch.ones(3)
    opt.step()
    assert opt.param_groups[0]["grda_constant"] is None
    expected = threshold_closed_form(1000, 0.1, 0.01, 0.51) + threshold_increment(1001, 0.01, 0.01, 0.51)
    assert opt.threshold() == expected


def _model(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 5, generator=g), torch.randint(0, 3, (32,), generator=g)


def _train(model, opt, steps, X, y, sched=None):
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
        if sched is not None:
            sched.step()
        traj.append([p.detach().clone() for p in model.parameters()])
    return traj


@pytest.mark.parametrize(
    "kw_sgd",
    [dict(), dict(momentum=0.9), dict(momentum=0.9, weight_decay=1e-3), dict(weight_decay=5e-4)],
)
@pytest.mark.parametrize("foreach", [True, False])
def test_c_zero_equals_sgd_exactly(kw_sgd, foreach):
    X, y = _data()
    m1, m2 = _model(), _model()
    sgd = torch.optim.SGD(m1.parameters(), lr=0.1, foreach=foreach, **kw_sgd)
    # torch's SGD momentum buffer is undamped: dampening=0 reproduces it exactly
    extra = dict(dampening=0.0) if kw_sgd.get("momentum") else {}
    grda = GRDA(m2.parameters(), lr=0.1, c=0.0, mu=0.6, foreach=foreach, **kw_sgd, **extra)
    t1, t2 = _train(m1, sgd, 40, X, y), _train(m2, grda, 40, X, y)
    for a, b in zip(t1, t2):
        for p, q in zip(a, b):
            assert torch.equal(p, q)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(momentum=0.9),
        dict(momentum=0.5, dampening=0.1, weight_decay=1e-2, threshold_params="weights"),
        dict(float64_accumulator=True, momentum=0.9, weight_decay=1e-3),
    ],
)
def test_foreach_and_for_loop_paths_are_identical(kw):
    X, y = _data()
    m1, m2 = _model(), _model()
    o1 = GRDA(m1.parameters(), lr=0.2, c=0.05, mu=0.6, foreach=True, **kw)
    o2 = GRDA(m2.parameters(), lr=0.2, c=0.05, mu=0.6, foreach=False, **kw)
    t1, t2 = _train(m1, o1, 60, X, y), _train(m2, o2, 60, X, y)
    for a, b in zip(t1, t2):
        for p, q in zip(a, b):
            assert torch.equal(p, q)
    assert any((p == 0).any() for p in m1.parameters())


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9, weight_decay=1e-3), dict(float64_accumulator=True)])
def test_state_dict_resume_gives_identical_trajectory(kw):
    X, y = _data()
    lam = lambda s: 1.0 if s < 25 else 0.1  # noqa: E731 - LR change inside the resumed segment
    m_full = _model()
    o_full = GRDA(m_full.parameters(), lr=0.2, c=0.05, mu=0.55, **kw)
    s_full = torch.optim.lr_scheduler.LambdaLR(o_full, lam)
    full = _train(m_full, o_full, 40, X, y, s_full)

    m_a = _model()
    o_a = GRDA(m_a.parameters(), lr=0.2, c=0.05, mu=0.55, **kw)
    s_a = torch.optim.lr_scheduler.LambdaLR(o_a, lam)
    _train(m_a, o_a, 20, X, y, s_a)
    buf = io.BytesIO()
    torch.save({"model": m_a.state_dict(), "opt": o_a.state_dict(), "sched": s_a.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m_b = _model(seed=5)  # different initial values: everything must come from the checkpoint
    m_b.load_state_dict(ck["model"])
    o_b = GRDA(m_b.parameters(), lr=0.2, c=0.05, mu=0.55, **kw)
    s_b = torch.optim.lr_scheduler.LambdaLR(o_b, lam)
    o_b.load_state_dict(ck["opt"])
    s_b.load_state_dict(ck["sched"])
    resumed = _train(m_b, o_b, 20, X, y, s_b)
    for a, b in zip(full[20:], resumed):
        for p, q in zip(a, b):
            assert torch.equal(p, q)
    if kw.get("float64_accumulator"):
        assert all(st["accumulator"].dtype == torch.float64 for st in o_b.state.values())


def test_parameters_without_grad_are_skipped_without_desynchronising():
    p = nn.Parameter(torch.tensor([1.0, -1.0, 0.3]))
    q = nn.Parameter(torch.tensor([1.0, -1.0, 0.3]))
    opt = GRDA([p, q], lr=0.1, c=0.1, mu=0.6)
    for n in range(1, 11):
        p.grad = torch.full((3,), 0.1)
        q.grad = None if n <= 5 else torch.full((3,), 0.1)
        q_before = q.detach().clone()
        opt.step()
        if n <= 5:
            assert torch.equal(q, q_before)  # untouched
            assert q not in opt.state
    assert opt.param_groups[0]["grda_step"] == 10
    # q's accumulator started at step 6 from its initial value and saw 5 gradients; it is thresholded with
    # the group's T_10 (not a per-parameter T_5 as the authors' per-parameter counters would give).
    T10 = threshold_closed_form(10, 0.1, 0.1, 0.6)
    a = torch.tensor([1.0, -1.0, 0.3]) - 5 * 0.1 * 0.1
    expected = torch.sign(a) * torch.clamp_min(a.abs() - T10, 0)
    torch.testing.assert_close(q.detach(), expected, rtol=0, atol=4 * EPS32)


def test_threshold_params_weights_leaves_1d_tensors_dense():
    m = _model()
    X, y = _data()
    opt = GRDA(m.parameters(), lr=0.5, c=0.5, mu=0.6, threshold_params="weights")
    _train(m, opt, 30, X, y)
    assert (m[0].weight == 0).any() and (m[2].weight == 0).any()
    assert not (m[0].bias == 0).any() and not (m[2].bias == 0).any()


def test_param_groups_have_their_own_hyperparameters_and_counters():
    a, b = nn.Parameter(torch.ones(4)), nn.Parameter(torch.ones(4))
    opt = GRDA([{"params": [a]}, {"params": [b], "c": 0.0, "lr": 0.01}], lr=0.1, c=0.2, mu=0.6)
    for _ in range(3):
        a.grad, b.grad = torch.zeros(4), torch.zeros(4)
        opt.step()
    assert opt.threshold(0) == threshold_closed_form(3, 0.1, 0.2, 0.6)
    assert opt.threshold(1) == 0.0
    assert torch.equal(b.detach(), torch.ones(4))
    with pytest.raises(ValueError, match=r"group_index must be an integer in \[0, 1\], got group_index=2"):
        opt.threshold(2)


def test_float64_accumulator_does_not_stall_in_bfloat16():
    # 200 increments of 1e-3 onto 1.0: a bfloat16 running sum (8 bits of mantissa) rounds each one away.
    p16 = nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    p64 = nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    o16 = GRDA([p16], lr=1.0, c=0.0, mu=0.6)
    o64 = GRDA([p64], lr=1.0, c=0.0, mu=0.6, float64_accumulator=True)
    for _ in range(200):
        p16.grad = torch.full((2,), 1e-3, dtype=torch.bfloat16)
        p64.grad = torch.full((2,), 1e-3, dtype=torch.bfloat16)
        o16.step()
        o64.step()
    assert float(p16.detach()[0]) == 1.0  # stalled
    assert float(p64.detach()[0]) == pytest.approx(1.0 - 200 * float(torch.tensor(1e-3, dtype=torch.bfloat16)), abs=4e-3)
    assert o64.state[p64]["accumulator"].dtype == torch.float64


def test_closure_returns_loss():
    m = _model()
    X, y = _data()
    opt = GRDA(m.parameters(), lr=0.1, c=0.01, mu=0.6)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(X), y)
        loss.backward()
        return loss

    l1 = opt.step(closure)
    l2 = opt.step(closure)
    assert torch.is_tensor(l1) and float(l2.detach()) < float(l1.detach())


def test_mu_outside_range_warns_but_runs():
    p = nn.Parameter(torch.ones(3))
    with pytest.warns(UserWarning, match=r"mu=0.4 is outside \(0.5, 1\)"):
        opt = GRDA([p], lr=0.1, c=0.1, mu=0.4)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.isfinite(p).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRDA([p], lr=0.1, c=0.1, mu=0.55)  # no warning inside the range


_P = [nn.Parameter(torch.ones(2))]
ERROR_INPUTS = [
    (dict(lr=-0.1), ValueError, r"lr must be a finite number >= 0, got lr=-0.1"),
    (dict(lr=float("nan")), ValueError, r"lr must be a finite number >= 0, got lr=nan"),
    (dict(lr=torch.tensor(0.1)), TypeError, r"lr must be a real number, got lr=tensor\(0.1000\) of type Tensor"),
    (dict(lr="0.1"), TypeError, r"lr must be a real number, got lr='0.1' of type str"),
    (dict(c=-1.0), ValueError, r"c must be a finite number >= 0, got c=-1.0"),
    (dict(c=float("inf")), ValueError, r"c must be a finite number >= 0, got c=inf"),
    (dict(c=True), TypeError, r"c must be a real number, got c=True of type bool"),
    (dict(mu=0.0), ValueError, r"mu must be a finite number > 0, got mu=0.0"),
    (dict(mu=-0.5), ValueError, r"mu must be a finite number > 0, got mu=-0.5"),
    (dict(momentum=1.0), ValueError, r"momentum must be a finite number >= 0 and < 1, got momentum=1.0"),
    (dict(momentum=-0.1), ValueError, r"momentum must be a finite number >= 0 and < 1, got momentum=-0.1"),
    (dict(dampening=1.5), ValueError, r"dampening must be a finite number >= 0 and <= 1, got dampening=1.5"),
    (dict(weight_decay=-1e-4), ValueError, r"weight_decay must be a finite number >= 0, got weight_decay=-0.0001"),
    (dict(threshold_params="bias"), ValueError,
     r"threshold_params must be one of \('all', 'weights'\), got threshold_params='bias'"),
    (dict(convention="tf"), ValueError, r"convention must be one of \('authors', 'paper'\), got convention='tf'"),
    (dict(foreach="yes"), TypeError, r"foreach must be a bool or None, got foreach='yes' of type str"),
    (dict(float64_accumulator=1), TypeError, r"float64_accumulator must be a bool, got float64_accumulator=1 of type int"),
]


@pytest.mark.parametrize("kw,exc,match", ERROR_INPUTS, ids=[str(k) for k, _, _ in ERROR_INPUTS])
def test_error_inputs(kw, exc, match):
    args = dict(lr=0.1, c=0.01, mu=0.6)
    args.update(kw)
    with pytest.raises(exc, match=match):
        GRDA(_P, **args)


def test_error_inputs_of_param_groups_and_functional_core():
    p = nn.Parameter(torch.ones(2))
    opt = GRDA([p], lr=0.1, c=0.01, mu=0.6)
    # hyperparameters are validated where they enter (constructor, add_param_group), not in every step
    with pytest.raises(ValueError, match="c must be a finite number >= 0, got c=-1.0"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))], "c": -1.0})
    with pytest.raises(TypeError, match="gRDA needs real floating-point parameters, got dtype torch.int64"):
        GRDA([torch.ones(2, dtype=torch.int64)], lr=0.1, c=0.0, mu=0.6)
    with pytest.raises(TypeError, match="gRDA needs real floating-point parameters, got dtype torch.complex64"):
        GRDA([torch.ones(2, dtype=torch.complex64, requires_grad=True)], lr=0.1, c=0.0, mu=0.6)
    x, g, a = torch.ones(3), torch.ones(3), torch.ones(3)
    with pytest.raises(ValueError, match="equal lengths, got 1, 2, 1"):
        grda_update([x], [g, g], [a], lr=0.1, threshold=0.0)
    with pytest.raises(ValueError, match=r"shape mismatch at index 0: param \(3,\), grad \(2,\)"):
        grda_update([x], [torch.ones(2)], [a], lr=0.1, threshold=0.0)
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0, got threshold=-1.0"):
        grda_update([x], [g], [a], lr=0.1, threshold=-1.0)
    with pytest.raises(ValueError, match="momentum_buffers must be given when momentum != 0"):
        grda_update([x], [g], [a], lr=0.1, threshold=0.0, momentum=0.9)
    with pytest.raises(ValueError, match="thresholded has length 2, expected 1"):
        grda_update([x], [g], [a], lr=0.1, threshold=0.0, thresholded=[True, False])
    with pytest.raises(TypeError, match="does not support sparse gradients"):
        grda_update([x], [g.to_sparse()], [a], lr=0.1, threshold=0.0)


def test_functional_core_momentum_buffers_are_created_and_calibrated():
    # constant gradient: the EMA buffer equals the gradient at every step (weights sum to one), so gRDAM
    # moves the dual sum exactly as plain gRDA does; the undamped buffer moves it ~1/(1-beta) times faster.
    x1, a1 = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    x2, a2 = x1.clone(), a1.clone()
    x3, a3 = x1.clone(), a1.clone()
    g = torch.ones(1, dtype=torch.float64)
    b2, b3 = [None], [None]
    for _ in range(200):
        grda_update([x1], [g], [a1], lr=0.01, threshold=0.0)
        grda_update([x2], [g], [a2], b2, lr=0.01, threshold=0.0, momentum=0.9)
        grda_update([x3], [g], [a3], b3, lr=0.01, threshold=0.0, momentum=0.9, dampening=0.0)
    assert torch.equal(b2[0], g)
    assert float(a2) == pytest.approx(float(a1), rel=1e3 * EPS64)
    assert float(a3) / float(a1) == pytest.approx(10.0, rel=0.05)


def test_sparsity_under_momentum_tracks_plain_grda_on_a_quadratic():
    """Requirement 2: overparameterised least squares (d = 100, m = 50); the calibrated gRDAM sparsity
    trajectory follows plain gRDA's, the undamped buffer's does not (so the test can fail)."""
    g = torch.Generator().manual_seed(0)
    d, m = 100, 50
    X = torch.randn(m, d, generator=g, dtype=torch.float64) / m**0.5
    w_true = torch.zeros(d, dtype=torch.float64)
    w_true[:10] = 2 * torch.randn(10, generator=g, dtype=torch.float64)
    y = X @ w_true + 0.1 * torch.randn(m, generator=g, dtype=torch.float64)
    w0 = torch.randn(d, generator=g, dtype=torch.float64)

    def run(momentum, dampening, steps=1500):
        w, a, buf = w0.clone(), w0.clone(), [None]
        sp = []
        for n in range(1, steps + 1):
            grda_update([w], [X.T @ (X @ w - y)], [a], buf if momentum else None, lr=0.1,
                        threshold=threshold_closed_form(n, 0.1, 0.3, 0.6), momentum=momentum,
                        dampening=dampening)
            sp.append(float((w == 0).double().mean()))
        return np.array(sp), w

    s_plain, w_plain = run(0.0, None)
    s_mom, w_mom = run(0.9, None)
    s_und, _ = run(0.9, 0.0)
    burn = 150  # ten e-foldings of the EMA (1/(1-0.9) = 10 steps each) and of the fastest modes
    assert s_plain[-1] > 0.3  # genuinely sparse
    assert np.abs(s_mom[burn:] - s_plain[burn:]).max() <= 0.03
    assert np.abs(s_mom[burn:] - s_plain[burn:]).mean() <= 0.005
    assert np.abs(s_und[burn:] - s_plain[burn:]).mean() >= 0.02
    assert float((w_mom - w_plain).norm() / w_plain.norm()) <= 1e-2


def test_doctests():
    res = doctest.testmod(grda_mod, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 4 and res.failed == 0
