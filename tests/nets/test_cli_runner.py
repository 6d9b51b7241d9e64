"""The shared machinery of every subcommand (nets.cli._runner, _preflight, _progress): resuming and refusing a
changed option in an existing --out, Ctrl-C (in process and a real SIGINT), the memory preflight's switch to
streaming products, and progress off a terminal (one line per stage, no carriage returns)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nets.cli import main
from nets.cli._progress import progress_mode

FAST = ["--hidden", "8", "--epochs", "3", "--slq-steps", "20", "--slq-probes", "2", "--sweep-step", "0.05",
        "--exact", "off", "--no-compensated"]
ROOT = Path(__file__).resolve().parents[2]


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_changed_option_in_an_existing_out_is_refused_then_overwritten(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["limit", "--out", out, *FAST]) == 0
    first = json.loads((tmp_path / "result.json").read_text())
    assert first["train"]["resumed_from"] is None
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["command"] == "limit" and run["training"]["lr"] == 0.05 and run["training"]["hidden"] == [8]
    capsys.readouterr()
    # the same command resumes the finished training (nothing to train) and recomputes the rest
    assert main(["limit", "--out", out, *FAST, "--eps", "0.05"]) == 0  # a non-training option may change
    again = json.loads((tmp_path / "result.json").read_text())
    assert again["train"]["resumed_from"] == 3 and again["tolerance"]["eps"] == 0.05
    capsys.readouterr()
    # a training option may not: one line naming both values and the two ways out
    assert main(["limit", "--out", out, *FAST, "--lr", "0.1"]) == 2
    (line,) = _err_lines(capsys)
    assert line == (f"prunelimit limit: error: --out {out} holds a training run made with --lr 0.05; this command has "
                    "--lr 0.1: pass --overwrite to replace it, or choose a new --out")
    assert main(["limit", "--out", out, *FAST, "--seed", "1", "--hidden", "9"]) == 2
    assert "--hidden 8, --seed 0; this command has --hidden 9, --seed 1" in _err_lines(capsys)[0]
    # --overwrite: trained afresh with the new option
    assert main(["limit", "--out", out, *FAST, "--lr", "0.1", "--overwrite"]) == 0
    new = json.loads((tmp_path / "result.json").read_text())
    assert new["train"]["resumed_from"] is None and new["train"]["config"]["lr"] == 0.1


def test_ctrl_c_during_training_names_the_epoch_to_resume_from(tmp_path, capsys, monkeypatch):
    import nets.cli.limit as cli_limit

    real = cli_limit.training_progress

    def interrupting(mode, total, on_epoch=None, desc="training"):
        inner = real(mode, total, on_epoch=on_epoch, desc=desc)

        def update(record):
            inner(record)
            if record["epoch"] == 2:
                raise KeyboardInterrupt

        return update

    monkeypatch.setattr(cli_limit, "training_progress", interrupting)
    argv = ["limit", "--out", str(tmp_path), *FAST]
    assert main(argv) == 130
    assert _err_lines(capsys)[-1] == "prunelimit limit: interrupted; rerun the same command to resume from epoch 2"
    monkeypatch.setattr(cli_limit, "training_progress", real)
    assert main(argv) == 0
    assert json.loads((tmp_path / "result.json").read_text())["train"]["resumed_from"] == 2


def test_ctrl_c_after_training_and_with_a_checkpoint(tmp_path, capsys, monkeypatch):
    import nets.limit

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(nets.limit, "estimate_pruning_limit", interrupt)
    assert main(["limit", "--out", str(tmp_path / "a"), *FAST]) == 130
    assert _err_lines(capsys)[-1].startswith(
        "prunelimit limit: interrupted; rerun the same command to resume from epoch 3 (training is complete")
    ckpt = str(tmp_path / "a" / "train" / "checkpoint.pt")
    fast = [x for x in FAST if x not in ("--epochs", "3")]
    assert main(["limit", "--out", str(tmp_path / "b"), "--checkpoint", ckpt, *fast]) == 130
    assert _err_lines(capsys)[-1] == ("prunelimit limit: interrupted; nothing of this run is saved to resume from: "
                                      "rerun the same command to start again")


@pytest.mark.timeout(180)
def test_a_real_sigint_exits_130_and_says_where_to_resume(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nets.cli", "limit", "--out", str(out), "--hidden", "8", "--epochs", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    history = out / "train" / "history.json"
    deadline = time.monotonic() + 120
    while not history.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert history.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"prunelimit limit: interrupted; rerun the same command to resume from epoch (\d+)", last)
    assert m, err
    assert "Traceback" not in err
    saved = len(json.loads(history.read_text())["history"])
    assert int(m.group(1)) == saved  # the epoch named is the one saved


def test_memory_preflight_switches_to_streaming_products(tmp_path, capsys, monkeypatch):
    """When the cached first-order graphs do not fit beside the rest, the run streams its products, says so,
    and records the path taken."""
    import nets.limit.preflight as pre

    real = pre.check_plan

    def tight(plan, config, available, **kw):
        h = plan.stage("hessian products")
        rest = plan.peak - h.bytes
        return real(plan, config, int((rest + h.bytes // 2) / pre.USABLE_FRACTION), **kw)

    monkeypatch.setattr(pre, "check_plan", tight)
    # batches of 128: one streamed batch is smaller than the graphs of all 1347 samples
    assert main(["limit", "--out", str(tmp_path), *FAST, "--hessian-batch-size", "128"]) == 0
    err = capsys.readouterr().err
    assert "warning: the cached first-order graphs" in err and "streaming Hessian products instead" in err
    d = json.loads((tmp_path / "result.json").read_text())
    assert d["config"]["spectrum"]["cache_graph"] is False
    # a streaming product (hvp_method="auto": the faster of the two on this model), not the cached graphs
    assert d["config"]["used"]["hessian_path"] in ("forward-over-reverse", "double-backward")
    assert d["train"]["notes"] and "streaming" in d["train"]["notes"][0]


def test_progress_off_a_terminal_is_one_line_per_stage(tmp_path, capsys):
    argv = ["limit", "--out", str(tmp_path), *FAST]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "\r" not in err  # no tqdm updates in a log
    lines = [ln for ln in err.splitlines() if ln.strip()]
    stages = [re.search(r"stage (\w+) done: [\d.]+ s", ln).group(1) for ln in lines]
    assert stages == ["train", "tolerance", "spectrum", "gradient", "predict", "sweep"]
    assert re.search(r"stage spectrum done: [\d.]+ s, 40 HVPs", err)
    assert re.search(r"stage sweep done: [\d.]+ s, \d+ data passes, \d+ levels", err)
    assert re.search(r"stage train done: [\d.]+ s, 3 epochs \(3 data passes\)", err)
    # --no-progress: nothing at all
    assert main([*argv, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty, argv, rank, expected", [
    (True, {}, 0, "bars"), (False, {}, 0, "lines"), (True, {"no_progress": True}, 0, "off"),
    (False, {"quiet": True}, 0, "off"), (True, {}, 1, "off"),
])
def test_progress_mode(tty, argv, rank, expected):
    import argparse

    assert progress_mode(argparse.Namespace(**argv), rank=rank, stream=_Stream(tty)) == expected


def test_training_bars_stay_off_a_non_terminal():
    """nets.train.tqdm_progress draws nothing into a file or pipe (tqdm's disable=None), so every command that
    uses it — prunelimit grda too — keeps carriage returns out of logs."""
    from nets.train import tqdm_progress

    s = _Stream(False)
    update = tqdm_progress(2, file=s)
    for e in (1, 2):
        update({"epoch": e, "train_loss": 1.0, "test_acc": 0.5})
    assert s.getvalue() == ""
    t = _Stream(True)
    update = tqdm_progress(2, file=t)
    update({"epoch": 1, "train_loss": 1.0, "test_acc": 0.5})
    assert "\r" in t.getvalue()


def test_threads_are_chosen_recorded_and_restored(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("PRUNELIMIT_THREADS", "1")
    before = torch.get_num_threads()
    assert main(["spectrum", "--out", str(tmp_path), *FAST[:6], "--no-progress"]) == 0
    assert torch.get_num_threads() == before
    d = json.loads((tmp_path / "spectrum_summary.json").read_text())
    assert d["used"]["threads"]["threads"] == 1 and d["used"]["threads"]["source"] == "PRUNELIMIT_THREADS"
