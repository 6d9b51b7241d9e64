"""Registry of derivation checks.

Each check is a function returning a :class:`CheckResult` (or raising). It is registered with the equation it
verifies **and the library formulas it covers** (``covers``: formula ids from :mod:`proofs_check.formulas`),
so that ``python -m proofs_check`` can print a table, exit non-zero on any failure, and list which check
verifies which library function (``--coverage``). A check must evaluate every formula it names at several
non-degenerate points against an independent symbolic or high-precision (≥ 30 digits) reference; a check
that only proves an identity about a formula written inside itself covers nothing.

Modules holding checks are listed in :data:`CHECK_MODULES` and imported on demand (no work at import time).
"""

from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = ["CheckResult", "Check", "Outcome", "check", "all_checks", "run_all", "CHECK_MODULES"]

#: Modules that define checks, in the order the table prints them.
CHECK_MODULES: tuple[str, ...] = (
    "proofs_check.geometry",
    "proofs_check.limits",
    "proofs_check.spectral",
    "proofs_check.directional",
)


@dataclass
class CheckResult:
    """Outcome of one check: ``passed``, and a short human-readable ``detail`` (e.g. a residual)."""

    passed: bool
    detail: str = ""


@dataclass
class Check:
    """A registered check: its ``name``, the ``equation`` it verifies and the formula ids it ``covers``."""

    name: str
    equation: str
    func: Callable[[], CheckResult]
    module: str = ""
    covers: tuple[str, ...] = ()


@dataclass
class Outcome:
    check: Check
    result: CheckResult
    seconds: float
    error: str | None = field(default=None)


_REGISTRY: list[Check] = []


def check(
    name: str, equation: str, *, covers: Sequence[str]
) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """Register ``func`` as the check ``name`` verifying ``equation`` (cite docs/math.md § / paper eq.).

    ``covers`` names the library formulas the check evaluates (ids registered in
    :mod:`proofs_check.formulas`, e.g. ``"theory.kinematics.kinematic_formula#tail"``); at least one.
    """
    covers = tuple(covers)
    if not covers or not all(isinstance(c, str) and c for c in covers):
        raise ValueError(f"check {name!r} must name the library formulas it covers (covers=...), got {covers!r}")

    def deco(func: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if any(c.name == name for c in _REGISTRY):
            raise ValueError(f"duplicate check name {name!r}")
        _REGISTRY.append(Check(name, equation, func, func.__module__, covers))
        return func

    return deco


def all_checks() -> list[Check]:
    """Import every module in :data:`CHECK_MODULES` and return the registered checks."""
    for mod in CHECK_MODULES:
        importlib.import_module(mod)
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
