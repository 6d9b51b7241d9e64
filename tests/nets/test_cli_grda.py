"""``prunelimit grda`` and its studies end to end with tiny settings; its error handling (exit 2, one line)."""

from __future__ import annotations

import json
import re

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
        (["--lr", "-1"], "^prunelimit grda: error: argument --lr: must be > 0, got -1"),
        (["--c", "nan"], "^prunelimit grda: error: argument --c: must be a finite number >= 0, got nan"),
        (["--epochs", "two"], "^prunelimit grda: error: argument --epochs: expected a int, got 'two'"),
        (["--hessian", "exact"], "^prunelimit grda: error: argument --hessian: invalid choice: 'exact'"),
        (["--target-sparsity", "1.0"], r"argument --target-sparsity: must lie in \(0, 1\), got 1.0"),
        (["--momentum", "1"], r"argument --momentum: must lie in \[0, 1\), got 1"),
        (["calibrate", "--schedules", "linear"],
         "^prunelimit grda calibrate: error: argument --schedules: invalid choice: 'linear'"),
        (["frontier", "--variants", "adam"], "argument --variants: invalid choice: 'adam'"),
        (["stopping", "--seeds", "-1"], r"argument --seeds: must lie in \[0, 4294967295\] \(2\^32 - 1\), got -1"),
        (["--epochs", "3", "--lr-drop-epoch", "5"], r"--lr-drop-epoch must be in \[1, --epochs=3\), got --lr-drop-epoch 5"),
        (["--data", "digits", "--data-root", "{tmp}"], "--data-root .* is not used by the built-in dataset --data digits"),
        (["--model", "cnn", "--hidden", "8"], "--hidden applies to --model mlp only, got --model cnn"),
        (["--data", "mnist"], "--data mnist is not a dataset; choose one of digits, "),
        (["--data", "cifar10", "--data-root", "/nowhere/at/all"], "--data-root /nowhere/at/all is not an existing directory"),
        (["--data", "cifar10", "--data-root", "{tmp}"], "--data cifar10 could not be loaded .*; check --data-root"),
        (["--epochs", "3", "stopping"], "^prunelimit grda stopping: error: --epochs 3 is given before the study name"),
    ],
)
def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, argv, match):
    argv = [a.format(tmp=tmp_path) for a in argv]
    study = any(a in ("calibrate", "frontier", "stopping") for a in argv)
    out = ["--out", str(tmp_path / "out"), "--no-progress"]
    assert main(["grda", *argv, *out] if study else ["grda", *out, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunelimit grda")
    assert re.search(match, err[0]), err[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_mu_at_least_one_is_refused_and_at_most_half_warns(tmp_path, capsys):
    assert main(["grda", "--out", str(tmp_path / "a"), "--mu", "1.2", "--no-progress"]) == 2
    assert "(0.5, 1)" in capsys.readouterr().err
    out = tmp_path / "b"
    assert main(["grda", "--out", str(out), "--mu", "0.4", "--epochs", "1", "--hidden", "4", "--no-diagnostics",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "UserWarning" not in captured.err  # recorded once, in the output and the JSON, not by every optimiser
    rec = json.loads((out / "grda.json").read_text())
    assert [w["code"] for w in rec["warnings"]] == ["mu"]
    assert "warning [mu]: --mu 0.4 is at most 0.5" in captured.out


def test_first_step_replay_is_the_training_step_and_bounds_c():
    """``first_step`` replays training's first gRDA step exactly (same weights as one step of nets.train), and its
    ``c_all_zero`` is the threshold where every parameter but the output bias is zero after it."""
    import copy
    from dataclasses import replace

    from nets.cli._grda_preflight import first_step
    from nets.grda_study import Setup, grda_config
    from nets.train import train

    setup = Setup(hidden=(4,))
    data = setup.load_data()
    # a batch covering the whole training set makes the first epoch of training exactly one step
    cfg = grda_config(epochs=1, batch_size=len(data.train), grda_c=0.5)
    model = setup.build(data)
    fs = first_step(model, data, cfg)
    assert fs["threshold"] == pytest.approx(0.5 * cfg.lr ** (cfg.grda_mu + 0.5), rel=1e-12)
    # just above c*, one step of nets.train zeroes every parameter but the output bias; just below, not all
    for factor, all_zero in ((1.001, True), (0.99, False)):
        m = copy.deepcopy(model)
        train(m, data, replace(cfg, grda_c=fs["c_all_zero"] * factor))
        out_bias = m.net[-1].bias
        zero = all(bool((p == 0).all()) for p in m.parameters() if p is not out_bias)
        assert zero is all_zero, factor


def test_a_dead_network_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "dead"
    assert main(["grda", "--out", str(out), "--c", "1000", "--hidden", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunelimit grda: error: --c 1000 with --lr 0.1 and --mu 0.55") and "every c >= " in err
    assert not list(out.iterdir())


def test_settings_below_the_reported_precision_warn_and_are_recorded(tmp_path, capsys):
    out = tmp_path / "warn"
    rc = main(["grda", "--out", str(out), "--epochs", "1", "--hidden", "4", "--c", "0", "--diagnostic-samples", "100",
               "--top-k", "1", "400", "--path-points", "3", "--bezier-steps", "0", "--no-compensation",
               "--no-directional", "--stopping-window", "5", "--no-progress"])
    assert rc == 0
    rec = json.loads((out / "grda.json").read_text())
    codes = [w["code"] for w in rec["warnings"]]
    assert sorted(codes) == ["c", "diagnostic-samples", "path-points", "stopping-window", "top-k"]
    text = capsys.readouterr().out
    for w in rec["warnings"]:
        assert f"warning [{w['code']}]: {w['message']}" in text
    used = rec["used"]
    # the values the run used, beside the arguments as given
    assert used["top_k"] == [1] and rec["args"]["top_k"] == [1, 400] and used["n_parameters"] == 310
    assert used["diagnostic_samples"] == 100 and used["hessian"] == "dense" and used["world_size"] == 1
    assert rec["result"]["diagnostics"]["config"]["samples"] == 100


def test_all_weights_zero_at_the_end_warns(tmp_path):
    """c = 3 passes the first-step check (c* = 16.4 on this seed) but its threshold after the first epoch (2.12)
    is above every initial weight (1.46), and the run ends with every prunable weight at zero: both are warned."""
    out = tmp_path / "end"
    assert main(["grda", "--out", str(out), "--epochs", "2", "--hidden", "4", "--c", "3", "--no-diagnostics",
                 "--no-progress"]) == 0
    rec = json.loads((out / "grda.json").read_text())
    fs = rec["used"]["first_step"]
    assert fs["threshold"] < fs["largest"] and 3 < fs["c_all_zero"]
    assert rec["result"]["sparsity"]["prunable_weights"] == 1.0
    messages = [w["message"] for w in rec["warnings"] if w["code"] == "c"]
    assert len(messages) == 2
    assert "the threshold after the first epoch, 2.12, is above every initial weight" in messages[0]
    assert "every prunable weight at zero" in messages[1]
