"""nets.experiments and ``prunelimit experiment``: every experiment end to end at ``--scale tiny`` (files,
verdicts consistent with the rows, report links), resume without recomputation, Hessian-row ℓ1 norms against
the dense float64 Hessian, the Cauchy-probe estimator, the restricted operator, the TV estimator and the cells."""

from __future__ import annotations

import html.parser
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nets.cli import main
from nets.experiments import EXPERIMENTS, get_scale
from nets.experiments.analysis import AnalysisSettings, RestrictedOperator, analyze
from nets.experiments.cells import CellStore, params_hash
from nets.experiments.hessian_row_l1 import cauchy_relative_stderr, quantile_rows, row_l1_cauchy, row_l1_exact
from nets.experiments.report import FILES
from nets.experiments.tv_distance import bin_edges, sampling_floor, tv_hist
from nets.hessian import HessianOperator
from nets.models import build_model
from nets.params import count_parameters, flatten, prunable_parameters
from nets.prune import global_magnitude_masks
from numerics.operators import DenseOperator

#: The experiments the issue asks for (names are the issue's suggestions).
ISSUE_NAMES = {"theory-vs-actual", "bound-gap", "loss-vs-ratio", "weight-scaling", "weight-distribution", "tv-distance",
               "hessian-row-l1", "iterative", "l2", "baselines", "slq-settings"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiments")
    threads = torch.get_num_threads()
    rc = main(["experiment", "all", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert torch.get_num_threads() == threads
    return rc, out


def _results(out: Path) -> dict[str, dict]:
    return {n: json.loads((out / n / FILES["json"]).read_text()) for n in EXPERIMENTS}


def test_registry_covers_the_issue():
    assert set(EXPERIMENTS) == ISSUE_NAMES


def test_every_experiment_writes_its_files(tiny_run, capsys):
    rc, out = tiny_run
    assert rc == 0
    for name in EXPERIMENTS:
        folder = out / name
        for f in FILES.values():
            assert (folder / f).is_file(), f"{name}/{f}"
        assert (folder / FILES["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rec = json.loads((folder / FILES["json"]).read_text())
        assert rec["experiment"] == name and rec["run"]["scale"] == "tiny" and rec["run"]["seeds"] == [0, 1, 2]
        assert rec["provenance"]["package"] == "prunelimit" and "torch" in rec["provenance"]
        assert rec["rows"] and rec["verdicts"]
        for v in rec["verdicts"]:
            assert v["status"] in ("holds", "does not hold", "inconclusive") and v["evidence"] and v["criterion"]
        header = (folder / FILES["csv"]).read_text().splitlines()[0].split(",")
        assert {"model"} <= set(header) and len((folder / FILES["csv"]).read_text().splitlines()) == len(rec["rows"]) + 1
        md = (folder / FILES["md"]).read_text()
        assert "## The paper's claims on this run" in md and "seeds" in md
    assert not list(out.rglob("*.tmp"))


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src"):
                self.targets.append(v)


def test_report_links_resolve(tiny_run):
    _, out = tiny_run
    md = (out / "report.md").read_text()
    md_targets = re.findall(r"\]\(([^)]+)\)", md)
    parser = _Links()
    parser.feed((out / "report.html").read_text())
    for targets in (md_targets, parser.targets):
        assert len(targets) >= 4 * len(EXPERIMENTS)
        for t in targets:
            assert (out / t).is_file(), t
    for name in EXPERIMENTS:  # every experiment is linked from both
        assert f"{name}/{FILES['md']}" in md_targets and f"{name}/{FILES['md']}" in parser.targets
        for t in re.findall(r"\]\(([^)]+)\)", (out / name / FILES["md"]).read_text()):
            assert (out / name / t).is_file(), t


def test_verdicts_follow_the_rows(tiny_run):
    """The verdicts are computed from the rows they cite: recompute two of them from results.json."""
    _, out = tiny_run
    res = _results(out)
    rows = res["theory-vs-actual"]["rows"]
    gaps = [r["gap_magnitude_vs_lomp_loss"] for r in rows]
    holds = abs(np.mean([g for g in gaps if g is not None])) <= 0.05
    assert res["theory-vs-actual"]["verdicts"][2]["holds"] == holds
    fgaps = [r["gap_flat_vs_fundamental"] for r in rows]
    assert all(g is not None for g in fgaps)  # dense networks: the measured fundamental limit is there
    assert res["theory-vs-actual"]["verdicts"][1]["holds"] == (abs(np.mean(fgaps)) <= 0.05)
    bg = res["bound-gap"]
    deltas = [r["delta"] for r in bg["rows"]]
    assert bg["verdicts"][0]["holds"] == (np.mean(deltas) <= 0.05)
    for r in bg["rows"]:  # the width is the sum of its components less what clipping removes
        assert r["delta"] == pytest.approx(r["kinematic_2a_over_sqrtN"] + r["dimension_1_over_N"] + r["slq_2z_se"]
                                           - r["clipped_off"])
        assert 0.0 <= r["lower"] <= r["kept_fraction"] <= r["upper"] <= 1.0
    tv = res["tv-distance"]["rows"]
    assert len(tv) == 3 and all(0.0 <= r["tv"] <= 1.0 and 0.0 <= r["sampling_floor"] <= 1.0 for r in tv)
    base = res["baselines"]["rows"]
    assert {r["method"] for r in base} == {"Dense", "LOMP", "IMP", "Smart-Ratio", "Rare Gems"}
    levels = {0.5, 0.25}
    for m in ("LOMP", "IMP", "Smart-Ratio", "Rare Gems"):
        assert {r["level"] for r in base if r["method"] == m} == levels
    for r in base:
        if r["method"] in ("IMP", "Rare Gems", "Smart-Ratio"):
            assert r["kept_fraction"] == pytest.approx(r["level"], abs=1 / 96)
    it = res["iterative"]["rows"]
    for seed in (0, 1, 2):  # pruning to the prediction makes the kept fraction non-increasing over rounds
        kept = [r["kept_fraction"] for r in it if r["seed"] == seed]
        assert kept[0] == 1.0 and all(b <= a for a, b in zip(kept, kept[1:]))
    ws = res["weight-scaling"]["rows"]
    for seed in (0, 1, 2):  # the fixed-Hessian prediction cannot decrease with the factor (the formula's monotonicity)
        fl = [r["predicted_flat"] for r in ws if r["seed"] == seed and r["variant"] == "fixed Hessian"]
        assert all(b >= a - 1e-9 for a, b in zip(fl, fl[1:]))


def test_rerun_resumes_without_recomputing(tiny_run, capsys):
    _, out = tiny_run
    first = _results(out)
    # drop one finished cell: exactly that one is recomputed
    cell = sorted((out / "slq-settings" / "cells").rglob("*.json"))[0]
    cell.unlink()
    rc = main(["experiment", "all", "--scale", "tiny", "--out", str(out), "--quiet"])
    assert rc == 0
    second = _results(out)
    for name in EXPERIMENTS:
        assert second[name]["run"]["cells_computed"] == (1 if name == "slq-settings" else 0), name
        if name != "slq-settings":
            assert second[name]["rows"] == first[name]["rows"], name
    assert cell.is_file()


def test_one_experiment_with_model_and_seed_selection(tmp_path, capsys):
    rc = main(["experiment", "loss-vs-ratio", "--scale", "tiny", "--models", "mlp-ts", "--seeds", "2",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    rec = json.loads((tmp_path / "loss-vs-ratio" / FILES["json"]).read_text())
    assert rec["run"]["seeds"] == [0, 1] and {r["seed"] for r in rec["rows"]} == {0, 1}
    assert (tmp_path / "report.md").is_file()
    assert "loss-vs-ratio" in capsys.readouterr().out


def test_parallel_workers_give_the_same_results(tmp_path):
    """``jobs=2`` computes the cells in two processes (one network each) and assembles the same outputs."""
    import dataclasses

    from nets.experiments.runner import make_context, run_all

    tiny = get_scale("tiny")
    spec2 = dataclasses.replace(tiny.models[0], key="mlp-ts-wide", model_kwargs={"hidden": (12,)}, label="wide")
    scale = dataclasses.replace(tiny, models=(tiny.models[0], spec2))
    names = ["bound-gap"]
    serial = run_all(make_context(scale, tmp_path / "serial", seeds=1), names)
    parallel = run_all(make_context(scale, tmp_path / "parallel", seeds=1), names, jobs=2, quiet_workers=True)
    for a, b in zip(serial, parallel):
        assert a.outcome.rows == b.outcome.rows
        rec = json.loads((tmp_path / "parallel" / a.name / FILES["json"]).read_text())
        assert set(rec["run"]["workers"]) == {"mlp-ts", "mlp-ts-wide"}
        assert rec["run"]["cells_computed"] == a.cells_computed


def test_worker_reports_progress_on_stderr_unless_quiet(tmp_path, capsys):
    """A worker process of ``run_all`` logs one line per stage on stderr (its own handler), nothing when quiet."""
    from nets.experiments.runner import _worker

    tiny = get_scale("tiny")
    threads = torch.get_num_threads()
    try:  # the worker sets its process's thread count
        stats = _worker(tiny, str(tmp_path / "loud"), [tiny.models[0].key], 1, None, "cpu", ["bound-gap"], False)
        captured = capsys.readouterr()
        _worker(tiny, str(tmp_path / "quiet"), [tiny.models[0].key], 1, None, "cpu", ["bound-gap"], True)
        quiet = capsys.readouterr()
    finally:
        torch.set_num_threads(threads)
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines and all(re.match(rf"\[ *\d+\.\d s\] \({tiny.models[0].key}\) \S", ln) for ln in lines), lines[:3]
    assert stats["bound-gap"]["cells_computed"] >= 1
    assert quiet.err == ""


@pytest.mark.parametrize("argv,message", [
    (["experiment", "all", "--scale", "paper"], "--scale paper reads cifar10, cifar100, tinyimagenet from a local "
                                                "folder: pass --data-root"),
    (["experiment", "tv-distance", "--scale", "tiny", "--seeds", "1"], "needs --seeds >= 2, got --seeds 1"),
    (["experiment", "all", "--scale", "tiny", "--seeds", "1"], "needs --seeds >= 2, got --seeds 1"),
    (["experiment", "bound-gap", "--scale", "tiny", "--models", "resnet18"], "--models resnet18: scale 'tiny' has no "
                                                                             "model 'resnet18'"),
    (["experiment", "bound-gap", "--scale", "paper", "--data-root", "/nonexistent/dir"],
     "--data-root /nonexistent/dir is not an existing directory"),
    (["experiment"], "NAME is missing: give an experiment NAME or 'all'"),
    (["experiment", "bound-gap", "--scale", "tiny", "--jobs", "2"], "--jobs 2 shares the networks of 'all'"),
])
def test_cli_rejects_bad_input_before_work(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunelimit experiment: error: ") and message in err[0], err
    assert not (tmp_path / "o" / "_shared").exists()


def test_cli_list(capsys):
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in EXPERIMENTS) and "resnet50-tinyimagenet" in out


def test_paper_scale_uses_the_papers_models_and_recipes():
    from nets.train import paper_config

    paper = get_scale("paper")
    assert [s.model for s in paper.models] == ["fc5", "fc12", "alexnet", "vgg16", "resnet18", "resnet50", "resnet50"]
    for spec in paper.models:
        assert paper.train_config(spec, 1, "cuda") == paper_config(spec.model, seed=1, device="cuda")
    fc5 = build_model("fc5", 10, (3, 32, 32), device="meta")
    assert count_parameters(fc5, prunable_only=True) == 3_883_000  # docs/experiments.md §1.1: N of FC5
    assert paper.analysis.slq_steps == 128 and paper.model("alexnet-cifar10").slq_steps == 96
    assert paper.analysis_for(paper.model("alexnet-cifar10")).slq_steps == 96
    cpu = get_scale("cpu")
    assert cpu.train_config(cpu.models[0], 2).l1 == 1e-3 and cpu.train_config(cpu.models[0], 2).seed == 2


# ------------------------------------------------------------------------------------------ Hessian rows
def _tiny_net_and_batches():
    g = torch.Generator().manual_seed(0)
    model = build_model("mlp", 3, (5,), generator=g, hidden=(4,)).double()
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return model, [(x[:25], y[:25]), (x[25:], y[25:])]


def _dense_hessian(model: nn.Module, batches) -> torch.Tensor:
    names = [n for n, _ in prunable_parameters(model)]
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])

    def loss(flat):
        pieces = dict(zip(names, [p.reshape(s) for p, s in zip(flat.split(sizes), shapes)]))
        return nn.functional.cross_entropy(torch.func.functional_call(model, {**params, **pieces}, (x,)), y)

    w = flatten([params[n].detach() for n in names])
    return torch.func.hessian(loss)(w).detach()


def test_row_l1_norms_equal_the_dense_hessians():
    model, batches = _tiny_net_and_batches()
    H = _dense_hessian(model, batches)
    op = HessianOperator(model, nn.CrossEntropyLoss(), batches, dtype=torch.float64)
    rows, eig = row_l1_exact(op, block=7, eigenvalues=True)
    np.testing.assert_allclose(rows, H.abs().sum(dim=1).numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(H.numpy()), rtol=0, atol=1e-10)
    idx = quantile_rows(flatten([p.detach() for _, p in prunable_parameters(model)]).numpy(), 5)
    np.testing.assert_allclose(row_l1_exact(op, idx), H.abs().sum(dim=1).numpy()[idx], rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="rows must lie in"):
        row_l1_exact(op, [H.shape[0]])


def test_cauchy_probes_estimate_the_row_norms_within_their_standard_error():
    """Each row's estimate is the median of |Cauchy(0, ‖H_i‖₁)| draws: unbiased to first order with relative
    standard error π/(2√m). The rows share the probes, so their errors are correlated within one draw; the check
    therefore pools independent draws (a wrong scale, e.g. the mean of |Hz| or a 1/√m error, fails it)."""
    model, batches = _tiny_net_and_batches()
    exact = _dense_hessian(model, batches).abs().sum(dim=1).numpy()
    op = HessianOperator(model, nn.CrossEntropyLoss(), batches, dtype=torch.float64)
    m, reps = 201, 30
    rel = np.stack([row_l1_cauchy(op, m, generator=torch.Generator().manual_seed(r)) / exact - 1.0
                    for r in range(reps)])
    se = cauchy_relative_stderr(m)
    assert abs(rel.mean()) <= 3 * se / math.sqrt(reps)
    assert rel.std() == pytest.approx(se, rel=0.15)
    assert np.all(np.abs(rel.mean(axis=0)) <= 4 * se / math.sqrt(reps) + 0.02)
    # a diagonal operator has independent rows: the fraction within 2 se is the normal 95 %
    d = np.linspace(0.5, 3.0, 2000)
    from numerics.operators import DiagonalOperator

    r = row_l1_cauchy(DiagonalOperator(-d), m, generator=torch.Generator().manual_seed(0)) / d - 1.0
    assert np.mean(np.abs(r) <= 2 * se) == pytest.approx(0.954, abs=0.02)


def test_restricted_operator_is_the_principal_submatrix():
    g = torch.Generator().manual_seed(2)
    A = torch.randn(9, 9, generator=g, dtype=torch.float64)
    A = A + A.T
    idx = torch.tensor([0, 3, 4, 8])
    R = RestrictedOperator(DenseOperator(A, symmetric=True), idx)
    torch.testing.assert_close(R.to_dense(), A[idx][:, idx])
    with pytest.raises(ValueError, match="distinct coordinates"):
        RestrictedOperator(DenseOperator(A, symmetric=True), torch.tensor([1, 1]))


def test_analysis_within_a_mask_reports_global_fractions():
    from nets.data import load_dataset

    data = load_dataset("teacher-student", n_train=128, n_test=64, input_dim=6, hidden=6, num_classes=3)
    model = build_model("mlp", 3, (6,), generator=torch.Generator().manual_seed(0), hidden=(6,))
    masks = global_magnitude_masks(model, 0.5)
    settings = AnalysisSettings(slq_steps=10, slq_probes=2, eps_batch_size=32, sweep_step=0.1)
    a = analyze(model, data, settings, seed=0, within=masks)
    n = count_parameters(model, prunable_only=True)
    assert a.n_prunable == n and a.n_active == sum(int(m.sum()) for m in masks.values())
    for m in ("flat", "free", "magnitude"):
        p = a.predicted[m]
        assert p["kept_fraction"] == pytest.approx(p["kept_fraction_active"] * a.n_active / n)
        assert p["kept_fraction"] <= a.n_active / n + 1e-12
    assert max(a.sweep["kept_fraction"]) == pytest.approx(a.n_active / n)
    assert a.spectrum.dim == a.n_active
    d = a.to_dict()
    again = type(a).from_dict(json.loads(json.dumps(d))).to_dict()
    spec, spec2 = d.pop("spectrum"), again.pop("spectrum")
    assert again == d and spec2["nodes"] == spec["nodes"]
    np.testing.assert_allclose(spec2["weights"], spec["weights"], rtol=1e-15)  # renormalised on construction


# ------------------------------------------------------------------------------------------ TV and cells
def test_tv_estimator():
    e = bin_edges([np.linspace(-1, 1, 1001)], 20)
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=5000), rng.normal(size=5000), rng.normal(0.5, 1, size=5000)
    assert tv_hist(x, x, e) == 0.0
    same, shifted = tv_hist(x, y, e), tv_hist(x, z, e)
    floor = sampling_floor(x, y, e, 10, np.random.default_rng(1))
    assert same < 0.05 and floor < 0.05 and abs(same - floor) < 0.03
    # TV(N(0, 1), N(0.5, 1)) = 2Φ(0.25) − 1 = erf(0.25/√2); the density difference keeps its sign on each
    # overflow bin and changes sign only once, inside a narrow bin, so binning loses almost nothing
    assert shifted == pytest.approx(math.erf(0.25 / math.sqrt(2)), abs=0.03)


def test_cells_are_written_once_and_recomputed_when_stale(tmp_path):
    store = CellStore(tmp_path)
    calls = []
    fn = lambda: calls.append(1) or {"v": [1.0, float("nan")]}  # noqa: E731
    assert store.compute("g", "a", {"p": 1}, fn) == {"v": [1.0, None]}
    assert store.compute("g", "a", {"p": 1}, fn) == {"v": [1.0, None]} and len(calls) == 1
    store.compute("g", "a", {"p": 2}, fn)
    assert len(calls) == 2 and store.computed == 2 and store.cached == 1
    path = store.path("g", "a", {"p": 1})
    assert path.name.endswith(f"-{params_hash({'p': 1})}.json")
    rec = json.loads(path.read_text())
    rec["params"] = {"p": 99}  # a file whose parameters do not match its name is not trusted
    path.write_text(json.dumps(rec))
    store.compute("g", "a", {"p": 1}, fn)
    assert len(calls) == 3
    path.write_text("{torn")
    store.compute("g", "a", {"p": 1}, fn)
    assert len(calls) == 4
    m = store.model("m", "net", {"k": 1}, lambda: nn.Linear(2, 2), lambda: nn.Linear(2, 2), info=lambda _: {"x": 1})
    m2 = store.model("m", "net", {"k": 1}, lambda: pytest.fail("rebuilt"), lambda: nn.Linear(2, 2))
    assert torch.equal(m.weight, m2.weight) and store.model_info("m", "net", {"k": 1}) == {"x": 1}
