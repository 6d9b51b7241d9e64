"""Stage 2 of the pipeline: the Hessian spectrum of the prunable weights by SLQ.

The operator is :class:`nets.hessian.HessianOperator` (prunable weights; every other parameter and buffer
fixed; eval mode; EXPERIMENTS: BN parameters excluded from ``H``) of the *same* loss as every other stage, over
the fixed, un-augmented training samples (all of them, or a fixed random subset of ``samples`` of them drawn
once from the run's generator). SLQ runs ``n_probes`` Lanczos recurrences of ``steps`` steps
(:func:`numerics.slq.slq`; top-``deflate`` deflation if asked). The result is the :class:`numerics.slq.SLQResult`
itself: the spectrum with the path and cost of the products actually taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.data import Batches, subset_batches
from nets.hessian import HVP_METHODS, HessianOperator
from nets.limit.data import PipelineData
from numerics.operators import LinearOperator
from numerics.slq import SLQResult, slq
from theory.spectrum import Spectrum
from theory.validation import check_choice, check_int

__all__ = ["SpectrumConfig", "SpectrumSummary", "hessian_operator", "estimate_spectrum", "summarize_spectrum",
           "hessian_batches", "hessian_samples",
           "resolve_reorth", "DEFAULT_SLQ_STEPS", "DEFAULT_SLQ_PROBES", "MIN_RELIABLE_STEPS", "REORTH_AUTO_MAX_BYTES"]

#: Lanczos steps per probe (the authors' 128).
DEFAULT_SLQ_STEPS = 128
#: SLQ probes. The authors used 1; 4 gives a finite standard error of ρ* (and with it our bands).
DEFAULT_SLQ_PROBES = 4
#: Fewer steps than this resolve the spectrum too coarsely for the reported bands (a warning; ours: a
#: quadrature of m nodes integrates polynomials of degree ≤ 2m − 1 exactly, and the pruning functionals are
#: sharp near 0 on the scale of ε/R²).
MIN_RELIABLE_STEPS = 20
#: ``reorth="auto"`` keeps a float64 basis with full reorthogonalisation up to this many bytes (ours): below it
#: the Gram–Schmidt passes cost less than the products and the nodes are Ritz values without ghosts (the run is
#: then also reproducible across process counts to ~1e-12); above it the basis-free recurrence in float64 runs
#: in O(n_probes · N) memory (bench/spectrum.py measures both).
REORTH_AUTO_MAX_BYTES = 64 * 2**20

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SpectrumConfig:
    """SLQ and operator settings (validated here, once).

    ``steps``, ``n_probes``, ``probe`` (``"rademacher"``/``"gaussian"``), ``deflate`` (top-k eigenpairs first);
    ``hvp_method`` (the streaming product; ``"auto"``: the faster of the two, measured), ``hvp_dtype`` (None: the
    model's), ``chunk_size`` (probes per vmap chunk),
    ``cache_graph`` (``"auto"``: keep the first-order graphs when they fit in memory), ``batch_size`` (of the
    Hessian data; only partitions the average), ``samples`` (a fixed random subset of the training samples;
    None: all); ``reorth`` of the Lanczos basis (``"auto"``: ``"full"`` when its float64 basis fits in
    :data:`REORTH_AUTO_MAX_BYTES`, else the basis-free ``"none"``; or ``"none"``/``"partial"``/``"full"``:
    :func:`numerics.slq.slq`) and ``basis_dtype`` of the Lanczos vectors (default float64; None: the operator's).
    """

    steps: int = DEFAULT_SLQ_STEPS
    n_probes: int = DEFAULT_SLQ_PROBES
    probe: str = "rademacher"
    deflate: int | None = None
    hvp_method: str = "auto"
    hvp_dtype: torch.dtype | None = None
    chunk_size: int | None = None
    cache_graph: bool | str = "auto"
    batch_size: int = 1024
    samples: int | None = None
    reorth: str = "auto"
    basis_dtype: torch.dtype | None = torch.float64

    def __post_init__(self) -> None:
        check_int("steps", self.steps, minimum=1)
        check_int("n_probes", self.n_probes, minimum=1)
        check_choice("probe", self.probe, ("rademacher", "gaussian"))
        if self.deflate is not None:
            check_int("deflate", self.deflate, minimum=1)
        check_choice("hvp_method", self.hvp_method, ("auto", *HVP_METHODS))
        if self.hvp_dtype is not None:
            check_choice("hvp_dtype", self.hvp_dtype, (torch.float32, torch.float64))
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size, minimum=1)
        check_choice("cache_graph", self.cache_graph, (True, False, "auto"))
        check_int("batch_size", self.batch_size, minimum=1)
        if self.samples is not None:
            check_int("samples", self.samples, minimum=1)
        check_choice("reorth", self.reorth, ("auto", "none", "partial", "full"))
        if self.basis_dtype is not None:
            check_choice("basis_dtype", self.basis_dtype, (torch.float32, torch.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "n_probes": self.n_probes, "probe": self.probe, "deflate": self.deflate,
                "hvp_method": self.hvp_method, "hvp_dtype": None if self.hvp_dtype is None else str(self.hvp_dtype),
                "chunk_size": self.chunk_size, "cache_graph": self.cache_graph, "batch_size": self.batch_size,
                "samples": self.samples, "reorth": self.reorth,
                "basis_dtype": None if self.basis_dtype is None else str(self.basis_dtype)}


@dataclass(frozen=True)
class SpectrumSummary:
    """Summary numbers of a :class:`~theory.spectrum.Spectrum` (pooled over probes where it says so).

    ``ritz_min``/``ritz_max``: the extreme Ritz values over all probes; ``negative_mass`` ±
    ``negative_mass_stderr``: the estimated fraction of eigenvalues ``< 0`` (the standard error is across probes
    only); ``negative_mass_bounds``: the Chebyshev–Markov–Stieltjes interval that also covers the quadrature
    error (:meth:`theory.spectrum.Spectrum.negative_mass_bounds`); ``trace`` ± ``trace_stderr``: ``tr H``
    (exact for polynomials of degree ≤ 2m − 1 per probe); ``mean_eigenvalue`` = ``tr H / n``; ``steps``: the
    longest recurrence (nodes per probe).
    """

    dim: int
    n_probes: int
    steps: int
    ritz_min: float
    ritz_max: float
    negative_mass: float
    negative_mass_stderr: float
    negative_mass_bounds: tuple[float, float]
    trace: float
    trace_stderr: float
    mean_eigenvalue: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def summarize_spectrum(spectrum: Spectrum) -> SpectrumSummary:
    """Extreme Ritz values, negative mass and trace (with standard errors) of a spectrum.

    >>> s = summarize_spectrum(Spectrum.from_eigenvalues([-1.0, 1.0, 3.0]))
    >>> s.ritz_min, s.ritz_max, round(s.negative_mass, 6), s.trace
    (-1.0, 3.0, 0.333333, 3.0)
    """
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a theory.spectrum.Spectrum, got {type(spectrum).__name__}")
    x, _ = spectrum.atoms()
    neg, neg_se = spectrum.negative_mass()
    tr, tr_se = spectrum.trace(lambda t: t)
    steps = int((spectrum.weights > 0).sum(axis=1).max())
    return SpectrumSummary(spectrum.dim, spectrum.n_probes, steps, float(x.min()), float(x.max()), neg, neg_se,
                           spectrum.negative_mass_bounds(), tr, tr_se, tr / spectrum.dim)


def hessian_samples(data: PipelineData, config: SpectrumConfig) -> int:
    """How many training samples the Hessian averages over: all, or ``config.samples`` when fewer."""
    return data.n_train if config.samples is None else min(config.samples, data.n_train)


def hessian_batches(data: PipelineData, config: SpectrumConfig, generator: torch.Generator) -> Batches:
    """The Hessian data: all training samples in order, or the fixed subset of ``config.samples`` of them
    (drawn from ``generator``, the same on every rank); under ``torch.distributed`` this rank's contiguous
    shard of them (:func:`nets.limit.parallel.shard_batches`), whose products the operator all-reduces."""
    from nets.limit.parallel import shard_batches

    batches = data.train_batches(config.batch_size)
    if config.samples is not None and config.samples < data.n_train:
        batches = subset_batches(batches, config.samples, config.batch_size, generator=generator)
    return shard_batches(batches, config.batch_size)


def hessian_operator(model: nn.Module, batches: Batches, data: PipelineData, config: SpectrumConfig
                     ) -> HessianOperator:
    """The Hessian of the run's loss over ``batches`` w.r.t. the prunable weights (module docstring)."""
    return HessianOperator(model, data.loss_fn, batches, hvp_method=config.hvp_method, dtype=config.hvp_dtype,
                           chunk_size=config.chunk_size, cache_graph=config.cache_graph)


class _Progress(LinearOperator):
    """Reports each ``matmat`` call to ``progress("spectrum", calls, total)``; forwards cost and path."""

    def __init__(self, op: HessianOperator, progress: Progress, total: int) -> None:
        super().__init__(op.shape, dtype=op.dtype, device=op.device, symmetric=op.symmetric)
        self._op, self._progress, self._total, self._calls = op, progress, total, 0

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        out = self._op.matmat(V)
        self._calls += 1
        self._progress("spectrum", min(self._calls, self._total), self._total)
        return out

    def cost(self) -> dict[str, int]:
        return self._op.cost()

    @property
    def hvp_path(self) -> str | None:
        return self._op.hvp_path


def estimate_spectrum(operator: HessianOperator, config: SpectrumConfig, generator: torch.Generator,
                      progress: Progress | None = None) -> SLQResult:
    """SLQ of ``operator`` with ``config``; ``steps`` is capped at ``N − deflate`` (``steps = N`` is exact)."""
    n = operator.shape[0]
    deflate = config.deflate
    if deflate is not None and deflate >= n:
        raise ValueError(f"deflate must be smaller than the number of prunable weights N={n}, got deflate={deflate}")
    steps = min(config.steps, n - (deflate or 0))
    target: Any = operator if progress is None else _Progress(operator, progress, steps)
    return slq(target, steps=steps, n_probes=config.n_probes, generator=generator, probe=config.probe,
               deflate=deflate, reorth=resolve_reorth(config, n, steps, operator.dtype),
               accumulate_dtype=config.basis_dtype)


def resolve_reorth(config: SpectrumConfig, n: int, steps: int, operator_dtype: torch.dtype) -> str:
    """The reorthogonalisation ``config.reorth`` runs on ``n`` weights: ``"auto"`` is ``"full"`` when the stored
    basis (:func:`numerics.lanczos.basis_bytes`) fits in :data:`REORTH_AUTO_MAX_BYTES`, else ``"none"``."""
    if config.reorth != "auto":
        return config.reorth
    from numerics.lanczos import basis_bytes

    need = basis_bytes(n, steps=steps, n_probes=config.n_probes, reorth="full",
                       dtype=config.basis_dtype or operator_dtype, operator_dtype=operator_dtype)
    return "full" if need <= REORTH_AUTO_MAX_BYTES else "none"


def probe_spread(spectrum: Spectrum, f: Callable[[np.ndarray], np.ndarray]) -> float:
    """Standard deviation across probes of ``Σ_k τ f(θ)`` (0 for an exact spectrum or a single probe)."""
    vals = spectrum.per_probe(f)
    return 0.0 if spectrum.exact or vals.size < 2 else float(vals.std(ddof=1))
