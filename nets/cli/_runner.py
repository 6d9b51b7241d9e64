"""Running one subcommand: the shared machinery every ``prunelimit`` command gets from the dispatcher.

:func:`run_command` wraps a subcommand's ``run(args)`` and gives it, without the subcommand doing anything:

1. **torchrun**: under ``torchrun --nproc_per_node K`` (``WORLD_SIZE`` > 1 in the environment) the default
   process group is initialised once per process (gloo on CPU, NCCL for ``--device cuda``, each rank on
   ``cuda:LOCAL_RANK``; destroyed at exit), stdout of every rank but 0 is discarded (results print once), and a
   successful command ends at a barrier, so that no rank leaves before rank 0 has written;
2. **preflight** of the options every command spells the same way: ``--out`` must be (or be creatable as) a
   writable directory, ``--device`` must exist, ``--json`` must be writable (:mod:`nets.cli._preflight`);
3. **threads**: one per physical core the process may use (:mod:`nets.resources`; ``--threads``,
   ``PRUNELIMIT_THREADS`` or ``OMP_NUM_THREADS`` override), restored afterwards;
4. **progress**: bars on a terminal, one line per stage otherwise (:mod:`nets.cli._progress`), warnings of the
   library's loggers on stderr;
5. **the error path** (:mod:`nets.cli._errors`): user errors exit 2 with one line, Ctrl-C 130 with how to
   resume, anything else 1 with one line; ``--debug`` shows tracebacks.

Subcommands read the run's state with :func:`context` (rank, world size, threads, progress mode) and tell it
what a rerun would resume (:meth:`RunContext.training_started`, :meth:`RunContext.epoch_done`), which the
Ctrl-C message reports. A subcommand must itself write files only on rank 0 (``context().is_main``) and split
its work across ranks (the library does for ``limit``/``spectrum``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nets.cli._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    USER_ERRORS,
    UserError,
    report,
)

__all__ = ["RunContext", "context", "run_command", "distributed_env", "is_main_process"]


@dataclass
class RunContext:
    """The state of the running command (module docstring)."""

    command: str
    debug: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    threads: Any = None  # nets.resources.ThreadChoice
    progress: str = "off"
    resume_dir: str | None = None  # where a training checkpoint is written (None: nothing resumable)
    epoch: int = 0  # last completed (checkpointed) epoch
    epochs: int | None = None
    resumed_from: int | None = None
    succeeded: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.rank == 0

    def training_started(self, checkpoint_dir: str, epochs: int, resumed_from: int | None = None) -> None:
        self.resume_dir, self.epochs = checkpoint_dir, epochs
        if resumed_from:
            self.epoch = self.resumed_from = resumed_from

    def epoch_done(self, epoch: int) -> None:
        self.epoch = epoch

    def interrupt_message(self) -> str:
        if self.resume_dir is None:
            return "interrupted; nothing of this run is saved to resume from: rerun the same command to start again"
        if self.epoch <= 0:
            return "interrupted before the first training epoch was saved; rerun the same command to start again"
        if self.epochs is not None and self.epoch >= self.epochs:
            return (f"interrupted; rerun the same command to resume from epoch {self.epoch} (training is complete "
                    f"and saved in {self.resume_dir}; the stages after it run again)")
        return f"interrupted; rerun the same command to resume from epoch {self.epoch}"


_CURRENT: list[RunContext] = []


def context() -> RunContext:
    """The running command's :class:`RunContext` (a default one outside :func:`run_command`)."""
    return _CURRENT[-1] if _CURRENT else RunContext("")


def is_main_process() -> bool:
    """Whether this process is rank 0 (or not distributed): the one that prints and writes."""
    return context().is_main


def distributed_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when started by ``torchrun`` with more than one process, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1:
        return None
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def _distributed(ctx: RunContext, args: argparse.Namespace) -> Iterator[None]:
    env = distributed_env()
    if env is None:
        yield
        return
    import torch
    import torch.distributed as dist

    ctx.rank, ctx.world_size, ctx.local_rank = env
    device = str(getattr(args, "device", "cpu") or "cpu")
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise UserError(f"--device {device} under torchrun, but torch has no CUDA here; use --device cpu "
                            "(gloo) or a CUDA build", option="--device", value=device)
        torch.cuda.set_device(ctx.local_rank)
        args.device = f"cuda:{ctx.local_rank}"
    ctx.backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        # one group for the life of the process: a second command in the same process (a driver calling main()
        # twice) reuses it; re-creating the default group on torchrun's store would meet the first one's keys
        from nets.limit.parallel import init_process_group

        init_process_group(ctx.backend, init_method="env://")
        atexit.register(_destroy_group)
    yield
    if ctx.succeeded:
        # every rank has finished (rank 0 has written its files) before any returns; not after a failure, where
        # the other ranks may be inside another collective (torchrun then stops them)
        dist.barrier()


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _quiet_stdout(ctx: RunContext) -> Iterator[None]:
    """Discard stdout on every rank but 0."""
    if ctx.is_main:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _logging(ctx: RunContext) -> Iterator[None]:
    from nets.cli._progress import STAGE_LOGGERS, StageLogger

    handler = StageLogger(command=ctx.command)
    touched: list[tuple[logging.Logger, int, bool]] = []
    if ctx.progress == "lines":
        for name in STAGE_LOGGERS:
            lg = logging.getLogger(name)
            touched.append((lg, lg.level, lg.propagate))
            lg.setLevel(logging.INFO)
            lg.addHandler(handler)
            lg.propagate = False
    warn = StageLogger(command=ctx.command)
    warn.setLevel(logging.WARNING)
    roots = [logging.getLogger(n) for n in ("nets", "numerics", "theory")] if ctx.is_main else []
    for lg in roots:
        lg.addHandler(warn)
    try:
        yield
    finally:
        for lg, level, propagate in touched:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        for lg in roots:
            lg.removeHandler(warn)


def _threads(args: argparse.Namespace) -> Any:
    from nets.cli._shared import small_builtin_data
    from nets.resources import choose_threads

    return choose_threads(getattr(args, "threads", None), small_problem=small_builtin_data(args))


def run_command(command: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run ``run(args)`` with the machinery of the module docstring; returns the exit code."""
    from nets.cli._preflight import generic_preflight

    ctx = RunContext(command, debug=bool(getattr(args, "debug", False)))
    _CURRENT.append(ctx)
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_distributed(ctx, args))
                stack.enter_context(_quiet_stdout(ctx))
                from nets.cli._progress import progress_mode

                ctx.progress = progress_mode(args, rank=ctx.rank)
                stack.enter_context(_logging(ctx))
                generic_preflight(args)
                if "threads" in vars(args) or "device" in vars(args):  # a torch command
                    from nets.resources import use_threads

                    ctx.threads = stack.enter_context(use_threads(_threads(args)))
                code = int(run(args) or 0)
                ctx.succeeded = code == 0
                return code
            except KeyboardInterrupt as exc:
                if ctx.debug:
                    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
                if ctx.is_main:
                    print(f"prunelimit {command}: {ctx.interrupt_message()}", file=sys.stderr, flush=True)
                return EXIT_INTERRUPTED
            except UserError as exc:
                if ctx.is_main:
                    report(command, str(exc), exc=exc, debug=ctx.debug)
                return EXIT_USAGE
            except SystemExit as exc:  # a subcommand's own exit with a message
                if isinstance(exc.code, int) or exc.code is None:
                    return int(exc.code or 0)
                if ctx.is_main:
                    text = str(exc.code)
                    for prefix in (f"prunelimit {command}: error: ", f"prunelimit {command}: "):
                        text = text[len(prefix):] if text.startswith(prefix) else text
                    report(command, text, exc=exc, debug=ctx.debug)
                return EXIT_USAGE
            except FloatingPointError as exc:  # divergence
                if ctx.is_main:
                    report(command, _divergence_message(exc, args), exc=exc, debug=ctx.debug)
                return EXIT_USAGE
            except USER_ERRORS as exc:
                if ctx.is_main:
                    report(command, str(exc) or type(exc).__name__, exc=exc, debug=ctx.debug)
                return EXIT_USAGE
            except MemoryError as exc:
                report(command, f"out of memory ({type(exc).__name__}: {exc}); lower the sizes of the run (samples, "
                       "probes, batch size) or use a machine with more memory", exc=exc, debug=ctx.debug,
                       prefix=_rank_prefix(ctx))
                return EXIT_FAILURE
            except Exception as exc:  # noqa: BLE001 - the last resort of the error path
                if type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(exc):
                    # torch.OutOfMemoryError (CUDA) or the CPU allocator's RuntimeError
                    msg = (f"out of memory ({one(exc)}); lower the sizes of the run (samples, probes, batch "
                           "size) or use a device with more memory")
                else:
                    msg = f"unexpected {type(exc).__name__}: {one(exc)} (rerun with --debug for the traceback)"
                report(command, msg, exc=exc, debug=ctx.debug, prefix=_rank_prefix(ctx))
                return EXIT_FAILURE
    finally:
        _CURRENT.pop()


def one(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _rank_prefix(ctx: RunContext) -> str:
    return f"[rank {ctx.rank}] " if ctx.world_size > 1 else ""


def _divergence_message(exc: FloatingPointError, args: argparse.Namespace) -> str:
    """The library's divergence message in the CLI's words: which epoch, and the option to change."""
    import re

    text = one(exc)
    m = re.match(r"training diverged at epoch (\d+)", text)
    if m is None:
        return text
    epoch = int(m.group(1))
    text = text.split("; use a smaller lr")[0]
    lr = getattr(args, "lr", None)
    advice = "rerun with a smaller --lr" + ("" if lr is None else f" than {lr:g}")
    if epoch > 1:
        saved = "epoch 1" if epoch == 2 else f"epochs 1-{epoch - 1}"
        advice += f", plus --overwrite or a new --out ({saved} saved in --out were trained with this --lr)"
    return f"{text}: {advice}"
