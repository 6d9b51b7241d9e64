"""Helpers shared by the subcommands: argparse value types (each rejects a bad value with a message carrying
it) and the torch thread guard (:mod:`nets.resources`: one thread per physical core the process may use; 1 on
the bundled small datasets; ``--threads``/``PRUNELIMIT_THREADS``/``OMP_NUM_THREADS`` override)."""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

__all__ = ["positive", "nonneg_float", "nonneg_int", "fraction", "bounded", "add_threads_argument", "run_with_threads",
           "small_builtin_data"]


def positive(kind: type) -> Callable[[str], int | float]:
    """A value type accepting a finite ``kind`` (int or float) ``> 0``."""

    def parse(s: str) -> int | float:
        try:
            v = kind(s)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {s!r}") from exc
        if not (v > 0) or (isinstance(v, float) and not math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
        return v

    parse.__name__ = f"positive_{kind.__name__}"
    return parse


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a float, got {s!r}") from exc


def nonneg_float(s: str) -> float:
    """A finite float ``≥ 0``."""
    v = _float(s)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {s}")
    return v


def nonneg_int(s: str) -> int:
    """An int ``≥ 0``."""
    try:
        v = int(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an int, got {s!r}") from exc
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def fraction(s: str) -> float:
    """A float in ``[0, 1]``."""
    v = _float(s)
    if not (0.0 <= v <= 1.0):
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {s}")
    return v


def bounded(kind: type, lo: float, hi: float | None = None, *, open_lo: bool = False) -> Callable[[str], int | float]:
    """A value type accepting a finite ``kind`` in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""

    def parse(s: str) -> int | float:
        try:
            v = kind(s)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {s!r}") from exc
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
        if (v <= lo if open_lo else v < lo) or (hi is not None and v > hi):
            if hi is None:
                raise argparse.ArgumentTypeError(f"must be {'>' if open_lo else '>='} {lo:g}, got {s}")
            raise argparse.ArgumentTypeError(f"must lie in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {s}")
        return v

    parse.__name__ = f"bounded_{kind.__name__}"
    return parse


#: Built-in datasets whose tiny matrices gain nothing from intra-op threads and lose much to contention.
_SMALL_DATA = ("digits", "teacher-student")


def small_builtin_data(args: argparse.Namespace) -> bool:
    """Whether the command runs on a bundled small dataset (1 thread by default there)."""
    data = getattr(args, "data", "digits")
    names = data if isinstance(data, (list, tuple)) else [data]
    return all(str(d).lower().replace("_", "-") in _SMALL_DATA for d in names)


def add_threads_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--threads N``: torch CPU threads for the run (default: :mod:`nets.resources`' rule)."""
    parser.add_argument("--threads", type=positive(int), default=None,
                        help="torch CPU threads (default: 1 for the built-in digits/teacher-student data, whose tiny "
                             "matrices gain nothing from intra-op threads and lose much to contention; otherwise one "
                             "per physical core this process may use, shared among torchrun's local processes; "
                             "PRUNELIMIT_THREADS or OMP_NUM_THREADS in the environment also set it)")


def run_with_threads(args: argparse.Namespace, body: Callable[[argparse.Namespace], int]) -> int:
    """Run ``body(args)`` with the thread count of :func:`nets.resources.choose_threads` (``--threads`` first) and
    restore torch's count afterwards (the CLI may run inside another program, e.g. the tests: it leaves no
    trace). The dispatcher already does this for every command; calling it again is harmless."""
    from nets.resources import choose_threads, use_threads

    with use_threads(choose_threads(getattr(args, "threads", None), small_problem=small_builtin_data(args))):
        return body(args)
