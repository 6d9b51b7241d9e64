"""``prunelimit grda``: gRDA against SGD and against pruning, with the studies that answer its reviewers.

``prunelimit grda [options]`` (no study name) trains gRDA and SGD from the same initialisation and data order
(the directional-pruning paper's protocol; ``--target-sparsity S`` calibrates ``c`` first) and reports the
directional diagnostics beside their controls (:mod:`nets.directional`). ``prunelimit grda STUDY [options]``
runs one study of :mod:`nets.grda_study` (a study's options go *after* its name; one given before it is
refused, since the study would not see it):

* ``calibrate``: calibration error table over datasets, schedules and target sparsities
  (:func:`nets.grda_study.calibration_study`);
* ``pretrained``: gRDA from a trained model vs LOMP, LOMP + fine-tuning and compensated pruning;
* ``stopping``: the stopping rule against the full schedule over seeds;
* ``masks``: Jaccard overlap of gRDA masks across data orders, initialisations, schedules and vs LOMP;
* ``frontier``: sparsity–accuracy points of gRDA/gRDAM variants on MLPs of several widths, beside LOMP;
* ``valley``: quadratic valleys: gRDA vs the constrained form over τ, vs OBS and magnitude pruning, under noise.

Every command writes ``<study>.json`` (the result, the arguments, the values actually used, the warnings and
:func:`nets.io.provenance`) and ``<study>.png`` into ``--out`` (default ``prunelimit-grda`` /
``prunelimit-grda-<study>``), atomically, and prints a table with the warnings under it.

Before any training (:mod:`nets.cli._grda_preflight`): every option is checked with the others, ``--out`` and
``--device``, the memory of the model and of the diagnostics' Hessian (a dense Hessian that cannot fit is
refused), and the gRDA settings against what they do: ``--mu`` outside ``(0, 1)`` is refused, and the first
training step is replayed to refuse a ``--c``/``--lr`` whose first threshold already zeroes the whole network.
A bad input exits with status 2 and one line naming the option and the value; a diverging training names the
epoch. Settings below what the reported numbers need are warnings in the output and the JSON.

Under ``torchrun --nproc_per_node K`` every gRDA and SGD training run (the comparison's, the calibration's, the
studies') is data-parallel: each process computes the gradient of its shard of every global batch and
the gradients are averaged, so each gRDA step sees the gradient of the whole batch, as in one process (the
same result up to the order of floating-point summation). The diagnostics (Hessian, paths, controls), the
``pretrained`` study's LOMP fine-tuning and the ``valley`` study are not split: every process computes them on
the full data (identical results).
Rank 0 alone prints and writes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nets.cli._runner import context
from nets.cli._shared import add_threads_argument, bounded, nonneg_float, positive, run_with_threads
from nets.io import atomic_open, atomic_write_json, jsonable

__all__ = ["add_arguments", "run", "STUDIES", "GIVEN", "GIVEN_BEFORE"]

#: study name -> one-line help
STUDIES: dict[str, str] = {
    "calibrate": "calibration error of c for target sparsities over datasets and schedules",
    "pretrained": "gRDA from a pretrained model vs LOMP, LOMP + fine-tuning and compensated pruning",
    "stopping": "the stopping rule against the full schedule over seeds",
    "masks": "mask stability (Jaccard) across seeds, schedules and against LOMP",
    "frontier": "sparsity-accuracy frontier of gRDA/gRDAM variants on narrow MLPs vs LOMP",
    "valley": "quadratic valleys: gRDA vs the constrained form, OBS and magnitude pruning",
}

#: attributes of the parsed namespace listing ``(option, value)`` of every option given on the command line:
#: ``GIVEN`` those of the command that runs (``grda`` or its study), ``GIVEN_BEFORE`` those given to ``grda``
#: before a study name (filled by the parsers' actions; the preflight refuses options that a run would ignore)
GIVEN, GIVEN_BEFORE = "grda_given", "grda_given_before"

#: the largest seed every consumer accepts (scikit-learn's ``random_state`` is a 32-bit unsigned integer)
MAX_SEED = 2**32 - 1


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


def _name(s: str) -> str:
    return str(s).lower().replace("_", "-")


def seed_type(s: str) -> int:
    """An int in ``[0, MAX_SEED]``."""
    try:
        v = int(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an int, got {s!r}") from exc
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, {MAX_SEED}] (2^32 - 1), got {s}")
    return v


nonneg_int = bounded(int, 0)


# ---------------------------------------------------------------------------------------------- arguments
def _record_given(parser: argparse.ArgumentParser, attr: str) -> None:
    """Make every option action of ``parser`` also append ``(option, value)`` to ``namespace.<attr>``."""
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        base = type(action)

        def call(self: Any, p: Any, namespace: Any, values: Any, option_string: str | None = None,
                 _base: type = base) -> None:
            setattr(namespace, attr, [*getattr(namespace, attr, []), (option_string, values)])
            _base.__call__(self, p, namespace, values, option_string)

        action.__class__ = type(f"Given{base.__name__}", (base,), {"__call__": call})


def _add_common(p: argparse.ArgumentParser, *, out_default: str, multi_data: bool = False) -> None:
    from nets.data import DATASET_NAMES
    from nets.models import MODEL_NAMES

    g = p.add_argument_group("data, model and training")
    if multi_data:
        g.add_argument("--data", nargs="+", type=_name, default=["digits", "teacher-student"],
                       help=f"datasets: {', '.join(DATASET_NAMES)} (default: digits teacher-student)")
    else:
        g.add_argument("--data", default="digits", type=_name,
                       help=f"dataset: {', '.join(DATASET_NAMES)} (default digits)")
    g.add_argument("--data-root", type=Path, default=None, help="local folder of cifar10/cifar100/tinyimagenet")
    g.add_argument("--model", default="mlp", type=str.lower,
                   help=f"model for nets.models.build_model: {', '.join(MODEL_NAMES)} (default mlp)")
    g.add_argument("--hidden", type=positive(int), nargs="+", default=None,
                   help="hidden widths of --model mlp (default 32: 2410 parameters on digits)")
    g.add_argument("--epochs", type=positive(int), default=60, help="training epochs (default 60)")
    g.add_argument("--batch-size", type=positive(int), default=32, help="mini-batch size (default 32)")
    g.add_argument("--lr", type=positive(float), default=0.1,
                   help="learning rate (default 0.1, the authors' CIFAR/ImageNet rate)")
    g.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant",
                   help="learning-rate schedule (default constant, the authors'; step: x0.1 at 2/3 of the epochs)")
    g.add_argument("--lr-drop-epoch", type=positive(int), default=None,
                   help="multiply lr by 0.1 from this epoch on (the authors' ImageNet schedule; instead of --schedule)")
    g.add_argument("--momentum", type=momentum_type, default=0.0,
                   help="momentum (gRDAM: our calibrated EMA buffer; default 0, the authors')")
    g.add_argument("--weight-decay", type=nonneg_float, default=0.0, help="coupled weight decay (default 0)")
    g.add_argument("--mu", type=positive(float), default=0.55,
                   help="gRDA mu, the growth exponent of the threshold c·lr^(mu+1/2)·n^mu (default 0.55, the "
                        "authors' WRN value); the theory needs 0.5 < mu < 1 (Chao & Cheng 2019): mu >= 1 is "
                        "refused (the threshold then grows as fast as the dual sums can), mu <= 0.5 warns")
    g.add_argument("--seed", type=seed_type, default=0,
                   help=f"seed of the initialisation, data split and order (0 to {MAX_SEED})")
    g.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    r = p.add_argument_group("run")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path(out_default),
                   help=f"output directory, created if missing (default {out_default})")
    r.add_argument("--no-progress", action="store_true", help="no progress messages")


def _add_calibration(p: Any, *, tolerance: float = 0.01, max_runs: int = 8) -> None:
    p.add_argument("--tolerance", type=bounded(float, 0.0, 0.5, open_lo=True), default=tolerance,
                   help=f"accept a calibration run within this of the target sparsity (default {tolerance:g}; "
                        "above 0.02 warns: the calibration promises ±2 pp)")
    p.add_argument("--max-runs", type=positive(int), default=max_runs,
                   help=f"calibration runs after the pilot (default {max_runs})")


def _add_run(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gRDA and diagnostics")
    g.add_argument("--c", type=nonneg_float, default=0.03,
                   help="gRDA c (default 0.03: about half of the digits MLP's weights pruned; the authors use "
                        "0.0005-0.005 on networks with 10^7 weights); not with --target-sparsity. A c whose first "
                        "threshold zeroes every weight (the first step is replayed to check) is refused: the network "
                        "would ignore its input for the rest of the run")
    g.add_argument("--target-sparsity", type=open_fraction, default=None,
                   help="calibrate c so that gRDA ends at this fraction of zero prunable weights (±2 pp)")
    _add_calibration(g)
    g.add_argument("--top-k", type=positive(int), nargs="+", default=[1, 10, 50, 200],
                   help="k of the projection ratio onto the top-k Hessian eigenvectors (default 1 10 50 200; "
                        "values not below the parameter count D are dropped; under Lanczos the largest k sets the "
                        "cost)")
    g.add_argument("--hessian", choices=("auto", "dense", "lanczos"), default="auto",
                   help="dense Hessian (all eigenpairs; auto up to --dense-limit parameters and when it fits in "
                        "memory) or block Lanczos (top-k)")
    g.add_argument("--dense-limit", type=positive(int), default=3000,
                   help="largest parameter count for the dense Hessian under --hessian auto (default 3000)")
    g.add_argument("--diagnostic-samples", type=positive(int), default=None,
                   help="Hessian, losses and paths on a fixed random subset of this many training samples "
                        "(default: all; set it for large datasets; fewer than 512 warns)")
    g.add_argument("--path-points", type=bounded(int, 2), default=21,
                   help="points on each path (default 21; fewer than 21 warns: the barrier is a maximum over them)")
    g.add_argument("--bezier-steps", type=nonneg_int, default=200,
                   help="Adam steps fitting each Bézier control point (default 200; 0: linear paths only)")
    g.add_argument("--no-compensation", action="store_true", help="skip the compensated-pruning controls")
    g.add_argument("--compensation-steps", type=nonneg_int, default=100,
                   help="L-BFGS evaluations of the re-optimised compensated control (default 100; 0: skip it)")
    g.add_argument("--no-directional", action="store_true", help="skip the constrained directional-pruning control")
    g.add_argument("--no-diagnostics", action="store_true", help="train and report sparsity/accuracy only")
    g.add_argument("--stopping-window", type=bounded(int, 2), default=None,
                   help="also report where the stopping rule with this window would stop gRDA (default: 10)")


#: the --help epilog of ``prunelimit grda`` (what torchrun does)
TORCHRUN_HELP = ("Under torchrun --nproc_per_node K every gRDA and SGD training run (the comparison's, the "
                 "calibration's and the studies') is data-parallel across the K processes: each computes the gradient of its shard of "
                 "every global batch and the gradients are averaged, so each gRDA step is the single-process step up "
                 "to the order of floating-point summation. Not split: the diagnostics (Hessian, paths, controls), the "
                 "pretrained study's LOMP fine-tuning and the valley study, which every process computes on the full "
                 "data (identical results). Rank 0 alone "
                 "prints and writes.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nets.grda_study import VARIANTS

    parser.epilog = TORCHRUN_HELP
    _add_common(parser, out_default="prunelimit-grda")
    _add_run(parser)
    _record_given(parser, GIVEN_BEFORE)
    sub = parser.add_subparsers(dest="study", metavar="STUDY", required=False,
                                help="a study instead of the default comparison: " + ", ".join(STUDIES))

    def study(name: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=STUDIES[name], description=STUDIES[name])
        p.set_defaults(command_label=f"grda {name}")
        return p

    p = study("calibrate")
    _add_common(p, out_default="prunelimit-grda-calibrate", multi_data=True)
    p.add_argument("--targets", type=open_fraction, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95],
                   help="target sparsities (default 0.5 0.7 0.8 0.9 0.95)")
    p.add_argument("--schedules", choices=("constant", "step", "cosine"), nargs="+", default=["constant", "cosine"],
                   help="schedules (default constant cosine)")
    p.add_argument("--no-rerun", action="store_true", help="skip the rerun with another data order")
    _add_calibration(p)

    p = study("pretrained")
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

    p = study("stopping")
    _add_common(p, out_default="prunelimit-grda-stopping")
    p.add_argument("--c", type=nonneg_float, default=0.06, help="gRDA c (default 0.06: ~75 %% sparsity on digits)")
    p.add_argument("--seeds", type=seed_type, nargs="+", default=list(range(10)), help="seeds (default 0..9)")
    p.add_argument("--window", type=bounded(int, 2), default=10,
                   help="stopping-rule window in epochs (default 10; must be below --epochs)")
    p.add_argument("--sparsity-tol", type=bounded(float, 0.0, 1.0), default=0.01,
                   help="sparsity plateau tolerance (default 0.01)")
    p.add_argument("--loss-tol", type=nonneg_float, default=0.1,
                   help="relative training-loss improvement tolerance (default 0.1)")

    p = study("masks")
    _add_common(p, out_default="prunelimit-grda-masks")
    p.add_argument("--target-sparsity", type=open_fraction, default=0.9, help="target sparsity (default 0.9)")
    p.add_argument("--seeds", type=seed_type, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--schedules", choices=("constant", "step", "cosine"), nargs="+", default=["constant", "cosine"],
                   help="schedules (default constant cosine)")
    _add_calibration(p)

    p = study("frontier")
    _add_common(p, out_default="prunelimit-grda-frontier")
    p.add_argument("--widths", type=positive(int), nargs="+", default=[16, 32, 64],
                   help="MLP widths (16 32 64; they replace --hidden)")
    p.add_argument("--variants", choices=tuple(VARIANTS), nargs="+", default=list(VARIANTS),
                   help="optimiser variants (default: all; each sets its own schedule and momentum)")
    p.add_argument("--targets", type=open_fraction, nargs="+", default=[0.5, 0.7, 0.8, 0.9],
                   help="target sparsities (default 0.5 0.7 0.8 0.9)")
    _add_calibration(p, tolerance=0.02, max_runs=5)

    p = study("valley")
    r = p.add_argument_group("run")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path("prunelimit-grda-valley"),
                   help="output directory, created if missing (default prunelimit-grda-valley)")
    r.add_argument("--no-progress", action="store_true", help="no progress messages")
    p.add_argument("--seeds", type=seed_type, nargs="+", default=[0, 1, 2, 3], help="valley seeds (default 0..3)")
    p.add_argument("--times", type=positive(float), nargs="+", default=[20.0, 200.0],
                   help="training times t = N·gamma (default 20 200; at most 10^7 steps of --gamma and --noise-gamma)")
    p.add_argument("--dim", type=bounded(int, 4), default=8,
                   help="dimension d (default 8; at least 4: the null-space valleys have rank 3)")
    p.add_argument("--lams", type=positive(float), nargs="+", default=[0.3, 0.8],
                   help="final thresholds lambda (default 0.3 0.8)")
    p.add_argument("--gamma", type=positive(float), default=1e-3, help="step size of the deterministic runs (1e-3)")
    p.add_argument("--noise", type=nonneg_float, default=0.1, help="gradient noise sigma (default 0.1)")
    p.add_argument("--noise-gamma", type=positive(float), default=4e-3, help="step size of the noisy runs (4e-3)")
    p.add_argument("--replicates", type=positive(int), default=64, help="noisy replicates (default 64)")
    for sp in sub.choices.values():
        _record_given(sp, GIVEN)


# ---------------------------------------------------------------------------------------------- helpers
def _setup(args: argparse.Namespace, data: str | None = None) -> Any:
    from nets.grda_study import Setup

    hidden = tuple(args.hidden) if args.hidden is not None else ((32,) if args.model == "mlp" else None)
    return Setup(data=data or args.data, model=args.model, hidden=hidden,
                 data_root=None if args.data_root is None else str(args.data_root), seed=args.seed)


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from nets.grda_study import SCHEDULES, grda_config

    sched = ({"schedule": "multistep", "milestones": (args.lr_drop_epoch,), "gamma": 0.1} if args.lr_drop_epoch
             else SCHEDULES[args.schedule](args.epochs))
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
              weight_decay=args.weight_decay, grda_mu=args.mu, seed=args.seed, device=args.device, **sched)
    kw.update(overrides)
    return grda_config(**kw)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.no_progress or not context().is_main:
        return None
    t0 = time.perf_counter()
    return lambda msg: print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _write(args: argparse.Namespace, name: str, result: Any, plot: Callable[[Any, Path], None], plan: Any) -> None:
    """Rank 0: ``<name>.json`` (result, arguments, values used, warnings, provenance) and ``<name>.png``; print the
    table and the warnings."""
    from nets.io import provenance

    ctx = context()
    if not ctx.is_main:
        return
    out: Path = args.out
    skip = {"func", GIVEN, GIVEN_BEFORE, "command_label"}
    run_info = {"world_size": ctx.world_size, "backend": ctx.backend,
                "threads": None if ctx.threads is None else ctx.threads.to_dict()}
    record = {"command": "prunelimit grda" + (f" {args.study}" if getattr(args, "study", None) else ""),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip},
              "used": {**plan.used, **run_info}, "warnings": plan.warnings,
              "result": result.to_dict(), "provenance": provenance(getattr(args, "device", None))}
    atomic_write_json(out / f"{name}.json", jsonable(record), indent=1)
    plot(result, out / f"{name}.png")
    print(result.summary())
    for w in plan.warnings:
        print(f"warning [{w['code']}]: {w['message']}")
    if ctx.world_size > 1:
        print(f"run: {ctx.world_size} process(es) ({ctx.backend}): training data-parallel; diagnostics computed by "
              "every process")
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
    import warnings

    from nets.cli._grda_preflight import preflight

    plan = preflight(args)  # every check before any training; a UserError names the option and the value
    study = getattr(args, "study", None)
    with warnings.catch_warnings():
        # mu outside (0.5, 1) is recorded as a warning of the run (plan.warnings); GRDA's own UserWarning for
        # it would repeat it on stderr for every optimiser the run builds
        warnings.filterwarnings("ignore", message=r"mu=.* is outside \(0\.5, 1\)", category=UserWarning)
        if study is None:
            return _run_compare(args, plan)
        return {"calibrate": _run_calibrate, "pretrained": _run_pretrained, "stopping": _run_stopping,
                "masks": _run_masks, "frontier": _run_frontier, "valley": _run_valley}[study](args, plan)


def _run_compare(args: argparse.Namespace, plan: Any) -> int:
    import torch

    from nets.grda_study import compare

    res = compare(_setup(args), _config(args, grda_c=args.c), target_sparsity=args.target_sparsity,
                  calibration=plan.calibration, diagnostics=plan.diagnostics, stopping=plan.stopping,
                  generator=torch.Generator().manual_seed(args.seed), progress=_progress(args))
    if res.sparsity["prunable_weights"] >= 1.0:
        c = res.grda["config"]["grda_c"]
        plan.warn("c", f"gRDA ended with every prunable weight at zero (c = {c:.6g}): the network ignores its input "
                       f"and its accuracy is that of a constant class; lower --c or pass --target-sparsity")
    _write(args, "grda", res, _plot_compare, plan)
    return 0


def _run_calibrate(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import calibration_study

    res = calibration_study([_setup(args, d) for d in args.data], args.schedules, args.targets, config=_config(args),
                            calibration=plan.calibration, rerun=not args.no_rerun, progress=_progress(args))
    _write(args, "calibrate", res, _plot_calibration, plan)
    return 0


def _run_pretrained(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import SCHEDULES, pretrained_study

    ft = _config(args, lr=args.finetune_lr, epochs=args.finetune_epochs,
                 **SCHEDULES[args.finetune_schedule](args.finetune_epochs))
    res = pretrained_study(_setup(args), args.targets, pretrain=_config(args, grda_c=0.0), finetune=ft,
                           calibration=plan.calibration, reopt_steps=args.reopt_steps, progress=_progress(args))
    _write(args, "pretrained", res, _plot_pretrained, plan)
    return 0


def _run_stopping(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import stopping_study

    res = stopping_study(_setup(args), args.seeds, config=_config(args, grda_c=args.c), rule=plan.stopping,
                         progress=_progress(args))
    dead = [r["seed"] for r in res.rows if r["sparsity_full"] >= 1.0]
    if dead:
        plan.warn("c", f"--c {args.c:g}: the runs of seeds {' '.join(map(str, dead))} ended with every prunable weight "
                       "at zero (a constant class); lower --c")
    _write(args, "stopping", res, _plot_stopping, plan)
    return 0


def _run_masks(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import mask_study

    res = mask_study(_setup(args), args.target_sparsity, seeds=args.seeds, schedules=args.schedules,
                     config=_config(args), calibration=plan.calibration, progress=_progress(args))
    _write(args, "masks", res, _plot_masks, plan)
    return 0


def _run_frontier(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import frontier_study

    res = frontier_study(_setup(args), args.widths, args.variants, args.targets, config=_config(args),
                         calibration=plan.calibration, progress=_progress(args))
    _write(args, "frontier", res, _plot_frontier, plan)
    return 0


def _run_valley(args: argparse.Namespace, plan: Any) -> int:
    from nets.grda_study import valley_study

    res = valley_study(seeds=args.seeds, times=args.times, d=args.dim, lams=args.lams, gamma=args.gamma,
                       noise=args.noise, noise_gamma=args.noise_gamma, replicates=args.replicates,
                       progress=_progress(args))
    _write(args, "valley", res, _plot_valley, plan)
    return 0
