"""The pruning-limit pipeline: a short composition of typed stages.

:func:`estimate_pruning_limit` reads like the method: take the trained weights ``w*``; fix the loss ``L`` (the
same function everywhere) and the tolerance ``ε``; estimate the Hessian spectrum of the prunable weights;
predict the fundamental limit (spectral: flat/free) and the magnitude-pruning limit (Taylor/Haar); measure
both in the real network (compensated pruning; the LOMP sweep); on small models compute the dense quadratic
oracle; list what may make a number not mean what it says. Each stage is a public function of
:mod:`nets.limit` with a frozen config, validated when the config is built, and a frozen result; the run keeps
them typed in a :class:`~nets.limit.result.LimitResult`. The caller's model is never changed (a working copy
is used; torch prune masks are made permanent on the copy only).

Before any work the run checks that its stages fit in the device's memory (:mod:`nets.limit.preflight`: a
forced oracle or an SLQ basis that cannot fit is refused, an automatic oracle that cannot is skipped, with a
warning), caps torch's thread count at one per physical core (:func:`nets.resources.library_threads`), and
logs one line per finished stage with its time and cost (logger ``nets.limit.pipeline``, level INFO). Under
``torch.distributed`` the Hessian data and the sweep levels are split across the ranks
(:mod:`nets.limit.parallel`); every rank returns the same result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.compensate import Compensator
from nets.io import provenance
from nets.limit.data import LossFn, prepare_data
from nets.limit.measure import MeasureConfig, measure_fundamental, measure_magnitude
from nets.limit.oracle import OracleConfig, quadratic_oracle
from nets.limit.predict import PredictionConfig, predict_fundamental, predict_magnitude
from nets.limit.result import LimitResult, diagnose
from nets.limit.parallel import check_same_on_every_rank, process_group
from nets.limit.preflight import available_memory, check_plan, plan_memory
from nets.limit.spectrum import (
    SpectrumConfig,
    estimate_spectrum,
    hessian_batches,
    hessian_operator,
    hessian_samples,
    summarize_spectrum,
)
from nets.limit.tolerance import ToleranceConfig, estimate_tolerance
from nets.params import copy_model, count_parameters, flatten, prunable_parameters
from nets.resources import library_threads
from theory.validation import check_int

__all__ = ["LimitConfig", "estimate_pruning_limit", "describe_cost"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LimitConfig:
    """All settings of a run, one frozen config per stage (each validated when built).

    >>> LimitConfig(spectrum=SpectrumConfig(steps=0))
    Traceback (most recent call last):
    ...
    ValueError: steps must be an integer >= 1, got steps=0
    """

    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    measurement: MeasureConfig = field(default_factory=MeasureConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)

    def __post_init__(self) -> None:
        for name, cls in (("tolerance", ToleranceConfig), ("spectrum", SpectrumConfig),
                          ("prediction", PredictionConfig), ("measurement", MeasureConfig), ("oracle", OracleConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"tolerance": dict(self.tolerance.__dict__), "spectrum": self.spectrum.to_dict(),
                "prediction": self.prediction.to_dict(), "measurement": self.measurement.to_dict(),
                "oracle": dict(self.oracle.__dict__)}


def _working_copy(model: nn.Module, device: torch.device) -> nn.Module:
    from nets.prune import remove_masks

    work = remove_masks(copy_model(model)).to(device)
    for p in work.parameters():
        p.requires_grad_(True)
        p.grad = None
    work.eval()
    return work


def describe_cost(cost: dict[str, int]) -> str:
    """``"512 HVPs, 3 gradients, 210 data passes"`` (the nonzero counts of a stage's cost)."""
    names = (("hvps", "HVPs"), ("gradients", "gradients"), ("forward_passes", "data passes"), ("levels", "levels"))
    return ", ".join(f"{cost[k]} {label}" for k, label in names if cost.get(k)) or "no products"


def _stage_done(stage: str, seconds: float, cost: dict[str, int]) -> None:
    log.info("stage %s done: %.1f s, %s", stage, seconds, describe_cost(cost))


def estimate_pruning_limit(
    model: nn.Module,
    train_data: Any,
    test_data: Any = None,
    *,
    loss: LossFn | None = None,
    l1: float = 0.0,
    config: LimitConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> LimitResult:
    """Predict and measure both pruning limits of a trained model (module docstring).

    Parameters
    ----------
    model:
        The trained model (any ``nn.Module``; its Linear/Conv weights are the prunable ones). Never modified.
    train_data, test_data:
        A ``Dataset``, a ``DataLoader``, ``(X, y)`` tensors or a list of ``(inputs, targets)`` batches
        (:func:`nets.data.as_batches`); a :class:`nets.data.DataSplit` as ``train_data`` supplies both. The
        training samples define ``L``, ε, the Hessian and both measurements; the test samples only the accuracy
        criteria.
    loss:
        ``loss(outputs, targets)`` → batch mean; default cross-entropy for a classifier (required otherwise).
    l1:
        The training objective's ℓ1 coefficient λ over the prunable weights: every stage then uses
        ``L(w) = data loss + λ‖w‖₁`` (default 0: the data loss alone). Pass the λ the model was trained with so
        that ``w*`` is a stationary point of ``L``, as the predictions assume; with 0, an ℓ1-trained model's
        compensated (fundamental) limit also counts what re-optimising gains by no longer paying the penalty.
    config:
        :class:`LimitConfig` (defaults: ε from 128-sample batch losses, SLQ 128 steps × 4 probes, the flat
        prediction primary for the fundamental limit and Taylor for the magnitude-pruning one, LOMP grid 0.01
        refined by bisection, compensated search with 50 masked L-BFGS evaluations per level, the oracle for
        N ≤ 2500).
    seed:
        Seeds the SLQ probes and the Hessian-sample subset (``torch.Generator().manual_seed(seed)``).
    device:
        Where to compute (default: the model's device).
    progress:
        ``progress(stage, done, total)`` with stages ``tolerance``, ``spectrum``, ``predict``, ``sweep``,
        ``compensated``, ``oracle``.

    Raises
    ------
    ValueError
        bad input (named), or a stage that cannot fit in the device's memory
        (:class:`nets.limit.preflight.MemoryRefusal`, naming the setting): checked before any work.
    """
    with library_threads() as threads:
        return _estimate(model, train_data, test_data, loss=loss, l1=l1, config=config, seed=seed, device=device,
                         progress=progress, threads=threads.to_dict())


def _estimate(model: nn.Module, train_data: Any, test_data: Any, *, loss: LossFn | None, l1: float,
              config: LimitConfig | None, seed: int, device: str | torch.device | None, progress: Progress | None,
              threads: dict[str, Any]) -> LimitResult:
    # ---- boundary checks (cheap, before any work) ---------------------------------------------------------
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    cfg = LimitConfig() if config is None else config
    if not isinstance(cfg, LimitConfig):
        raise TypeError(f"config must be a nets.limit.LimitConfig, got {type(cfg).__name__}")
    seed = check_int("seed", seed, minimum=0)
    if not prunable_parameters(model):
        raise ValueError("model has no prunable (Linear/Conv) weights")
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters")
    dev = torch.device(device) if device is not None else params[0].device
    dtype = params[0].dtype
    report = progress if progress is not None else (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    cost: dict[str, dict[str, int]] = {}
    generator = torch.Generator().manual_seed(seed)

    # ---- data and the working copy -------------------------------------------------------------------------
    t0 = time.perf_counter()
    work = _working_copy(model, dev)
    data = prepare_data(work, train_data, test_data, loss=loss, l1=l1, device=dev, dtype=dtype)
    w_star = flatten([w.detach() for _, w in prunable_parameters(work)]).clone()
    N = int(w_star.numel())
    if not bool(torch.isfinite(w_star).all()):
        raise ValueError("the model's prunable weights contain NaN or inf")
    _, world = process_group()
    if data.n_train < world:
        raise ValueError(f"train_data holds {data.n_train} samples, fewer than the {world} processes sharing it")
    # ---- memory of every stage against the device's (before any work) ------------------------------------------
    plan = plan_memory(work, input_shape=tuple(data.X_train.shape[1:]), n_train=data.n_train, n_test=data.n_test,
                       config=cfg, world_size=world)
    cfg, plan, memory_notes = check_plan(plan, cfg, available_memory(dev), switch_cache=False, refuse_peak=False,
                                         names={"oracle": "config.oracle.enabled", "steps": "config.spectrum.steps",
                                                "n_probes": "config.spectrum.n_probes"})
    for note in memory_notes:
        log.warning("%s", note)
    if world > 1:  # every rank must run on the same inputs (nets.limit.parallel), checked before any work
        settings = json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()
        check_same_on_every_rank(dev, model=list(work.state_dict().values()), train_data=data.X_train,
                                 train_targets=data.y_train, test_data=data.X_test, test_targets=data.y_test,
                                 l1=l1, seed=seed, config=zlib.crc32(settings))

    # ---- 1. L(w*) and ε -------------------------------------------------------------------------------------
    report("tolerance", 0, 1)
    tol = estimate_tolerance(work, data, dataclasses.replace(cfg.tolerance, eval_batch_size=cfg.measurement.eval_batch_size))
    report("tolerance", 1, 1)
    timings["tolerance"] = time.perf_counter() - t0
    # the training pass, the test pass (when there is test data) and the per-batch losses of the default ε
    cost["tolerance"] = {"forward_passes": 1 + (tol.test is not None) + (tol.source != "given")}
    _stage_done("tolerance", timings["tolerance"], cost["tolerance"])

    # ---- 2. the Hessian spectrum ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    h_batches = hessian_batches(data, cfg.spectrum, generator)  # this rank's shard under torch.distributed
    h_samples = hessian_samples(data, cfg.spectrum)
    op = hessian_operator(work, h_batches, data, cfg.spectrum)
    slq_res = estimate_spectrum(op, cfg.spectrum, generator, progress)
    summary = summarize_spectrum(slq_res.spectrum)
    timings["spectrum"] = time.perf_counter() - t0
    cost["spectrum"] = dict(slq_res.operator_cost or {"hvps": slq_res.matvecs})
    _stage_done("spectrum", timings["spectrum"], cost["spectrum"])

    # ---- the shared second-order data: one operator over all training samples, ∇L(w*) -------------------------
    t0 = time.perf_counter()
    same_data = h_samples == data.n_train and cfg.spectrum.batch_size == cfg.measurement.eval_batch_size
    comp_op = op if same_data and cfg.spectrum.hvp_dtype is None else None
    comp = Compensator(work, data.local_train_batches(cfg.measurement.eval_batch_size), loss=data.loss_fn,
                       config=cfg.measurement.compensation, operator=comp_op, l1=data.l1,
                       min_eigenvalue=summary.ritz_min)
    grad = comp.gradient
    if comp_op is None:
        del op  # its cached graphs are not reused: free them before the measurements build their own
    timings["gradient"] = time.perf_counter() - t0
    cost["gradient"] = {"gradients": 1}
    _stage_done("gradient", timings["gradient"], cost["gradient"])

    # ---- 3. predictions -------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    report("predict", 0, 2)
    w_np = w_star.to("cpu", torch.float64).numpy()
    fund_pred = predict_fundamental(slq_res.spectrum, w_np, tol.eps, cfg.prediction)
    report("predict", 1, 2)
    h_before = comp.operator.cost()["hvps"]
    want_taylor = cfg.prediction.magnitude_method == "taylor"
    mag_pred = predict_magnitude(slq_res.spectrum, w_star, tol.eps, cfg.prediction,
                                 operator=comp.operator if want_taylor else None,
                                 gradient=grad if want_taylor else None, block=cfg.spectrum.n_probes)
    report("predict", 2, 2)
    timings["predict"] = time.perf_counter() - t0
    cost["predict"] = {"hvps": comp.operator.cost()["hvps"] - h_before}
    _stage_done("predict", timings["predict"], cost["predict"])

    # ---- 4. measurements ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    mag_meas = measure_magnitude(work, data, tol, cfg.measurement, progress)
    timings["sweep"] = time.perf_counter() - t0
    cost["sweep"] = {"forward_passes": mag_meas.forward_passes, "levels": mag_meas.levels_evaluated}
    _stage_done("sweep", timings["sweep"], cost["sweep"])
    fund_meas = None
    if cfg.measurement.fundamental:
        t0 = time.perf_counter()
        fund_meas = measure_fundamental(comp, tol, cfg.measurement, progress, hint=fund_pred.kept_fraction)
        timings["compensated"] = time.perf_counter() - t0
        cost["compensated"] = {"hvps": fund_meas.hvps, "gradients": fund_meas.gradients,
                               "forward_passes": fund_meas.forward_passes, "levels": len(fund_meas.levels)}
        _stage_done("compensated", timings["compensated"], cost["compensated"])

    # ---- 5. the dense quadratic oracle (small models) -----------------------------------------------------------
    oracle = None
    if cfg.oracle.runs(N):
        t0 = time.perf_counter()
        from nets.hessian import HessianOperator

        # float64 products; the cached first-order graphs when they fit (exact; 1.5× faster on the digits default)
        op64 = HessianOperator(work, data.loss_fn, data.local_train_batches(cfg.measurement.eval_batch_size),
                               dtype=torch.float64, chunk_size=256, cache_graph="auto")
        oracle = quadratic_oracle(op64, w_np, tol.eps, tol.loss_dense, slq_res.spectrum,
                                  mag_meas.curves["kept_count"].astype(np.int64), negative=cfg.prediction.negative,
                                  eta=cfg.prediction.eta, progress=progress, l1=data.l1)
        timings["oracle"] = time.perf_counter() - t0
        cost["oracle"] = {"hvps": oracle.hvps, "gradients": 1}
        _stage_done("oracle", timings["oracle"], cost["oracle"])

    # ---- what may make a number not mean what it says -------------------------------------------------------------
    order = comp.order
    k_f = fund_pred.primary.kept_count
    pruned = order[k_f:]
    g_term = -float((grad[pruned].to(torch.float64) * w_star[pruned].to(torch.float64)).sum()) if k_f < N else 0.0
    num_classes = None
    if data.classification:
        with torch.no_grad():
            num_classes = int(work(data.X_train[:1]).shape[1])
    warnings = diagnose(tolerance=tol, spectrum=slq_res, summary=summary, fundamental_prediction=fund_pred,
                        magnitude_prediction=mag_pred, magnitude_measurement=mag_meas,
                        fundamental_measurement=fund_meas, num_classes=num_classes,
                        gradient_term_at_prediction=g_term, hessian_samples=h_samples, n_train=data.n_train,
                        sweep_step=cfg.measurement.grid_step)
    info = {"class": type(model).__name__, "n_parameters": count_parameters(work), "n_prunable": N,
            "data": data.name, "n_train": data.n_train, "n_test": data.n_test,
            "task": "classification" if data.classification else "custom loss", "loss": data.loss_name,
            "num_classes": num_classes, "hessian_space": "prunable", "hessian_samples": h_samples}
    used = {"slq_steps": int(slq_res.steps), "slq_probes": int(slq_res.spectrum.n_probes),
            "hessian_samples": h_samples, "hessian_path": slq_res.hvp_path,
            "sweep_levels": int(mag_meas.curves["kept_count"].size), "oracle": oracle is not None,
            "world_size": world, "threads": threads, "memory_estimate": plan.to_dict(),
            "adjusted": _adjustments(cfg, data.n_train, N, slq_res, memory_notes)}
    conf = {**cfg.to_dict(), "seed": seed, "device": str(dev), "dtype": str(dtype), "used": used}
    return LimitResult(model=info, tolerance=tol, spectrum=slq_res, spectrum_summary=summary,
                       fundamental_prediction=fund_pred, magnitude_prediction=mag_pred, magnitude_measurement=mag_meas,
                       fundamental_measurement=fund_meas, oracle=oracle,
                       gradient_norm=float(torch.linalg.vector_norm(grad)) if math.isfinite(float(grad.abs().max()))
                       else None,
                       warnings=warnings, timings=timings, cost=cost, config=conf, provenance=provenance(dev))


def _adjustments(cfg: LimitConfig, n_train: int, N: int, slq_res: Any, memory_notes: tuple[str, ...]
                 ) -> list[dict[str, Any]]:
    """Settings the run could not use as given: ``{"setting", "requested", "used", "why"}`` each."""
    out: list[dict[str, Any]] = []
    sp = cfg.spectrum
    if sp.samples is not None and sp.samples > n_train:
        out.append({"setting": "spectrum.samples", "requested": sp.samples, "used": n_train,
                    "why": f"only {n_train} training samples"})
    if int(slq_res.steps) < sp.steps:
        out.append({"setting": "spectrum.steps", "requested": sp.steps, "used": int(slq_res.steps),
                    "why": f"at most N - deflate = {N - (sp.deflate or 0)} Lanczos steps (exact spectrum)"})
    for note in memory_notes:
        out.append({"setting": "memory", "requested": None, "used": None, "why": note})
    return out
