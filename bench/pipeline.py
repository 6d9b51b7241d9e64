"""Benchmark: wall time of each stage of ``prunelimit limit``, with costs, interleaved repeats and peers.

Issue 5 requirement 9, issue 11 requirement 7. Trains the model once (as ``prunelimit limit`` does), then runs the
pipeline ``--repeats`` times with *the CLI's own configuration* (the ``prunelimit limit`` options given after
``--``, parsed by the CLI's parser and turned into a :class:`nets.limit.LimitConfig` by
:func:`nets.cli.limit.limit_config`), and interleaves with each run the peers measured on the operator the
pipeline itself builds (:func:`nets.limit.hessian_operator` over :func:`nets.limit.spectrum.hessian_batches`,
the same product path, reported):

* one gradient over the Hessian data and one batched HVP pass (all probes), first call (graph build) and
  steady state: the cost unit of the spectrum stage, and the ratio HVP pass / gradient;
* the Lanczos overhead: spectrum-stage seconds / (Lanczos steps × one HVP pass), 1 when SLQ is all products;
* the authors' sweep, which saved a full checkpoint per level (``torch.save`` of the state dict, timed on
  ``--save-levels`` levels and extrapolated to the grid; docs/experiments.md §1.4, mistake 7), against the
  in-memory sweep.

Each quantity is reported as the median with min–max over the repeats (the order of the measurements rotates
from repeat to repeat); cost in HVPs, gradients and data passes beside seconds. Accuracy assertions: limits in
[0, 1]; the sweep's dense end reproduces the dense training loss; with the dense oracle, the SLQ spectrum within
W₁ ≤ 5 % of the spectral range of the exact one and each SLQ prediction within 4 standard errors + 0.02 of the
prediction from the exact eigenvalues; every repeat gives the same limits (the pipeline is deterministic).

Timings on a machine shared with other jobs are only meaningful as ratios measured in the same run; say so.

Usage::

    python bench/pipeline.py [--quick] [--repeats R] [--json PATH] [--threads T]       # the digits default
    python bench/pipeline.py --model cnn --repeats 3                                   # the CNN on digits
    python bench/pipeline.py --model fc5 --data synthetic-cifar --epochs 10 --repeats 1 -- --slq-probes 4
    python bench/pipeline.py --device cuda --model resnet18 --data synthetic-cifar --epochs 2 --json r18.json
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

STAGES = ("tolerance", "spectrum", "gradient", "predict", "sweep", "compensated", "oracle")


def environment(device: torch.device) -> dict[str, Any]:
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
           "platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "device": str(device)}
    with contextlib.suppress(OSError):
        env["loadavg_1min_start"] = os.getloadavg()[0]
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def stats(values: list[float]) -> dict[str, float]:
    """Median with min and max (and the count)."""
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "n": len(values)}


def fmt(s: dict[str, float], scale: float = 1.0, spec: str = ".2f") -> str:
    return (f"{s['median'] * scale:{spec}} [{s['min'] * scale:{spec}}, {s['max'] * scale:{spec}}]")


def operator_peers(model: torch.nn.Module, data: Any, config: Any, device: torch.device, seed: int
                   ) -> dict[str, Any]:
    """One gradient and one batched HVP pass on the operator the pipeline builds (the same path)."""
    from nets.limit import hessian_operator
    from nets.limit.data import prepare_data
    from nets.limit.spectrum import hessian_batches

    p = next(iter(model.parameters()))
    pdata = prepare_data(model, data, device=p.device, dtype=p.dtype)
    op = hessian_operator(model, hessian_batches(pdata, config.spectrum, torch.Generator().manual_seed(seed)), pdata,
                          config.spectrum)
    k = config.spectrum.n_probes
    V = torch.randn(op.shape[0], k, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=op.dtype)
    first, _ = _timed(lambda: op.matmat(V), device)  # builds the cached graphs when the path caches
    hvp, _ = _timed(lambda: op.matmat(V), device)
    grad, _ = _timed(op.value_and_gradient, device)
    return {"hvp_pass_first_seconds": first, "hvp_pass_seconds": hvp, "gradient_seconds": grad, "probes": k,
            "hvp_path": op.hvp_path}


def per_level_checkpoint_cost(model: torch.nn.Module, levels: int, n_grid: int) -> dict[str, float]:
    """The authors' sweep saved a full checkpoint per level: time ``levels`` saves, extrapolate to the grid."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        for i in range(levels):
            torch.save(state, os.path.join(d, f"level_{i}.pt"))
        seconds = time.perf_counter() - t0
        size = os.path.getsize(os.path.join(d, "level_0.pt"))
    return {"seconds_per_level": seconds / levels, "extrapolated_seconds": seconds / levels * n_grid,
            "bytes_per_level": size, "extrapolated_bytes": size * n_grid}


def accuracy_checks(result: Any) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    predicted = result.fundamental_prediction.limits
    for m, lim in predicted.items():
        checks[f"{m}_in_unit_interval"] = (0.0 <= lim.kept_fraction_lower <= lim.kept_fraction
                                           <= lim.kept_fraction_upper <= 1.0)
    for c, a in result.magnitude_measurement.limits.items():
        v = a.kept_fraction if c != "authors_strict_accuracy" else a.kept_fraction_any
        checks[f"lomp_{c}_in_unit_interval_or_none"] = v is None or 0.0 <= v <= 1.0
    curves = result.magnitude_measurement.curves
    checks["dense_end_reproduces_dense_loss"] = bool(
        abs(curves["train_loss"][-1] - result.tolerance.train.loss) <= 1e-5 * max(1.0, result.tolerance.train.loss))
    q = result.oracle
    if q is not None:
        checks["slq_w1_below_5pct_of_range"] = q.slq_wasserstein1 <= 0.05 * (q.eigenvalue_max - q.eigenvalue_min)
        for m, lim in predicted.items():
            se = lim.stderr if math.isfinite(lim.stderr) else 0.0
            checks[f"{m}_slq_vs_exact_eigenvalues"] = (
                abs(lim.kept_fraction - q.predicted_exact_spectrum[m].kept_fraction) <= 4 * se + 0.02)
    return checks


def _limits(result: Any) -> dict[str, Any]:
    return {"fundamental": result.fundamental.to_dict(), "magnitude": result.magnitude.to_dict(),
            "oracle": None if result.oracle is None else result.oracle.kept_fraction_compensated}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cli_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cli_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="options after -- are prunelimit limit options (pipeline settings)")
    ap.add_argument("--model", default="mlp", help="mlp (the digits default), cnn, fc5, resnet18, ... (default mlp)")
    ap.add_argument("--data", default="digits", help="digits (default) or synthetic-cifar")
    ap.add_argument("--n-train", type=int, default=None, help="synthetic-cifar training samples (default: its own)")
    ap.add_argument("--n-test", type=int, default=None, help="synthetic-cifar test samples (default: its own)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the CLI's for the model)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the pipeline (default 3)")
    ap.add_argument("--save-levels", type=int, default=20, help="levels saved to time the per-level checkpoint peer")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: the CLI's rule, nets.resources.choose_threads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny settings, 1 repeat")
    ap.add_argument("--json", type=Path, default=None, help="write the record to this path (atomic)")
    args = ap.parse_args(argv)

    from nets.cli import build_parser
    from nets.cli.limit import limit_config
    from nets.data import load_dataset
    from nets.limit import estimate_pruning_limit
    from nets.resources import choose_threads
    from nets.train import train_default_model

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    small = args.data in ("digits", "teacher-student")
    threads = choose_threads(args.threads, small_problem=small)
    torch.set_num_threads(threads.threads)
    if args.quick:
        args.repeats, args.save_levels = 1, 3
        args.epochs = args.epochs or (2 if not small else 10)
        if not small:
            args.n_train, args.n_test = min(args.n_train or 256, 256), min(args.n_test or 128, 128)
        cli_args = ["--slq-steps", "64", "--slq-probes", "2", "--sweep-step", "0.05", "--compensation-steps", "5",
                    *cli_args]
    # the pipeline's configuration is the CLI's: prunelimit limit's parser and limit_config
    cli = build_parser("limit").parse_args(["limit", "--model", args.model, "--data", args.data,
                                            "--device", args.device, *cli_args])
    config = limit_config(cli)
    options: dict[str, Any] = {}
    if args.data == "digits" and args.model == "cnn":
        options["as_image"] = True
    if args.data == "synthetic-cifar":
        options.update({k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v is not None})
    data = load_dataset(args.data, seed=args.seed, **options)
    env = environment(device)
    env["threads"] = threads.to_dict()

    t_train, (model, tr) = _timed(lambda: train_default_model(data, model_name=args.model, epochs=args.epochs,
                                                             seed=args.seed, device=args.device,
                                                             model_kwargs={"hidden": tuple(cli.hidden)}
                                                             if cli.hidden else None), device)
    n_grid = int(round(1.0 / config.measurement.grid_step)) + 1

    runs: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    saves: list[dict[str, float]] = []
    results = []
    tasks = ("pipeline", "operator", "checkpoints")
    for r in range(args.repeats):
        order = tasks[r % 3:] + tasks[:r % 3]  # rotate: each measurement sees each position
        for task in order:
            if task == "pipeline":
                seconds, res = _timed(lambda: estimate_pruning_limit(model, data, config=config, seed=args.seed,
                                                                     device=device), device)
                results.append(res)
                runs.append({"total": seconds, **res.timings})
            elif task == "operator":
                peers.append(operator_peers(model, data, config, device, args.seed))
            else:
                saves.append(per_level_checkpoint_cost(model, args.save_levels, n_grid))
    result = results[-1]
    with contextlib.suppress(OSError):
        env["loadavg_1min_end"] = os.getloadavg()[0]

    stage_stats = {name: stats([run[name] for run in runs]) for name in ("total", *STAGES) if name in runs[0]}
    hvp = stats([p["hvp_pass_seconds"] for p in peers])
    first = stats([p["hvp_pass_first_seconds"] for p in peers])
    grad = stats([p["gradient_seconds"] for p in peers])
    ratio = stats([p["hvp_pass_seconds"] / p["gradient_seconds"] for p in peers])
    steps = int(result.spectrum.steps)
    # spectrum stage / (Lanczos steps x one HVP pass of all probes), pairing each run with the peer of its repeat
    overhead = stats([run["spectrum"] / (steps * p["hvp_pass_seconds"]) for run, p in zip(runs, peers)])
    save = stats([s["extrapolated_seconds"] for s in saves])
    sweep_ratio = stats([s["extrapolated_seconds"] / run["sweep"] for s, run in zip(saves, runs)])
    checks = accuracy_checks(result)
    checks["repeats_give_the_same_limits"] = all(_limits(x) == _limits(result) for x in results)

    record = {
        "benchmark": "pipeline",
        "environment": env,
        "settings": {"model": args.model, "data": data.name, "n_train": len(data.train), "n_test": len(data.test),
                     "epochs": tr.config.epochs, "repeats": args.repeats, "quick": args.quick, "seed": args.seed,
                     "cli_options": cli_args, "config": config.to_dict()},
        "model": result.model,
        "train_seconds": t_train,
        "stage_seconds": stage_stats,
        "cost": result.cost,
        "hvp_path": peers[0]["hvp_path"],
        "pipeline_hvp_path": result.spectrum.hvp_path,
        "operator_peers": {"hvp_pass_seconds": hvp, "hvp_pass_first_seconds": first, "gradient_seconds": grad,
                           "hvp_pass_over_gradient": ratio, "probes": peers[0]["probes"],
                           "spectrum_over_steps_times_hvp_pass": overhead},
        "per_level_checkpoint_peer": {"extrapolated_seconds": save, "over_in_memory_sweep": sweep_ratio,
                                      "bytes_per_level": saves[0]["bytes_per_level"], "levels": n_grid},
        "limits": _limits(result),
        "used": result.config.get("used"),
        "checks": checks,
    }

    print(f"pipeline benchmark: {result.model['class']} on {data.name} ({len(data.train)} train), "
          f"N = {result.model['n_prunable']}, device {device}, {threads.threads} thread(s) ({threads.source}), "
          f"{args.repeats} interleaved repeat(s), load {env.get('loadavg_1min_start', float('nan')):.1f} -> "
          f"{env.get('loadavg_1min_end', float('nan')):.1f} (a shared machine: read ratios, not seconds)")
    print(f"training: {t_train:.1f} s ({tr.config.epochs} epochs, once)")
    print(f"{'stage':12s} {'seconds: median [min, max]':>30s} {'share':>7s}  cost")
    total = stage_stats["total"]["median"]
    for name, s in stage_stats.items():
        if name == "total":
            continue
        c = result.cost.get(name, {})
        cost = ", ".join(f"{v} {k}" for k, v in c.items() if v)
        print(f"{name:12s} {fmt(s):>30s} {s['median'] / total:7.1%}  {cost}")
    print(f"{'pipeline':12s} {fmt(stage_stats['total']):>30s}")
    print(f"HVP path {record['pipeline_hvp_path']} (peers on the same operator: {record['hvp_path']}): one pass of "
          f"{peers[0]['probes']} probes {fmt(hvp, 1e3, '.1f')} ms (first call {fmt(first, 1e3, '.1f')} ms), one "
          f"gradient {fmt(grad, 1e3, '.1f')} ms; HVP pass / gradient {fmt(ratio)}")
    print(f"Lanczos overhead: spectrum stage / ({steps} steps x one HVP pass) = {fmt(overhead)}")
    print(f"authors' per-level checkpoints: {fmt(save)} s for {n_grid} levels, "
          f"{saves[0]['bytes_per_level'] * n_grid / 1e6:.1f} MB; / in-memory sweep = {fmt(sweep_ratio)}")
    lim = record["limits"]
    print(f"kept fractions: fundamental predicted {lim['fundamental']['predicted']:.4f}, measured "
          f"{lim['fundamental']['measured']}; magnitude predicted {lim['magnitude']['predicted']:.4f}, measured "
          f"{lim['magnitude']['measured']}" + ("" if lim["oracle"] is None else f"; oracle {lim['oracle']:.4f}"))
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
