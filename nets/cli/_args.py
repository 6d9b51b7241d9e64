"""argparse value types shared by the subcommands: each rejects a bad value with a message carrying it."""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["positive", "nonneg_float", "fraction"]


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


def fraction(s: str) -> float:
    """A float in ``[0, 1]``."""
    v = _float(s)
    if not (0.0 <= v <= 1.0):
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {s}")
    return v
