r"""Rare Gems / Gem-Miner: a sparse subnetwork found at initialisation by learning scores, then fine-tuned.

Sreenivasan, Sohn, Yang, Grinde, Nagle, Wang, Xing, Lee & Papailiopoulos, "Rare Gems: Finding Lottery
Tickets at Initialization", NeurIPS 2022 (arXiv 2202.12002). Gem-Miner keeps the weights ``w₀`` of a freshly
initialised network frozen and learns one score ``p_i ∈ [0, 1]`` per prunable weight; the network seen by the
data is ``w₀ ⊙ m`` with the *rounded* mask ``m_i = a_i · 1[p_i > ½]`` (``a`` the set still active). The scores
are trained with the straight-through estimator (the gradient with respect to the rounded mask is passed to
``p`` unchanged), projected back onto the hypercube after every step, and pulled towards 0 by an ℓ2
regulariser, so that the relaxed mask moves towards a sparse one:

.. math::
    \min_{p \in [0,1]^N}\ \frac{1}{B}\sum_{i \in \text{batch}} \ell\big(f(x_i;\ w_0 \odot m(p)),\ y_i\big)
        + \lambda \lVert p \rVert_2^2,\qquad
    \frac{\partial}{\partial p_j} \approx a_j\, w_{0,j}\, \frac{\partial \ell}{\partial (w_0 \odot m)_j}
        + 2 \lambda p_j,\qquad p \leftarrow \operatorname{clip}_{[0,1]}(p).

*Annealing to the target sparsity* (the "sparsity-preserving annealing" of our brief; the authors' code calls
it iterative thresholding, ``algo: hc_iter`` with ``prune_type: BottomK``): every ``iter_period`` epochs the
active weights with the lowest scores are frozen at zero, so that the active fraction follows the geometric
schedule ``ρ^{j/J}`` (``j = 1, …, J``, ``J = ⌊(E − 1)/iter_period⌋``, their ``get_prune_rate``) and reaches the
target kept fraction ``ρ`` *exactly* (``⌈ρN⌉`` weights, :func:`theory.limits.kept_count`) after the last
freeze; a weight once frozen is never revived. The mask of the ticket is the final active set (the authors'
``unflag_before_finetune``: weights of the active set whose score the regulariser pushed below ½ are
restored), so the ticket has exactly the target sparsity. The ticket is then fine-tuned: its weights are
trained from ``w₀`` with the mask fixed (:func:`nets.prune.fine_tune`).

Sources. Of the paper's text only the abstract and introduction were available to us (the search tool returns
only the opening of its full-text copies); the method above is the one of the authors' public code and
configuration (github.com/ksreenivasan/pruning_is_enough: README "Sample Config" for ResNet-20 / CIFAR-10,
``utils/conv_type.py``, ``utils/net_utils.py``), read for its algorithm and reimplemented here, not ported. Hyperparameters, each
named where it is defined below: ``score_init: unif``, ``quantize_threshold: 0.5``, ``regularization: L2``
(``λ‖p‖²₂``) with ``lmbda: 0.0001``, ``iter_period: 5``, ``prune_type: BottomK``, ``unflag_before_finetune:
True``, SGD ``lr 0.1`` cosine, momentum 0.9, no weight decay, batch 128, 150 epochs; fine-tuning
``fine_tune_lr 0.01``, multistep at [80, 120] of 150 epochs, ×0.1 (their ``get_scheduler`` defaults).

Deviations (ours): the weights keep the model's own initialisation (the authors' configuration draws
"signed constant" weights; the pruning-limit paper's networks use Kaiming normal); BatchNorm keeps its
learnable affine parameters, frozen at initialisation like every other parameter (the authors use non-affine
BatchNorm during the search); the regulariser acts on the scores of prunable weights only (biases are never
pruned here); the fine-tuning milestones scale the authors' [80, 120] of 150 epochs to the epochs given; ties
in the score ranking keep the weight with the smaller flat index (the package's stable-sort rule,
:mod:`nets.prune`). Invariants, tested: the ticket keeps exactly ``⌈ρN⌉`` weights; the search never changes
the model (weights, biases, BatchNorm, buffers: it runs on a copy and only the scores move); the mask does
not change during fine-tuning; scores stay in ``[0, 1]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nets.data import DataSplit, make_loader
from nets.params import copy_model, prunable_parameters, unflatten_like
from nets.prune import Masks, apply_masks, mask_kept_fraction, remove_masks
from nets.train import TrainConfig, TrainResult, evaluate, train
from theory.limits import kept_count
from theory.validation import check_choice, check_fraction, check_int, check_real

__all__ = [
    "GemMinerConfig",
    "GemMinerResult",
    "RareGemsResult",
    "gem_miner",
    "rare_gems",
    "finetune_config",
    "annealing_schedule",
    "freeze_lowest",
    "straight_through_mask",
    "score_step",
]

log = logging.getLogger(__name__)

_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class GemMinerConfig:
    """The score search of Gem-Miner. Defaults: the authors' ResNet-20 / CIFAR-10 configuration (module
    docstring), except ``kept_fraction``, which has no default.

    Attributes
    ----------
    kept_fraction:
        Target kept fraction ``ρ`` of the prunable weights (the ticket keeps exactly ``⌈ρN⌉``).
    epochs:
        Search epochs ``E`` (authors: 150).
    lr, momentum, weight_decay, schedule, batch_size:
        SGD on the scores: lr 0.1, momentum 0.9, weight decay 0, ``"cosine"`` over ``E`` epochs
        (``lr·½(1 + cos(π e/E))``, set once per epoch), batch 128 (authors).
    score_l2:
        ``λ`` of the regulariser ``λ‖p‖²₂`` (authors: 1e-4).
    iter_period:
        Epochs between two freezes of the lowest-scored active weights (authors: 5).
    threshold:
        Rounding threshold of the forward mask, ``m = 1[p > threshold]`` (authors: 0.5).
    seed:
        Seeds the score initialisation ``p ~ U(0, 1)`` (authors' ``score_init: unif``) and the data order.
    device:
        Where the search runs.
    """

    kept_fraction: float
    epochs: int = 150
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 128
    score_l2: float = 1e-4
    iter_period: int = 5
    threshold: float = 0.5
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        rho = check_fraction("kept_fraction", self.kept_fraction)
        if rho <= 0.0:
            raise ValueError(f"kept_fraction must be > 0 (a ticket keeps at least one weight), got kept_fraction={rho!r}")
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("iter_period", self.iter_period, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_real("lr", self.lr, minimum=0.0, open_min=True)
        check_real("momentum", self.momentum, minimum=0.0, maximum=1.0, open_max=True)
        check_real("weight_decay", self.weight_decay, minimum=0.0)
        check_real("score_l2", self.score_l2, minimum=0.0)
        check_real("threshold", self.threshold, minimum=0.0, maximum=1.0, open_min=True, open_max=True)
        check_choice("schedule", self.schedule, _SCHEDULES)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of the scores throughout epoch ``epoch`` (0-based).

        >>> GemMinerConfig(0.1, epochs=4).lr_at(2)
        0.05
        """
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def annealing_schedule(kept_fraction: float, n: int, epochs: int, iter_period: int) -> dict[int, int]:
    """Epoch (1-based count of completed epochs) → number of weights left active after the freeze at its end.

    ``J = max(1, ⌊(E − 1)/iter_period⌋)`` freezes (the authors' ``get_prune_rate``: the kept fraction after
    freeze ``j`` is ``ρ^{j/J}``, a constant fraction ``1 − ρ^{1/J}`` of the active weights per freeze), at
    epochs ``iter_period·j``; with ``E ≤ iter_period`` the single freeze comes after the last epoch. The last
    entry is exactly :func:`theory.limits.kept_count` ``(ρ, n)``.

    >>> annealing_schedule(0.25, 100, epochs=11, iter_period=5)
    {5: 50, 10: 25}
    >>> annealing_schedule(0.5, 10, epochs=3, iter_period=5)
    {3: 5}
    """
    rho = check_fraction("kept_fraction", kept_fraction)
    n = check_int("n", n, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    iter_period = check_int("iter_period", iter_period, minimum=1)
    n_freezes = (epochs - 1) // iter_period
    if n_freezes < 1:
        return {epochs: kept_count(rho, n)}
    out = {}
    for j in range(1, n_freezes + 1):
        frac = rho if j == n_freezes else rho ** (j / n_freezes)
        out[iter_period * j] = max(kept_count(frac, n), kept_count(rho, n))
    return out


def freeze_lowest(scores: torch.Tensor, active: torch.Tensor, k: int) -> torch.Tensor:
    """The new active set: the ``k`` active entries of the flat ``scores`` with the highest score.

    Inactive entries stay inactive (a frozen weight is never revived); among equal scores the smaller index is
    kept (stable descending sort).

    >>> freeze_lowest(torch.tensor([0.9, 0.1, 0.5, 0.5]), torch.tensor([True, True, True, False]), 2).tolist()
    [True, False, True, False]
    """
    if scores.shape != active.shape or scores.ndim != 1:
        raise ValueError(f"scores and active must be flat and of equal shape, got {tuple(scores.shape)}, {tuple(active.shape)}")
    n_active = int(active.sum())
    k = check_int("k", k, minimum=0, maximum=n_active)
    ranked = torch.where(active, scores.to(torch.float64), torch.full_like(scores, -math.inf, dtype=torch.float64))
    keep = torch.zeros_like(active)
    if k > 0:
        order = torch.sort(ranked, descending=True, stable=True).indices
        keep[order[:k]] = True
    return keep


def straight_through_mask(scores: torch.Tensor, active: torch.Tensor, threshold: float) -> torch.Tensor:
    """The rounded mask ``a ⊙ 1[p > threshold]`` in the forward pass, with gradient ``a`` with respect to ``p``
    (straight-through estimator: the gradient reaching the rounded mask is passed to the scores unchanged).

    >>> p = torch.tensor([0.2, 0.7, 0.9], requires_grad=True)
    >>> m = straight_through_mask(p, torch.tensor([True, True, False]), 0.5)
    >>> m.tolist(), torch.autograd.grad(m.sum(), p)[0].tolist()
    ([0.0, 1.0, 0.0], [1.0, 1.0, 0.0])
    """
    a = active.to(scores.dtype)
    hard = (scores > threshold).to(scores.dtype)
    return a * (scores + (hard - scores).detach())


def score_step(
    scores: torch.Tensor, momentum_buffer: torch.Tensor | None, grad: torch.Tensor, *, lr: float, momentum: float,
    weight_decay: float, score_l2: float,
) -> torch.Tensor | None:
    """One projected SGD step on the scores, in place: ``d = g + 2λp + wd·p``; heavy-ball momentum as
    :class:`torch.optim.SGD` (buffer ``b ← μb + d``, first step ``b = d``); ``p ← clip_{[0,1]}(p − lr·b)``.
    Returns the momentum buffer (``None`` without momentum).

    >>> p = torch.tensor([0.5, 0.99, 0.01])
    >>> _ = score_step(p, None, torch.tensor([0.0, -1.0, 1.0]), lr=0.1, momentum=0.0, weight_decay=0.0, score_l2=0.0)
    >>> p.tolist()
    [0.5, 1.0, 0.0]
    """
    d = grad
    if score_l2:
        d = d + 2.0 * score_l2 * scores
    if weight_decay:
        d = d + weight_decay * scores
    if momentum:
        if momentum_buffer is None:
            momentum_buffer = d.clone()
        else:
            momentum_buffer.mul_(momentum).add_(d)
        d = momentum_buffer
    scores.sub_(lr * d).clamp_(0.0, 1.0)
    return momentum_buffer


@dataclass(frozen=True)
class GemMinerResult:
    """Outcome of :func:`gem_miner`.

    ``masks`` is the ticket (``True`` = kept; exactly ``kept_count`` weights); ``scores`` the final scores
    (flat, in :func:`nets.params.prunable_parameters` order); ``history`` one record per epoch (``epoch``,
    ``lr``, ``train_loss`` (data term, running mean), ``score_penalty`` (``λ‖p‖²`` at the end of the epoch),
    ``active_fraction`` (after that epoch's freeze, if any), ``rounded_fraction`` (the fraction of weights the
    rounded forward mask kept at the end of the epoch), ``seconds``).
    """

    masks: Masks
    scores: torch.Tensor
    kept_count: int
    n_prunable: int
    history: list[dict[str, float]]
    config: GemMinerConfig
    seconds: float

    @property
    def kept_fraction(self) -> float:
        return self.kept_count / self.n_prunable


def gem_miner(
    model: nn.Module,
    data: DataSplit,
    config: GemMinerConfig,
    *,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> GemMinerResult:
    """Find a ticket of ``model`` at its current weights by Gem-Miner's score search (module docstring).

    The search runs on a copy of ``model`` in train mode (BatchNorm uses batch statistics) with every
    parameter frozen; ``model`` itself is never changed. ``progress(record)`` is called after every epoch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, DataSplit):
        raise TypeError(f"data must be a nets.data.DataSplit, got {type(data).__name__}")
    if not isinstance(config, GemMinerConfig):
        raise TypeError(f"config must be a GemMinerConfig, got {type(config).__name__}")
    t_start = time.perf_counter()
    device = torch.device(config.device)
    work = remove_masks(copy_model(model)).to(device)
    for p in work.parameters():
        p.requires_grad_(False)
    work.train()
    named = prunable_parameters(work)
    if not named:
        raise ValueError("model has no prunable (Linear/Conv) weights")
    names = [n for n, _ in named]
    weights = [w.detach() for _, w in named]
    dtype = weights[0].dtype
    n = sum(w.numel() for w in weights)
    schedule = annealing_schedule(config.kept_fraction, n, config.epochs, config.iter_period)

    generator = torch.Generator().manual_seed(config.seed)
    scores = torch.rand(n, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)  # U(0, 1)
    active = torch.ones(n, dtype=torch.bool, device=device)
    buffer: torch.Tensor | None = None
    loader = make_loader(data.train, config.batch_size, shuffle=True, generator=generator)
    history: list[dict[str, float]] = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        lr = config.lr_at(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        for x, y in loader:
            x = x.to(device=device, dtype=dtype)
            y = y.to(device)
            p = scores.detach().requires_grad_(True)
            mask = straight_through_mask(p, active, config.threshold)
            masked = {name: w * m for name, w, m in zip(names, weights, unflatten_like(mask, weights))}
            loss = F.cross_entropy(functional_call(work, masked, (x,)), y)
            (grad,) = torch.autograd.grad(loss, p)
            with torch.no_grad():
                buffer = score_step(scores, buffer, grad, lr=lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay, score_l2=config.score_l2)
            loss_sum += loss.detach().to(torch.float64) * len(y)
            seen += len(y)
        if epoch + 1 in schedule:
            active = freeze_lowest(scores, active, schedule[epoch + 1])
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(loss_sum) / seen,
            "score_penalty": config.score_l2 * float((scores.to(torch.float64) ** 2).sum()),
            "active_fraction": int(active.sum()) / n,
            "rounded_fraction": int((active & (scores > config.threshold)).sum()) / n,
            "seconds": time.perf_counter() - t0,
        }
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(f"the score search diverged at epoch {epoch + 1}: train_loss={record['train_loss']}")
        history.append(record)
        log.info("gem-miner epoch %d/%d %s", epoch + 1, config.epochs, record)
        if progress is not None:
            progress(record)
    k = kept_count(config.kept_fraction, n)
    if int(active.sum()) != k:  # guaranteed by annealing_schedule; a violated invariant is a bug
        raise RuntimeError(f"the ticket keeps {int(active.sum())} weights, expected kept_count={k}")
    device_of = {name: w.device for name, w in prunable_parameters(model)}
    masks = {name: piece.clone().to(device_of[name])
             for name, piece in zip(names, unflatten_like(active, weights))}
    return GemMinerResult(masks=masks, scores=scores.detach().cpu(), kept_count=k, n_prunable=n, history=history,
                          config=config, seconds=time.perf_counter() - t_start)


def finetune_config(search: GemMinerConfig, *, epochs: int | None = None, lr: float = 0.01, **overrides: Any) -> TrainConfig:
    """The fine-tuning recipe after the search: the authors' ``fine_tune_lr 0.01`` with a multistep schedule
    at their milestones [80, 120] of 150 epochs, scaled to ``epochs`` (default: the search's epochs), ×0.1;
    SGD momentum 0.9, no weight decay, no ℓ1, the search's batch size, seed and device.

    >>> finetune_config(GemMinerConfig(0.1, epochs=150)).milestones
    (80, 120)
    """
    e = search.epochs if epochs is None else check_int("epochs", epochs, minimum=1)
    milestones = tuple(sorted({m for m in (round(e * 80 / 150), round(e * 120 / 150)) if 1 <= m < e}))
    base: dict[str, Any] = {"epochs": e, "lr": lr, "momentum": 0.9, "weight_decay": 0.0, "batch_size": search.batch_size,
                            "schedule": "multistep" if milestones else "constant", "milestones": milestones,
                            "gamma": 0.1, "l1": 0.0, "seed": search.seed, "device": search.device}
    base.update(overrides)
    return TrainConfig(**base)


@dataclass(frozen=True)
class RareGemsResult:
    """Outcome of :func:`rare_gems`: the search, the ticket's accuracy at initialisation (before fine-tuning,
    the "rare gem" itself), and the fine-tuning run."""

    search: GemMinerResult
    gem_test_loss: float
    gem_test_acc: float
    finetune: TrainResult
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def masks(self) -> Masks:
        return self.search.masks

    @property
    def test_acc(self) -> float:
        return float(self.finetune.final["test_acc"])


def rare_gems(
    model: nn.Module,
    data: DataSplit,
    search: GemMinerConfig,
    finetune: TrainConfig | None = None,
    *,
    progress: Callable[[str, dict[str, float]], None] | None = None,
) -> RareGemsResult:
    """Gem-Miner search at ``model``'s current (initial) weights, then fine-tune the ticket **in place**.

    ``model`` ends with the ticket's weights trained and the mask made permanent (pruned weights exactly zero),
    like :func:`nets.prune.iterative_magnitude_pruning`. ``finetune`` defaults to :func:`finetune_config`.
    ``progress(stage, record)`` receives ``("search", …)`` and ``("finetune", …)`` epoch records.
    """
    found = gem_miner(model, data, search, progress=None if progress is None else (lambda r: progress("search", r)))
    finetune = finetune_config(search) if finetune is None else finetune
    if not isinstance(finetune, TrainConfig):
        raise TypeError(f"finetune must be a TrainConfig or None, got {type(finetune).__name__}")
    remove_masks(model)
    apply_masks(model, found.masks)
    try:
        gem_loss, gem_acc = evaluate(model, data.test, batch_size=finetune.eval_batch_size)
        res = train(model, data, finetune, progress=None if progress is None else (lambda r: progress("finetune", r)))
    finally:
        remove_masks(model)
    kept = mask_kept_fraction(found.masks)
    return RareGemsResult(search=found, gem_test_loss=gem_loss, gem_test_acc=gem_acc, finetune=res,
                          extra={"kept_fraction": kept})

