"""Data-parallel training (2 gloo processes on CPU) gives the single-process weights on the same global batch."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nets.data import load_dataset
from nets.limit.parallel import init_process_group
from nets.models import build_model
from nets.train import TrainConfig, train

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(240)]

# 100 samples, batch 24: four full global batches and a short last one of 4 (shards of 2 + 2), so the
# loss scaling for an unequal last batch is exercised too.
CFG = dict(epochs=2, batch_size=24, lr=0.05, l1=1e-3, warmup_epochs=1, schedule="cosine")


def _setup():
    data = load_dataset("teacher-student", seed=3, n_train=100, n_test=40, input_dim=6, hidden=8, num_classes=3)
    model = build_model("mlp", 3, (6,), hidden=(16,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return data, model


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    torch.set_num_threads(1)
    init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data, model = _setup()
        # Error input first (one spawn serves both checks): batch 1 leaves one of the two processes empty.
        try:
            train(model, data, TrainConfig(epochs=1, batch_size=1), distributed=True)
        except ValueError as exc:
            if "every global batch must give each of the 2 processes" not in str(exc):
                raise
        else:
            raise AssertionError("batch_size=1 with 2 processes was accepted")
        res = train(model, data, TrainConfig(**CFG), distributed=True)
        if rank == 0:
            torch.save({"state": model.state_dict(), "history": res.history}, out_path)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_single_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)

    data, model = _setup()
    ref = train(model, data, TrainConfig(**CFG))
    # float64: the only difference is the order of summation (all-reduce of two shard gradients vs one
    # batch gradient), so the weights agree to a few hundred ulps after 10 steps.
    for k, v in model.state_dict().items():
        assert torch.allclose(got["state"][k], v, rtol=0, atol=1e-12), k
    # Metrics gathered over both processes equal the single-process ones.
    for a, b in zip(got["history"], ref.history):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert abs(a[key] - b[key]) < 1e-9, key
    # Training moved the weights, so the comparison is not vacuous.
    _, init = _setup()
    assert not torch.allclose(init.state_dict()["net.1.weight"], model.state_dict()["net.1.weight"], atol=1e-3)
