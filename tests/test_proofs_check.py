"""pytest runs every derivation check of :mod:`proofs_check` (one test per check)."""

import pytest

from proofs_check.registry import all_checks


@pytest.mark.parametrize("chk", all_checks(), ids=lambda c: c.name)
def test_derivation(chk):
    res = chk.func()
    assert res.passed, f"{chk.name} ({chk.equation}): {res.detail}"
