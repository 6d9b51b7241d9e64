"""The limit analysis of one trained network, shared by the experiments: the adapter to the limit pipeline.

:func:`analyze` returns an :class:`Analysis`: the dense metrics, the tolerance ``ε``, the SLQ spectrum of the
prunable-weight Hessian, the predicted limits and the LOMP sweep with its measured limits, all as plain data
(JSON round trip by :meth:`Analysis.to_dict` / :meth:`Analysis.from_dict`, so that a finished analysis is a
resumable cell).

The two limits of the package (docs/math.md §2.1) are reported side by side:

* **fundamental** (compensated) limit: predicted by ``free`` (ours) and ``flat`` (the authors' formula) of
  :func:`theory.limits.pruning_limit`; its measurement needs compensated pruning (the lead's two-limits work,
  issue 9) and is ``None`` here until that lands;
* **magnitude-pruning** (LOMP, uncompensated) limit: predicted by the uncompensated Haar-model value
  ``min{ρ : ½ R(ρ)² Tr(H)/N ≤ ε}`` (:attr:`theory.limits.PruningLimit.uncompensated_bound`), measured by the
  LOMP sweep (:func:`nets.prune.magnitude_sweep`) under the theory's criterion (training loss ``≤ L(w*) + ε``),
  the accuracy criterion (test accuracy ``≥`` dense ``−`` tolerance) and the authors' criterion (test accuracy
  strictly above dense, least qualifying level).

This module is the one place that talks to the limit pipeline: when ``nets.limit.estimate_pruning_limit``
returns both limits (``LimitResult.fundamental`` / ``.magnitude``, each ``.predicted`` and ``.measured``),
:func:`analyze` maps that result onto :class:`Analysis` and no experiment changes.

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
from theory.limits import pruning_limit
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
        ``{"loss" | "accuracy" | "authors_strict": ActualLimit.to_dict()}`` (nets.limit.actual_limit).
    fundamental_measured:
        The measured compensated limit, ``None`` until compensated pruning is available (module docstring).
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


def hessian_operator(model: nn.Module, data: DataSplit, settings: AnalysisSettings, *,
                     generator: torch.Generator) -> HessianOperator:
    """The Hessian of the mean cross-entropy over the prunable weights of ``model`` (at its parameters now, on
    their device) over the analysis's Hessian data: the un-augmented training set, or the fixed random subset
    of ``settings.hessian_samples`` samples drawn from ``generator`` (:func:`nets.limit.hessian_batches`). The
    graphs are cached when they fit (exact products, ``cache_graph="auto"``)."""
    from nets.limit import hessian_batches

    p = next(iter(model.parameters()))
    hess = hessian_batches(data.train_eval, settings.hessian_batch_size, samples=settings.hessian_samples,
                           generator=generator, device=p.device, dtype=p.dtype)
    return HessianOperator(model, nn.CrossEntropyLoss(), hess, cache_graph="auto")


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

    ``seed`` seeds the SLQ probes and the Hessian subset; ``extra_levels`` adds kept fractions to the sweep grid
    (e.g. a comparison table's sparsities).
    """
    from nets.limit import actual_limit, dense_loss_std

    if not isinstance(settings, AnalysisSettings):
        raise TypeError(f"settings must be an AnalysisSettings, got {type(settings).__name__}")
    seed = check_int("seed", seed, minimum=0)
    first = next(iter(model.parameters()))
    dev = torch.device(device) if device is not None else first.device
    work = remove_masks(copy_model(model)).to(dev)
    work.eval()
    for p in work.parameters():
        p.requires_grad_(True)
    dtype = first.dtype
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    train_batches = [(x.to(dev, dtype), y.to(dev)) for x, y in fixed_batches(data.train_eval, 1024)]
    test_batches = [(x.to(dev, dtype), y.to(dev)) for x, y in fixed_batches(data.test, 1024)]
    train_loss, train_acc = evaluate(work, train_batches)
    test_loss, test_acc = evaluate(work, test_batches)
    dense = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
    eps = dense_loss_std(work, data.train_eval, settings.eps_batch_size).eps
    timings["eps"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    op: LinearOperator = hessian_operator(work, data, settings, generator=generator)
    hess_samples = op.n_samples
    n = op.shape[0]
    w = flatten([p.detach() for _, p in prunable_parameters(work)]).to("cpu", torch.float64)
    index = active_index(work, within)
    if index is not None:
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
    mag = lims["free"].uncompensated_bound
    predicted["magnitude"] = {**predicted["free"], "kept_fraction": mag * scale, "kept_fraction_lower": mag * scale,
                              "kept_fraction_upper": mag * scale, "stderr": None, "kept_fraction_active": mag,
                              "band_kinematic": None, "band_dimension": None, "band_slq": None}
    grid_local = np.asarray(lims["free"].curves.kept_fraction)
    R2 = np.asarray(lims["free"].curves.R) ** 2
    curves = {"kept_fraction": (grid_local * scale).tolist(), "free": lims["free"].curves.loss_increase.tolist(),
              "flat": lims["flat"].curves.loss_increase.tolist(),
              "magnitude": (0.5 * R2 * lims["free"].mean_eigenvalue).tolist()}
    timings["limit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    grid = sweep_grid(settings.sweep_step, extra_levels)
    grid = grid[grid <= scale + 1e-12] if index is not None else grid
    if index is not None and not np.isclose(grid[-1], scale):
        grid = np.append(grid, scale)

    def evaluate_fn(pruned: nn.Module) -> dict[str, float]:
        trl, tra = evaluate(pruned, train_batches)
        tel, tea = evaluate(pruned, test_batches)
        return {"train_loss": trl, "train_acc": tra, "test_loss": tel, "test_acc": tea}

    sw = magnitude_sweep(work, grid.tolist(), evaluate_fn)
    rho = sw.kept_fractions
    loss = np.nan_to_num(sw.metrics["train_loss"], nan=np.inf)
    measured = {
        "loss": actual_limit(rho, loss <= train_loss + eps, criterion="train_loss",
                             description="training loss <= L(w*) + eps", threshold=train_loss + eps,
                             kept_counts=sw.kept_counts).to_dict(),
        "accuracy": actual_limit(rho, sw.metrics["test_acc"] >= test_acc - settings.accuracy_tolerance,
                                 criterion="test_accuracy",
                                 description=f"test accuracy >= dense - {settings.accuracy_tolerance:g}",
                                 threshold=test_acc - settings.accuracy_tolerance,
                                 kept_counts=sw.kept_counts).to_dict(),
        "authors_strict": actual_limit(rho, sw.metrics["test_acc"] > test_acc, criterion="authors_strict_accuracy",
                                       description="test accuracy strictly above dense (the authors' code)",
                                       threshold=test_acc, kept_counts=sw.kept_counts).to_dict(),
    }
    sweep = {"kept_fraction": rho.tolist(), "kept_count": sw.kept_counts.tolist(),
             **{k: v.tolist() for k, v in sw.metrics.items()}}
    timings["sweep"] = time.perf_counter() - t0

    slq_info = {"steps": res.steps, "n_probes": res.n_probes, "matvecs": res.matvecs, "hvp_path": res.hvp_path,
                "seconds": res.seconds, "breakdowns": int(np.asarray(res.breakdowns).sum()),
                "hessian_samples": hess_samples}
    return Analysis(n_prunable=n, n_active=n_active, dense=dense, eps=eps, spectrum=res.spectrum, slq=slq_info,
                    predicted=predicted, curves=curves, sweep=sweep, measured=measured, fundamental_measured=None,
                    seconds=timings, settings={**settings.to_dict(), "seed": seed,
                                               "kept_count_rule": "theory.limits.kept_count"})

