"""The data of a pipeline run: the user's training (and test) data held once, batched for each stage.

:func:`prepare_data` accepts what :func:`nets.data.as_batches` accepts (a ``Dataset``, a ``DataLoader``,
``(X, y)`` tensors, a list of batches, or a :class:`nets.data.DataSplit`, whose ``train_eval`` and ``test``
views are used) and holds the training samples as two tensors in their given order, so that every stage
partitions the *same* samples: ε into batches of 128, the Hessian into ``hessian_batch_size``, the loss
evaluations into ``eval_batch_size``. The task is recognised once: *classification* when the model's output
is ``(n, C)`` with ``C ≥ 2`` and the targets are integer class labels (accuracies are then reported and
cross-entropy is the default loss); anything else needs an explicit ``loss`` and has no accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nets.data import Batches, DataSplit, as_batches
from theory.validation import check_int, check_real

__all__ = ["PipelineData", "prepare_data"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


@dataclass(frozen=True)
class PipelineData:
    """The samples of one run, on the model's device, inputs in its dtype.

    Attributes
    ----------
    X_train, y_train:
        The training samples in their given order (un-augmented).
    X_test, y_test:
        The test samples, or None.
    name:
        A label for reports (the DataSplit's name, or ``"user data"``).
    classification:
        Whether accuracies are defined (module docstring).
    loss_fn, loss_name:
        The data loss (batch mean) and how it is reported.
    l1:
        Coefficient ``λ`` of the objective's ℓ1 term over the prunable weights: the loss of every stage is
        ``L(w) = mean data loss + λ‖w‖₁`` (0: the data loss alone). Use the λ the model was trained with, so that
        ``w*`` is a stationary point of ``L`` (module docstring of :mod:`nets.limit`).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor | None
    y_test: torch.Tensor | None
    name: str
    classification: bool
    loss_fn: LossFn
    loss_name: str
    l1: float = 0.0

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return 0 if self.X_test is None else int(self.X_test.shape[0])

    def train_batches(self, batch_size: int) -> Batches:
        """Consecutive batches of the training samples (the last one may be short)."""
        return _split(self.X_train, self.y_train, batch_size)

    def local_train_batches(self, batch_size: int) -> Batches:
        """This process's shard of the training samples, batched (all of them without ``torch.distributed``;
        :func:`nets.limit.parallel.shard_batches`): the data of every all-reduced operator and loss."""
        from nets.limit.parallel import shard_batches

        return shard_batches(self.train_batches(batch_size), batch_size)

    def test_batches(self, batch_size: int) -> Batches | None:
        """Consecutive batches of the test samples, or None."""
        if self.X_test is None or self.y_test is None:
            return None
        return _split(self.X_test, self.y_test, batch_size)


def _split(X: torch.Tensor, y: torch.Tensor, batch_size: int) -> Batches:
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return [(X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, int(X.shape[0]), batch_size)]


def _cat(batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([x for x, _ in batches]), torch.cat([y.reshape(y.shape[0], *y.shape[1:]) for _, y in batches])


def prepare_data(
    model: nn.Module,
    train_data: Any,
    test_data: Any = None,
    *,
    loss: LossFn | None = None,
    l1: float = 0.0,
    device: torch.device,
    dtype: torch.dtype,
) -> PipelineData:
    """Gather the samples once, check them against the model on one sample, and recognise the task.

    A :class:`nets.data.DataSplit` as ``train_data`` supplies both sets (``test_data`` must then be None).
    The model is called on the first two training samples (eval mode, no grad) to check that inputs fit and to
    see the output shape: a mismatch is reported here, before any expensive work.
    """
    name = "user data"
    if isinstance(train_data, DataSplit):
        if test_data is not None:
            raise ValueError("train_data is a DataSplit, which has its own test set; pass test_data=None")
        name = train_data.name
        train_data, test_data = train_data.train_eval, train_data.test
    X, y = _cat(as_batches(train_data, 4096, name="train_data", device=device, dtype=dtype))
    Xt = yt = None
    if test_data is not None:
        Xt, yt = _cat(as_batches(test_data, 4096, name="test_data", device=device, dtype=dtype))
    if X.shape[0] < 2:
        raise ValueError(f"train_data must hold at least 2 samples, got {int(X.shape[0])}")
    if torch.is_floating_point(X) and not bool(torch.isfinite(X).all()):
        raise ValueError("train_data inputs contain NaN or inf")
    from nets.hessian import eval_mode

    try:
        with eval_mode(model), torch.no_grad():
            out = model(X[:2])
    except Exception as exc:  # noqa: BLE001 - any failure here is an input/model mismatch
        raise ValueError(f"the model cannot be applied to train_data inputs of shape {tuple(X.shape[1:])}: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
    classification = (out.ndim == 2 and out.shape[1] >= 2 and not torch.is_floating_point(y) and y.ndim == 1
                      and not torch.is_complex(y))
    if classification:
        C = int(out.shape[1])
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= C:
            raise ValueError(f"train_data targets must be class indices in [0, {C}) for a model with {C} outputs, "
                             f"got range [{lo}, {hi}]")
    if loss is None:
        if not classification:
            raise ValueError("the model's outputs and targets do not look like classification (outputs (n, C), "
                             "integer labels); pass loss=, a function (outputs, targets) -> batch mean")
        loss_fn, loss_name = _cross_entropy, "cross-entropy (mean)"
    else:
        if not callable(loss):
            raise TypeError(f"loss must be callable, got {type(loss).__name__}")
        loss_fn, loss_name = loss, getattr(loss, "__name__", type(loss).__name__) + " (user, batch mean)"
        with torch.no_grad():
            val = loss_fn(out, y[:2])
        if not isinstance(val, torch.Tensor) or val.ndim != 0:
            raise ValueError(f"loss must return a scalar tensor (the batch mean), got "
                             f"{getattr(val, 'shape', type(val).__name__)}")
    l1 = check_real("l1", l1, minimum=0.0)
    if l1 > 0:
        loss_name += f" + {l1:g}·‖w‖₁ (prunable weights)"
    return PipelineData(X, y, Xt, yt, name, bool(classification), loss_fn, loss_name, l1)
