"""Which parameters are prunable, and flat views of parameter lists.

The papers prune the weights of convolution and linear layers together (global one-shot magnitude pruning);
biases and BatchNorm parameters are never pruned (docs/experiments.md §1.3). The Hessian of the pruning limit is taken
over the same parameters (docs/math.md §2: one space, the N prunable weights), so this module is the single
definition shared by :mod:`nets.hessian`, :mod:`nets.prune` and :mod:`nets.limit`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["PRUNABLE_MODULES", "prunable_parameters", "flatten", "unflatten_like", "count_parameters", "copy_model"]

#: Module types whose ``weight`` is prunable.
PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(qualified name, parameter)`` for the weight of every Linear/Conv module, in module order.

    >>> m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    >>> [n for n, _ in prunable_parameters(m)]
    ['0.weight', '2.weight']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, PRUNABLE_MODULES) and getattr(mod, "weight", None) is not None:
            name = f"{mod_name}.weight" if mod_name else "weight"
            out.append((name, mod.weight))
    return out


def flatten(tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Concatenate tensors into one flat vector (a copy)."""
    if len(tensors) == 0:
        raise ValueError("tensors must be a non-empty sequence")
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_like(vec: torch.Tensor, like: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Split a flat vector (or an ``(N, k)`` block, split along dim 0) into tensors shaped like ``like``.

    For a block the results have shapes ``(k, *t.shape)``: the probe axis first, as ``torch.func.vmap``
    expects.
    """
    n = sum(t.numel() for t in like)
    if vec.shape[0] != n:
        raise ValueError(f"vec has leading size {vec.shape[0]}, expected {n}")
    out, i = [], 0
    for t in like:
        k = t.numel()
        piece = vec[i : i + k]
        out.append(piece.reshape(t.shape) if vec.ndim == 1 else piece.T.reshape(vec.shape[1], *t.shape))
        i += k
    return out


def count_parameters(model: nn.Module, prunable_only: bool = False) -> int:
    """Number of scalar parameters (all trainable, or the prunable weights only)."""
    if prunable_only:
        return sum(p.numel() for _, p in prunable_parameters(model))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works for modules pruned with ``torch.nn.utils.prune``.

    A pruned module's ``weight`` is a non-leaf tensor (``weight_orig * weight_mask``) that ``deepcopy`` refuses;
    it is copied detached (the pruning hook recomputes it from ``weight_orig`` and the mask anyway).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    memo: dict[int, Any] = {}
    for mod in model.modules():
        for value in vars(mod).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)
