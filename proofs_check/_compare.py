"""Bookkeeping for checks that compare library values with high-precision references.

A :class:`Tally` collects comparisons ``|got − ref| ≤ atol + rtol·|ref|`` (``ref`` an mpmath number or a
sympy/fraction value, ``got`` a float64 library value) and labelled conditions, keeps the largest
ratio error/tolerance, and turns the lot into a :class:`~proofs_check.registry.CheckResult` that names every failure.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath as mp

from proofs_check.registry import CheckResult

#: float64 machine epsilon (the unit of every tolerance below)
EPS = 2.0**-52


def to_mp(x: Any) -> mp.mpf:
    """An mpmath number from a float, int, Fraction, mpmath or sympy number (at the working precision)."""
    if isinstance(x, mp.mpf):
        return x
    if isinstance(x, Fraction):
        return mp.mpf(x.numerator) / x.denominator
    if hasattr(x, "evalf") and not isinstance(x, (int, float)):  # sympy
        return mp.mpf(str(x.evalf(mp.mp.dps + 10)))
    return mp.mpf(x)


class Tally:
    """Comparisons and conditions of one check (see the module docstring)."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.worst = 0.0
        self.count = 0

    def close(self, label: str, got: Any, ref: Any, *, rtol: float, atol: float = 0.0) -> bool:
        """Record ``|got − ref| ≤ atol + rtol·|ref|`` (``got`` finite)."""
        self.count += 1
        g = mp.mpf(float(got))
        r = to_mp(ref)
        err = abs(g - r)
        tol = atol + rtol * abs(r)
        used = float(err / tol) if tol > 0 else (0.0 if err == 0 else math.inf)
        self.worst = max(self.worst, used)
        ok = bool(mp.isfinite(g)) and err <= tol
        if not ok:
            rel = float(err / abs(r)) if r != 0 else float(err)
            self.failures.append(f"{label}: got {float(got)!r}, reference {mp.nstr(r, 17)} (rel {rel:.2e})")
        return ok

    def check(self, label: str, condition: Any) -> bool:
        """Record a condition that must hold."""
        self.count += 1
        ok = bool(condition)
        if not ok:
            self.failures.append(label)
        return ok

    def result(self, summary: str = "") -> CheckResult:
        if self.failures:
            shown = "; ".join(self.failures[:4]) + (f"; … {len(self.failures) - 4} more" if len(self.failures) > 4 else "")
            return CheckResult(False, f"{len(self.failures)} of {self.count} comparisons failed: {shown}")
        return CheckResult(True, f"{self.count} comparisons, max error/tolerance {self.worst:.2f}" + (f"; {summary}" if summary else ""))
