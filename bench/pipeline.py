"""Benchmark: wall time of each stage of ``prunelimit limit``, with HVP counts and throughput.

Issue 5, requirement 9. Runs the pipeline of ``prunelimit limit`` stage by stage on one model and reports

* seconds per stage (train, tolerance, spectrum, gradient, predict, sweep, compensated, oracle) and their shares;
* cost in model-independent units: HVPs of the SLQ spectrum and of the dense Hessian, gradient evaluations,
  dataset evaluations of the sweep; HVP throughput (HVP/s);
* ratios against peers measured in the same run: one batched HVP pass (all probes) vs one full-data gradient
  on the same batches (the cost unit of the spectrum stage), and the in-memory sweep vs the authors' way of
  saving a full checkpoint per sweep level (``torch.save`` of the state dict, timed on ``--save-levels``
  levels and extrapolated to the grid; EXPERIMENTS.md mistake 7), with the disk it would take;
* accuracy assertions: predicted and actual limits in [0, 1]; the sweep's dense end reproduces the dense
  training loss; on models small enough for the dense Hessian, the SLQ spectrum within W₁ ≤ 5 % of the
  spectral range of the exact one and each method's SLQ prediction within 4 standard errors + 0.02 of its
  prediction from the exact eigenvalues.

Default: the digits MLP of ``prunelimit limit`` (its defaults: ℓ1 training, SLQ 4 × 128, sweep grid 0.01 +
bisection, compensated search, dense oracle). GPU (H100/H200): ``--device cuda --model fc5 --synthetic`` or ``--model resnet18
--synthetic`` trains on seeded synthetic CIFAR-shaped data (3×32×32 Gaussian images labelled by a random
linear teacher, 10 classes) for ``--epochs`` epochs and runs the same stages (no dense Hessian there).

Usage::

    python bench/pipeline.py [--quick] [--json PATH] [--threads T]
    python bench/pipeline.py --device cuda --model resnet18 --synthetic --epochs 2 --json r18.json
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    with contextlib.suppress(OSError):
        env["loadavg_1min"] = os.getloadavg()[0]
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def synthetic_cifar(n_train: int, n_test: int, seed: int, num_classes: int = 10) -> Any:
    """Seeded CIFAR-shaped data: ``x ~ N(0, I)`` of shape 3×32×32, labels ``argmax(W x)`` of a random teacher."""
    from nets.data import ArrayDataset, DataSplit

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 3, 32, 32, generator=g)
    w = torch.randn(num_classes, 3 * 32 * 32, generator=g) / math.sqrt(3 * 32 * 32)
    y = (x.reshape(x.shape[0], -1) @ w.T).argmax(1)
    train = ArrayDataset(x[:n_train].contiguous(), y[:n_train].contiguous())
    test = ArrayDataset(x[n_train:].contiguous(), y[n_train:].contiguous())
    return DataSplit("synthetic-cifar", train, test, train, num_classes, (3, 32, 32),
                     tuple(str(i) for i in range(num_classes)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hvp_vs_gradient(model: torch.nn.Module, batches: list, probes: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of one full-data gradient and of one batched HVP pass with ``probes`` probes."""
    from nets.hessian import HessianOperator

    op = HessianOperator(model, torch.nn.CrossEntropyLoss(), batches)
    g = torch.Generator().manual_seed(0)
    V = torch.randn(op.shape[0], probes, generator=g).to(device=device, dtype=op.dtype)
    grad_t, hvp_t = [], []
    op.value_and_gradient()  # warm-up
    op.matmat(V)
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        op.value_and_gradient()
        _sync(device)
        grad_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        op.matmat(V)
        _sync(device)
        hvp_t.append(time.perf_counter() - t0)
    grad_s, hvp_s = float(np.median(grad_t)), float(np.median(hvp_t))
    return {"gradient_seconds": grad_s, "hvp_pass_seconds": hvp_s, "probes": probes,
            "hvp_pass_over_gradient": hvp_s / grad_s, "per_hvp_over_gradient": hvp_s / probes / grad_s}


def per_level_checkpoint_cost(model: torch.nn.Module, levels: int, n_grid: int) -> dict[str, float]:
    """The authors' sweep saved a full checkpoint per level: time ``levels`` saves, extrapolate to the grid."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        for i in range(levels):
            torch.save(state, os.path.join(d, f"level_{i}.pt"))
        seconds = time.perf_counter() - t0
        size = os.path.getsize(os.path.join(d, "level_0.pt"))
    return {"levels_timed": levels, "seconds_per_level": seconds / levels,
            "extrapolated_seconds": seconds / levels * n_grid, "bytes_per_level": size,
            "extrapolated_bytes": size * n_grid}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mlp", help="mlp (digits default), cnn, fc5, resnet18, ... (default mlp)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic CIFAR-shaped data instead of digits")
    ap.add_argument("--n-train", type=int, default=5000, help="synthetic training samples (default 5000)")
    ap.add_argument("--n-test", type=int, default=1000, help="synthetic test samples (default 1000)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the pipeline's: 60 on digits; 2 synthetic)")
    ap.add_argument("--slq-steps", type=int, default=128, help="Lanczos steps (default 128)")
    ap.add_argument("--slq-probes", type=int, default=4, help="SLQ probes (default 4)")
    ap.add_argument("--sweep-step", type=float, default=None, help="kept-fraction grid step (default 0.001; 0.01 synthetic)")
    ap.add_argument("--hessian-samples", type=int, default=None, help="fixed subset of training samples for the Hessian")
    ap.add_argument("--hessian-batch-size", type=int, default=None, help="Hessian batch size (default 1024; 256 on cuda)")
    ap.add_argument("--save-levels", type=int, default=20, help="levels saved to time the per-level checkpoint peer")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the HVP-vs-gradient timing (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on cpu: what the CLI uses for digits)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    ap.add_argument("--json", type=Path, default=None, help="write the record to this path (atomic)")
    args = ap.parse_args(argv)

    from nets.compensate import CompensationConfig
    from nets.data import fixed_batches, load_dataset
    from nets.limit import LimitConfig, MeasureConfig, SpectrumConfig, estimate_pruning_limit
    from nets.train import train_default_model

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    if args.quick:
        args.n_train, args.n_test = min(args.n_train, 512), min(args.n_test, 256)
        args.slq_steps, args.slq_probes, args.save_levels, args.repeats = 64, 2, 3, 2
        args.epochs = args.epochs or (2 if args.synthetic else 10)
        args.sweep_step = args.sweep_step or 0.05
    if args.synthetic:
        data = synthetic_cifar(args.n_train, args.n_test, args.seed)
        epochs = args.epochs or 2
        sweep_step = args.sweep_step or 0.01
    else:
        data = load_dataset("digits", seed=args.seed, **({"as_image": True} if args.model == "cnn" else {}))
        epochs = args.epochs
        sweep_step = args.sweep_step or 0.01
    hbs = args.hessian_batch_size or (256 if device.type == "cuda" else 1024)
    env = environment(device)

    _sync(device)
    t0 = time.perf_counter()
    model, tr = train_default_model(data, model_name=args.model, epochs=epochs, seed=args.seed, device=args.device)
    _sync(device)
    t_train = time.perf_counter() - t0
    n_levels = int(round(1.0 / sweep_step)) + 1
    config = LimitConfig(
        spectrum=SpectrumConfig(steps=args.slq_steps, n_probes=args.slq_probes, batch_size=hbs,
                                samples=args.hessian_samples),
        measurement=MeasureConfig(grid_step=sweep_step, eval_batch_size=hbs,
                                  compensation=CompensationConfig(steps=5 if args.quick else 50)))
    result = estimate_pruning_limit(model, data, config=config, seed=args.seed, device=device)
    stages = {"train": t_train, **result.timings}
    total = sum(stages.values())

    # peers measured in the same run
    batches = [(x.to(device), y.to(device)) for x, y in fixed_batches(data.train_eval, hbs)]
    if args.hessian_samples is not None:
        batches = batches[: max(1, math.ceil(args.hessian_samples / hbs))]
    ratio = hvp_vs_gradient(model, batches, args.slq_probes, device, args.repeats)
    ckpt = per_level_checkpoint_cost(model, args.save_levels, n_levels)
    ckpt["in_memory_sweep_seconds"] = result.timings["sweep"]

    # accuracy assertions
    checks: dict[str, bool] = {}
    predicted = result.fundamental_prediction.limits
    for m, lim in predicted.items():
        checks[f"{m}_in_unit_interval"] = 0.0 <= lim.kept_fraction_lower <= lim.kept_fraction <= lim.kept_fraction_upper <= 1.0
    for c, a in result.magnitude_measurement.limits.items():
        v = a.kept_fraction if c != "authors_strict_accuracy" else a.kept_fraction_any
        checks[f"lomp_{c}_in_unit_interval_or_none"] = v is None or 0.0 <= v <= 1.0
    checks["fundamental_measured_at_most_lomp"] = (result.fundamental.measured is None
                                                   or result.fundamental.measured <= result.magnitude.measured + 1e-9)
    curves = result.magnitude_measurement.curves
    checks["dense_end_reproduces_dense_loss"] = bool(
        abs(curves["train_loss"][-1] - result.tolerance.train.loss) <= 1e-5 * max(1.0, result.tolerance.train.loss))
    q = result.oracle
    if q is not None:
        checks["slq_w1_below_5pct_of_range"] = q.slq_wasserstein1 <= 0.05 * (q.eigenvalue_max - q.eigenvalue_min)
        for m, lim in predicted.items():
            se = lim.stderr if math.isfinite(lim.stderr) else 0.0
            checks[f"{m}_slq_vs_exact_eigenvalues"] = abs(lim.kept_fraction - q.predicted_exact_spectrum[m].kept_fraction) <= 4 * se + 0.02

    hvps_spec = result.cost["spectrum"]["hvps"]
    record = {
        "benchmark": "pipeline",
        "environment": env,
        "settings": {"model": args.model, "data": data.name, "epochs": tr.config.epochs, "slq_steps": args.slq_steps,
                     "slq_probes": args.slq_probes, "sweep_levels": n_levels, "hessian_batch_size": hbs,
                     "hessian_samples": args.hessian_samples, "quick": args.quick, "seed": args.seed},
        "model": result.model,
        "stage_seconds": stages,
        "total_seconds": total,
        "hvps": {"spectrum": hvps_spec, "oracle": 0 if q is None else q.hvps,
                 "compensated": result.cost.get("compensated", {}).get("hvps", 0),
                 "predict": result.cost.get("predict", {}).get("hvps", 0)},
        "hvp_per_second": {"spectrum": hvps_spec / result.timings["spectrum"],
                           **({} if q is None else {"oracle": q.hvps / result.timings["oracle"]})},
        "hvp_vs_gradient": ratio,
        "per_level_checkpoint_peer": ckpt,
        "limits": {"fundamental": result.fundamental.to_dict(), "magnitude": result.magnitude.to_dict(),
                   "predicted": {m: {"kept_fraction": v.kept_fraction, "lower": v.kept_fraction_lower,
                                     "upper": v.kept_fraction_upper, "stderr": v.stderr} for m, v in predicted.items()},
                   "lomp": {c: a.to_dict() for c, a in result.magnitude_measurement.limits.items()},
                   "oracle": None if q is None else q.kept_fraction_compensated},
        "checks": checks,
    }

    print(f"pipeline benchmark: {result.model['class']} on {data.name}, N = {result.model['n_prunable']}, "
          f"device {device}, {env['torch_threads']} threads, load {env.get('loadavg_1min', float('nan')):.1f}")
    print(f"{'stage':16s} {'seconds':>9s} {'share':>7s} {'HVPs':>7s} {'HVP/s':>9s}")
    for name, sec in stages.items():
        hv = result.cost.get(name, {}).get("hvps", 0)
        rate = f"{hv / sec:9.1f}" if hv else f"{'':9s}"
        print(f"{name:16s} {sec:9.2f} {sec / total:7.1%} {hv:7d} {rate}")
    print(f"{'total':16s} {total:9.2f}")
    print(f"one HVP pass ({args.slq_probes} probes) / one gradient: {ratio['hvp_pass_over_gradient']:.2f} "
          f"(per HVP {ratio['per_hvp_over_gradient']:.2f}); gradient {ratio['gradient_seconds'] * 1e3:.1f} ms")
    print(f"authors' per-level checkpoints: {ckpt['extrapolated_seconds']:.2f}s and "
          f"{ckpt['extrapolated_bytes'] / 1e6:.1f} MB for {n_levels} levels vs in-memory sweep "
          f"{ckpt['in_memory_sweep_seconds']:.2f}s and 0 bytes (save-only ratio "
          f"{ckpt['extrapolated_seconds'] / ckpt['in_memory_sweep_seconds']:.2f})")
    lim = record["limits"]
    print("kept fractions: fundamental predicted " + ", ".join(f"{m} {v['kept_fraction']:.4f}"
                                                               for m, v in lim["predicted"].items())
          + f", measured {lim['fundamental']['measured']}; magnitude predicted {lim['magnitude']['predicted']:.4f}, "
          + f"measured {lim['magnitude']['measured']}"
          + (f"; oracle {lim['oracle']:.4f}" if q is not None else ""))
    print("checks: " + ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in checks.items()))
    if args.json is not None:
        from nets.io import atomic_write_json, jsonable

        atomic_write_json(args.json, jsonable(record), indent=1)
        print(f"wrote {args.json}")
    if not all(checks.values()):
        print("error: accuracy checks failed: " + ", ".join(k for k, v in checks.items() if not v), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
