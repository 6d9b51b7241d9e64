"""The curated package namespaces: every re-exported name resolves, and importing them does no work."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("pkg", ["theory", "numerics", "nets"])
def test_every_export_resolves(pkg):
    mod = __import__(pkg)
    assert mod.__all__, pkg
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert obj is not None, f"{pkg}.{name}"
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(mod, "no_such_name")


def test_package_imports_are_lazy():
    code = "import sys, theory, numerics, nets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
