"""Datasets: scikit-learn's bundled digits (default), a seeded teacher–student task, CIFAR-10/100, TinyImageNet.

Everything is held in memory as tensors in an :class:`ArrayDataset`; batches are gathered by index, and the
training augmentation (random crop with zero padding + horizontal flip, the CIFAR recipe of the papers) is
drawn from an explicit ``torch.Generator`` for the whole batch at once, so a run is reproducible from its
seed and resumable from a saved generator state. No torchvision.

The Hessian data is always the *un-augmented* training set in a fixed order (:func:`fixed_batches`,
``DataSplit.train_eval``): the authors computed HVPs over the augmented loader, so their operator changed
between Lanczos steps (docs/experiments.md §1.4, mistake 4).

Normalisation (docs/experiments.md §1.2): CIFAR-10 mean (0.491, 0.482, 0.447) std (0.247, 0.243, 0.262); CIFAR-100 mean
(0.507, 0.487, 0.441) std (0.267, 0.256, 0.276), applied after scaling pixels to [0, 1] and after the
augmentation (so padding is black, as torchvision's ``RandomCrop`` on PIL images). TinyImageNet: the
material we have does not give the authors' statistics; we use the ImageNet ones (0.485, 0.456, 0.406) /
(0.229, 0.224, 0.225) and RandomCrop(64, pad 4) + flip (our choice: the CIFAR recipe at 64×64).
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from theory.validation import check_int, check_torch_generator

__all__ = [
    "ArrayDataset",
    "Augmentation",
    "BatchLoader",
    "DataSplit",
    "DATASET_NAMES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_dataset",
    "load_digits",
    "teacher_student",
    "synthetic_cifar",
    "SYNTHETIC_CIFAR_SIZES",
    "BUILTIN_DATASETS",
    "load_cifar",
    "load_tinyimagenet",
    "make_loader",
    "fixed_batches",
    "Batches",
    "as_batches",
    "subset_batches",
    "count_samples",
]

CIFAR10_MEAN = (0.491, 0.482, 0.447)
CIFAR10_STD = (0.247, 0.243, 0.262)
CIFAR100_MEAN = (0.507, 0.487, 0.441)
CIFAR100_STD = (0.267, 0.256, 0.276)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero padding by ``padding`` pixels on each side, then a horizontal flip with p = ½."""

    padding: int = 4
    flip: bool = True

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Offsets ``(n, 2)`` uniform on {0, …, 2·padding} and flip flags ``(n,)``, drawn from ``generator``."""
        offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return offsets, flips

    def apply(self, x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Crop and flip a batch ``(n, C, H, W)``; pixel ``(i, j)`` of the output is padded ``(i + oy, j + ox)``."""
        n, _, h, w = x.shape
        p = self.padding
        if p > 0:
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            out = torch.empty_like(x)
            keys = offsets[:, 0] * (2 * p + 1) + offsets[:, 1]
            for key in torch.unique(keys).tolist():
                rows = (keys == key).nonzero().squeeze(1)
                oy, ox = divmod(int(key), 2 * p + 1)
                out[rows] = padded[rows, :, oy : oy + h, ox : ox + w]
        else:
            out = x.clone()
        if flips.any():
            out[flips] = out[flips].flip(-1)
        return out


class ArrayDataset(Dataset):
    """In-memory dataset: ``inputs`` (float, or uint8 images scaled by ``scale``), integer ``targets``.

    A sample is ``((x·scale − mean) / std, y)`` with ``mean``/``std`` broadcast against one sample (per
    channel for images). With ``augmentation`` set, :meth:`batch` crops/flips the *unnormalised* images with
    parameters from :meth:`draw`; ``__getitem__`` and :meth:`unaugmented` never augment.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        scale: float | None = None,
        mean: torch.Tensor | Sequence[float] | None = None,
        std: torch.Tensor | Sequence[float] | None = None,
        augmentation: Augmentation | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets disagree in length: {inputs.shape[0]} vs {targets.shape[0]}")
        if targets.ndim != 1:
            raise ValueError(f"targets must be 1-d, got shape {tuple(targets.shape)}")
        if augmentation is not None and inputs.ndim != 4:
            raise ValueError(f"augmentation needs images (n, C, H, W), got inputs of shape {tuple(inputs.shape)}")
        self.inputs = inputs
        self.targets = targets.long()
        self.scale = scale
        sample_ndim = inputs.ndim - 1
        self.mean = self._stat(mean, sample_ndim)
        self.std = self._stat(std, sample_ndim)
        if self.std is not None and not bool((self.std > 0).all()):
            raise ValueError("std must be positive everywhere")
        self.augmentation = augmentation

    @staticmethod
    def _stat(v: torch.Tensor | Sequence[float] | None, sample_ndim: int) -> torch.Tensor | None:
        if v is None:
            return None
        t = torch.as_tensor(v, dtype=torch.float32)
        if t.ndim == 1 and sample_ndim == 3:  # per channel
            t = t.reshape(-1, 1, 1)
        return t

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._finish(self.inputs[i]), self.targets[i]

    def draw(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Augmentation parameters for ``n`` samples (``None`` when this view does not augment)."""
        if self.augmentation is None:
            return None
        if generator is None:
            raise ValueError("an augmenting dataset needs an explicit torch.Generator (generator=None given)")
        return self.augmentation.draw(n, generator)

    def batch(
        self, indices: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather, augment with ``params`` (from :meth:`draw`; ``None`` = no augmentation) and normalise."""
        x = self.inputs[indices]
        if params is not None:
            if self.augmentation is None:
                raise ValueError("augmentation parameters given to a dataset view without augmentation")
            x = self.augmentation.apply(x.float(), *params)
        return self._finish(x), self.targets[indices]

    def unaugmented(self) -> ArrayDataset:
        """The same samples (shared storage) without augmentation."""
        return ArrayDataset(self.inputs, self.targets, scale=self.scale, mean=self.mean, std=self.std)


@dataclass(frozen=True)
class DataSplit:
    """A train/test pair. ``train_eval`` is the un-augmented view of ``train`` (Hessians, training loss)."""

    name: str
    train: Dataset
    test: Dataset
    train_eval: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------- loaders
class BatchLoader:
    """Mini-batches ``(x, y)`` of a dataset; the order and the augmentation come from ``generator``.

    Each pass draws a permutation (``shuffle``) and then, batch by batch, the augmentation parameters of the
    whole *global* batch from the same generator. With ``shard=(rank, world_size)`` every process draws the
    same numbers and keeps its contiguous part ``torch.tensor_split(batch, world_size)[rank]`` of each global
    batch, so data-parallel training sees exactly the global batches of single-process training.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None,
        drop_last: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got batch_size={batch_size!r}")
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("dataset is empty")
        if shuffle and generator is None:
            raise ValueError("shuffle=True needs an explicit torch.Generator (generator=None given)")
        if shard is not None:
            rank, world = shard
            if not (0 <= rank < world):
                raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got shard={shard}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.shard = shard

    def __len__(self) -> int:
        n = len(self.dataset)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _gather(self, idx: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.dataset, ArrayDataset):
            return self.dataset.batch(idx, params)
        items = [self.dataset[int(i)] for i in idx]
        return torch.stack([torch.as_tensor(a) for a, _ in items]), torch.as_tensor([int(b) for _, b in items])

    def iter_with_sizes(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Yield ``(x, y, global_batch_size)``; ``x, y`` are this process's shard of the global batch."""
        n = len(self.dataset)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        augmenting = isinstance(self.dataset, ArrayDataset) and self.dataset.augmentation is not None
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.drop_last and idx.numel() < self.batch_size:
                break
            params = self.dataset.draw(idx.numel(), self.generator) if augmenting else None  # type: ignore[union-attr]
            if self.shard is not None:
                rank, world = self.shard
                pieces = torch.arange(idx.numel()).tensor_split(world)[rank]
                idx = idx[pieces]
                if params is not None:
                    params = (params[0][pieces], params[1][pieces])
            x, y = self._gather(idx, params)
            yield x, y, int(min(self.batch_size, n - start))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y, _ in self.iter_with_sizes():
            yield x, y


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_last: bool = False,
    shard: tuple[int, int] | None = None,
) -> BatchLoader:
    """A :class:`BatchLoader` (order and augmentation drawn from ``generator``; see its docstring)."""
    return BatchLoader(dataset, batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last, shard=shard)


def fixed_batches(dataset: Dataset, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Hessian data: all samples, un-augmented, in index order, as a list of ``(x, y)`` batches.

    An augmenting :class:`ArrayDataset` is replaced by its :meth:`~ArrayDataset.unaugmented` view, so the
    operator built from these batches is the same at every Lanczos step.
    """
    if isinstance(dataset, ArrayDataset):
        dataset = dataset.unaugmented()
    return list(BatchLoader(dataset, batch_size, shuffle=False, generator=None))


Batches = list[tuple[torch.Tensor, torch.Tensor]]


def count_samples(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """The number of samples in a list of batches (leading dimension of the inputs)."""
    return sum(int(x.shape[0]) for x, _ in batches)


def as_batches(
    data: Any,
    batch_size: int,
    *,
    name: str = "data",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Batches:
    """Fixed, un-augmented batches ``[(inputs, targets), …]`` from what a user has.

    ``data`` may be

    * ``(X, y)``: two tensors (or numpy arrays) with a common leading dimension, split into consecutive batches
      of ``batch_size``;
    * a :class:`torch.utils.data.Dataset` (an :class:`ArrayDataset` is read through its un-augmented view),
      read in index order in batches of ``batch_size``;
    * a :class:`torch.utils.data.DataLoader`: iterated **once** and its batches kept as they are (its own batch
      size; a shuffling loader's order is frozen at that pass; a random augmentation inside its dataset would
      be frozen too, so pass un-augmented data);
    * a list/tuple of ``(inputs, targets)`` batches, kept as they are;
    * a :class:`DataSplit`: its ``train_eval`` view.

    Everything is held in memory. Inputs are cast to ``dtype`` (floating inputs only) and moved with the
    targets to ``device`` when given. Errors name ``name``.

    >>> xs, ys = torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 0, 1, 1])
    >>> [tuple(x.shape) for x, _ in as_batches((xs, ys), 2)]
    [(2, 2), (2, 2), (1, 2)]
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if isinstance(data, DataSplit):
        data = data.train_eval
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], tuple):
        X, y = (torch.as_tensor(v) if isinstance(v, np.ndarray) else v for v in data)
        if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} as (X, y) must hold tensors or numpy arrays, got ({type(data[0]).__name__}, "
                            f"{type(data[1]).__name__})")
        if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: X and y must share the leading dimension, got shapes {tuple(X.shape)} and "
                             f"{tuple(y.shape)}")
        batches = [(X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, int(X.shape[0]), batch_size)]
    elif isinstance(data, torch.utils.data.DataLoader):
        batches = []
        for i, b in enumerate(data):
            if not isinstance(b, (tuple, list)) or len(b) != 2:
                raise TypeError(f"{name}: the DataLoader must yield (inputs, targets) pairs, batch {i} is a "
                                f"{type(b).__name__}")
            batches.append((torch.as_tensor(b[0]), torch.as_tensor(b[1])))
    elif isinstance(data, Dataset):
        if len(data) == 0:  # type: ignore[arg-type]
            raise ValueError(f"{name} is an empty dataset")
        batches = fixed_batches(data, batch_size)
    elif isinstance(data, (list, tuple)):
        batches = []
        for i, b in enumerate(data):
            if not isinstance(b, (tuple, list)) or len(b) != 2 or not all(isinstance(t, torch.Tensor) for t in b):
                raise TypeError(f"{name} as a list must hold (inputs, targets) tensor pairs; item {i} is "
                                f"{type(b).__name__}")
            batches.append((b[0], b[1]))
    else:
        raise TypeError(f"{name} must be a Dataset, a DataLoader, (X, y) tensors, a list of (inputs, targets) "
                        f"batches or a nets.data.DataSplit, got {type(data).__name__}")
    batches = [b for b in batches if int(b[0].shape[0]) > 0]
    if not batches:
        raise ValueError(f"{name} has no samples")
    if device is None and dtype is None:
        return batches
    return [(x.to(device=device, dtype=dtype if torch.is_floating_point(x) else None), y.to(device))
            for x, y in batches]


def subset_batches(batches: Batches, samples: int, batch_size: int, *, generator: torch.Generator) -> Batches:
    """A fixed random subset of ``samples`` of the samples in ``batches`` (drawn once with
    ``torch.randperm(n, generator=generator)[:samples]``, kept in increasing index order), re-batched by
    ``batch_size``; all of them (re-batched) when ``samples ≥ n``.

    >>> b = [(torch.arange(5.0)[:, None], torch.arange(5))]
    >>> [y.tolist() for _, y in subset_batches(b, 3, 2, generator=torch.Generator().manual_seed(0))]
    [[0, 1], [4]]
    """
    samples = check_int("samples", samples, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_torch_generator("generator", generator)
    X = torch.cat([x for x, _ in batches])
    y = torch.cat([t for _, t in batches])
    n = int(X.shape[0])
    if samples < n:
        idx = torch.randperm(n, generator=generator)[:samples].sort().values.to(X.device)
        X, y = X[idx], y[idx]
    return [(X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, int(X.shape[0]), batch_size)]


# ------------------------------------------------------------------------------------------- digits
def load_digits(*, seed: int = 0, test_fraction: float = 0.25, as_image: bool = False) -> DataSplit:
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes; no download).

    A stratified train/test split seeded by ``seed`` (``sklearn.model_selection.train_test_split``);
    every pixel is standardised with the *training* mean and standard deviation. Pixels that are constant on
    the training set (std 0) are only centred (divided by 1), not divided by a fudge-shifted std.
    ``as_image=False`` gives inputs of shape ``(64,)`` (MLPs), ``True`` gives ``(1, 8, 8)`` (CNNs).
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    if not (0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must lie in (0, 1), got test_fraction={test_fraction!r}")
    bunch = _sk_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    shape = (1, 8, 8) if as_image else (64,)

    def _make(a: np.ndarray, b: np.ndarray) -> ArrayDataset:
        t = torch.from_numpy(((a - mean) / std).astype(np.float32)).reshape(-1, *shape)
        return ArrayDataset(t, torch.from_numpy(b))

    train = _make(x_tr, y_tr)
    return DataSplit("digits", train, _make(x_te, y_te), train, 10, shape, tuple(str(i) for i in range(10)))


# ------------------------------------------------------------------------------------------- teacher-student
def teacher_student(
    *,
    seed: int = 0,
    n_train: int = 2048,
    n_test: int = 1024,
    input_dim: int = 32,
    hidden: int = 64,
    num_classes: int = 10,
) -> DataSplit:
    """A seeded synthetic task: Gaussian inputs ``x ~ N(0, I_d)`` labelled by a random teacher network.

    The teacher is ``Linear(d, hidden) → ReLU → Linear(hidden, classes)`` with Kaiming-normal weights and
    zero biases; the label is ``argmax`` of its logits. Everything is drawn from
    ``torch.Generator().manual_seed(seed)`` (a local generator; global RNG state is untouched).
    """
    for name, v, lo in (("n_train", n_train, 1), ("n_test", n_test, 1), ("input_dim", input_dim, 1),
                        ("hidden", hidden, 1), ("num_classes", num_classes, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {name}={v!r}")
    g = torch.Generator().manual_seed(int(seed))
    w1 = torch.randn(hidden, input_dim, generator=g) * math.sqrt(2.0 / input_dim)
    w2 = torch.randn(num_classes, hidden, generator=g) * math.sqrt(2.0 / hidden)
    x = torch.randn(n_train + n_test, input_dim, generator=g)
    y = (torch.relu(x @ w1.T) @ w2.T).argmax(dim=1)
    train = ArrayDataset(x[:n_train].contiguous(), y[:n_train].contiguous())
    test = ArrayDataset(x[n_train:].contiguous(), y[n_train:].contiguous())
    return DataSplit("teacher-student", train, test, train, num_classes, (input_dim,),
                     tuple(str(i) for i in range(num_classes)))


# ------------------------------------------------------------------------------------------- synthetic CIFAR
#: Sizes of the synthetic CIFAR-shaped task (ours): large enough for FC5/ResNet-18 to train on and for the
#: Hessian to average over many batches, small enough that ``prunelimit limit --model fc5 --data synthetic-cifar``
#: with default settings finishes on a 2-core CPU (README: timings).
SYNTHETIC_CIFAR_SIZES = {"n_train": 1024, "n_test": 256}


def synthetic_cifar(
    *,
    seed: int = 0,
    n_train: int = SYNTHETIC_CIFAR_SIZES["n_train"],
    n_test: int = SYNTHETIC_CIFAR_SIZES["n_test"],
    num_classes: int = 10,
) -> DataSplit:
    """A seeded CIFAR-shaped task for scale tests without the data: ``x ~ N(0, I)`` of shape 3×32×32, labelled
    ``argmax(W x)`` by a random linear teacher ``W ~ N(0, 1/3072)`` with ``num_classes`` rows (ours).

    Everything is drawn from ``torch.Generator().manual_seed(seed)``; no augmentation (the inputs are already
    noise), so ``train_eval`` is ``train``.

    >>> d = synthetic_cifar(n_train=8, n_test=4)
    >>> d.input_shape, len(d.train), len(d.test), d.name
    ((3, 32, 32), 8, 4, 'synthetic-cifar')
    """
    for name, v, lo in (("n_train", n_train, 1), ("n_test", n_test, 1), ("num_classes", num_classes, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {name}={v!r}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n_train + n_test, 3, 32, 32, generator=g)
    w = torch.randn(num_classes, 3 * 32 * 32, generator=g) / math.sqrt(3 * 32 * 32)
    y = (x.reshape(x.shape[0], -1) @ w.T).argmax(1)
    train = ArrayDataset(x[:n_train].contiguous(), y[:n_train].contiguous())
    test = ArrayDataset(x[n_train:].contiguous(), y[n_train:].contiguous())
    return DataSplit("synthetic-cifar", train, test, train, num_classes, (3, 32, 32),
                     tuple(str(i) for i in range(num_classes)))


# ------------------------------------------------------------------------------------------- CIFAR
def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"missing CIFAR file: {path}")
    try:
        with open(path, "rb") as f:
            # The standard CIFAR batches are Python pickles; only load files you trust.
            d = pickle.load(f, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise ValueError(f"malformed CIFAR file {path}: {exc}") from exc
    if not isinstance(d, dict):
        raise ValueError(f"malformed CIFAR file {path}: expected a dict, got {type(d).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_arrays(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise ValueError(f"malformed CIFAR file {path}: needs keys 'data' and {label_key!r}, has {sorted(d)}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise ValueError(f"malformed CIFAR file {path}: data must be uint8 (n, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"malformed CIFAR file {path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"malformed CIFAR file {path}: labels outside [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(root: str | os.PathLike, num_classes: int = 10, *, augment: bool = True) -> DataSplit:
    """CIFAR-10/100 from the standard python pickle batches under ``root``.

    ``root`` is the extracted folder (``cifar-10-batches-py`` with ``data_batch_1..5``, ``test_batch``,
    ``batches.meta``; or ``cifar-100-python`` with ``train``, ``test``, ``meta``) or its parent.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100 for CIFAR, got num_classes={num_classes!r}")
    if root is None:
        raise ValueError("CIFAR needs root= the folder with the python pickle batches")
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"CIFAR root folder not found: {base}")
    sub = base / ("cifar-10-batches-py" if num_classes == 10 else "cifar-100-python")
    if sub.is_dir():
        base = sub
    if num_classes == 10:
        train_files = [base / f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = [base / "test_batch"], base / "batches.meta", "labels", "label_names"
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:
        train_files, test_files = [base / "train"], [base / "test"]
        meta_file, label_key, names_key = base / "meta", "fine_labels", "fine_label_names"
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    meta = _unpickle(meta_file)
    if names_key not in meta or len(meta[names_key]) != num_classes:
        raise ValueError(f"malformed CIFAR meta file {meta_file}: needs {num_classes} entries under {names_key!r}")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key])

    def _load(files: list[Path], aug: Augmentation | None) -> ArrayDataset:
        parts = [_cifar_arrays(f, label_key, num_classes) for f in files]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return ArrayDataset(x, y, scale=1 / 255, mean=mean, std=std, augmentation=aug)

    train = _load(train_files, Augmentation(4, True) if augment else None)
    test = _load(test_files, None)
    return DataSplit(f"cifar{num_classes}", train, test, train.unaugmented(), num_classes, (3, 32, 32), names)


# ------------------------------------------------------------------------------------------- TinyImageNet
def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - unreadable image
        raise ValueError(f"malformed TinyImageNet image {path}: {exc}") from exc
    if arr.shape != (size, size, 3):
        raise ValueError(f"malformed TinyImageNet image {path}: expected {size}x{size}, got {arr.shape[1]}x{arr.shape[0]}")
    return arr.transpose(2, 0, 1)


def load_tinyimagenet(root: str | os.PathLike, *, augment: bool = True, image_size: int = 64) -> DataSplit:
    """TinyImageNet (200 classes, 64×64) from the standard folder layout under ``root``.

    ``train/<wnid>/images/*.JPEG``; ``val/images/*.JPEG`` with labels in ``val/val_annotations.txt``
    (tab-separated ``file  wnid  …``), used as the test set (the official test split has no labels). Classes
    are ``wnids.txt`` when present, else the sorted ``train`` subfolders. Images are decoded with PIL and
    held in memory as uint8 (≈1.2 GB for the full set).
    """
    if root is None:
        raise ValueError("TinyImageNet needs root= the folder with train/ and val/")
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"TinyImageNet root folder not found: {base}")
    sub = base / "tiny-imagenet-200"
    if sub.is_dir() and not (base / "train").is_dir():
        base = sub
    train_dir, val_dir = base / "train", base / "val"
    ann = val_dir / "val_annotations.txt"
    for p in (train_dir, val_dir / "images", ann):
        if not p.exists():
            raise FileNotFoundError(f"TinyImageNet layout incomplete: missing {p}")
    wnids_file = base / "wnids.txt"
    if wnids_file.is_file():
        wnids = [w.strip() for w in wnids_file.read_text().splitlines() if w.strip()]
    else:
        wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(wnids) < 2:
        raise ValueError(f"malformed TinyImageNet folder {base}: found {len(wnids)} classes")
    index = {w: i for i, w in enumerate(wnids)}

    xs, ys = [], []
    for w in wnids:
        files = sorted((train_dir / w / "images").glob("*.JPEG"))
        if not files:
            raise FileNotFoundError(f"TinyImageNet layout incomplete: no images in {train_dir / w / 'images'}")
        for f in files:
            xs.append(_read_image(f, image_size))
            ys.append(index[w])
    vx, vy = [], []
    for line_no, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(f"malformed {ann} line {line_no}: {line!r}")
        vx.append(_read_image(val_dir / "images" / fields[0], image_size))
        vy.append(index[fields[1]])
    if not vx:
        raise ValueError(f"malformed {ann}: no validation entries")
    aug = Augmentation(4, True) if augment else None
    train = ArrayDataset(torch.from_numpy(np.stack(xs)), torch.tensor(ys), scale=1 / 255, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, augmentation=aug)
    test = ArrayDataset(torch.from_numpy(np.stack(vx)), torch.tensor(vy), scale=1 / 255, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD)
    return DataSplit("tinyimagenet", train, test, train.unaugmented(), len(wnids), (3, image_size, image_size),
                     tuple(wnids))


# ------------------------------------------------------------------------------------------- registry
#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = ("digits", "teacher-student", "synthetic-cifar", "cifar10", "cifar100",
                                  "tinyimagenet")
#: The datasets built into the package (no ``root``).
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "teacher-student", "synthetic-cifar")


def load_dataset(name: str, root: str | os.PathLike | None = None, *, seed: int = 0, **options: object) -> DataSplit:
    """Load a dataset by name (one of :data:`DATASET_NAMES`).

    ``digits``, ``teacher-student`` and ``synthetic-cifar`` are built in (``root`` must be ``None``; ``seed``
    sets the split / the task); the others read ``root``. ``options`` go to :func:`load_digits`
    (``test_fraction``, ``as_image``), :func:`teacher_student` (``n_train``, ``n_test``, ``input_dim``,
    ``hidden``, ``num_classes``), :func:`synthetic_cifar` (``n_train``, ``n_test``, ``num_classes``),
    :func:`load_cifar` / :func:`load_tinyimagenet` (``augment``).

    >>> split = load_dataset("digits")
    >>> len(split.train) + len(split.test), split.input_shape
    (1797, (64,))
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.lower().replace("_", "-")
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset name={name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if key in BUILTIN_DATASETS:
        if root is not None:
            raise ValueError(f"dataset {name!r} is built in and takes no root, got root={str(root)!r}")
        fn = {"digits": load_digits, "teacher-student": teacher_student, "synthetic-cifar": synthetic_cifar}[key]
        try:
            return fn(seed=seed, **options)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TypeError(f"bad option for dataset {name!r}: {exc}") from exc
    if root is None:
        raise ValueError(f"dataset {name!r} needs root= a local folder (no downloads)")
    try:
        if key == "tinyimagenet":
            return load_tinyimagenet(root, **options)  # type: ignore[arg-type]
        return load_cifar(root, 10 if key == "cifar10" else 100, **options)  # type: ignore[arg-type]
    except TypeError as exc:
        raise TypeError(f"bad option for dataset {name!r}: {exc}") from exc
