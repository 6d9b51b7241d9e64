"""The limit analysis of one trained network, shared by the experiments: the adapter to the limit pipeline.

:func:`analyze` returns an :class:`Analysis`: the dense metrics, the tolerance ``ε``, the SLQ spectrum of the
prunable-weight Hessian, the predicted limits and the LOMP sweep with its measured limits, all as plain data
(JSON round trip by :meth:`Analysis.to_dict` / :meth:`Analysis.from_dict`, so that a finished analysis is a
resumable cell).

The two limits of the package (docs/math.md §2.1) are reported side by side:

* **fundamental** (compensated) limit: predicted by ``free`` (ours) and ``flat`` (the authors' formula) of
  :func:`theory.limits.pruning_limit`, measured by compensated pruning (the pipeline's primary measurement, the
  quadratic OBS step);
* **magnitude-pruning** (LOMP, uncompensated) limit: predicted by the pipeline's primary magnitude prediction
  (the Taylor model; the Haar model ``min{ρ : ½ R(ρ)² Tr(H)/N ≤ ε}`` for pruned networks), measured by LOMP
  under the theory's criterion (training loss ``≤ L(w*) + ε``), the accuracy criterion (test accuracy ``≥``
  dense ``−`` tolerance) and the authors' criterion (test accuracy strictly above dense, least qualifying level).

This module is the one place that talks to the limit pipeline: dense networks go through
``nets.limit.estimate_pruning_limit`` and :func:`analyze` maps its result onto :class:`Analysis`.

``within`` (a mask set) analyses a pruned network in the space of its surviving weights: the Hessian is the
compression ``P_Aᵀ H P_A`` onto the active coordinates ``A`` and ``R(ρ)`` runs over the active weights; every
kept fraction is reported relative to all ``N`` prunable weights (``ρ_global = ρ_A · |A|/N``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.data import DataSplit, fixed_batches
from nets.hessian import HessianOperator
from nets.io import jsonable
from nets.params import copy_model, flatten, prunable_parameters
from nets.prune import Masks, magnitude_sweep, remove_masks
from nets.train import evaluate
from numerics.operators import LinearOperator
from numerics.slq import slq
from theory.limits import haar_magnitude_limit, pruning_limit
from theory.spectrum import Spectrum
from theory.validation import check_choice, check_fraction, check_int, check_real

__all__ = ["AnalysisSettings", "Analysis", "analyze", "hessian_operator", "RestrictedOperator", "sweep_grid",
           "active_index"]

log = logging.getLogger(__name__)

#: The prediction methods reported, and the limit each predicts.
PREDICTIONS: dict[str, str] = {"free": "fundamental", "flat": "fundamental", "magnitude": "magnitude"}
#: The measured criteria of the LOMP sweep.
CRITERIA: tuple[str, ...] = ("loss", "accuracy", "authors_strict")


@dataclass(frozen=True)
class AnalysisSettings:
    """Settings of :func:`analyze` (the limit pipeline's defaults unless a scale says otherwise).

    ``slq_steps``/``slq_probes``: SLQ (package default 128 × 4; the authors 128 × 1); ``hessian_samples``: a
    fixed random subset of the training set for the Hessian (``None``: all of it, the authors' choice);
    ``hessian_batch_size``: only partitions the average; ``eps_batch_size``: ``ε`` is the standard deviation of
    the per-batch training loss at this batch size (the authors' 128); ``sweep_step``: grid step of the LOMP
    sweep in kept fraction (authors 0.001); ``accuracy_tolerance``: the accuracy criterion's tolerance (ours,
    one point); ``eta``, ``negative``: :func:`theory.limits.pruning_limit`'s kinematic failure probability and
    negative-eigenvalue policy.
    """

    slq_steps: int = 128
    slq_probes: int = 4
    hessian_samples: int | None = None
    hessian_batch_size: int = 1024
    eps_batch_size: int = 128
    sweep_step: float = 0.001
    accuracy_tolerance: float = 0.01
    eta: float = 0.01
    negative: str = "abs"

    def __post_init__(self) -> None:
        check_int("slq_steps", self.slq_steps, minimum=1)
        check_int("slq_probes", self.slq_probes, minimum=1)
        if self.hessian_samples is not None:
            check_int("hessian_samples", self.hessian_samples, minimum=1)
        check_int("hessian_batch_size", self.hessian_batch_size, minimum=1)
        check_int("eps_batch_size", self.eps_batch_size, minimum=1)
        step = check_fraction("sweep_step", self.sweep_step)
        if step <= 0 or abs(round(1.0 / step) * step - 1.0) > 1e-9:
            raise ValueError(f"sweep_step must divide 1, got sweep_step={self.sweep_step!r}")
        check_fraction("accuracy_tolerance", self.accuracy_tolerance)
        check_real("eta", self.eta, minimum=0.0, maximum=1.0, open_min=True, open_max=True)
        check_choice("negative", self.negative, ("abs", "clip", "drop"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> AnalysisSettings:
        return dataclasses.replace(self, **changes)


def sweep_grid(step: float, extra: Any = ()) -> np.ndarray:
    """Kept fractions ``0, step, …, 1`` together with ``extra`` levels, sorted and unique.

    >>> sweep_grid(0.25, [0.1]).tolist()
    [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
    """
    n = int(round(1.0 / step))
    grid = np.round(np.linspace(0.0, 1.0, n + 1), 12)
    return np.unique(np.concatenate([grid, np.asarray(list(extra), dtype=np.float64)]))


def active_index(model: nn.Module, within: Masks | None) -> torch.Tensor | None:
    """Flat indices of the active (kept) prunable weights under ``within`` (``None``: all weights)."""
    if within is None:
        return None
    names = [n for n, _ in prunable_parameters(model)]
    missing = [n for n in names if n not in within]
    if missing:
        raise ValueError(f"within has no mask for the prunable weights {missing}")
    flat = torch.cat([within[n].reshape(-1).to("cpu", torch.bool) for n in names])
    return torch.nonzero(flat).reshape(-1)


class RestrictedOperator(LinearOperator):
    """The compression ``P_Aᵀ H P_A`` of a symmetric operator onto the coordinates ``A`` (``index``): a vector
    of the ``|A|``-dimensional space is embedded with zeros elsewhere, multiplied, and read back on ``A``.

    >>> from numerics.operators import DenseOperator
    >>> H = DenseOperator(torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 4.0], [0.0, 4.0, 5.0]], dtype=torch.float64),
    ...                   symmetric=True)
    >>> RestrictedOperator(H, torch.tensor([0, 2])).to_dense().tolist()
    [[2.0, 0.0], [0.0, 5.0]]
    """

    def __init__(self, op: LinearOperator, index: torch.Tensor) -> None:
        if not op.symmetric:
            raise ValueError("RestrictedOperator needs a symmetric operator")
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            raise ValueError("the restriction keeps no coordinate")
        if int(index.min()) < 0 or int(index.max()) >= op.shape[0] or torch.unique(index).numel() != index.numel():
            raise ValueError(f"index must hold distinct coordinates in [0, {op.shape[0]})")
        super().__init__((int(index.numel()),) * 2, dtype=op.dtype, device=op.device, symmetric=True)
        self._op = op
        self._index = index.to(op.device)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        full = V.new_zeros((self._op.shape[0], V.shape[1]))
        full[self._index] = V
        return self._op.matmat(full)[self._index]

    def cost(self) -> dict[str, int] | None:
        fn = getattr(self._op, "cost", None)
        return fn() if callable(fn) else None

    @property
    def hvp_path(self) -> str | None:
        return getattr(self._op, "hvp_path", None)


@dataclass
class Analysis:
    """The limit analysis of one network (all kept fractions relative to the ``n_prunable`` weights).

    Attributes
    ----------
    n_prunable, n_active:
        ``N`` and the number of weights the analysis may prune (``N`` for a dense network).
    dense:
        ``train_loss``/``train_acc`` (un-augmented training set), ``test_loss``/``test_acc``.
    eps:
        The tolerance: the standard deviation of the per-batch training loss (``eps_batch_size``).
    spectrum:
        SLQ :class:`~theory.spectrum.Spectrum` of the Hessian over the active prunable weights.
    slq:
        ``steps``, ``n_probes``, ``matvecs``, ``hvp_path``, ``seconds``, ``breakdowns``, ``hessian_samples``.
    predicted:
        ``{"free" | "flat" | "magnitude": {...}}``: ``kept_fraction`` (global), ``kept_fraction_lower`` /
        ``kept_fraction_upper`` (our bands; the magnitude value has none, so both equal it), ``stderr``,
        ``kept_fraction_active`` (relative to the active weights), and the diagnostics of
        :class:`theory.limits.PruningLimit` (``R``, ``mean_eigenvalue``, ``negative_mass``, ...).
    curves:
        ``kept_fraction`` (global) and each method's predicted loss increase on that grid (``free``:
        ``½R²ρs/(1−ρ)``; ``flat``: ``½R²s``; ``magnitude``: ``½R²Tr(H)/|A|``).
    sweep:
        The LOMP sweep: ``kept_fraction``, ``kept_count``, ``train_loss``, ``train_acc``, ``test_loss``,
        ``test_acc`` per level.
    measured:
        ``{"loss" | "accuracy" | "authors_strict": {...}}``: each criterion's limit (``kept_fraction``: the least
        level from which every denser level qualifies; ``kept_fraction_any``: the least qualifying level).
    fundamental_measured:
        The measured compensated limit (dense networks; ``None`` for a pruned one).
    seconds:
        Wall time per stage.
    """

    n_prunable: int
    n_active: int
    dense: dict[str, float]
    eps: float
    spectrum: Spectrum
    slq: dict[str, Any]
    predicted: dict[str, dict[str, Any]]
    curves: dict[str, list[float]]
    sweep: dict[str, list[float]]
    measured: dict[str, dict[str, Any]]
    fundamental_measured: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    FORMAT = "prunelimit.experiments.Analysis/1"

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["spectrum"] = self.spectrum.to_dict()
        d["format"] = self.FORMAT
        return jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Analysis:
        if d.get("format") != cls.FORMAT:
            raise ValueError(f"not an {cls.FORMAT} record (format={d.get('format')!r})")
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["spectrum"] = Spectrum.from_dict(d["spectrum"])
        return cls(**kw)

    def measured_kept(self, criterion: str) -> float | None:
        """The measured LOMP limit (kept fraction) under ``criterion``; the authors' strict criterion reads the
        least qualifying level (their code), the others the least level below which nothing qualifies."""
        m = self.measured[check_choice("criterion", criterion, CRITERIA)]
        return m["kept_fraction_any"] if criterion == "authors_strict" else m["kept_fraction"]

    def limits(self) -> list[dict[str, Any]]:
        """One row per (limit, prediction): predicted kept fraction with band, the measurement of the same limit
        (``None`` where not measured) and ``predicted − measured``."""
        rows = []
        for method, limit in PREDICTIONS.items():
            p = self.predicted[method]
            measured = self.fundamental_measured if limit == "fundamental" else self.measured_kept("loss")
            rows.append({"limit": limit, "prediction": method, "predicted": p["kept_fraction"],
                         "lower": p["kept_fraction_lower"], "upper": p["kept_fraction_upper"],
                         "measured": measured, "criterion": "train loss <= L(w*) + eps",
                         "gap": None if measured is None else p["kept_fraction"] - measured})
        return rows

    def sweep_at(self, key: str, kept_fraction: float) -> float:
        """The sweep's ``key`` at the grid level nearest to ``kept_fraction``."""
        rho = np.asarray(self.sweep["kept_fraction"], dtype=np.float64)
        i = int(np.argmin(np.abs(rho - kept_fraction)))
        v = self.sweep[key][i]
        return math.nan if v is None else float(v)


def _limit_record(lim: Any, scale: float) -> dict[str, Any]:
    return {
        "kept_fraction": lim.kept_fraction * scale,
        "kept_fraction_lower": lim.kept_fraction_lower * scale,
        "kept_fraction_upper": lim.kept_fraction_upper * scale,
        "stderr": lim.stderr * scale,
        "kept_fraction_active": lim.kept_fraction,
        "R": lim.R,
        "eps": lim.eps,
        "mean_eigenvalue": lim.mean_eigenvalue,
        "negative_mass": lim.negative_mass,
        "rank_fraction": lim.rank_fraction,
        "sharpness_bound": lim.sharpness_bound * scale,
        "band_kinematic": lim.settings["a_eta"] / math.sqrt(lim.N),
        "band_dimension": 1.0 / lim.N,
        "band_slq": lim.settings["band_z"] * lim.stderr,
        "N": lim.N,
    }


def _pipeline_data(model: nn.Module, data: DataSplit, dev: torch.device, dtype: torch.dtype) -> Any:
    from nets.limit.data import prepare_data

    return prepare_data(model, data, device=dev, dtype=dtype)


def hessian_operator(model: nn.Module, data: DataSplit, settings: AnalysisSettings, *,
                     generator: torch.Generator) -> HessianOperator:
    """The Hessian of the mean cross-entropy over the prunable weights of ``model`` (at its parameters now, on
    their device) over the analysis's Hessian data: the un-augmented training set, or the fixed random subset
    of ``settings.hessian_samples`` samples drawn from ``generator`` (:func:`nets.limit.spectrum.hessian_batches`,
    the pipeline's). The graphs are cached when they fit (exact products, ``cache_graph="auto"``)."""
    from nets.limit import SpectrumConfig
    from nets.limit.spectrum import hessian_batches

    p = next(iter(model.parameters()))
    pdata = _pipeline_data(model, data, p.device, p.dtype)
    cfg = SpectrumConfig(batch_size=settings.hessian_batch_size, samples=settings.hessian_samples)
    return HessianOperator(model, nn.CrossEntropyLoss(), hessian_batches(pdata, cfg, generator), cache_graph="auto")


def _grid_limit(rho: np.ndarray, ok: np.ndarray, counts: np.ndarray, criterion: str, description: str,
                threshold: float) -> dict[str, Any]:
    """A measured limit on a grid: the least level from which every denser level qualifies (the pipeline's
    convention), and the least qualifying level (the authors' reading)."""
    order = np.argsort(-rho, kind="stable")
    best = None
    for i in order:
        if not ok[i]:
            break
        best = int(i)
    any_idx = np.nonzero(ok)[0]
    kf = None if best is None else float(rho[best])
    return {"criterion": criterion, "description": description, "threshold": float(threshold), "kept_fraction": kf,
            "kept_count": None if best is None else int(counts[best]),
            "kept_fraction_any": float(rho[any_idx].min()) if any_idx.size else None,
            "removed_fraction": None if kf is None else 1.0 - kf, "n_levels": int(ok.size)}


def _level_metrics(work: nn.Module, train_batches: Any, test_batches: Any, levels: Any) -> dict[str, Any]:
    """LOMP metrics of ``work`` at the given kept fractions (the pipeline's magnitude ranking and count rule)."""
    def evaluate_fn(pruned: nn.Module) -> dict[str, float]:
        trl, tra = evaluate(pruned, train_batches)
        tel, tea = evaluate(pruned, test_batches)
        return {"train_loss": trl, "train_acc": tra, "test_loss": tel, "test_acc": tea}

    sw = magnitude_sweep(work, list(levels), evaluate_fn)
    return {"kept_fraction": sw.kept_fractions, "kept_count": sw.kept_counts, **sw.metrics}


def analyze(
    model: nn.Module,
    data: DataSplit,
    settings: AnalysisSettings,
    *,
    seed: int,
    within: Masks | None = None,
    extra_levels: Any = (),
    device: str | torch.device | None = None,
) -> Analysis:
    """The limit analysis of ``model`` (never modified; a copy is used) on ``data`` (module docstring).

    A dense network (``within=None``) goes through :func:`nets.limit.estimate_pruning_limit` itself (oracle
    off): the predictions (``magnitude`` is the pipeline's primary magnitude-pruning prediction, the Taylor
    model), the LOMP measurement (its grid, refined by bisection) and the measured fundamental limit are the
    pipeline's. A pruned network (``within``) is analysed in the space of its surviving weights by SLQ on the
    restricted Hessian (the pipeline has no mask option): free/flat and the Haar magnitude prediction, the LOMP
    sweep on a grid, no compensated measurement. ``seed`` seeds the SLQ probes and the Hessian subset;
    ``extra_levels`` adds kept fractions to the sweep (e.g. a comparison table's sparsities).
    """
    from nets.limit.tolerance import ToleranceConfig, estimate_tolerance

    if not isinstance(settings, AnalysisSettings):
        raise TypeError(f"settings must be an AnalysisSettings, got {type(settings).__name__}")
    seed = check_int("seed", seed, minimum=0)
    first = next(iter(model.parameters()))
    dev = torch.device(device) if device is not None else first.device
    dtype = first.dtype
    if within is None:
        return _analyze_dense(model, data, settings, seed=seed, extra_levels=extra_levels, dev=dev)
    work = remove_masks(copy_model(model)).to(dev)
    work.eval()
    for p in work.parameters():
        p.requires_grad_(True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    train_batches = [(x.to(dev, dtype), y.to(dev)) for x, y in fixed_batches(data.train_eval, 1024)]
    test_batches = [(x.to(dev, dtype), y.to(dev)) for x, y in fixed_batches(data.test, 1024)]
    pdata = _pipeline_data(work, data, dev, dtype)
    tol = estimate_tolerance(work, pdata, ToleranceConfig(batch_size=settings.eps_batch_size))
    dense = {"train_loss": tol.train.loss, "train_acc": tol.train.accuracy,
             "test_loss": tol.test.loss, "test_acc": tol.test.accuracy}
    eps = tol.eps
    timings["eps"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    op: LinearOperator = hessian_operator(work, data, settings, generator=generator)
    hess_samples = op.n_samples
    n = op.shape[0]
    w = flatten([p.detach() for _, p in prunable_parameters(work)]).to("cpu", torch.float64)
    index = active_index(work, within)
    op = RestrictedOperator(op, index)
    w = w[index]
    n_active = op.shape[0]
    res = slq(op, steps=min(settings.slq_steps, n_active), n_probes=settings.slq_probes, generator=generator)
    timings["spectrum"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scale = n_active / n
    wn = w.numpy()
    lims = {m: pruning_limit(res.spectrum, wn, eps, method=m, eta=settings.eta, negative=settings.negative)
            for m in ("free", "flat")}
    predicted = {m: _limit_record(lim, scale) for m, lim in lims.items()}
    haar = haar_magnitude_limit(res.spectrum, wn, eps)
    mag = haar.kept_fraction
    predicted["magnitude"] = {**predicted["free"], "method": "haar", "kept_fraction": mag * scale,
                              "kept_fraction_lower": mag * scale, "kept_fraction_upper": mag * scale,
                              "stderr": haar.stderr * scale, "kept_fraction_active": mag, "band_kinematic": None,
                              "band_dimension": None, "band_slq": None}
    grid_local = np.asarray(lims["free"].curves.kept_fraction)
    R2 = np.asarray(lims["free"].curves.R) ** 2
    curves = {"kept_fraction": (grid_local * scale).tolist(), "free": lims["free"].curves.loss_increase.tolist(),
              "flat": lims["flat"].curves.loss_increase.tolist(),
              "magnitude": (0.5 * R2 * haar.mean_eigenvalue).tolist()}
    timings["limit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    grid = sweep_grid(settings.sweep_step, extra_levels)
    grid = grid[grid <= scale + 1e-12]
    if not np.isclose(grid[-1], scale):
        grid = np.append(grid, scale)
    sw = _level_metrics(work, train_batches, test_batches, grid.tolist())
    rho, counts = sw["kept_fraction"], sw["kept_count"]
    loss = np.nan_to_num(sw["train_loss"], nan=np.inf)
    measured = {
        "loss": _grid_limit(rho, loss <= tol.threshold, counts, "train_loss", "training loss <= L(w*) + eps",
                            tol.threshold),
        "accuracy": _grid_limit(rho, sw["test_acc"] >= dense["test_acc"] - settings.accuracy_tolerance, counts,
                                "test_accuracy", f"test accuracy >= dense - {settings.accuracy_tolerance:g}",
                                dense["test_acc"] - settings.accuracy_tolerance),
        "authors_strict": _grid_limit(rho, sw["test_acc"] > dense["test_acc"], counts, "authors_strict_accuracy",
                                      "test accuracy strictly above dense (the authors' code)", dense["test_acc"]),
    }
    sweep = {k: np.asarray(v).tolist() for k, v in sw.items()}
    timings["sweep"] = time.perf_counter() - t0

    slq_info = {"steps": res.steps, "n_probes": res.n_probes, "matvecs": res.matvecs, "hvp_path": res.hvp_path,
                "seconds": res.seconds, "breakdowns": int(np.asarray(res.breakdowns).sum()),
                "hessian_samples": hess_samples}
    return Analysis(n_prunable=n, n_active=n_active, dense=dense, eps=eps, spectrum=res.spectrum, slq=slq_info,
                    predicted=predicted, curves=curves, sweep=sweep, measured=measured, fundamental_measured=None,
                    seconds=timings, settings={**settings.to_dict(), "seed": seed,
                                               "kept_count_rule": "theory.limits.kept_count"})


def _analyze_dense(model: nn.Module, data: DataSplit, settings: AnalysisSettings, *, seed: int, extra_levels: Any,
                   dev: torch.device) -> Analysis:
    """:func:`analyze` of a dense network through :func:`nets.limit.estimate_pruning_limit`."""
    from nets.limit import (
        LimitConfig,
        MeasureConfig,
        OracleConfig,
        PredictionConfig,
        SpectrumConfig,
        ToleranceConfig,
        estimate_pruning_limit,
    )

    cfg = LimitConfig(
        tolerance=ToleranceConfig(batch_size=settings.eps_batch_size),
        spectrum=SpectrumConfig(steps=settings.slq_steps, n_probes=settings.slq_probes,
                                batch_size=settings.hessian_batch_size, samples=settings.hessian_samples),
        prediction=PredictionConfig(eta=settings.eta, negative=settings.negative),
        # the experiments read the quadratic-step (OBS) fundamental limit only: no masked re-optimisation search
        measurement=MeasureConfig(grid_step=max(settings.sweep_step, 1e-4), accuracy_tolerance=settings.accuracy_tolerance,
                                  reoptimise=False),
        oracle=OracleConfig(enabled=False))
    r = estimate_pruning_limit(model, data, config=cfg, seed=seed, device=dev)
    t = r.tolerance
    dense = {"train_loss": t.train.loss, "train_acc": t.train.accuracy, "test_loss": t.test.loss,
             "test_acc": t.test.accuracy}
    predicted = {m: _limit_record(lim, 1.0) for m, lim in r.fundamental_prediction.limits.items()}
    mp = r.magnitude_prediction
    predicted["magnitude"] = {**predicted["free"], "method": mp.method, "kept_fraction": mp.kept_fraction,
                              "kept_fraction_lower": mp.kept_fraction, "kept_fraction_upper": mp.kept_fraction,
                              "stderr": None, "kept_fraction_active": mp.kept_fraction, "band_kinematic": None,
                              "band_dimension": None, "band_slq": None}
    free_curves = r.fundamental_prediction.limits["free"].curves
    grid = np.asarray(free_curves.kept_fraction)
    if mp.taylor is not None:  # the Taylor model's values on its search levels, on the curves' grid
        s = mp.taylor.search
        ks = np.array([k for k, _, _ in s.evaluations]) / s.N
        vs = np.array([v for _, v, _ in s.evaluations])
        o = np.argsort(ks)
        mag_curve = np.interp(grid, ks[o], vs[o])
    else:
        mag_curve = 0.5 * np.asarray(free_curves.R) ** 2 * mp.haar.mean_eigenvalue
    curves = {"kept_fraction": grid.tolist(), "free": free_curves.loss_increase.tolist(),
              "flat": r.fundamental_prediction.limits["flat"].curves.loss_increase.tolist(),
              "magnitude": np.asarray(mag_curve).tolist()}
    mm = r.magnitude_measurement
    c = {k: np.asarray(v) for k, v in mm.curves.items() if k != "objective"}
    extra = [float(e) for e in extra_levels if not np.isclose(c["kept_fraction"], float(e)).any()]
    if extra:  # the comparison tables' sparsities, evaluated exactly
        from nets.data import fixed_batches as _fb

        work = remove_masks(copy_model(model)).to(dev)
        p = next(iter(work.parameters()))
        tb = [(x.to(dev, p.dtype), y.to(dev)) for x, y in _fb(data.train_eval, 1024)]
        eb = [(x.to(dev, p.dtype), y.to(dev)) for x, y in _fb(data.test, 1024)]
        more = _level_metrics(work, tb, eb, extra)
        for k in c:
            c[k] = np.concatenate([c[k], np.asarray(more[k], dtype=np.float64)])
        o = np.argsort(c["kept_fraction"], kind="stable")
        c = {k: v[o] for k, v in c.items()}
    measured = {}
    for key, name in (("loss", "train_loss"), ("accuracy", "test_accuracy"), ("authors_strict", "authors_strict_accuracy")):
        lim = mm.limits[name]
        measured[key] = {"criterion": lim.criterion, "description": lim.description, "threshold": lim.threshold,
                         "kept_fraction": lim.kept_fraction, "kept_count": lim.kept_count,
                         "kept_fraction_any": lim.kept_fraction_any, "removed_fraction": lim.removed_fraction,
                         "non_monotone_kept_fractions": list(lim.non_monotone_kept_fractions),
                         "n_levels": lim.evaluations}
    sweep = {k: v.tolist() for k, v in c.items()}
    sweep["kept_count"] = [int(x) for x in sweep["kept_count"]]
    res = r.spectrum
    slq_info = {"steps": res.steps, "n_probes": res.n_probes, "matvecs": res.matvecs, "hvp_path": res.hvp_path,
                "seconds": res.seconds, "breakdowns": int(np.asarray(res.breakdowns).sum()),
                "hessian_samples": r.model["hessian_samples"]}
    fm = r.fundamental_measurement
    return Analysis(n_prunable=r.model["n_prunable"], n_active=r.model["n_prunable"], dense=dense, eps=t.eps,
                    spectrum=res.spectrum, slq=slq_info, predicted=predicted, curves=curves, sweep=sweep,
                    measured=measured, fundamental_measured=None if fm is None else fm.kept_fraction,
                    seconds=dict(r.timings), settings={**settings.to_dict(), "seed": seed,
                                                       "kept_count_rule": "theory.limits.kept_count",
                                                       "pipeline": "nets.limit.estimate_pruning_limit"})
