"""Inputs that differ across torchrun ranks are refused on every rank, naming the input, before any work."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nets.data import load_dataset
from nets.limit import LimitConfig, MeasureConfig, SpectrumConfig, estimate_pruning_limit
from nets.limit.parallel import check_same_on_every_rank, init_process_group
from nets.train import TrainConfig, train

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
    pytest.mark.skipif(sys.platform == "win32", reason="file:// rendezvous on POSIX paths"),
]


def _outcome(fn) -> str:
    try:
        fn()
    except ValueError as err:
        return str(err)
    return "ok"


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        same = torch.linspace(-1.0, 1.0, 50)
        swapped = same.clone()
        if rank == 1:  # the same values in another order: only the position-weighted sum differs
            swapped[[3, 7]] = swapped[[7, 3]]
        results = {
            "same": _outcome(lambda: check_same_on_every_rank("cpu", model=same, data=same.reshape(5, 10), gap=None,
                                                              seed=3)),
            "swapped": _outcome(lambda: check_same_on_every_rank("cpu", model=same, data=swapped)),
            "seed": _outcome(lambda: check_same_on_every_rank("cpu", model=same, seed=rank)),
            "tiny": _outcome(lambda: check_same_on_every_rank("cpu", x=same + rank * 1e-6)),
            # numbers compare exactly: seeds beyond float64's 2**53 that differ by 1, l1 values one ulp apart
            "big_seed": _outcome(lambda: check_same_on_every_rank("cpu", seed=2**60 + rank)),
            "l1_ulp": _outcome(lambda: check_same_on_every_rank("cpu", l1=math.nextafter(1e-3, 1.0) if rank else 1e-3)),
            # a list of tensors is their concatenation: the same values split differently give the same row
            "split": _outcome(lambda: check_same_on_every_rank("cpu", model=[same[:10], same[10:]] if rank
                                                               else [same[:25], same[25:]])),
        }
        # BatchNorm statistics after data-parallel training: every rank ends with rank 0's buffers
        bn = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
        bn.load_state_dict({k: torch.full_like(v, 0.1) if v.is_floating_point() else v
                            for k, v in bn.state_dict().items()})
        data = load_dataset("teacher-student", seed=3, n_train=64, n_test=16, input_dim=4, hidden=5, num_classes=2)
        train(bn, data, TrainConfig(epochs=2, batch_size=16, lr=0.05), distributed=True)
        results["bn_buffers"] = _outcome(lambda: check_same_on_every_rank("cpu", model=list(bn.state_dict().values())))
        # the pipeline: a model initialised differently on each rank is refused before any work
        g = torch.Generator().manual_seed(0)
        X = torch.randn(64, 4, generator=g)
        y = (X[:, 0] > 0).long()
        torch.manual_seed(rank)
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
        cfg = LimitConfig(spectrum=SpectrumConfig(steps=8, n_probes=1), measurement=MeasureConfig(fundamental=False))
        results["pipeline"] = _outcome(lambda: estimate_pruning_limit(model, (X, y), config=cfg))
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
            f.write("\n".join(f"{k}\t{v}" for k, v in results.items()))
    finally:
        dist.destroy_process_group()


def test_differing_inputs_are_refused_on_every_rank(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        res = dict(line.split("\t", 1) for line in (tmp_path / f"rank{r}.txt").read_text().splitlines())
        assert res["same"] == "ok"
        assert res["swapped"].startswith("data differs across the 2 processes")
        assert res["seed"].startswith("seed differs across the 2 processes")
        assert res["tiny"].startswith("x differs")  # 1e-6 is far above the 1e-9 summation-order tolerance
        assert res["big_seed"].startswith("seed differs") and res["l1_ulp"].startswith("l1 differs")
        assert res["split"] == "ok" and res["bn_buffers"] == "ok"
        assert res["pipeline"].startswith("model differs across the 2 processes: under torchrun every rank must "
                                          "hold the same model"), res["pipeline"]


def test_fingerprint_does_not_depend_on_the_chunking(monkeypatch) -> None:
    import nets.limit.parallel as parallel

    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    x64 = x.to(torch.float64)
    phase = torch.arange(1, 1001, dtype=torch.float64).sin()
    ref = [1000.0, float(x64.sum()), float((x64 * x64).sum()), float((x64 * phase).sum())]
    for chunk in (7, 256, 1 << 22):
        monkeypatch.setattr(parallel, "_FINGERPRINT_CHUNK", chunk)
        assert parallel._fingerprint(x.reshape(10, 100)) == pytest.approx(ref, rel=1e-12, abs=1e-9)
