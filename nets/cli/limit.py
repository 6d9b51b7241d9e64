"""``prunelimit limit``: both pruning limits of a network — predicted and measured — as a table, JSON and plots.

Default: the small MLP (64→32→10, N = 2368 prunable weights) on scikit-learn's digits, trained with ℓ1
regularisation (:data:`nets.train.DIGITS_TRAIN_DEFAULTS`), then :func:`nets.limit.estimate_pruning_limit`:
ε from the per-batch loss spread; the SLQ spectrum of the prunable-weight Hessian; the *fundamental* limit
predicted from the spectrum (flat/free) and measured by compensated pruning; the *magnitude-pruning* limit
predicted by the Taylor/Haar model and measured by the LOMP sweep; on this small model the dense quadratic
oracle.

Outputs in ``--out DIR`` (all written atomically): ``result.json`` (the full record with provenance),
``limit.png`` (both limits' loss curves against the kept fraction with predictions and measurements as vertical
lines, :func:`nets.plots.plot_limit`), ``spectrum.png`` and, when the model is trained here,
``train/checkpoint.pt`` (re-running the same command resumes an interrupted training). ``--checkpoint PATH``
starts from saved weights instead (``nets.train`` checkpoint or a ``state_dict``).

Naming: *kept fraction* ``ρ = k/N`` (the final paper's "pruning ratio"), *removed fraction* ``1 − ρ``
(what the authors' code prints).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from nets.cli._shared import add_threads_argument, fraction, nonneg_float, nonneg_int, positive, run_with_threads

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "run", "add_model_arguments", "prepare_model", "format_report", "StageBars",
           "limit_config"]

RESULT_NAME = "result.json"
LIMIT_PNG = "limit.png"
SPECTRUM_PNG = "spectrum.png"


# ---------------------------------------------------------------------------------------------- arguments


def add_model_arguments(parser: argparse.ArgumentParser, *, out_default: str) -> None:
    """Options shared by ``prunelimit limit`` and ``prunelimit spectrum``: model, data, training, SLQ, device."""
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", default="mlp", help="model name for nets.models.build_model (default mlp)")
    g.add_argument("--hidden", type=positive(int), nargs="+", default=None,
                   help="hidden widths of --model mlp (default 32: 2368 prunable weights)")
    g.add_argument("--data", default="digits",
                   help="dataset name: digits (default), teacher-student, cifar10, cifar100, tinyimagenet")
    g.add_argument("--data-root", type=Path, default=None, help="local folder of cifar10/cifar100/tinyimagenet")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="start from these weights (nets.train checkpoint.pt or a torch.save'd state_dict; read "
                        "with weights_only=True) instead of training")
    g.add_argument("--epochs", type=positive(int), default=None,
                   help="training epochs when no --checkpoint (default: 60 for the digits models, 200 for the "
                        "paper's models)")
    g.add_argument("--lr", type=positive(float), default=None, help="training learning rate (default: see --epochs)")
    g.add_argument("--l1", type=float, default=None,
                   help="l1 coefficient lambda (default 1e-3 on digits; the paper's value for its models)")
    s = parser.add_argument_group("Hessian spectrum (SLQ)")
    s.add_argument("--slq-steps", type=positive(int), default=128, help="Lanczos steps per probe (default 128, the authors')")
    s.add_argument("--slq-probes", type=positive(int), default=4,
                   help="SLQ probes (default 4; the authors used 1, which leaves the standard error unknown)")
    s.add_argument("--deflate", type=positive(int), default=None, help="deflate the top-k eigenpairs before SLQ")
    s.add_argument("--hessian-batch-size", type=positive(int), default=1024,
                   help="batch size of the Hessian data (the full un-augmented training set; default 1024)")
    s.add_argument("--hessian-samples", type=positive(int), default=None,
                   help="use a fixed random subset of this many training samples for the Hessian (default: all)")
    r = parser.add_argument_group("run")
    r.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    r.add_argument("--seed", type=int, default=0, help="seed of the initialisation, data order and SLQ probes (default 0)")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path(out_default), help=f"output directory (default {out_default})")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nets.limit import DEFAULT_FUNDAMENTAL_METHOD, DEFAULT_MAGNITUDE_METHOD

    add_model_arguments(parser, out_default="prunelimit-limit")
    p = parser.add_argument_group("pruning limits")
    p.add_argument("--eps", type=positive(float), default=None,
                   help="loss tolerance (default: std of the per-batch training loss of the dense model, batch 128)")
    p.add_argument("--method", choices=("flat", "free"), default=DEFAULT_FUNDAMENTAL_METHOD,
                   help=f"primary prediction of the fundamental limit: flat (the authors' formula) or free (ours); both "
                        f"are reported (default {DEFAULT_FUNDAMENTAL_METHOD}, chosen on trained networks)")
    p.add_argument("--magnitude-method", choices=("taylor", "haar"), default=DEFAULT_MAGNITUDE_METHOD,
                   help=f"primary prediction of the magnitude-pruning limit: taylor (real Hessian and gradient, one HVP "
                        f"per level) or haar (spectrum only) (default {DEFAULT_MAGNITUDE_METHOD})")
    p.add_argument("--accuracy-tolerance", type=fraction, default=0.01,
                   help="accuracy criterion: test accuracy >= dense - this (default 0.01)")
    p.add_argument("--sweep-step", type=fraction, default=0.01,
                   help="kept-fraction grid step of the magnitude-pruning sweep's curves; each limit is refined by "
                        "bisection to one weight (default 0.01; at least 1e-4)")
    p.add_argument("--compensation-steps", type=nonneg_int, default=50,
                   help="masked L-BFGS loss-and-gradient evaluations per level of the compensated (fundamental) "
                        "measurement, after the CG quadratic step (default 50; 0: the quadratic step only)")
    p.add_argument("--no-compensated", action="store_true",
                   help="skip the measured fundamental limit (compensated pruning: a CG solve per searched level)")
    p.add_argument("--objective-l1", type=nonneg_float, default=0.0,
                   help="add lambda*||w||_1 over the prunable weights to the loss of every stage (default 0: the data "
                        "loss alone); pass the training's l1 to measure against the objective w* minimises")
    p.add_argument("--exact", choices=("auto", "on", "off"), default="auto",
                   help="dense-Hessian quadratic oracle: auto (N <= 2500), on, off")


# ---------------------------------------------------------------------------------------------- helpers
class StageBars:
    """``progress(stage, done, total)`` callback drawing one tqdm bar per stage (CLI only)."""

    LABELS = {"tolerance": "dense loss and eps", "spectrum": "SLQ (Lanczos steps)", "predict": "predicted limits",
              "sweep": "magnitude-pruning sweep (levels)", "compensated": "compensated pruning (levels)",
              "oracle": "dense Hessian (columns)"}

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage), leave=False,
                                           file=sys.stderr)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def prepare_model(args: argparse.Namespace, bars: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """Load the data and either load ``--checkpoint`` or train the model (resumable under ``--out/train``).

    Returns ``(model, data, info)`` with ``info`` holding the training summary and its wall time.
    """
    from nets.data import load_dataset
    from nets.models import build_model
    from nets.train import default_train_config, load_state_dict, tqdm_progress, train_default_model

    if args.hidden is not None and args.model.lower() != "mlp":
        raise ValueError(f"--hidden applies to --model mlp only, got --model {args.model}")
    options: dict[str, Any] = {}
    if args.data.lower() == "digits" and args.model.lower() == "cnn":
        options["as_image"] = True
    data = load_dataset(args.data, args.data_root, seed=args.seed, **options)
    kwargs = {"hidden": tuple(args.hidden)} if args.hidden is not None else {}
    info: dict[str, Any] = {"model": args.model, "data": data.name}
    t0 = time.perf_counter()
    if args.checkpoint is not None:
        model = build_model(args.model, data.num_classes, data.input_shape, **kwargs)
        load_state_dict(model, args.checkpoint)
        model.to(args.device)
        info.update({"source": "checkpoint", "checkpoint": str(args.checkpoint)})
    else:
        progress = None
        if bars and not args.no_progress:
            total = default_train_config(args.model, epochs=args.epochs).epochs
            progress = tqdm_progress(total, desc="training", leave=False, file=sys.stderr)
        model, res = train_default_model(data, model_name=args.model, epochs=args.epochs, lr=args.lr, l1=args.l1,
                                         seed=args.seed, device=args.device, checkpoint_dir=args.out / "train",
                                         resume=True, progress=progress, model_kwargs=kwargs)
        info.update({"source": "trained", "config": res.config.to_dict(), "final": res.final,
                     "resumed_from": res.resumed_from, "checkpoint": str(res.checkpoint_path)})
    info["seconds"] = time.perf_counter() - t0
    return model, data, info


# ---------------------------------------------------------------------------------------------- rendering
def _fmt(x: Any, spec: str = ".4f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def format_report(result: Any, train_info: dict[str, Any] | None = None) -> str:
    """The printed report: the model, the dense losses and ε, the spectrum, the limits table, times and costs."""
    r = result
    m = r.model
    lines = [f"prunelimit limit: {m['class']} on {m['data']} (N = {m['n_prunable']} prunable weights, "
             f"D = {m['n_parameters']} parameters; {m['n_train']} train / {m['n_test']} test samples)"]
    t = r.tolerance
    acc = "" if t.train.accuracy is None else f", train acc {t.train.accuracy:.4f}"
    test = "" if t.test is None else (f", test loss {t.test.loss:.4f}"
                                      + ("" if t.test.accuracy is None else f", test acc {t.test.accuracy:.4f}"))
    lines.append(f"dense model: train loss {t.train.loss:.4f}{acc}{test}; the limits' loss L = {m['loss']}"
                 + ("" if t.penalty else " (no l1 term)"))
    src = (f"std of {t.n_batches} per-batch training losses, batch {t.batch_size}" if t.source == "batch-loss-std"
           else "given")
    lines.append(f"eps = {t.eps:.4g} ({src}); loss criterion L(w*) + eps = {t.threshold:.4f}"
                 + ("".join(f"; {n}" for n in t.notes)))
    s = r.spectrum_summary
    sp = r.spectrum
    lines.append(f"Hessian spectrum (prunable weights; SLQ {s.n_probes} probes x {sp.steps} steps, "
                 f"{m['hessian_samples']} samples, HVP path: {sp.hvp_path}): Ritz values [{s.ritz_min:.4g}, "
                 f"{s.ritz_max:.4g}], negative mass {s.negative_mass:.3f} ± {_fmt(s.negative_mass_stderr, '.3f')} "
                 f"(quadrature bounds [{s.negative_mass_bounds[0]:.3f}, {s.negative_mass_bounds[1]:.3f}]), trace "
                 f"{s.trace:.4g} ± {_fmt(s.trace_stderr, '.2g')}")
    lines.append("")
    lines.append(r.summary())
    lines.append("")
    lines.append("kept fraction ρ = k/N (the paper's 'pruning ratio'); removed = 1 − ρ (the authors' code); gap = "
                 "predicted − measured; bands cover the SLQ and kinematic error only (docs/guide.md §4)")
    q = r.oracle
    if q is not None:
        lines.append(f"dense Hessian: λ ∈ [{q.eigenvalue_min:.4g}, {q.eigenvalue_max:.4g}], negative fraction "
                     f"{q.negative_fraction:.3f}, ‖∇L(w*)‖ = {q.gradient_norm:.3g}; SLQ vs exact W1 = "
                     f"{q.slq_wasserstein1:.3g}")
    times = dict(r.timings)
    if train_info is not None:
        times = {"train" if train_info.get("source") == "trained" else "load": train_info["seconds"], **times}
    lines.append("stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
                 + f"; total {sum(times.values()):.1f}s")
    c = r.cost
    parts = [f"spectrum {c['spectrum'].get('hvps', 0)} HVPs"]
    if "predict" in c:
        parts.append(f"Taylor prediction {c['predict'].get('hvps', 0)} HVPs")
    parts.append(f"LOMP sweep {c['sweep']['forward_passes']} data passes ({c['sweep']['levels']} levels)")
    if "compensated" in c:
        cc = c["compensated"]
        parts.append(f"compensated search {cc['hvps']} HVPs + {cc['gradients']} gradients + {cc['forward_passes']} "
                     f"data passes ({cc['levels']} levels, {r.timings.get('compensated', 0.0):.1f}s)")
    if "oracle" in c:
        parts.append(f"dense Hessian {c['oracle']['hvps']} HVPs")
    lines.append("cost: " + "; ".join(parts))
    return "\n".join(lines)


def limit_config(args: argparse.Namespace) -> Any:
    """The :class:`nets.limit.LimitConfig` of the command-line options (each validated by its stage config)."""
    from nets.compensate import CompensationConfig
    from nets.limit import (
        LimitConfig,
        MeasureConfig,
        OracleConfig,
        PredictionConfig,
        SpectrumConfig,
        ToleranceConfig,
    )

    return LimitConfig(
        tolerance=ToleranceConfig(eps=getattr(args, "eps", None)),
        spectrum=SpectrumConfig(steps=args.slq_steps, n_probes=args.slq_probes, deflate=args.deflate,
                                batch_size=args.hessian_batch_size, samples=args.hessian_samples),
        prediction=PredictionConfig(method=getattr(args, "method", "flat"),
                                    magnitude_method=getattr(args, "magnitude_method", "taylor")),
        measurement=MeasureConfig(grid_step=getattr(args, "sweep_step", 0.01),
                                  accuracy_tolerance=getattr(args, "accuracy_tolerance", 0.01),
                                  fundamental=not getattr(args, "no_compensated", False),
                                  compensation=CompensationConfig(steps=getattr(args, "compensation_steps", 50))),
        oracle=OracleConfig(enabled={"auto": None, "on": True, "off": False}[getattr(args, "exact", "auto")]),
    )


# ---------------------------------------------------------------------------------------------- run
def prepare_or_report(args: argparse.Namespace) -> tuple[Any, Any, Any] | None:
    """Check the data options, create ``--out`` and build/train/load the model; on bad input print the error
    and return None (the caller exits with status 2)."""
    if args.data_root is not None and args.data.lower() in ("digits", "teacher-student"):
        print(f"error: --data-root is not used by the built-in dataset {args.data!r}", file=sys.stderr)
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return prepare_model(args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    from nets.limit import estimate_pruning_limit
    from nets.plots import plot_limit, plot_spectrum

    try:
        config = limit_config(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepared = prepare_or_report(args)
    if prepared is None:
        return 2
    model, data, train_info = prepared
    bars = StageBars(enabled=not args.no_progress)
    try:
        result = estimate_pruning_limit(model, data, l1=args.objective_l1, config=config, seed=args.seed,
                                        device=args.device, progress=bars)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    command = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result.save(args.out / RESULT_NAME, extra={"train": train_info, "command": command})
    plot_limit(result, args.out / LIMIT_PNG)
    exact = None if result.oracle is None else result.oracle.eigenvalues
    plot_spectrum(result.spectrum.spectrum, args.out / SPECTRUM_PNG, exact_eigenvalues=exact,
                  title=f"Hessian spectrum of the prunable weights ({result.model['class']} on {result.model['data']})")
    print(format_report(result, train_info))
    print(f"wrote {args.out / RESULT_NAME}, {args.out / LIMIT_PNG}, {args.out / SPECTRUM_PNG}")
    return 0
