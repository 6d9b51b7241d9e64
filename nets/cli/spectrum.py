"""``prunelimit spectrum``: the Hessian spectrum (SLQ) of a network's prunable weights, alone.

Trains the model (the same defaults as ``prunelimit limit``: the small MLP on digits with ℓ1 training,
resumable under ``--out/train``) or loads ``--checkpoint``, runs stochastic Lanczos quadrature on the Hessian
of the mean training cross-entropy with respect to the prunable (Linear/Conv) weights, over the fixed,
un-augmented training set in eval mode (:func:`nets.limit.estimate_spectrum`), and writes to ``--out``
(atomically): ``spectrum.json`` and ``spectrum.npz`` (the quadrature rules, :func:`nets.io.save_spectrum`;
reload with :func:`nets.io.load_spectrum`), ``spectrum_summary.json`` and ``spectrum.png`` (smoothed
density on a log scale and cumulative spectral mass). Prints the extreme Ritz values, the negative mass ±
standard error and the trace estimate ± standard error, with a warning for settings below what these numbers
need (too few steps, probes or Hessian samples). The same preflight, resuming and torchrun behaviour as
``prunelimit limit`` (the Hessian data is split across the processes; rank 0 writes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nets.cli._progress import StageBars, stage_line
from nets.cli._runner import context
from nets.cli.limit import add_model_arguments, limit_config, prepare

__all__ = ["add_arguments", "run"]

OUTPUTS = ("spectrum.json", "spectrum.npz", "spectrum_summary.json", "spectrum.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, out_default="prunelimit-spectrum")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from nets.io import atomic_write_json, jsonable, provenance, save_spectrum
    from nets.limit import OracleConfig, estimate_spectrum, hessian_operator, settings_warnings, summarize_spectrum
    from nets.limit.data import prepare_data
    from nets.limit.pipeline import describe_cost
    from nets.limit.spectrum import hessian_batches, hessian_samples
    from nets.plots import plot_spectrum

    ctx = context()
    full = limit_config(args)
    # the memory plan of the spectrum alone: no sweep beyond one batch, no compensated search, no oracle
    full = dataclasses.replace(full, oracle=OracleConfig(enabled=False),
                               measurement=dataclasses.replace(full.measurement, fundamental=False))
    model, data, info, full = prepare(args, full, outputs=OUTPUTS)
    config = full.spectrum
    generator = torch.Generator().manual_seed(args.seed)
    p = next(iter(model.parameters()))
    bars = StageBars(enabled=ctx.progress == "bars")
    t0 = time.perf_counter()
    try:
        pdata = prepare_data(model, data, device=p.device, dtype=p.dtype)
        op = hessian_operator(model, hessian_batches(pdata, config, generator), pdata, config)
        res = estimate_spectrum(op, config, generator, bars)
    finally:
        bars.close()
    seconds = time.perf_counter() - t0
    cost = res.operator_cost or {"hvps": res.matvecs}
    stage_line("spectrum", seconds, describe_cost(cost))
    if not ctx.is_main:
        return 0
    spec = res.spectrum
    summary = summarize_spectrum(spec)
    n_h = hessian_samples(pdata, config)
    warnings = settings_warnings(steps=int(res.steps), dim=spec.dim, n_probes=spec.n_probes, hessian_samples=n_h,
                                 n_train=pdata.n_train)
    save_spectrum(spec, args.out / "spectrum.json")
    save_spectrum(spec, args.out / "spectrum.npz")
    used = {"slq_steps": int(res.steps), "slq_probes": spec.n_probes, "hessian_samples": n_h,
            "hessian_path": res.hvp_path, "world_size": ctx.world_size,
            "threads": None if ctx.threads is None else ctx.threads.to_dict()}
    record = {"format": "prunelimit.SpectrumSummary/2", "summary": summary.to_dict(),
              "run": {k: v for k, v in res.to_dict().items() if k != "spectrum"}, "cost": cost,
              "seconds": {"train" if info.get("source") == "trained" else "load": info["seconds"], "spectrum": seconds},
              "model": {"name": args.model, "data": data.name, "n_prunable": spec.dim, "class": type(model).__name__},
              "train": info, "config": config.to_dict(), "used": used,
              "warnings": [w.to_dict() for w in warnings], "provenance": provenance(p.device),
              "command": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    atomic_write_json(args.out / "spectrum_summary.json", jsonable(record), indent=1)
    plot_spectrum(spec, args.out / "spectrum.png",
                  title=f"Hessian spectrum of the prunable weights ({type(model).__name__} on {data.name})")
    s = summary
    print(f"prunelimit spectrum: {type(model).__name__} on {data.name}, N = {s.dim} prunable weights; SLQ "
          f"{s.n_probes} probes x {res.steps} steps over {n_h} samples ({cost['hvps']} HVPs, {seconds:.1f}s, "
          f"{cost['hvps'] / seconds:.1f} HVP/s; HVP path: {res.hvp_path}; {ctx.world_size} process(es))")
    print(f"extreme Ritz values: min {s.ritz_min:.6g}, max {s.ritz_max:.6g}")
    neg_se = "unknown (1 probe)" if s.negative_mass_stderr == float("inf") else f"{s.negative_mass_stderr:.4f}"
    tr_se = "unknown (1 probe)" if s.trace_stderr == float("inf") else f"{s.trace_stderr:.4g}"
    lo, hi = s.negative_mass_bounds
    print(f"negative mass: {s.negative_mass:.4f} ± {neg_se} (probe standard error); "
          f"with the quadrature error: [{lo:.4f}, {hi:.4f}]")
    print(f"trace estimate: {s.trace:.6g} ± {tr_se}  (mean eigenvalue {s.mean_eigenvalue:.4g})")
    if config.samples is not None and config.samples > pdata.n_train:
        print(f"note: --hessian-samples {config.samples} is more than the {pdata.n_train} training samples: used all")
    for note in info.get("notes", []):
        print(f"note: {note}")
    for w in warnings:
        print(f"warning [{w.code}]: {w.message}")
    print(f"wrote {args.out / 'spectrum.json'}, {args.out / 'spectrum.npz'}, {args.out / 'spectrum_summary.json'}, "
          f"{args.out / 'spectrum.png'}")
    return 0
