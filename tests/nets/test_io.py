"""nets.io: complete files or none, ordinary permissions, clear errors; spectra; provenance."""

from __future__ import annotations

import doctest
import json
import os
import stat

import numpy as np
import pytest
import torch

import nets.io as atomic_mod
from nets.io import (atomic_open, atomic_write_json, atomic_write_text, load_spectrum, provenance,
                     save_spectrum)
from numerics.slq import slq
from numerics.testing import goe

EPS = np.finfo(np.float64).eps


def test_doctests() -> None:
    res = doctest.testmod(atomic_mod, raise_on_error=False)
    assert res.attempted > 0 and res.failed == 0


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    p = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(p, "w", encoding="utf-8") as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_permissions_follow_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_json_is_strict_and_serialised_before_opening(tmp_path) -> None:
    p = atomic_write_json(tmp_path / "c.json", {"a": [1.0, 2]}, indent=1)
    assert json.loads(p.read_text()) == {"a": [1.0, 2]}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        atomic_write_json(tmp_path / "d.json", {"a": float("nan")})
    assert not (tmp_path / "d.json").exists() and sorted(os.listdir(tmp_path)) == ["c.json"]


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"mode": "a"}, ValueError, "mode must be 'w' or 'wb', got 'a'"),
        ({"path_suffix": "missing/x.txt"}, FileNotFoundError, "directory of path does not exist"),
    ],
)
def test_error_inputs(tmp_path, kwargs, exc, match) -> None:
    path = tmp_path / kwargs.pop("path_suffix", "x.txt")
    with pytest.raises(exc, match=match):
        with atomic_open(path, **kwargs):
            pass


def test_writes_do_not_touch_the_process_umask(tmp_path, monkeypatch) -> None:
    # setting the umask (even to read it) races with other threads creating files
    if not os.path.exists("/proc/self/status"):
        pytest.skip("reads the umask from /proc/self/status (Linux)")
    old = os.umask(0o027)
    try:
        def refuse(mask):
            raise AssertionError("os.umask called during a write")

        monkeypatch.setattr(os, "umask", refuse)
        p = atomic_write_text(tmp_path / "e.txt", "x")
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_jsonable_makes_strict_json() -> None:
    import numpy as np
    import torch

    obj = {1: np.array([[1.0, np.inf]]), "b": (np.float32(0.5), np.int32(2), np.bool_(False), float("nan")),
           "c": torch.float64, "d": "text", "e": None}
    out = atomic_mod.jsonable(obj)
    assert out == {"1": [[1.0, None]], "b": [0.5, 2, False, None], "c": "torch.float64", "d": "text", "e": None}
    assert type(out["b"][0]) is float and type(out["b"][1]) is int and type(out["b"][2]) is bool
    json.dumps(out, allow_nan=False)


def test_save_load_roundtrip(tmp_path) -> None:
    s = slq(goe(40, np.random.default_rng(12)).operator(), steps=10, n_probes=3, generator=torch.Generator().manual_seed(0)).spectrum
    for name in ("spec.npz", "spec.json"):
        p = save_spectrum(s, tmp_path / name)
        t = load_spectrum(p)
        np.testing.assert_array_equal(t.nodes, s.nodes)
        # Spectrum renormalises rows on construction (w / Σw), which may move the last bit once more
        np.testing.assert_allclose(t.weights, s.weights, rtol=4 * EPS, atol=0)
        assert t.dim == s.dim and t.exact == s.exact
    assert save_spectrum(s, tmp_path / "noext").name == "noext.npz"
    assert sorted(os.listdir(tmp_path)) == ["noext.npz", "spec.json", "spec.npz"]  # no temporary files left
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="is not a prunelimit.Spectrum/1 JSON file"):
        load_spectrum(tmp_path / "bad.json")
    np.savez(tmp_path / "bad.npz", nodes=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="is not a prunelimit.Spectrum/1 npz file"):
        load_spectrum(tmp_path / "bad.npz")




def test_save_spectrum_rejects_non_spectrum(tmp_path) -> None:
    with pytest.raises(TypeError, match="spectrum must be a theory.spectrum.Spectrum, got list"):
        save_spectrum([1.0], tmp_path / "x.json")


def test_provenance_records_versions_and_commit() -> None:
    rec = provenance("cpu")
    assert rec["package"] == "prunelimit" and rec["version"] != ""
    assert rec["numpy"] == np.__version__ and rec["torch"] == torch.__version__
    assert rec["device"] == "cpu" and rec["torch_threads"] == torch.get_num_threads()
    assert rec["git_commit"] is None or len(rec["git_commit"].split("-")[0]) == 40
