"""``prunelimit spectrum``: the Hessian spectrum (SLQ) of a network's prunable weights, alone.

Trains the model (the same defaults as ``prunelimit limit``: the small MLP on digits with ℓ1 training,
resumable under ``--out/train``) or loads ``--checkpoint``, runs stochastic Lanczos quadrature on the Hessian
of the mean training cross-entropy with respect to the prunable (Linear/Conv) weights, over the fixed,
un-augmented training set in eval mode (:func:`nets.limit.estimate_spectrum`), and writes to ``--out``
(atomically): ``spectrum.json`` and ``spectrum.npz`` (the quadrature rules, :func:`nets.io.save_spectrum`;
reload with :func:`nets.io.load_spectrum`), ``spectrum_summary.json`` and ``spectrum.png`` (smoothed
density on a log scale and cumulative spectral mass). Prints the extreme Ritz values, the negative mass ±
standard error and the trace estimate ± standard error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nets.cli._shared import run_with_threads
from nets.cli.limit import StageBars, add_model_arguments, limit_config, prepare_or_report

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, out_default="prunelimit-spectrum")


def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from nets.io import atomic_write_json, jsonable, provenance, save_spectrum
    from nets.limit import estimate_spectrum, hessian_operator, summarize_spectrum
    from nets.limit.data import prepare_data
    from nets.limit.spectrum import hessian_batches
    from nets.plots import plot_spectrum

    try:
        config = limit_config(args).spectrum
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepared = prepare_or_report(args)
    if prepared is None:
        return 2
    model, data, info = prepared
    generator = torch.Generator().manual_seed(args.seed)
    p = next(iter(model.parameters()))
    bars = StageBars(enabled=not args.no_progress)
    t0 = time.perf_counter()
    try:
        pdata = prepare_data(model, data, device=p.device, dtype=p.dtype)
        op = hessian_operator(model, hessian_batches(pdata, config, generator), pdata, config)
        res = estimate_spectrum(op, config, generator, bars)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    seconds = time.perf_counter() - t0
    spec = res.spectrum
    summary = summarize_spectrum(spec)
    save_spectrum(spec, args.out / "spectrum.json")
    save_spectrum(spec, args.out / "spectrum.npz")
    cost = res.operator_cost or {"hvps": res.matvecs}
    record = {"format": "prunelimit.SpectrumSummary/2", "summary": summary.to_dict(),
              "run": {k: v for k, v in res.to_dict().items() if k != "spectrum"}, "cost": cost,
              "seconds": {"train" if info.get("source") == "trained" else "load": info["seconds"], "spectrum": seconds},
              "model": {"name": args.model, "data": data.name, "n_prunable": spec.dim, "class": type(model).__name__},
              "train": info, "config": config.to_dict(), "provenance": provenance(p.device),
              "command": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    atomic_write_json(args.out / "spectrum_summary.json", jsonable(record), indent=1)
    plot_spectrum(spec, args.out / "spectrum.png",
                  title=f"Hessian spectrum of the prunable weights ({type(model).__name__} on {data.name})")
    s = summary
    print(f"prunelimit spectrum: {type(model).__name__} on {data.name}, N = {s.dim} prunable weights; SLQ "
          f"{s.n_probes} probes x {res.steps} steps ({cost['hvps']} HVPs, {seconds:.1f}s, "
          f"{cost['hvps'] / seconds:.1f} HVP/s; HVP path: {res.hvp_path})")
    print(f"extreme Ritz values: min {s.ritz_min:.6g}, max {s.ritz_max:.6g}")
    neg_se = "unknown (1 probe)" if s.negative_mass_stderr == float("inf") else f"{s.negative_mass_stderr:.4f}"
    tr_se = "unknown (1 probe)" if s.trace_stderr == float("inf") else f"{s.trace_stderr:.4g}"
    lo, hi = s.negative_mass_bounds
    print(f"negative mass: {s.negative_mass:.4f} ± {neg_se} (probe standard error); "
          f"with the quadrature error: [{lo:.4f}, {hi:.4f}]")
    print(f"trace estimate: {s.trace:.6g} ± {tr_se}  (mean eigenvalue {s.mean_eigenvalue:.4g})")
    print(f"wrote {args.out / 'spectrum.json'}, {args.out / 'spectrum.npz'}, {args.out / 'spectrum_summary.json'}, "
          f"{args.out / 'spectrum.png'}")
    return 0
