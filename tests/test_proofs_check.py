"""pytest runs every derivation check of :mod:`proofs_check` (one test per check), and the coverage machinery:
every registered formula is covered, and the scan fails for an unregistered public function, an unknown id
or an uncovered formula."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from proofs_check import formulas
from proofs_check.coverage import coverage_problems, coverage_rows, render_by_check, render_markdown, resolve
from proofs_check.registry import CheckResult, all_checks, check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("chk", all_checks(), ids=lambda c: c.name)
def test_derivation(chk):
    res = chk.func()
    assert res.passed, f"{chk.name} ({chk.equation}): {res.detail}"


def test_coverage_is_complete():
    assert coverage_problems() == []
    rows = coverage_rows()
    assert len(rows) == len(formulas.FORMULAS) and all(r.checks for r in rows)
    for r in rows:
        assert callable(resolve(r.formula.target))


def test_every_check_names_what_it_covers():
    for c in all_checks():
        assert c.covers and all(fid in formulas.FORMULAS for fid in c.covers), c.name
    with pytest.raises(ValueError, match="must name the library formulas it covers"):
        check("x", "y", covers=())


def test_coverage_scan_finds_gaps(monkeypatch):
    checks = all_checks()
    # an uncovered formula and an id that resolves to nothing
    monkeypatch.setitem(formulas.FORMULAS, "theory.limits.not_a_function",
                        formulas.Formula("theory.limits.not_a_function", "§2", "missing"))
    problems = coverage_problems(checks)
    assert any("does not resolve" in p and "not_a_function" in p for p in problems)
    monkeypatch.delitem(formulas.FORMULAS, "theory.limits.not_a_function")
    # a check naming an unregistered id
    fake = type(checks[0])("fake", "eq", lambda: CheckResult(True), "m", ("theory.limits.unknown_id",))
    assert any("unknown_id" in p and "not registered" in p for p in coverage_problems(checks + [fake]))
    # a new public function in a scanned module that nobody registered (the colleague's hook)
    import theory.limits

    def some_new_prediction():  # pragma: no cover - never called
        return None

    some_new_prediction.__module__ = "theory.limits"
    monkeypatch.setattr(theory.limits, "some_new_prediction", some_new_prediction, raising=False)
    monkeypatch.setattr(theory.limits, "__all__", [*theory.limits.__all__, "some_new_prediction"])
    problems = coverage_problems(checks)
    assert any("theory.limits.some_new_prediction is neither a registered formula nor exempt" in p for p in problems)
    # its one-line registration without a covering check is still a gap
    monkeypatch.setitem(formulas.FORMULAS, "theory.limits.some_new_prediction",
                        formulas.Formula("theory.limits.some_new_prediction", "§2.1", "Haar prediction"))
    problems = coverage_problems(checks)
    assert problems == ["formula 'theory.limits.some_new_prediction' is covered by no check (name it in a check's covers=)"]
    # and a check that covers it closes the gap
    cover = type(checks[0])("cover", "eq", lambda: CheckResult(True), "m", ("theory.limits.some_new_prediction",))
    assert coverage_problems(checks + [cover]) == []


def test_markdown_table():
    md = render_markdown(coverage_rows())
    lines = md.splitlines()
    assert lines[0].startswith("| formula | § |") and len(lines) == len(formulas.FORMULAS) + 2
    assert "`theory.limits.pruning_limit#sharpness_bound` | §2 |" in md and "`limits/sharpness-bound`" in md
    by_check = render_by_check(all_checks(), markdown=True).splitlines()
    assert len(by_check) == len(all_checks()) + 2 and "`limits/bands`" in by_check[2 + [c.name for c in all_checks()].index("limits/bands")]


def test_cli_coverage_json_and_errors(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "proofs_check", *a], capture_output=True, text=True, cwd=ROOT)  # noqa: E731
    out = run("--coverage", "--markdown")
    assert out.returncode == 0 and out.stdout.startswith("| formula |")
    out = run("a_eta_tail", "gordon_escape", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    rec = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in rec["checks"]] == ["a_eta_tail", "gordon_escape"] and rec["coverage_problems"] == []
    assert all(c["passed"] for c in rec["checks"])
    out = run("no_such_check")
    assert out.returncode == 2 and "unknown check names: no_such_check" in out.stderr


def test_a_failing_check_fails_the_run(monkeypatch):
    """The runner reports a failing or raising check as a failure (it cannot pass silently)."""
    from proofs_check import registry

    monkeypatch.setattr(registry, "_REGISTRY", list(registry._REGISTRY))

    @check("tmp/fails", "1 = 2", covers=("theory.kinematics.a_eta",))
    def _fails():
        return CheckResult(False, "1 ≠ 2")

    @check("tmp/raises", "boom", covers=("theory.kinematics.a_eta",))
    def _raises():
        raise ArithmeticError("boom")

    out = {o.check.name: o for o in registry.run_all(["tmp/fails", "tmp/raises"])}
    assert not out["tmp/fails"].result.passed and not out["tmp/raises"].result.passed
    assert "ArithmeticError: boom" in out["tmp/raises"].error
    with pytest.raises(ValueError, match="duplicate check name"):
        check("tmp/fails", "again", covers=("theory.kinematics.a_eta",))(_fails)


def test_module_namespace_is_not_polluted():
    assert isinstance(formulas, types.ModuleType) and "check" not in vars(formulas)
