"""``prunelimit experiment NAME``: regenerate one figure or table of the pruning-limit paper (or ``all``).

Each experiment writes ``--out DIR/NAME/`` (``results.csv``, ``results.json`` with provenance, ``figure.png``,
``summary.md`` stating whether the paper's claim holds on the data run); ``all`` runs every experiment and
writes ``DIR/report.md`` and ``DIR/report.html`` linking them. ``--scale cpu`` (default) uses the bundled data
and small networks (``all`` in under 30 minutes on 2 CPU cores), ``--scale paper`` the paper's networks, data
(``--data-root``) and hyperparameters (a GPU: ``--device cuda``), ``--scale tiny`` seconds (tests).
Rerunning the same command resumes: finished cells (model × seed × setting) are read, not recomputed.

Before any work every option is checked (the experiment name, ``--models`` of the scale, ``--seeds`` against the
experiments' needs, ``--data-root`` only where a scale reads data, ``--jobs`` only with ``all``, ``--out`` and
``--device``); a bad input exits with status 2 and one line naming the option and the value.

Under ``torchrun --nproc_per_node K`` the networks of the scale are shared among the K processes as ``--jobs K``
shares them (largest first onto the least loaded, :func:`nets.experiments.runner.partition`): each process
computes the cells of its networks into ``--out`` (which every process must see: one machine or a shared
filesystem) in a child process of its own, then rank 0 assembles every experiment from the cells, writes the
results and the report and prints, once. The cells are per network, so the results are those of one process.
With fewer networks than processes the extra processes have nothing to compute (``--scale tiny`` has one).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nets.cli._errors import UserError
from nets.cli._runner import context
from nets.cli._shared import add_threads_argument, positive

__all__ = ["add_arguments", "run", "SYNC_TIMEOUT_HOURS"]

_SCALES = ("tiny", "cpu", "paper")

#: how long a process waits under torchrun for the others to finish their networks (ours: a paper-scale share
#: takes hours, far beyond torch.distributed's default 30-minute collective timeout)
SYNC_TIMEOUT_HOURS = 72


def _names() -> list[str]:
    from nets.experiments.runner import EXPERIMENTS

    return [*EXPERIMENTS, "all"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Under torchrun --nproc_per_node K the networks of the scale are shared among the K processes (as "
                     "--jobs K shares them; --out must be visible to all of them); rank 0 assembles the experiments, "
                     "writes and prints once. With fewer networks than processes the others have nothing to do.")
    parser.add_argument("name", nargs="?", metavar="NAME", choices=_names(),
                        help="experiment to run, or 'all' (see --list): " + ", ".join(_names()))
    parser.add_argument("--list", action="store_true", help="list the experiments and the networks of each scale")
    parser.add_argument("--scale", choices=_SCALES, default="cpu",
                        help="tiny (seconds, tests), cpu (default: bundled data, < 30 min on 2 cores), paper (GPU)")
    parser.add_argument("--models", nargs="+", default=None, metavar="KEY",
                        help="networks of the scale to run (default: all of them; see --list)")
    parser.add_argument("--seeds", type=positive(int), default=None, metavar="K",
                        help="independent runs per network: seeds 0..K-1 (default: the scale's, 3; tv-distance "
                             "needs 2)")
    parser.add_argument("--out", type=Path, default=Path("prunelimit-experiments"),
                        help="output folder (default prunelimit-experiments); rerunning resumes from it")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="local folder holding cifar-10-batches-py, cifar-100-python, tiny-imagenet-200 "
                             "(--scale paper only); nothing is downloaded")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    parser.add_argument("--jobs", type=positive(int), default=1,
                        help="with 'all': compute in this many processes, each taking a share of the networks "
                             "(default 1; 2 uses both cores of the cpu scale's budget); results are the same. Under "
                             "torchrun the processes share the networks instead (leave --jobs at 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_threads_argument(parser)


def _list() -> int:
    from nets.experiments.runner import EXPERIMENTS
    from nets.experiments.scales import SCALES

    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:<20} {e.description}")
    for s in SCALES.values():
        print(f"scale {s.name}: {s.description}")
        for m in s.models:
            print(f"  {m.key:<24} {m.label}")
    return 0


# ---------------------------------------------------------------------------------------------- preflight
def _preflight(args: argparse.Namespace) -> list[str]:
    """Check every option before any work (module docstring); returns the experiments to run."""
    from nets.cli._preflight import check_out_dir
    from nets.experiments.context import _BUILTIN_DATA
    from nets.experiments.runner import EXPERIMENTS
    from nets.experiments.scales import get_scale

    ctx = context()
    if args.name is None:
        raise UserError("NAME is missing: give an experiment NAME or 'all' (see --list)", option="NAME")
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    if args.jobs > 1 and args.name != "all":
        raise UserError(f"--jobs {args.jobs} shares the networks of 'all' among processes; with one experiment "
                        f"({args.name}) drop it or run 'all'", option="--jobs", value=args.jobs)
    if args.jobs > 1 and ctx.world_size > 1:
        raise UserError(f"--jobs {args.jobs} under torchrun: the {ctx.world_size} torchrun processes already share the "
                        "networks; drop --jobs", option="--jobs", value=args.jobs)
    scale = get_scale(args.scale)
    specs = scale.models
    if args.models is not None:
        specs = []
        for key in args.models:
            try:
                specs.append(scale.model(key))
            except ValueError as exc:
                raise UserError(f"--models {key}: {exc}", option="--models", value=key) from exc
        if len({s.key for s in specs}) < len(specs):
            raise UserError(f"--models {' '.join(args.models)} names a network twice; name each once",
                            option="--models", value=args.models)
    seeds = scale.seeds if args.seeds is None else args.seeds
    for name in names:
        need = EXPERIMENTS[name].min_seeds
        if seeds < need:
            shown = f"--seeds {seeds}" if args.seeds is not None else f"the scale's {seeds} seed(s)"
            raise UserError(f"experiment {name!r} compares independent runs and needs --seeds >= {need}, got {shown}",
                            option="--seeds", value=seeds)
    needs_root = sorted({s.data for s in specs if s.data not in _BUILTIN_DATA})
    if needs_root and args.data_root is None:
        raise UserError(f"--scale {args.scale} reads {', '.join(needs_root)} from a local folder: pass --data-root "
                        "(nothing is downloaded)", option="--data-root", value=None)
    if args.data_root is not None and not needs_root:
        raise UserError(f"--data-root {args.data_root} is not used by --scale {args.scale} (its networks train on the "
                        "bundled data); drop it", option="--data-root", value=str(args.data_root))
    check_out_dir(args.out)
    return names


# ---------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from nets.resources import choose_threads, use_threads

    if args.list:
        return _list()
    names = _preflight(args)
    # the bundled scales' tiny matrices gain nothing from intra-op threads; the paper's networks do
    with use_threads(choose_threads(args.threads, small_problem=args.scale != "paper")):
        if context().world_size > 1:
            return _run_distributed(args, names)
        return _run(args, names)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.quiet or not context().is_main:
        return None
    t0 = time.perf_counter()
    return lambda message: print(f"[{time.perf_counter() - t0:7.1f} s] {message}", file=sys.stderr, flush=True)


def _make_context(args: argparse.Namespace, progress: Callable[[str], None] | None = None) -> Any:
    from nets.experiments.runner import make_context

    return make_context(args.scale, args.out, models=args.models, seeds=args.seeds, data_root=args.data_root,
                        device=args.device, progress=progress)


def _summaries(records: list[Any]) -> list[tuple[str, float, list[str], str]]:
    return [(r.name, r.wall_seconds, [v.status for v in r.outcome.verdicts], r.outcome.headline) for r in records]


def _print(args: argparse.Namespace, rows: list[tuple[str, float, list[str], str]]) -> None:
    from nets.experiments.report import fmt

    width = max(len(name) for name, *_ in rows)
    for name, wall, statuses, headline in rows:
        print(f"{name:<{width}}  {fmt(wall, 3):>6} s  {'; '.join(statuses)}")
        print(f"{'':<{width}}  {headline}")
    print(f"wrote {args.out / 'report.md'}, {args.out / 'report.html'} and "
          + ", ".join(str(args.out / name) for name, *_ in rows))


def _run(args: argparse.Namespace, names: list[str]) -> int:
    from nets.experiments.runner import run_all, run_experiment

    ctx = _make_context(args, _progress(args))
    records = (run_all(ctx, jobs=args.jobs, quiet_workers=args.quiet) if args.name == "all"
               else [run_experiment(args.name, ctx)])
    _print(args, _summaries(records))
    return 0


# ---------------------------------------------------------------------------------------------- torchrun
def _in_child(fn: Callable[..., Any], *fn_args: Any) -> Any:
    """``fn(*fn_args)`` in a fresh (spawned) process, which has no torch.distributed process group: the library's
    Hessian products and sweeps would otherwise all-reduce with processes computing other networks."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *fn_args).result()


def _assemble(scale: Any, out: str, models: list[str] | None, seeds: int | None, data_root: str | None, device: str,
              names: list[str], per_experiment: dict[str, dict[str, Any]], quiet: bool
              ) -> list[tuple[str, float, list[str], str]]:
    """Rank 0's child: every experiment from the cells (computing any still missing), then the report."""
    from nets.experiments.report import write_report
    from nets.experiments.runner import EXPERIMENTS, make_context, run_experiment

    t0 = time.perf_counter()

    def progress(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - t0:7.1f} s] {message}", file=sys.stderr, flush=True)

    ctx = make_context(scale, out, models=models, seeds=seeds, data_root=data_root, device=device, progress=progress)
    records = [run_experiment(n, ctx, report=False, precomputed=per_experiment.get(n) or None) for n in names]
    write_report(ctx.out, list(EXPERIMENTS))
    return _summaries(records)


def _run_distributed(args: argparse.Namespace, names: list[str]) -> int:
    from datetime import timedelta

    import torch.distributed as dist

    from nets.experiments.runner import _worker, partition

    run = context()
    ectx = _make_context(args)  # validates; computes nothing
    groups = partition(ectx.specs, run.world_size)
    mine = [s.key for s in groups[run.rank]] if run.rank < len(groups) else []
    root = None if args.data_root is None else str(args.data_root)
    say = _progress(args)
    if say is not None:
        say(f"{run.world_size} processes share the networks: "
            + " | ".join(",".join(s.key for s in g) for g in groups)
            + (f" ({run.world_size - len(groups)} process(es) with none)" if len(groups) < run.world_size else ""))
    stats = (_in_child(_worker, ectx.scale, str(args.out), mine, len(ectx.seeds), root, args.device, names,
                       args.quiet or not run.is_main) if mine else {})
    # a group of its own with a long timeout: the processes wait here for the slowest share
    group = dist.new_group(backend="gloo", timeout=timedelta(hours=SYNC_TIMEOUT_HOURS))
    gathered: list[Any] = [None] * run.world_size
    dist.all_gather_object(gathered, (",".join(mine), stats), group=group)
    if run.is_main:
        per_experiment: dict[str, dict[str, Any]] = {}
        for key, st in gathered:
            for name, s in st.items():
                per_experiment.setdefault(name, {})[key] = s
        rows = _in_child(_assemble, ectx.scale, str(args.out), args.models, args.seeds, root, args.device, names,
                         per_experiment, args.quiet)
        _print(args, rows)
    dist.barrier(group=group)
    return 0
