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
``train/checkpoint.pt`` (re-running the same command resumes an interrupted training; ``run.json`` records the
options that shaped it, so that a rerun with other training options is refused instead of mixing two runs —
``--overwrite`` starts afresh). ``--checkpoint PATH`` starts from saved weights instead (``nets.train``
checkpoint or a ``state_dict``).

Before any compute (:mod:`nets.cli._preflight`): the options are checked together (one line naming the option
and the value on a mistake), ``--out`` and ``--device`` are checked, the memory of every stage is estimated
against the device's (a stage that cannot fit is refused or switched to its streaming variant, with a note),
and a changed option in an existing ``--out`` is refused. ``--data synthetic-cifar`` runs the paper's CIFAR
models (``--model fc5``, ``resnet18``, ...) on seeded CIFAR-shaped data without downloading anything. Under
``torchrun --nproc_per_node K`` the training, the Hessian data and the sweep levels are split across the
processes (:mod:`nets.limit.parallel`); rank 0 prints and writes.

Naming: *kept fraction* ``ρ = k/N`` (the final paper's "pruning ratio"), *removed fraction* ``1 − ρ``
(what the authors' code prints).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

from nets.cli._errors import UserError
from nets.cli._progress import StageBars, stage_line, training_progress
from nets.cli._runner import context
from nets.cli._shared import add_threads_argument, bounded, fraction, nonneg_float, nonneg_int, positive

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "run", "add_model_arguments", "check_model_options", "prepare", "prepare_model",
           "format_report", "StageBars", "limit_config"]

RESULT_NAME = "result.json"
LIMIT_PNG = "limit.png"
SPECTRUM_PNG = "spectrum.png"
OUTPUTS = (RESULT_NAME, LIMIT_PNG, SPECTRUM_PNG)

#: The training options, unused with ``--checkpoint``.
TRAINING_OPTIONS = {"epochs": "--epochs", "lr": "--lr", "l1": "--l1", "warmup_epochs": "--warmup-epochs"}


# ---------------------------------------------------------------------------------------------- arguments


def add_model_arguments(parser: argparse.ArgumentParser, *, out_default: str, spectrum: bool = True) -> None:
    """Options shared by ``prunelimit limit``, ``spectrum`` and ``prune``: model, data, training, device, and
    (``spectrum=True``) the SLQ settings."""
    from nets.data import DATASET_NAMES, SYNTHETIC_CIFAR_SIZES
    from nets.models import MODEL_NAMES

    g = parser.add_argument_group("model and data")
    g.add_argument("--model", default="mlp", type=str.lower,
                   help=f"model for nets.models.build_model: {', '.join(MODEL_NAMES)} (default mlp)")
    g.add_argument("--hidden", type=positive(int), nargs="+", default=None,
                   help="hidden widths of --model mlp (default 32: 2368 prunable weights)")
    g.add_argument("--data", default="digits", type=lambda v: str(v).lower().replace("_", "-"),
                   help=f"dataset: {', '.join(DATASET_NAMES)} (default digits; synthetic-cifar: "
                        f"{SYNTHETIC_CIFAR_SIZES['n_train']} train / {SYNTHETIC_CIFAR_SIZES['n_test']} test seeded "
                        "3x32x32 Gaussian images with a random linear teacher, for the CIFAR models without data)")
    g.add_argument("--data-root", type=Path, default=None, help="local folder of cifar10/cifar100/tinyimagenet")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="start from these weights (nets.train checkpoint.pt or a torch.save'd state_dict; read "
                        "with weights_only=True) instead of training")
    g.add_argument("--epochs", type=positive(int), default=None,
                   help="training epochs when no --checkpoint (default: 60 for the digits models, 200 for the "
                        "paper's models)")
    g.add_argument("--lr", type=positive(float), default=None, help="training learning rate (default: see --epochs)")
    g.add_argument("--l1", type=nonneg_float, default=None,
                   help="l1 coefficient lambda (default 1e-3 on digits; the paper's value for its models)")
    g.add_argument("--warmup-epochs", type=nonneg_int, default=None,
                   help="linear learning-rate warm-up epochs (default: the paper's, 5 for alexnet/vgg16/resnet*; 0 "
                        "otherwise); must be below --epochs under the cosine schedule of resnet*")
    if spectrum:
        add_spectrum_arguments(parser)
    r = parser.add_argument_group("run")
    r.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda, cuda:1)")
    r.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the initialisation, data order and SLQ probes (default 0)")
    add_threads_argument(r)
    r.add_argument("--out", type=Path, default=Path(out_default),
                   help=f"output directory, created if missing (default {out_default}); rerunning the same command "
                        "resumes its training")
    r.add_argument("--overwrite", action="store_true",
                   help="discard the training saved in --out (and this command's outputs there) and start afresh")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress (default: bars on a terminal, one line per stage otherwise)")


def add_spectrum_arguments(parser: argparse.ArgumentParser) -> None:
    """The SLQ options of ``prunelimit limit`` and ``spectrum``."""
    s = parser.add_argument_group("Hessian spectrum (SLQ)")
    s.add_argument("--slq-steps", type=positive(int), default=128,
                   help="Lanczos steps per probe (default 128, the authors'; at most N, where it is exact)")
    s.add_argument("--slq-probes", type=positive(int), default=4,
                   help="SLQ probes (default 4; the authors used 1, which leaves the standard error unknown)")
    s.add_argument("--deflate", type=positive(int), default=None, help="deflate the top-k eigenpairs before SLQ")
    s.add_argument("--hessian-batch-size", type=positive(int), default=1024,
                   help="batch size of the Hessian data (the full un-augmented training set; default 1024)")
    s.add_argument("--hessian-samples", type=positive(int), default=None,
                   help="use a fixed random subset of this many training samples for the Hessian (default: all; "
                        "more than the training set uses all, as recorded in the JSON)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nets.limit import DEFAULT_FUNDAMENTAL_METHOD, DEFAULT_MAGNITUDE_METHOD, MAX_GRID_LEVELS
    from nets.limit.oracle import DEFAULT_ORACLE_MAX_N

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
    min_step = 1.0 / (MAX_GRID_LEVELS - 1)
    p.add_argument("--sweep-step", type=bounded(float, min_step, 1.0), default=0.01,
                   help=f"kept-fraction grid step of the magnitude-pruning sweep's curves; each limit is refined by "
                        f"bisection to one weight (default 0.01; at least {min_step:g}, i.e. at most "
                        f"{MAX_GRID_LEVELS} levels)")
    p.add_argument("--compensation-steps", type=nonneg_int, default=50,
                   help="masked L-BFGS loss-and-gradient evaluations per level of the compensated (fundamental) "
                        "measurement, after the CG quadratic step (default 50; 0: the quadratic step only)")
    p.add_argument("--no-compensated", action="store_true",
                   help="skip the measured fundamental limit (compensated pruning: a CG solve per searched level)")
    p.add_argument("--objective-l1", type=nonneg_float, default=0.0,
                   help="add lambda*||w||_1 over the prunable weights to the loss of every stage (default 0: the data "
                        "loss alone); pass the training's l1 to measure against the objective w* minimises")
    p.add_argument("--exact", choices=("auto", "on", "off"), default="auto",
                   help=f"dense-Hessian quadratic oracle: auto (N <= {DEFAULT_ORACLE_MAX_N}: about 10 s on one CPU "
                        "thread; its cost grows as N^3), on (refused before training when the dense Hessian "
                        "cannot fit in memory), off")


# ---------------------------------------------------------------------------------------------- preparing
def check_model_options(args: argparse.Namespace) -> None:
    """Cross-option checks argparse cannot make (before anything is loaded); a :class:`UserError` names the
    option and the value."""
    from nets.data import BUILTIN_DATASETS, DATASET_NAMES
    from nets.models import MODEL_NAMES

    if args.model not in MODEL_NAMES:
        raise UserError(f"--model {args.model} is not a model; choose one of {', '.join(MODEL_NAMES)}",
                        option="--model", value=args.model)
    if args.data not in DATASET_NAMES:
        raise UserError(f"--data {args.data} is not a dataset; choose one of {', '.join(DATASET_NAMES)}",
                        option="--data", value=args.data)
    if args.hidden is not None and args.model != "mlp":
        raise UserError(f"--hidden applies to --model mlp only, got --model {args.model}", option="--hidden",
                        value=args.hidden)
    if args.data_root is not None and args.data in BUILTIN_DATASETS:
        raise UserError(f"--data-root is not used by the built-in dataset --data {args.data}; drop it",
                        option="--data-root", value=str(args.data_root))
    if args.data not in BUILTIN_DATASETS and args.data_root is None:
        raise UserError(f"--data {args.data} needs --data-root, the local folder holding it (nothing is "
                        "downloaded); or use --data synthetic-cifar", option="--data-root", value=None)
    if args.checkpoint is not None:
        given = [opt for key, opt in TRAINING_OPTIONS.items() if getattr(args, key, None) is not None]
        if given:
            log.warning("%s %s not used: --checkpoint skips training", " and ".join(given),
                        "is" if len(given) == 1 else "are")


def train_config(args: argparse.Namespace) -> Any:
    """The :class:`nets.train.TrainConfig` of the options (None with ``--checkpoint``), checked: a warm-up at
    least as long as a cosine schedule is refused naming ``--epochs`` and ``--warmup-epochs``."""
    from nets.train import default_train_config

    if args.checkpoint is not None:
        return None
    base = default_train_config(args.model, seed=args.seed, device=args.device)
    epochs = args.epochs if args.epochs is not None else base.epochs
    warmup = args.warmup_epochs if args.warmup_epochs is not None else base.warmup_epochs
    if base.schedule == "cosine" and warmup >= epochs:
        given = "--warmup-epochs" if args.warmup_epochs is not None else f"the warm-up of --model {args.model}"
        raise UserError(f"--epochs {epochs} is not more than {given} ({warmup} epochs) under its cosine schedule; "
                        f"raise --epochs above {warmup} or pass --warmup-epochs {max(0, epochs - 1)}",
                        option="--epochs", value=epochs)
    try:
        return default_train_config(args.model, epochs=args.epochs, lr=args.lr, l1=args.l1,
                                    warmup_epochs=args.warmup_epochs, seed=args.seed, device=args.device)
    except ValueError as exc:  # the options were range-checked by argparse; a combination is left
        raise UserError(f"the training options do not fit together: {exc}") from exc


def _load_data(args: argparse.Namespace) -> Any:
    from nets.data import load_dataset

    options: dict[str, Any] = {}
    if args.data == "digits" and args.model == "cnn":
        options["as_image"] = True
    return load_dataset(args.data, args.data_root, seed=args.seed, **options)


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"hidden": tuple(args.hidden)} if args.hidden is not None else {}


def prepare(args: argparse.Namespace, config: Any = None, *, outputs: tuple[str, ...] = ()
            ) -> tuple[Any, Any, dict[str, Any], Any]:
    """Everything before the analysis: check the options, ``--out`` and the memory of the run (``config``, a
    :class:`nets.limit.LimitConfig`, is returned adjusted — e.g. streaming products — with notes printed), refuse
    a changed option in an existing ``--out`` (``--overwrite`` removes the saved training and ``outputs``), then
    load ``--checkpoint`` or train (resumable under ``--out/train``; data-parallel under torchrun).

    Returns ``(model, data, info, config)``; ``info`` holds the training summary, its wall time and the notes.
    """
    import torch

    from nets.cli._preflight import check_memory, check_out_dir, check_resume, record_run, training_identity
    from nets.models import build_model
    from nets.train import CHECKPOINT_NAME, train

    ctx = context()
    check_model_options(args)
    tcfg = train_config(args)
    check_out_dir(args.out)
    data = _load_data(args)
    kwargs = _model_kwargs(args)
    try:  # sizes first, on the meta device (nothing allocated): a model too large to hold is refused here
        meta = build_model(args.model, data.num_classes, data.input_shape, device="meta", **kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--model {args.model} does not fit --data {args.data}: {exc}", option="--model",
                        value=args.model) from exc
    check_model_size(meta, args)
    # the model itself (its initialisation from --seed; the weights of --checkpoint are loaded into it below)
    model = build_model(args.model, data.num_classes, data.input_shape,
                        generator=torch.Generator().manual_seed(args.seed), **kwargs)
    notes: list[str] = []
    if config is not None:
        from nets.params import prunable_parameters

        N = sum(w.numel() for _, w in prunable_parameters(meta))
        deflate = config.spectrum.deflate
        if deflate is not None and deflate >= N:
            raise UserError(f"--deflate {deflate} must be smaller than the N = {N} prunable weights of --model "
                            f"{args.model}", option="--deflate", value=deflate)
        config, _, mem_notes = check_memory(model, data, config, args.device, world_size=ctx.world_size,
                                            train_config=tcfg)
        notes += mem_notes
    info: dict[str, Any] = {"model": args.model, "data": data.name, "notes": notes}
    if tcfg is not None:
        identity = training_identity(args, tcfg)
        # under torchrun rank 0 alone removes (--overwrite) and records; train() waits for it at a barrier
        check_resume(args.out, identity, overwrite=args.overwrite and ctx.is_main, outputs=outputs,
                     check=not args.overwrite)
        if ctx.is_main:
            record_run(args.out, ctx.command, identity)
    for note in notes:
        log.warning("%s", note)
    t0 = time.perf_counter()
    if args.checkpoint is not None:
        _load_checkpoint(model, args)
        model.to(args.device)
        info.update({"source": "checkpoint", "checkpoint": str(args.checkpoint)})
    else:
        ckpt_dir = args.out / "train"
        resumed = _saved_epoch(ckpt_dir / CHECKPOINT_NAME)
        ctx.training_started(str(ckpt_dir), tcfg.epochs, resumed)
        progress = training_progress(ctx.progress, tcfg.epochs, on_epoch=ctx.epoch_done)
        res = train(model, data, tcfg, checkpoint_dir=ckpt_dir, resume=True, progress=progress,
                    distributed=ctx.world_size > 1)
        info.update({"source": "trained", "config": res.config.to_dict(), "final": res.final,
                     "resumed_from": res.resumed_from, "checkpoint": str(res.checkpoint_path),
                     "threads": res.extra.get("threads")})
        ran = res.epochs_run
        stage_line("train", time.perf_counter() - t0,
                   f"{ran} epochs ({ran} data passes)" + (f", resumed at epoch {res.resumed_from}"
                                                         if res.resumed_from else ""))
    info["seconds"] = time.perf_counter() - t0
    return model, data, info, config


def _load_checkpoint(model: Any, args: argparse.Namespace) -> None:
    """``--checkpoint`` into ``model``; an unreadable file or another architecture is a :class:`UserError`."""
    import re

    from nets.train import load_state_dict

    what = f"--model {args.model}" + ("" if args.hidden is None else f" --hidden {' '.join(map(str, args.hidden))}")
    try:
        load_state_dict(model, args.checkpoint)
    except ValueError as exc:
        text = str(exc)
        m = re.search(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                      r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)", text)
        if m:
            why = f"{m.group(1)} is {m.group(2)} in the file and {m.group(3)} in the model"
        elif "does not fit" in text:
            why = text.split(": ", 1)[-1].split(". ")[0]
        else:
            raise UserError(f"--checkpoint {args.checkpoint} is not a nets.train checkpoint or a torch.save'd "
                            "state_dict readable with weights_only=True", option="--checkpoint",
                            value=str(args.checkpoint)) from exc
        raise UserError(f"--checkpoint {args.checkpoint} does not fit {what} ({why}); pass the options the "
                        "checkpoint was trained with", option="--checkpoint", value=str(args.checkpoint)) from exc


def check_model_size(meta_model: Any, args: argparse.Namespace) -> None:
    """Refuse a model whose parameters alone (three copies: the model, its gradients and the optimiser state, or
    the pipeline's working copies) cannot fit in the host memory, before allocating it."""
    from nets.resources import host_memory_available

    P = sum(p.numel() * 4 for p in meta_model.parameters())
    avail = host_memory_available()
    if avail is not None and 3 * P > 0.8 * avail:
        what = f"--hidden {' '.join(map(str, args.hidden))}" if args.hidden is not None else f"--model {args.model}"
        raise UserError(f"{what} has {P // 4} parameters: three copies take {3 * P / 2**30:.3g} GiB, more than the "
                        f"{0.8 * avail / 2**30:.3g} GiB usable of the memory available; use a smaller model",
                        option=what.split()[0], value=args.hidden or args.model)


def _saved_epoch(path: Path) -> int | None:
    """The epoch in ``history.json`` next to a saved checkpoint (None: none saved)."""
    import json

    if not path.is_file():
        return None
    try:
        return len(json.loads((path.parent / "history.json").read_text())["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_model(args: argparse.Namespace, bars: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, data, info)`` of :func:`prepare` without a pipeline config (``prunelimit prune``)."""
    model, data, info, _ = prepare(args)
    return model, data, info


# ---------------------------------------------------------------------------------------------- rendering
def _fmt(x: Any, spec: str = ".4f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def format_report(result: Any, train_info: dict[str, Any] | None = None, run_info: dict[str, Any] | None = None) -> str:
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
    used = r.config.get("used", {})
    for adj in used.get("adjusted", []):
        if adj["setting"] != "memory":
            lines.append(f"note: {adj['setting']} = {adj['requested']} was used as {adj['used']} ({adj['why']})")
    for note in (train_info or {}).get("notes", []):
        lines.append(f"note: {note}")
    if used:
        th = used.get("threads") or (run_info or {}).get("threads") or {}
        lines.append(f"run: {used.get('world_size', 1)} process(es), {th.get('threads', '?')} torch thread(s) each "
                     f"({th.get('source', '?')}), Hessian path {used.get('hessian_path')}")
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

    try:
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
    except (ValueError, TypeError) as exc:  # argparse range-checked every option; kept as a safety net
        raise UserError(f"the options do not fit together: {exc}") from exc


# ---------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from nets.limit import estimate_pruning_limit
    from nets.plots import plot_limit, plot_spectrum

    ctx = context()
    config = limit_config(args)
    model, data, train_info, config = prepare(args, config, outputs=OUTPUTS)
    bars = StageBars(enabled=ctx.progress == "bars")
    try:
        result = estimate_pruning_limit(model, data, l1=args.objective_l1, config=config, seed=args.seed,
                                        device=args.device, progress=bars)
    finally:
        bars.close()
    if not ctx.is_main:
        return 0
    command = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    run_info = {"threads": None if ctx.threads is None else ctx.threads.to_dict(), "world_size": ctx.world_size,
                "backend": ctx.backend, "progress": ctx.progress}
    result.save(args.out / RESULT_NAME, extra={"train": train_info, "command": command, "run": run_info})
    plot_limit(result, args.out / LIMIT_PNG)
    exact = None if result.oracle is None else result.oracle.eigenvalues
    plot_spectrum(result.spectrum.spectrum, args.out / SPECTRUM_PNG, exact_eigenvalues=exact,
                  title=f"Hessian spectrum of the prunable weights ({result.model['class']} on {result.model['data']})")
    print(format_report(result, train_info, run_info))
    print(f"wrote {args.out / RESULT_NAME}, {args.out / LIMIT_PNG}, {args.out / SPECTRUM_PNG}")
    return 0
