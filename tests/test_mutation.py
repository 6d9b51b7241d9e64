"""The mutation tool (bench/mutation.py): its list applies to the current tree, and the CI subset of planted
mathematical bugs is caught (each by the checks covering the mutated formula or by the relevant tests).

The full run (every mutation, every catcher) is ``python bench/mutation.py``; it takes about an hour on the
shared 2-core machine, so CI runs the subset (about 5 minutes there).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("bench_mutation", ROOT / "bench" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_mutation"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_mutation_applies_once_and_names_registered_formulas():
    from proofs_check.formulas import FORMULAS

    tool = _tool()
    assert tool.check_mutations() == []
    assert len(tool.MUTATIONS) >= 40
    for m in tool.MUTATIONS:
        assert m.formulas and all(f in FORMULAS for f in m.formulas), m.id
        assert tool._checks_covering(m.formulas), f"{m.id}: no check covers {m.formulas}"
    assert set(tool.CI_SUBSET) <= {m.id for m in tool.MUTATIONS}
    assert {"L-sharp-eps", "K-tail-8d", "L-band-sqrt", "L-unc-half"} <= set(tool.CI_SUBSET)


def test_catcher_names_from_junit(tmp_path):
    tool = _tool()
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_proofs_check" name="test_derivation[limits/bands]"><failure/></testcase>'
        '<testcase classname="tests.theory.test_cones.TestEllipticCone" name="test_moreau[spread0]"><failure/></testcase>'
        '<testcase classname="tests.theory.test_cones.TestEllipticCone" name="test_moreau[spread1]"><error/></testcase>'
        '<testcase classname="tests.theory.test_limits" name="test_ok"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    failed = tool._failed_nodes(xml)
    assert failed == ["tests/test_proofs_check.py::test_derivation[limits/bands]",
                      "tests/theory/test_cones.py::TestEllipticCone::test_moreau[spread0]",
                      "tests/theory/test_cones.py::TestEllipticCone::test_moreau[spread1]"]
    assert sorted({tool._catcher(n) for n in failed}) == ["proofs_check:limits/bands",
                                                          "tests/theory/test_cones.py::TestEllipticCone::test_moreau"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PRUNELIMIT_MUTATION_RUN") == "1", reason="inside a mutation run")
def test_ci_subset_of_mutations_is_caught(tmp_path):
    """Applies each CI-subset mutation to a temporary copy of the tree (never this one) and runs the checks
    covering the mutated formula and the relevant tests: every mutation must make something fail."""
    out = tmp_path / "mutation.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "mutation.py"), "--subset", "ci", "--json", str(out)],
                         capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=1500)
    assert out.exists(), res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["baseline"]["returncode"] == 0, report["baseline"]
    survived = [r["id"] for r in report["mutations"] if not r["caught"]]
    assert not survived, f"mutations survived: {survived}\n{res.stdout[-3000:]}"
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert len(report["mutations"]) == len(_tool().CI_SUBSET)
    # the working tree was not touched
    assert (ROOT / "theory" / "limits.py").read_text(encoding="utf-8").count("sharp = trR2 / (trR2 + 2.0 * eps)") == 1
