"""Running experiments: the registry of names, one experiment, or all of them with the report.

:data:`EXPERIMENTS` maps each name to its module (``run(ctx) -> Outcome``); modules are imported only when
run. :func:`run_experiment` runs one into ``DIR/NAME/`` and refreshes ``DIR/report.md``/``report.html``;
:func:`run_all` runs every experiment in the registry's order (the shared dense networks and analyses are
computed by the first experiment that needs them and read by the others, so per-experiment wall times depend
on the order; a rerun reads every finished cell).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nets.experiments.context import Context
from nets.experiments.report import Outcome, render_png, write_outcome, write_report
from nets.experiments.scales import ModelSpec, Scale, get_scale
from theory.validation import check_int

__all__ = ["Experiment", "EXPERIMENTS", "ExperimentRecord", "run_experiment", "run_all", "make_context",
           "check_runnable", "partition"]

log = logging.getLogger(__name__)
#: progress of a worker process of :func:`run_all` (its handler is added by the worker, not inherited)
_WORKER_LOG = logging.getLogger(f"{__name__}.worker")
_WORKER_LOG.propagate = False
_WORKER_LOG.setLevel(logging.INFO)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, the module holding ``run(ctx)`` and a one-line description."""

    name: str
    module: str
    description: str
    min_seeds: int = 1

    def run(self, ctx: Context) -> Outcome:
        return importlib.import_module(self.module).run(ctx)


_P = "nets.experiments."
#: Every experiment, in the order of ``experiment all`` and of the report.
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("theory-vs-actual", _P + "theory_vs_actual", "predicted vs measured limit per network (table + figure)"),
    Experiment("bound-gap", _P + "bound_gap", "width of the band around the predicted limit, and what sets it"),
    Experiment("loss-vs-ratio", _P + "loss_vs_ratio", "test loss and accuracy vs removed fraction, predicted limits"),
    Experiment("weight-distribution", _P + "weight_distribution", "weight-magnitude histogram and ratio vs magnitude"),
    Experiment("tv-distance", _P + "tv_distance", "total-variation distance between weight distributions of runs",
               min_seeds=2),
    Experiment("hessian-row-l1", _P + "hessian_row_l1", "l1 norms of Hessian rows (exact, sampled, Cauchy probes)"),
    Experiment("slq-settings", _P + "slq_settings", "sensitivity of the predicted limit to SLQ settings"),
    Experiment("weight-scaling", _P + "weight_scaling", "predicted and actual limit with weights scaled x1..x5"),
    Experiment("iterative", _P + "iterative", "predicted limit over rounds of prune-retrain-recompute"),
    Experiment("l2", _P + "l2", "limit with and without l2 regularisation, and l2 in Rare Gems"),
    Experiment("baselines", _P + "baselines", "LOMP vs Rare Gems, IMP (rewinding), Smart-Ratio: test accuracy"),
)}


@dataclass(frozen=True)
class ExperimentRecord:
    """What :func:`run_experiment` did: the outcome, where it wrote, how long it took, the cells it computed."""

    name: str
    outcome: Outcome
    paths: dict[str, Path]
    wall_seconds: float
    cells_computed: int
    cells_cached: int


def make_context(
    scale: str | Scale = "cpu",
    out: str | Path = "prunelimit-experiments",
    *,
    models: Sequence[str] | None = None,
    seeds: int | None = None,
    data_root: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Context:
    """A :class:`~nets.experiments.context.Context` for ``scale`` (a name or a :class:`Scale`; validated before
    any work)."""
    return Context(scale if isinstance(scale, Scale) else get_scale(scale), out, models=models, seeds=seeds,
                   data_root=data_root, device=device, progress=progress)


def check_runnable(names: Sequence[str], ctx: Context) -> None:
    """Refuse unknown names and experiments that need more seeds than ``ctx`` has, before any work."""
    for name in names:
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment name={name!r}; choose one of {', '.join(EXPERIMENTS)} or 'all'")
        need = EXPERIMENTS[name].min_seeds
        if len(ctx.seeds) < need:
            raise ValueError(f"experiment {name!r} compares independent runs and needs seeds >= {need}, "
                             f"got seeds={len(ctx.seeds)}")


def run_experiment(name: str, ctx: Context, *, report: bool = True,
                   precomputed: dict[str, dict[str, Any]] | None = None) -> ExperimentRecord:
    """Run experiment ``name`` in ``ctx`` and write ``ctx.out/NAME/`` (and the report unless ``report=False``).

    ``precomputed`` (from :func:`run_all` with ``jobs > 1``): per worker, the seconds and cells it spent on this
    experiment; the recorded wall time is then the slowest worker's plus this assembly's, and the cells
    computed include the workers'.
    """
    check_runnable([name], ctx)
    exp = EXPERIMENTS[name]
    own = ctx.cells(name)
    before = (ctx.shared.computed + own.computed, ctx.shared.cached + own.cached)
    t0 = time.perf_counter()
    ctx.log(f"[{name}] start")
    outcome = exp.run(ctx)
    png = render_png(outcome.figure)
    wall = time.perf_counter() - t0
    computed = ctx.shared.computed + own.computed - before[0]
    cached = ctx.shared.cached + own.cached - before[1]
    meta: dict[str, Any] = {
        "experiment": name, "scale": ctx.scale.name, "models": [s.key for s in ctx.specs], "seeds": list(ctx.seeds),
        "device": ctx.device, "wall_seconds": wall, "cells_computed": computed, "cells_cached": cached,
        "settings": ctx.scale.to_dict(),
    }
    if precomputed:
        meta["workers"] = precomputed
        meta["assembly_seconds"] = wall
        meta["wall_seconds"] = wall + max(w["seconds"] for w in precomputed.values())
        meta["cells_computed"] = computed + sum(w["cells_computed"] for w in precomputed.values())
        meta["cells_cached"] = max(0, cached - sum(w["cells_computed"] for w in precomputed.values()))
    paths = write_outcome(ctx.out / name, outcome, meta, png=png)
    if report:
        write_report(ctx.out, list(EXPERIMENTS))
    ctx.log(f"[{name}] done in {wall:.1f} s: {outcome.headline}")
    return ExperimentRecord(name, outcome, paths, meta["wall_seconds"], meta["cells_computed"], meta["cells_cached"])


def partition(specs: Sequence[ModelSpec], jobs: int) -> list[list[ModelSpec]]:
    """Share the networks between ``jobs`` workers, largest ``cost`` first onto the least loaded (LPT).

    >>> from nets.experiments.scales import get_scale
    >>> [[s.key for s in g] for g in partition(get_scale("cpu").models, 2)]
    [['cnn-digits'], ['mlp-digits', 'mlp-ts']]
    """
    groups: list[list[ModelSpec]] = [[] for _ in range(min(jobs, len(specs)))]
    load = [0.0] * len(groups)
    for spec in sorted(specs, key=lambda s: -s.cost):
        i = load.index(min(load))
        groups[i].append(spec)
        load[i] += spec.cost
    order = {s.key: i for i, s in enumerate(specs)}
    return [sorted(g, key=lambda s: order[s.key]) for g in groups]


def _worker(scale: Scale, out: str, models: list[str], seeds: int, data_root: str | None, device: str,
            names: list[str], quiet: bool) -> dict[str, dict[str, Any]]:
    """Compute the cells of ``names`` for the networks ``models`` (one process of :func:`run_all`)."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tag = ",".join(models)
    # the child's own progress channel (a spawned process has no logging set up): one line per stage on the
    # stderr it shares with the parent
    handler = None if quiet else logging.StreamHandler()
    if handler is not None:
        _WORKER_LOG.addHandler(handler)

    def progress(message: str) -> None:
        _WORKER_LOG.info("[%7.1f s] (%s) %s", time.perf_counter() - t0, tag, message)

    try:
        ctx = make_context(scale, out, models=models, seeds=seeds, data_root=data_root, device=device,
                           progress=progress)
        stats: dict[str, dict[str, Any]] = {}
        for name in names:
            if len(ctx.seeds) < EXPERIMENTS[name].min_seeds:
                continue
            own = ctx.cells(name)
            before = ctx.shared.computed + own.computed
            t = time.perf_counter()
            EXPERIMENTS[name].run(ctx)
            stats[name] = {"seconds": time.perf_counter() - t,
                           "cells_computed": ctx.shared.computed + own.computed - before}
        return stats
    finally:
        if handler is not None:
            _WORKER_LOG.removeHandler(handler)


def run_all(ctx: Context, names: Sequence[str] | None = None, *, jobs: int = 1,
            quiet_workers: bool = False) -> list[ExperimentRecord]:
    """Run every experiment (or ``names``) in registry order, then write ``report.md`` and ``report.html``.

    ``jobs > 1``: first compute every cell in ``jobs`` worker processes (``spawn``), each taking a share of the
    networks (:func:`partition`; all cells are per network), then assemble every experiment from the cells in
    this process. Results are the same as with ``jobs=1`` (each cell is computed by exactly one process).
    """
    names = list(names or EXPERIMENTS)
    check_runnable(names, ctx)
    jobs = check_int("jobs", jobs, minimum=1)
    per_experiment: dict[str, dict[str, dict[str, Any]]] = {}
    groups = partition(ctx.specs, jobs)
    if len(groups) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx.log(f"computing in {len(groups)} processes: " + " | ".join(",".join(s.key for s in g) for g in groups))
        with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {",".join(s.key for s in g): pool.submit(
                _worker, ctx.scale, str(ctx.out), [s.key for s in g], len(ctx.seeds),
                None if ctx.data_root is None else str(ctx.data_root), ctx.device, names, quiet_workers) for g in groups}
            for key, fut in futures.items():
                for name, st in fut.result().items():
                    per_experiment.setdefault(name, {})[key] = st
    records = [run_experiment(n, ctx, report=False, precomputed=per_experiment.get(n)) for n in names]
    write_report(ctx.out, list(EXPERIMENTS))
    return records
