"""nets.limit.preflight: the memory plan of a run against measured sizes, and the decisions it makes (refuse a
stage, switch the cached graphs to streaming, skip an automatic oracle) before any work."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nets.hessian import HessianOperator
from nets.limit import LimitConfig, MeasureConfig, OracleConfig, SpectrumConfig, estimate_pruning_limit
from nets.limit.preflight import (
    MemoryRefusal,
    activation_bytes,
    check_plan,
    plan_memory,
    slq_memory_bytes,
)
from nets.models import build_model


def test_slq_memory_matches_the_lanczos_basis_it_keeps():
    """slq with its defaults keeps the (k, m, n) basis in the accumulation dtype: the estimate covers it."""
    import inspect

    from numerics.slq import slq

    params = inspect.signature(slq).parameters
    acc = params["accumulate_dtype"].default or torch.float32
    s = torch.finfo(acc).bits // 8
    stored = 4 * 128 * 10_000 * s if params["reorth"].default != "none" else 0
    est = slq_memory_bytes(10_000, steps=128, n_probes=4)
    assert stored <= est <= stored + 10 * 4 * 10_000 * 8


@pytest.mark.parametrize("name, shape", [("mlp", (64,)), ("cnn", (1, 8, 8))])
def test_cached_graph_estimate_bounds_the_measured_graphs(name, shape):
    """The plan's cached-graph bytes are an upper estimate of what HessianOperator measures (within 6x)."""
    model = build_model(name, 10, shape, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    n, bs = 300, 128
    X, y = torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)
    batches = [(X[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]
    op = HessianOperator(model, nn.CrossEntropyLoss(), batches, cache_graph=True, hvp_method="double-backward")
    op.matmat(torch.randn(op.shape[0], 1, generator=g))
    cfg = LimitConfig(spectrum=SpectrumConfig(batch_size=bs))
    plan = plan_memory(model, input_shape=shape, n_train=n, n_test=0, config=cfg)
    est = plan.stage("hessian products").bytes
    assert op.cached_graph_bytes <= est <= 6 * op.cached_graph_bytes
    assert plan.stage("hessian products").persistent


def test_activation_bytes_counts_module_outputs_and_restores_the_mode():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    model.train()
    assert activation_bytes(model, torch.zeros(2, 3)) == (5 + 5 + 2) * 4
    assert model.training


def _plan(n_train=1000, oracle=None, **spectrum):
    model = build_model("mlp", 10, (64,), hidden=(32,))
    cfg = LimitConfig(spectrum=SpectrumConfig(**spectrum), oracle=OracleConfig(enabled=oracle))
    return cfg, plan_memory(model, input_shape=(64,), n_train=n_train, n_test=100, config=cfg)


def test_check_plan_keeps_a_run_that_fits():
    cfg, plan = _plan()
    out_cfg, out_plan, notes = check_plan(plan, cfg, 10 * plan.peak)
    assert out_cfg == cfg and out_plan == plan and notes == ()
    assert check_plan(plan, cfg, None) == (cfg, plan, ())  # unknown memory: as configured


def test_check_plan_switches_cached_graphs_to_streaming():
    cfg, plan = _plan(n_train=200_000)
    h = plan.stage("hessian products").bytes
    budget = (plan.peak - h) / 0.8 + 1  # everything fits except the cached graphs
    out_cfg, out_plan, notes = check_plan(plan, cfg, int(budget))
    assert out_cfg.spectrum.cache_graph is False and out_cfg.measurement.compensation.cache_graph is False
    assert not out_plan.stage("hessian products").persistent and out_plan.peak < plan.peak
    assert "streaming" in notes[0]
    # the library's own call leaves the graphs to the operator's guard
    assert check_plan(plan, cfg, int(budget), switch_cache=False, refuse_peak=False)[0] == cfg


def test_check_plan_refuses_a_forced_oracle_and_skips_an_automatic_one():
    cfg, plan = _plan(oracle=True)
    small = int((plan.base + plan.stage("oracle").bytes) * 0.9)
    with pytest.raises(MemoryRefusal, match=r"--exact on: the dense-Hessian oracle needs about .* N = 2368") as info:
        check_plan(plan, cfg, small, names={"oracle": "--exact on"})
    assert info.value.setting == "--exact on"
    cfg, plan = _plan(oracle=None)
    out_cfg, out_plan, notes = check_plan(plan, cfg, small)
    assert out_cfg.oracle.enabled is False and out_plan.stage("oracle") is None and "skipped" in notes[0]


def test_check_plan_refuses_an_slq_basis_that_cannot_fit():
    cfg, plan = _plan(n_probes=64)
    budget = int((plan.base + plan.stage("spectrum").bytes) * 0.5)
    with pytest.raises(MemoryRefusal, match="--slq-probes/--slq-steps: SLQ needs about"):
        check_plan(plan, cfg, budget, names={"n_probes": "--slq-probes", "steps": "--slq-steps"})


def test_the_pipeline_refuses_a_forced_oracle_before_any_work(monkeypatch):
    """estimate_pruning_limit checks the memory before the first stage: a forced oracle that cannot fit raises
    a ValueError naming the setting, and no stage ran (the progress callback was never called)."""
    import nets.limit.pipeline as pipeline

    monkeypatch.setattr(pipeline, "available_memory", lambda device: 100_000)  # the oracle alone needs 131 kB
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 6, generator=g), torch.randint(0, 2, (64,), generator=g)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    calls = []
    cfg = LimitConfig(spectrum=SpectrumConfig(steps=8, n_probes=2), oracle=OracleConfig(enabled=True),
                      measurement=MeasureConfig(fundamental=False))
    with pytest.raises(ValueError, match="config.oracle.enabled: the dense-Hessian oracle needs"):
        estimate_pruning_limit(model, (X, y), config=cfg, progress=lambda *a: calls.append(a))
    assert calls == []
    # automatic: skipped with a warning recorded in the result, the rest runs
    cfg = dataclasses.replace(cfg, oracle=OracleConfig(enabled=None))
    monkeypatch.setattr(pipeline, "available_memory", lambda device: 64 << 20)
    monkeypatch.setattr(pipeline, "check_plan", _oracle_only_refusal(pipeline.check_plan))
    r = estimate_pruning_limit(model, (X, y), config=cfg)
    assert r.oracle is None
    assert any(a["setting"] == "memory" and "oracle" in a["why"] for a in r.config["used"]["adjusted"])


def _oracle_only_refusal(check):
    """check_plan with a budget that fits everything but the oracle (whatever this machine's sizes)."""

    def wrapped(plan, config, available, **kw):
        oracle = plan.stage("oracle")
        others = max((s.bytes for s in plan.stages if s.stage != "oracle"), default=0)
        budget = (plan.base + max(others, oracle.bytes // 2) + sum(s.bytes for s in plan.stages if s.persistent))
        return check(plan, config, int(budget / 0.8) + 1, **kw)

    return wrapped
