"""``torchrun --nproc_per_node 2 prunelimit grda|experiment`` (gloo on CPU): rank 0 alone prints and writes, the
work is split, and the result is the single-process one (issue 11, requirement 4).

One torchrun launch runs both commands (a driver calling :func:`nets.cli.main` twice). In it every writer of
:mod:`nets.io` raises on rank 1, so a file written by any process but rank 0 fails the run (the experiments'
cells are written by the child processes that compute them, which re-import :mod:`nets.io`).

* ``grda`` with ``--target-sparsity``: the calibration's runs, gRDA and its SGD partner train data-parallel (each
  rank the gradient of its half of every global batch; the calibration's dual sums read by rank 0 and sent to
  rank 1), the diagnostics are computed by both ranks. DDP averages the two shard gradients, so each gRDA step
  sees the gradient of the whole batch: the single-process run up to the order of floating-point summation
  (float32 here), compared to tolerances of that order.
* ``experiment`` on a two-network tiny scale: each rank computes one network's cells; rank 0 assembles; the rows
  equal those of one process exactly (each cell is computed by one process with the same seeds).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from nets.cli import main

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
    pytest.mark.skipif(sys.platform == "win32", reason="torchrun on POSIX"),
]

ROOT = Path(__file__).resolve().parents[2]
GRDA = ["--hidden", "4", "--epochs", "1", "--target-sparsity", "0.6", "--top-k", "1", "3", "--bezier-steps", "0",
        "--path-points", "3", "--compensation-steps", "0", "--threads", "1", "--no-progress"]
EXPERIMENT = ["weight-distribution", "--scale", "tiny", "--seeds", "1", "--threads", "1", "--quiet"]
DRIVER = """
import os, sys
import nets.io

def _refuse(*a, **k):
    raise RuntimeError("rank " + os.environ["RANK"] + " wrote a file")

if __name__ == "__main__":  # the experiments' child processes are spawned: they import this file
    if os.environ["RANK"] != "0":
        nets.io.atomic_write_json = nets.io.atomic_open = nets.io.atomic_write_text = _refuse
    sys.path.insert(0, {tests!r})
    from test_cli_grda_distributed import two_network_tiny_scale
    two_network_tiny_scale()
    from nets.cli import main
    out = sys.argv[1]
    codes = [main(["grda", "--out", out + "/ddp-grda", *{grda!r}]),
             main(["experiment", "--out", out + "/ddp-exp", *{experiment!r}])]
    sys.exit(max(codes))
"""


def two_network_tiny_scale() -> None:
    """Give the tiny scale a second (wider) network, so that two processes have one each."""
    from nets.experiments import scales

    tiny = scales.SCALES["tiny"]
    if len(tiny.models) == 1:
        wide = dataclasses.replace(tiny.models[0], key="mlp-ts-wide", model_kwargs={"hidden": (12,)}, label="wide")
        scales.SCALES["tiny"] = dataclasses.replace(tiny, models=(tiny.models[0], wide))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun-grda")
    driver = out / "driver.py"
    driver.write_text(DRIVER.format(tests=str(Path(__file__).parent), grda=GRDA, experiment=EXPERIMENT))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
           str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out, env=env, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert main(["grda", "--out", str(out / "one-grda"), *GRDA]) == 0
    from nets.experiments import scales

    saved = scales.SCALES["tiny"]
    try:
        two_network_tiny_scale()
        assert main(["experiment", "--out", str(out / "one-exp"), *EXPERIMENT]) == 0
    finally:
        scales.SCALES["tiny"] = saved
    return out, proc


def test_rank_zero_alone_prints_and_writes(runs):
    out, proc = runs
    assert proc.stdout.count("gRDA sparsity") == 1
    assert proc.stdout.count("run: 2 process(es) (gloo): training data-parallel") == 1
    assert proc.stdout.count("wrote ") == 2  # once per command
    rec = json.loads((out / "ddp-grda" / "grda.json").read_text())
    assert rec["used"]["world_size"] == 2 and rec["used"]["backend"] == "gloo"
    assert sorted(p.name for p in (out / "ddp-grda").iterdir()) == ["grda.json", "grda.png"]
    exp = json.loads((out / "ddp-exp" / "weight-distribution" / "results.json").read_text())
    # each rank computed one network's cells (the workers' record), rank 0 assembled
    assert set(exp["run"]["workers"]) == {"mlp-ts", "mlp-ts-wide"}


def test_grda_under_torchrun_equals_one_process(runs):
    out, _ = runs
    a = json.loads((out / "ddp-grda" / "grda.json").read_text())["result"]
    b = json.loads((out / "one-grda" / "grda.json").read_text())["result"]
    # float32 weights: the two processes sum the batch gradient in another order (a few ulps per step; measured
    # 1e-8 to 1e-7 relative on the losses, 2e-7 on c); the calibration decides on sparsities, so the same
    # decisions give the same c to that precision, and a weight can only flip where |a| is within rounding of T
    assert a["calibration"]["c"] == pytest.approx(b["calibration"]["c"], rel=1e-5)
    assert [r["c"] for r in a["calibration"]["runs"]] == pytest.approx([r["c"] for r in b["calibration"]["runs"]],
                                                                      rel=1e-5)
    for name in ("sgd", "grda"):
        for ra, rb in zip(a[name]["history"], b[name]["history"], strict=True):
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-6), name
            assert ra["test_loss"] == pytest.approx(rb["test_loss"], rel=1e-6), name
            assert ra["sparsity"] == pytest.approx(rb["sparsity"], abs=1 / 296), name  # at most 1 of 296 weights
    pa, pb = a["diagnostics"]["points"]["grda"], b["diagnostics"]["points"]["grda"]
    assert pa["train_loss"] == pytest.approx(pb["train_loss"], rel=1e-6)
    assert a["diagnostics"]["top_eigenvalues"] == pytest.approx(b["diagnostics"]["top_eigenvalues"], rel=1e-6)


def test_experiment_under_torchrun_equals_one_process(runs):
    out, _ = runs
    a = json.loads((out / "ddp-exp" / "weight-distribution" / "results.json").read_text())
    b = json.loads((out / "one-exp" / "weight-distribution" / "results.json").read_text())
    assert a["rows"] == b["rows"]
    assert {r["model"] for r in a["rows"]} == {"mlp-ts", "mlp-ts-wide"}
    assert (out / "ddp-exp" / "report.md").is_file()
