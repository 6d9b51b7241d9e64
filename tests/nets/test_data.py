"""Loaders on small fake files, normalisation, augmentation, batching and error inputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nets.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ArrayDataset,
    Augmentation,
    fixed_batches,
    load_dataset,
    make_loader,
)


# ----------------------------------------------------------------------------- fake files
def _write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _fake_cifar10(root, n_per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir()
    arrays = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        _write_pickle(d / name, {b"data": data, b"labels": labels, b"batch_label": name.encode()})
        arrays[name] = (data, labels)
    _write_pickle(d / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return d, arrays


def _fake_cifar100(root, n=8, seed=1):
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir()
    for name in ("train", "test"):
        _write_pickle(d / name, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                 b"fine_labels": rng.integers(0, 100, n).tolist(),
                                 b"coarse_labels": rng.integers(0, 20, n).tolist()})
    _write_pickle(d / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    return d


def _fake_tiny(root, wnids=("n01", "n02", "n03"), per_class=2, size=64):
    from PIL import Image

    rng = np.random.default_rng(2)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        img_dir = root / "train" / w / "images"
        img_dir.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(img_dir / f"{w}_{j}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i, w in enumerate(wnids):
        name = f"val_{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / "val" / "images" / name)
        lines.append(f"{name}\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- digits / teacher-student
def test_digits_split_stratified_and_standardised():
    s = load_dataset("digits", seed=0)
    assert (len(s.train), len(s.test), s.num_classes, s.input_shape) == (1347, 450, 10, (64,))
    x = s.train.inputs.double()
    # Train statistics: mean 0, std 1 on non-constant pixels; constant pixels are exactly 0.
    assert torch.allclose(x.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-5)
    sd = x.std(0, unbiased=False)
    assert torch.allclose(sd[sd > 0], torch.ones_like(sd[sd > 0]), atol=1e-5)
    # Stratified: every class has within one sample of its proportional share in the test set.
    counts_test = torch.bincount(s.test.targets, minlength=10).double()
    counts_all = counts_test + torch.bincount(s.train.targets, minlength=10).double()
    assert torch.all((counts_test - counts_all * 450 / 1797).abs() <= 1)
    assert s.train_eval is s.train


def test_digits_seed_and_image_option():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.train.inputs, b.train.inputs) and not torch.equal(a.train.targets, c.train.targets)
    img = load_dataset("digits", as_image=True, test_fraction=0.5)
    assert img.input_shape == (1, 8, 8) and img.train.inputs.shape[1:] == (1, 8, 8)
    assert len(img.test) in (898, 899)


def test_teacher_student_is_seeded_and_learnable_labels():
    a = load_dataset("teacher-student", seed=5, n_train=100, n_test=50, input_dim=8, hidden=16, num_classes=3)
    b = load_dataset("teacher_student", seed=5, n_train=100, n_test=50, input_dim=8, hidden=16, num_classes=3)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.targets, b.test.targets)
    assert a.input_shape == (8,) and a.num_classes == 3 and len(a.train) == 100 and len(a.test) == 50
    assert int(a.train.targets.max()) < 3 and len(torch.unique(a.train.targets)) >= 2


# ----------------------------------------------------------------------------- CIFAR / TinyImageNet
def test_cifar10_loader_reads_and_normalises(tmp_path):
    d, arrays = _fake_cifar10(tmp_path)
    for root in (tmp_path, d):  # parent or the extracted folder itself
        s = load_dataset("cifar10", root, augment=True)
        assert (len(s.train), len(s.test), s.num_classes, s.input_shape) == (30, 6, 10, (3, 32, 32))
    assert s.class_names[3] == "c3"
    raw, labels = arrays["data_batch_2"]
    x, y = s.train_eval[6]  # first image of data_batch_2
    expect = (torch.from_numpy(raw[0].reshape(3, 32, 32)).float() / 255 - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) \
        / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    assert torch.allclose(x, expect, atol=1e-6) and int(y) == labels[0]
    assert s.train.augmentation == Augmentation(4, True) and s.test.augmentation is None
    assert s.train_eval.augmentation is None


def test_cifar100_loader(tmp_path):
    _fake_cifar100(tmp_path)
    s = load_dataset("cifar100", tmp_path)
    assert (len(s.train), s.num_classes, s.class_names[99]) == (8, 100, "f99")


def test_tinyimagenet_loader(tmp_path):
    _fake_tiny(tmp_path)
    s = load_dataset("tinyimagenet", tmp_path)
    assert (len(s.train), len(s.test), s.num_classes, s.input_shape) == (6, 3, 3, (3, 64, 64))
    assert s.test.targets.tolist() == [0, 1, 2]  # from val_annotations.txt
    assert s.train.targets.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda d: (d / "data_batch_3").unlink(), FileNotFoundError, "missing CIFAR file: .*data_batch_3"),
        (lambda d: (d / "batches.meta").unlink(), FileNotFoundError, "missing CIFAR file: .*batches.meta"),
        (lambda d: (d / "test_batch").write_bytes(b"not a pickle"), ValueError, "malformed CIFAR file .*test_batch"),
        (lambda d: _write_pickle(d / "data_batch_1", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
         ValueError, r"data must be uint8 \(n, 3072\)"),
        (lambda d: _write_pickle(d / "data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
         ValueError, "1 labels for 2 images"),
        (lambda d: _write_pickle(d / "data_batch_1", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}),
         ValueError, r"labels outside \[0, 10\)"),
        (lambda d: _write_pickle(d / "data_batch_1", {b"x": 1}), ValueError, "needs keys 'data' and 'labels'"),
    ],
)
def test_cifar_malformed(tmp_path, mutate, exc, match):
    d, _ = _fake_cifar10(tmp_path)
    mutate(d)
    with pytest.raises(exc, match=match):
        load_dataset("cifar10", tmp_path)


def test_tinyimagenet_malformed(tmp_path):
    _fake_tiny(tmp_path)
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="val_annotations.txt line 1"):
        load_dataset("tinyimagenet", tmp_path)
    (tmp_path / "val" / "val_annotations.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing .*val_annotations.txt"):
        load_dataset("tinyimagenet", tmp_path)


def test_tinyimagenet_wrong_image_size(tmp_path):
    _fake_tiny(tmp_path, size=32)
    with pytest.raises(ValueError, match="expected 64x64, got 32x32"):
        load_dataset("tinyimagenet", tmp_path)


@pytest.mark.parametrize(
    "name,root,kwargs,exc,match",
    [
        ("mnist", None, {}, ValueError, "unknown dataset name='mnist'"),
        ("cifar10", None, {}, ValueError, "needs root="),
        ("cifar10", "/nonexistent/cifar", {}, FileNotFoundError, "CIFAR root folder not found: /nonexistent/cifar"),
        ("tinyimagenet", "/nonexistent/tin", {}, FileNotFoundError, "TinyImageNet root folder not found"),
        ("digits", "/some/path", {}, ValueError, "takes no root"),
        ("digits", None, {"test_fraction": 1.5}, ValueError, "test_fraction must lie in"),
        ("digits", None, {"bogus": 1}, TypeError, "bad option for dataset 'digits'"),
        ("teacher-student", None, {"num_classes": 1}, ValueError, "num_classes must be an int >= 2"),
    ],
)
def test_load_dataset_errors(name, root, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_dataset(name, root, **kwargs)


# ----------------------------------------------------------------------------- augmentation and loaders
def test_augmentation_crop_matches_padded_slice_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    aug = Augmentation(padding=2, flip=True)
    offsets, flips = aug.draw(2, g)
    out = aug.apply(x, offsets, flips)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        oy, ox = offsets[i].tolist()
        ref = padded[i, :, oy : oy + 6, ox : ox + 6]
        assert torch.equal(out[i], ref.flip(-1) if flips[i] else ref)
    # Over many draws offsets cover {0..4} and both flip values occur.
    o, f = aug.draw(2000, g)
    assert set(o.flatten().tolist()) == set(range(5)) and 0 < int(f.sum()) < 2000


def test_loader_is_reproducible_and_shards_partition_the_global_batch():
    x = torch.arange(40, dtype=torch.float32).reshape(10, 1, 2, 2)
    ds = ArrayDataset(x, torch.arange(10), augmentation=Augmentation(1, True))
    a = [b for b in make_loader(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    b = [b for b in make_loader(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert sorted(torch.cat([y for _, y in a]).tolist()) == list(range(10))
    shards = [list(make_loader(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(3), shard=(r, 2)))
              for r in range(2)]
    for k in range(3):
        assert torch.equal(torch.cat([shards[0][k][0], shards[1][k][0]]), a[k][0])
    assert len(make_loader(ds, 4, shuffle=False, generator=None, drop_last=True)) == 2


def test_fixed_batches_are_unaugmented_and_ordered(tmp_path):
    _fake_cifar10(tmp_path)
    s = load_dataset("cifar10", tmp_path)
    b1, b2 = fixed_batches(s.train, 7), fixed_batches(s.train, 7)
    assert [len(y) for _, y in b1] == [7, 7, 7, 7, 2]
    assert all(torch.equal(p[0], q[0]) for p, q in zip(b1, b2))
    assert torch.equal(b1[0][0][0], s.train_eval[0][0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0, "shuffle": False, "generator": None}, "batch_size must be a positive int"),
        ({"batch_size": 2, "shuffle": True, "generator": None}, "shuffle=True needs an explicit torch.Generator"),
        ({"batch_size": 2, "shuffle": False, "generator": None, "shard": (2, 2)}, "shard must be"),
    ],
)
def test_loader_errors(kwargs, match):
    ds = ArrayDataset(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=match):
        make_loader(ds, **kwargs)


def test_augmenting_dataset_requires_generator():
    ds = ArrayDataset(torch.zeros(4, 1, 2, 2), torch.zeros(4), augmentation=Augmentation(1))
    with pytest.raises(ValueError, match="needs an explicit torch.Generator"):
        list(make_loader(ds, 2, shuffle=False, generator=None))
    with pytest.raises(ValueError, match="augmentation needs images"):
        ArrayDataset(torch.zeros(4, 2), torch.zeros(4), augmentation=Augmentation(1))
    with pytest.raises(ValueError, match="disagree in length"):
        ArrayDataset(torch.zeros(4, 2), torch.zeros(3))
