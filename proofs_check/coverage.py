"""Which check covers which library formula (``python -m proofs_check --coverage [--markdown]``).

The table is computed from the ``covers=`` of every registered check and :data:`proofs_check.formulas.FORMULAS`;
:func:`coverage_problems` lists everything that makes the coverage incomplete (see :mod:`proofs_check.formulas`).
No check is run.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from proofs_check.formulas import EXEMPT, FORMULAS, SCANNED_MODULES, Formula
from proofs_check.registry import Check, all_checks

__all__ = ["CoverageRow", "coverage_rows", "coverage_problems", "render_text", "render_markdown", "render_by_check",
           "resolve"]


@dataclass(frozen=True)
class CoverageRow:
    """One registered formula and the names of the checks that cover it."""

    formula: Formula
    checks: tuple[str, ...] = field(default_factory=tuple)


def resolve(target: str) -> Any:
    """The library object at the dotted path ``target`` (``module.attr[.attr…]``); ``ImportError`` /
    ``AttributeError`` if there is none."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module in {target!r}")


def coverage_rows(checks: list[Check] | None = None) -> list[CoverageRow]:
    """Every registered formula with the checks that cover it (registration order)."""
    checks = all_checks() if checks is None else checks
    by_formula: dict[str, list[str]] = {fid: [] for fid in FORMULAS}
    for c in checks:
        for fid in c.covers:
            if fid in by_formula:
                by_formula[fid].append(c.name)
    return [CoverageRow(FORMULAS[fid], tuple(names)) for fid, names in by_formula.items()]


def _public_definitions(module_name: str) -> list[str]:
    mod = importlib.import_module(module_name)
    names = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
    out = []
    for name in names:
        obj = getattr(mod, name, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == module_name:
            out.append(f"{module_name}.{name}")  # defined here (re-exports are classified where defined)
    return out


def coverage_problems(checks: list[Check] | None = None) -> list[str]:
    """Messages for everything that makes the coverage incomplete (empty when complete)."""
    checks = all_checks() if checks is None else checks
    problems = []
    for c in checks:
        for fid in c.covers:
            if fid not in FORMULAS:
                problems.append(f"check {c.name!r} covers {fid!r}, which is not registered in proofs_check/formulas.py")
    for row in coverage_rows(checks):
        try:
            resolve(row.formula.target)
        except (ImportError, AttributeError) as exc:
            problems.append(f"formula {row.formula.id!r} does not resolve to a library object ({exc})")
            continue
        if not row.checks:
            problems.append(f"formula {row.formula.id!r} is covered by no check (name it in a check's covers=)")
    targets = {f.target for f in FORMULAS.values()}
    for module in SCANNED_MODULES:
        for qual in _public_definitions(module):
            registered = qual in targets or any(t.startswith(qual + ".") for t in targets)
            if not registered and qual not in EXEMPT:
                problems.append(
                    f"public {qual} is neither a registered formula nor exempt: add "
                    f"formula({qual!r}, '§…', '…') to proofs_check/formulas.py and cover it with a check "
                    "(or list it in EXEMPT with the reason it implements no formula)"
                )
    return problems


def render_text(rows: list[CoverageRow]) -> str:
    w = max(len(r.formula.id) for r in rows)
    lines = [f"{'formula':<{w}}  {'§':<5}  checks"]
    for r in rows:
        lines.append(f"{r.formula.id:<{w}}  {r.formula.section:<5}  {', '.join(r.checks) or '-- UNCOVERED --'}")
    n_cov = sum(bool(r.checks) for r in rows)
    lines.append(f"{n_cov} of {len(rows)} formulas covered")
    return "\n".join(lines)


def render_markdown(rows: list[CoverageRow]) -> str:
    """A markdown table (formula, section, what, checks) for docs/math.md to include."""
    lines = ["| formula | § | what | checks (`python -m proofs_check NAME`) |", "|---|---|---|---|"]
    for r in rows:
        what = r.formula.what.replace("|", "\\|")
        checks = ", ".join(f"`{c}`" for c in r.checks) or "**uncovered**"
        lines.append(f"| `{r.formula.id}` | {r.formula.section} | {what} | {checks} |")
    return "\n".join(lines)


def render_by_check(checks: list[Check], *, markdown: bool = False) -> str:
    """The check-by-check view: each check, the equation it verifies and the formulas it covers."""
    if markdown:
        lines = ["| check | verifies | covers |", "|---|---|---|"]
        for c in checks:
            eq = c.equation.replace("|", "\\|")
            lines.append(f"| `{c.name}` | {eq} | {', '.join(f'`{f}`' for f in c.covers)} |")
        return "\n".join(lines)
    w = max(len(c.name) for c in checks)
    return "\n".join(f"{c.name:<{w}}  {', '.join(c.covers)}" for c in checks)
