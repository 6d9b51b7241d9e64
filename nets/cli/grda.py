"""``prunelimit grda``: gRDA against SGD and against pruning, with the studies that answer its reviewers.

``prunelimit grda [options]`` (no study name) trains gRDA and SGD from the same initialisation and data order
(the directional-pruning paper's protocol; ``--target-sparsity S`` calibrates ``c`` first) and reports the
directional diagnostics beside their controls (:mod:`nets.directional`). ``prunelimit grda STUDY [options]``
runs one study of :mod:`nets.grda_study` (options go *after* the study name):

* ``calibrate``: calibration error table over datasets, schedules and target sparsities
  (:func:`nets.grda_study.calibration_study`);
* ``pretrained``: gRDA from a trained model vs LOMP, LOMP + fine-tuning and compensated pruning;
* ``stopping``: the stopping rule against the full schedule over seeds;
* ``masks``: Jaccard overlap of gRDA masks across data orders, initialisations, schedules and vs LOMP;
* ``frontier``: sparsity–accuracy points of gRDA/gRDAM variants on MLPs of several widths, beside LOMP;
* ``valley``: quadratic valleys: gRDA vs the constrained form over τ, vs OBS and magnitude pruning, under noise.

Every command writes ``<study>.json`` (the result, the arguments and :func:`nets.io.provenance`) and
``<study>.png`` into ``--out`` (default ``prunelimit-grda`` / ``prunelimit-grda-<study>``), atomically, and
prints a table. Bad input: exit status 2 and one line naming the option and the value.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from nets.cli._shared import add_threads_argument, nonneg_float, positive, run_with_threads
from nets.io import atomic_open, atomic_write_json, jsonable

__all__ = ["add_arguments", "run", "STUDIES"]

#: study name -> one-line help
STUDIES: dict[str, str] = {
    "calibrate": "calibration error of c for target sparsities over datasets and schedules",
    "pretrained": "gRDA from a pretrained model vs LOMP, LOMP + fine-tuning and compensated pruning",
    "stopping": "the stopping rule against the full schedule over seeds",
    "masks": "mask stability (Jaccard) across seeds, schedules and against LOMP",
    "frontier": "sparsity-accuracy frontier of gRDA/gRDAM variants on narrow MLPs vs LOMP",
    "valley": "quadratic valleys: gRDA vs the constrained form, OBS and magnitude pruning",
}


# ---------------------------------------------------------------------------------------------- value types
def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a float, got {s!r}") from exc


def open_fraction(s: str) -> float:
    """A float in ``(0, 1)`` (a target sparsity)."""
    v = _float(s)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {s}")
    return v


def momentum_type(s: str) -> float:
    """A float in ``[0, 1)``."""
    v = _float(s)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {s}")
    return v


def nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a int, got {s!r}") from exc
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


# ---------------------------------------------------------------------------------------------- arguments
def _add_common(p: argparse.ArgumentParser, *, out_default: str, multi_data: bool = False) -> None:
    g = p.add_argument_group("data, model and training")
    if multi_data:
        g.add_argument("--data", nargs="+", default=["digits", "teacher-student"],
                       help="datasets (default: digits teacher-student)")
    else:
        g.add_argument("--data", default="digits",
                       help="dataset: digits (default), teacher-student, cifar10, cifar100, tinyimagenet")
    g.add_argument("--data-root", type=Path, default=None, help="local folder of cifar10/cifar100/tinyimagenet")
    g.add_argument("--model", default="mlp", help="model name for nets.models.build_model (default mlp)")
    g.add_argument("--hidden", type=positive(int), nargs="+", default=None,
                   help="hidden widths of --model mlp (default 32: 2410 parameters on digits)")
    g.add_argument("--epochs", type=positive(int), default=60, help="training epochs (default 60)")
    g.add_argument("--batch-size", type=positive(int), default=32, help="mini-batch size (default 32)")
    g.add_argument("--lr", type=positive(float), default=0.1,
                   help="learning rate (default 0.1, the authors' CIFAR/ImageNet rate)")
    g.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant",
                   help="learning-rate schedule (default constant, the authors'; step: x0.1 at 2/3 of the epochs)")
    g.add_argument("--lr-drop-epoch", type=positive(int), default=None,
                   help="multiply lr by 0.1 from this epoch on (the authors' ImageNet schedule; overrides --schedule)")
    g.add_argument("--momentum", type=momentum_type, default=0.0,
                   help="momentum (gRDAM: our calibrated EMA buffer; default 0, the authors')")
    g.add_argument("--weight-decay", type=nonneg_float, default=0.0, help="coupled weight decay (default 0)")
    g.add_argument("--mu", type=positive(float), default=0.55, help="gRDA mu (default 0.55, the authors' WRN value)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="seed of the initialisation, data split and order")
    g.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    r = p.add_argument_group("run")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path(out_default), help=f"output directory (default {out_default})")
    r.add_argument("--no-progress", action="store_true", help="no progress messages")


def _add_calibration(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tolerance", type=open_fraction, default=0.01,
                   help="accept a calibration run within this of the target (default 0.01)")
    p.add_argument("--max-runs", type=positive(int), default=8, help="calibration runs after the pilot (default 8)")


def _add_run(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gRDA and diagnostics")
    g.add_argument("--c", type=nonneg_float, default=0.03,
                   help="gRDA c (default 0.03: about half of the digits MLP's weights pruned; the authors use "
                        "0.0005-0.005 on networks with 10^7 weights); ignored with --target-sparsity")
    g.add_argument("--target-sparsity", type=open_fraction, default=None,
                   help="calibrate c so that gRDA ends at this fraction of zero prunable weights (±2 pp)")
    _add_calibration(g)
    g.add_argument("--top-k", type=positive(int), nargs="+", default=[1, 10, 50, 200],
                   help="k of the projection ratio onto the top-k Hessian eigenvectors (default 1 10 50 200; "
                        "under Lanczos the largest k sets the cost)")
    g.add_argument("--hessian", choices=("auto", "dense", "lanczos"), default="auto",
                   help="dense Hessian (all eigenpairs; auto up to --dense-limit parameters) or block Lanczos (top-k)")
    g.add_argument("--dense-limit", type=positive(int), default=3000,
                   help="largest parameter count for the dense Hessian under --hessian auto (default 3000)")
    g.add_argument("--diagnostic-samples", type=positive(int), default=None,
                   help="Hessian, losses and paths on a fixed random subset of this many training samples "
                        "(default: all; set it for large datasets)")
    g.add_argument("--path-points", type=positive(int), default=21, help="points on each path (default 21)")
    g.add_argument("--bezier-steps", type=nonneg_int, default=200,
                   help="Adam steps fitting each Bézier control point (default 200; 0: linear paths only)")
    g.add_argument("--no-compensation", action="store_true", help="skip the compensated-pruning controls")
    g.add_argument("--compensation-steps", type=nonneg_int, default=100,
                   help="L-BFGS evaluations of the re-optimised compensated control (default 100; 0: skip it)")
    g.add_argument("--no-directional", action="store_true", help="skip the constrained directional-pruning control")
    g.add_argument("--no-diagnostics", action="store_true", help="train and report sparsity/accuracy only")
    g.add_argument("--stopping-window", type=positive(int), default=None,
                   help="also report where the stopping rule with this window would stop gRDA (default: 10)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, out_default="prunelimit-grda")
    _add_run(parser)
    sub = parser.add_subparsers(dest="study", metavar="STUDY", required=False,
                                help="a study instead of the default comparison: " + ", ".join(STUDIES))
    p = sub.add_parser("calibrate", help=STUDIES["calibrate"], description=STUDIES["calibrate"])
    _add_common(p, out_default="prunelimit-grda-calibrate", multi_data=True)
    p.add_argument("--targets", type=open_fraction, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95],
                   help="target sparsities (default 0.5 0.7 0.8 0.9 0.95)")
    p.add_argument("--schedules", choices=("constant", "step", "cosine"), nargs="+", default=["constant", "cosine"],
                   help="schedules (default constant cosine)")
    p.add_argument("--no-rerun", action="store_true", help="skip the rerun with another data order")
    _add_calibration(p)

    p = sub.add_parser("pretrained", help=STUDIES["pretrained"], description=STUDIES["pretrained"])
    _add_common(p, out_default="prunelimit-grda-pretrained")
    p.add_argument("--targets", type=open_fraction, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95],
                   help="target sparsities (default 0.5 0.7 0.8 0.9 0.95)")
    p.add_argument("--finetune-epochs", type=positive(int), default=40, help="gRDA epochs from the pretrained model (40)")
    p.add_argument("--finetune-lr", type=positive(float), default=0.1,
                   help="gRDA learning rate there (default 0.1, the training rate: see nets.grda_study.pretrained_study)")
    p.add_argument("--finetune-schedule", choices=("constant", "step", "cosine"), default="cosine",
                   help="gRDA schedule there (default cosine)")
    p.add_argument("--reopt-steps", type=nonneg_int, default=100,
                   help="L-BFGS evaluations of the compensated pruning's masked re-optimisation (default 100)")
    _add_calibration(p)

    p = sub.add_parser("stopping", help=STUDIES["stopping"], description=STUDIES["stopping"])
    _add_common(p, out_default="prunelimit-grda-stopping")
    p.add_argument("--c", type=nonneg_float, default=0.06, help="gRDA c (default 0.06: ~75 %% sparsity on digits)")
    p.add_argument("--seeds", type=nonneg_int, nargs="+", default=list(range(10)), help="seeds (default 0..9)")
    p.add_argument("--window", type=positive(int), default=10, help="stopping-rule window in epochs (default 10)")
    p.add_argument("--sparsity-tol", type=nonneg_float, default=0.01, help="sparsity plateau tolerance (default 0.01)")
    p.add_argument("--loss-tol", type=nonneg_float, default=0.1,
                   help="relative training-loss improvement tolerance (default 0.1)")

    p = sub.add_parser("masks", help=STUDIES["masks"], description=STUDIES["masks"])
    _add_common(p, out_default="prunelimit-grda-masks")
    p.add_argument("--target-sparsity", type=open_fraction, default=0.9, help="target sparsity (default 0.9)")
    p.add_argument("--seeds", type=nonneg_int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--schedules", choices=("constant", "step", "cosine"), nargs="+", default=["constant", "cosine"],
                   help="schedules (default constant cosine)")
    _add_calibration(p)

    p = sub.add_parser("frontier", help=STUDIES["frontier"], description=STUDIES["frontier"])
    _add_common(p, out_default="prunelimit-grda-frontier")
    from nets.grda_study import VARIANTS

    p.add_argument("--widths", type=positive(int), nargs="+", default=[16, 32, 64], help="MLP widths (16 32 64)")
    p.add_argument("--variants", choices=tuple(VARIANTS), nargs="+", default=list(VARIANTS),
                   help="optimiser variants (default: all)")
    p.add_argument("--targets", type=open_fraction, nargs="+", default=[0.5, 0.7, 0.8, 0.9],
                   help="target sparsities (default 0.5 0.7 0.8 0.9)")
    p.add_argument("--tolerance", type=open_fraction, default=0.02, help="calibration tolerance (default 0.02)")
    p.add_argument("--max-runs", type=positive(int), default=5, help="calibration runs after the pilot (default 5)")

    p = sub.add_parser("valley", help=STUDIES["valley"], description=STUDIES["valley"])
    r = p.add_argument_group("run")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path("prunelimit-grda-valley"), help="output directory")
    r.add_argument("--no-progress", action="store_true", help="no progress messages")
    p.add_argument("--seeds", type=nonneg_int, nargs="+", default=[0, 1, 2, 3], help="valley seeds (default 0..3)")
    p.add_argument("--times", type=positive(float), nargs="+", default=[20.0, 200.0],
                   help="training times t = N·gamma (default 20 200)")
    p.add_argument("--dim", type=positive(int), default=8, help="dimension d (default 8)")
    p.add_argument("--lams", type=positive(float), nargs="+", default=[0.3, 0.8],
                   help="final thresholds lambda (default 0.3 0.8)")
    p.add_argument("--gamma", type=positive(float), default=1e-3, help="step size of the deterministic runs (1e-3)")
    p.add_argument("--noise", type=nonneg_float, default=0.1, help="gradient noise sigma (default 0.1)")
    p.add_argument("--noise-gamma", type=positive(float), default=4e-3, help="step size of the noisy runs (4e-3)")
    p.add_argument("--replicates", type=positive(int), default=64, help="noisy replicates (default 64)")


# ---------------------------------------------------------------------------------------------- helpers
def _error(args: argparse.Namespace, msg: str) -> int:
    print(f"prunelimit grda{' ' + args.study if getattr(args, 'study', None) else ''}: error: {msg}", file=sys.stderr)
    return 2


def _check_common(args: argparse.Namespace) -> str | None:
    """Cross-option checks argparse cannot do; the message names the option and the value."""
    datas = args.data if isinstance(args.data, list) else [args.data]
    for d in datas:
        if args.data_root is not None and d.lower() in ("digits", "teacher-student"):
            return f"--data-root is not used by the built-in dataset --data {d}"
    if args.hidden is not None and args.model.lower() != "mlp":
        return f"--hidden applies to --model mlp only, got --model {args.model}"
    if args.lr_drop_epoch is not None and not 1 <= args.lr_drop_epoch < args.epochs:
        return f"--lr-drop-epoch must be in [1, --epochs={args.epochs}), got --lr-drop-epoch {args.lr_drop_epoch}"
    if args.schedule == "step" and args.epochs < 2 and args.lr_drop_epoch is None:
        return f"--schedule step needs --epochs >= 2, got --epochs {args.epochs}"
    return None


def _setup(args: argparse.Namespace, data: str | None = None) -> Any:
    from nets.grda_study import Setup

    hidden = tuple(args.hidden) if args.hidden is not None else ((32,) if args.model.lower() == "mlp" else None)
    return Setup(data=data or args.data, model=args.model, hidden=hidden,
                 data_root=None if args.data_root is None else str(args.data_root), seed=args.seed)


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from nets.grda_study import SCHEDULES, grda_config

    sched = (dict(schedule="multistep", milestones=(args.lr_drop_epoch,), gamma=0.1) if args.lr_drop_epoch
             else SCHEDULES[args.schedule](args.epochs))
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
              weight_decay=args.weight_decay, grda_mu=args.mu, seed=args.seed, device=args.device, **sched)
    kw.update(overrides)
    return grda_config(**kw)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.no_progress:
        return None
    t0 = time.perf_counter()
    return lambda msg: print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _write(args: argparse.Namespace, name: str, result: Any, plot: Callable[[Any, Path], None]) -> None:
    from nets.io import provenance

    out: Path = args.out
    record = {"command": "prunelimit grda" + (f" {args.study}" if getattr(args, "study", None) else ""),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
              "result": result.to_dict(), "provenance": provenance(getattr(args, "device", None))}
    atomic_write_json(out / f"{name}.json", jsonable(record), indent=1)
    plot(result, out / f"{name}.png")
    print(result.summary())
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")


def _figure(ncols: int, width: float = 4.4, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, ax[0]


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- plots
def _plot_compare(res: Any, path: Path) -> None:
    fig, ax = _figure(4 if res.diagnostics is not None else 2)
    hg, hs = res.grda["history"], res.sgd["history"]
    ep = [r["epoch"] for r in hg]
    ax[0].plot(ep, [r["sparsity"] for r in hg], label="gRDA, prunable weights")
    ax[0].plot(ep, [r["sparsity_all"] for r in hg], "--", label="gRDA, all parameters")
    if res.stopping is not None and res.stopping["stopped_epoch"]:
        ax[0].axvline(res.stopping["stopped_epoch"], color="k", ls=":", label="stopping rule")
    ax[0].set(xlabel="epoch", ylabel="sparsity (fraction zero)", ylim=(0, 1), title="sparsity")
    ax[0].legend(fontsize=8)
    ax[1].plot([r["epoch"] for r in hs], [r["test_acc"] for r in hs], label="SGD")
    ax[1].plot(ep, [r["test_acc"] for r in hg], label="gRDA")
    ax[1].set(xlabel="epoch", ylabel="test accuracy", title="accuracy")
    ax[1].legend(fontsize=8)
    d = res.diagnostics
    if d is not None:
        for name, p in d.points.items():
            line, = ax[2].plot(p.linear.t, p.linear.loss, label=f"{name} (line)")
            if p.bezier is not None:
                ax[2].plot(p.bezier.t, p.bezier.loss, ls="--", color=line.get_color())
        ax[2].set(xlabel="t (0 = SGD, 1 = point)", ylabel="training loss", yscale="log",
                  title="paths from w_SGD (solid: line, dashed: Bézier)")
        ax[2].legend(fontsize=7)
        ks = sorted(d.random_expectation)
        for name, p in d.points.items():
            ax[3].plot(ks, [p.projection_ratio[k] for k in ks], "o-", label=name)
        ax[3].plot(ks, [d.random_expectation[k] for k in ks], "k:", label="√(k/D)")
        ax[3].set(xscale="log", yscale="log", xlabel="k", ylabel="‖P_top-k δ‖/‖δ‖", title="projection ratio")
        ax[3].legend(fontsize=7)
    _save(fig, path)


def _plot_calibration(res: Any, path: Path) -> None:
    fig, ax = _figure(2)
    for key, marker, a in (("predictor_sparsity", "x", ax[0]), ("sparsity", "o", ax[0]), ("rerun_sparsity", "+", ax[1])):
        rows = [r for r in res.rows if r.get(key) is not None]
        a.scatter([r["target"] for r in rows], [r[key] for r in rows], marker=marker, label=key.replace("_", " "))
    for a in ax:
        a.plot([0, 1], [0, 1], "k-", lw=0.8)
        a.fill_between([0, 1], [-0.02, 0.98], [0.02, 1.02], color="0.85", label="±2 pp")
        a.set(xlim=(0.4, 1), ylim=(0, 1), xlabel="target sparsity", ylabel="sparsity reached")
        a.legend(fontsize=8)
    ax[0].set_title("predictor (SGD pilot) and calibrated c")
    ax[1].set_title("rerun at the calibrated c, other data order")
    _save(fig, path)


def _plot_pretrained(res: Any, path: Path) -> None:
    fig, ax = _figure(2)
    methods = ("grda", "lomp", "lomp_finetune", "compensated", "compensated_reopt")
    s = [r["sparsity"] for r in res.rows]
    for m in methods:
        ax[0].plot(s, [r[m]["test_acc"] for r in res.rows], "o-", label=m)
        ax[1].plot(s, [r[m]["train_loss"] for r in res.rows], "o-", label=m)
    ax[0].axhline(res.pretrained["test_acc"], color="k", ls=":", label="pretrained")
    ax[1].axhline(res.pretrained["train_loss"], color="k", ls=":", label="pretrained")
    ax[0].set(xlabel="sparsity (gRDA's)", ylabel="test accuracy", title="from a pretrained model")
    ax[1].set(xlabel="sparsity (gRDA's)", ylabel="training loss", yscale="log")
    for a in ax:
        a.legend(fontsize=7)
    _save(fig, path)


def _plot_stopping(res: Any, path: Path) -> None:
    fig, ax = _figure(1, width=6)
    ax[0].bar([str(r["seed"]) for r in res.rows], [r["accuracy_loss"] for r in res.rows])
    ax[0].axhline(0.005, color="r", ls=":", label="0.5 % accuracy")
    ax[0].set(xlabel="seed", ylabel="test acc (full) − test acc (stopped)",
              title=f"stopping rule: mean {res.to_dict()['mean_epochs_saved']:.1f} of {res.config['epochs']} epochs saved")
    ax[0].legend(fontsize=8)
    _save(fig, path)


def _plot_masks(res: Any, path: Path) -> None:
    fig, ax = _figure(1, width=8)
    labels, j, ch = [], [], []
    for g, pairs in res.groups.items():
        for p in pairs:
            labels.append(f"{g}: {p['a']} / {p['b']}")
            j.append(p["jaccard"])
            ch.append(p["chance"])
    y = range(len(labels))
    ax[0].barh(list(y), j, label="Jaccard")
    ax[0].scatter(ch, list(y), color="k", marker="|", s=200, label="chance")
    ax[0].set_yticks(list(y), labels, fontsize=6)
    ax[0].set(xlabel="Jaccard overlap of kept sets", xlim=(0, 1), title=f"gRDA masks at target sparsity {res.target}")
    ax[0].legend(fontsize=8)
    _save(fig, path)


def _plot_frontier(res: Any, path: Path) -> None:
    widths = sorted({p["width"] for p in res.points})
    fig, ax = _figure(len(widths))
    for a, w in zip(ax, widths):
        pts = [p for p in res.points if p["width"] == w]
        for v in sorted({p["variant"] for p in pts}):
            pv = sorted((p for p in pts if p["variant"] == v), key=lambda p: p["sparsity"])
            a.plot([p["sparsity"] for p in pv], [p["grda_test_acc"] for p in pv], "o-", label=v)
            a.plot([p["sparsity"] for p in pv], [p["lomp_same_test_acc"] for p in pv], "x:", lw=0.8)
        pl = sorted(pts, key=lambda p: p["sparsity"])
        a.plot([p["sparsity"] for p in pl], [p["lomp_l1_test_acc"] for p in pl], "k.", label="LOMP (ℓ1-trained)")
        a.set(xlabel="sparsity", ylabel="test accuracy", title=f"MLP width {w} (x: LOMP of the same run, c = 0)")
        a.legend(fontsize=6)
    _save(fig, path)


def _plot_valley(res: Any, path: Path) -> None:
    fig, ax = _figure(2)
    for a, spectrum in zip(ax, ("null", "no-gap")):
        for r in (r for r in res.rows if r["spectrum"] == spectrum):
            taus = [p["tau"] for p in r["sweep"]]
            line, = a.plot(taus, [p["relative_error"] for p in r["sweep"]], lw=0.8,
                           label=f"seed {r['seed']}, t={r['t']:g}, λ={r['lam']:g}")
            a.axvline(r["time_cut"]["tau"], color=line.get_color(), ls=":", lw=0.8)
        a.set(xscale="log", yscale="log", xlabel="τ (cut |λ| ≤ τ λ_max); dotted: 1/(λ_max t)",
              ylabel="‖w_DP(τ) − w_gRDA‖/‖w_gRDA‖", title=f"{spectrum} spectrum")
        a.legend(fontsize=6)
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- commands
def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    study = getattr(args, "study", None)
    if study != "valley":
        msg = _check_common(args)
        if msg is not None:
            return _error(args, msg)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if study is None:
            return _run_compare(args)
        return {"calibrate": _run_calibrate, "pretrained": _run_pretrained, "stopping": _run_stopping,
                "masks": _run_masks, "frontier": _run_frontier, "valley": _run_valley}[study](args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return _error(args, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _run_compare(args: argparse.Namespace) -> int:
    import torch

    from nets.directional import DiagnosticsConfig
    from nets.grda import CalibrationConfig, StoppingRule
    from nets.grda_study import compare

    diag = None if args.no_diagnostics else DiagnosticsConfig(
        top_ks=tuple(args.top_k), hessian=args.hessian, dense_limit=args.dense_limit, path_points=args.path_points,
        bezier_steps=args.bezier_steps, compensation=not args.no_compensation,
        compensation_steps=args.compensation_steps, directional=not args.no_directional,
        samples=args.diagnostic_samples)
    rule = StoppingRule(window=args.stopping_window) if args.stopping_window else StoppingRule()
    res = compare(_setup(args), _config(args, grda_c=args.c), target_sparsity=args.target_sparsity,
                  calibration=CalibrationConfig(tolerance=args.tolerance, max_runs=args.max_runs), diagnostics=diag,
                  stopping=rule, generator=torch.Generator().manual_seed(args.seed), progress=_progress(args))
    _write(args, "grda", res, _plot_compare)
    return 0


def _run_calibrate(args: argparse.Namespace) -> int:
    from nets.grda import CalibrationConfig
    from nets.grda_study import calibration_study

    res = calibration_study([_setup(args, d) for d in args.data], args.schedules, args.targets, config=_config(args),
                            calibration=CalibrationConfig(tolerance=args.tolerance, max_runs=args.max_runs),
                            rerun=not args.no_rerun, progress=_progress(args))
    _write(args, "calibrate", res, _plot_calibration)
    return 0


def _run_pretrained(args: argparse.Namespace) -> int:
    from nets.grda import CalibrationConfig
    from nets.grda_study import SCHEDULES, pretrained_study

    ft = _config(args, lr=args.finetune_lr, epochs=args.finetune_epochs,
                 **SCHEDULES[args.finetune_schedule](args.finetune_epochs))
    res = pretrained_study(_setup(args), args.targets, pretrain=_config(args, grda_c=0.0), finetune=ft,
                           calibration=CalibrationConfig(tolerance=args.tolerance, max_runs=args.max_runs),
                           reopt_steps=args.reopt_steps, progress=_progress(args))
    _write(args, "pretrained", res, _plot_pretrained)
    return 0


def _run_stopping(args: argparse.Namespace) -> int:
    from nets.grda import StoppingRule
    from nets.grda_study import stopping_study

    rule = StoppingRule(window=args.window, sparsity_tol=args.sparsity_tol, loss_tol=args.loss_tol)
    res = stopping_study(_setup(args), args.seeds, config=_config(args, grda_c=args.c), rule=rule,
                         progress=_progress(args))
    _write(args, "stopping", res, _plot_stopping)
    return 0


def _run_masks(args: argparse.Namespace) -> int:
    from nets.grda import CalibrationConfig
    from nets.grda_study import mask_study

    res = mask_study(_setup(args), args.target_sparsity, seeds=args.seeds, schedules=args.schedules,
                     config=_config(args), calibration=CalibrationConfig(tolerance=args.tolerance,
                                                                         max_runs=args.max_runs),
                     progress=_progress(args))
    _write(args, "masks", res, _plot_masks)
    return 0


def _run_frontier(args: argparse.Namespace) -> int:
    from nets.grda import CalibrationConfig
    from nets.grda_study import frontier_study

    if args.model.lower() != "mlp":
        return _error(args, f"the frontier varies MLP widths: --model must be mlp, got --model {args.model}")
    res = frontier_study(_setup(args), args.widths, args.variants, args.targets, config=_config(args),
                         calibration=CalibrationConfig(tolerance=args.tolerance, max_runs=args.max_runs),
                         progress=_progress(args))
    _write(args, "frontier", res, _plot_frontier)
    return 0


def _run_valley(args: argparse.Namespace) -> int:
    from nets.grda_study import valley_study

    if args.dim < 4:
        return _error(args, f"--dim must be >= 4 (the null-space valleys have rank 3), got --dim {args.dim}")
    res = valley_study(seeds=args.seeds, times=args.times, d=args.dim, lams=args.lams, gamma=args.gamma,
                       noise=args.noise, noise_gamma=args.noise_gamma, replicates=args.replicates,
                       progress=_progress(args))
    _write(args, "valley", res, _plot_valley)
    return 0


