"""Helpers shared by the subcommands: argparse value types (each rejects a bad value with a message carrying
it) and the torch thread guard."""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

__all__ = ["positive", "nonneg_float", "nonneg_int", "fraction", "add_threads_argument", "run_with_threads"]


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


#: Built-in datasets whose tiny matrices gain nothing from intra-op threads and lose much to contention.
_SMALL_DATA = ("digits", "teacher-student")


def add_threads_argument(parser: argparse.ArgumentParser | Any) -> None:
    """``--threads N``: torch CPU threads for the run (default: 1 on the built-in small datasets)."""
    parser.add_argument("--threads", type=positive(int), default=None,
                        help="torch CPU threads (default: 1 for the built-in digits/teacher-student data, whose "
                             "tiny matrices gain nothing from intra-op threads and lose much to contention "
                             "(OpenMP spin-waits on a busy machine); torch's choice otherwise)")


def run_with_threads(args: argparse.Namespace, body: Callable[[argparse.Namespace], int]) -> int:
    """Run ``body(args)`` with ``--threads`` torch threads and restore torch's count afterwards (the CLI may
    run inside another program, e.g. the tests: it leaves no trace)."""
    import torch

    previous = torch.get_num_threads()
    threads = getattr(args, "threads", None)
    data = str(getattr(args, "data", "digits")).lower().replace("_", "-")
    if threads is None and data in _SMALL_DATA:
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return body(args)
    finally:
        torch.set_num_threads(previous)
