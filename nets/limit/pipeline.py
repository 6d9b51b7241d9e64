"""The pruning-limit pipeline: a short composition of typed stages.

:func:`estimate_pruning_limit` reads like the method: take the trained weights ``w*``; fix the loss ``L`` (the
same function everywhere) and the tolerance ``ε``; estimate the Hessian spectrum of the prunable weights;
predict the fundamental limit (spectral: flat/free) and the magnitude-pruning limit (Taylor/Haar); measure
both in the real network (compensated pruning; the LOMP sweep); on small models compute the dense quadratic
oracle; list what may make a number not mean what it says. Each stage is a public function of
:mod:`nets.limit` with a frozen config, validated when the config is built, and a frozen result; the run keeps
them typed in a :class:`~nets.limit.result.LimitResult`. The caller's model is never changed (a working copy
is used; torch prune masks are made permanent on the copy only).
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

from nets.compensate import Compensator
from nets.io import provenance
from nets.limit.data import LossFn, prepare_data
from nets.limit.measure import MeasureConfig, measure_fundamental, measure_magnitude
from nets.limit.oracle import OracleConfig, quadratic_oracle
from nets.limit.predict import PredictionConfig, predict_fundamental, predict_magnitude
from nets.limit.result import LimitResult, diagnose
from nets.limit.spectrum import SpectrumConfig, estimate_spectrum, hessian_batches, hessian_operator, summarize_spectrum
from nets.limit.tolerance import ToleranceConfig, estimate_tolerance
from nets.params import copy_model, count_parameters, flatten, prunable_parameters
from theory.validation import check_int

__all__ = ["LimitConfig", "estimate_pruning_limit"]

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
    """
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

    # ---- 1. L(w*) and ε -------------------------------------------------------------------------------------
    report("tolerance", 0, 1)
    tol = estimate_tolerance(work, data, dataclasses.replace(cfg.tolerance, eval_batch_size=cfg.measurement.eval_batch_size))
    report("tolerance", 1, 1)
    timings["tolerance"] = time.perf_counter() - t0
    cost["tolerance"] = {"forward_passes": 2 + (0 if tol.source == "given" else 1)}

    # ---- 2. the Hessian spectrum ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    h_batches = hessian_batches(data, cfg.spectrum, generator)
    h_samples = sum(int(x.shape[0]) for x, _ in h_batches)
    op = hessian_operator(work, h_batches, data, cfg.spectrum)
    slq_res = estimate_spectrum(op, cfg.spectrum, generator, progress)
    summary = summarize_spectrum(slq_res.spectrum)
    timings["spectrum"] = time.perf_counter() - t0
    cost["spectrum"] = dict(slq_res.operator_cost or {"hvps": slq_res.matvecs})

    # ---- the shared second-order data: one operator over all training samples, ∇L(w*) -------------------------
    t0 = time.perf_counter()
    same_data = h_samples == data.n_train and cfg.spectrum.batch_size == cfg.measurement.eval_batch_size
    comp_op = op if same_data and cfg.spectrum.hvp_dtype is None else None
    comp = Compensator(work, data.train_batches(cfg.measurement.eval_batch_size), loss=data.loss_fn,
                       config=cfg.measurement.compensation, operator=comp_op, l1=data.l1,
                       min_eigenvalue=summary.ritz_min)
    grad = comp.gradient
    timings["gradient"] = time.perf_counter() - t0
    cost["gradient"] = {"gradients": 1}

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
                                 gradient=grad if want_taylor else None)
    report("predict", 2, 2)
    timings["predict"] = time.perf_counter() - t0
    cost["predict"] = {"hvps": comp.operator.cost()["hvps"] - h_before}

    # ---- 4. measurements ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    mag_meas = measure_magnitude(work, data, tol, cfg.measurement, progress)
    timings["sweep"] = time.perf_counter() - t0
    cost["sweep"] = {"forward_passes": mag_meas.forward_passes, "levels": mag_meas.levels_evaluated}
    fund_meas = None
    if cfg.measurement.fundamental:
        t0 = time.perf_counter()
        fund_meas = measure_fundamental(comp, tol, cfg.measurement, progress, hint=fund_pred.kept_fraction)
        timings["compensated"] = time.perf_counter() - t0
        cost["compensated"] = {"hvps": fund_meas.hvps, "gradients": fund_meas.gradients,
                               "forward_passes": fund_meas.forward_passes, "levels": len(fund_meas.levels)}

    # ---- 5. the dense quadratic oracle (small models) -----------------------------------------------------------
    oracle = None
    if cfg.oracle.runs(N):
        t0 = time.perf_counter()
        from nets.hessian import HessianOperator

        # float64 products; the cached first-order graphs when they fit (exact; 1.5× faster on the digits default)
        op64 = HessianOperator(work, data.loss_fn, data.train_batches(cfg.measurement.eval_batch_size),
                               dtype=torch.float64, chunk_size=256, cache_graph="auto")
        oracle = quadratic_oracle(op64, w_np, tol.eps, tol.loss_dense, slq_res.spectrum,
                                  mag_meas.curves["kept_count"].astype(np.int64), negative=cfg.prediction.negative,
                                  eta=cfg.prediction.eta, progress=progress, l1=data.l1)
        timings["oracle"] = time.perf_counter() - t0
        cost["oracle"] = {"hvps": oracle.hvps, "gradients": 1}

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
                        gradient_term_at_prediction=g_term, hessian_samples=h_samples, n_train=data.n_train)
    info = {"class": type(model).__name__, "n_parameters": count_parameters(work), "n_prunable": N,
            "data": data.name, "n_train": data.n_train, "n_test": data.n_test,
            "task": "classification" if data.classification else "custom loss", "loss": data.loss_name,
            "num_classes": num_classes, "hessian_space": "prunable", "hessian_samples": h_samples}
    conf = {**cfg.to_dict(), "seed": seed, "device": str(dev), "dtype": str(dtype)}
    return LimitResult(model=info, tolerance=tol, spectrum=slq_res, spectrum_summary=summary,
                       fundamental_prediction=fund_pred, magnitude_prediction=mag_pred, magnitude_measurement=mag_meas,
                       fundamental_measurement=fund_meas, oracle=oracle,
                       gradient_norm=float(torch.linalg.vector_norm(grad)) if math.isfinite(float(grad.abs().max()))
                       else None,
                       warnings=warnings, timings=timings, cost=cost, config=conf, provenance=provenance(dev))
