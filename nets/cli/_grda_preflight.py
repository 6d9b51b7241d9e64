"""The checks ``prunelimit grda`` makes before any training (issue 11, requirements 1 and 3).

:func:`preflight` returns a :class:`GrdaPlan` (the validated stage configs, the values the run will actually
use, and the plausibility warnings it records in its JSON) or raises a :class:`~nets.cli._errors.UserError`
whose one line names the option and the value:

* **options together**: names of models and datasets, ``--data-root`` only where a dataset reads it, ``--hidden``
  only for the MLP, the schedule options, options given before a study name (the study would not see them)
  and options the chosen run ignores (``--c`` with ``--target-sparsity``, diagnostics options with
  ``--no-diagnostics``, ...), repeated seeds, a stopping window no shorter than the run;
* **paths, devices, processes**: ``--out`` is (made) a writable directory, ``--device`` exists (the dispatcher),
  and under ``torchrun`` every global batch gives each process a sample;
* **sizes**: the model's parameters (three copies: weights, gradients, dual sums), the diagnostics' dense
  Hessian (:data:`DENSE_HESSIAN_COPIES` float64 ``D × D`` matrices) or its Lanczos basis, the valley study's
  matrices and its number of steps (at most :data:`MAX_VALLEY_STEPS` per run), each against the memory the
  device has (:func:`nets.limit.preflight.available_memory`, :data:`nets.limit.preflight.USABLE_FRACTION` of it);
* **what gRDA does with the settings** (docs/math.md §4):

  - ``μ ≥ 1`` is refused. The threshold after ``n`` constant-rate steps is ``T_n = c γ^{μ+½} n^μ``; a dual sum
    moves by at most ``γ n G`` in ``n`` steps (``G`` the largest gradient entry), so for ``μ > 1`` the threshold
    overtakes every dual sum and every weight ends at zero, and for ``μ = 1`` a weight survives only while its
    average gradient stays above ``c γ^{½}`` in magnitude, which a converging run does not keep. The theory of
    gRDA needs ``0.5 < μ < 1`` (Chao & Cheng 2019); ``μ ≤ 0.5`` (the authors' contrast ``μ = 0.4``) is a warning:
    the threshold then grows no faster than the ``√n`` gradient noise in the dual sums.
  - a ``c`` (with ``--lr``) whose **first threshold zeroes the whole network** is refused (ours, exact): the first
    training step is replayed on the run's own initialisation and first batch (:class:`nets.grda.GRDA`, one
    gradient). gRDA thresholds every tensor (the authors' ``threshold_params="all"``), so when ``T_1 = c γ_1^{μ+½}``
    is at least every ``|a_1|`` (dual sum after the step) of every parameter but the output layer's bias, all of
    them are zero; the network's output is then that bias for every input, every other parameter's gradient
    (and weight decay) is zero, their dual sums stay put (up to the momentum buffer's geometric tail, which is
    added to ``|a_1|``: ``γ_max β/(1−β) |b_1|``) while ``T_n`` only grows: they stay zero for the whole run and
    the network predicts one class. The refusal names ``c* = max(|a_1| + tail) / γ_1^{μ+½}``, the least ``c``
    with this outcome. A ``c`` whose threshold after the first epoch exceeds every initial weight is a warning.

Plausibility warnings (settings below what the reported numbers need, each naming the option): diagnostics on
fewer than :data:`nets.limit.result.MIN_PLAUSIBLE_HESSIAN_SAMPLES` samples (the limit pipeline's rule), paths
coarser than :data:`nets.limit.result.MAX_PLAUSIBLE_SWEEP_STEP` (the barrier is a maximum over the points),
a calibration tolerance above the ±2 pp the calibration promises, top-``k`` values not below ``D`` (dropped),
a stopping window that cannot fire, ``μ ≤ 0.5``, ``c = 0`` (plain SGD) and the first-epoch threshold above.
"""

from __future__ import annotations

import argparse
import copy
import math
from dataclasses import dataclass, field
from typing import Any

from nets.cli._errors import UserError

__all__ = ["GrdaPlan", "preflight", "first_step", "DENSE_HESSIAN_COPIES", "MAX_VALLEY_STEPS",
           "MAX_PLAUSIBLE_TOLERANCE"]

#: float64 ``D × D`` matrices alive at the peak of the diagnostics' dense Hessian (ours, from
#: :func:`nets.directional.hessian_eigen`): ``H``, its symmetrisation ``½(H + Hᵀ)``, the eigenvectors of
#: ``numpy.linalg.eigh``, LAPACK ``dsyevd``'s ``2 D²`` workspace and the reversed copy of the eigenvectors.
DENSE_HESSIAN_COPIES = 6
#: gRDA steps per valley run (ours): the valley runs are a Python loop of ``d × d`` products (about 10 µs a
#: step at the default ``d = 8``), so 10^7 steps is already minutes per run and more is refused.
MAX_VALLEY_STEPS = 10**7
#: float64 ``d × d`` matrices of one valley (ours, an upper estimate: ``H``, its eigenvectors, the projections
#: of the flat subspaces of the τ sweep and the ADMM's working copies).
VALLEY_MATRICES = 10
#: the calibration's promise (nets.grda.CalibrationConfig: ±2 pp); a looser acceptance tolerance warns.
MAX_PLAUSIBLE_TOLERANCE = 0.02

#: the diagnostics options of the default comparison (unused with --no-diagnostics)
_DIAGNOSTICS_OPTIONS = ("--top-k", "--hessian", "--dense-limit", "--diagnostic-samples", "--path-points",
                        "--bezier-steps", "--no-compensation", "--compensation-steps", "--no-directional")


@dataclass
class GrdaPlan:
    """What the preflight decided: the stage configs to run with, the values used, warnings and notes."""

    used: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    calibration: Any = None
    diagnostics: Any = None
    stopping: Any = None

    def warn(self, code: str, message: str) -> None:
        self.warnings.append({"code": code, "message": message})


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fmt_bytes(b: float) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b / 1e3:.3g} kB"


def _available(device: str) -> int | None:
    from nets.limit.preflight import USABLE_FRACTION, available_memory

    avail = available_memory(device)
    return None if avail is None else int(USABLE_FRACTION * avail)


# ---------------------------------------------------------------------------------------------- entry point
def preflight(args: argparse.Namespace) -> GrdaPlan:
    """Check everything that can be checked before training (module docstring); returns the plan."""
    from nets.cli._preflight import check_out_dir
    from nets.cli.grda import GIVEN, GIVEN_BEFORE

    study = getattr(args, "study", None)
    plan = GrdaPlan()
    given = dict(getattr(args, GIVEN if study else GIVEN_BEFORE, []))
    if study is not None:
        before = getattr(args, GIVEN_BEFORE, [])
        if before:
            opt, val = before[0]
            shown = opt if isinstance(val, bool) or val is None else f"{opt} {_show(val)}"
            raise UserError(f"{shown} is given before the study name {study}, where the study does not see it; put a "
                            f"study's options after its name (prunelimit grda {study} {shown})", option=opt,
                            value=val)
    if study == "valley":
        _check_valley(args, plan)
        check_out_dir(args.out)
        return plan
    _check_options(args, study, given)
    _check_mu(args, plan)
    configs = _configs(args, study, given, plan)
    check_out_dir(args.out)
    _check_sizes_and_steps(args, study, configs, plan)
    return plan


# ---------------------------------------------------------------------------------------------- options
def _check_options(args: argparse.Namespace, study: str | None, given: dict[str, Any]) -> None:
    from nets.data import BUILTIN_DATASETS, DATASET_NAMES
    from nets.models import MODEL_NAMES

    if args.model not in MODEL_NAMES:
        raise UserError(f"--model {args.model} is not a model; choose one of {', '.join(MODEL_NAMES)}",
                        option="--model", value=args.model)
    datas = args.data if isinstance(args.data, list) else [args.data]
    for d in datas:
        if d not in DATASET_NAMES:
            raise UserError(f"--data {d} is not a dataset; choose one of {', '.join(DATASET_NAMES)}", option="--data",
                            value=d)
    if args.data_root is not None and all(d in BUILTIN_DATASETS for d in datas):
        raise UserError(f"--data-root {args.data_root} is not used by the built-in dataset --data {' '.join(datas)}; "
                        "drop it", option="--data-root", value=str(args.data_root))
    for d in datas:
        if d not in BUILTIN_DATASETS and args.data_root is None:
            raise UserError(f"--data {d} needs --data-root, the local folder holding it (nothing is downloaded); or "
                            "use --data synthetic-cifar", option="--data", value=d)
    if study == "frontier":
        if args.model != "mlp":
            raise UserError(f"the frontier varies MLP widths: --model must be mlp, got --model {args.model}",
                            option="--model", value=args.model)
        if args.hidden is not None:
            raise UserError(f"--hidden {_show(args.hidden)} is not used by the frontier, whose --widths set the MLP; "
                            "drop it", option="--hidden", value=args.hidden)
        for opt in ("--schedule", "--lr-drop-epoch"):
            if opt in given:
                raise UserError(f"{opt} {_show(given[opt])} is not used by the frontier: each of its --variants sets "
                                "its own schedule; drop it", option=opt, value=given[opt])
    if study in ("calibrate", "masks"):
        for opt in ("--schedule", "--lr-drop-epoch"):
            if opt in given:
                raise UserError(f"{opt} {_show(given[opt])} is not used by the {study} study, which runs each of its "
                                "--schedules; use --schedules", option=opt, value=given[opt])
    if args.hidden is not None and args.model != "mlp":
        raise UserError(f"--hidden applies to --model mlp only, got --model {args.model}", option="--hidden",
                        value=args.hidden)
    if args.lr_drop_epoch is not None:
        if not 1 <= args.lr_drop_epoch < args.epochs:
            raise UserError(f"--lr-drop-epoch must be in [1, --epochs={args.epochs}), got --lr-drop-epoch "
                            f"{args.lr_drop_epoch}", option="--lr-drop-epoch", value=args.lr_drop_epoch)
        if "--schedule" in given:
            raise UserError(f"--lr-drop-epoch {args.lr_drop_epoch} replaces --schedule {args.schedule}; give one of "
                            "them", option="--lr-drop-epoch", value=args.lr_drop_epoch)
    schedules = [("--schedule", args.schedule, "--epochs", args.epochs)]
    if study in ("calibrate", "masks"):
        schedules = [("--schedules", s, "--epochs", args.epochs) for s in args.schedules]
    if study == "pretrained":
        schedules.append(("--finetune-schedule", args.finetune_schedule, "--finetune-epochs", args.finetune_epochs))
    for opt, sched, eopt, epochs in schedules:
        if sched == "step" and epochs < 2 and (opt != "--schedule" or args.lr_drop_epoch is None):
            raise UserError(f"{opt} step needs {eopt} >= 2 (it drops the rate at 2/3 of the epochs), got {eopt} "
                            f"{epochs}", option=eopt, value=epochs)
    seeds = getattr(args, "seeds", None)
    if seeds is not None and len(set(seeds)) < len(seeds):
        dup = next(s for s in seeds if seeds.count(s) > 1)
        raise UserError(f"--seeds {_show(seeds)} repeats seed {dup}: a repeated run adds nothing but weight; give "
                        "distinct seeds", option="--seeds", value=seeds)
    if study == "stopping" and args.window >= args.epochs:
        raise UserError(f"--window {args.window} is not below --epochs {args.epochs}: the stopping rule needs window + 1 "
                        "epochs, so it could never fire; lower --window or raise --epochs", option="--window",
                        value=args.window)
    if study is None:
        _check_compare_options(args, given)


def _check_compare_options(args: argparse.Namespace, given: dict[str, Any]) -> None:
    if args.target_sparsity is not None and "--c" in given:
        raise UserError(f"--c {args.c:g} is not used with --target-sparsity {args.target_sparsity:g}, which calibrates "
                        "c; give one of them", option="--c", value=args.c)
    if args.target_sparsity is None:
        for opt in ("--tolerance", "--max-runs"):
            if opt in given:
                raise UserError(f"{opt} {_show(given[opt])} is a calibration setting, used only with "
                                "--target-sparsity; drop it or add --target-sparsity", option=opt, value=given[opt])
    if args.no_diagnostics:
        for opt in _DIAGNOSTICS_OPTIONS:
            if opt in given:
                raise UserError(f"{opt} is not used with --no-diagnostics; drop one of them", option=opt,
                                value=given[opt])
    if "--dense-limit" in given and args.hessian != "auto":
        raise UserError(f"--dense-limit {args.dense_limit} is used only by --hessian auto, got --hessian "
                        f"{args.hessian}; drop it", option="--dense-limit", value=args.dense_limit)
    if "--compensation-steps" in given and args.no_compensation:
        raise UserError(f"--compensation-steps {args.compensation_steps} is not used with --no-compensation; drop "
                        "one of them", option="--compensation-steps", value=args.compensation_steps)


def _check_mu(args: argparse.Namespace, plan: GrdaPlan) -> None:
    mu = args.mu
    if mu >= 1.0:
        raise UserError(f"--mu {mu:g} is outside (0.5, 1), where gRDA prunes and still learns (Chao & Cheng 2019; the "
                        f"authors use 0.501-0.65): with mu >= 1 the threshold c·lr^(mu+1/2)·n^mu grows at least as "
                        "fast as any dual sum can (linearly in the step n), so the weights end at zero and the "
                        "network at chance; use e.g. --mu 0.55 (the default)", option="--mu", value=mu)
    if mu <= 0.5:
        plan.warn("mu", f"--mu {mu:g} is at most 0.5: the threshold c·lr^(mu+1/2)·n^mu grows no faster than the "
                        "gradient noise in the dual sums (~√n), outside gRDA's theory (0.5 < mu < 1, Chao & Cheng "
                        "2019; the authors run mu = 0.4 only as a contrast); its sparsity follows the noise")


# ---------------------------------------------------------------------------------------------- configs
def _configs(args: argparse.Namespace, study: str | None, given: dict[str, Any], plan: GrdaPlan) -> list[Any]:
    """The training configs of the run (validated) and the stage configs of the plan."""
    from nets.cli.grda import _config
    from nets.grda import CalibrationConfig, StoppingRule

    try:
        if study == "stopping":
            configs = [_config(args, grda_c=args.c)]
            plan.stopping = StoppingRule(window=args.window, sparsity_tol=args.sparsity_tol, loss_tol=args.loss_tol)
        elif study is None:
            configs = [_config(args, grda_c=args.c)]
            plan.stopping = (StoppingRule(window=args.stopping_window) if args.stopping_window else StoppingRule())
        elif study == "pretrained":
            from nets.grda_study import SCHEDULES

            configs = [_config(args, grda_c=0.0),
                       _config(args, lr=args.finetune_lr, epochs=args.finetune_epochs,
                               **SCHEDULES[args.finetune_schedule](args.finetune_epochs))]
        else:
            configs = [_config(args)]
        if hasattr(args, "tolerance") and (study is not None or args.target_sparsity is not None):
            plan.calibration = CalibrationConfig(tolerance=args.tolerance, max_runs=args.max_runs)
            if args.tolerance > MAX_PLAUSIBLE_TOLERANCE:
                plan.warn("tolerance", f"--tolerance {args.tolerance:g} accepts a calibrated sparsity up to "
                                       f"{100 * args.tolerance:g} pp from the target, looser than the ±2 pp the "
                                       f"calibration promises; lower --tolerance (default 0.01)")
        if study is None and plan.calibration is None:
            plan.calibration = CalibrationConfig()
    except ValueError as exc:  # argparse range-checked every option; kept as a safety net
        raise UserError(f"the options do not fit together: {exc}") from exc
    if study is None and args.stopping_window is not None and args.stopping_window >= args.epochs:
        plan.warn("stopping-window", f"--stopping-window {args.stopping_window} is not below --epochs {args.epochs}: "
                                     "the rule needs window + 1 epochs and cannot fire in this run")
    if study is None and args.target_sparsity is None and args.c == 0.0:
        plan.warn("c", "--c 0: gRDA with c = 0 is plain SGD and prunes nothing; the comparison is SGD against itself")
    plan.used["training"] = [c.to_dict() for c in configs]
    return configs


# ---------------------------------------------------------------------------------------------- sizes
def _load(setup: Any, args: argparse.Namespace) -> Any:
    try:
        return setup.load_data()
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as exc:
        opt, val = (("--data-root", str(args.data_root)) if setup.data_root is not None else ("--data", setup.data))
        raise UserError(f"--data {setup.data} could not be loaded ({str(exc).splitlines()[0]}); check {opt} {val}",
                        option=opt, value=val) from exc


def _meta(setup: Any, data: Any, args: argparse.Namespace) -> Any:
    from nets.models import build_model

    kwargs = {"hidden": setup.hidden} if setup.hidden is not None and setup.model == "mlp" else {}
    try:
        return build_model(setup.model, data.num_classes, data.input_shape, device="meta", **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UserError(f"--model {setup.model} does not fit --data {setup.data}: {str(exc).splitlines()[0]}",
                        option="--model", value=setup.model) from exc


def _check_model_memory(n_params: int, args: argparse.Namespace, what: tuple[str, Any]) -> None:
    """Three float32 copies of the parameters (weights, gradients, dual sums) must fit."""
    avail = _available(args.device)
    need = 3 * 4 * n_params
    if avail is not None and need > avail:
        opt, val = what
        raise UserError(f"{opt} {_show(val)} gives {n_params} parameters: weights, gradients and gRDA's dual sums take "
                        f"{_fmt_bytes(need)}, more than the {_fmt_bytes(avail)} usable of the memory available on "
                        f"--device {args.device}; use a smaller model", option=opt, value=val)


def _size_option(args: argparse.Namespace, study: str | None, width: int | None = None) -> tuple[str, Any]:
    if width is not None:
        return "--widths", width
    if args.hidden is not None:
        return "--hidden", args.hidden
    return "--model", args.model


def _check_sizes_and_steps(args: argparse.Namespace, study: str | None, configs: list[Any], plan: GrdaPlan) -> None:
    from dataclasses import replace

    from nets.cli._runner import context
    from nets.cli.grda import _setup

    world = context().world_size
    setups = [_setup(args, d) for d in (args.data if isinstance(args.data, list) else [args.data])]
    widths: list[int | None] = [None]
    if study == "frontier":
        widths = list(args.widths)
    first_data = None
    for setup in setups:
        data = _load(setup, args)
        first_data = first_data or (setup, data)
        n_train = len(data.train)
        if world > 1:
            for cfg in configs:
                last = n_train % cfg.batch_size
                if cfg.batch_size < world or (last and last < world):
                    raise UserError(f"--batch-size {cfg.batch_size} with {world} processes: every global batch must "
                                    f"give each process a sample, but the last of the {n_train} training samples' "
                                    f"batches has {last}; choose another --batch-size", option="--batch-size",
                                    value=cfg.batch_size)
        for w in widths:
            s = setup if w is None else replace(setup, model="mlp", hidden=(w,))
            meta = _meta(s, data, args)
            n_params = sum(p.numel() for p in meta.parameters() if p.requires_grad)
            _check_model_memory(n_params, args, _size_option(args, study, w))
    setup, data = first_data
    if study is None:
        meta = _meta(setup, data, args)
        D = sum(p.numel() for p in meta.parameters() if p.requires_grad)
        plan.used["n_parameters"] = D
        if not args.no_diagnostics:
            _plan_diagnostics(args, D, len(data.train_eval), plan)
    if study in (None, "stopping") and not (study is None and args.target_sparsity is not None):
        _check_first_step(args, setup, data, configs[0], plan,
                          seed=None if study is None else args.seeds[0])


def _plan_diagnostics(args: argparse.Namespace, D: int, n_train: int, plan: GrdaPlan) -> None:
    from nets.directional import DiagnosticsConfig
    from nets.limit.result import MAX_PLAUSIBLE_SWEEP_STEP, MIN_PLAUSIBLE_HESSIAN_SAMPLES

    top = sorted({k for k in args.top_k if k < D})
    if not top:
        raise UserError(f"--top-k {_show(args.top_k)}: every k must be below the D = {D} parameters of the model "
                        "(the projection ratio onto all D eigenvectors is 1); choose smaller --top-k", option="--top-k",
                        value=args.top_k)
    dropped = sorted(set(args.top_k) - set(top))
    if dropped:
        plan.warn("top-k", f"--top-k {_show(dropped)} not below the D = {D} parameters: dropped (projection ratio 1)")
    method = args.hessian if args.hessian != "auto" else ("dense" if D <= args.dense_limit else "lanczos")
    avail = _available(args.device)
    dense_bytes = DENSE_HESSIAN_COPIES * 8 * D * D
    if method == "dense" and avail is not None and dense_bytes > avail:
        if args.hessian == "dense":
            size = f" (--hidden {_show(args.hidden)})" if args.hidden is not None else f" (--model {args.model})"
            raise UserError(f"--hessian dense needs the float64 D x D Hessian of all D = {D} parameters{size} and its "
                            f"eigenvectors: about {_fmt_bytes(dense_bytes)} ({DENSE_HESSIAN_COPIES}·8·D² bytes), more "
                            f"than the {_fmt_bytes(avail)} usable of the memory available; use --hessian lanczos "
                            "(top-k eigenpairs), a smaller model or --no-diagnostics", option="--hessian",
                            value="dense")
        method = "lanczos"
        plan.warn("hessian", f"--hessian auto: the dense Hessian of D = {D} parameters ({_fmt_bytes(dense_bytes)}) "
                             f"does not fit in the {_fmt_bytes(avail)} usable; block Lanczos (top-k) instead, so the "
                             "share outside the flat subspace is a lower bound and the directional control is skipped")
    if method == "lanczos":
        k = max(top)
        basis = max(4 * k, 2 * k + 20)  # numerics.eigs' default max_basis with block size k
        lanczos_bytes = 8 * D * (2 * min(basis, D) + 2 * k)
        if avail is not None and lanczos_bytes > avail:
            raise UserError(f"--top-k {k}: block Lanczos for the top {k} eigenpairs of D = {D} parameters keeps a "
                            f"float64 basis of about {_fmt_bytes(lanczos_bytes)}, more than the {_fmt_bytes(avail)} "
                            "usable of the memory available; lower --top-k or use --no-diagnostics", option="--top-k",
                            value=k)
    samples = args.diagnostic_samples
    used_samples = n_train if samples is None else min(samples, n_train)
    if used_samples < min(n_train, MIN_PLAUSIBLE_HESSIAN_SAMPLES):
        plan.warn("diagnostic-samples", f"the Hessian, losses and paths use {used_samples} of the {n_train} training "
                                        f"samples (--diagnostic-samples {samples}): fewer than "
                                        f"{MIN_PLAUSIBLE_HESSIAN_SAMPLES} make them noisy estimates of the training "
                                        "loss's; raise --diagnostic-samples or drop it (default: all)")
    if 1.0 / (args.path_points - 1) > MAX_PLAUSIBLE_SWEEP_STEP:
        plan.warn("path-points", f"--path-points {args.path_points}: the paths' barriers and rises are maxima over "
                                 f"points {1.0 / (args.path_points - 1):.3g} apart, coarser than "
                                 f"{MAX_PLAUSIBLE_SWEEP_STEP:g}: a barrier between them is missed; raise --path-points "
                                 "(default 21)")
    try:
        plan.diagnostics = DiagnosticsConfig(
            top_ks=tuple(top), hessian=method, dense_limit=args.dense_limit, path_points=args.path_points,
            bezier_steps=args.bezier_steps, compensation=not args.no_compensation,
            compensation_steps=args.compensation_steps, directional=not args.no_directional,
            samples=None if samples is None or samples >= n_train else samples)
    except ValueError as exc:  # argparse range-checked every option; kept as a safety net
        raise UserError(f"the diagnostics options do not fit together: {exc}") from exc
    plan.used.update(hessian=method, top_k=top, diagnostic_samples=used_samples,
                     hessian_memory_bytes=dense_bytes if method == "dense" else None)


# ---------------------------------------------------------------------------------------------- the first step
def _output_bias(model: Any) -> Any:
    """The bias of the model's last ``nn.Linear`` (its output layer), or None."""
    from torch import nn

    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return None if last is None else last.bias


def first_step(model: Any, data: Any, config: Any) -> dict[str, float]:
    """Replay the first gRDA step of :func:`nets.train.train` under ``config`` on a copy of ``model`` (its first
    shuffled batch, :class:`nets.grda.GRDA` built as training builds it) on the CPU.

    Returns ``threshold`` (``T_1``), ``largest`` (``max |a_1| + γ_max β/(1−β) |b_1|`` over every parameter but the
    output layer's bias: the module docstring's bound on the dual sums for the rest of the run once they are all
    zero) and ``c_all_zero`` (the least ``c`` whose ``T_1`` reaches ``largest``)."""
    import warnings

    import torch
    import torch.nn.functional as F

    from nets.data import make_loader
    from nets.grda import GRDA

    m = copy.deepcopy(model).to("cpu")
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    dtype = params[0].dtype
    loader = make_loader(data.train, config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(config.seed),
                         drop_last=config.drop_last)
    x, y, b = next(iter(loader.iter_with_sizes()))
    lr0 = config.lr_at(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = GRDA(params, lr=config.lr, c=config.grda_c, mu=config.grda_mu, momentum=config.effective_momentum,
                   weight_decay=config.weight_decay)
    for group in opt.param_groups:
        group["lr"] = lr0
    loss = F.cross_entropy(m(x.to(dtype=dtype)), y, reduction="sum") / b
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    beta = config.effective_momentum
    lr_max = max(config.lr_at(e) for e in range(config.epochs))
    skip = _output_bias(m)
    largest = 0.0
    for p in params:
        if p is skip:
            continue
        st = opt.state[p]
        bound = st["accumulator"].detach().abs().double()
        if beta > 0 and "momentum_buffer" in st:
            bound = bound + lr_max * beta / (1.0 - beta) * st["momentum_buffer"].detach().abs().double()
        largest = max(largest, float(bound.max()))
    T = float(opt.threshold(0))
    return {"threshold": T, "largest": largest, "c_all_zero": largest / lr0 ** (config.grda_mu + 0.5),
            "lr": lr0}


def _check_first_step(args: argparse.Namespace, setup: Any, data: Any, config: Any, plan: GrdaPlan,
                      seed: int | None) -> None:
    import numpy as np
    import torch

    from nets.grda import step_learning_rates, threshold_factor
    from nets.params import prunable_parameters

    if config.grda_c == 0.0:
        return
    model = setup.build(data, init_seed=seed)
    if seed is not None:
        from dataclasses import replace

        config = replace(config, seed=seed)
    fs = first_step(model, data, config)
    plan.used["first_step"] = fs
    if fs["threshold"] >= fs["largest"]:
        raise UserError(
            f"--c {config.grda_c:g} with --lr {config.lr:g} and --mu {config.grda_mu:g}: the first step's threshold "
            f"c·lr^(mu+1/2) = {fs['threshold']:.3g} is above every dual sum (largest |a_1| = {fs['largest']:.3g}), so "
            f"every weight is zero after it, the network's output no longer depends on its input and stays so for "
            f"the rest of the run (chance accuracy); every c >= {fs['c_all_zero']:.3g} does this at this --lr: use a "
            f"much smaller --c (default 0.03; the authors use 0.0005-0.005) or --lr, or --target-sparsity to "
            f"calibrate c", option="--c", value=config.grda_c)
    # the threshold after the first epoch against the initial weights (a warning, not a proof of anything)
    per_epoch = step_learning_rates(config, len(data.train))[: math.ceil(len(data.train) / config.batch_size)]
    T1 = config.grda_c * threshold_factor(per_epoch, len(per_epoch), config.grda_mu)
    with torch.no_grad():
        w0 = max(float(w.detach().abs().max()) for _, w in prunable_parameters(model))
    if T1 >= w0:
        plan.warn("c", f"--c {config.grda_c:g}: the threshold after the first epoch, {T1:.3g}, is above every initial "
                       f"weight (largest |w_0| = {w0:.3g}); a weight is nonzero after it only where its accumulated "
                       "gradient carried it past the threshold: expect most weights at zero (--target-sparsity "
                       "calibrates c)")
    plan.used["first_epoch_threshold"] = float(np.float64(T1))


# ---------------------------------------------------------------------------------------------- valley
def _check_valley(args: argparse.Namespace, plan: GrdaPlan) -> None:
    if len(set(args.seeds)) < len(args.seeds):
        dup = next(s for s in args.seeds if args.seeds.count(s) > 1)
        raise UserError(f"--seeds {_show(args.seeds)} repeats seed {dup}: a repeated valley adds nothing but weight; "
                        "give distinct seeds", option="--seeds", value=args.seeds)
    for t in args.times:
        for opt, g in (("--gamma", args.gamma), ("--noise-gamma", args.noise_gamma)):
            if t < g:
                raise UserError(f"--times {t:g} is shorter than one step of {opt} {g:g}: the run would stop at t = "
                                f"{g:g}, not at t; raise --times or lower {opt}", option="--times", value=t)
            steps = round(t / g)
            if steps > MAX_VALLEY_STEPS:
                raise UserError(f"--times {t:g} with {opt} {g:g} is {steps:.3g} gRDA steps per run, more than "
                                f"{MAX_VALLEY_STEPS:.0e} (a Python loop of d x d products: about 10 µs a step); lower "
                                f"--times or raise {opt}", option="--times", value=t)
    d, r = args.dim, args.replicates
    need = 8 * (VALLEY_MATRICES * d * d + 4 * d * r)
    avail = _available("cpu")
    if avail is not None and need > avail:
        opt, val = ("--dim", d) if VALLEY_MATRICES * d * d >= 4 * d * r else ("--replicates", r)
        raise UserError(f"{opt} {val}: the valley's float64 arrays (about {VALLEY_MATRICES} d x d matrices and 4 d x "
                        f"replicates arrays for --dim {d}, --replicates {r}) take about {_fmt_bytes(need)}, more than "
                        f"the {_fmt_bytes(avail)} usable of the memory available; lower {opt}", option=opt, value=val)
    plan.used["valley_steps"] = {f"{t:g}": {"gamma": round(t / args.gamma), "noise_gamma": round(t / args.noise_gamma)}
                                 for t in args.times}
