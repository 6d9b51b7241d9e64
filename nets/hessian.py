"""Hessian-vector products of a PyTorch model's dataset-averaged loss, as a :class:`LinearOperator`.

The operator is the Hessian, with respect to a selected set of parameters ``θ`` (by default the prunable
weights, :func:`nets.params.prunable_parameters`; every other parameter and buffer held fixed), of the
dataset-averaged loss over a *fixed* list of batches ``B_1, …, B_J`` (or a re-iterable loader without
augmentation) of sizes ``n_b``, ``N = Σ_b n_b``:

    L(θ) = (1/N) Σ_b n_b ℓ_b(θ),        H = ∇²L(θ),        H V = (1/N) Σ_b n_b ∇²ℓ_b(θ) V,

where ``ℓ_b`` is the *mean* loss over batch ``b`` (docs/math.md §3.2: the spectrum of this ``H`` is what SLQ
estimates; docs/experiments.md §1.3: HVP averaged over the whole training set, model in eval mode, BN excluded from
``H``). Products are batched: ``matmat(V)`` with ``V`` of shape ``(n, k)`` serves ``k`` probes.

Product paths (Pearlmutter 1994, "Fast exact multiplication by the Hessian"), all exact:

* cached double-backward (``cache_graph=True``, or ``"auto"`` when it fits): the first-order graphs
  ``g_b = ∇ℓ_b`` of all batches are built once with ``create_graph=True`` and summed into
  ``Σ_b n_b g_b``; a product is then one second-order ``torch.autograd.grad`` per probe with no data pass.
  Memory: the tensors the graphs save (activations and first-order intermediates of the whole dataset), the
  summed gradient (``n`` numbers), and the inputs when they had to be cast or moved; all counted in
  :attr:`HessianOperator.cached_graph_bytes` (per-batch gradients are not kept: a non-finite product is
  located by rebuilding the batches' graphs, one extra data pass, only then).
* streaming ``"double-backward"``: per batch, build ``g_b`` with ``create_graph=True`` and take
  ``∇(g_bᵀ v)`` per probe reusing it; one data pass per product, memory one batch's graph.
* streaming ``"forward-over-reverse"``: ``H v = ∂/∂ε ∇ℓ(θ + ε v)`` by ``torch.func.jvp`` of
  ``torch.func.grad``, ``vmap``-ped over the ``k`` probes (one primal pass shared by the probes; memory about
  ``1 + k`` times one batch's graph).
* ``hvp_method="auto"`` (default) streams by whichever of the two is faster *on this model and data*: at the
  first streaming product it times one product of each on (at most 64 samples of) the first batch, after a
  one-sample warm-up of each, and keeps the faster (:attr:`HessianOperator.hvp_choice` records the times and the two products'
  relative difference, a parity check for free). The ratio is not universal: forward-over-reverse cost 3.0
  gradients on FC5 at 3.9 M weights against 2.0–2.3 for double-backward (issue 11), while vmap's batching of
  the probes favours it on small models.

``cache_graph="auto"`` (default) takes the cached path when ``data`` is a list/tuple and the cached bytes
total at most ``cache_graph_max_bytes`` (default :data:`CACHE_GRAPH_AUTO_BYTES`, measured while the graphs are
built at the first product; the build is abandoned as soon as the running total passes the limit), and
streams otherwise. :meth:`HessianOperator.estimate_memory` predicts every path's memory before any product
(from the graph of a one- and a two-sample slice of the first batch), for a preflight check.

The caller's model is never changed: parameters and buffers are snapshotted at construction (in ``dtype``,
a float64 copy when asked) and passed by :func:`torch.func.functional_call`; the model is put in eval mode
only for the duration of a product (BatchNorm uses running statistics, dropout is off) and every module's
train/eval flag is restored afterwards; ``.grad`` and ``requires_grad`` of the caller's parameters are never
touched. The operator is therefore the Hessian at the parameters *at construction*.

When ``torch.distributed`` is initialised, each rank passes its own shard of the data; the batch-size-
weighted sums ``Σ_b n_b ∇²ℓ_b V`` and the sample counts are all-reduced, so every rank gets the same
``H V`` as a single process over the union of the shards (up to floating-point summation order: each rank
makes its own cache and ``"auto"`` decisions, which change only the rounding). Every rank must call
``matmat`` with the same ``V`` (as SLQ does with the same generator seed on every rank); a non-finite product
on one rank is reported on every rank after the all-reduce rather than leaving the others waiting.

Layout: products are returned as ``(n, k)`` tensors whose columns are contiguous (the transpose of a
row-major ``(k, n)`` block), the layout in which each probe's product is written and in which
:func:`numerics.lanczos.lanczos` reads them without a copy.

Cost (``bench/spectrum.py --hvp-paths``: FC5-family MLPs, 512 synthetic CIFAR-shaped samples in 4 batches of
128, 4 probes, float32, 1 thread of a loaded 2-core machine, torch 2.13; interleaved medians): one product per
probe over one gradient (forward + backward over the same batches) was 0.65 / 1.67 / 1.33 for the cached path,
0.99 / 1.83 / 1.74 for streaming double-backward and 1.86 / 2.98 / 2.02 for forward-over-reverse at 10⁴ / 10⁵ /
10⁶ weights (so ``hvp_method="auto"`` chooses double-backward on these models). The cached product is one
second-order backward per probe and runs at the single-thread GEMM rate. torch.compile was tried on the
forward-over-reverse product (26k-parameter MLP, 2 CPU cores): about a minute of compilation and a slower
product, so it is not used. Two alternatives measured slower than the per-probe loop of second-order backward
calls, so neither is used: one call with ``torch.autograd.grad(..., is_grads_batched=True)`` (1.4× on a digits
MLP; 0.9–1.1× on the FC5 family at 10⁴–10⁶ weights) and ``torch.func.linearize`` + ``vmap`` (1.1×).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from nets.params import prunable_parameters, unflatten_like
from numerics.operators import LinearOperator
from theory.validation import check_choice, check_int

__all__ = ["CACHE_GRAPH_AUTO_BYTES", "HVP_METHODS", "HessianMemory", "HessianOperator", "eval_mode"]

logger = logging.getLogger(__name__)

#: The streaming product methods of :class:`HessianOperator` (``hvp_method`` also accepts ``"auto"``: the
#: faster of the two, measured).
HVP_METHODS: tuple[str, ...] = ("forward-over-reverse", "double-backward")
_HVP_CHOICES: tuple[str, ...] = ("auto", *HVP_METHODS)

#: ``cache_graph="auto"`` keeps the first-order graphs when the bytes they hold (saved activations and
#: first-order intermediates, the summed gradient, cast inputs; measured while the graphs are built; the
#: parameters and the caller's own input tensors not counted) total at most this many bytes. 1 GiB (ours): a
#: digits MLP over the 1 797 digits holds about 13 MB, so the fast path is taken for every small in-memory
#: dataset, while a large dataset or model falls back to the streaming path, whose memory is one batch.
CACHE_GRAPH_AUTO_BYTES: int = 1 << 30

#: ``hvp_method="auto"`` times the two streaming methods on at most this many samples of the first batch (ours:
#: enough for the per-sample work to dominate the per-call overhead on the FC5 family, while the measurement's
#: memory, about ``(1 + k)`` graphs of this many samples for forward-over-reverse, stays small).
_CHOICE_SAMPLES: int = 64


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite: a finite column sum proves it (a NaN or ±inf entry makes its
    column's sum NaN or ±inf); only a non-finite sum (a bad entry, or an overflow of finite entries) pays
    for the entrywise test."""
    return bool(torch.isfinite(t.sum(dim=0)).all()) or bool(torch.isfinite(t).all())


ParamSelector = Union[None, Sequence[str], Callable[[str, nn.Parameter], bool]]  # noqa: UP007 (runtime alias)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode, restoring each module's own flag on exit.

    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    >>> _ = m[1].eval()
    >>> with eval_mode(m):
    ...     m.training
    False
    >>> m.training, m[1].training
    (True, False)
    """
    flags = [(mod, mod.training) for mod in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for mod, flag in flags:
            mod.training = flag


def _select_parameters(model: nn.Module, params: ParamSelector) -> list[str]:
    named = dict(model.named_parameters())
    if params is None:
        names = [name for name, _ in prunable_parameters(model)]
        if not names:
            raise ValueError("params=None selects the prunable weights, but the model has no Linear/Conv weight")
        return names
    if callable(params):
        names = [name for name, p in named.items() if params(name, p)]
        if not names:
            raise ValueError("the params selector selected no parameter")
        return names
    if isinstance(params, str) or not isinstance(params, Sequence):
        raise TypeError(
            f"params must be None, a sequence of parameter names, or a callable (name, param) -> bool, "
            f"got {type(params).__name__}"
        )
    names = list(params)
    if not names:
        raise ValueError("params must select at least one parameter, got an empty sequence")
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"params must contain parameter names (str), got {bad[0]!r}")
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"params names not found among the model's parameters: {unknown!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"params contains duplicate names: {names!r}")
    return names


def _check_batch(batch: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch {index} must be an (inputs, targets) pair, got {type(batch).__name__}")
    x, y = batch
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(
            f"batch {index} must hold tensors, got ({type(x).__name__}, {type(y).__name__})"
        )
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"batch {index}: inputs and targets must share the leading batch dimension, "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"batch {index} is empty")
    return x, y


#: First-call allocations of a product path, whatever the model (autograd engine and kernels' buffers; for
#: forward-over-reverse also torch.func's): measured on CPU with torch 2.13 as 38-64 MB (autograd paths) and about
#: 140 MB (forward-over-reverse) of resident memory in a fresh process; rounded up.
_PATH_OVERHEAD_BYTES: dict[str, int] = {
    "cached double-backward": 64 << 20,
    "double-backward": 64 << 20,
    "forward-over-reverse": 160 << 20,
}


@dataclass(frozen=True)
class HessianMemory:
    """Predicted memory of a :class:`HessianOperator`'s products (bytes), from :meth:`HessianOperator.estimate_memory`.

    The first-order graph of a batch of ``b`` samples is modelled as ``graph_bytes_per_batch + b ·
    graph_bytes_per_sample`` (exact for layer stacks whose saved tensors are per-sample activations; both
    coefficients measured on a one- and a two-sample slice of the first batch, counted like the cache guard
    counts them). With ``G`` the graph and ``X`` the input bytes of the largest batch, ``s`` the bytes of the
    operator's dtype, ``n`` weights and ``k`` probes (our model, calibrated on CPU against the peak resident
    memory of one product in a fresh process, FC5-family MLPs of 0.16–3.9 M weights, batches of 128–2048,
    ``k`` = 1–8, where it over-predicted by 1.3–2.5× and never under-predicted):

    * ``product_bytes = (2k + 4) n s``: the probe block, the accumulated product, a batch's product, the
      per-probe second-order gradients and their flat copy, the batch gradient.
    * ``cached_graph_bytes = Σ_b G(n_b) + n s + cast inputs``: exactly what the cache guard
      (:attr:`HessianOperator.cached_graph_bytes`) counts after the build (``None`` for a loader, which is never
      cached).
    * ``paths`` (peak of a product by each path, beyond the parameters and the data): ``"cached double-backward"``
      ``= cached_graph_bytes + G + product_bytes``; ``"double-backward" = 2G + X + product_bytes``;
      ``"forward-over-reverse" = (1 + c)(G + X) + product_bytes`` with ``c = min(k, chunk_size)`` (a tangent of
      the graph and of the batch's inputs per probe of a ``vmap`` chunk); each plus the first call's fixed
      allocations (:data:`_PATH_OVERHEAD_BYTES`).

    The parameters' snapshot (``parameter_bytes``) is already allocated at construction. The Lanczos vectors
    are :func:`numerics.lanczos.basis_bytes`.
    """

    n: int
    n_probes: int
    itemsize: int
    parameter_bytes: int
    graph_bytes_per_sample: float
    graph_bytes_per_batch: float
    batch_sizes: tuple[int, ...]
    input_bytes_max: int
    cast_input_bytes: int
    product_bytes: int
    cached_graph_bytes: int | None
    paths: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_probes": self.n_probes,
            "itemsize": self.itemsize,
            "parameter_bytes": self.parameter_bytes,
            "graph_bytes_per_sample": self.graph_bytes_per_sample,
            "graph_bytes_per_batch": self.graph_bytes_per_batch,
            "n_batches": len(self.batch_sizes),
            "max_batch_size": max(self.batch_sizes),
            "input_bytes_max": self.input_bytes_max,
            "cast_input_bytes": self.cast_input_bytes,
            "product_bytes": self.product_bytes,
            "cached_graph_bytes": self.cached_graph_bytes,
            "paths": dict(self.paths),
        }


class HessianOperator(LinearOperator):
    r"""The Hessian of a model's dataset-averaged loss as a symmetric :class:`LinearOperator`.

    ``H = ∇²_θ (1/N) Σ_b n_b ℓ_b(θ)`` over the batches of ``data`` (module docstring), applied to ``(n, k)``
    blocks, ``n`` the number of selected parameters (flattened in selection order).

    Parameters
    ----------
    model:
        The network; never modified (module docstring).
    loss_fn:
        ``loss_fn(outputs, targets)``, a *mean*-reduction loss such as ``nn.CrossEntropyLoss()``. A loss with a
        ``reduction`` attribute is handled: ``"mean"`` is used as is; ``"sum"`` is divided by the batch size
        (so the per-sample loss is the sum over that sample's entries); ``"none"`` is averaged over all its
        entries (equal to ``"mean"`` for the torch losses). A callable without ``reduction`` must return the
        batch mean as a scalar. Each batch is weighted by its size ``n_b`` (the leading dimension), so
        class-weighted or ``ignore_index`` means are weighted by sample count, not by their own normaliser.
        An ``nn.Module`` loss is copied and cast to ``dtype``.
    data:
        A list/tuple of ``(inputs, targets)`` batches, or a re-iterable loader (e.g. a ``DataLoader``)
        yielding the *same* samples every pass: no augmentation, no ``drop_last`` with shuffling (the
        operator would change between Lanczos steps: docs/experiments.md §1.4, mistake 4). One-shot iterators are
        refused. Each pass's sample count is checked against the first pass.
    params:
        ``None`` (default: the prunable weights of Linear/Conv layers, BatchNorm and biases excluded, as in
        the papers' spectra: docs/experiments.md §1.3), a sequence of parameter names, or a predicate
        ``(name, parameter) -> bool`` over ``model.named_parameters()``. Other parameters are held fixed.
    hvp_method:
        The streaming product: ``"auto"`` (default: the faster of the two, measured at the first streaming
        product), ``"forward-over-reverse"`` or ``"double-backward"`` (module docstring).
    dtype:
        ``None``: the selected parameters' dtype; ``torch.float64`` computes in a float64 copy of all
        parameters, buffers, inputs and floating targets.
    cache_graph:
        ``"auto"`` (default): keep the first-order graphs when ``data`` is a list/tuple and they fit in
        ``cache_graph_max_bytes``, else stream. ``True``: always keep them (``data`` must be a list/tuple;
        not with ``hvp_method="forward-over-reverse"``). ``False``: always stream.
    cache_graph_max_bytes:
        The memory limit of ``cache_graph="auto"`` (default :data:`CACHE_GRAPH_AUTO_BYTES`).
    check_finite:
        Raise ``ValueError`` naming the column(s) of a non-finite ``V``, or the probe(s) and batch if a
        product is NaN or infinite (default True; ``False`` skips these checks).
    chunk_size:
        Probes per ``vmap`` chunk (forward-over-reverse; ``None``: all ``k`` at once), to bound memory.
    distributed:
        ``None`` (default): all-reduce across ranks iff ``torch.distributed`` is initialised; ``False``:
        never. ``process_group`` selects the group.

    Attributes
    ----------
    names:
        The selected parameter names, in the order of the flattened vector.
    n_products, n_matmat, n_data_passes, n_gradients:
        Cost counters: Hessian-vector products (one per probe), ``matmat`` calls, forward passes over the
        (local) data, full-data gradient evaluations. :meth:`cost` returns them as a dict.
    cached_graph_bytes:
        Bytes held by the cached path (measured at the build; ``None`` before it).
    hvp_choice:
        With ``hvp_method="auto"``, after the first streaming product: the seconds of one product by each
        method on (a slice of) the first batch, the chosen method, and the two products' largest relative
        difference.

    Examples
    --------
    The Hessian of ``½ (w·x − y)²`` averaged over samples is the second moment ``(1/N) Σ x xᵀ``:

    >>> model = nn.Linear(2, 1, bias=False)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]]); y = torch.zeros(2, 1)
    >>> H = HessianOperator(model, lambda out, t: 0.5 * ((out - t) ** 2).mean(), [(x, y)],
    ...                     dtype=torch.float64)
    >>> H.to_dense()
    tensor([[0.5000, 0.0000],
            [0.0000, 2.0000]], dtype=torch.float64)
    >>> H.hvp_path
    'cached double-backward'
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Sequence[tuple[torch.Tensor, torch.Tensor]] | Iterable[Any],
        params: ParamSelector = None,
        hvp_method: str = "auto",
        dtype: torch.dtype | None = None,
        *,
        cache_graph: bool | str = "auto",
        cache_graph_max_bytes: int = CACHE_GRAPH_AUTO_BYTES,
        check_finite: bool = True,
        chunk_size: int | None = None,
        distributed: bool | None = None,
        process_group: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        check_choice("hvp_method", hvp_method, _HVP_CHOICES)
        if chunk_size is not None:
            chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(f"distributed must be None, True or False, got distributed={distributed!r}")
        if not (cache_graph is True or cache_graph is False or (isinstance(cache_graph, str) and cache_graph == "auto")):
            raise ValueError(f"cache_graph must be True, False or 'auto', got cache_graph={cache_graph!r}")
        if cache_graph is True and hvp_method == "forward-over-reverse":
            raise ValueError(
                "cache_graph=True needs hvp_method='double-backward' or 'auto' (the cached path is double-backward), "
                f"got hvp_method={hvp_method!r}"
            )
        cache_graph_max_bytes = check_int("cache_graph_max_bytes", cache_graph_max_bytes, minimum=0)
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be a bool, got check_finite={check_finite!r}")

        self.names: list[str] = _select_parameters(model, params)
        named = dict(model.named_parameters())
        selected = [named[n] for n in self.names]
        dtypes = {p.dtype for p in selected}
        devices = {p.device for p in selected}
        if len(devices) != 1:
            raise ValueError(f"the selected parameters must share one device, got {sorted(map(str, devices))}")
        if dtype is None:
            if len(dtypes) != 1:
                raise TypeError(f"the selected parameters have mixed dtypes {sorted(map(str, dtypes))}; pass dtype")
            dtype = next(iter(dtypes))
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64 (or None), got dtype={dtype!r}")
        device = next(iter(devices))
        n = sum(p.numel() for p in selected)
        super().__init__((n, n), dtype=dtype, device=device, symmetric=True)

        self.hvp_method = hvp_method
        self.cache_graph = cache_graph
        self.cache_graph_max_bytes = cache_graph_max_bytes
        self.check_finite = check_finite
        self.chunk_size = chunk_size
        self._model = model
        self._loss_fn = copy.deepcopy(loss_fn).to(dtype) if isinstance(loss_fn, nn.Module) else loss_fn
        self._reduction = getattr(loss_fn, "reduction", None)
        if self._reduction not in (None, "mean", "sum", "none"):
            raise ValueError(f"loss_fn.reduction must be 'mean', 'sum' or 'none', got {self._reduction!r}")

        def snap(t: torch.Tensor) -> torch.Tensor:
            t = t.detach()
            return t.to(dtype=dtype, copy=True) if torch.is_floating_point(t) else t.clone()

        # The point θ at which H is taken, and everything held fixed, snapshotted so that the operator is a
        # fixed matrix even if the caller keeps training the model.
        self._theta: dict[str, torch.Tensor] = {name: snap(named[name]) for name in self.names}
        self._frozen: dict[str, torch.Tensor] = {
            name: snap(p) for name, p in named.items() if name not in self._theta
        }
        self._frozen.update({name: snap(b) for name, b in model.named_buffers()})

        self._data, self._is_sequence = self._check_data(data)
        self._n_samples: int | None = None
        if self._is_sequence:
            self._n_samples = sum(int(x.shape[0]) for x, _ in self._data)
        if self.cache_graph is True and not self._is_sequence:
            raise ValueError("cache_graph=True needs data as a list/tuple of batches, got a loader")
        # True/False: decided; None: "auto", decided at the first product by the measured graph size.
        self._use_cache: bool | None = (None if self._is_sequence else False) if cache_graph == "auto" else cache_graph
        # the streaming method; None: "auto", decided by timing at the first streaming product
        self._stream_method: str | None = None if hvp_method == "auto" else hvp_method
        self.cached_graph_bytes: int | None = None
        self.hvp_choice: dict[str, Any] | None = None

        if distributed is True and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise ValueError("distributed=True but torch.distributed is not initialised")
        self._distributed_flag = distributed
        self._group = process_group
        may_stream_fwd = hvp_method != "double-backward" and cache_graph is not True
        if self.distributed and may_stream_fwd and "torch._dynamo" not in sys.modules:
            warnings.warn(
                "torch.distributed was initialised before torch._dynamo was imported; the forward-over-reverse "
                "products import it, and with PyTorch 2.13 the process group then outlives destroy_process_group "
                "and can abort the process at exit: create the group with nets.limit.parallel.init_process_group "
                "(or import torch._dynamo first), or pass hvp_method='double-backward'",
                RuntimeWarning,
                stacklevel=2,
            )
        self._graphs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

        self.n_products = 0
        self.n_matmat = 0
        self.n_data_passes = 0
        self.n_gradients = 0

    # -- validation -------------------------------------------------------------------------------------
    @staticmethod
    def _check_data(data: Any) -> tuple[Any, bool]:
        if isinstance(data, torch.Tensor) or data is None:
            raise TypeError(
                f"data must be a list of (inputs, targets) batches or a re-iterable loader, got "
                f"{type(data).__name__}"
            )
        if isinstance(data, (list, tuple)):
            if len(data) == 0:
                raise ValueError("data must contain at least one batch, got an empty sequence")
            return [_check_batch(b, i) for i, b in enumerate(data)], True
        if not isinstance(data, Iterable):
            raise TypeError(f"data must be a list of batches or a re-iterable loader, got {type(data).__name__}")
        if iter(data) is data:
            raise TypeError(
                "data is a one-shot iterator; pass a list of batches or a re-iterable loader (each product "
                "needs a full pass over the same data)"
            )
        if (
            isinstance(data, torch.utils.data.DataLoader)
            and data.drop_last
            and isinstance(data.sampler, torch.utils.data.RandomSampler)
        ):
            raise ValueError(
                    "a DataLoader with shuffle=True and drop_last=True drops different samples every pass, so "
                    "the Hessian would change between products; use drop_last=False"
                )
        return data, False

    # -- properties -------------------------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        """Whether products are all-reduced across ``torch.distributed`` ranks."""
        if self._distributed_flag is False:
            return False
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    @property
    def cached(self) -> bool | None:
        """Whether products use the cached first-order graphs (``None``: ``"auto"``, not decided until the first
        product)."""
        return self._use_cache

    @property
    def hvp_path(self) -> str | None:
        """The product path taken: ``"cached double-backward"`` (first-order graphs kept), or the streaming
        method (``"forward-over-reverse"`` / ``"double-backward"``, measured under ``hvp_method="auto"``);
        ``None`` while undecided (before the first product)."""
        if self._use_cache is None:
            return None
        return "cached double-backward" if self._use_cache else self._stream_method

    @property
    def n_samples(self) -> int | None:
        """``N`` on this rank (known after the first pass for a loader)."""
        return self._n_samples

    def cost(self) -> dict[str, int]:
        """Cost counters in model-independent units (products, calls, data passes), to report beside seconds.

        Not counted: the timing products of ``hvp_method="auto"`` (a warm-up and one timed product of each
        streaming method on at most 64 samples of the first batch, recorded in :attr:`hvp_choice` with their
        seconds), which are a fixed cost independent of the number of products."""
        return {
            "hvps": self.n_products,
            "matmat_calls": self.n_matmat,
            "data_passes": self.n_data_passes,
            "gradients": self.n_gradients,
        }

    def reset_counters(self) -> None:
        """Zero the cost counters (e.g. to account for one phase of a computation on its own)."""
        self.n_products = self.n_matmat = self.n_data_passes = self.n_gradients = 0

    # -- the batch objective ----------------------------------------------------------------------------
    def _cast(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, dtype=self.dtype if torch.is_floating_point(x) else None, non_blocking=True)
        y = y.to(self.device, dtype=self.dtype if torch.is_floating_point(y) else None, non_blocking=True)
        return x, y

    def _batches(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        count = 0
        for i, batch in enumerate(self._data):
            x, y = batch if self._is_sequence else _check_batch(batch, i)
            x, y = self._cast(x, y)
            count += int(x.shape[0])
            yield i, x, y
        if count == 0:
            raise ValueError("data yielded no batch")
        if self._n_samples is None:
            self._n_samples = count
        elif count != self._n_samples:
            raise ValueError(
                f"data yielded {count} samples on this pass but {self._n_samples} before; the data must be "
                "the same on every pass"
            )

    def _batch_loss(self, theta: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch mean loss ``ℓ_b(θ)`` (reduction handled as documented in the class docstring)."""
        out = functional_call(self._model, {**theta, **self._frozen}, (x,))
        val = self._loss_fn(out, y)
        if not isinstance(val, torch.Tensor):
            raise TypeError(f"loss_fn must return a tensor, got {type(val).__name__}")
        if self._reduction == "sum":
            return val / x.shape[0]
        if self._reduction == "none":
            return val.mean()
        if val.ndim != 0:
            raise ValueError(
                f"loss_fn must return a scalar batch mean (reduction='mean'), got shape {tuple(val.shape)}"
            )
        return val

    def _record_non_finite(self, hb: torch.Tensor, batch: int, errors: list[str]) -> None:
        """Raise on a non-finite product; under torch.distributed record it instead, so that every rank
        reaches the all-reduce (and then raises) rather than leaving the others waiting."""
        if _all_finite(hb):
            return
        # _all_finite was False, so at least one column has a non-finite entry.
        probes = torch.nonzero(~torch.isfinite(hb).all(dim=0)).reshape(-1).tolist()
        msg = f"non-finite Hessian-vector product for probe(s) {probes} on batch {batch}"
        if not self.distributed:
            raise ValueError(msg)
        errors.append(msg)

    def _block(self, k: int) -> torch.Tensor:
        """A zero ``(n, k)`` block whose columns are contiguous (module docstring, "Layout")."""
        return torch.zeros((k, self.shape[0]), dtype=self.dtype, device=self.device).T

    # -- products ---------------------------------------------------------------------------------------
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        if self.check_finite and not _all_finite(V):
            bad = ~torch.isfinite(V).all(dim=0)
            raise ValueError(f"V has non-finite entries in column(s) {torch.nonzero(bad).reshape(-1).tolist()}")
        k = V.shape[1]
        like = list(self._theta.values())
        errors: list[str] = []
        with eval_mode(self._model):
            if self._use_cache is None:
                self._use_cache = self._cached_graphs() is not None
            if self._use_cache:
                acc = self._cached_product(V, like, errors)
            else:
                acc = self._block(k)
                self.n_data_passes += 1
                for i, x, y in self._batches():
                    hb = self._streaming_product(x, y, V, like)
                    if self.check_finite:
                        self._record_non_finite(hb, i, errors)
                    acc.add_(hb, alpha=float(x.shape[0]))
                    del hb
        first_bad = errors[0] if errors else None
        total = torch.tensor(float(self._n_samples), dtype=torch.float64, device=self.device)
        if self.distributed:
            torch.distributed.all_reduce(acc, group=self._group)
            torch.distributed.all_reduce(total, group=self._group)
        out = acc.div_(total.to(acc.dtype))
        if self.check_finite:
            if first_bad is not None:
                raise ValueError(first_bad)
            if not _all_finite(out):
                raise ValueError(
                    "non-finite Hessian-vector product after averaging over batches (overflow, or a non-finite "
                    "product on another rank)"
                )
        self.n_matmat += 1
        self.n_products += k
        return out

    def _product_by(self, method: str, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor,
                    like: list[torch.Tensor]) -> torch.Tensor:
        """``∇²ℓ_b V`` for one batch by a streaming ``method``."""
        if method == "forward-over-reverse":
            return self._forward_over_reverse(x, y, V, like)
        leaves, _, grads = self._loss_and_gradient(x, y, create_graph=True)
        return self._double_backward(leaves, grads, V, like, retain=False)

    def _streaming_product(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor,
                           like: list[torch.Tensor]) -> torch.Tensor:
        if self._stream_method is None:
            return self._choose_method(x, y, V, like)
        return self._product_by(self._stream_method, x, y, V, like)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _choose_method(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor,
                       like: list[torch.Tensor]) -> torch.Tensor:
        """``hvp_method="auto"``: time one product of each method on a slice of this (first) batch, keep the faster,
        and return this batch's product by it.

        The slice has at most :data:`_CHOICE_SAMPLES` samples, so the measurement costs at most two small products
        (plus a one-sample warm-up of each: lazy initialisation of torch.func and of the autograd engine would
        otherwise be charged to whichever runs first) and its memory stays bounded whatever the batch size
        (forward-over-reverse holds a tangent of the graph per probe). A method that raises a
        ``RuntimeError``/``NotImplementedError`` here (an op without a forward-mode or batching rule, or out of
        memory) is skipped. Both products are exact; their relative difference is recorded as a parity check.
        """
        b = min(int(x.shape[0]), _CHOICE_SAMPLES)
        xs, ys = x[:b], y[:b]
        seconds: dict[str, float] = {}
        outs: dict[str, torch.Tensor] = {}
        failures: dict[str, str] = {}
        for method in HVP_METHODS:
            try:
                self._product_by(method, xs[:1], ys[:1], V, like)
                self._sync()
                t0 = time.perf_counter()
                outs[method] = self._product_by(method, xs, ys, V, like)
                self._sync()
                seconds[method] = time.perf_counter() - t0
            except (RuntimeError, NotImplementedError) as err:
                failures[method] = f"{type(err).__name__}: {err}"
                logger.info("hvp_method='auto': %s failed on the first batch (%s)", method, failures[method])
        if not outs:
            raise RuntimeError(f"hvp_method='auto': every product method failed on the first batch: {failures}")
        best = min(seconds, key=seconds.__getitem__)
        diff = None
        if len(outs) == 2:
            a, c = outs["double-backward"], outs["forward-over-reverse"]
            scale = float(a.abs().max())
            diff = float((a - c).abs().max()) / scale if scale > 0 else float((a - c).abs().max())
        self._stream_method = best
        self.hvp_choice = {
            "chosen": best,
            "seconds": seconds,
            "samples": b,
            "n_probes": int(V.shape[1]),
            "max_rel_diff": diff,
            "failures": failures,
        }
        logger.info("hvp_method='auto': %s (one product on %d samples: %s; max relative difference %s)",
                    best, b, {m: round(t, 4) for m, t in seconds.items()}, diff)
        if b == int(x.shape[0]):
            return outs[best]
        del outs
        return self._product_by(best, x, y, V, like)

    def _forward_over_reverse(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor, like: list[torch.Tensor]) -> torch.Tensor:
        names = self.names
        theta = self._theta

        def grad_fn(th: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return grad(self._batch_loss)(th, x, y)

        def hvp(v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return jvp(grad_fn, (theta,), (v,))[1]

        Vd = dict(zip(names, unflatten_like(V, like)))
        out = vmap(hvp, chunk_size=self.chunk_size)(Vd)
        k = V.shape[1]
        return torch.cat([out[nm].reshape(k, -1) for nm in names], dim=1).T

    def _loss_and_gradient(
        self, x: torch.Tensor, y: torch.Tensor, create_graph: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """Fresh leaves ``θ``, the batch loss ``ℓ_b(θ)`` and its gradient ``∇ℓ_b`` (with its graph kept when
        ``create_graph``: the first-order graph of the double-backward product)."""
        leaves = {nm: t.detach().requires_grad_(True) for nm, t in self._theta.items()}
        with torch.enable_grad():
            loss = self._batch_loss(leaves, x, y)
            grads = torch.autograd.grad(
                loss, list(leaves.values()), create_graph=create_graph, materialize_grads=True
            )
        return list(leaves.values()), loss, list(grads)

    def _double_backward(
        self,
        leaves: list[torch.Tensor],
        grads: list[torch.Tensor],
        V: torch.Tensor,
        like: list[torch.Tensor],
        retain: bool,
    ) -> torch.Tensor:
        k = V.shape[1]
        live = [j for j, g in enumerate(grads) if g.requires_grad]
        out = self._block(k)
        if not live:  # the loss is at most linear in θ: H = 0
            return out
        rows = out.T  # (k, n), row c = product of probe c, written in place by cat(out=...)
        pieces = unflatten_like(V, like)
        for c in range(k):
            with torch.enable_grad():
                hv = torch.autograd.grad(
                    [grads[j] for j in live],
                    leaves,
                    grad_outputs=[pieces[j][c] for j in live],
                    retain_graph=retain or c < k - 1,
                    materialize_grads=True,
                )
            torch.cat([h.reshape(-1) for h in hv], out=rows[c])
            del hv
        return out

    def _owned_storages(self, leaves: list[torch.Tensor]) -> set[int]:
        """Storages that exist whether or not graphs are cached: the parameter snapshot (and leaves sharing it),
        the frozen tensors and the caller's own data tensors. A cast copy of an input is *not* owned: the cache
        would keep it alive."""
        owned = {t.untyped_storage().data_ptr() for t in (*leaves, *self._frozen.values())}
        if self._is_sequence:
            for x, y in self._data:
                owned.update((x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()))
        return owned

    def _graph(
        self, leaves: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, owned: set[int], seen: dict[int, int]
    ) -> list[torch.Tensor]:
        """The first-order gradient ``∇ℓ_b`` with its graph, recording in ``seen`` the bytes of every storage the
        graph saves that is not in ``owned`` (``saved_tensors_hooks``; each storage once)."""

        def pack(t: torch.Tensor) -> torch.Tensor:
            ptr = t.untyped_storage().data_ptr()
            if ptr not in owned:
                seen[ptr] = t.untyped_storage().nbytes()
            return t

        theta = dict(zip(self.names, leaves))
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self._batch_loss(theta, x, y)
            return list(torch.autograd.grad(loss, leaves, create_graph=True, materialize_grads=True))

    def _cached_graphs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """Build once: shared leaves ``θ`` and the weighted sum ``Σ_b n_b ∇ℓ_b`` of the batches' first-order
        gradients with their graphs, so that a product over all batches is one second-order backward call per
        probe. The per-batch gradients are not kept (module docstring).

        :attr:`cached_graph_bytes` counts everything the cache keeps alive: the saved tensors (not owned, see
        :meth:`_owned_storages`) and the summed gradient. Under ``cache_graph="auto"`` the build stops as soon
        as that total passes ``cache_graph_max_bytes`` and ``None`` is returned (the graphs are released; the
        streaming path is used)."""
        if self._graphs is not None:
            return self._graphs
        auto = self.cache_graph == "auto"
        self.n_data_passes += 1
        leaves = [t.detach().requires_grad_(True) for t in self._theta.values()]
        owned = self._owned_storages(leaves)
        seen: dict[int, int] = {}
        summed = self.shape[0] * (torch.finfo(self.dtype).bits // 8)
        combined: list[torch.Tensor] | None = None
        n_batches = 0
        for _, x, y in self._batches():
            grads = self._graph(leaves, x, y, owned, seen)
            n_b = float(x.shape[0])
            with torch.enable_grad():
                weighted = [g * n_b for g in grads]
                combined = weighted if combined is None else [c + w for c, w in zip(combined, weighted)]
            del grads, weighted
            n_batches += 1
            self.cached_graph_bytes = sum(seen.values()) + summed
            if auto and self.cached_graph_bytes > self.cache_graph_max_bytes:
                logger.info(
                    "cache_graph='auto': the cached graphs exceed %d bytes after %d batch(es); streaming",
                    self.cache_graph_max_bytes, n_batches,
                )
                return None
        if combined is None:  # unreachable: _batches raises on empty data
            raise ValueError("data yielded no batch")
        logger.info("cached first-order graphs of %d batch(es): %d bytes", n_batches, self.cached_graph_bytes)
        self._graphs = (leaves, combined)
        return self._graphs

    def _cached_product(self, V: torch.Tensor, like: list[torch.Tensor], errors: list[str]) -> torch.Tensor:
        """``Σ_b n_b ∇²ℓ_b V`` from the cached graphs; on a non-finite result, locate the batch by rebuilding
        each batch's graph (one more data pass, only then)."""
        graphs = self._cached_graphs()
        if graphs is None:  # unreachable: only "auto" gives up, and it then never calls this
            raise RuntimeError("cached graphs unavailable")
        leaves, combined = graphs
        acc = self._double_backward(leaves, combined, V, like, retain=True)
        if self.check_finite and not _all_finite(acc):
            self.n_data_passes += 1
            for i, x, y in self._batches():
                self._record_non_finite(self._product_by("double-backward", x, y, V, like), i, errors)
            if not errors:  # finite per batch: the weighted sum overflowed
                self._record_non_finite(acc, -1, errors)
        return acc

    # -- memory -----------------------------------------------------------------------------------------
    def estimate_memory(self, n_probes: int) -> HessianMemory:
        """Predict the memory of every product path before any product (:class:`HessianMemory`).

        Cost: the first-order graphs of a one- and a two-sample slice of the first batch (a loader yields its
        first batch once); no cost counter changes. For a loader the batch sizes are not known without a pass,
        so the first batch's size stands for every batch and ``cached_graph_bytes`` is ``None`` (a loader is
        never cached).
        """
        k = check_int("n_probes", n_probes, minimum=1)
        s = torch.finfo(self.dtype).bits // 8
        n = self.shape[0]
        if self._is_sequence:
            sizes = tuple(int(x.shape[0]) for x, _ in self._data)
            first_x, first_y = self._data[0]
            cast = self._cast_bytes()
        else:
            first = next(iter(self._data))
            first_x, first_y = _check_batch(first, 0)
            sizes = (int(first_x.shape[0]),)
            cast = 0
        leaves = [t.detach().requires_grad_(True) for t in self._theta.values()]
        owned = self._owned_storages(leaves)
        measured = {}
        with eval_mode(self._model):
            for b in sorted({1, min(2, int(first_x.shape[0]))}):
                x, y = self._cast(first_x[:b], first_y[:b])
                owned_b = owned | {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
                seen: dict[int, int] = {}
                self._graph(leaves, x, y, owned_b, seen)
                measured[b] = sum(seen.values())
        if len(measured) == 2:
            per_sample = float(measured[2] - measured[1])
            per_batch = float(measured[1]) - per_sample
        else:  # one-sample batches: nothing to separate
            per_sample, per_batch = float(measured[1]), 0.0
        per_sample = max(per_sample, 0.0)
        per_batch = max(per_batch, 0.0)

        def g(b: int) -> int:
            return int(round(per_batch + per_sample * b))

        g_max = g(max(sizes))
        x_max = max(sizes) * (first_x[:1].numel() * s)  # inputs as the operator sees them (its dtype)
        product = (2 * k + 4) * n * s
        params = sum(t.numel() * t.element_size() for t in (*self._theta.values(), *self._frozen.values()))
        cached = sum(g(b) for b in sizes) + n * s + cast if self._is_sequence else None
        paths = {
            "double-backward": 2 * g_max + x_max + product,
            "forward-over-reverse": (1 + (k if self.chunk_size is None else min(k, self.chunk_size))) * (g_max + x_max)
            + product,
        }
        if cached is not None:
            paths["cached double-backward"] = cached + g_max + product
        paths = {p: v + _PATH_OVERHEAD_BYTES[p] for p, v in paths.items()}
        return HessianMemory(
            n=n, n_probes=k, itemsize=s, parameter_bytes=params, graph_bytes_per_sample=per_sample,
            graph_bytes_per_batch=per_batch, batch_sizes=sizes, input_bytes_max=x_max, cast_input_bytes=cast,
            product_bytes=product, cached_graph_bytes=cached, paths=paths,
        )

    def _cast_bytes(self) -> int:
        """Bytes of the input/target copies that casting to the operator's dtype/device creates (list data)."""
        total = 0
        for x, y in self._data:
            for t in (x, y):
                if t.device != self.device or (torch.is_floating_point(t) and t.dtype != self.dtype):
                    itemsize = (torch.finfo(self.dtype).bits // 8) if torch.is_floating_point(t) else t.element_size()
                    total += t.numel() * itemsize
        return total

    # -- gradients --------------------------------------------------------------------------------------
    def value_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The averaged loss ``L(θ)`` and its gradient ``∇L(θ)`` (flat, length ``n``): one data pass.

        Same objective, weighting, eval mode and all-reduce as the products; counted in ``n_gradients``.
        """
        acc = torch.zeros(self.shape[0], dtype=self.dtype, device=self.device)
        val = torch.zeros((), dtype=torch.float64, device=self.device)
        errors: list[str] = []
        with eval_mode(self._model):
            self.n_data_passes += 1
            for i, x, y in self._batches():
                _, loss, g = self._loss_and_gradient(x, y, create_graph=False)
                flat = torch.cat([t.reshape(-1) for t in g])
                if self.check_finite and not bool(torch.isfinite(flat).all()):
                    if not self.distributed:
                        raise ValueError(f"non-finite gradient on batch {i}")
                    errors.append(f"non-finite gradient on batch {i}")
                acc.add_(flat, alpha=float(x.shape[0]))
                val += float(x.shape[0]) * loss.detach().to(torch.float64)
        total = torch.tensor(float(self._n_samples), dtype=torch.float64, device=self.device)
        if self.distributed:
            torch.distributed.all_reduce(acc, group=self._group)
            torch.distributed.all_reduce(val, group=self._group)
            torch.distributed.all_reduce(total, group=self._group)
        if self.check_finite and (errors or not bool(torch.isfinite(acc).all())):
            raise ValueError(errors[0] if errors else "non-finite gradient after averaging (overflow, or another rank)")
        self.n_gradients += 1
        return float(val / total), acc / total.to(acc.dtype)

    def gradient(self) -> torch.Tensor:
        """``∇L(θ)``, flat (see :meth:`value_and_gradient`)."""
        return self.value_and_gradient()[1]
