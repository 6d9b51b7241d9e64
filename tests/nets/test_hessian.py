"""HessianOperator against dense float64 Hessians from torch.func.hessian (float64 ground truth on small
problems), and every fast product path against its reference path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from nets.hessian import (
    CACHE_GRAPH_AUTO_BYTES,
    HVP_METHODS,
    HessianOperator,
    _all_finite,
    eval_mode,
)
from nets.params import prunable_parameters

# float64 products of a ~200-parameter model: the dense references and the products differ by summation
# order only, c·n·eps·‖H‖ with n ≤ 200; 1e-10 (the tolerance) is far above that.
TOL = 1e-10


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_mlp(g: torch.Generator) -> nn.Module:
    m = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return m


def tiny_cnn(g: torch.Generator) -> nn.Module:
    m = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        bn = m[1]
        bn.running_mean.copy_(torch.randn(3, generator=g))
        bn.running_var.copy_(torch.rand(3, generator=g) + 0.5)
    return m  # left in train mode on purpose: the operator must use eval-mode BN


def batches(shape: tuple[int, ...], n_classes: int, sizes: list[int], g: torch.Generator) -> list:
    return [
        (torch.randn((b, *shape), generator=g), torch.randint(0, n_classes, (b,), generator=g)) for b in sizes
    ]


def dense_reference(model: nn.Module, loss_fn, data, names: list[str]) -> torch.Tensor:
    """∇² of (1/N) Σ_b n_b ℓ_b over the flat selected parameters, float64, eval mode, by torch.func.hessian."""
    m64 = __import__("copy").deepcopy(model).double().eval()
    state = {k: v.detach() for k, v in m64.named_parameters()}
    state.update({k: v.detach() for k, v in m64.named_buffers()})
    shapes = [state[n].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    N = sum(x.shape[0] for x, _ in data)

    def L(flat: torch.Tensor) -> torch.Tensor:
        pieces = dict(zip(names, (t.reshape(s) for t, s in zip(torch.split(flat, sizes), shapes))))
        total = 0.0
        for x, y in data:
            out = functional_call(m64, {**state, **pieces}, (x.double(),))
            total = total + x.shape[0] * loss_fn(out, y)
        return total / N

    flat0 = torch.cat([state[n].reshape(-1) for n in names])
    return torch.func.hessian(L)(flat0)


def all_params(name: str, p: nn.Parameter) -> bool:
    return True


CASES = {
    "mlp": (tiny_mlp, (5,), 3, [7, 4, 9]),
    "cnn-bn": (tiny_cnn, (2, 5, 5), 4, [6, 3]),
}


PATHS = [(m, False) for m in HVP_METHODS] + [("auto", False), ("auto", "auto")]  # streaming, measured, cached


@pytest.mark.parametrize("method,cache", PATHS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_dense_hessian_matches_torch_func(case: str, method: str, cache) -> None:
    make, shape, nc, sizes = CASES[case]
    g = _gen(1)
    model = make(g)
    data = batches(shape, nc, sizes, g)
    loss_fn = nn.CrossEntropyLoss()
    H = HessianOperator(model, loss_fn, data, params=all_params, hvp_method=method, dtype=torch.float64,
                        cache_graph=cache)
    names = [n for n, _ in model.named_parameters()]
    assert H.names == names
    ref = dense_reference(model, loss_fn, data, names)
    dense = H.to_dense()
    scale = ref.abs().max().item()
    assert scale > 1e-3  # a non-trivial Hessian
    assert (dense - ref).abs().max().item() <= TOL * max(1.0, scale)
    want = "cached double-backward" if cache else (method if method != "auto" else H.hvp_choice["chosen"])
    assert H.hvp_path == want
    if case == "cnn-bn":  # eval-mode BN matters: the train-mode Hessian is a different matrix
        train_ref = _train_mode_reference(model, loss_fn, data, names)
        assert (train_ref - ref).abs().max().item() > 1e-3


def _train_mode_reference(model, loss_fn, data, names):
    m64 = __import__("copy").deepcopy(model).double().train()
    m64[1].track_running_stats = False  # batch statistics, no buffer update inside the transform
    params = dict(m64.named_parameters())
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])
    shapes = [params[n].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    buffers = {k: v.detach().clone() for k, v in m64.named_buffers()}
    N = sum(x.shape[0] for x, _ in data)

    def L(flat):
        pieces = dict(zip(names, (t.reshape(s) for t, s in zip(torch.split(flat, sizes), shapes))))
        return sum(x.shape[0] * loss_fn(functional_call(m64, {**buffers, **pieces}, (x.double(),)), y) for x, y in data) / N

    return torch.func.hessian(L)(flat0)


@pytest.mark.parametrize("method,cache", PATHS)
def test_default_selector_is_prunable_weights(method: str, cache) -> None:
    g = _gen(2)
    model = tiny_cnn(g)
    data = batches((2, 5, 5), 4, [5, 5], g)
    loss_fn = nn.CrossEntropyLoss()
    H = HessianOperator(model, loss_fn, data, hvp_method=method, dtype=torch.float64, cache_graph=cache)
    names = [n for n, _ in prunable_parameters(model)]
    assert H.names == names == ["0.weight", "4.weight"]
    assert H.shape == (54 + 108, 54 + 108)
    ref = dense_reference(model, loss_fn, data, names)
    assert (H.to_dense() - ref).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())
    # list-of-names selector: a sub-block of the full Hessian
    H2 = HessianOperator(model, loss_fn, data, params=["4.weight"], hvp_method=method, dtype=torch.float64,
                         cache_graph=cache)
    assert (H2.to_dense() - ref[54:, 54:]).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())


def test_methods_batched_and_per_probe_parity_float32() -> None:
    g = _gen(3)
    model = tiny_cnn(g)
    data = batches((2, 5, 5), 4, [8, 8, 3], g)
    loss_fn = nn.CrossEntropyLoss()
    V = torch.randn(162, 5, generator=g)
    ops = {
        "fwd": HessianOperator(model, loss_fn, data, hvp_method="forward-over-reverse", cache_graph=False),
        "fwd-chunked": HessianOperator(model, loss_fn, data, hvp_method="forward-over-reverse", chunk_size=2,
                                       cache_graph=False),
        "db": HessianOperator(model, loss_fn, data, hvp_method="double-backward", cache_graph=False),
        "db-cached": HessianOperator(model, loss_fn, data, hvp_method="double-backward", cache_graph=True),
        "auto-stream": HessianOperator(model, loss_fn, data, cache_graph=False),
        "default": HessianOperator(model, loss_fn, data),
    }
    batched = {k: op.matmat(V) for k, op in ops.items()}
    ref = batched["db"]
    assert ref.dtype == torch.float32
    # float32: relative round-off c·n·eps32 with n ~ 200 terms; 1e-4 of the scale leaves a wide margin
    tol = 1e-4 * ref.abs().max().item()
    for k, out in batched.items():
        assert (out - ref).abs().max().item() <= tol, k
        per_probe = torch.stack([ops[k].matvec(V[:, j]) for j in range(V.shape[1])], dim=1)
        assert (per_probe - out).abs().max().item() <= tol, k
    # the cached graph serves repeated calls without new data passes
    op = ops["db-cached"]
    assert op.cost() == {"hvps": 10, "matmat_calls": 6, "data_passes": 1, "gradients": 0}
    assert ops["fwd"].cost() == {"hvps": 10, "matmat_calls": 6, "data_passes": 6, "gradients": 0}
    assert ops["default"].hvp_path == "cached double-backward" and ops["default"].cost()["data_passes"] == 1
    assert ops["auto-stream"].hvp_path in HVP_METHODS and ops["auto-stream"].cost()["data_passes"] == 6


def test_float64_copy_matches_float32_and_symmetry() -> None:
    g = _gen(4)
    model = tiny_mlp(g)
    data = batches((5,), 3, [10], g)
    H32 = HessianOperator(model, nn.CrossEntropyLoss(), data, params=all_params)
    H64 = HessianOperator(model, nn.CrossEntropyLoss(), data, params=all_params, dtype=torch.float64)
    assert H32.dtype == torch.float32 and H64.dtype == torch.float64 and H64.symmetric
    d64 = H64.to_dense()
    assert (d64 - d64.T).abs().max().item() <= TOL
    assert (H32.to_dense().double() - d64).abs().max().item() <= 1e-5 * d64.abs().max().item()
    assert next(model.parameters()).dtype == torch.float32  # the caller's model was not cast


def test_gradient_matches_autograd() -> None:
    g = _gen(5)
    model = tiny_cnn(g)
    data = batches((2, 5, 5), 4, [4, 7], g)
    loss_fn = nn.CrossEntropyLoss()
    H = HessianOperator(model, loss_fn, data, params=all_params, dtype=torch.float64)
    val, grad = H.value_and_gradient()
    m64 = __import__("copy").deepcopy(model).double().eval()
    N = 11
    loss = sum(x.shape[0] * loss_fn(m64(x.double()), y) for x, y in data) / N
    ref = torch.autograd.grad(loss, list(m64.parameters()))
    assert abs(val - loss.item()) <= 1e-12
    assert (grad - torch.cat([r.reshape(-1) for r in ref])).abs().max().item() <= 1e-12
    assert H.cost()["gradients"] == 1 and H.cost()["data_passes"] == 1


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_loss_reduction_handled(reduction: str) -> None:
    g = _gen(6)
    model = tiny_mlp(g)
    data = batches((5,), 3, [6, 2], g)
    ref = HessianOperator(model, nn.CrossEntropyLoss(), data, params=all_params, dtype=torch.float64).to_dense()
    other = HessianOperator(
        model, nn.CrossEntropyLoss(reduction=reduction), data, params=all_params, dtype=torch.float64
    ).to_dense()
    assert (other - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("method,cache", PATHS)
def test_caller_model_unchanged(method: str, cache) -> None:
    g = _gen(7)
    model = tiny_cnn(g)
    model[1].eval()  # a mixed train/eval state must come back exactly
    model[4].weight.requires_grad_(False)
    model[0].weight.grad = torch.ones_like(model[0].weight)
    flags = [m.training for m in model.modules()]
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    data = batches((2, 5, 5), 4, [5], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, hvp_method=method, dtype=torch.float64, cache_graph=cache)
    H.matmat(torch.randn(H.shape[0], 3, dtype=torch.float64, generator=g))
    H.gradient()
    assert [m.training for m in model.modules()] == flags
    assert model[4].weight.requires_grad is False and model[0].weight.requires_grad is True
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert model[4].weight.grad is None and model[1].weight.grad is None
    for k, v in model.state_dict().items():
        assert v.dtype == state[k].dtype and torch.equal(v, state[k]), k


def test_operator_fixed_at_construction() -> None:
    g = _gen(8)
    model = tiny_mlp(g)
    data = batches((5,), 3, [6], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    before = H.to_dense()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    assert torch.equal(H.to_dense(), before)


def test_dataloader_matches_list() -> None:
    g = _gen(9)
    model = tiny_mlp(g)
    X = torch.randn(13, 5, generator=g)
    Y = torch.randint(0, 3, (13,), generator=g)
    ds = torch.utils.data.TensorDataset(X, Y)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    H1 = HessianOperator(model, nn.CrossEntropyLoss(), loader, dtype=torch.float64)
    H2 = HessianOperator(model, nn.CrossEntropyLoss(), [(X, Y)], dtype=torch.float64)
    V = torch.randn(H1.shape[0], 2, dtype=torch.float64, generator=g)
    assert (H1.matmat(V) - H2.matmat(V)).abs().max().item() <= TOL
    assert H1.n_samples == 13


def test_numpy_in_numpy_out() -> None:
    g = _gen(10)
    model = tiny_mlp(g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), batches((5,), 3, [4], g), dtype=torch.float64)
    v = np.ones(H.shape[0])
    out = H.matvec(v)
    assert isinstance(out, np.ndarray) and out.shape == (H.shape[0],)


class _NaNAfter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a sample with x[:, 0] > 100 produces log of a negative number -> NaN curvature
        return self.lin(x) * torch.log(x[:, :1] * -1.0 + 100.0) ** 2


@pytest.mark.parametrize("method,cache", [(m, False) for m in HVP_METHODS] + [("double-backward", True), ("auto", False)])
def test_non_finite_products_raise(method: str, cache: bool) -> None:
    g = _gen(11)
    model = _NaNAfter()
    good = (torch.randn(4, 3, generator=g), torch.randint(0, 2, (4,), generator=g))
    bad = (torch.full((2, 3), 200.0), torch.zeros(2, dtype=torch.long))
    H = HessianOperator(model, nn.CrossEntropyLoss(), [good, good, bad], hvp_method=method, dtype=torch.float64,
                        cache_graph=cache)
    passes = H.cost()["data_passes"]
    with pytest.raises(ValueError, match=r"non-finite Hessian-vector product for probe\(s\) \[0, 1\] on batch 2"):
        H.matmat(torch.ones(H.shape[0], 2, dtype=torch.float64))
    # cached: the build, then one pass rebuilding the batches' graphs to locate the bad one (only on failure)
    assert H.cost()["data_passes"] - passes == (2 if cache else 1)
    with pytest.raises(ValueError, match="non-finite gradient on batch 2"):
        H.gradient()
    H_ok = HessianOperator(model, nn.CrossEntropyLoss(), [good], hvp_method=method, dtype=torch.float64)
    V = torch.ones(H_ok.shape[0], 2, dtype=torch.float64)
    V[3, 1] = math.nan
    with pytest.raises(ValueError, match=r"V has non-finite entries in column\(s\) \[1\]"):
        H_ok.matmat(V)


def test_error_inputs() -> None:
    g = _gen(12)
    model = tiny_mlp(g)
    data = batches((5,), 3, [4], g)
    ce = nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        HessianOperator("net", ce, data)
    with pytest.raises(TypeError, match="loss_fn must be callable, got int"):
        HessianOperator(model, 3, data)
    with pytest.raises(ValueError, match=r"hvp_method must be one of \('auto', 'forward-over-reverse', 'double-backward'\), got hvp_method='newton'"):
        HessianOperator(model, ce, data, hvp_method="newton")
    with pytest.raises(ValueError, match=r"params names not found among the model's parameters: \['9.weight'\]"):
        HessianOperator(model, ce, data, params=["9.weight"])
    with pytest.raises(ValueError, match="params must select at least one parameter"):
        HessianOperator(model, ce, data, params=[])
    with pytest.raises(ValueError, match="params contains duplicate names"):
        HessianOperator(model, ce, data, params=["0.weight", "0.weight"])
    with pytest.raises(ValueError, match="the params selector selected no parameter"):
        HessianOperator(model, ce, data, params=lambda n, p: False)
    with pytest.raises(TypeError, match="params must be None, a sequence of parameter names, or a callable"):
        HessianOperator(model, ce, data, params="0.weight")
    with pytest.raises(ValueError, match="model has no Linear/Conv weight"):
        HessianOperator(nn.Sequential(nn.BatchNorm1d(3)), ce, data)
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64 \(or None\), got dtype=torch.float16"):
        HessianOperator(model, ce, data, dtype=torch.float16)
    with pytest.raises(ValueError, match="data must contain at least one batch"):
        HessianOperator(model, ce, [])
    with pytest.raises(TypeError, match="data is a one-shot iterator"):
        HessianOperator(model, ce, iter(data))
    with pytest.raises(TypeError, match="data must be a list of .* got Tensor"):
        HessianOperator(model, ce, torch.zeros(3))
    with pytest.raises(TypeError, match=r"batch 0 must be an \(inputs, targets\) pair, got dict"):
        HessianOperator(model, ce, [{"x": 1}])
    with pytest.raises(ValueError, match=r"batch 1: inputs and targets must share the leading batch dimension"):
        HessianOperator(model, ce, [data[0], (torch.zeros(3, 5), torch.zeros(2, dtype=torch.long))])
    with pytest.raises(ValueError, match="batch 0 is empty"):
        HessianOperator(model, ce, [(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))])
    with pytest.raises(ValueError, match="cache_graph=True needs hvp_method='double-backward' or 'auto'"):
        HessianOperator(model, ce, data, hvp_method="forward-over-reverse", cache_graph=True)
    with pytest.raises(ValueError, match="cache_graph must be True, False or 'auto', got cache_graph='yes'"):
        HessianOperator(model, ce, data, cache_graph="yes")
    with pytest.raises(ValueError, match="cache_graph must be True, False or 'auto', got cache_graph=1"):
        HessianOperator(model, ce, data, hvp_method="double-backward", cache_graph=1)
    with pytest.raises(ValueError, match="cache_graph_max_bytes must be an integer >= 0, got cache_graph_max_bytes=-1"):
        HessianOperator(model, ce, data, cache_graph="auto", cache_graph_max_bytes=-1)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got chunk_size=0"):
        HessianOperator(model, ce, data, chunk_size=0)
    with pytest.raises(TypeError, match="distributed must be None, True or False, got distributed=1"):
        HessianOperator(model, ce, data, distributed=1)
    with pytest.raises(TypeError, match="check_finite must be a bool, got check_finite='no'"):
        HessianOperator(model, ce, data, check_finite="no")
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):  # one name: hvp_method
        HessianOperator(model, ce, data, method="double-backward")
    with pytest.raises(ValueError, match="distributed=True but torch.distributed is not initialised"):
        HessianOperator(model, ce, data, distributed=True)
    ds = torch.utils.data.TensorDataset(torch.zeros(5, 5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="shuffle=True and drop_last=True"):
        HessianOperator(model, ce, torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True, drop_last=True))
    H = HessianOperator(model, lambda out, y: nn.functional.cross_entropy(out, y, reduction="none"), data)
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar batch mean .*got shape \(4,\)"):
        H.matvec(torch.ones(H.shape[0]))
    with pytest.raises(ValueError, match=r"V must have shape \(" + str(H.shape[0]) + r", k\)"):
        H.matmat(torch.ones(3, 2))


def test_eval_mode_restores_on_error() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    m[1].eval()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(m):
        raise RuntimeError("boom")
    assert m.training is True and m[0].training is True and m[1].training is False


@pytest.mark.parametrize("method", HVP_METHODS)
def test_cache_graph_auto_parity_and_memory(method: str) -> None:
    """cache_graph="auto" on an in-memory dataset: the cached path, equal to the dense float64 reference and to
    the streaming path to round-off, one data pass for all products, and a measured graph size at least the
    hidden activations it must hold (ground truth: N·width float64 numbers before and after the tanh)."""
    g = _gen(21)
    model = tiny_mlp(g)
    data = batches((5,), 3, [7, 7, 4], g)
    loss_fn = nn.CrossEntropyLoss()
    names = [n for n, _ in prunable_parameters(model)]
    ref = dense_reference(model, loss_fn, data, names)
    auto = HessianOperator(model, loss_fn, data, hvp_method=method, dtype=torch.float64, cache_graph="auto")
    stream = HessianOperator(model, loss_fn, data, hvp_method=method, dtype=torch.float64, cache_graph=False)
    assert auto.cached is None and stream.cached is False
    V = torch.randn(ref.shape[0], 4, generator=g, dtype=torch.float64)
    for _ in range(3):
        out = auto.matmat(V)
    assert auto.cached is True
    scale = ref.abs().max().item()
    assert (out - ref @ V).abs().max().item() <= TOL * scale
    assert (out - stream.matmat(V)).abs().max().item() <= TOL * scale
    assert auto.cost() == {"hvps": 12, "matmat_calls": 3, "data_passes": 1, "gradients": 0}
    assert auto.cached_graph_bytes >= 2 * 18 * 6 * 8
    assert auto.cached_graph_bytes <= CACHE_GRAPH_AUTO_BYTES


def test_cache_graph_auto_falls_back_to_streaming() -> None:
    """Over the memory limit (or with a loader) "auto" streams: same products, one data pass per product."""
    g = _gen(22)
    model = tiny_mlp(g)
    data = batches((5,), 3, [6, 6], g)
    loss_fn = nn.CrossEntropyLoss()
    ref = HessianOperator(model, loss_fn, data, hvp_method="double-backward", dtype=torch.float64)
    small = HessianOperator(model, loss_fn, data, dtype=torch.float64, cache_graph="auto", cache_graph_max_bytes=0)
    V = torch.randn(ref.shape[0], 3, generator=g, dtype=torch.float64)
    expected = ref.matmat(V)
    out = small.matmat(V)
    assert small.cached is False and small._graphs is None
    assert (out - expected).abs().max().item() <= TOL * expected.abs().max().item()
    small.matmat(V)
    # the abandoned build read one batch of a pass (counted as a pass), then one pass per product
    assert small.cost()["data_passes"] == 3
    X = torch.cat([x for x, _ in data])
    Y = torch.cat([y for _, y in data])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=5)
    lop = HessianOperator(model, loss_fn, loader, dtype=torch.float64, cache_graph="auto")
    assert lop.cached is False
    assert (lop.matmat(V) - expected).abs().max().item() <= TOL * expected.abs().max().item()


def test_all_finite_fast_check() -> None:
    """The column-sum shortcut never passes a NaN/inf entry, and an overflowing sum of finite entries falls
    back to the entrywise test."""
    t = torch.ones(4, 3)
    assert _all_finite(t)
    for bad in (math.nan, math.inf, -math.inf):
        u = t.clone()
        u[2, 1] = bad
        assert not _all_finite(u)
    u = t.clone()
    u[0, 0], u[1, 0] = math.inf, -math.inf  # the sum is NaN, not a finite cancellation
    assert not _all_finite(u)
    big = torch.full((4, 2), 3.0e38, dtype=torch.float32)  # finite entries, the column sums overflow
    assert _all_finite(big)


def test_reset_counters() -> None:
    g = _gen(13)
    model = tiny_mlp(g)
    data = batches((5,), 3, [4, 3], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache_graph=False)
    V = torch.randn(H.shape[0], 3, dtype=torch.float64, generator=g)
    first = H.matmat(V)
    H.gradient()
    assert H.cost() == {"hvps": 3, "matmat_calls": 1, "data_passes": 2, "gradients": 1}
    H.reset_counters()
    assert H.cost() == {"hvps": 0, "matmat_calls": 0, "data_passes": 0, "gradients": 0}
    assert torch.equal(H.matmat(V), first)  # the operator itself is unchanged
    assert H.cost() == {"hvps": 3, "matmat_calls": 1, "data_passes": 1, "gradients": 0}


def test_check_finite_false_skips_the_input_check() -> None:
    g = _gen(14)
    model = tiny_mlp(g)
    data = batches((5,), 3, [4], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, check_finite=False)
    V = torch.ones(H.shape[0], 2, dtype=torch.float64)
    V[3, 1] = math.nan
    out = H.matmat(V)
    assert bool(torch.isfinite(out[:, 0]).all()) and not bool(torch.isfinite(out[:, 1]).all())


# -- measured streaming choice, cache accounting, memory estimate (issue 11) ---------------------------------
def test_auto_streaming_choice_parity_and_record() -> None:
    """hvp_method="auto" times both streaming methods on the first batch, keeps the faster, records the times and
    the two products' difference, and gives the reference product (float64: parity to round-off)."""
    g = _gen(31)
    model = tiny_cnn(g)
    data = batches((2, 5, 5), 4, [6, 5, 3], g)
    loss_fn = nn.CrossEntropyLoss()
    names = [n for n, _ in prunable_parameters(model)]
    ref = dense_reference(model, loss_fn, data, names)
    H = HessianOperator(model, loss_fn, data, dtype=torch.float64, cache_graph=False)
    assert H.hvp_method == "auto" and H.hvp_path is None and H.hvp_choice is None
    V = torch.randn(ref.shape[0], 3, generator=g, dtype=torch.float64)
    out = H.matmat(V)
    c = H.hvp_choice
    assert set(c["seconds"]) == set(HVP_METHODS) and all(t > 0 for t in c["seconds"].values())
    assert c["chosen"] == min(c["seconds"], key=c["seconds"].get) == H.hvp_path
    assert c["samples"] == 6 and c["n_probes"] == 3 and c["failures"] == {}
    assert c["max_rel_diff"] <= 1e-12  # the two exact methods agree to float64 round-off
    scale = ref.abs().max().item()
    assert (out - ref @ V).abs().max().item() <= TOL * scale
    assert (H.matmat(V) - ref @ V).abs().max().item() <= TOL * scale  # later calls: the chosen method only
    assert H.hvp_choice is c  # decided once
    assert H.cost() == {"hvps": 6, "matmat_calls": 2, "data_passes": 2, "gradients": 0}


def test_auto_streaming_choice_measures_on_a_slice_of_a_large_batch(monkeypatch) -> None:
    import nets.hessian as hessian_mod

    monkeypatch.setattr(hessian_mod, "_CHOICE_SAMPLES", 3)
    g = _gen(37)
    model = tiny_mlp(g)
    data = batches((5,), 3, [8, 5], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache_graph=False)
    ref = HessianOperator(model, nn.CrossEntropyLoss(), data, hvp_method="double-backward", dtype=torch.float64,
                          cache_graph=False)
    V = torch.randn(H.shape[0], 2, generator=g, dtype=torch.float64)
    assert (H.matmat(V) - ref.matmat(V)).abs().max().item() <= TOL  # the whole first batch, not the slice
    assert H.hvp_choice["samples"] == 3


def test_auto_streaming_choice_skips_a_failing_method(monkeypatch) -> None:
    g = _gen(32)
    model = tiny_mlp(g)
    data = batches((5,), 3, [4, 4], g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache_graph=False)

    def unsupported(*args, **kwargs):
        raise NotImplementedError("no forward-mode rule for this op")

    monkeypatch.setattr(H, "_forward_over_reverse", unsupported)
    ref = HessianOperator(model, nn.CrossEntropyLoss(), data, hvp_method="double-backward", dtype=torch.float64,
                          cache_graph=False)
    V = torch.randn(H.shape[0], 2, generator=g, dtype=torch.float64)
    assert torch.equal(H.matmat(V), ref.matmat(V))
    assert H.hvp_path == "double-backward" and "forward-over-reverse" in H.hvp_choice["failures"]
    assert H.hvp_choice["max_rel_diff"] is None
    both = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64, cache_graph=False)
    monkeypatch.setattr(both, "_forward_over_reverse", unsupported)
    monkeypatch.setattr(both, "_loss_and_gradient", unsupported)
    with pytest.raises(RuntimeError, match="every product method failed on the first batch"):
        both.matmat(V)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_estimate_memory_predicts_the_cache_guard_count(case: str, dtype: torch.dtype) -> None:
    """The estimate (from one- and two-sample slices, before any product) equals what the guard counts after the
    build: saved tensors of every batch, the summed gradient and, for float64 on float32 data, the cast inputs."""
    make, shape, nc, sizes = CASES[case]
    g = _gen(33)
    model = make(g)
    data = batches(shape, nc, sizes, g)
    H = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=dtype)
    est = H.estimate_memory(n_probes=4)
    assert H.cost() == {"hvps": 0, "matmat_calls": 0, "data_passes": 0, "gradients": 0}  # no product yet
    H.matmat(torch.randn(H.shape[0], 2, generator=g).to(dtype))
    assert H.hvp_path == "cached double-backward"
    # equal up to a saved scalar per batch: the loss's own scalars (8 bytes) belong to the forward graph, which the
    # cache does not keep, so their storage may be freed and reused by the next batch (then counted once)
    assert H.cached_graph_bytes <= est.cached_graph_bytes <= H.cached_graph_bytes + 8 * len(sizes)
    s = torch.finfo(dtype).bits // 8
    assert est.cast_input_bytes == (sum(x.numel() for x, _ in data) * 8 if dtype == torch.float64 else 0)
    assert est.product_bytes == (2 * 4 + 4) * H.shape[0] * s
    assert est.paths["cached double-backward"] > est.cached_graph_bytes
    assert est.paths["forward-over-reverse"] > est.paths["double-backward"]  # a graph tangent per probe
    assert est.to_dict()["max_batch_size"] == max(sizes)


def test_cache_counts_summed_gradient_and_cast_inputs_and_keeps_no_batch_gradients(monkeypatch) -> None:
    g = _gen(34)
    model = tiny_mlp(g)
    data32 = batches((5,), 3, [7, 5, 9], g)
    data64 = [(x.double(), y) for x, y in data32]
    loss_fn = nn.CrossEntropyLoss()
    kept: list = []
    import weakref

    H_cast = HessianOperator(model, loss_fn, data32, dtype=torch.float64)
    original = H_cast._graph

    def spy(*args, **kwargs):
        grads = original(*args, **kwargs)
        kept.extend(weakref.ref(t) for t in grads)
        return grads

    monkeypatch.setattr(H_cast, "_graph", spy)
    H_own = HessianOperator(model, loss_fn, data64, dtype=torch.float64)
    V = torch.randn(H_own.shape[0], 2, generator=g, dtype=torch.float64)
    assert (H_cast.matmat(V) - H_own.matmat(V)).abs().max().item() <= TOL
    # the float64 copies of float32 inputs are kept alive by the cache (the first layer saves its input): counted
    assert H_cast.cached_graph_bytes - H_own.cached_graph_bytes == sum(x.numel() for x, _ in data32) * 8
    # per-batch first-order gradients are not kept (only their weighted sum, counted as n float64 numbers);
    # collected first, so that an autograd reference cycle awaiting the collector is not mistaken for the cache
    import gc

    gc.collect()
    assert len(kept) == 3 * 2 and all(r() is None for r in kept)
    assert len(H_own._graphs) == 2 and sum(t.numel() for t in H_own._graphs[1]) == H_own.shape[0]


def test_estimate_memory_for_a_loader_and_errors() -> None:
    g = _gen(35)
    model = tiny_mlp(g)
    X, Y = torch.randn(13, 5, generator=g), torch.randint(0, 3, (13,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=4)
    H = HessianOperator(model, nn.CrossEntropyLoss(), loader)
    est = H.estimate_memory(2)
    assert est.cached_graph_bytes is None and "cached double-backward" not in est.paths
    assert est.batch_sizes == (4,) and est.graph_bytes_per_sample > 0
    with pytest.raises(ValueError, match="n_probes must be an integer >= 1, got n_probes=0"):
        H.estimate_memory(0)


def test_products_are_column_contiguous() -> None:
    # the layout Lanczos reads without a copy: out.T is a contiguous (k, n) block, on every path
    g = _gen(36)
    model = tiny_mlp(g)
    data = batches((5,), 3, [4, 3], g)
    V = torch.randn(sum(p.numel() for _, p in prunable_parameters(model)), 3, generator=g)
    for method, cache in PATHS:
        H = HessianOperator(model, nn.CrossEntropyLoss(), data, hvp_method=method, cache_graph=cache)
        assert H.matmat(V).T.is_contiguous(), (method, cache)
