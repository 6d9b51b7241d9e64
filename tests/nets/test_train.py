"""Training: schedules per epoch, the ℓ1 objective, bit-identical resume after interruption, errors."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from torch import nn

from nets.data import ArrayDataset, Augmentation, DataSplit, load_dataset
from nets.models import build_model
from nets.train import CHECKPOINT_NAME, HISTORY_NAME, TrainConfig, evaluate, paper_config, train


def _image_split(n_train=96, n_test=32, seed=0) -> DataSplit:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 1, 8, 8), generator=g, dtype=torch.uint8)
    y = (x[:, 0, :4].float().mean((1, 2)) > x[:, 0, 4:].float().mean((1, 2))).long()
    train = ArrayDataset(x[:n_train], y[:n_train], scale=1 / 255, mean=[0.5], std=[0.29], augmentation=Augmentation(1))
    test = ArrayDataset(x[n_train:], y[n_train:], scale=1 / 255, mean=[0.5], std=[0.29])
    return DataSplit("toy-images", train, test, train.unaugmented(), 2, (1, 8, 8))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lr_schedules_are_per_epoch():
    c = TrainConfig(lr=0.1, epochs=10, warmup_epochs=2, schedule="cosine")
    assert [c.lr_at(e) for e in range(2)] == [0.05, 0.1]
    assert c.lr_at(2) == 0.1 and math.isclose(c.lr_at(6), 0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    m = paper_config("alexnet")
    assert (m.lr_at(59), m.lr_at(60), m.lr_at(120), m.lr_at(199)) == (0.01, 0.005, 0.0025, 0.00125)
    assert TrainConfig(lr=0.3).lr_at(150) == 0.3
    assert paper_config("resnet18", epochs=10).epochs == 10


def test_training_learns_digits_and_records_history(tmp_path):
    data = load_dataset("digits", seed=0)
    model = build_model("mlp", 10, (64,), generator=torch.Generator().manual_seed(0))
    model.eval()  # the caller's mode must come back
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, l1=1e-4, warmup_epochs=1, schedule="cosine")
    res = train(model, data, cfg, checkpoint_dir=tmp_path)
    assert not model.training
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    assert [r["lr"] for r in res.history] == [cfg.lr_at(e) for e in range(3)]
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.final["test_acc"] > 0.85
    # Loss and accuracy in the record agree with an independent evaluation.
    loss, acc = evaluate(model, data.test)
    assert math.isclose(loss, res.final["test_loss"], rel_tol=1e-6) and acc == res.final["test_acc"]
    saved = json.loads((tmp_path / HISTORY_NAME).read_text())
    assert saved["history"] == res.history and saved["config"]["l1"] == 1e-4
    assert (tmp_path / CHECKPOINT_NAME).is_file() and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("scope", ["all", "prunable"])
def test_one_sgd_step_matches_the_l1_objective(scope):
    # Full batch, no momentum: w1 = w0 - lr (∇ mean CE + λ sign(w0) [P]), P = all params or weights only.
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 5, generator=g), torch.randint(0, 3, (20,), generator=g)
    data = DataSplit("t", ArrayDataset(x, y), ArrayDataset(x, y), ArrayDataset(x, y), 3, (5,))
    model = build_model("mlp", 3, (5,), hidden=(4,), generator=g, dtype=torch.float64)
    ref = build_model("mlp", 3, (5,), hidden=(4,), dtype=torch.float64)
    ref.load_state_dict(model.state_dict())
    lam, lr = 0.01, 0.1
    nn.init.normal_(ref.net[1].bias, generator=g)  # non-zero biases so their ℓ1 term is visible
    model.load_state_dict(ref.state_dict())
    train(model, data, TrainConfig(epochs=1, batch_size=20, lr=lr, momentum=0.0, l1=lam, l1_params=scope))
    loss = nn.functional.cross_entropy(ref(x.double()), y)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for (name, p), gr, q in zip(ref.named_parameters(), grads, model.parameters()):
        reg = lam * torch.sign(p) if (scope == "all" or name.endswith("weight")) else 0.0
        assert torch.allclose(q, p - lr * (gr + reg), atol=1e-13, rtol=0), name


def test_resume_after_interruption_is_bit_identical(tmp_path):
    data = _image_split()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, l1=1e-4, warmup_epochs=1, schedule="multistep",
                      milestones=(3,), gamma=0.5)
    full = build_model("cnn", 2, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    ref = train(full, data, cfg, checkpoint_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    part = build_model("cnn", 2, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(Stop):
        train(part, data, cfg, checkpoint_dir=tmp_path / "b", progress=stop_after_two)
    # A fresh process would rebuild the model from anything: use a different initialisation.
    again = build_model("cnn", 2, (1, 8, 8), generator=torch.Generator().manual_seed(99))
    res = train(again, data, cfg, checkpoint_dir=tmp_path / "b", resume=True)
    assert res.resumed_from == 2 and res.epochs_run == 2
    assert _same_weights(again, full)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(res.history) == strip(ref.history)
    # Resuming a finished run trains nothing and returns the same history.
    done = train(again, data, cfg, checkpoint_dir=tmp_path / "b", resume=True)
    assert done.epochs_run == 0 and strip(done.history) == strip(ref.history)
    # Without interruption, a different seed gives different weights (the test can fail).
    other = build_model("cnn", 2, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    train(other, data, TrainConfig(**{**cfg.to_dict(), "seed": 1}))
    assert not _same_weights(other, full)


def test_checkpoint_guards(tmp_path):
    data = load_dataset("teacher-student", n_train=64, n_test=32, input_dim=6, hidden=8, num_classes=3)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.01)
    model = build_model("mlp", 3, (6,), generator=torch.Generator().manual_seed(0))
    train(model, data, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(FileExistsError, match="checkpoint already exists"):
        train(model, data, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different config: fields \['lr'\]"):
        train(model, data, TrainConfig(epochs=1, batch_size=32, lr=0.02), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        train(model, data, cfg, resume=True)


@pytest.mark.parametrize("optimizer", ["adam", "grda"])
def test_other_optimizers_run(optimizer):
    if optimizer == "grda" and importlib.util.find_spec("nets.grda") is None:
        pytest.skip("nets.grda is not in this tree")
    data = load_dataset("teacher-student", n_train=128, n_test=64, input_dim=6, hidden=8, num_classes=3)
    model = build_model("mlp", 3, (6,), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01 if optimizer == "adam" else 0.1, optimizer=optimizer,
                      grda_c=0.05, grda_mu=0.6)
    res = train(model, data, cfg)
    assert all(math.isfinite(r["train_loss"]) for r in res.history)
    if optimizer == "grda":  # gRDA's soft threshold produces exact zeros
        assert res.final["sparsity"] > 0


def test_evaluate_restores_mode_and_accepts_batches():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 4, generator=g), torch.randint(0, 2, (10,), generator=g)
    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))
    nn.init.normal_(model[0].weight, generator=g)  # deterministic (no global RNG)
    model.train()
    l1, a1 = evaluate(model, ArrayDataset(x, y), batch_size=3)
    l2, a2 = evaluate(model, [(x[:6], y[:6]), (x[6:], y[6:])], nn.functional.cross_entropy)
    assert model.training
    with torch.no_grad():
        out = model[0](x)
    assert math.isclose(l1, float(nn.functional.cross_entropy(out, y)), rel_tol=1e-6)
    assert math.isclose(l1, l2, rel_tol=1e-6) and a1 == a2 == int((out.argmax(1) == y).sum()) / 10
    with pytest.raises(ValueError, match="no samples"):
        evaluate(model, [])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"epochs": 0}, "epochs must be an int >= 1, got epochs=0"),
        ({"lr": -1.0}, "lr must be a finite positive number"),
        ({"lr": float("nan")}, "lr must be a finite positive number"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"l1_params": "bias"}, "l1_params must be one of"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"optimizer": "adam", "momentum": 0.9}, "takes no momentum"),
        ({"milestones": (5, 3)}, "strictly increasing"),
        ({"l1": -1e-4}, "l1 must be a finite non-negative number"),
        ({"epochs": 5, "warmup_epochs": 5, "schedule": "cosine"}, "warmup_epochs < epochs"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_train_argument_errors():
    data = load_dataset("teacher-student", n_train=16, n_test=8, input_dim=3, hidden=4, num_classes=2)
    model = build_model("mlp", 2, (3,))
    with pytest.raises(TypeError, match="data must be a nets.data.DataSplit"):
        train(model, data.train, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="start_epoch must be an int in"):
        train(model, data, TrainConfig(epochs=2), start_epoch=2)
    with pytest.raises(ValueError, match="no paper configuration for model_name='lenet'"):
        paper_config("lenet")
    with pytest.raises(RuntimeError, match="initialised torch.distributed"):
        train(model, data, TrainConfig(epochs=1), distributed=True)
