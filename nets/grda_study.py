r"""gRDA studies that answer the directional-pruning paper's NeurIPS 2020 reviews (issue 13; all ours).

Each study is one function returning a frozen result with ``to_dict()`` and ``summary()``; ``prunelimit grda``
(:mod:`nets.cli.grda`) calls them and renders the results, ``bench/grda_*.py`` prints their tables.

* :func:`compare` — gRDA and SGD from the same initialisation and data order (the directional-pruning paper's
  protocol), ``c`` given or calibrated to a target sparsity (:func:`nets.grda.calibrate_training`), with the
  directional diagnostics and their controls (:func:`nets.directional.directional_diagnostics`) — which include
  the loss increases of gRDA, the constrained directional solution, compensated and plain magnitude pruning at
  the same sparsity (requirement 5 on a network).
* :func:`calibration_study` — calibration error over tasks, schedules and targets, with a rerun at the
  calibrated ``c`` under another data order.
* :func:`pretrained_study` — gRDA started at a trained model against LOMP, LOMP + fine-tuning and compensated
  pruning (:func:`nets.compensate.compensate`) at the sparsity gRDA reached.
* :func:`stopping_study` — the :class:`nets.grda.StoppingRule` against the full schedule over seeds.
* :func:`mask_study` — Jaccard overlap of gRDA masks across data orders, initialisations and schedules, and
  against the LOMP mask of the SGD run at the same sparsity.
* :func:`frontier_study` — sparsity–accuracy points of gRDA/gRDAM with constant, step and cosine schedules,
  momentum and weight decay on MLPs of several widths, beside LOMP.
* :func:`valley_study` — quadratic valleys, where everything is exact: gRDA against the constrained form over
  cuts ``τ`` and against OBS and magnitude pruning, and support agreement under gradient noise.

Training runs use :func:`nets.train.train` (so every run is the package's one recipe); each study's cost is
reported in training runs and seconds. Under an initialised ``torch.distributed`` process group (``torchrun``)
every training run, the calibration's included, is data-parallel (DDP over shards of each global batch: each
gRDA step sees the averaged gradient of the whole batch, the single-process update up to the order of
floating-point summation); everything else is computed by every process on the full data, identically.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.grda import (
    CalibrationConfig,
    StoppingRule,
    calibrate_training,
    grda_update,
    step_learning_rates,
    threshold_closed_form,
)
from theory.validation import check_fraction, check_int, check_real, check_torch_generator

__all__ = [
    "Setup",
    "grda_config",
    "sparsity_report",
    "ComparisonResult",
    "compare",
    "CalibrationStudy",
    "calibration_study",
    "PretrainedStudy",
    "pretrained_study",
    "StoppingStudy",
    "stopping_study",
    "MaskStudy",
    "mask_study",
    "FrontierStudy",
    "frontier_study",
    "run_grda_valley",
    "ValleyStudy",
    "valley_study",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _say(progress: Progress | None, msg: str) -> None:
    log.info(msg)
    if progress is not None:
        progress(msg)


# ---------------------------------------------------------------------------------------------------------
# What is trained
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """A dataset and a model: ``data`` (a :data:`nets.data.DATASET_NAMES` name; ``data_root`` for the image
    sets), ``model`` (:func:`nets.models.build_model`; ``hidden`` for the ``mlp``), ``seed`` (the dataset's
    split/task and the initialisation)."""

    data: str = "digits"
    model: str = "mlp"
    hidden: tuple[int, ...] | None = (32,)
    data_root: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("seed", self.seed, minimum=0)
        if self.hidden is not None:
            object.__setattr__(self, "hidden", tuple(check_int("hidden[i]", h, minimum=1) for h in self.hidden))
            if self.model.lower() != "mlp":
                raise ValueError(f"hidden applies to model='mlp' only, got model={self.model!r}")

    def load_data(self) -> Any:
        from nets.data import load_dataset

        options = {"as_image": True} if self.data.lower() == "digits" and self.model.lower() == "cnn" else {}
        return load_dataset(self.data, self.data_root, seed=self.seed, **options)

    def build(self, data: Any, init_seed: int | None = None) -> nn.Module:
        from nets.models import build_model

        kwargs = {"hidden": self.hidden} if self.hidden is not None and self.model.lower() == "mlp" else {}
        g = torch.Generator().manual_seed(self.seed if init_seed is None else init_seed)
        return build_model(self.model, data.num_classes, data.input_shape, generator=g, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "model": self.model, "hidden": None if self.hidden is None else list(self.hidden),
                "data_root": self.data_root, "seed": self.seed}


def grda_config(**overrides: Any) -> Any:
    """The studies' default gRDA run on the small built-in tasks (ours): 60 epochs, batch 32, constant lr 0.1
    (the authors' CIFAR/ImageNet rate), no momentum or weight decay (the authors' protocol), ``μ = 0.55`` (their
    WRN value), ``c = 0.03`` (about half the digits MLP's weights pruned). ``overrides`` replace fields."""
    from nets.train import TrainConfig

    base = dict(optimizer="grda", epochs=60, batch_size=32, lr=0.1, momentum=0.0, weight_decay=0.0, grda_c=0.03,
                grda_mu=0.55)
    base.update(overrides)
    return TrainConfig(**base)


def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """Exact zeros of a model: over all trainable parameters (the authors' count), over the prunable weights
    (the package's ``removed_fraction``), and per tensor."""
    from nets.params import prunable_parameters

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    per = {n: float((p == 0).double().mean()) for n, p in named}
    tot = sum(p.numel() for _, p in named)
    zeros = sum(int((p == 0).sum()) for _, p in named)
    pw = prunable_parameters(model)
    ptot = sum(p.numel() for _, p in pw)
    pzeros = sum(int((p == 0).sum()) for _, p in pw)
    return {"all_parameters": zeros / tot, "prunable_weights": pzeros / ptot if ptot else 0.0,
            "kept_fraction": 1.0 - (pzeros / ptot if ptot else 0.0), "per_tensor": per, "n_parameters": tot,
            "n_prunable": ptot}


def _train(model: nn.Module, data: Any, config: Any, progress: Callable[[dict], None] | None = None
           ) -> tuple[list[dict[str, float]], float]:
    """Train in place; history with ``sparsity_all`` (every trainable parameter) added; seconds."""
    from nets.train import train

    extra: list[float] = []

    def record(rec: dict) -> None:
        extra.append(sparsity_report(model)["all_parameters"])
        if progress is not None:
            progress(rec)

    t0 = time.perf_counter()
    res = train(model, data, config, progress=record, distributed=_distributed())
    return [dict(r, sparsity_all=s) for r, s in zip(res.history, extra)], time.perf_counter() - t0


def _distributed() -> bool:
    """Whether a ``torch.distributed`` default process group is initialised (``torchrun``): every training run
    of the studies is then data-parallel over it (:func:`nets.train.train` with ``distributed=True``), the
    convention of the Hessian products and the limit pipeline (:mod:`nets.limit.parallel`)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _eval(model: nn.Module, data: Any) -> dict[str, float]:
    from nets.data import fixed_batches
    from nets.train import evaluate

    tl, ta = evaluate(model, fixed_batches(data.train_eval, 4096))
    el, ea = evaluate(model, fixed_batches(data.test, 4096))
    return {"train_loss": tl, "train_acc": ta, "test_loss": el, "test_acc": ea}


def _masked_copy(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    out = copy.deepcopy(model)
    named = dict(out.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            named[n].mul_(m.to(named[n].device, named[n].dtype))
    return out


# ---------------------------------------------------------------------------------------------------------
# 1. gRDA vs SGD from the same initialisation, with the diagnostics and their controls
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonResult:
    """:func:`compare`'s result: the setup, both runs (histories, final metrics, configs), gRDA's sparsity
    report, the calibration (if a target was given), the stopping rule's verdict on the gRDA history (if a rule
    was given) and the diagnostics (if computed)."""

    setup: Setup
    sgd: dict[str, Any]
    grda: dict[str, Any]
    sparsity: dict[str, Any]
    calibration: Any
    stopping: dict[str, Any] | None
    diagnostics: Any
    training_time: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"setup": self.setup.to_dict(), "sgd": self.sgd, "grda": self.grda, "sparsity": self.sparsity,
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "stopping": self.stopping,
                "diagnostics": None if self.diagnostics is None else self.diagnostics.to_dict(),
                "training_time": self.training_time, "seconds": self.seconds}

    def summary(self) -> str:
        g, s = self.grda, self.sgd
        lines = [f"{self.setup.data} / {self.setup.model} ({self.sparsity['n_parameters']} parameters), "
                 f"{g['config']['epochs']} epochs, lr {g['config']['lr']} ({g['config']['schedule']}), "
                 f"gRDA c={g['config']['grda_c']:.6g} mu={g['config']['grda_mu']}",
                 f"  test accuracy   SGD {s['final']['test_acc']:.4f}   gRDA {g['final']['test_acc']:.4f}",
                 f"  gRDA sparsity   prunable weights {self.sparsity['prunable_weights']:.4f}   all parameters "
                 f"{self.sparsity['all_parameters']:.4f}"]
        if self.calibration is not None:
            lines.append("  calibration     " + self.calibration.summary())
        if self.stopping is not None:
            st = self.stopping
            lines.append(f"  stopping rule   {'stops at epoch ' + str(st['stopped_epoch']) if st['stopped_epoch'] else 'never fires'}"
                         + (f" (test acc {st['test_acc_at_stop']:.4f}, {st['epochs_saved']} epochs saved)"
                            if st["stopped_epoch"] else ""))
        if self.diagnostics is not None:
            lines.append(self.diagnostics.summary())
        return "\n".join(lines)


def compare(
    setup: Setup,
    config: Any,
    *,
    target_sparsity: float | None = None,
    calibration: CalibrationConfig = CalibrationConfig(),
    diagnostics: Any = None,
    stopping: StoppingRule | None = None,
    generator: torch.Generator,
    progress: Progress | None = None,
    epoch_progress: Callable[[str], Callable[[dict], None] | None] | None = None,
) -> ComparisonResult:
    """Train gRDA (``config``, ``optimizer="grda"``) and its SGD partner (the same config with ``c = 0``: plain SGD
    with the same momentum, weight decay, schedule, initialisation and data order) and compare them.

    ``target_sparsity``: calibrate ``c`` first (the calibrated run is retrained here from the same start, which
    reproduces it exactly). ``diagnostics``: a :class:`nets.directional.DiagnosticsConfig` (``None``: skip).
    ``stopping``: also report where the :class:`nets.grda.StoppingRule` would have stopped the gRDA run.
    """
    from nets.directional import DiagnosticsConfig, directional_diagnostics

    t_start = time.perf_counter()
    check_torch_generator("generator", generator)
    if config.optimizer != "grda":
        raise ValueError(f"config.optimizer must be 'grda', got optimizer={config.optimizer!r}")
    data = setup.load_data()
    init = setup.build(data)
    cal = None
    if target_sparsity is not None:
        _say(progress, f"calibrating c for sparsity {target_sparsity}")
        cal = calibrate_training(init, data, config, target_sparsity, calibration=calibration,
                                 progress=lambda r: _say(progress, f"  run c={r.c:.6g}: sparsity {r.sparsity:.4f}"))
        config = replace(config, grda_c=cal.c)
    runs = {}
    for name, cfg in (("sgd", replace(config, grda_c=0.0)), ("grda", config)):
        _say(progress, f"training {name}")
        model = copy.deepcopy(init)
        hist, secs = _train(model, data, cfg, None if epoch_progress is None else epoch_progress(name))
        runs[name] = {"model": model, "history": hist, "seconds": secs, "config": cfg.to_dict(),
                      "final": hist[-1]}
    t = float(step_learning_rates(config, len(data.train)).sum())
    stop = None
    if stopping is not None:
        e = stopping.first_stop(runs["grda"]["history"])
        rec = runs["grda"]["history"][e - 1] if e else None
        stop = {"stopped_epoch": e, "epochs_saved": config.epochs - e if e else 0,
                "test_acc_at_stop": rec["test_acc"] if rec else None, "sparsity_at_stop": rec["sparsity"] if rec else None,
                "rule": stopping.to_dict()}
    diag = None
    if diagnostics is not None:
        if not isinstance(diagnostics, DiagnosticsConfig):
            raise TypeError(f"diagnostics must be a DiagnosticsConfig or None, got {type(diagnostics).__name__}")
        _say(progress, "directional diagnostics")
        diag = directional_diagnostics(runs["sgd"]["model"], runs["grda"]["model"], data, training_time=t,
                                       config=diagnostics, generator=generator,
                                       progress=lambda s: _say(progress, f"  {s}"))
    out = {k: {kk: vv for kk, vv in v.items() if kk != "model"} for k, v in runs.items()}
    return ComparisonResult(setup, out["sgd"], out["grda"], sparsity_report(runs["grda"]["model"]), cal, stop, diag,
                            t, time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------------------------
# 2. Calibration error table
# ---------------------------------------------------------------------------------------------------------
#: The schedules of the calibration and mask studies, as TrainConfig overrides (``{E}`` = epochs).
SCHEDULES: dict[str, Callable[[int], dict[str, Any]]] = {
    "constant": lambda E: {"schedule": "constant"},
    "step": lambda E: {"schedule": "multistep", "milestones": (max(1, (2 * E) // 3),), "gamma": 0.1},
    "cosine": lambda E: {"schedule": "cosine"},
}


@dataclass(frozen=True)
class CalibrationStudy:
    """Rows of :func:`calibration_study`: per (data, schedule, target) the predictor's ``c`` and the sparsity it
    reached, the calibrated ``c``, its sparsity and error, the training runs used, and a rerun at the calibrated
    ``c`` with another data order (its sparsity and error)."""

    rows: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": self.seconds,
                "max_abs_error": max(abs(r["error"]) for r in self.rows),
                "max_abs_rerun_error": max(abs(r["rerun_error"]) for r in self.rows if r["rerun_error"] is not None)
                if any(r["rerun_error"] is not None for r in self.rows) else None}

    def summary(self) -> str:
        head = (f"{'data':15s} {'schedule':8s} {'target':>6s} {'pred. c':>9s} {'pred. s':>7s} {'c':>9s} {'s':>7s} "
                f"{'error':>7s} {'runs':>4s} {'rerun s':>7s} {'rerun err':>9s} {'test acc':>8s}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rr = "" if r["rerun_sparsity"] is None else f"{r['rerun_sparsity']:7.4f} {r['rerun_error']:+9.4f}"
            lines.append(f"{r['data']:15s} {r['schedule']:8s} {r['target']:6.2f} {r['predicted_c']:9.4g} "
                         f"{r['predictor_sparsity']:7.4f} {r['c']:9.4g} {r['sparsity']:7.4f} {r['error']:+7.4f} "
                         f"{r['training_runs']:4d} {rr} {r['test_acc']:8.4f}")
        return "\n".join(lines)


def calibration_study(
    setups: Sequence[Setup],
    schedules: Sequence[str],
    targets: Sequence[float],
    *,
    config: Any = None,
    calibration: CalibrationConfig = CalibrationConfig(),
    rerun: bool = True,
    progress: Progress | None = None,
) -> CalibrationStudy:
    """:func:`nets.grda.calibrate_training` for every setup × schedule (:data:`SCHEDULES`) × target; with
    ``rerun`` the calibrated ``c`` is rerun with the data-order seed ``config.seed + 1`` (same initialisation),
    which measures how well a *new* run at that ``c`` meets the target."""
    from nets.grda import training_pilot

    t0 = time.perf_counter()
    base = config if config is not None else grda_config()
    rows = []
    for setup in setups:
        data = setup.load_data()
        init = setup.build(data)
        for sched in schedules:
            if sched not in SCHEDULES:
                raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got schedule={sched!r}")
            cfg = replace(base, **SCHEDULES[sched](base.epochs))
            for s in targets:
                _say(progress, f"{setup.data} {sched} target {s}")
                cal = calibrate_training(init, data, cfg, float(s), calibration=calibration)
                row = {"data": setup.data, "model": setup.model, "hidden": setup.hidden, "schedule": sched,
                       "target": float(s), "predicted_c": cal.predicted_c, "predictor_sparsity": cal.runs[0].sparsity,
                       "predictor_error": cal.predictor_error, "c": cal.c, "sparsity": cal.sparsity,
                       "error": cal.error, "training_runs": 1 + len(cal.runs), "converged": cal.converged,
                       "test_acc": next(r.record.get("test_acc") for r in cal.runs if r.c == cal.c),
                       "rerun_sparsity": None, "rerun_error": None, "runs": [r.to_dict() for r in cal.runs]}
                if rerun:
                    r2 = training_pilot(init, data, replace(cfg, seed=cfg.seed + 1))(cal.c)
                    row.update(rerun_sparsity=r2.sparsity, rerun_error=r2.sparsity - float(s),
                               rerun_test_acc=r2.record.get("test_acc"))
                rows.append(row)
    return CalibrationStudy(rows, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# 3. From a pretrained model
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedStudy:
    """:func:`pretrained_study`'s rows (one per target): gRDA from the pretrained weights and, at the sparsity it
    reached, LOMP (one-shot global magnitude), LOMP + fine-tuning (SGD, masked, the same epochs and schedule as
    gRDA), compensated pruning (the quadratic step) and compensated pruning with masked re-optimisation."""

    pretrained: dict[str, Any]
    rows: list[dict[str, Any]]
    configs: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"pretrained": self.pretrained, "rows": self.rows, "configs": self.configs, "seconds": self.seconds}

    def summary(self) -> str:
        methods = ("grda", "lomp", "lomp_finetune", "compensated", "compensated_reopt")
        head = f"{'target':>6s} {'kept':>7s} " + " ".join(f"{m:>17s}" for m in methods)
        lines = [f"pretrained: test acc {self.pretrained['test_acc']:.4f}, train loss {self.pretrained['train_loss']:.4f}",
                 "test accuracy (train loss) at gRDA's sparsity:", head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['target']:6.2f} {r['kept_fraction']:7.4f} " + " ".join(
                f"{r[m]['test_acc']:8.4f} ({r[m]['train_loss']:6.4f})" for m in methods))
        return "\n".join(lines)


def pretrained_study(
    setup: Setup,
    targets: Sequence[float],
    *,
    pretrain: Any = None,
    finetune: Any = None,
    calibration: CalibrationConfig = CalibrationConfig(),
    reopt_steps: int = 100,
    progress: Progress | None = None,
) -> PretrainedStudy:
    """gRDA started at a trained ``w₀`` (its dual sums start at the pretrained weights) vs pruning that model.

    ``pretrain`` (default: :func:`grda_config` with ``c = 0``, i.e. SGD, 60 epochs) trains the model;
    ``finetune`` is the gRDA run, with ``c`` calibrated per target from the pretrained start. Its default (ours):
    the *training* rate ``lr = 0.1`` with cosine decay over 40 epochs. Why not a small fine-tuning rate: the
    soft threshold shrinks every kept weight by ``T``, and from ``w₀ = w_pre`` the dual sums of the kept weights
    must be pushed out by about ``T`` (the quantile of ``|w_pre|`` at the target) by accumulated gradients
    ``γ Σ g``, which a tenth of the rate cannot do in the same epochs (measured on digits at 90 % sparsity:
    ``lr = 0.01``, 20 epochs → test accuracy 0.838, training loss 1.41; ``lr = 0.1`` → 0.96, 0.15); the cosine
    decay stops the threshold's growth at the end so that the surviving weights settle, as fine-tuning would.
    At
    the kept fraction gRDA reached: LOMP of the pretrained model, LOMP + fine-tuning under ``finetune`` with
    ``c = 0`` and the mask fixed, compensated pruning (:func:`nets.compensate.compensate`, quadratic step), and
    with ``reopt_steps`` L-BFGS evaluations of masked re-optimisation.
    """
    from nets.compensate import CompensationConfig, compensate
    from nets.data import fixed_batches
    from nets.prune import fine_tune, global_magnitude_masks

    t0 = time.perf_counter()
    pre_cfg = pretrain if pretrain is not None else grda_config(grda_c=0.0)
    ft_cfg = finetune if finetune is not None else grda_config(lr=0.1, epochs=40, schedule="cosine")
    data = setup.load_data()
    model = setup.build(data)
    _say(progress, "pretraining")
    _train(model, data, pre_cfg)
    pre = _eval(model, data)
    batches = fixed_batches(data.train_eval, 4096)
    rows = []
    for s in targets:
        _say(progress, f"target {s}: calibrating gRDA from the pretrained model")
        cal = calibrate_training(model, data, ft_cfg, float(s), calibration=calibration)
        g = copy.deepcopy(model)
        _train(g, data, replace(ft_cfg, grda_c=cal.c))
        rep = sparsity_report(g)
        kept = rep["kept_fraction"]
        masks = global_magnitude_masks(model, kept)
        row: dict[str, Any] = {"target": float(s), "c": cal.c, "kept_fraction": kept, "sparsity": 1.0 - kept,
                               "calibration_runs": 1 + len(cal.runs), "grda": _eval(g, data)}
        row["lomp"] = _eval(_masked_copy(model, masks), data)
        _say(progress, f"target {s}: LOMP + fine-tuning, compensation")
        ft = copy.deepcopy(model)
        fine_tune(ft, {k: v.clone() for k, v in masks.items()}, data, replace(ft_cfg, grda_c=0.0))
        row["lomp_finetune"] = _eval(ft, data)
        comp = compensate(model, masks, batches)
        row["compensated"] = dict(_eval(comp.model, data), compensation=comp.to_dict())
        comp2 = compensate(model, masks, batches, config=CompensationConfig(steps=reopt_steps))
        row["compensated_reopt"] = dict(_eval(comp2.model, data), compensation=comp2.to_dict())
        rows.append(row)
    return PretrainedStudy(pre, rows, {"pretrain": pre_cfg.to_dict(), "finetune": ft_cfg.to_dict(),
                                       "reopt_steps": reopt_steps}, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# 4. The stopping rule against the full schedule
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoppingStudy:
    """Per seed: the epoch the rule stops at, test accuracy there and at the end of the full schedule, epochs
    saved; and the mean accuracy loss with its standard error over seeds."""

    rows: list[dict[str, Any]]
    rule: StoppingRule
    config: dict[str, Any]
    seconds: float

    @property
    def accuracy_loss(self) -> tuple[float, float]:
        d = np.array([r["accuracy_loss"] for r in self.rows])
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        m, se = self.accuracy_loss
        return {"rows": self.rows, "rule": self.rule.to_dict(), "config": self.config, "seconds": self.seconds,
                "mean_accuracy_loss": m, "stderr_accuracy_loss": se,
                "mean_epochs_saved": float(np.mean([r["epochs_saved"] for r in self.rows])),
                "mean_sparsity_lost": float(np.mean([r["sparsity_full"] - r["sparsity_stop"] for r in self.rows])),
                "max_accuracy_loss": float(max(r["accuracy_loss"] for r in self.rows))}

    def summary(self) -> str:
        head = f"{'seed':>4s} {'stop':>5s} {'saved':>5s} {'acc stop':>8s} {'acc full':>8s} {'loss':>7s} {'s stop':>7s} {'s full':>7s}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['seed']:4d} {str(r['stopped_epoch']):>5s} {r['epochs_saved']:5d} {r['test_acc_stop']:8.4f} "
                         f"{r['test_acc_full']:8.4f} {r['accuracy_loss']:+7.4f} {r['sparsity_stop']:7.4f} "
                         f"{r['sparsity_full']:7.4f}")
        d = self.to_dict()
        lines.append(f"mean accuracy loss {d['mean_accuracy_loss']:+.4f} ± {d['stderr_accuracy_loss']:.4f} (SE), max "
                     f"{d['max_accuracy_loss']:+.4f}; mean epochs saved {d['mean_epochs_saved']:.1f} of "
                     f"{self.config['epochs']}; mean sparsity given up {d['mean_sparsity_lost']:.4f}")
        return "\n".join(lines)


def stopping_study(
    setup: Setup, seeds: Sequence[int], *, config: Any = None, rule: StoppingRule = StoppingRule(),
    progress: Progress | None = None,
) -> StoppingStudy:
    """Train the full schedule for each seed (initialisation and data order from the seed) and apply ``rule``
    to its history: training is deterministic, so the run stopped at epoch ``e`` *is* the full run's first
    ``e`` epochs (tested against :func:`nets.grda.train_with_stopping`). Accuracy loss = full − stopped."""
    t0 = time.perf_counter()
    cfg = config if config is not None else grda_config()
    data = setup.load_data()
    rows = []
    for seed in seeds:
        seed = check_int("seed", seed, minimum=0)
        _say(progress, f"seed {seed}")
        model = setup.build(data, init_seed=seed)
        hist, secs = _train(model, data, replace(cfg, seed=seed))
        e = rule.first_stop(hist)
        stop = hist[(e or len(hist)) - 1]
        rows.append({"seed": seed, "stopped_epoch": e, "epochs_saved": len(hist) - (e or len(hist)),
                     "test_acc_stop": stop["test_acc"], "test_acc_full": hist[-1]["test_acc"],
                     "accuracy_loss": hist[-1]["test_acc"] - stop["test_acc"],
                     "sparsity_stop": stop["sparsity"], "sparsity_full": hist[-1]["sparsity"],
                     "train_loss_stop": stop["train_loss"], "train_loss_full": hist[-1]["train_loss"],
                     "seconds": secs})
    return StoppingStudy(rows, rule, cfg.to_dict(), time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# 5. Mask stability
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskStudy:
    """Jaccard overlaps (global, per layer, and chance) between gRDA masks: ``data_order`` (same init, different
    data-order seeds), ``init`` (different initialisation and data order), ``schedule`` (same init and order,
    ``c`` calibrated per schedule to the same target), ``vs_lomp`` (each gRDA mask against the LOMP mask of the
    SGD run with the same init, order and schedule at the same kept fraction) and ``lomp_data_order`` (LOMP
    masks of SGD runs across data orders: the magnitude mask's own stability)."""

    groups: dict[str, list[dict[str, Any]]]
    runs: list[dict[str, Any]]
    target: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "runs": self.runs, "target": self.target, "seconds": self.seconds}

    def summary(self) -> str:
        lines = [f"{'comparison':18s} {'pair':32s} {'kept a':>7s} {'kept b':>7s} {'Jaccard':>8s} {'chance':>7s}  per layer"]
        lines.append("-" * len(lines[0]))
        for g, pairs in self.groups.items():
            for p in pairs:
                per = " ".join(f"{v:.3f}" for v in p["per_layer"].values())
                lines.append(f"{g:18s} {p['a'] + ' / ' + p['b']:32s} {p['kept_fraction_a']:7.4f} "
                             f"{p['kept_fraction_b']:7.4f} {p['jaccard']:8.4f} {p['chance']:7.4f}  {per}")
        return "\n".join(lines)


def mask_study(
    setup: Setup, target: float, *, seeds: Sequence[int] = (0, 1, 2), schedules: Sequence[str] = ("constant", "cosine"),
    config: Any = None, calibration: CalibrationConfig = CalibrationConfig(), progress: Progress | None = None,
) -> MaskStudy:
    """Mask stability of gRDA (module docstring). ``c`` is calibrated to ``target`` once per schedule (data-order
    seed ``seeds[0]``) and reused for the other seeds, whose sparsity therefore differs slightly (reported)."""
    from nets.directional import mask_overlap, masks_of
    from nets.prune import global_magnitude_masks

    t0 = time.perf_counter()
    target = check_fraction("target", target)
    base = config if config is not None else grda_config()
    data = setup.load_data()
    masks: dict[str, Any] = {}
    lomp: dict[str, Any] = {}
    runs = []

    def run(label: str, cfg: Any, init_seed: int) -> None:
        init = setup.build(data, init_seed=init_seed)
        g = copy.deepcopy(init)
        _train(g, data, cfg)
        sgd = copy.deepcopy(init)
        _train(sgd, data, replace(cfg, grda_c=0.0))
        masks[label] = masks_of(g)
        rep = sparsity_report(g)
        lomp[label] = global_magnitude_masks(sgd, rep["kept_fraction"])
        runs.append({"label": label, "c": cfg.grda_c, "schedule": cfg.schedule, "seed": cfg.seed,
                     "init_seed": init_seed, "kept_fraction": rep["kept_fraction"], **_eval(g, data)})

    cs = {}
    for sched in schedules:
        cfg = replace(base, seed=seeds[0], **SCHEDULES[sched](base.epochs))
        _say(progress, f"calibrating {sched}")
        cs[sched] = calibrate_training(setup.build(data), data, cfg, target, calibration=calibration).c
        for seed in seeds:
            _say(progress, f"{sched}: data order {seed}")
            run(f"{sched}/order{seed}", replace(cfg, grda_c=cs[sched], seed=seed), setup.seed)
    first = schedules[0]
    cfg0 = replace(base, grda_c=cs[first], **SCHEDULES[first](base.epochs))
    for seed in seeds[1:]:
        _say(progress, f"{first}: initialisation {seed}")
        run(f"{first}/init{seed}", replace(cfg0, seed=seed), seed)

    def pair(a: str, b: str, src: dict) -> dict[str, Any]:
        return {"a": a, "b": b, **mask_overlap(src[a], src[b]).to_dict()}

    groups: dict[str, list[dict[str, Any]]] = {"data_order": [], "init": [], "schedule": [], "vs_lomp": [],
                                               "lomp_data_order": []}
    for sched in schedules:
        labels = [f"{sched}/order{s}" for s in seeds]
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                groups["data_order"].append(pair(labels[i], labels[j], masks))
                groups["lomp_data_order"].append(pair(labels[i], labels[j], lomp))
    init_labels = [f"{first}/order{seeds[0]}"] + [f"{first}/init{s}" for s in seeds[1:]]
    for i in range(len(init_labels)):
        for j in range(i + 1, len(init_labels)):
            groups["init"].append(pair(init_labels[i], init_labels[j], masks))
    for i in range(len(schedules)):
        for j in range(i + 1, len(schedules)):
            groups["schedule"].append(pair(f"{schedules[i]}/order{seeds[0]}", f"{schedules[j]}/order{seeds[0]}", masks))
    for label in masks:
        groups["vs_lomp"].append({"a": label, "b": "LOMP(SGD)", **mask_overlap(masks[label], lomp[label]).to_dict()})
    return MaskStudy(groups, runs, target, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# 6. Standard schedules and small models: the sparsity-accuracy frontier
# ---------------------------------------------------------------------------------------------------------
#: Optimiser variants of the frontier, as TrainConfig overrides (``{E}`` = epochs): the authors' gRDA
#: (constant rate, no momentum/weight decay), gRDA with a step or cosine schedule, and gRDAM (our calibrated
#: EMA momentum, 0.9) with cosine and with cosine + weight decay 5e-4.
VARIANTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "grda-constant": lambda E: {"schedule": "constant"},
    "grda-step": lambda E: SCHEDULES["step"](E),
    "grda-cosine": lambda E: {"schedule": "cosine"},
    "grdam-cosine": lambda E: {"schedule": "cosine", "momentum": 0.9},
    "grdam-cosine-wd": lambda E: {"schedule": "cosine", "momentum": 0.9, "weight_decay": 5e-4},
}


@dataclass(frozen=True)
class FrontierStudy:
    """Points ``(width, method, target, sparsity, test accuracy)``: gRDA variants (calibrated per target), and at
    the same sparsities LOMP of the variant's own SGD run (``c = 0``) and LOMP of the package's ℓ1-trained
    model (:data:`nets.train.DIGITS_TRAIN_DEFAULTS`)."""

    points: list[dict[str, Any]]
    dense: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points, "dense": self.dense, "seconds": self.seconds}

    def summary(self) -> str:
        head = (f"{'width':>5s} {'variant':16s} {'target':>6s} {'sparsity':>8s} {'gRDA acc':>8s} "
                f"{'LOMP(same) acc':>14s} {'LOMP(l1) acc':>12s}")
        lines = [head, "-" * len(head)]
        for p in self.points:
            lines.append(f"{p['width']:5d} {p['variant']:16s} {p['target']:6.2f} {p['sparsity']:8.4f} "
                         f"{p['grda_test_acc']:8.4f} {p['lomp_same_test_acc']:14.4f} {p['lomp_l1_test_acc']:12.4f}")
        for d in self.dense:
            lines.append(f"dense width {d['width']:3d}: {d['variant']:16s} SGD test acc {d['test_acc']:.4f}")
        return "\n".join(lines)


def frontier_study(
    setup: Setup, widths: Sequence[int], variants: Sequence[str], targets: Sequence[float], *, config: Any = None,
    calibration: CalibrationConfig = CalibrationConfig(tolerance=0.02, max_runs=5), progress: Progress | None = None,
) -> FrontierStudy:
    """The sparsity–accuracy frontier of gRDA variants (:data:`VARIANTS`) on MLPs of the given hidden widths,
    beside LOMP at the sparsity each gRDA point reached (module docstring)."""
    from nets.train import DIGITS_TRAIN_DEFAULTS
    from nets.prune import global_magnitude_masks

    t0 = time.perf_counter()
    base = config if config is not None else grda_config()
    data = setup.load_data()
    points, dense = [], []
    for width in widths:
        s_w = replace(setup, model="mlp", hidden=(check_int("width", width, minimum=1),))
        init = s_w.build(data)
        l1_model = copy.deepcopy(init)
        _train(l1_model, data, replace(base, optimizer="sgd", momentum=0.9, grda_c=0.0, schedule="constant",
                                       **DIGITS_TRAIN_DEFAULTS))
        for v in variants:
            if v not in VARIANTS:
                raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got variant={v!r}")
            cfg = replace(base, **VARIANTS[v](base.epochs))
            sgd = copy.deepcopy(init)
            _train(sgd, data, replace(cfg, grda_c=0.0))
            dense.append({"width": width, "variant": v, **_eval(sgd, data)})
            for s in targets:
                _say(progress, f"width {width} {v} target {s}")
                cal = calibrate_training(init, data, cfg, float(s), calibration=calibration)
                g = copy.deepcopy(init)
                _train(g, data, replace(cfg, grda_c=cal.c))
                kept = sparsity_report(g)["kept_fraction"]
                ev = _eval(g, data)
                points.append({
                    "width": width, "variant": v, "target": float(s), "c": cal.c, "sparsity": 1.0 - kept,
                    "grda_test_acc": ev["test_acc"], "grda_train_loss": ev["train_loss"],
                    "lomp_same_test_acc": _eval(_masked_copy(sgd, global_magnitude_masks(sgd, kept)), data)["test_acc"],
                    "lomp_l1_test_acc": _eval(_masked_copy(l1_model, global_magnitude_masks(l1_model, kept)),
                                              data)["test_acc"],
                    "calibration_runs": 1 + len(cal.runs)})
    return FrontierStudy(points, dense, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# 7. Quadratic valleys: gRDA, the constrained form over τ, OBS, magnitude pruning, noise
# ---------------------------------------------------------------------------------------------------------
def run_grda_valley(
    H: np.ndarray, w_star: np.ndarray, w0: np.ndarray, *, gamma: float, t: float, lam: float, mu: float = 0.55,
    noise: float = 0.0, replicates: int = 1, generator: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """gRDA (:func:`nets.grda.grda_update`, float64) on ``f(w) = ½(w − w*)ᵀH(w − w*)`` for ``N = round(t/γ)`` steps
    from ``w0``, with ``c`` chosen so that the final threshold ``c γ^{μ+½} N^μ`` is ``lam``, and gradient noise
    ``σ = noise`` (``replicates`` independent columns). Returns ``(W, w_SGD)``: the gRDA points ``(d, R)`` and
    the gradient-descent point after the same ``N`` steps without noise (``c = 0``), the ``w^SGD`` of the
    directional-pruning problem at training time ``t``."""
    gamma = check_real("gamma", gamma, minimum=0.0, open_min=True)
    t = check_real("t", t, minimum=0.0, open_min=True)
    lam = check_real("lam", lam, minimum=0.0)
    replicates = check_int("replicates", replicates, minimum=1)
    if noise:
        check_torch_generator("generator", generator)
    N = max(1, int(round(t / gamma)))
    c = lam / (gamma ** (mu + 0.5) * N**mu)
    Ht = torch.as_tensor(np.asarray(H, dtype=np.float64))
    ws = torch.as_tensor(np.asarray(w_star, dtype=np.float64))[:, None]
    w = torch.as_tensor(np.asarray(w0, dtype=np.float64))[:, None].repeat(1, replicates).contiguous()
    a = w.clone()
    sgd = torch.as_tensor(np.asarray(w0, dtype=np.float64))[:, None].clone()
    for n in range(1, N + 1):
        grad = Ht @ (w - ws)
        if noise:
            grad += noise * torch.randn(grad.shape, generator=generator, dtype=torch.float64)
        grda_update([w], [grad], [a], lr=gamma, threshold=threshold_closed_form(n, gamma, c, mu))
        sgd -= gamma * (Ht @ (sgd - ws))
    return w.numpy(), sgd[:, 0].numpy()


def _valley(seed: int, d: int, spectrum: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if spectrum == "null":  # rank 3, eigenvalues in [10, 50]: an exact null space of dimension d − 3
        ev = np.zeros(d)
        ev[-3:] = np.linspace(10.0, 50.0, 3)
    else:  # small nonzero eigenvalues, no spectral gap
        ev = np.geomspace(1e-3, 50.0, d)
    return (Q * ev) @ Q.T, rng.standard_normal(d), rng.standard_normal(d)


@dataclass(frozen=True)
class ValleyStudy:
    """Per valley (seed, spectrum, training time, final threshold): gRDA vs the constrained form at the default
    ``τ = 1e-6``, at ``τ(t) = 1/(λ_max t)`` and at the best ``τ`` of a sweep; the OBS comparison at gRDA's sparsity
    (loss increases ``f(w) − f(w^SGD)`` of the true quadratic, gradient term included where SGD has not
    converged); and support agreement of noisy gRDA replicates with the constrained form at ``τ(t)``."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "settings": self.settings, "seconds": self.seconds}

    def summary(self) -> str:
        head = (f"{'spectrum':8s} {'seed':>4s} {'t':>5s} {'λ':>4s} {'kept':>4s} | {'err τ=1e-6':>10s} {'mis':>3s} {'err τ(t)':>8s} "
                f"{'mis':>3s} {'best τ':>8s} {'err':>6s} | {'ΔL gRDA':>9s} {'ΔL DP':>9s} {'ΔL OBS-mag':>10s} "
                f"{'ΔL mag':>9s} | {'exact supp.':>11s} {'mism.':>5s}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            li = r["loss_increase"]
            lines.append(f"{r['spectrum']:8s} {r['seed']:4d} {r['t']:5.0f} {r['lam']:4.2g} {r['kept_count']:4d} | "
                         f"{r['default']['relative_error']:10.4f} {r['default']['mismatches']:3d} "
                         f"{r['time_cut']['relative_error']:8.4f} {r['time_cut']['mismatches']:3d} "
                         f"{r['best']['tau']:8.1e} {r['best']['relative_error']:6.4f} | {li['grda']:9.2e} "
                         f"{li['directional']:9.2e} {li['obs_magnitude']:10.2e} {li['magnitude']:9.2e} | "
                         f"{r['noise']['exact_rate']:11.2f} {r['noise']['mean_mismatches']:5.2f}")
        return "\n".join(lines)


def valley_study(
    *, seeds: Sequence[int] = (0, 1, 2, 3), spectra: Sequence[str] = ("null", "no-gap"), times: Sequence[float] = (20.0, 200.0),
    d: int = 8, lams: Sequence[float] = (0.3, 0.8), gamma: float = 1e-3, noise: float = 0.1, noise_gamma: float = 4e-3,
    replicates: int = 64, taus: Sequence[float] | None = None, progress: Progress | None = None,
) -> ValleyStudy:
    """The quadratic-valley measurements of issue 13 (requirements 5 and 6): see :class:`ValleyStudy`. Each
    ``lam`` in ``lams`` is a final threshold (a larger one prunes more)."""
    from theory.directional import (constrained_dp_admm, flat_subspace, flat_subspace_at_time, support_agreement,
                                    tau_sweep, valley_comparison)

    t0 = time.perf_counter()
    tau_grid = np.geomspace(1e-8, 0.5, 60) if taus is None else np.asarray(taus, dtype=np.float64)
    rows = []
    for spectrum in spectra:
        if spectrum not in ("null", "no-gap"):
            raise ValueError(f"spectrum must be 'null' or 'no-gap', got spectrum={spectrum!r}")
        for seed in seeds:
            H, w_star, w0 = _valley(int(seed), d, spectrum)
            for t, lam in ((t, lam) for t in times for lam in lams):
                lam = check_real("lam", lam, minimum=0.0, open_min=True)
                _say(progress, f"{spectrum} seed {seed} t {t} lambda {lam}")
                W, w_sgd = run_grda_valley(H, w_star, w0, gamma=gamma, t=t, lam=lam)
                wg = W[:, 0]
                sweep = tau_sweep(H, w_sgd, lam, tau_grid, reference=wg)
                best = min(sweep, key=lambda p: p.relative_error)
                ft = flat_subspace_at_time(H, t)
                ref_t = constrained_dp_admm(w_sgd, ft, lam).w
                ref_d = constrained_dp_admm(w_sgd, flat_subspace(H), lam).w

                def err(w: np.ndarray) -> dict[str, Any]:
                    return {"relative_error": float(np.linalg.norm(w - wg) / np.linalg.norm(wg)),
                            "mismatches": int(np.sum((w != 0) != (wg != 0)))}

                cmp_ = valley_comparison(H, w_sgd, lam=lam, flat=ft, w_grda=wg, w_min=w_star)
                Wn, _ = run_grda_valley(H, w_star, w0, gamma=noise_gamma, t=t, lam=lam, noise=noise,
                                        replicates=replicates, generator=torch.Generator().manual_seed(1000 + int(seed)))
                agree = support_agreement(Wn.T, ref_t)
                rel = np.linalg.norm(Wn - ref_t[:, None], axis=0) / np.linalg.norm(ref_t)
                rows.append({
                    "spectrum": spectrum, "seed": int(seed), "t": float(t), "lam": float(lam),
                    "kept_count": int(np.count_nonzero(wg)),
                    "default": err(ref_d), "time_cut": dict(err(ref_t), tau=ft.tau, flat_dim=ft.k),
                    "best": dict(err(best.w), tau=best.tau, flat_dim=best.flat_dim),
                    "sweep": [{"tau": p.tau, "relative_error": p.relative_error, "mismatches": p.mismatches,
                               "flat_dim": p.flat_dim} for p in sweep],
                    "loss_increase": cmp_.loss_increase, "comparison_kept": cmp_.to_dict()["kept"],
                    "noise": dict(agree.to_dict(), relative_error_rms=float(np.sqrt(np.mean(rel**2))),
                                  sigma=noise, gamma=noise_gamma),
                })
    settings = {"d": d, "lams": list(lams), "gamma": gamma, "noise": noise, "noise_gamma": noise_gamma,
                "replicates": replicates, "mu": 0.55, "spectra": {"null": "rank 3, eigenvalues 10..50",
                                                                  "no-gap": "geomspace(1e-3, 50, d)"}}
    return ValleyStudy(rows, settings, time.perf_counter() - t0)
