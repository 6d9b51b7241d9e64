"""``prunelimit limit``: predicted vs actual pruning limit of a network, as a table, a JSON record and plots.

Default: the small MLP (64→32→10, N = 2368 prunable weights) on scikit-learn's digits, trained with ℓ1
regularisation (:data:`nets.limit.DIGITS_TRAIN_DEFAULTS`), then :func:`nets.limit.estimate_pruning_limit`:
ε from the per-batch loss spread, the SLQ spectrum of the prunable-weight Hessian, the predicted limit by
our free-probability threshold and by the authors' flat formula, the actual limit from a global magnitude
pruning sweep (kept fractions 0, 0.001, …, 1) and, on this small model, the exact quadratic-model threshold
from the dense Hessian.

Outputs in ``--out DIR`` (all written atomically): ``result.json`` (the full record), ``limit.png`` (training
loss and accuracies vs kept fraction with the predicted limits, bands and actual limits as vertical lines,
like the paper's figure), ``spectrum.png`` (the Hessian spectral density and cumulative mass) and, when the
model is trained here, ``train/checkpoint.pt`` (re-running the same command resumes an interrupted training).
``--checkpoint PATH`` starts from saved weights instead (``nets.train`` checkpoint or a ``state_dict``).

Naming: *kept fraction* ``ρ = k/N`` (the final paper's "pruning ratio"), *removed fraction* ``1 − ρ``
(what the authors' code prints). The table shows both.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from nets.cli._shared import add_threads_argument, fraction, positive, run_with_threads
from nets.io import atomic_open

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "run", "add_model_arguments", "prepare_model", "plot_limit", "plot_spectrum",
           "format_table", "StageBars"]

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
    add_model_arguments(parser, out_default="prunelimit-limit")
    p = parser.add_argument_group("pruning limit")
    p.add_argument("--eps", type=positive(float), default=None,
                   help="loss tolerance (default: std of the per-batch training loss of the dense model, batch 128)")
    p.add_argument("--method", choices=("free", "flat"), default="free",
                   help="primary prediction: free (ours, default) or flat (the authors' formula); both are reported")
    p.add_argument("--accuracy-tolerance", type=fraction, default=0.01,
                   help="accuracy criterion: test accuracy >= dense - this (default 0.01)")
    p.add_argument("--sweep-step", type=fraction, default=0.001,
                   help="grid step of the kept fraction in the magnitude-pruning sweep (default 0.001, the authors')")
    p.add_argument("--exact", choices=("auto", "on", "off"), default="auto",
                   help="dense-Hessian exact quadratic threshold: auto (N <= 5000), on, off")


# ---------------------------------------------------------------------------------------------- helpers
class StageBars:
    """``progress(stage, done, total)`` callback drawing one tqdm bar per stage (CLI only)."""

    LABELS = {"eps": "dense loss and eps", "spectrum": "SLQ (Lanczos steps)", "limit": "predicted limits",
              "sweep": "pruning sweep (levels)", "exact_quadratic": "dense Hessian (columns)"}

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


def _atomic_savefig(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    return path


def prepare_model(args: argparse.Namespace, bars: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """Load the data and either load ``--checkpoint`` or train the model (resumable under ``--out/train``).

    Returns ``(model, data, info)`` with ``info`` holding the training summary and its wall time.
    """
    from nets.data import load_dataset
    from nets.limit import default_train_config, load_state_dict, train_default_model
    from nets.models import build_model
    from nets.train import tqdm_progress

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


def format_table(result: Any, train_info: dict[str, Any] | None = None) -> str:
    """The printed report: dense model, ε, spectrum, the limits table and the stage times."""
    r = result
    lines = []
    m = r.model
    lines.append(f"prunelimit limit: {m['class']} on {m['data']} (N = {m['n_prunable']} prunable weights, "
                 f"D = {m['n_parameters']} parameters; {m['n_train']} train / {m['n_test']} test samples)")
    d = r.dense
    lines.append(f"dense model: train loss {d['train_loss']:.4f}, train acc {d['train_acc']:.4f}, "
                 f"test loss {d['test_loss']:.4f}, test acc {d['test_acc']:.4f}")
    e = r.eps
    src = (f"std of {e.n_batches} per-batch training losses, batch {e.batch_size}" if e.source == "batch-loss-std"
           else "given")
    lines.append(f"eps = {e.eps:.4g} ({src}); loss criterion L(w*) + eps = {d['train_loss'] + e.eps:.4f}")
    s = r.spectrum_summary
    lines.append(f"Hessian spectrum (prunable weights; SLQ {s.n_probes} probes x {s.steps} steps): Ritz values "
                 f"[{s.ritz_min:.4g}, {s.ritz_max:.4g}], negative mass {s.negative_mass:.3f} ± "
                 f"{_fmt(s.negative_mass_stderr, '.3f')} (quadrature bounds [{s.negative_mass_bounds[0]:.3f}, "
                 f"{s.negative_mass_bounds[1]:.3f}]), trace {s.trace:.4g} ± {_fmt(s.trace_stderr, '.2g')}")
    lines.append("")
    head = f"{'':44s} {'kept ρ':>8s} {'removed':>8s}  {'band (kept)':17s} {'gap vs loss':>11s} {'gap vs acc':>10s}"
    lines.append(head)
    lines.append("-" * len(head))
    gaps = r.gaps()
    labels = {"free": "predicted, free (ours)", "flat": "predicted, flat (authors' formula)"}
    for meth in ("free", "flat"):
        lim = r.predicted[meth]
        tag = labels[meth] + (" *" if meth == r.method else "")
        band = f"[{lim.kept_fraction_lower:.4f}, {lim.kept_fraction_upper:.4f}]"
        lines.append(f"{tag:44s} {lim.kept_fraction:8.4f} {lim.removed_fraction:8.4f}  {band:17s} "
                     f"{_fmt(gaps[meth]['train_loss'], '+.4f'):>11s} {_fmt(gaps[meth]['test_accuracy'], '+.4f'):>10s}")
    a = r.actual
    rows = [
        ("actual, train loss <= L(w*) + eps", a["train_loss"].kept_fraction),
        (f"actual, test acc >= dense - {r.settings['accuracy_tolerance']:g}", a["test_accuracy"].kept_fraction),
        ("actual, test acc > dense (authors', any)", a["authors_strict_accuracy"].kept_fraction_any),
    ]
    q = r.quadratic
    if q is not None:
        surrogate = {"abs": " (|H|)", "clip": " (H+)", "none": ""}[q.psd_surrogate]
        rows.append((f"exact quadratic threshold{surrogate}, compensated", q.kept_fraction_compensated))
        rows.append(("quadratic model, uncompensated (LOMP)", q.kept_fraction_uncompensated))
        for meth in ("free", "flat"):
            rows.append((f"{meth} from exact eigenvalues", q.predicted_exact_spectrum[meth].kept_fraction))
    for label, val in rows:
        removed = None if val is None else 1.0 - val
        note = "" if val is not None else "  (no level qualifies)"
        lines.append(f"{label:44s} {_fmt(val):>8s} {_fmt(removed):>8s}{note}")
    lines.append("")
    lines.append("* primary method; kept ρ = k/N (the paper's 'pruning ratio'), removed = 1 − ρ (the authors' code); "
                 "gap = predicted − actual kept fraction; bands are ours (MATH.md §2)")
    if q is not None:
        lines.append(f"dense Hessian: λ ∈ [{q.eigenvalue_min:.4g}, {q.eigenvalue_max:.4g}], negative fraction "
                     f"{q.negative_fraction:.3f}, ‖∇L(w*)‖ = {q.gradient_norm:.3g}; SLQ vs exact W1 = "
                     f"{q.slq_wasserstein1:.3g}")
    times = dict(r.timings)
    if train_info is not None and "train" not in times:
        times = {"train" if train_info.get("source") == "trained" else "load": train_info["seconds"], **times}
    total = sum(times.values())
    lines.append("stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()) + f"; total {total:.1f}s")
    hv = r.cost.get("spectrum", {}).get("hvps", 0)
    sp = r.timings.get("spectrum", float("nan"))
    lines.append(f"cost: spectrum {hv} HVPs ({hv / sp:.1f} HVP/s), sweep {r.cost['sweep']['forward_passes']} dataset "
                 f"evaluations" + (f", dense Hessian {q.hvps} HVPs + 1 gradient" if q is not None else ""))
    return "\n".join(lines)


def plot_limit(result: Any, path: Path) -> Path:
    """Loss and accuracy vs kept fraction with predicted/actual limits as vertical lines (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    r = result
    x = np.asarray(r.sweep["kept_fraction"])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True)
    ax1.plot(x, r.sweep["train_loss"], color="C0", lw=1.5, label="training loss (pruned, no fine-tuning)")
    ax1.plot(x, r.sweep["test_loss"], color="C0", lw=1, alpha=0.5, label="test loss")
    ax1.axhline(r.dense["train_loss"] + r.eps.eps, color="k", lw=0.8, ls=":", label="L(w*) + ε")
    if r.quadratic is not None:
        ax1.plot(x, np.maximum(r.quadratic.taylor_loss, 1e-12), color="C5", lw=1, ls="--",
                 label="2nd-order Taylor model of the training loss")
    ax1.set_yscale("log")
    ax1.set_ylabel("cross-entropy")
    ax2.plot(x, r.sweep["test_acc"], color="C2", lw=1.5, label="test accuracy")
    ax2.plot(x, r.sweep["train_acc"], color="C2", lw=1, alpha=0.5, label="training accuracy")
    ax2.axhline(r.dense["test_acc"] - r.settings["accuracy_tolerance"], color="k", lw=0.8, ls=":",
                label=f"dense test acc − {r.settings['accuracy_tolerance']:g}")
    ax2.set_ylabel("accuracy")
    ax2.set_xlabel("kept fraction ρ = k/N   (removed fraction = 1 − ρ)")
    free, flat = r.predicted["free"], r.predicted["flat"]
    for i, ax in enumerate((ax1, ax2)):
        lab = (lambda text: text) if i == 0 else (lambda text: None)  # limit lines labelled once (top legend)
        ax.axvspan(free.kept_fraction_lower, free.kept_fraction_upper, color="C3", alpha=0.10, lw=0)
        ax.axvline(free.kept_fraction, color="C3", lw=1.8, label=lab(f"predicted, free (ours): {free.kept_fraction:.3f}"))
        ax.axvline(flat.kept_fraction, color="C1", lw=1.5, ls="--", label=lab(f"predicted, flat (authors'): {flat.kept_fraction:.3f}"))
        al = r.actual["train_loss"].kept_fraction
        if al is not None:
            ax.axvline(al, color="C0", lw=1.2, ls=":", label=lab(f"actual (loss criterion): {al:.3f}"))
        aa = r.actual["test_accuracy"].kept_fraction
        if aa is not None:
            ax.axvline(aa, color="C2", lw=1.2, ls=":", label=lab(f"actual (accuracy criterion): {aa:.3f}"))
        if r.quadratic is not None:
            qc = r.quadratic.kept_fraction_compensated
            sur = {"abs": " (|H|)", "clip": " (H+)", "none": ""}[r.quadratic.psd_surrogate]
            ax.axvline(qc, color="C4", lw=1.2, ls="-.", label=lab(f"exact quadratic threshold{sur}: {qc:.3f}"))
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7, loc="upper right")
    ax2.legend(fontsize=7, loc="lower right")
    ax1.set_xlim(0.0, 1.0)
    sec = ax1.secondary_xaxis("top", functions=(lambda v: 1.0 - v, lambda v: 1.0 - v))
    sec.set_xlabel("removed fraction 1 − ρ")
    ax1.set_title(f"{r.model['class']} on {r.model['data']}: LOMP sweep vs predicted limit "
                  f"(shaded: free band, ours)", fontsize=9)
    fig.tight_layout()
    try:
        return _atomic_savefig(fig, path)
    finally:
        plt.close(fig)


def plot_spectrum(spectrum: Any, path: Path, *, exact_eigenvalues: Any = None, title: str = "") -> Path:
    """Smoothed spectral density (log scale) and cumulative spectral mass of a Spectrum (atomic PNG).

    The Gaussian kernel's standard deviation is PyHessian's default smoothing expressed in eigenvalue units
    (:meth:`numerics.slq.Spectrum.pyhessian_sigma`, variance 1e-5 × range); the grid resolves it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    sigma = spectrum.pyhessian_sigma()
    spectrum.plot(ax1, sigma=sigma, color="C0", label=f"SLQ ({spectrum.n_probes} probes)")
    ax1.set_yscale("log")
    ax1.set_ylim(bottom=1e-5)
    spectrum.plot(ax2, color="C0", label="SLQ")
    if exact_eigenvalues is not None:
        lam = np.sort(np.asarray(exact_eigenvalues, dtype=float))
        ax2.step(lam, np.arange(1, lam.size + 1) / lam.size, where="post", color="k", lw=0.8, ls="--",
                 label="exact (dense eigvalsh)")
    x, _ = spectrum.atoms()
    # symlog resolves the bulk near 0; a power-of-ten threshold puts the ±linthresh ticks one decade from 0
    # (a threshold between decades squeezed the ±10^k labels onto the 0 label)
    scale = max(1e-3 * float(np.max(np.abs(x))), 1e-300)
    ax2.set_xscale("symlog", linthresh=10.0 ** np.floor(np.log10(scale)))
    for ax in (ax1, ax2):
        ax.axvline(0.0, color="grey", lw=0.6)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        return _atomic_savefig(fig, path)
    finally:
        plt.close(fig)


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
    import torch

    from nets.limit import default_kept_fractions, estimate_pruning_limit

    prepared = prepare_or_report(args)
    if prepared is None:
        return 2
    model, data, train_info = prepared
    bars = StageBars(enabled=not args.no_progress)
    try:
        result = estimate_pruning_limit(
            model, data, generator=torch.Generator().manual_seed(args.seed), eps=args.eps, method=args.method,
            slq_steps=args.slq_steps, slq_probes=args.slq_probes, deflate=args.deflate,
            hessian_batch_size=args.hessian_batch_size, hessian_samples=args.hessian_samples,
            kept_fractions=default_kept_fractions(args.sweep_step), accuracy_tolerance=args.accuracy_tolerance,
            exact_quadratic={"auto": None, "on": True, "off": False}[args.exact], device=args.device,
            progress=bars)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    result.settings["train"] = train_info
    result.settings["command"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if train_info.get("source") == "trained":
        result.timings = {"train": train_info["seconds"], **result.timings}
    result.save_json(args.out / RESULT_NAME)
    plot_limit(result, args.out / LIMIT_PNG)
    exact = None if result.quadratic is None else result.quadratic.eigenvalues
    plot_spectrum(result.spectrum, args.out / SPECTRUM_PNG, exact_eigenvalues=exact,
                  title=f"Hessian spectrum of the prunable weights ({result.model['class']} on {result.model['data']})")
    print(format_table(result, train_info))
    print(f"wrote {args.out / RESULT_NAME}, {args.out / LIMIT_PNG}, {args.out / SPECTRUM_PNG}")
    return 0
