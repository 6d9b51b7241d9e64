"""The import layering: theory stands on nothing from the project, numerics may use theory, nets uses both.

Checked statically on every module's ``import`` statements (module level and inside functions alike), so a
lazy import cannot hide a back edge; and dynamically: importing ``theory`` does not load torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "numerics", "nets", "proofs_check")
#: package -> the project packages it may import
ALLOWED = {
    "theory": {"theory"},
    "numerics": {"numerics", "theory"},
    "nets": {"nets", "numerics", "theory"},
    "proofs_check": {"proofs_check", "theory", "numerics", "nets"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_layering(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in _imports(path):
            if top in PACKAGES and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_theory_imports_no_torch() -> None:
    code = ("import sys, theory.limits, theory.quadratic, theory.spectrum, theory.statdim, theory.width, "
            "theory.kinematics, theory.directional, theory.validation; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_the_checker_sees_a_back_edge(tmp_path: Path) -> None:
    """The static check itself can fail: a function-level import of nets inside theory is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from nets.hessian import HessianOperator\n    import numpy\n")
    assert (2, "nets") in _imports(f)
