"""``prunelimit limit`` and ``prunelimit spectrum`` end to end through nets.cli.main, with tiny settings."""

from __future__ import annotations

import json

import pytest
import torch

from nets.cli import main
from nets.io import load_spectrum

TINY = ["--hidden", "8", "--epochs", "10", "--slq-steps", "20", "--slq-probes", "2", "--no-progress"]


@pytest.fixture(scope="module")
def limit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("limit")
    threads = torch.get_num_threads()
    rc = main(["limit", "--out", str(out), "--sweep-step", "0.02", *TINY])
    assert torch.get_num_threads() == threads  # the CLI restores the thread count it changed
    return rc, out


def test_limit_cli_writes_table_json_and_plots(limit_run, capsys):
    rc, out = limit_run
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"result.json", "limit.png", "spectrum.png", "train"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert (out / "train" / "checkpoint.pt").is_file()
    for png in ("limit.png", "spectrum.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads((out / "result.json").read_text())
    assert d["format"] == "prunelimit.LimitResult/2"
    assert d["model"]["n_prunable"] == 64 * 8 + 8 * 10
    for name in ("fundamental", "magnitude"):
        lim = d["limits"][name]
        assert 0.0 <= lim["predicted"] <= 1.0 and 0.0 <= lim["measured"] <= 1.0
        assert lim["gap"] == pytest.approx(lim["predicted"] - lim["measured"])
    for m in ("free", "flat"):
        p = d["predicted"]["fundamental"]["by_method"][m]
        assert 0.0 <= p["kept_fraction_lower"] <= p["kept_fraction"] <= p["kept_fraction_upper"] <= 1.0
        assert p["removed_fraction"] == pytest.approx(1.0 - p["kept_fraction"])
    for c in ("train_loss", "test_accuracy"):
        assert 0.0 <= d["measured"]["magnitude"]["limits"][c]["kept_fraction"] <= 1.0
    assert d["oracle"] is not None and 0.0 <= d["oracle"]["kept_fraction_compensated"] <= 1.0
    assert len(d["measured"]["magnitude"]["curves"]["kept_fraction"]) == 51
    assert d["train"]["source"] == "trained" and d["train"]["config"]["l1"] == 1e-3
    assert set(d["timings_seconds"]) == {"tolerance", "spectrum", "gradient", "predict", "sweep", "compensated",
                                         "oracle"}
    assert d["tolerance"]["source"] == "batch-loss-std" and d["tolerance"]["batch_size"] == 128
    assert d["provenance"]["version"] and d["command"]["sweep_step"] == 0.02


def test_limit_cli_prints_the_table(tmp_path, capsys):
    # run a, then run b from run a's training checkpoint: the same model, so the same dense metrics
    rc = main(["limit", "--out", str(tmp_path / "a"), "--sweep-step", "0.05", "--exact", "off",
               "--compensation-steps", "5", *TINY])
    assert rc == 0
    first = json.loads((tmp_path / "a" / "result.json").read_text())
    text = capsys.readouterr().out
    for needle in ("fundamental (compensated), flat", "magnitude pruning (LOMP), taylor", "fundamental, free (ours)",
                   "magnitude, haar", "measured after re-optimisation", "test accuracy >= dense - 0.01",
                   "strictly above dense", "predicted", "measured", "gap", "stage times: train", "compensated search",
                   "HVPs"):
        assert needle in text, needle
    assert "exact quadratic" not in text
    rc = main(["limit", "--out", str(tmp_path / "b"), "--checkpoint", str(tmp_path / "a" / "train" / "checkpoint.pt"),
               "--sweep-step", "0.05", "--exact", "off", "--method", "free", "--magnitude-method", "haar",
               "--no-compensated", "--eps", "0.01", *TINY])
    assert rc == 0
    second = json.loads((tmp_path / "b" / "result.json").read_text())
    assert second["tolerance"]["train"] == first["tolerance"]["train"]
    assert second["limits"]["fundamental"]["method"] == "free" and second["limits"]["fundamental"]["measured"] is None
    assert second["limits"]["magnitude"]["method"] == "haar"
    assert (second["tolerance"]["eps"], second["tolerance"]["source"]) == (0.01, "given")
    assert second["oracle"] is None and not (tmp_path / "b" / "train").exists()
    assert "fundamental (compensated), free" in capsys.readouterr().out


def test_spectrum_cli(limit_run, tmp_path, capsys):
    _, out = limit_run
    rc = main(["spectrum", "--out", str(tmp_path), "--checkpoint", str(out / "train" / "checkpoint.pt"), *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "extreme Ritz values" in text and "negative mass" in text and "trace estimate" in text
    spec = load_spectrum(tmp_path / "spectrum.json")
    spec_npz = load_spectrum(tmp_path / "spectrum.npz")
    assert spec.dim == 592 and spec.n_probes == 2
    assert (spec.nodes == spec_npz.nodes).all()
    summary = json.loads((tmp_path / "spectrum_summary.json").read_text())
    assert summary["summary"]["dim"] == 592 and summary["cost"]["hvps"] == 40
    assert summary["run"]["hvp_path"] == "cached double-backward" and summary["provenance"]["package"] == "prunelimit"
    assert (tmp_path / "spectrum.png").is_file()
    # the same spectrum as the limit run (same model, seed, batches, settings)
    lim = json.loads((out / "result.json").read_text())
    assert summary["summary"]["ritz_max"] == pytest.approx(lim["spectrum_summary"]["ritz_max"], rel=1e-6)


def test_bench_pipeline_synthetic_argument_path(tmp_path, capsys):
    """bench/pipeline.py on synthetic-cifar (the path a GPU run takes with --device cuda), tiny, on CPU: the
    peers are measured on the pipeline's own operator (the same product path) and the record has medians with
    min-max."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        rc = mod.main(["--quick", "--data", "synthetic-cifar", "--model", "mlp", "--n-train", "256", "--n-test", "128",
                       "--json", str(tmp_path / "b.json"), "--", "--hidden", "32", "--no-compensated"])
    finally:
        torch.set_num_threads(threads)  # a script sets the process's threads; restore for the other tests
    assert rc == 0
    d = json.loads((tmp_path / "b.json").read_text())
    assert d["settings"]["data"] == "synthetic-cifar" and d["model"]["n_prunable"] == 3072 * 32 + 32 * 10
    assert d["settings"]["n_train"] == 256
    # no dense oracle at this N, no compensated search (switched off through the CLI's own options)
    assert set(d["stage_seconds"]) == {"total", "tolerance", "spectrum", "gradient", "predict", "sweep"}
    assert d["cost"]["spectrum"]["hvps"] == 2 * 64 and all(d["checks"].values())
    s = d["stage_seconds"]["spectrum"]
    assert s["min"] <= s["median"] <= s["max"] and s["n"] == 1
    assert d["hvp_path"] == d["pipeline_hvp_path"]  # the peers time the path the pipeline took
    assert d["operator_peers"]["hvp_pass_over_gradient"]["median"] > 0
    assert "pipeline benchmark" in capsys.readouterr().out
