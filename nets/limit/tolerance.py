"""Stage 1 of the pipeline: the dense model's losses and the tolerance ε.

The loss criterion of both limits is the training loss ``L(w) ≤ L(w*) + ε`` (docs/math.md §2). ``L`` is the
mean loss over the training samples (un-augmented, eval mode) plus, when asked, the training objective's ℓ1
term ``l1·‖w‖₁`` over the prunable weights — the same function in every stage. The ℓ1 term does not depend on
the batch, so ε (a spread of batch losses) is that of the data loss. The default
``ε`` is the authors' (docs/math.md §2): the standard deviation of the per-minibatch training loss of the dense
model, minibatches of 128 consecutive samples in the given order (our partition; the authors drew theirs from
the shuffled, augmented loader), sample standard deviation (``ddof = 1``) over the full batches; a short last
batch is dropped, since a batch of another size has another loss variance. On a small training set the batch
size is lowered so that there are at least :data:`MIN_EPS_BATCHES` full batches, and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.hessian import eval_mode
from nets.limit.data import PipelineData
from nets.train import evaluate
from theory.validation import check_int, check_positive

__all__ = ["ToleranceConfig", "ToleranceResult", "Metrics", "estimate_tolerance", "DEFAULT_EPS_BATCH_SIZE",
           "MIN_EPS_BATCHES"]

#: Batch size of the per-minibatch loss spread that defines the default ε (the authors' 128).
DEFAULT_EPS_BATCH_SIZE = 128
#: Fewest full batches the default ε is computed from (ours): below it the batch size is lowered.
MIN_EPS_BATCHES = 8


@dataclass(frozen=True)
class ToleranceConfig:
    """``eps``: a given tolerance (None: the default above); ``batch_size``: the minibatch size of the default;
    ``eval_batch_size``: batch size of the full-data loss evaluations (memory only; the value is the same)."""

    eps: float | None = None
    batch_size: int = DEFAULT_EPS_BATCH_SIZE
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.eps is not None:
            check_positive("eps", self.eps)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("eval_batch_size", self.eval_batch_size, minimum=1)


@dataclass(frozen=True)
class Metrics:
    """Mean loss and accuracy (None when the task is not classification) of a model on one data set."""

    loss: float
    accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "accuracy": self.accuracy}


@dataclass(frozen=True)
class ToleranceResult:
    """The dense model and ε.

    Attributes
    ----------
    eps:
        The tolerance.
    source:
        ``"given"`` or ``"batch-loss-std"``.
    batch_size, n_batches, dropped_samples, batch_losses:
        Of the default: the minibatch size used, the number of full batches, the samples of the short last
        batch left out, and the per-batch mean losses (None when ε was given).
    train, test:
        :class:`Metrics` of the dense model on the training and test samples (test None without test data); their
        ``loss`` is the data loss.
    penalty:
        The objective's ℓ1 term at ``w*``, ``l1·‖w*‖₁`` over the prunable weights (0 without one).
    notes:
        Adjustments made (e.g. a lowered batch size), in words.
    """

    eps: float
    source: str
    batch_size: int | None
    n_batches: int | None
    dropped_samples: int
    batch_losses: np.ndarray | None
    train: Metrics
    test: Metrics | None
    notes: tuple[str, ...] = ()
    penalty: float = 0.0

    @property
    def loss_dense(self) -> float:
        """``L(w*)``, the training objective of the dense model (data loss + ``penalty``)."""
        return self.train.loss + self.penalty

    @property
    def threshold(self) -> float:
        """The loss criterion ``L(w*) + ε``."""
        return self.loss_dense + self.eps

    def to_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "source": self.source, "batch_size": self.batch_size, "n_batches": self.n_batches,
                "dropped_samples": self.dropped_samples,
                "batch_losses": None if self.batch_losses is None else self.batch_losses.tolist(),
                "loss_dense": self.loss_dense, "penalty": self.penalty, "threshold": self.threshold,
                "train": self.train.to_dict(),
                "test": None if self.test is None else self.test.to_dict(), "notes": list(self.notes)}


def estimate_tolerance(model: nn.Module, data: PipelineData, config: ToleranceConfig) -> ToleranceResult:
    """The dense model's metrics and ε (module docstring). ``model`` is in its final device and dtype.

    >>> from nets.limit.data import prepare_data
    >>> m = nn.Linear(1, 2, bias=False)
    >>> _ = m.weight.data.zero_()           # uniform logits: every batch loss is log 2, so ε = 0 → error
    >>> d = prepare_data(m, (torch.zeros(16, 1), torch.tensor([0, 1] * 8)), device=torch.device("cpu"),
    ...                  dtype=torch.float32)
    >>> estimate_tolerance(m, d, ToleranceConfig(batch_size=2))
    Traceback (most recent call last):
    ...
    ValueError: the per-batch training losses are all equal (std 0), so the default eps is 0; pass eps explicitly
    """
    ev = config.eval_batch_size
    tr_loss, tr_acc = evaluate(model, data.train_batches(ev), data.loss_fn, accuracy=data.classification)
    if not math.isfinite(tr_loss):
        raise ValueError(f"the dense model's training loss is not finite ({tr_loss!r}): the model diverged")
    test = None
    tb = data.test_batches(ev)
    if tb is not None:
        te_loss, te_acc = evaluate(model, tb, data.loss_fn, accuracy=data.classification)
        test = Metrics(te_loss, te_acc)
    train = Metrics(tr_loss, tr_acc)
    penalty = 0.0
    if data.l1:
        from nets.params import prunable_parameters

        penalty = data.l1 * float(sum(w.detach().to(torch.float64).abs().sum() for _, w in prunable_parameters(model)))
    if config.eps is not None:
        return ToleranceResult(float(config.eps), "given", None, None, 0, None, train, test, penalty=penalty)
    notes: list[str] = []
    n = data.n_train
    bs = config.batch_size
    if n // bs < MIN_EPS_BATCHES:
        new = max(1, n // MIN_EPS_BATCHES)
        if new < 2:
            raise ValueError(f"the default eps needs at least {2 * MIN_EPS_BATCHES} training samples, got {n}; "
                             "pass eps explicitly")
        notes.append(f"eps batch size lowered from {bs} to {new} so that the {n} training samples give "
                     f"{n // new} full batches (at least {MIN_EPS_BATCHES})")
        bs = new
    full = [b for b in data.train_batches(bs) if int(b[0].shape[0]) == bs]
    dropped = n - bs * len(full)
    with eval_mode(model), torch.no_grad():
        losses = torch.stack([data.loss_fn(model(x), y).reshape(()) for x, y in full])
    arr = losses.to("cpu", torch.float64).numpy()  # one read-back
    eps = float(arr.std(ddof=1))
    if not math.isfinite(eps):
        raise ValueError(f"the per-batch training losses are not finite ({arr!r}): the model diverged")
    if eps <= 0:
        raise ValueError("the per-batch training losses are all equal (std 0), so the default eps is 0; "
                         "pass eps explicitly")
    return ToleranceResult(eps, "batch-loss-std", bs, len(full), dropped, arr, train, test, tuple(notes), penalty)
