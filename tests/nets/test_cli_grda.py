"""``prunelimit grda`` and its studies end to end with tiny settings; its error handling (exit 2, one line)."""

from __future__ import annotations

import json

import pytest

from nets.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _read(out, name):
    rec = json.loads((out / f"{name}.json").read_text())
    assert (out / f"{name}.png").read_bytes()[:8] == PNG
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left by the atomic writes
    assert rec["provenance"]["package"] == "prunelimit" and "torch" in rec["provenance"]
    return rec


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["grda", "--out", str(out), "--epochs", "3", "--hidden", "4", "--top-k", "1", "3", "--bezier-steps", "2",
               "--path-points", "4", "--c", "0.05", "--compensation-steps", "3", "--no-progress"])
    assert rc == 0
    rec = _read(out, "grda")
    res = rec["result"]
    for name in ("sgd", "grda"):
        assert len(res[name]["history"]) == 3
    sp = res["sparsity"]
    assert sp["n_parameters"] == 64 * 4 + 4 + 4 * 10 + 10
    assert set(sp["per_tensor"]) == {"net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"}
    assert 0.0 < sp["prunable_weights"] < 1.0 and res["sgd"]["history"][-1]["sparsity"] == 0.0
    total = sum(s * n for s, n in zip(sp["per_tensor"].values(), (256, 4, 40, 10)))
    assert sp["all_parameters"] == pytest.approx(total / sp["n_parameters"], rel=1e-12)
    d = res["diagnostics"]
    assert set(d["points"]) == {"grda", "magnitude", "compensated", "compensated_grda_mask", "compensated_reopt",
                                "directional", "random"}
    assert d["hessian_method"] == "dense" and set(d["barrier_definitions"]) == {"barrier_endpoints",
                                                                              "barrier_interpolation", "rise"}
    assert d["training_time"] == pytest.approx(0.1 * 3 * 43)  # 1347 samples / 32 = 43 steps per epoch
    g = d["points"]["grda"]
    assert g["linear_path"]["loss"][0] == pytest.approx(d["sgd"]["train_loss"], rel=1e-12)
    assert set(g["projection_ratio"]) == {"1", "3"} and set(g["share_outside_flat"]) == {"0.1/t", "1/t", "10/t"}
    text = capsys.readouterr().out
    assert "random expectation √(k/D)" in text and "gRDA sparsity" in text


def test_compare_with_target_sparsity_and_lanczos(tmp_path):
    out = tmp_path / "cal"
    rc = main(["grda", "--out", str(out), "--data", "teacher-student", "--epochs", "2", "--hidden", "8",
               "--target-sparsity", "0.6", "--hessian", "lanczos", "--top-k", "2", "--bezier-steps", "0",
               "--path-points", "3", "--no-compensation", "--no-progress"])
    assert rc == 0
    res = _read(out, "grda")["result"]
    cal = res["calibration"]
    assert cal["converged"] and abs(res["sparsity"]["prunable_weights"] - 0.6) <= 0.01
    assert res["grda"]["config"]["grda_c"] == cal["c"]
    d = res["diagnostics"]
    assert d["hessian_method"] == "lanczos" and "directional" not in d["points"]
    assert d["share_outside_flat_is_lower_bound"] and d["notes"]


@pytest.mark.parametrize(
    "argv,name,check",
    [
        (["calibrate", "--epochs", "2", "--hidden", "6", "--targets", "0.5", "--schedules", "step", "--data", "digits"],
         "calibrate", lambda r: abs(r["rows"][0]["error"]) <= 0.01 and r["rows"][0]["rerun_sparsity"] is not None),
        (["pretrained", "--epochs", "2", "--hidden", "6", "--targets", "0.6", "--finetune-epochs", "2",
          "--reopt-steps", "3"], "pretrained",
         lambda r: {"grda", "lomp", "lomp_finetune", "compensated", "compensated_reopt"} <= set(r["rows"][0])),
        (["stopping", "--epochs", "8", "--hidden", "6", "--seeds", "0", "1", "--window", "2", "--sparsity-tol", "0.5",
          "--loss-tol", "1.0"], "stopping", lambda r: all(row["stopped_epoch"] == 3 for row in r["rows"])),
        (["masks", "--epochs", "2", "--hidden", "6", "--seeds", "0", "1", "--schedules", "constant",
          "--target-sparsity", "0.5"], "masks", lambda r: {"data_order", "init", "vs_lomp"} <= set(r["groups"])),
        (["frontier", "--epochs", "2", "--widths", "6", "--variants", "grdam-cosine-wd", "--targets", "0.5"],
         "frontier", lambda r: r["points"][0]["variant"] == "grdam-cosine-wd"),
        (["valley", "--seeds", "0", "--times", "2", "--replicates", "3", "--gamma", "0.01", "--noise-gamma", "0.02", "--lams", "0.3"],
         "valley", lambda r: len(r["rows"]) == 2),
    ],
    ids=["calibrate", "pretrained", "stopping", "masks", "frontier", "valley"],
)
def test_studies_end_to_end(tmp_path, argv, name, check):
    out = tmp_path / name
    assert main(["grda", *argv, "--out", str(out), "--no-progress"]) == 0
    rec = _read(out, name)
    assert rec["command"] == f"prunelimit grda {name}"
    assert check(rec["result"])


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--lr", "-1"], "argument --lr: must be > 0, got -1"),
        (["--c", "nan"], "argument --c: must be a finite number >= 0, got nan"),
        (["--epochs", "two"], "argument --epochs: expected a int, got 'two'"),
        (["--hessian", "exact"], "argument --hessian: invalid choice: 'exact'"),
        (["--target-sparsity", "1.0"], r"argument --target-sparsity: must lie in \(0, 1\), got 1.0"),
        (["--momentum", "1"], r"argument --momentum: must lie in \[0, 1\), got 1"),
        (["calibrate", "--schedules", "linear"], "argument --schedules: invalid choice: 'linear'"),
        (["frontier", "--variants", "adam"], "argument --variants: invalid choice: 'adam'"),
        (["stopping", "--seeds", "-1"], "argument --seeds: must be >= 0, got -1"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        main(["grda", *argv, "--out", str(tmp_path)] if argv[0] in ("calibrate", "frontier", "stopping")
             else ["grda", "--out", str(tmp_path), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and __import__("re").search(match, err[-1])


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--epochs", "3", "--lr-drop-epoch", "5"], r"--lr-drop-epoch must be in \[1, --epochs=3\), got --lr-drop-epoch 5"),
        (["--data", "digits", "--data-root", "/nowhere"], "--data-root is not used by the built-in dataset --data digits"),
        (["--model", "cnn", "--hidden", "8"], "--hidden applies to --model mlp only, got --model cnn"),
        (["--data", "mnist"], "unknown dataset name='mnist'"),
        (["--data", "cifar10", "--data-root", "/nowhere/at/all"], "CIFAR root folder not found: /nowhere/at/all"),
    ],
)
def test_cli_reports_bad_combinations_in_one_line(tmp_path, capsys, argv, match):
    assert main(["grda", "--out", str(tmp_path), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunelimit grda: error: ")
    assert __import__("re").search(match, err[0])
