"""``prunelimit experiment NAME``: regenerate one figure or table of the pruning-limit paper (or ``all``).

Each experiment writes ``--out DIR/NAME/`` (``results.csv``, ``results.json`` with provenance, ``figure.png``,
``summary.md`` stating whether the paper's claim holds on the data run); ``all`` runs every experiment and
writes ``DIR/report.md`` and ``DIR/report.html`` linking them. ``--scale cpu`` (default) uses the bundled data
and small networks (``all`` in under 30 minutes on 2 CPU cores), ``--scale paper`` the paper's networks, data
(``--data-root``) and hyperparameters (a GPU: ``--device cuda``), ``--scale tiny`` seconds (tests).
Rerunning the same command resumes: finished cells (model × seed × setting) are read, not recomputed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nets.cli._shared import add_threads_argument, positive

__all__ = ["add_arguments", "run"]

_SCALES = ("tiny", "cpu", "paper")


def _names() -> list[str]:
    from nets.experiments.runner import EXPERIMENTS

    return [*EXPERIMENTS, "all"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", choices=_names(),
                        help="experiment to run, or 'all' (see --list): " + ", ".join(_names()))
    parser.add_argument("--list", action="store_true", help="list the experiments and the networks of each scale")
    parser.add_argument("--scale", choices=_SCALES, default="cpu",
                        help="tiny (seconds, tests), cpu (default: bundled data, < 30 min on 2 cores), paper (GPU)")
    parser.add_argument("--models", nargs="+", default=None, metavar="KEY",
                        help="networks of the scale to run (default: all of them; see --list)")
    parser.add_argument("--seeds", type=positive(int), default=None, metavar="K",
                        help="independent runs per network: seeds 0..K-1 (default: the scale's, 3)")
    parser.add_argument("--out", type=Path, default=Path("prunelimit-experiments"),
                        help="output folder (default prunelimit-experiments); rerunning resumes from it")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="local folder holding cifar-10-batches-py, cifar-100-python, tiny-imagenet-200 "
                             "(--scale paper); nothing is downloaded")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    parser.add_argument("--jobs", type=positive(int), default=1,
                        help="with 'all': compute in this many processes, each taking a share of the networks "
                             "(default 1; 2 uses both cores of the cpu scale's budget); results are the same")
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


def run(args: argparse.Namespace) -> int:
    import torch

    if args.list:
        return _list()
    if args.name is None:
        print("error: give an experiment NAME or 'all' (see --list)", file=sys.stderr)
        return 2
    previous = torch.get_num_threads()
    threads = args.threads if args.threads is not None else (1 if args.scale != "paper" else None)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous)


def _run(args: argparse.Namespace) -> int:
    from nets.experiments.report import fmt
    from nets.experiments.runner import make_context, run_all, run_experiment

    t0 = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:7.1f} s] {message}", file=sys.stderr, flush=True)

    try:
        ctx = make_context(args.scale, args.out, models=args.models, seeds=args.seeds, data_root=args.data_root,
                           device=args.device, progress=progress)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        records = (run_all(ctx, jobs=args.jobs, quiet_workers=args.quiet) if args.name == "all"
                   else [run_experiment(args.name, ctx)])
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = max(len(r.name) for r in records)
    for r in records:
        claims = "; ".join(v.status for v in r.outcome.verdicts)
        print(f"{r.name:<{width}}  {fmt(r.wall_seconds, 3):>6} s  {claims}")
        print(f"{'':<{width}}  {r.outcome.headline}")
    print(f"wrote {args.out / 'report.md'}, {args.out / 'report.html'} and "
          + ", ".join(str(args.out / r.name) for r in records))
    return 0
