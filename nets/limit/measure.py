"""Stage 4 of the pipeline: the measured limits, in the real network, with the true loss.

*Magnitude-pruning limit* (LOMP, uncompensated; the authors' "actual" limit): global one-shot magnitude
pruning of the trained weights, no fine-tuning, evaluated in memory (nothing saved per level: the authors'
mistake 7). A grid of kept fractions (``grid_step``, default 0.01) gives the curves; each criterion's limit is
then refined by bisection between grid levels to ``resolution`` weights
(:func:`nets.limit.search.threshold_search`, monotonicity reported). Criteria:

* ``train_loss``: training loss ``≤ L(w*) + ε`` — the theory's criterion and the one the predictions target;
* ``test_accuracy``: test accuracy ``≥ dense − accuracy_tolerance`` (classification with test data only);
* ``authors_strict_accuracy``: test accuracy *strictly above* the dense one, the least grid level where it
  holds at all (the authors' ``gaussian_width.py``; it crashed when no level qualified, which is reported here
  as ``None``).

*Fundamental limit* (compensated): at each searched level the kept weights are re-optimised on the true loss
(:class:`nets.compensate.Compensator`) and the limit is the least kept fraction whose *compensated* training
loss is ``≤ L(w*) + ε``. Two compensations, two searches: the quadratic (OBS) step with its true-loss line
search — the primary measurement, of the same local compensation the second-order predictions describe — and
that step followed by masked L-BFGS re-optimisation, which can reach sparse points far outside the quadratic
model (both exhibit points of the sublevel set, so both are upper bounds on the limit; the re-optimised one is
the tighter). Each level costs a CG solve, so the grid is coarse (``compensated_grid_step``, default 0.1) and
bisection does the rest to ``compensated_resolution`` (default 1e-3 of N); costs are recorded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.compensate import CompensationConfig, Compensator
from nets.limit.data import PipelineData
from nets.limit.parallel import process_group, split_levels
from nets.limit.search import SearchResult, grid_counts, threshold_search
from nets.limit.tolerance import ToleranceResult
from nets.params import flatten, prunable_parameters, unflatten_like
from nets.train import evaluate
from theory.validation import check_fraction, check_int, check_real

__all__ = ["MeasureConfig", "CriterionLimit", "MagnitudeMeasurement", "FundamentalMeasurement",
           "measure_magnitude", "measure_fundamental", "MAX_GRID_LEVELS", "DEFAULT_ACCURACY_TOLERANCE"]

#: The most grid levels a sweep may have (a smaller ``grid_step`` is refused before any work).
MAX_GRID_LEVELS = 10_001
#: Test-accuracy tolerance of the accuracy criterion (ours: one percentage point).
DEFAULT_ACCURACY_TOLERANCE = 0.01

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MeasureConfig:
    """Settings of both measurements (validated here, once).

    ``grid_step``: kept-fraction step of the LOMP curves (≥ 1/(MAX_GRID_LEVELS − 1)); ``resolution``: width in
    weights at which LOMP bisection stops; ``accuracy_tolerance``; ``fundamental``: measure the compensated
    limit at all; ``reoptimise``: also measure it after masked re-optimisation; ``compensation``:
    :class:`nets.compensate.CompensationConfig` of each level (default: 50 masked L-BFGS evaluations of the
    re-optimisation after the quadratic step); ``compensated_grid_step`` and
    ``compensated_resolution`` (a kept fraction) of its search; ``eval_batch_size`` of the loss evaluations.
    """

    grid_step: float = 0.01
    resolution: int = 1
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE
    fundamental: bool = True
    reoptimise: bool = True
    compensation: CompensationConfig = field(default_factory=lambda: CompensationConfig(steps=50))
    compensated_grid_step: float = 0.1
    compensated_resolution: float = 1e-3
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        step = check_real("grid_step", self.grid_step, minimum=0.0, maximum=1.0, open_min=True)
        if round(1.0 / step) + 1 > MAX_GRID_LEVELS:
            raise ValueError(f"grid_step={self.grid_step!r} gives more than {MAX_GRID_LEVELS} sweep levels; the "
                             f"limit is refined by bisection anyway, so use grid_step >= {1 / (MAX_GRID_LEVELS - 1):g}")
        check_int("resolution", self.resolution, minimum=1)
        check_fraction("accuracy_tolerance", self.accuracy_tolerance)
        for name in ("fundamental", "reoptimise"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {name}={getattr(self, name)!r}")
        if not isinstance(self.compensation, CompensationConfig):
            raise TypeError(f"compensation must be a CompensationConfig, got {type(self.compensation).__name__}")
        check_real("compensated_grid_step", self.compensated_grid_step, minimum=0.0, maximum=1.0, open_min=True)
        check_real("compensated_resolution", self.compensated_resolution, minimum=0.0, maximum=1.0, open_min=True)
        check_int("eval_batch_size", self.eval_batch_size, minimum=1)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["compensation"] = dict(self.compensation.__dict__)
        return d


@dataclass(frozen=True)
class CriterionLimit:
    """The measured magnitude-pruning limit under one criterion.

    ``kept_fraction``: the least kept fraction such that the criterion holds there and at every denser grid
    level, refined by bisection (None when even the dense model fails it); ``kept_fraction_any``: the least
    evaluated level where it holds at all (the authors' reading of their accuracy criterion);
    ``non_monotone_kept_fractions``: qualifying levels below the limit.
    """

    criterion: str
    description: str
    threshold: float
    kept_fraction: float | None
    kept_count: int | None
    kept_fraction_any: float | None
    non_monotone_kept_fractions: tuple[float, ...]
    evaluations: int

    @property
    def removed_fraction(self) -> float | None:
        return None if self.kept_fraction is None else 1.0 - self.kept_fraction

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["non_monotone_kept_fractions"] = list(self.non_monotone_kept_fractions)
        d["removed_fraction"] = self.removed_fraction
        return d


@dataclass(frozen=True)
class MagnitudeMeasurement:
    """The LOMP sweep: ``curves`` (per grid level: ``kept_fraction``, ``kept_count``, ``train_loss`` and
    ``test_loss`` (data loss), ``train_acc``, ``test_acc`` (NaN where undefined), ``objective`` (the training
    objective the criterion uses: data loss + ℓ1 term)), ``limits`` by criterion, cost."""

    curves: dict[str, np.ndarray]
    limits: dict[str, CriterionLimit]
    levels_evaluated: int
    forward_passes: int
    seconds: float

    @property
    def kept_fraction(self) -> float | None:
        """The limit under the theory's criterion (training loss ``≤ L(w*) + ε``)."""
        return self.limits["train_loss"].kept_fraction

    def to_dict(self) -> dict[str, Any]:
        return {"kept_fraction": self.kept_fraction, "limits": {k: v.to_dict() for k, v in self.limits.items()},
                "curves": {k: v.tolist() for k, v in self.curves.items()}, "levels_evaluated": self.levels_evaluated,
                "forward_passes": self.forward_passes, "seconds": self.seconds}


@dataclass(frozen=True)
class FundamentalMeasurement:
    """The compensated searches over kept counts (grid + bisection), both on the true training loss:

    ``search``: compensation by the quadratic (OBS) step with its true-loss line search — the measured
    fundamental limit that the predictions model (they are second-order models around ``w*``); a point found
    is in the sublevel set, so it is an upper bound on the limit defined with the best point on the support.
    ``search_reoptimised`` (None when switched off): the quadratic step followed by masked re-optimisation of
    the kept weights (``compensation.steps`` L-BFGS evaluations per level) — a tighter upper bound, which also
    reaches points far outside the quadratic model's reach. It re-optimises only the levels whose quadratic step
    misses the criterion: the re-optimisation never raises the loss, so a level whose quadratic step qualifies
    qualifies after it too. At those levels, listed in ``reoptimisation_skipped``, its values are the quadratic
    step's losses (upper bounds on the re-optimised ones; the limit found is the same). ``levels``: one
    :meth:`nets.compensate.CompensationResult.to_dict` per evaluated level (``loss_after`` is None where the
    re-optimisation was not run); costs of both searches together.
    """

    search: SearchResult
    search_reoptimised: SearchResult | None
    levels: tuple[dict[str, Any], ...]
    hvps: int
    gradients: int
    forward_passes: int
    seconds: float
    compensation: CompensationConfig
    reoptimisation_skipped: tuple[int, ...] = ()

    @property
    def kept_fraction(self) -> float:
        """The measured fundamental limit with the quadratic (OBS) step (the primary measurement)."""
        return self.search.kept_fraction

    @property
    def kept_count(self) -> int:
        return self.search.kept_count

    @property
    def kept_fraction_reoptimised(self) -> float | None:
        """The measured limit after masked re-optimisation (None when not run)."""
        return None if self.search_reoptimised is None else self.search_reoptimised.kept_fraction

    def curve(self) -> dict[str, np.ndarray]:
        """Per evaluated level sorted by kept fraction: the compensated loss (NaN where not re-optimised), the
        loss after the quadratic step, the plain-pruning loss, and the quadratic model's compensated prediction
        ``L(w*) + Δ``."""
        lv = sorted(self.levels, key=lambda d: d["kept_count"])
        nan = float("nan")
        return {"kept_fraction": np.array([d["kept_fraction"] for d in lv]),
                "loss_after": np.array([nan if d["loss_after"] is None else d["loss_after"] for d in lv]),
                "loss_quadratic_step": np.array([d["loss_quadratic_step"] for d in lv]),
                "loss_pruned": np.array([d["loss_pruned"] for d in lv]),
                "loss_quadratic_model": np.array([d["loss_dense"] + d["predicted_increase_compensated"] for d in lv])}

    def to_dict(self) -> dict[str, Any]:
        return {"kept_fraction": self.kept_fraction, "kept_count": self.kept_count,
                "kept_fraction_reoptimised": self.kept_fraction_reoptimised, "search": self.search.to_dict(),
                "search_reoptimised": None if self.search_reoptimised is None else self.search_reoptimised.to_dict(),
                "levels": list(self.levels), "hvps": self.hvps,
                "gradients": self.gradients, "forward_passes": self.forward_passes, "seconds": self.seconds,
                "compensation": dict(self.compensation.__dict__),
                "reoptimisation_skipped": list(self.reoptimisation_skipped)}


def _magnitude_setter(model: nn.Module) -> tuple[Callable[[int], None], int, np.ndarray]:
    """A function setting the prunable weights to the ``k`` largest magnitudes of ``w*``, N, and the ℓ1 norm of
    the kept weights for every ``k`` (``cum[k] = Σ`` of the ``k`` largest ``|w*|``)."""
    params = [w for _, w in prunable_parameters(model)]
    dense = flatten([w.detach() for w in params]).clone()
    order = torch.sort(dense.abs(), descending=True, stable=True).indices
    cum = np.concatenate([[0.0], np.cumsum(dense.abs()[order].to("cpu", torch.float64).numpy())])

    def set_level(k: int) -> None:
        flat = torch.zeros_like(dense)
        flat[order[:k]] = dense[order[:k]]
        with torch.no_grad():
            for w, piece in zip(params, unflatten_like(flat, params)):
                w.copy_(piece)

    return set_level, int(dense.numel()), cum


def measure_magnitude(model: nn.Module, data: PipelineData, tolerance: ToleranceResult, config: MeasureConfig,
                      progress: Progress | None = None) -> MagnitudeMeasurement:
    """The LOMP sweep and its limits (module docstring). ``model`` is a working copy: its prunable weights are
    rewritten level by level and restored at the end."""
    t0 = time.perf_counter()
    set_level, N, l1_kept = _magnitude_setter(model)
    lam = data.l1
    train_b = data.train_batches(config.eval_batch_size)
    test_b = data.test_batches(config.eval_batch_size)
    cls = data.classification
    cache_train: dict[int, tuple[float, float | None]] = {N: (tolerance.train.loss, tolerance.train.accuracy)}
    cache_test: dict[int, tuple[float, float | None]] = {}
    if tolerance.test is not None:
        cache_test[N] = (tolerance.test.loss, tolerance.test.accuracy)
    passes = 0
    grid = grid_counts(N, config.grid_step)
    done = [0]

    def metrics(k: int, which: str) -> tuple[float, float | None]:
        nonlocal passes
        cache = cache_train if which == "train" else cache_test
        if k not in cache:
            set_level(k)
            cache[k] = evaluate(model, train_b if which == "train" else test_b, data.loss_fn, accuracy=cls)
            passes += 1
            if progress is not None and which == "train":
                done[0] += 1
                progress("sweep", min(done[0], grid.size), grid.size)
        return cache[k]

    if process_group()[1] > 1:
        # the grid levels split across ranks (nets.limit.parallel): each level evaluated once, on the full data,
        # by its owner; the bisection steps that follow are evaluated by every rank (identically)
        nan = float("nan")
        todo = [int(k) for k in grid if int(k) not in cache_train]

        def level(k: int) -> tuple[float, float, float, float]:
            tl, ta = metrics(k, "train")
            el, ea = metrics(k, "test") if test_b is not None else (nan, None)
            return tl, nan if ta is None else ta, el, nan if ea is None else ea

        values, _ = split_levels(todo, level, 4, next(iter(model.parameters())).device)
        for k, (tl, ta, el, ea) in values.items():
            cache_train[k] = (tl, None if math.isnan(ta) else ta)
            if test_b is not None:
                cache_test[k] = (el, None if math.isnan(ea) else ea)
        passes = len(todo) * (1 if test_b is None else 2)  # the grid's data passes over all ranks together
        done[0] = len(todo)
        if progress is not None:
            progress("sweep", min(done[0], grid.size), grid.size)

    limits: dict[str, CriterionLimit] = {}
    thr = tolerance.threshold
    s = threshold_search(lambda ks: [metrics(k, "train")[0] + lam * l1_kept[k] for k in ks], lambda v: v <= thr, N,
                         grid.tolist(), resolution=config.resolution)
    limits["train_loss"] = _criterion("train_loss", "training loss <= L(w*) + eps", thr, s)
    if cls and test_b is not None and tolerance.test is not None:
        dense_acc = float(tolerance.test.accuracy)  # type: ignore[arg-type]
        floor = dense_acc - config.accuracy_tolerance
        s = threshold_search(lambda ks: [metrics(k, "test")[1] for k in ks], lambda v: v >= floor, N, grid.tolist(),
                             resolution=config.resolution)
        limits["test_accuracy"] = _criterion("test_accuracy", f"test accuracy >= dense - {config.accuracy_tolerance:g}",
                                             floor, s)
        strict = [int(k) for k in grid if metrics(int(k), "test")[1] > dense_acc]  # type: ignore[operator]
        any_k = min(strict) if strict else None
        limits["authors_strict_accuracy"] = CriterionLimit(
            "authors_strict_accuracy", "test accuracy strictly above dense (the authors' code; the least grid level)",
            dense_acc, None if any_k is None else any_k / N, any_k, None if any_k is None else any_k / N, (), grid.size)
    # curves on the grid (evaluated above for the criteria; any missing metric is filled in now)
    nan = float("nan")
    rows = []
    for k in grid.tolist():
        tl, ta = metrics(k, "train")
        el, ea = metrics(k, "test") if test_b is not None else (nan, None)
        rows.append((k / N, k, tl, nan if ta is None else ta, el, nan if ea is None else ea, tl + lam * l1_kept[k]))
    arr = np.array(rows, dtype=np.float64)
    curves = {name: arr[:, i] for i, name in enumerate(("kept_fraction", "kept_count", "train_loss", "train_acc",
                                                        "test_loss", "test_acc", "objective"))}
    set_level(N)  # restore the dense weights
    levels = len((set(cache_train) | set(cache_test)) - {N})  # the dense level comes from the tolerance stage
    return MagnitudeMeasurement(curves, limits, levels, passes, time.perf_counter() - t0)


def _criterion(name: str, description: str, threshold: float, s: SearchResult) -> CriterionLimit:
    ok_dense = s.grid_ok[-1]
    kf = s.kept_fraction if ok_dense else None
    return CriterionLimit(name, description, float(threshold), kf, s.kept_count if ok_dense else None,
                          None if s.kept_count_any is None else s.kept_count_any / s.N,
                          tuple(k / s.N for k in s.non_monotone), s.n_evaluations)


def measure_fundamental(compensator: Compensator, tolerance: ToleranceResult, config: MeasureConfig,
                        progress: Progress | None = None, *, hint: float | None = None) -> FundamentalMeasurement:
    """The compensated limits (module docstring): the quadratic-step search, then the re-optimised search
    reusing every level already computed. ``hint`` (e.g. the predicted kept fraction) is added to the
    grid so that the bisection bracket around it is found early."""
    t0 = time.perf_counter()
    N = compensator.N
    thr = tolerance.threshold
    levels: dict[int, dict[str, Any]] = {}
    h0, g0 = compensator.operator.cost()["hvps"], compensator.operator.cost()["gradients"]
    f0 = compensator.forward_passes
    extra = [] if hint is None else [int(round(hint * N))]
    grid = grid_counts(N, config.compensated_grid_step, extra)
    resolution = max(1, int(config.compensated_resolution * N))
    total_guess = 2 * (grid.size + int(np.ceil(np.log2(max(2.0, N / resolution / max(1, grid.size - 1))))))
    opt_evals = 0
    calls = [0]
    dense = {"kept_count": N, "kept_fraction": 1.0, "loss_dense": tolerance.loss_dense,
             "loss_pruned": tolerance.loss_dense, "loss_quadratic_step": tolerance.loss_dense,
             "loss_after": tolerance.loss_dense, "predicted_increase_uncompensated": 0.0,
             "predicted_increase_compensated": 0.0, "step_size": 0.0, "cg": None, "optimizer": None,
             "optimizer_evaluations": 0, "hvps": 0, "gradients": 0, "forward_passes": 0, "seconds": 0.0}

    # the quadratic-step results the re-optimised search continues from (every level: both searches bisect
    # in overlapping brackets, so its midpoints are mostly levels the first search has solved already)
    quadratic: dict[int, Any] = {}
    keep = config.reoptimise and compensator.config.steps > 0

    def level(k: int, full: bool) -> dict[str, Any]:
        nonlocal opt_evals
        d = levels.get(k)
        if k == N:
            d = levels[k] = dense
        elif d is None or (full and d["loss_after"] is None):
            if full and k in quadratic:  # the same result as compensator(k, reoptimise=True), one CG solve fewer
                r = compensator.reoptimise(k, quadratic.pop(k))
            else:
                r = compensator(k, reoptimise=full)
                if not full and keep:
                    quadratic[k] = dataclasses.replace(r, weights=r.weights.cpu())
            d = r.to_dict()
            if not full:
                d["loss_after"] = None
            levels[k] = d
            opt_evals += r.optimizer_evaluations
            calls[0] += 1
            if progress is not None:
                progress("compensated", min(calls[0], total_guess), total_guess)
        return d

    skipped: set[int] = set()

    def reoptimised_value(k: int) -> float:
        q = level(k, False)["loss_quadratic_step"]
        if q <= thr:
            # the re-optimisation never raises the loss (it keeps its start otherwise), so the level qualifies
            # either way: the search takes the same path, and its L-BFGS evaluations are saved
            if k < N:  # (the dense network itself is never re-optimised)
                skipped.add(k)
            return q
        return level(k, True)["loss_after"]

    # the quadratic step first (cheap: a CG solve per level), then the re-optimised search reusing its levels
    search = threshold_search(lambda ks: [level(k, False)["loss_quadratic_step"] for k in ks], lambda v: v <= thr, N,
                              grid.tolist(), resolution=resolution)
    reopt = None
    if keep:
        reopt = threshold_search(lambda ks: [reoptimised_value(k) for k in ks], lambda v: v <= thr, N,
                                 grid.tolist(), resolution=resolution)
    c = compensator.operator.cost()
    return FundamentalMeasurement(search=search, search_reoptimised=reopt, levels=tuple(levels.values()),
                                  reoptimisation_skipped=tuple(sorted(skipped)),
                                  hvps=c["hvps"] - h0, gradients=c["gradients"] - g0 + opt_evals,
                                  forward_passes=compensator.forward_passes - f0, seconds=time.perf_counter() - t0,
                                  compensation=compensator.config)
