"""Memory of each stage of the pipeline, estimated before any work, against the memory available.

A run must not spend an hour training and then die allocating the dense Hessian. :func:`plan_memory`
estimates, from the model's architecture (an untrained copy serves: sizes do not depend on values), the
sample counts and the :class:`~nets.limit.LimitConfig`, the peak bytes of every stage; :func:`available_memory`
reads what the device can give; :func:`check_plan` turns the comparison into decisions: a stage that cannot fit
is refused (:class:`MemoryRefusal`, naming the setting to change) or switched to its streaming variant (the
Hessian products without cached graphs; the oracle under ``enabled=None``), each with a message.

The estimates (ours; upper estimates, calibrated on the MLP/CNN/FC5/ResNet-18 of :mod:`nets.models`) —
``s``: bytes of the model's dtype, ``P``: parameter bytes, ``a``: bytes of all module outputs of one sample
(measured by forward hooks on a two-sample forward pass), ``N``: prunable weights, ``n``: Hessian samples,
``b``: batch size, ``k``: probes, ``m``: Lanczos steps:

* data: the training and test inputs as the pipeline holds them (``n_train + n_test`` samples in ``s``);
* models: the caller's, the working copy and the Hessian operator's snapshot, ``3P``;
* cached first-order graphs (:class:`nets.hessian.HessianOperator`, ``cache_graph``): ``2·a·n + P·⌈n/b⌉``
  (activations and first-order intermediates, the measured ratio is 0.4–1.7·a; plus the per-batch gradient
  kept in each graph); persistent from the spectrum to the end of the run;
* streaming products instead: ``(1 + k)·2·a·b``, one batch at a time;
* SLQ: :func:`slq_memory_bytes` (the Lanczos basis ``k·m·N`` and working vectors);
* compensated pruning: a model copy ``P``, CG vectors ``8·N·8``, the L-BFGS history ``2·20·N·s`` and the
  quadratic steps of the coarse grid's levels kept for the re-optimised search (``(1/step + 2)·N·s``);
* the dense-Hessian oracle: :meth:`nets.limit.OracleConfig.memory_bytes` (``4·8·N²``) plus a float64 model;
* the sweep: one evaluation batch's activations ``a·b`` and three ``N``-vectors.

When ``numerics.lanczos.basis_bytes`` exists (the SLQ memory model of the numerics layer), it replaces the
estimate of the Lanczos vectors here; everything else in this module stays.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from nets.limit.oracle import OracleConfig
from theory.validation import check_int

__all__ = ["StageMemory", "MemoryPlan", "MemoryRefusal", "plan_memory", "available_memory", "check_plan",
           "slq_memory_bytes", "activation_bytes", "GiB"]

GiB = float(1 << 30)
#: Fraction of the available memory a plan may use (ours: the rest is the interpreter, allocator slack, other
#: processes' growth during an hour-long run).
USABLE_FRACTION = 0.8


class MemoryRefusal(ValueError):
    """A stage cannot fit in the available memory; ``setting`` names what to change."""

    def __init__(self, message: str, *, stage: str, setting: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.setting = setting


@dataclass(frozen=True)
class StageMemory:
    """Estimated peak bytes of one stage beyond the base (data and models); ``persistent``: kept to the end."""

    stage: str
    bytes: int
    persistent: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MemoryPlan:
    """The estimate of a run: ``base`` bytes (data and model copies), one :class:`StageMemory` per stage, and
    the ``peak``: base + the persistent stages + the largest transient one."""

    base: int
    stages: tuple[StageMemory, ...]
    n_prunable: int
    parameter_bytes: int
    activation_bytes_per_sample: float
    notes: tuple[str, ...] = field(default=())

    @property
    def peak(self) -> int:
        persistent = sum(s.bytes for s in self.stages if s.persistent)
        transient = max((s.bytes for s in self.stages if not s.persistent), default=0)
        return int(self.base + persistent + transient)

    def stage(self, name: str) -> StageMemory | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "peak": self.peak, "stages": [s.to_dict() for s in self.stages],
                "n_prunable": self.n_prunable, "parameter_bytes": self.parameter_bytes,
                "activation_bytes_per_sample": self.activation_bytes_per_sample, "notes": list(self.notes)}


def _fmt(b: float) -> str:
    return f"{b / GiB:.3g} GiB" if b >= 0.1 * GiB else f"{b / 2**20:.3g} MiB"


def slq_memory_bytes(n: int, *, steps: int, n_probes: int, operator_dtype: torch.dtype = torch.float32,
                     reorth: str | None = None, basis_dtype: torch.dtype | None = None) -> int:
    """Bytes of the Lanczos vectors SLQ holds at its peak: the numerics layer's own model,
    :func:`numerics.lanczos.basis_bytes`. ``reorth``/``basis_dtype`` ``None``: :func:`numerics.slq.slq`'s
    defaults (no stored basis, the operator's dtype: the memory does not grow with ``steps``).

    >>> slq_memory_bytes(1000, steps=10, n_probes=2) == slq_memory_bytes(1000, steps=500, n_probes=2)
    True
    >>> slq_memory_bytes(1000, steps=10, n_probes=2)  # 2 probes x (3 float32 working vectors + the product)
    32000
    >>> # float64: 2 probes x (3 working + 10 stored vectors), the float32 product and its cast
    >>> slq_memory_bytes(1000, steps=10, n_probes=2, reorth="full", basis_dtype=torch.float64)
    224000
    """
    from numerics.lanczos import basis_bytes
    from numerics.slq import slq

    n = check_int("n", n, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    n_probes = check_int("n_probes", n_probes, minimum=1)
    params = inspect.signature(slq).parameters
    acc = params["accumulate_dtype"].default if basis_dtype is None else basis_dtype
    acc = operator_dtype if acc is None else acc
    reorth = params["reorth"].default if reorth is None else reorth
    return int(basis_bytes(n, steps=steps, n_probes=n_probes, reorth=reorth, dtype=acc,
                           operator_dtype=operator_dtype))


def activation_bytes(model: nn.Module, sample: torch.Tensor) -> float:
    """Bytes of all leaf-module outputs per sample, from one forward pass on ``sample`` (a small batch) in eval
    mode without gradients; the model's train/eval flags are restored."""
    from nets.hessian import eval_mode

    total = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with eval_mode(model), torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    return total[0] / max(1, int(sample.shape[0]))


def plan_memory(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    n_train: int,
    n_test: int,
    config: Any,
    world_size: int = 1,
) -> MemoryPlan:
    """The :class:`MemoryPlan` of :func:`nets.limit.estimate_pruning_limit` on ``model`` (module docstring).

    ``config`` is a :class:`nets.limit.LimitConfig`; ``world_size`` processes share the Hessian data (each holds
    ``1/world_size`` of the cached graphs). Costs one forward pass of two samples.
    """
    from nets.params import prunable_parameters

    n_train = check_int("n_train", n_train, minimum=1)
    n_test = check_int("n_test", n_test, minimum=0)
    world_size = check_int("world_size", world_size, minimum=1)
    p0 = next(iter(model.parameters()))
    s = p0.element_size()
    P = sum(p.numel() * p.element_size() for p in model.parameters())
    N = sum(w.numel() for _, w in prunable_parameters(model))
    x = torch.zeros((2, *input_shape), dtype=p0.dtype, device=p0.device)
    a = activation_bytes(model, x)
    sample_bytes = math.prod(input_shape) * s
    base = (n_train + n_test) * sample_bytes + 3 * P
    sp, ms = config.spectrum, config.measurement
    k = sp.n_probes
    n_h = min(sp.samples or n_train, n_train)
    n_local = math.ceil(n_h / world_size)
    stages = []
    cached = int(2 * a * n_local + P * math.ceil(n_local / sp.batch_size))
    streaming = int((1 + k) * 2 * a * min(sp.batch_size, n_local))
    if sp.cache_graph is False:
        stages.append(StageMemory("hessian products", streaming, False, "streaming (cache_graph=False)"))
    else:
        stages.append(StageMemory("hessian products", cached, True, "cached first-order graphs"))
    steps = min(sp.steps, max(1, N - (sp.deflate or 0)))
    from nets.limit.spectrum import resolve_reorth

    op_dtype = sp.hvp_dtype or p0.dtype
    reorth = resolve_reorth(sp, N, steps, op_dtype)
    stages.append(StageMemory("spectrum", slq_memory_bytes(N, steps=steps, n_probes=k, operator_dtype=op_dtype,
                                                           reorth=reorth, basis_dtype=sp.basis_dtype),
                              False, f"SLQ {k} probes x {steps} steps on N = {N} (reorth={reorth})"))
    if ms.fundamental:
        # the quadratic-step weights (float64) of every level kept for the re-optimised search: the grid and
        # the bisection levels of both searches
        grid = int(round(1.0 / ms.compensated_grid_step)) + 2
        bisect = math.ceil(math.log2(max(2.0, ms.compensated_grid_step / max(ms.compensated_resolution, 1.0 / N))))
        comp = P + 8 * N * 8 + 2 * 20 * N * s + (grid + 2 * bisect) * N * 8
        stages.append(StageMemory("compensated", int(comp), False,
                                  "model copy, CG vectors, L-BFGS history, the grid levels' quadratic steps"))
    stages.append(StageMemory("sweep", int(a * min(ms.eval_batch_size, n_train) + 3 * N * 8), False,
                              "one evaluation batch"))
    if config.oracle.runs(N):
        dense = OracleConfig.memory_bytes(N) + 2 * P + int(2 * 2 * a * n_local)
        stages.append(StageMemory("oracle", int(dense), False, f"dense float64 Hessian, N = {N}"))
    return MemoryPlan(int(base), tuple(stages), N, P, a)


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Bytes the device can still give this process, or None when unknown: CPU: :func:`nets.resources.
    host_memory_available`; CUDA: the free memory of ``torch.cuda.mem_get_info``; other devices: unknown.

    Under ``torch.distributed`` it is the least over the ranks (None if unknown on any), so that every rank
    plans the same stages; it is then a collective, which every rank must call.
    """
    from nets.limit.parallel import is_distributed
    from nets.resources import host_memory_available

    dev = torch.device(device)
    if dev.type == "cuda":
        free: int | None = int(torch.cuda.mem_get_info(dev)[0])
    elif dev.type != "cpu":
        free = None
    else:
        free = host_memory_available()
    if is_distributed():  # unknown (-1) on any rank wins the MIN
        least = torch.tensor([-1.0 if free is None else float(free)], dtype=torch.float64, device=dev)
        torch.distributed.all_reduce(least, op=torch.distributed.ReduceOp.MIN)
        free = None if least.item() < 0 else int(least.item())
    return free


def check_plan(plan: MemoryPlan, config: Any, available: int | None, *, names: dict[str, str] | None = None,
               switch_cache: bool = True, refuse_peak: bool = True) -> tuple[Any, MemoryPlan, tuple[str, ...]]:
    """Decide what runs: returns ``(config, plan, messages)`` with the stages that do not fit switched to their
    streaming variant, or raises :class:`MemoryRefusal`.

    Always: a forced oracle that cannot fit is refused, an automatic one skipped; an SLQ basis that cannot fit
    is refused. ``switch_cache``: cached first-order graphs that do not fit become streaming products;
    ``refuse_peak``: a total peak above the budget is refused (the CLI asks for both before training; the
    library leaves the graphs to the operator's own guard and does not refuse on a total it only estimates).
    ``names`` maps the setting names ``steps``, ``n_probes``, ``oracle``, ``samples`` to how the caller spells
    them (the CLI: ``--slq-steps``, ...). Under ``available=None`` (unknown) everything runs as configured.
    """
    nm = {"steps": "spectrum.steps", "n_probes": "spectrum.n_probes", "oracle": "oracle.enabled",
          "samples": "spectrum.samples", **(names or {})}
    if available is None:
        return config, plan, ()
    budget = USABLE_FRACTION * available
    messages: list[str] = []
    N = plan.n_prunable
    # the dense oracle: forced on -> refuse; automatic -> off
    oracle = plan.stage("oracle")
    if oracle is not None and plan.base + oracle.bytes > budget:
        if config.oracle.enabled:
            raise MemoryRefusal(
                f"{nm['oracle']}: the dense-Hessian oracle needs about {_fmt(oracle.bytes)} for N = {N} prunable "
                f"weights (4 float64 N x N matrices), more than the {_fmt(budget)} usable of {_fmt(available)} "
                f"available; turn it off or use a smaller model", stage="oracle", setting=nm["oracle"])
        config = replace(config, oracle=replace(config.oracle, enabled=False))
        plan = replace(plan, stages=tuple(s for s in plan.stages if s.stage != "oracle"))
        messages.append(f"the dense-Hessian oracle ({_fmt(oracle.bytes)}) does not fit in {_fmt(budget)}: skipped")
    slq_stage = plan.stage("spectrum")
    if slq_stage is not None and plan.base + slq_stage.bytes > budget:
        raise MemoryRefusal(
            f"{nm['n_probes']}/{nm['steps']}: SLQ needs about {_fmt(slq_stage.bytes)} for its Lanczos vectors "
            f"({slq_stage.note}), more than the {_fmt(budget)} usable of {_fmt(available)} available; use fewer "
            f"probes or steps", stage="spectrum", setting=nm["n_probes"])
    # the cached graphs: switch to streaming products when the plan does not fit with them
    h = plan.stage("hessian products")
    if switch_cache and h is not None and h.persistent and plan.peak > budget:
        sp = config.spectrum
        stream = int((1 + sp.n_probes) * 2 * plan.activation_bytes_per_sample * sp.batch_size)
        streamed = replace(plan, stages=tuple(StageMemory("hessian products", stream, False, "streaming")
                                              if s.stage == "hessian products" else s for s in plan.stages))
        if streamed.peak < plan.peak:  # (on a small data set the graphs of all of it can be the smaller)
            ms = replace(config.measurement, compensation=replace(config.measurement.compensation, cache_graph=False))
            config = replace(config, spectrum=replace(sp, cache_graph=False), measurement=ms)
            plan = streamed
            messages.append(f"the cached first-order graphs ({_fmt(h.bytes)}) do not fit beside the rest in "
                            f"{_fmt(budget)}: streaming Hessian products instead (one data pass per product)")
    if refuse_peak and plan.peak > budget:
        worst = max(plan.stages, key=lambda st: st.bytes)
        raise MemoryRefusal(
            f"the run needs about {_fmt(plan.peak)} at its peak (data and models {_fmt(plan.base)}, largest stage "
            f"{worst.stage}: {_fmt(worst.bytes)}), more than the {_fmt(budget)} usable of {_fmt(available)} "
            f"available; use fewer {nm['samples']} or a smaller model", stage=worst.stage, setting=nm["samples"])
    return config, plan, tuple(messages)
