"""Data and level parallelism of the pipeline across ``torch.distributed`` ranks (``torchrun``).

When a default process group is initialised (``torchrun --nproc_per_node K …`` and
:func:`torch.distributed.init_process_group`), every rank runs the same pipeline on the same model and the same
full data, and three parts are split:

* **the Hessian data** (the spectrum's products, the compensated search, the Taylor prediction and the
  oracle): each rank keeps the contiguous shard ``tensor_split(samples, K)[rank]`` of the Hessian samples
  (:func:`shard_batches`); :class:`nets.hessian.HessianOperator` and :class:`nets.compensate.Compensator`
  all-reduce the batch-size-weighted sums, so every rank gets the products and losses of the union — the
  single-process values up to the order of floating-point summation;
* **the sweep levels**: each rank evaluates every ``K``-th grid level of the LOMP sweep on the full data
  (:func:`split_levels`), and the values are summed across ranks (each level's owner contributes its value,
  the others zero), so every level's loss is bit-identical to the single-process one and the limits are too;
* **training** (:func:`nets.train.train` with ``distributed=True``: DDP over shards of each global batch).

Everything else (ε, the predictions, the bisection steps after the grid) is computed redundantly and
identically on every rank; only rank 0 should write files or print. That every rank holds the same model, data
and settings is checked before any work (:func:`check_same_on_every_rank`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["process_group", "is_distributed", "shard_batches", "split_levels", "all_reduce_sum",
           "init_process_group", "check_same_on_every_rank"]


def init_process_group(backend: str, **kwargs: Any) -> None:
    """:func:`torch.distributed.init_process_group` after importing ``torch._dynamo``.

    With PyTorch 2.13, the first import of ``torch._dynamo`` (done by ``torch.func.grad``, hence by the
    forward-over-reverse Hessian-vector product) takes references to an existing default group, which then
    outlives :func:`torch.distributed.destroy_process_group`; its gloo worker threads are still running when the
    interpreter exits, and one that releases a tensor at that moment aborts the process (``terminate called
    without an active exception``, about one run in ten of two ranks here). Importing it before the group
    exists takes no such references, so ``destroy_process_group`` frees the group and joins its threads.
    Scripts that initialise the group themselves should import ``torch._dynamo`` first in the same way.
    """
    import torch._dynamo  # imported for its side effect (the docstring)

    torch.distributed.init_process_group(backend, **kwargs)


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` default process group is initialised."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def process_group() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if not is_distributed():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` across ranks in place (no-op without a process group); returns ``t``."""
    if is_distributed():
        torch.distributed.all_reduce(t)
    return t


_FINGERPRINT_CHUNK = 1 << 22  # elements per float64 pass: 32 MiB of temporaries, whatever the data's size


def _fingerprint(tensors: torch.Tensor | Sequence[torch.Tensor]) -> list[float]:
    """``[numel, Σx, Σx², Σ x_i·sin(i)]`` of the tensors flattened and concatenated (``i`` runs on across
    them), in float64 (equal tensors give equal rows); accumulated in chunks, so that a large dataset or model
    needs no float64 copy of itself."""
    parts = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    acc = [0.0, 0.0, 0.0]
    offset = 0
    for t in parts:
        flat = t.detach().reshape(-1)
        for start in range(0, flat.numel(), _FINGERPRINT_CHUNK):
            x = flat[start : start + _FINGERPRINT_CHUNK].to(torch.float64)
            first = offset + start + 1
            phase = torch.arange(first, first + x.numel(), dtype=torch.float64, device=x.device).sin()
            acc[0] += float(x.sum())
            acc[1] += float((x * x).sum())
            acc[2] += float((x * phase).sum())
        offset += flat.numel()
    return [float(offset), *acc]


def _number_row(value: float) -> list[float]:
    """An exact float64 encoding of a number: an int as its two 32-bit halves, a float as itself."""
    if isinstance(value, int):
        v = int(value)
        return [2.0, float(v >> 32), float(v & 0xFFFFFFFF), 0.0]
    return [1.0, float(value), 0.0, 0.0]


def check_same_on_every_rank(device: torch.device | str,
                             **inputs: torch.Tensor | Sequence[torch.Tensor] | float | None) -> None:
    """Raise ``ValueError`` on every rank if an input differs across the ranks of the default group.

    Every rank must run the pipeline on the same model, data and settings (module docstring); one that does not
    would otherwise meet the others in mismatched collectives (a gloo "collective mismatch" abort, or a hang).
    Each input — a tensor, a sequence of tensors (taken as their concatenation), a number, or None — is reduced
    to a row of four float64 values whose element-wise MIN and MAX over the ranks are compared. A tensor's row
    is its fingerprint (element count, sum, sum of squares and a position-weighted sum), compared to ``1e-9``
    relative (equal tensors give equal rows; the tolerance only absorbs summation order on different hardware);
    a number's row encodes it exactly and is compared exactly. The error names the first input that differs.
    A no-op with one process.
    """
    _, world = process_group()
    if world == 1:
        return
    rows, exact = [], []
    for value in inputs.values():
        is_tensor = isinstance(value, (torch.Tensor, list, tuple))
        rows.append([0.0] * 4 if value is None else _fingerprint(value) if is_tensor else _number_row(value))
        exact.append(not is_tensor)
    lo = torch.tensor(rows, dtype=torch.float64, device=device)
    hi = lo.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    rel = torch.tensor([0.0 if e else 1e-9 for e in exact], dtype=torch.float64, device=lo.device)[:, None]
    scale = torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0)
    differs = ((hi - lo) > rel * scale).any(dim=1).tolist()
    for name, bad in zip(inputs, differs):
        if bad:
            raise ValueError(
                f"{name} differs across the {world} processes: under torchrun every rank must hold the same model, "
                "data and settings (load the same checkpoint, or seed the initialisation and the training "
                "identically on every rank)")


def shard_batches(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], batch_size: int,
                  rank: int | None = None, world: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's contiguous shard ``tensor_split(samples, world)[rank]`` of the samples in ``batches``,
    re-batched by ``batch_size``; ``batches`` itself (as a list) with one process.

    >>> b = [(torch.arange(5.0)[:, None], torch.arange(5))]
    >>> [y.tolist() for _, y in shard_batches(b, 2, rank=1, world=2)]
    [[3, 4]]
    """
    if rank is None or world is None:
        rank, world = process_group()
    if world == 1:
        return list(batches)
    X = torch.cat([x for x, _ in batches])
    y = torch.cat([t for _, t in batches])
    if int(X.shape[0]) < world:
        raise ValueError(f"{int(X.shape[0])} samples cannot be shared by {world} processes: every process needs at "
                         "least one; use fewer processes")
    Xs = torch.tensor_split(X, world)[rank]
    ys = torch.tensor_split(y, world)[rank]
    return [(Xs[i : i + batch_size], ys[i : i + batch_size]) for i in range(0, int(Xs.shape[0]), batch_size)]


def split_levels(levels: Sequence[int], evaluate: Callable[[int], Sequence[float]], width: int,
                 device: torch.device) -> tuple[dict[int, tuple[float, ...]], int]:
    """Evaluate ``evaluate(level)`` (``width`` floats each) for every level, each rank taking every ``K``-th
    level, and share the values: returns ``({level: values}, evaluations made on all ranks together)``.

    A level's values come from its owner alone (the others add zeros), so they are bit-identical to a
    single-process evaluation. With one process this is a plain loop.
    """
    rank, world = process_group()
    levels = list(levels)
    out = torch.zeros((len(levels), width), dtype=torch.float64, device=device)
    for i in range(rank, len(levels), world):
        out[i] = torch.as_tensor(list(evaluate(levels[i])), dtype=torch.float64)
    all_reduce_sum(out)
    rows = out.cpu().tolist()
    return {k: tuple(r) for k, r in zip(levels, rows)}, len(levels)
