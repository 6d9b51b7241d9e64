"""``prunelimit grda`` end to end with tiny settings, and its diagnostics against a dense float64 Hessian."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from nets.cli import main
from nets.cli.grda import JSON_NAME, PNG_NAME, _bezier, _flat, _functional_loss, directional_diagnostics
from nets.data import load_dataset
from nets.models import build_model


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["grda", "--out", str(out), "--epochs", "3", "--hidden", "4", "--hessian", "lanczos", "--top-k", "3",
               "--bezier-steps", "3", "--path-points", "5", "--c", "0.05", "--no-progress"])
    assert rc == 0
    res = json.loads((out / JSON_NAME).read_text())
    assert (out / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left by the atomic writes
    for name in ("sgd", "grda"):
        assert len(res[name]["history"]) == 3
        assert 0.0 <= res[name]["final_test_acc"] <= 1.0
    sp = res["grda"]["sparsity"]
    assert sp["n_parameters"] == 64 * 4 + 4 + 4 * 10 + 10
    assert set(sp["per_tensor"]) == {"net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"}
    assert 0.0 < sp["global_all_parameters"] < 1.0  # c = 0.05 prunes something in 3 epochs
    total = sum(s * n for s, n in zip(sp["per_tensor"].values(), (256, 4, 40, 10)))
    assert sp["global_all_parameters"] == pytest.approx(total / sp["n_parameters"], rel=1e-12)
    assert res["sgd"]["history"][-1]["sparsity"] == 0.0
    d = res["directional"]
    assert d["hessian_method"] == "lanczos" and d["hessian_converged"]
    assert 0.0 <= d["projection_ratio_top_k"] <= 1.0
    # both paths start at w^SGD and end at w^gRDA
    assert d["linear_path_loss"][0] == pytest.approx(d["bezier_path_loss"][0], rel=1e-12)
    assert d["linear_path_loss"][-1] == pytest.approx(d["bezier_path_loss"][-1], rel=1e-12)
    assert len(d["path_t"]) == 5
    text = capsys.readouterr().out
    assert "projection ratio onto top-3 Hessian eigenvectors" in text and "gRDA sparsity" in text


def test_directional_diagnostics_against_dense_hessian():
    data = load_dataset("digits", seed=0)
    g = torch.Generator().manual_seed(1)
    m1 = build_model("mlp", 10, (64,), generator=g, hidden=(3,))
    m2 = copy.deepcopy(m1)
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
            p.mul_((p.abs() > 0.05).to(p.dtype))
    before = [p.detach().clone() for p in m1.parameters()]
    res = {}
    for method in ("dense", "lanczos"):
        res[method] = directional_diagnostics(m1, m2, data, top_k=4, hessian=method, path_points=3, bezier_steps=2,
                                              generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, m1.parameters()))  # caller's model untouched
    # independent reference: torch.func.hessian of the float64 mean cross-entropy, numpy eigh
    X = torch.stack([data.train_eval[i][0] for i in range(len(data.train_eval))]).double()
    y = torch.tensor([int(data.train_eval[i][1]) for i in range(len(data.train_eval))])
    loss = _functional_loss(copy.deepcopy(m1).double(), X, y)
    w1, w2 = _flat(m1).double(), _flat(m2).double()
    H = torch.func.hessian(loss)(w1).numpy()
    evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    V = evecs[:, -4:]
    delta = (w2 - w1).numpy()
    ref = np.linalg.norm(V.T @ delta) / np.linalg.norm(delta)
    np.testing.assert_allclose(res["dense"]["top_eigenvalues"], evals[::-1][:4], rtol=1e-10)
    assert res["dense"]["projection_ratio_top_k"] == pytest.approx(ref, rel=1e-8)
    # Lanczos: eigenvectors to its residual tolerance; the ratio agrees to ~sqrt of it at worst
    np.testing.assert_allclose(res["lanczos"]["top_eigenvalues"], evals[::-1][:4], rtol=1e-8)
    assert res["lanczos"]["projection_ratio_top_k"] == pytest.approx(ref, rel=1e-5)
    with torch.no_grad():
        assert res["dense"]["linear_path_loss"][1] == pytest.approx(float(loss(0.5 * (w1 + w2))), rel=1e-12)
        theta = 0.5 * (w1 + w2)
        assert torch.allclose(_bezier(w1, theta, w2, torch.tensor(0.5, dtype=torch.float64)), theta)
    with pytest.raises(ValueError, match="--top-k must be < the number of parameters"):
        directional_diagnostics(m1, m2, data, top_k=10_000, hessian="dense", path_points=3, bezier_steps=1,
                                generator=torch.Generator())


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--lr", "-1"], "must be > 0, got -1"),
        (["--c", "nan"], "must be a finite number >= 0, got nan"),
        (["--epochs", "two"], "expected a int, got 'two'"),
        (["--hessian", "exact"], "invalid choice: 'exact'"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        main(["grda", "--out", str(tmp_path)] + argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_cli_rejects_lr_drop_outside_training(tmp_path):
    with pytest.raises(SystemExit, match=r"--lr-drop-epoch must be in \[1, epochs=3\), got 5"):
        main(["grda", "--out", str(tmp_path), "--epochs", "3", "--lr-drop-epoch", "5", "--no-progress"])
