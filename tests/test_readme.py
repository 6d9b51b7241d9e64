"""The README's Library section runs verbatim, and its outputs mean what the README says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _library_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- library -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no <!-- library --> python block"
    return m.group(1)


@pytest.mark.slow
def test_readme_library_section_runs_verbatim() -> None:
    code = _library_block()
    threads = torch.get_num_threads()
    out = io.StringIO()
    namespace: dict = {"__name__": "__readme__"}
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md<library>", "exec"), namespace)  # noqa: S102 - the point of the test
    finally:
        torch.set_num_threads(threads)
    text = out.getvalue()
    assert "fundamental (compensated)" in text and "magnitude pruning (LOMP)" in text
    r = namespace["result"]
    assert 0.0 <= r.fundamental.measured <= r.magnitude.measured <= 1.0
    assert "delta = " in text and "Monte Carlo" in text
    mc, exact = namespace["mc"], namespace["exact"]
    assert abs(mc.mean - exact) <= 4 * mc.stderr
