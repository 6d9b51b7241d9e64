"""Pruning masks and methods: LOMP (global one-shot magnitude), layerwise magnitude, random, Smart-Ratio, IMP.

A *mask* set is a ``dict`` from the qualified name of a prunable weight (:func:`nets.params.prunable_parameters`,
e.g. ``"net.1.weight"``) to a ``bool`` tensor of the weight's shape, ``True`` = kept. Mask functions read the
model and never change it; :func:`apply_masks` installs masks with ``torch.nn.utils.prune.custom_from_mask``
(``weight = weight_orig * weight_mask``, so masked entries stay zero through any optimiser step) and
:func:`remove_masks` makes them permanent. Biases and BatchNorm parameters are never pruned (docs/experiments.md §1.3).

Counting convention (docs/math.md §2: kept fraction ``ρ = k/N``, removed fraction ``1 − ρ``): a kept fraction
``ρ`` keeps exactly :func:`theory.limits.kept_count` ``(ρ, N)`` ``= ⌈ρN⌉`` weights up to floating-point
rounding (per layer: ``⌈ρ_l N_l⌉``), the one rule of the package: ρ = 0.3, N = 10 keeps 3, not 4.

Tie handling (magnitude methods): weights are ranked by ``|w|`` descending with a *stable* sort over the
flat index (module order, then row-major inside each tensor), so among equal magnitudes the one with the
smaller flat index is kept. Weights outside ``within`` (already pruned) are ranked below every other weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from nets.params import copy_model, flatten, prunable_parameters, unflatten_like
from theory.limits import kept_count
from theory.validation import check_choice, check_fraction, check_int, check_torch_generator

__all__ = [
    "Masks",
    "PRUNING_METHODS",
    "kept_count",
    "global_magnitude_masks",
    "layerwise_magnitude_masks",
    "random_masks",
    "smart_ratio_kept_counts",
    "smart_ratio_masks",
    "compute_masks",
    "apply_masks",
    "remove_masks",
    "model_masks",
    "mask_kept_fraction",
    "SweepResult",
    "magnitude_sweep",
    "fine_tune",
    "IMPResult",
    "iterative_magnitude_pruning",
]

Masks = dict[str, torch.Tensor]

#: Methods accepted by :func:`compute_masks`.
PRUNING_METHODS: tuple[str, ...] = ("global_magnitude", "layerwise_magnitude", "random", "smart_ratio")


# ------------------------------------------------------------------------------------------- helpers


def _weights(model: nn.Module, check_finite: bool = True) -> list[tuple[str, torch.Tensor]]:
    ws = [(name, w.detach()) for name, w in prunable_parameters(model)]
    if not ws:
        raise ValueError("model has no prunable (conv/linear) weights")
    for name, w in ws if check_finite else ():
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"weight {name!r} has non-finite entries; cannot rank magnitudes")
    return ws


def _split(flat_keep: torch.Tensor, ws: list[tuple[str, torch.Tensor]]) -> Masks:
    pieces = unflatten_like(flat_keep, [w for _, w in ws])
    return {name: piece.clone() for (name, _), piece in zip(ws, pieces)}


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest scores, ties to the smaller index (stable descending sort)."""
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        order = torch.sort(scores, descending=True, stable=True).indices
        keep[order[:k]] = True
    return keep


def _scores(ws: list[tuple[str, torch.Tensor]], within: Masks | None) -> list[torch.Tensor]:
    out = []
    for name, w in ws:
        s = w.abs().reshape(-1).to(torch.float64)
        if within is not None:
            if name not in within:
                raise ValueError(f"within has no mask for weight {name!r}")
            s = torch.where(within[name].reshape(-1).to(s.device), s, torch.full_like(s, -1.0))
        out.append(s)
    return out


# ------------------------------------------------------------------------------------------- masks
def global_magnitude_masks(model: nn.Module, kept_fraction: float, *, within: Masks | None = None) -> Masks:
    """LOMP (the pruning-limit paper's method): keep the ``⌈ρN⌉`` largest ``|w|`` over all prunable weights.

    One ranking over the conv and linear weights together; ties to the smaller flat index. With
    ``within`` (current masks) already-pruned weights are removed first, so masks are nested.

    >>> m = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = m.weight.copy_(torch.tensor([[3.0, -1.0], [1.0, 2.0]]))
    >>> global_magnitude_masks(m, 0.75)["weight"].tolist()
    [[True, True], [False, True]]
    """
    ws = _weights(model)
    scores = torch.cat(_scores(ws, within))
    return _split(_top_k(scores, kept_count(kept_fraction, scores.numel())), ws)


def _per_layer_fractions(ws: list[tuple[str, torch.Tensor]], kept_fractions: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(kept_fractions, Mapping):
        names = [n for n, _ in ws]
        missing, extra = set(names) - set(kept_fractions), set(kept_fractions) - set(names)
        if missing or extra:
            raise ValueError(f"kept_fractions must name every prunable weight: missing {sorted(missing)}, unknown {sorted(extra)}")
        return {n: check_fraction(f"kept_fractions[{n!r}]", kept_fractions[n]) for n in names}
    rho = check_fraction("kept_fraction", kept_fractions)
    return {n: rho for n, _ in ws}


def layerwise_magnitude_masks(
    model: nn.Module, kept_fractions: float | Mapping[str, float], *, within: Masks | None = None
) -> Masks:
    """Keep the ``⌈ρ_l N_l⌉`` largest ``|w|`` of each layer ``l`` (one ``ρ`` for all, or a mapping by name)."""
    ws = _weights(model)
    fr = _per_layer_fractions(ws, kept_fractions)
    return {name: _top_k(s, kept_count(fr[name], s.numel())).reshape(w.shape)
            for (name, w), s in zip(ws, _scores(ws, within))}


def _random_from_counts(ws: list[tuple[str, torch.Tensor]], counts: Mapping[str, int], generator: torch.Generator) -> Masks:
    out = {}
    for name, w in ws:
        keep = torch.zeros(w.numel(), dtype=torch.bool)
        keep[torch.randperm(w.numel(), generator=generator)[: counts[name]]] = True
        out[name] = keep.reshape(w.shape).to(w.device)
    return out


def random_masks(model: nn.Module, kept_fractions: float | Mapping[str, float], *, generator: torch.Generator) -> Masks:
    """Uniformly random masks from ``generator``.

    A single ``ρ`` keeps a uniformly random subset of exactly ``⌈ρN⌉`` of all prunable weights (global);
    a mapping keeps ``⌈ρ_l N_l⌉`` uniformly random weights in each layer.
    """
    check_torch_generator("generator", generator)
    ws = _weights(model)
    if isinstance(kept_fractions, Mapping):
        fr = _per_layer_fractions(ws, kept_fractions)
        return _random_from_counts(ws, {n: kept_count(fr[n], w.numel()) for n, w in ws}, generator)
    n_total = sum(w.numel() for _, w in ws)
    keep = torch.zeros(n_total, dtype=torch.bool)
    keep[torch.randperm(n_total, generator=generator)[: kept_count(kept_fractions, n_total)]] = True
    return {k: v.to(w.device) for (k, v), (_, w) in zip(_split(keep, ws).items(), ws)}


def smart_ratio_kept_counts(model: nn.Module, kept_fraction: float, *, linear_kept_fraction: float = 0.3) -> dict[str, int]:
    """Smart-Ratio layerwise keep counts (Su et al., NeurIPS 2020, "Sanity-checking pruning methods: random
    tickets can win the jackpot", §5), summing to exactly ``⌈ρN⌉``.

    Quadratic decay: the ``l``-th of ``L`` prunable conv layers (module order, ``l = 1..L``) gets keep ratio
    ``p_l = c·q_l`` with ``q_l = (L − l + 1)² + (L − l + 1)``; every Linear layer keeps
    ``linear_kept_fraction`` (their default 0.3). The constant ``c`` solves ``Σ_l N_l min(1, c q_l) = G``,
    ``G`` = the budget left after the linear layers (water-filling: ratios that would exceed 1 are clipped
    and the excess spread over the others in proportion to ``q_l``).

    Deviations (ours): exact integer counts (largest remainders, ties to the earlier layer) instead of their
    ``int()`` truncation; proportional water-filling instead of their in-order carry of the excess; their
    public code additionally divides ``q_l`` by ``l²`` for non-ResNet architectures, which we do not; for a
    network with no conv layers (FC5, MLPs) the decay is applied to the Linear layers themselves.
    """
    rho = check_fraction("kept_fraction", kept_fraction)
    lin = check_fraction("linear_kept_fraction", linear_kept_fraction)
    ws = _weights(model, check_finite=False)  # only shapes are used (works on the meta device)
    is_linear = {name: isinstance(_module_of(model, name), nn.Linear) for name, _ in ws}
    sizes = {name: w.numel() for name, w in ws}
    n_total = sum(sizes.values())
    target = kept_count(rho, n_total)
    decayed = [n for n, _ in ws if not is_linear[n]] or [n for n, _ in ws]
    fixed = [n for n, _ in ws if n not in decayed]
    counts = {n: kept_count(lin, sizes[n]) for n in fixed}
    budget = target - sum(counts.values())
    if budget < 0:
        raise ValueError(
            f"kept_fraction={rho} keeps {target} weights but the Linear layers alone keep {target - budget} at "
            f"linear_kept_fraction={lin}; lower linear_kept_fraction")
    big_l = len(decayed)
    q = np.array([(big_l - l + 1) ** 2 + (big_l - l + 1) for l in range(1, big_l + 1)], dtype=np.float64)
    nl = np.array([sizes[n] for n in decayed], dtype=np.float64)
    if budget >= nl.sum():
        raise ValueError(f"kept_fraction={rho} leaves no room to prune the conv layers at linear_kept_fraction={lin}")
    # Water-filling: f(c) = Σ N_l min(1, c q_l) is continuous and increasing; bisection to machine precision.
    lo, hi = 0.0, 1.0 / q.min()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float((nl * np.minimum(1.0, mid * q)).sum()) < budget:
            lo = mid
        else:
            hi = mid
    exact = nl * np.minimum(1.0, hi * q)
    base = np.minimum(np.floor(exact), nl).astype(np.int64)
    short = int(budget - base.sum())
    rema = exact - base
    for i in sorted(range(big_l), key=lambda i: (-rema[i], i)):
        if short <= 0:
            break
        if base[i] < nl[i]:
            base[i] += 1
            short -= 1
    while short > 0:  # only if rounding left a remainder after every layer got one: fill in layer order
        for i in range(big_l):
            if short > 0 and base[i] < nl[i]:
                base[i] += 1
                short -= 1
    counts.update({n: int(b) for n, b in zip(decayed, base)})
    return {n: counts[n] for n, _ in ws}


def smart_ratio_masks(
    model: nn.Module, kept_fraction: float, *, generator: torch.Generator, linear_kept_fraction: float = 0.3
) -> Masks:
    """Random masks with the Smart-Ratio layer counts (Su et al. 2020's "random tickets")."""
    check_torch_generator("generator", generator)
    counts = smart_ratio_kept_counts(model, kept_fraction, linear_kept_fraction=linear_kept_fraction)
    return _random_from_counts(_weights(model), counts, generator)


def compute_masks(
    model: nn.Module, pruning_method: str, kept_fraction: float, *, generator: torch.Generator | None = None
) -> Masks:
    """Masks by name: ``global_magnitude`` (LOMP), ``layerwise_magnitude``, ``random``, ``smart_ratio``."""
    method = check_choice("pruning_method", pruning_method, PRUNING_METHODS)
    if method == "global_magnitude":
        return global_magnitude_masks(model, kept_fraction)
    if method == "layerwise_magnitude":
        return layerwise_magnitude_masks(model, kept_fraction)
    if method in ("random", "smart_ratio"):
        if generator is None:
            raise ValueError(f"pruning_method={method!r} needs an explicit torch.Generator (generator=None given)")
        if method == "random":
            return random_masks(model, kept_fraction, generator=generator)
    return smart_ratio_masks(model, kept_fraction, generator=generator)


def mask_kept_fraction(masks: Masks) -> float:
    """Kept fraction ``k/N`` of a mask set."""
    n = sum(m.numel() for m in masks.values())
    if n == 0:
        raise ValueError("masks are empty")
    return sum(int(m.sum()) for m in masks.values()) / n


# ------------------------------------------------------------------------------------------- model surgery
def _module_of(model: nn.Module, name: str) -> nn.Module:
    if not name.endswith("weight"):
        raise ValueError(f"mask name {name!r} is not a weight")
    path = name[: -len("weight")].rstrip(".")
    try:
        return model.get_submodule(path) if path else model
    except AttributeError as exc:
        raise ValueError(f"mask name {name!r} names no module of the model") from exc


def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Install ``masks`` with ``torch.nn.utils.prune.custom_from_mask`` (in place; returns ``model``).

    Masked weights are zero in every forward pass and receive zero gradient, so they stay zero through
    optimiser steps. A module that is already pruned gets the logical AND of the old and new masks (the
    ``PruningContainer`` behaviour of ``torch.nn.utils.prune``).
    """
    names = {n for n, _ in prunable_parameters(model)}
    for name, m in masks.items():
        if name not in names:
            raise ValueError(f"mask name {name!r} is not a prunable weight of the model; known: {sorted(names)[:5]}...")
        mod = _module_of(model, name)
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise TypeError(f"mask {name!r} must be a bool tensor, got {getattr(m, 'dtype', type(m).__name__)}")
        if m.shape != mod.weight.shape:
            raise ValueError(f"mask {name!r} has shape {tuple(m.shape)}, weight has {tuple(mod.weight.shape)}")
        torch_prune.custom_from_mask(mod, "weight", m.to(device=mod.weight.device, dtype=mod.weight.dtype))
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make installed masks permanent (``prune.remove``): ``weight`` becomes a plain zeroed Parameter."""
    for mod in model.modules():
        if torch_prune.is_pruned(mod) and hasattr(mod, "weight_mask"):
            torch_prune.remove(mod, "weight")
    return model


def model_masks(model: nn.Module) -> Masks:
    """The installed masks (``weight_mask`` as bool; all-True for modules without one)."""
    out = {}
    for name, w in prunable_parameters(model):
        mod = _module_of(model, name)
        m = getattr(mod, "weight_mask", None)
        out[name] = m.bool().clone() if m is not None else torch.ones_like(w, dtype=torch.bool)
    return out


# ------------------------------------------------------------------------------------------- sweeps
@dataclass
class SweepResult:
    """Metrics of LOMP-pruned copies: ``metrics[key][i]`` at ``kept_fractions[i]`` (``kept_counts[i]`` weights)."""

    kept_fractions: np.ndarray
    kept_counts: np.ndarray
    n_prunable: int
    metrics: dict[str, np.ndarray] = field(default_factory=dict)


def magnitude_sweep(
    model: nn.Module,
    kept_fractions: Sequence[float],
    evaluate_fn: Callable[[nn.Module], float | Mapping[str, float]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Evaluate global-magnitude (LOMP) pruned versions of ``model`` at each keep fraction, in memory.

    One working copy of the model is made; the prunable weights are ranked once, and at each level every
    prunable weight of the copy is rewritten from the dense values (kept) or zero (pruned), so levels are
    independent and the caller's model is untouched. Nothing is written to disk (the authors saved a full
    checkpoint per level, docs/experiments.md §1.4, mistake 7). ``evaluate_fn(pruned_model)`` returns a number or a
    mapping of named numbers (e.g. ``{"train_loss": …, "test_acc": …}``); ``progress(i, total)`` is called
    after each level.
    """
    fr = [check_fraction(f"kept_fractions[{i}]", f) for i, f in enumerate(kept_fractions)]
    if not fr:
        raise ValueError("kept_fractions is empty")
    work = remove_masks(copy_model(model))
    ws = [(n, w) for n, w in prunable_parameters(work)]
    tensors = [w for _, w in ws]
    dense = flatten([w.detach() for w in tensors])
    if not bool(torch.isfinite(dense).all()):
        raise ValueError("model has non-finite prunable weights")
    order = torch.sort(dense.abs(), descending=True, stable=True).indices
    n = dense.numel()
    kept, metrics = [], {}
    with torch.no_grad():
        for i, rho in enumerate(fr):
            k = kept_count(rho, n)
            flat = torch.zeros_like(dense)
            flat[order[:k]] = dense[order[:k]]
            for w, piece in zip(tensors, unflatten_like(flat, tensors)):
                w.copy_(piece)
            out = evaluate_fn(work)
            values = dict(out) if isinstance(out, Mapping) else {"value": out}
            for key, v in values.items():
                metrics.setdefault(key, [float("nan")] * len(fr))[i] = float(v)
            kept.append(k)
            if progress is not None:
                progress(i + 1, len(fr))
    return SweepResult(np.asarray(fr), np.asarray(kept, dtype=np.int64), n,
                       {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()})


# ------------------------------------------------------------------------------------------- training
def fine_tune(model: nn.Module, masks: Masks, data: Any, config: Any, **train_kwargs: Any) -> Any:
    """Install ``masks``, train with :func:`nets.train.train` (masked weights stay zero), make them permanent.

    Returns the :class:`~nets.train.TrainResult`. ``train_kwargs`` go to ``train`` (checkpoint_dir, …).
    """
    from nets.train import train

    apply_masks(model, masks)
    try:
        return train(model, data, config, **train_kwargs)
    finally:
        remove_masks(model)


@dataclass
class IMPResult:
    """Iterative magnitude pruning: final ``masks`` and one record per round (round 0 = dense training)."""

    masks: Masks
    rounds: list[dict[str, float]]


def iterative_magnitude_pruning(
    model: nn.Module,
    data: Any,
    config: Any,
    *,
    rounds: int,
    prune_fraction: float = 0.2,
    rewind_epoch: int = 0,
    layerwise: bool = False,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> IMPResult:
    """IMP with weight rewinding (Frankle & Carbin, ICLR 2019; rewinding: Frankle et al., ICML 2020).

    Train the dense model; then ``rounds`` times: remove ``prune_fraction`` of the remaining weights by
    magnitude (global, or per layer with ``layerwise=True``; nested masks), rewind the surviving weights
    to their values after ``rewind_epoch`` epochs of the first run (0 = the initialisation), and retrain
    with a fresh optimiser from epoch ``rewind_epoch`` of the schedule. After round ``r`` the kept fraction
    is ``(1 − p)^r`` (each round keeps ``⌈(1 − p)^r N⌉``). The model ends with the final masks made
    permanent (pruned weights zero). ``progress`` receives each round's record.
    """
    from nets.train import train

    check_int("rounds", rounds, minimum=1)
    p = check_fraction("prune_fraction", prune_fraction)
    if not (0.0 < p < 1.0):
        raise ValueError(f"prune_fraction must lie in (0, 1), got prune_fraction={prune_fraction!r}")
    check_int("rewind_epoch", rewind_epoch, minimum=0, maximum=config.epochs - 1)
    remove_masks(model)
    snapshot: dict[str, torch.Tensor] = {}
    if rewind_epoch == 0:
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def capture(record: dict[str, float]) -> None:
        if rewind_epoch > 0 and record["epoch"] == rewind_epoch:
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    res = train(model, data, config, progress=capture)
    masks = model_masks(model)
    history = [{"round": 0, "kept_fraction": 1.0, **{k: res.final[k] for k in ("train_loss", "test_loss", "test_acc")}}]
    if progress is not None:
        progress(history[-1])
    for r in range(1, rounds + 1):
        rho = (1.0 - p) ** r
        masks = (layerwise_magnitude_masks(model, rho, within=masks) if layerwise
                 else global_magnitude_masks(model, rho, within=masks))
        model.load_state_dict(snapshot)
        apply_masks(model, masks)
        try:
            res = train(model, data, config, start_epoch=rewind_epoch)
        finally:
            remove_masks(model)
        history.append({"round": r, "kept_fraction": mask_kept_fraction(masks),
                        **{k: res.final[k] for k in ("train_loss", "test_loss", "test_acc")}})
        if progress is not None:
            progress(history[-1])
    return IMPResult(masks=masks, rounds=history)
