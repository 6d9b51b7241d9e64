"""Registry of derivation checks.

Each check is a function returning a :class:`CheckResult` (or raising); it is registered with the equation
it verifies so that ``python -m proofs_check`` can print a table and exit non-zero on any failure. Modules
holding checks are listed in :data:`CHECK_MODULES` and imported on demand (no work at import time).
"""

from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["CheckResult", "Check", "check", "all_checks", "run_all", "CHECK_MODULES"]

#: Modules that define checks, in the order the table prints them.
CHECK_MODULES: tuple[str, ...] = (
    "proofs_check.geometry",
    "proofs_check.limits",
    "proofs_check.directional",
)


@dataclass
class CheckResult:
    """Outcome of one check: ``passed``, and a short human-readable ``detail`` (e.g. a residual)."""

    passed: bool
    detail: str = ""


@dataclass
class Check:
    name: str
    equation: str
    func: Callable[[], CheckResult]
    module: str = ""


@dataclass
class Outcome:
    check: Check
    result: CheckResult
    seconds: float
    error: str | None = field(default=None)


_REGISTRY: list[Check] = []


def check(name: str, equation: str) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """Register ``func`` as the check ``name`` verifying ``equation`` (cite MATH.md section / paper eq.)."""

    def deco(func: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if any(c.name == name for c in _REGISTRY):
            raise ValueError(f"duplicate check name {name!r}")
        _REGISTRY.append(Check(name, equation, func, func.__module__))
        return func

    return deco


def all_checks() -> list[Check]:
    """Import every module in :data:`CHECK_MODULES` that exists and return the registered checks."""
    for mod in CHECK_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    return list(_REGISTRY)


def run_all(selected: list[str] | None = None) -> list[Outcome]:
    """Run all (or the ``selected``) checks; exceptions become failures with their traceback."""
    outcomes = []
    for c in all_checks():
        if selected and c.name not in selected:
            continue
        t0 = time.perf_counter()
        try:
            res = c.func()
            if not isinstance(res, CheckResult):
                raise TypeError(f"check {c.name!r} returned {type(res).__name__}, expected CheckResult")
            outcomes.append(Outcome(c, res, time.perf_counter() - t0))
        except Exception:  # noqa: BLE001 - a failing derivation is reported, not raised
            outcomes.append(
                Outcome(c, CheckResult(False, "exception"), time.perf_counter() - t0, traceback.format_exc())
            )
    return outcomes
