"""The pruning-limit pipeline: predicted vs actual pruning limit of a trained network.

:func:`estimate_pruning_limit` takes a trained classifier and its data and returns one
:class:`LimitResult` holding

1. the tolerance ``ε`` (default: the standard deviation of the per-minibatch training loss of the dense
   model, batches of 128, eval mode, un-augmented data; MATH.md §2, the authors' choice) and the dense
   training loss ``L(w*)``;
2. the Hessian spectrum of the prunable weights (:class:`nets.hessian.HessianOperator` over the fixed,
   un-augmented training batches; SLQ, :func:`numerics.slq.slq`);
3. the predicted limit ``ρ*`` with our bands by both methods of :func:`theory.limits.pruning_limit`:
   ``"free"`` (our free-probability threshold, the default) and ``"flat"`` (the authors' formula);
4. the *actual* limit from a sweep of global one-shot magnitude pruning without fine-tuning (LOMP,
   :func:`nets.prune.magnitude_sweep`: pruned copies evaluated in memory, nothing saved per level) under
   two criteria: training loss ``≤ L(w*) + ε`` (the theory's) and test accuracy ``≥ dense − tolerance``;
   the authors' criterion (test accuracy *strictly above* the dense accuracy) is recorded beside them;
5. on small models (``N ≤ exact_max_n`` prunable weights; the digits default), the dense float64 Hessian and
   the exact quadratic-model threshold of :class:`theory.quadratic.QuadraticModel` (optimal compensation,
   Schur complements), the uncompensated quadratic threshold (what the LOMP sweep does, in the quadratic
   model), the limits predicted from the *exact* eigenvalues, and the distance of the SLQ spectrum to them:
   together they show how far the network departs from the quadratic, random-eigenbasis model;
6. stage timings and costs in HVPs / gradient evaluations / forward passes.

Naming (MATH.md §2): ``kept_fraction`` ``ρ = k/N`` (the final paper's "pruning ratio"), ``removed_fraction``
``1 − ρ`` (what the authors' code prints). Every field says which one it is.

The caller's model is never changed: the pipeline works on a deep copy (moved to ``device``).
The library never prints; progress goes to an optional ``progress(stage, done, total)`` callback.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nets.data import DataSplit, fixed_batches
from nets.hessian import HVP_METHODS, HessianOperator, eval_mode
from nets.params import copy_model, count_parameters, flatten, prunable_parameters
from nets.train import PAPER_CONFIGS, TrainConfig, evaluate, paper_config, train
from nets.io import atomic_write_json, jsonable
from numerics.operators import LinearOperator
from numerics.slq import slq
from theory.spectrum import Spectrum
from theory.limits import METHODS, NEGATIVE_POLICIES, PruningLimit, pruning_limit

__all__ = [
    "LimitResult",
    "ActualLimit",
    "EpsEstimate",
    "SpectrumSummary",
    "QuadraticComparison",
    "estimate_pruning_limit",
    "dense_loss_std",
    "hessian_spectrum",
    "hessian_batches",
    "summarize_spectrum",
    "actual_limit",
    "train_default_model",
    "default_train_config",
    "load_state_dict",
    "default_kept_fractions",
    "DEFAULT_EPS_BATCH_SIZE",
    "DEFAULT_SLQ_STEPS",
    "DEFAULT_SLQ_PROBES",
    "DEFAULT_ACCURACY_TOLERANCE",
    "DEFAULT_EXACT_MAX_N",
    "DIGITS_TRAIN_DEFAULTS",
]

logger = logging.getLogger(__name__)

#: Batch size of the per-minibatch training-loss standard deviation that defines the default ``ε``
#: (the authors' 128, MATH.md §2).
DEFAULT_EPS_BATCH_SIZE = 128
#: Lanczos steps per probe (EXPERIMENTS.md: the authors' 128).
DEFAULT_SLQ_STEPS = 128
#: SLQ probes. The authors used 1; we default to 4 so that the SLQ standard error of ``ρ*`` (and with it our
#: bands) is finite: with one probe it is unknown and the bands widen to [0, 1].
DEFAULT_SLQ_PROBES = 4
#: Test-accuracy tolerance of the accuracy criterion (ours: one percentage point).
DEFAULT_ACCURACY_TOLERANCE = 0.01
#: Largest number of prunable weights for which the dense Hessian and the exact quadratic threshold are
#: computed by default (a 5000 × 5000 float64 matrix is 200 MB and N HVPs).
DEFAULT_EXACT_MAX_N = 5000
#: Batch size of the Hessian data (it only partitions the full-data average; larger is faster).
DEFAULT_HESSIAN_BATCH_SIZE = 1024

#: The default digits run (ours): the small MLP (64→32→10, N = 2368 prunable weights) trained with the
#: paper's SGD recipe (momentum 0.9, batch 128, constant lr, ℓ1 over all parameters), but with a larger
#: λ₁ = 1e-3 and lr 0.05 for 60 epochs: the paper's λ₁ (2e-5–1e-4) is tuned for 10⁶–10⁷-weight networks
#: and 200 CIFAR epochs, and on this 2410-parameter net leaves the weight distribution nearly unchanged
#: in a run this short; with 1e-3 about half of the weights end below 1e-3 in magnitude, as ℓ1 training
#: intends, and the test accuracy stays ≈ 97 %.
DIGITS_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 60, "lr": 0.05, "l1": 1e-3, "batch_size": 128}

Progress = Callable[[str, int, int], None]


# ----------------------------------------------------------------------------------------------- helpers
def _limit_to_dict(lim: PruningLimit) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for f in dataclasses.fields(lim):
        v = getattr(lim, f.name)
        if f.name == "curves":
            v = None if v is None else {
                "kept_fraction": v.kept_fraction, "predicted_loss_increase": v.loss_increase, "R": v.R, "s": v.s}
        d[f.name] = v
    d["removed_fraction"] = lim.removed_fraction
    d["kept_fraction_stderr"] = d.pop("stderr")
    d["kept_count"] = lim.kept_count
    return d


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {name}={value!r}")
    return int(value)


def _check_generator(generator: Any) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _flat_prunable(model: nn.Module) -> np.ndarray:
    return flatten([w.detach() for _, w in prunable_parameters(model)]).to("cpu", torch.float64).numpy()


def _to_device(batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device, dtype: torch.dtype
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.to(device=device, dtype=dtype), y.to(device)) for x, y in batches]


class _ProgressOperator(LinearOperator):
    """Wraps an operator and reports each ``matmat`` call to ``progress(stage, calls, total)``."""

    def __init__(self, op: LinearOperator, progress: Progress, stage: str, total: int) -> None:
        super().__init__(op.shape, dtype=op.dtype, device=op.device, symmetric=op.symmetric)
        self._op, self._progress, self._stage, self._total, self._calls = op, progress, stage, total, 0

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        out = self._op.matmat(V)
        self._calls += 1
        self._progress(self._stage, min(self._calls, self._total), self._total)
        return out


# ----------------------------------------------------------------------------------------------- ε
@dataclass(frozen=True)
class EpsEstimate:
    """The tolerance ``ε`` and where it came from.

    ``source`` is ``"given"`` or ``"batch-loss-std"``; for the latter ``batch_losses`` are the mean
    cross-entropies of the ``n_batches`` full batches of ``batch_size`` (un-augmented training data in index
    order, eval mode) and ``eps`` is their sample standard deviation (``ddof = 1``).
    """

    eps: float
    source: str
    batch_size: int | None = None
    n_batches: int | None = None
    dropped_samples: int = 0
    batch_losses: np.ndarray | None = None


def dense_loss_std(model: nn.Module, dataset: Any, batch_size: int = DEFAULT_EPS_BATCH_SIZE) -> EpsEstimate:
    """The default tolerance: ``ε = std_b ℓ_b(w*)``, the spread of the per-minibatch training loss.

    ``ℓ_b`` is the mean cross-entropy of the dense model over batch ``b`` of ``batch_size`` consecutive
    samples of the *un-augmented* training set in index order (:func:`nets.data.fixed_batches`), in eval mode;
    ``ε`` is the sample standard deviation (``ddof = 1``) over the full batches. The authors use the standard
    deviation of the per-minibatch (128) training loss (MATH.md §2); the partition, the eval mode and
    ``ddof`` are ours (their code draws the batches from the augmented, shuffled loader). A short last batch
    is dropped, since a batch of a different size has a different loss variance.

    >>> m = nn.Linear(1, 2, bias=False)
    >>> _ = m.weight.data.zero_()           # uniform logits: every batch loss is log 2, so ε = 0 → error
    >>> from nets.data import ArrayDataset
    >>> ds = ArrayDataset(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]))
    >>> dense_loss_std(m, ds, batch_size=2)
    Traceback (most recent call last):
    ...
    ValueError: the per-batch training losses are all equal (std 0), so the default eps is 0; pass eps explicitly
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    p = next(iter(model.parameters()))
    batches = fixed_batches(dataset, batch_size)
    full = [b for b in batches if int(b[1].shape[0]) == batch_size]
    dropped = sum(int(b[1].shape[0]) for b in batches) - batch_size * len(full)
    if len(full) < 2:
        raise ValueError(
            f"the default eps needs at least 2 full training batches of batch_size={batch_size}, but the training "
            f"set has {sum(int(b[1].shape[0]) for b in batches)} samples; pass eps explicitly or a smaller batch size"
        )
    with eval_mode(model), torch.no_grad():
        losses = [F.cross_entropy(model(x.to(device=p.device, dtype=p.dtype)), y.to(p.device)) for x, y in full]
    arr = torch.stack(losses).to("cpu", torch.float64).numpy()  # one read-back
    eps = float(arr.std(ddof=1))
    if not math.isfinite(eps):
        raise ValueError(f"the per-batch training losses are not finite ({arr!r}); the model diverged")
    if eps <= 0:
        raise ValueError(
            "the per-batch training losses are all equal (std 0), so the default eps is 0; pass eps explicitly"
        )
    return EpsEstimate(eps, "batch-loss-std", batch_size, len(full), dropped, arr)


# ----------------------------------------------------------------------------------------------- spectrum
@dataclass(frozen=True)
class SpectrumSummary:
    """Summary numbers of an SLQ :class:`~numerics.slq.Spectrum` (pooled over probes where it says so).

    ``ritz_min``/``ritz_max``: the extreme Ritz values over all probes (within the spectrum's range; for a
    converged recurrence they approximate ``λ_min``/``λ_max``); ``negative_mass`` ± ``negative_mass_stderr``:
    the estimated fraction of eigenvalues ``< 0`` (the standard error is across probes only);
    ``negative_mass_bounds``: the Chebyshev–Markov–Stieltjes interval that also covers the quadrature
    (discretisation) error, which dominates when a cluster of near-zero eigenvalues straddles 0
    (:meth:`theory.spectrum.Spectrum.negative_mass_bounds`); ``trace`` ± ``trace_stderr``: ``tr H``
    (Hutchinson-type estimate ``n · Σ τθ``, exact for polynomials of degree ≤ 2m − 1); ``mean_eigenvalue`` =
    ``tr H / n``.
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


def summarize_spectrum(spectrum: Spectrum) -> SpectrumSummary:
    """Extreme Ritz values, negative mass and trace (with standard errors) of a spectrum.

    >>> s = summarize_spectrum(Spectrum.from_eigenvalues([-1.0, 1.0, 3.0]))
    >>> s.ritz_min, s.ritz_max, round(s.negative_mass, 6), s.trace
    (-1.0, 3.0, 0.333333, 3.0)
    """
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a numerics.slq.Spectrum, got {type(spectrum).__name__}")
    x, _ = spectrum.atoms()
    neg, neg_se = spectrum.negative_mass()
    tr, tr_se = spectrum.trace(lambda t: t)
    steps = int((spectrum.weights > 0).sum(axis=1).max())
    return SpectrumSummary(spectrum.dim, spectrum.n_probes, steps, float(x.min()), float(x.max()), neg, neg_se,
                           spectrum.negative_mass_bounds(), tr, tr_se, tr / spectrum.dim)


def hessian_spectrum(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    n_probes: int,
    generator: torch.Generator,
    probe: str = "rademacher",
    deflate: int | None = None,
    hvp_method: str = "forward-over-reverse",
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    cache_graph: bool | str = "auto",
    progress: Progress | None = None,
) -> tuple[Spectrum, dict[str, int]]:
    """SLQ spectrum of the Hessian of the mean cross-entropy over ``batches`` w.r.t. the prunable weights.

    The operator is :class:`nets.hessian.HessianOperator` (prunable weights, every other parameter and
    buffer fixed, eval mode; EXPERIMENTS.md); SLQ runs ``n_probes`` recurrences of ``steps`` Lanczos steps with
    full reorthogonalisation (:func:`numerics.slq.slq`, top-``deflate`` deflation if given). ``batches`` must be
    fixed and un-augmented (:func:`nets.data.fixed_batches`). Returns ``(spectrum, cost)`` with the operator's
    HVP / data-pass counters. ``steps`` is capped at the dimension ``N`` (``steps = N`` is exact).
    ``cache_graph="auto"`` (default) keeps the first-order graphs when they fit in memory, so each product is
    one second-order backward (exact; on the digits default SLQ 128×4 took 0.78 s instead of 4.8 s).
    """
    _check_generator(generator)
    op = HessianOperator(model, nn.CrossEntropyLoss(), list(batches), method=hvp_method, dtype=dtype,
                         chunk_size=chunk_size, cache_graph=cache_graph)
    n = op.shape[0]
    steps = min(_check_int("slq_steps", steps, 1), n - (deflate or 0))
    _check_int("slq_probes", n_probes, 1)
    target: LinearOperator = op
    if progress is not None:
        target = _ProgressOperator(op, progress, "spectrum", steps)
    spec = slq(target, steps=steps, n_probes=int(n_probes), generator=generator, probe=probe, deflate=deflate).spectrum
    return spec, op.cost()


# ----------------------------------------------------------------------------------------------- actual limit
@dataclass(frozen=True)
class ActualLimit:
    """The measured limit of global magnitude pruning under one criterion.

    ``kept_fraction`` is the least grid level ``ρ`` such that the criterion holds at ``ρ`` *and at every
    denser grid level* (the first failure seen coming from the dense end; the same convention as the exact
    quadratic threshold, ``Δ(T_k') ≤ ε`` for every ``k' ≥ k``); ``kept_fraction_any`` is the least grid level
    where it holds at all (the authors' reading for their accuracy criterion). Either is ``None`` when no level
    qualifies (the authors' code crashed there, EXPERIMENTS.md mistake 6). ``removed_fraction`` = 1 − ρ.
    """

    criterion: str
    description: str
    threshold: float
    kept_fraction: float | None
    kept_count: int | None
    kept_fraction_any: float | None
    n_qualifying: int
    n_levels: int

    @property
    def removed_fraction(self) -> float | None:
        return None if self.kept_fraction is None else 1.0 - self.kept_fraction

    @property
    def removed_fraction_any(self) -> float | None:
        return None if self.kept_fraction_any is None else 1.0 - self.kept_fraction_any

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["removed_fraction"] = self.removed_fraction
        d["removed_fraction_any"] = self.removed_fraction_any
        return d


def actual_limit(
    kept_fractions: Any,
    qualifies: Any,
    *,
    criterion: str = "custom",
    description: str = "",
    threshold: float = math.nan,
    kept_counts: Any = None,
) -> ActualLimit:
    """The least kept fraction whose level and all denser levels qualify, and the least qualifying one.

    >>> a = actual_limit([0.0, 0.25, 0.5, 0.75, 1.0], [True, False, True, True, True])
    >>> a.kept_fraction, a.kept_fraction_any
    (0.5, 0.0)
    >>> actual_limit([0.5, 1.0], [False, False]).kept_fraction is None
    True
    """
    rho = np.asarray(kept_fractions, dtype=np.float64).reshape(-1)
    ok = np.asarray(qualifies, dtype=bool).reshape(-1)
    if rho.size == 0 or rho.shape != ok.shape:
        raise ValueError(f"kept_fractions and qualifies must be non-empty and of equal length, got {rho.size}, {ok.size}")
    counts = None if kept_counts is None else np.asarray(kept_counts).reshape(-1)
    order = np.argsort(-rho, kind="stable")  # dense end first
    best = None
    for i in order:
        if not ok[i]:
            break
        best = int(i)
    any_idx = np.nonzero(ok)[0]
    any_rho = float(rho[any_idx].min()) if any_idx.size else None
    return ActualLimit(
        criterion=criterion,
        description=description,
        threshold=float(threshold),
        kept_fraction=None if best is None else float(rho[best]),
        kept_count=None if best is None or counts is None else int(counts[best]),
        kept_fraction_any=any_rho,
        n_qualifying=int(ok.sum()),
        n_levels=int(ok.size),
    )


def default_kept_fractions(step: float = 0.001) -> np.ndarray:
    """Kept fractions ``0, step, …, 1`` (the authors swept the removed fraction on a 0.001 grid).

    >>> default_kept_fractions(0.25).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not (isinstance(step, (int, float)) and 0 < step <= 1):
        raise ValueError(f"step must lie in (0, 1], got step={step!r}")
    n = int(round(1.0 / step))
    if not math.isclose(n * step, 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"step must divide 1, got step={step!r}")
    return np.round(np.linspace(0.0, 1.0, n + 1), 12)


# ----------------------------------------------------------------------------------------------- quadratic model
@dataclass(frozen=True)
class QuadraticComparison:
    """The dense-Hessian ground truth of a small model (all fractions are kept fractions ``k/N``).

    Attributes
    ----------
    kept_fraction_compensated:
        The exact quadratic-model threshold (:meth:`theory.quadratic.QuadraticModel.magnitude_threshold`):
        the least ``k/N`` with ``Δ(T_k') = ½ c_Pᵀ S c_P ≤ ε`` for all ``k' ≥ k`` (optimal compensation,
        magnitude supports), i.e. what the predicted limits estimate, without the Haar-eigenbasis assumption.
        A trained network's Hessian is indefinite, and there the stationary compensation has a pole wherever a
        leading block passes through a singular matrix (many, when a sixth of the spectrum is a cloud of small
        negative eigenvalues), so the threshold of the raw ``H`` is ill-defined. We therefore use the PSD
        matrix that matches the spectral policy of the predictions (ours): ``V|Λ|Vᵀ`` for ``negative="abs"``
        (the default, the authors' folding), ``V max(Λ, 0) Vᵀ`` for ``"clip"``/``"drop"``. The comparison
        with ``predicted_exact_spectrum`` then isolates the random-eigenbasis assumption.
    kept_fraction_compensated_indefinite:
        The same threshold for the raw indefinite ``H`` after a running median of width ``median_window``
        over ``Δ`` (the convention of ``bench/limits_synthetic.py``); a diagnostic only: it moves with the
        window when the poles are dense.
    kept_fraction_uncompensated:
        The least ``k/N`` with ``½ c_Pᵀ H_PP c_P ≤ ε`` for all ``k' ≥ k`` (raw ``H``): magnitude pruning
        *without* compensation in the quadratic model, i.e. the quadratic model of the LOMP sweep's loss
        criterion.
    psd_surrogate:
        ``"abs"``, ``"clip"`` or ``"none"`` (``H`` already PSD).
    predicted_exact_spectrum:
        ``pruning_limit`` by each method from the exact eigenvalues (no SLQ error).
    slq_wasserstein1:
        Wasserstein-1 distance between the SLQ spectrum and the exact eigenvalues.
    eigenvalue_min, eigenvalue_max, negative_fraction:
        Of the dense Hessian; eigenvalues within the rounding cut-off ``1000·N·eps·max|H|`` of 0 are not
        counted as negative.
    gradient_norm:
        ``‖∇_w L(w*)‖`` over the prunable weights (ℓ1-trained weights are not a stationary point of the
        cross-entropy alone; the quadratic model neglects this linear term).
    taylor_loss:
        ``L(w*) − gᵀc(k) + ½ c(k)ᵀ H c(k)`` (raw ``H``) on the sweep grid: the second-order Taylor prediction
        of the sweep's training loss (for the plot and the comparison).
    """

    kept_fraction_compensated: float
    kept_count_compensated: int
    kept_fraction_compensated_indefinite: float
    kept_fraction_uncompensated: float
    psd_surrogate: str
    median_window: int
    predicted_exact_spectrum: dict[str, PruningLimit]
    slq_wasserstein1: float
    eigenvalue_min: float
    eigenvalue_max: float
    negative_fraction: float
    gradient_norm: float
    taylor_loss: np.ndarray
    hvps: int
    eigenvalues: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self, include_eigenvalues: bool = False) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "eigenvalues"}
        d["predicted_exact_spectrum"] = {m: _limit_to_dict(v) for m, v in self.predicted_exact_spectrum.items()}
        if include_eigenvalues:
            d["eigenvalues"] = self.eigenvalues
        return d


def _least_k_below(values: np.ndarray, eps: float) -> int:
    """Least ``k`` with ``values[k'] ≤ eps`` for every ``k' ≥ k``."""
    bad = np.nonzero(values > eps)[0]
    return 0 if bad.size == 0 else int(bad[-1] + 1)


def _dense_hessian(op: HessianOperator, progress: Progress | None, block: int = 256) -> np.ndarray:
    n = op.shape[0]
    out = np.empty((n, n), dtype=np.float64)
    eye = torch.eye(n, dtype=op.dtype, device=op.device)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        out[:, j0:j1] = op.matmat(eye[:, j0:j1]).to("cpu", torch.float64).numpy()
        if progress is not None:
            progress("exact_quadratic", j1, n)
    return 0.5 * (out + out.T)


def _quadratic_comparison(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    w: np.ndarray,
    eps: float,
    loss0: float,
    spectrum: Spectrum,
    kept_fractions: np.ndarray,
    kept_counts: np.ndarray,
    limit_kwargs: dict[str, Any],
    progress: Progress | None,
) -> QuadraticComparison:
    from theory.quadratic import QuadraticModel

    # cached first-order graphs when they fit (exact; 1.5× faster on the digits default)
    op = HessianOperator(model, nn.CrossEntropyLoss(), batches, dtype=torch.float64, chunk_size=256,
                         cache_graph="auto")
    H = _dense_hessian(op, progress)
    _, g = op.value_and_gradient()
    g = g.to("cpu", torch.float64).numpy()
    N = w.size
    # torch's LAPACK call honours torch.set_num_threads; numpy's OpenBLAS eigh was 5-10x slower under CPU contention
    lam_t, V_t = torch.linalg.eigh(torch.from_numpy(H))
    lam, V = lam_t.numpy(), V_t.numpy()
    # zero-pivot / zero-eigenvalue cut-off: QuadraticModel's default rcond (1000·N·eps) times max|H|
    tol = 1000.0 * N * np.finfo(np.float64).eps * float(np.max(np.abs(H)))
    indefinite = bool(lam[0] < -tol)
    raw = QuadraticModel(H, w)
    curve = raw.magnitude_curve()
    window = 2 * int(math.ceil(0.005 * N)) + 1 if indefinite else 1
    k_indef = curve.threshold(eps, median_window=window)
    k_unc = _least_k_below(curve.uncompensated, eps)
    if indefinite:
        surrogate = "abs" if limit_kwargs.get("negative", "abs") == "abs" else "clip"
        lam_s = np.abs(lam) if surrogate == "abs" else np.maximum(lam, 0.0)
        exact = QuadraticModel((V * lam_s[None, :]) @ V.T, w).magnitude_threshold(eps)
    else:
        surrogate = "none"
        exact = raw.magnitude_threshold(eps)
    # Taylor prediction of the sweep's loss: L* − gᵀc(k) + ½ c(k)ᵀHc(k), c(k) = w* on the pruned coordinates
    o = curve.order
    gw = g[o] * w[o]
    lin = np.zeros(N + 1)
    lin[:-1] = np.cumsum(gw[::-1])[::-1]
    taylor_all = loss0 - lin + curve.uncompensated
    exact_spec = Spectrum.from_eigenvalues(lam)
    # only the limits are reported for the exact spectrum (to_dict drops curves): skip their curves
    predicted = {m: pruning_limit(exact_spec, w, eps, method=m, n_curve=0, **limit_kwargs) for m in METHODS}
    return QuadraticComparison(
        kept_fraction_compensated=exact.kept_fraction,
        kept_count_compensated=int(exact.kept_count),
        kept_fraction_compensated_indefinite=k_indef / N,
        kept_fraction_uncompensated=k_unc / N,
        psd_surrogate=surrogate,
        median_window=window,
        predicted_exact_spectrum=predicted,
        slq_wasserstein1=float(spectrum.wasserstein1(lam)),
        eigenvalue_min=float(lam[0]),
        eigenvalue_max=float(lam[-1]),
        negative_fraction=float(np.mean(lam < -tol)),
        gradient_norm=float(np.linalg.norm(g)),
        taylor_loss=taylor_all[np.asarray(kept_counts, dtype=np.int64)],
        hvps=int(op.cost()["hvps"]),
        eigenvalues=lam,
    )


# ----------------------------------------------------------------------------------------------- result
@dataclass
class LimitResult:
    """Everything :func:`estimate_pruning_limit` measured; :meth:`to_dict` gives a JSON-ready record.

    Attributes
    ----------
    method:
        The primary prediction method (``"free"`` by default); both are in ``predicted``.
    eps:
        :class:`EpsEstimate`.
    dense:
        ``train_loss``, ``train_acc`` (un-augmented training set, eval mode), ``test_loss``, ``test_acc`` of
        the dense model.
    model:
        ``class``, ``n_parameters`` (D, all trainable), ``n_prunable`` (N, the Hessian's dimension).
    spectrum, spectrum_summary:
        The SLQ :class:`~numerics.slq.Spectrum` of the prunable-weight Hessian and its summary.
    predicted:
        ``{"free": PruningLimit, "flat": PruningLimit}`` (:func:`theory.limits.pruning_limit`).
    sweep:
        ``kept_fraction``, ``kept_count`` and per-level ``train_loss``, ``train_acc``, ``test_loss``,
        ``test_acc`` arrays of the LOMP sweep.
    actual:
        ``{"train_loss": …, "test_accuracy": …, "authors_strict_accuracy": …}`` :class:`ActualLimit`.
    quadratic:
        :class:`QuadraticComparison` on small models, else ``None``.
    timings:
        Seconds per stage (``eps``, ``spectrum``, ``limit``, ``sweep``, ``exact_quadratic``).
    cost:
        Per stage: HVPs, gradient evaluations, data passes, forward evaluations of a dataset.
    settings:
        The arguments used.
    """

    method: str
    eps: EpsEstimate
    dense: dict[str, float]
    model: dict[str, Any]
    spectrum: Spectrum
    spectrum_summary: SpectrumSummary
    predicted: dict[str, PruningLimit]
    sweep: dict[str, np.ndarray]
    actual: dict[str, ActualLimit]
    quadratic: QuadraticComparison | None
    timings: dict[str, float]
    cost: dict[str, dict[str, int]]
    settings: dict[str, Any]

    @property
    def primary(self) -> PruningLimit:
        """The prediction of :attr:`method`."""
        return self.predicted[self.method]

    def gaps(self) -> dict[str, dict[str, float | None]]:
        """``predicted ρ* − actual ρ`` (kept fractions) for each method and criterion (``None``: no actual)."""
        out: dict[str, dict[str, float | None]] = {}
        for m, lim in self.predicted.items():
            out[m] = {}
            for c, a in self.actual.items():
                ref = a.kept_fraction if c != "authors_strict_accuracy" else a.kept_fraction_any
                out[m][c] = None if ref is None else lim.kept_fraction - ref
            if self.quadratic is not None:
                out[m]["exact_quadratic"] = lim.kept_fraction - self.quadratic.kept_fraction_compensated
        return out

    def to_dict(self, *, include_curves: bool = True, include_spectrum: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (numpy → lists, non-finite floats → ``None``)."""
        predicted = {m: _limit_to_dict(v) for m, v in self.predicted.items()}
        if not include_curves:
            for v in predicted.values():
                v.pop("curves", None)
        eps = dataclasses.asdict(self.eps)
        d: dict[str, Any] = {
            "format": "prunelimit.LimitResult/1",
            "naming": "kept_fraction = k/N (the final paper's 'pruning ratio'); removed_fraction = 1 - kept_fraction "
                      "(what the authors' code prints)",
            "method": self.method,
            "eps": eps,
            "dense": self.dense,
            "model": self.model,
            "spectrum_summary": dataclasses.asdict(self.spectrum_summary),
            "predicted": predicted,
            "actual": {k: v.to_dict() for k, v in self.actual.items()},
            "gaps_predicted_minus_actual_kept_fraction": self.gaps(),
            "quadratic": None if self.quadratic is None else self.quadratic.to_dict(),
            "sweep": self.sweep,
            "timings_seconds": self.timings,
            "cost": self.cost,
            "settings": self.settings,
        }
        if include_spectrum:
            d["spectrum"] = {"dim": self.spectrum.dim, "exact": self.spectrum.exact,
                             "nodes": self.spectrum.nodes, "weights": self.spectrum.weights}
        return jsonable(d)

    def save_json(self, path: str | os.PathLike, **kwargs: Any) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically (strict JSON)."""
        return atomic_write_json(Path(path), self.to_dict(**kwargs), indent=1)


# ----------------------------------------------------------------------------------------------- pipeline
def estimate_pruning_limit(
    model: nn.Module,
    data: DataSplit,
    *,
    generator: torch.Generator,
    eps: float | None = None,
    eps_batch_size: int = DEFAULT_EPS_BATCH_SIZE,
    method: str = "free",
    slq_steps: int = DEFAULT_SLQ_STEPS,
    slq_probes: int = DEFAULT_SLQ_PROBES,
    probe: str = "rademacher",
    deflate: int | None = None,
    hvp_method: str = "forward-over-reverse",
    hvp_dtype: torch.dtype | None = None,
    hvp_chunk_size: int | None = None,
    hessian_batch_size: int = DEFAULT_HESSIAN_BATCH_SIZE,
    hessian_samples: int | None = None,
    negative: str = "abs",
    eta: float = 0.01,
    kept_fractions: Sequence[float] | np.ndarray | None = None,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    exact_quadratic: bool | None = None,
    exact_max_n: int = DEFAULT_EXACT_MAX_N,
    eval_batch_size: int = 1024,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> LimitResult:
    """Predicted and actual pruning limit of a trained classifier (see the module docstring).

    Parameters
    ----------
    model:
        A trained classifier (logits out); never modified (a deep copy is used).
    data:
        :class:`nets.data.DataSplit`; ``data.train_eval`` (un-augmented) gives ``ε``, ``L(w*)``, the Hessian
        and the sweep's training loss, ``data.test`` the accuracies.
    generator:
        ``torch.Generator`` for the SLQ probes (and the ``hessian_samples`` subset).
    eps:
        Loss tolerance; ``None`` (default): :func:`dense_loss_std` with ``eps_batch_size`` (128, the authors').
    method:
        Primary prediction, ``"free"`` (default, ours) or ``"flat"`` (the authors'); both are computed.
    slq_steps, slq_probes, probe, deflate:
        SLQ settings (EXPERIMENTS.md: the authors used 128 steps × 1 probe; see
        :data:`DEFAULT_SLQ_PROBES`); ``deflate=k`` computes the top-k eigenpairs exactly first.
    hvp_method, hvp_dtype, hvp_chunk_size:
        :class:`nets.hessian.HessianOperator` settings for the SLQ products.
    hessian_batch_size, hessian_samples:
        Batch size of the (full, fixed, un-augmented) Hessian data, and optionally a fixed random subset of
        that many training samples (drawn once from ``generator``; default: the whole training set, as the
        authors).
    negative, eta:
        Negative-eigenvalue policy and kinematic failure probability for :func:`theory.limits.pruning_limit`.
    kept_fractions:
        Kept fractions of the LOMP sweep (default :func:`default_kept_fractions`: 0, 0.001, …, 1).
    accuracy_tolerance:
        The accuracy criterion is ``test_acc(ρ) ≥ dense test_acc − accuracy_tolerance``.
    exact_quadratic, exact_max_n:
        Dense-Hessian comparison (:class:`QuadraticComparison`): ``None`` (default) computes it iff
        ``N ≤ exact_max_n``; ``True``/``False`` force it on/off.
    device:
        Where to compute (default: the model's device). The model copy and the data are moved there.
    progress:
        ``progress(stage, done, total)`` with stages ``eps``, ``spectrum``, ``limit``, ``sweep``,
        ``exact_quadratic``.

    Returns
    -------
    LimitResult
    """
    # ---- validation ------------------------------------------------------------------------------------
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, DataSplit):
        raise TypeError(f"data must be a nets.data.DataSplit, got {type(data).__name__}")
    _check_generator(generator)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got method={method!r}")
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"negative must be one of {NEGATIVE_POLICIES}, got negative={negative!r}")
    if hvp_method not in HVP_METHODS:
        raise ValueError(f"hvp_method must be one of {HVP_METHODS}, got hvp_method={hvp_method!r}")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
            raise TypeError(f"eps must be a real number or None, got {type(eps).__name__}")
        if not (math.isfinite(float(eps)) and float(eps) > 0):
            raise ValueError(f"eps must be a positive finite number, got eps={eps!r}")
    _check_int("eps_batch_size", eps_batch_size, 1)
    _check_int("slq_steps", slq_steps, 1)
    _check_int("slq_probes", slq_probes, 1)
    _check_int("hessian_batch_size", hessian_batch_size, 1)
    _check_int("eval_batch_size", eval_batch_size, 1)
    _check_int("exact_max_n", exact_max_n, 0)
    if deflate is not None:
        _check_int("deflate", deflate, 1)
    if hessian_samples is not None:
        _check_int("hessian_samples", hessian_samples, 1)
    if isinstance(accuracy_tolerance, bool) or not isinstance(accuracy_tolerance, (int, float)) or not (
        0.0 <= accuracy_tolerance <= 1.0
    ):
        raise ValueError(f"accuracy_tolerance must be a number in [0, 1], got accuracy_tolerance={accuracy_tolerance!r}")
    if exact_quadratic not in (None, True, False):
        raise TypeError(f"exact_quadratic must be None, True or False, got {exact_quadratic!r}")
    grid = default_kept_fractions() if kept_fractions is None else np.asarray(kept_fractions, dtype=np.float64).reshape(-1)
    if grid.size == 0:
        raise ValueError("kept_fractions must be non-empty")
    if not np.all(np.isfinite(grid)) or grid.min() < 0 or grid.max() > 1:
        raise ValueError(f"kept_fractions must lie in [0, 1], got range [{grid.min()!r}, {grid.max()!r}]")
    grid = np.unique(grid)  # sorted, no duplicates
    if not prunable_parameters(model):
        raise ValueError("model has no prunable (Linear/Conv) weights")
    if len(data.train_eval) == 0 or len(data.test) == 0:  # type: ignore[arg-type]
        raise ValueError("data must have non-empty training and test sets")

    # ---- working copy -----------------------------------------------------------------------------------
    first = next(iter(model.parameters()))
    dev = torch.device(device) if device is not None else first.device
    from nets.prune import remove_masks

    # a copy: the caller's model is never changed; masks installed by torch.nn.utils.prune are made permanent
    # on the copy so that the prunable weights are plain parameters (pruned entries stay zero)
    work = remove_masks(copy_model(model)).to(dev)
    for p in work.parameters():
        p.requires_grad_(True)
        p.grad = None
    work.eval()
    dtype = first.dtype
    N = count_parameters(work, prunable_only=True)
    w_star = _flat_prunable(work)
    timings: dict[str, float] = {}
    cost: dict[str, dict[str, int]] = {}
    report = progress if progress is not None else (lambda stage, done, total: None)

    train_batches = _to_device(fixed_batches(data.train_eval, eval_batch_size), dev, dtype)
    test_batches = _to_device(fixed_batches(data.test, eval_batch_size), dev, dtype)

    # ---- ε and the dense model ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    report("eps", 0, 1)
    train_loss, train_acc = evaluate(work, train_batches)
    test_loss, test_acc = evaluate(work, test_batches)
    dense = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
    if not math.isfinite(train_loss):
        raise ValueError(f"the dense model's training loss is not finite ({train_loss!r})")
    eps_est = EpsEstimate(float(eps), "given") if eps is not None else dense_loss_std(work, data.train_eval, eps_batch_size)
    report("eps", 1, 1)
    timings["eps"] = time.perf_counter() - t0
    cost["eps"] = {"forward_passes": 2 + (0 if eps is not None else 1)}
    eps_v = eps_est.eps

    # ---- spectrum ------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    whole = hessian_samples is None or hessian_samples >= len(data.train_eval)  # type: ignore[arg-type]
    if whole and hessian_batch_size == eval_batch_size:
        hess_batches = train_batches  # the same fixed batches (the defaults): gathered and moved once
    else:
        hess_batches = hessian_batches(data.train_eval, hessian_batch_size, samples=hessian_samples,
                                       generator=generator, device=dev, dtype=dtype)
    spectrum, spec_cost = hessian_spectrum(
        work, hess_batches, steps=slq_steps, n_probes=slq_probes, generator=generator, probe=probe,
        deflate=deflate, hvp_method=hvp_method, dtype=hvp_dtype, chunk_size=hvp_chunk_size, progress=progress)
    summary = summarize_spectrum(spectrum)
    timings["spectrum"] = time.perf_counter() - t0
    cost["spectrum"] = spec_cost

    # ---- predicted limits -----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    limit_kwargs = {"negative": negative, "eta": eta}
    predicted = {}
    for i, m in enumerate(METHODS):
        predicted[m] = pruning_limit(spectrum, w_star, eps_v, method=m, **limit_kwargs)
        report("limit", i + 1, len(METHODS))
    timings["limit"] = time.perf_counter() - t0

    # ---- actual limits: the LOMP sweep -------------------------------------------------------------------
    from nets.prune import magnitude_sweep

    from nets.prune import kept_count

    t0 = time.perf_counter()
    levels = iter(grid.tolist())  # magnitude_sweep evaluates the levels once each, in this order

    def evaluate_fn(pruned: nn.Module) -> dict[str, float]:
        if kept_count(next(levels), N) == N:
            return dict(dense)  # every weight kept: the dense model's weights, evaluated above
        trl, tra = evaluate(pruned, train_batches)
        tel, tea = evaluate(pruned, test_batches)
        return {"train_loss": trl, "train_acc": tra, "test_loss": tel, "test_acc": tea}

    sw = magnitude_sweep(work, grid.tolist(), evaluate_fn,
                         progress=(lambda i, n: report("sweep", i, n)) if progress is not None else None)
    timings["sweep"] = time.perf_counter() - t0
    cost["sweep"] = {"forward_passes": 2 * int(np.count_nonzero(sw.kept_counts < N))}
    sweep = {"kept_fraction": sw.kept_fractions, "removed_fraction": 1.0 - sw.kept_fractions, "kept_count": sw.kept_counts,
             **{k: v for k, v in sw.metrics.items()}}
    loss_ok = np.nan_to_num(sw.metrics["train_loss"], nan=np.inf) <= train_loss + eps_v
    acc_ok = sw.metrics["test_acc"] >= test_acc - accuracy_tolerance
    strict_ok = sw.metrics["test_acc"] > test_acc
    actual = {
        "train_loss": actual_limit(sw.kept_fractions, loss_ok, criterion="train_loss",
                                   description="training loss <= L(w*) + eps", threshold=train_loss + eps_v,
                                   kept_counts=sw.kept_counts),
        "test_accuracy": actual_limit(sw.kept_fractions, acc_ok, criterion="test_accuracy",
                                      description=f"test accuracy >= dense - {accuracy_tolerance:g}",
                                      threshold=test_acc - accuracy_tolerance, kept_counts=sw.kept_counts),
        "authors_strict_accuracy": actual_limit(
            sw.kept_fractions, strict_ok, criterion="authors_strict_accuracy",
            description="test accuracy strictly above dense (the authors' code; read kept_fraction_any)",
            threshold=test_acc, kept_counts=sw.kept_counts),
    }
    if actual["authors_strict_accuracy"].kept_fraction_any is None:
        logger.info("no sweep level has test accuracy strictly above the dense %.4f (the authors' code crashed here)",
                    test_acc)

    # ---- exact quadratic model on small models ------------------------------------------------------------
    do_exact = (N <= exact_max_n) if exact_quadratic is None else bool(exact_quadratic)
    quadratic = None
    if do_exact:
        t0 = time.perf_counter()
        quadratic = _quadratic_comparison(work, hess_batches, w_star, eps_v, train_loss, spectrum, sw.kept_fractions,
                                          sw.kept_counts, limit_kwargs, progress)
        timings["exact_quadratic"] = time.perf_counter() - t0
        cost["exact_quadratic"] = {"hvps": quadratic.hvps, "gradients": 1}

    settings = {
        "method": method, "eps": eps, "eps_batch_size": eps_batch_size, "slq_steps": slq_steps,
        "slq_steps_used": summary.steps, "slq_probes": slq_probes, "probe": probe, "deflate": deflate,
        "hvp_method": hvp_method, "hvp_dtype": None if hvp_dtype is None else str(hvp_dtype),
        "hessian_batch_size": hessian_batch_size, "hessian_samples": hessian_samples,
        "hessian_space": "prunable", "negative": negative, "eta": eta, "n_levels": int(grid.size),
        "accuracy_tolerance": accuracy_tolerance, "exact_quadratic": do_exact, "exact_max_n": exact_max_n,
        "device": str(dev), "dtype": str(dtype), "loss": "cross-entropy (mean)",
    }
    info = {"class": type(model).__name__, "n_parameters": count_parameters(work), "n_prunable": N,
            "n_train": len(data.train_eval), "n_test": len(data.test), "data": data.name}  # type: ignore[arg-type]
    return LimitResult(method, eps_est, dense, info, spectrum, summary, predicted, sweep, actual, quadratic,
                       timings, cost, settings)


def hessian_batches(
    dataset: Any,
    batch_size: int = DEFAULT_HESSIAN_BATCH_SIZE,
    *,
    samples: int | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed, un-augmented batches of the Hessian data (:func:`nets.data.fixed_batches`).

    All of ``dataset`` in index order, or (``samples`` smaller than the dataset) a fixed random subset of that
    many samples, ``torch.randperm(len(dataset), generator=generator)[:samples]`` in increasing index order.
    The inputs are moved to ``device``/``dtype`` and the labels to ``device`` where given.

    >>> from nets.data import ArrayDataset
    >>> ds = ArrayDataset(torch.arange(5.0)[:, None], torch.arange(5))
    >>> [y.tolist() for _, y in hessian_batches(ds, 2)]
    [[0, 1], [2, 3], [4]]
    >>> [y.tolist() for _, y in hessian_batches(ds, 2, samples=3, generator=torch.Generator().manual_seed(0))]
    [[0, 1], [4]]
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    if samples is not None and _check_int("samples", samples, 1) < len(dataset):
        if generator is None:
            raise ValueError("a random subset (samples < len(dataset)) needs a torch.Generator")
        idx = torch.randperm(len(dataset), generator=_check_generator(generator))[:samples].sort().values
        batches = _subset_batches(dataset, idx, batch_size)
    else:
        batches = fixed_batches(dataset, batch_size)
    if device is None and dtype is None:
        return batches
    return [(x.to(device=device, dtype=dtype), y.to(device)) for x, y in batches]


def _subset_batches(dataset: Any, indices: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed, un-augmented batches of ``dataset[indices]`` in the given order."""
    if hasattr(dataset, "unaugmented"):
        dataset = dataset.unaugmented()
    out = []
    for start in range(0, indices.numel(), batch_size):
        sel = indices[start : start + batch_size]
        if hasattr(dataset, "batch"):
            out.append(dataset.batch(sel))
        else:
            items = [dataset[int(i)] for i in sel]
            out.append((torch.stack([torch.as_tensor(a) for a, _ in items]), torch.as_tensor([int(b) for _, b in items])))
    return out


# ----------------------------------------------------------------------------------------------- models
def default_train_config(
    model_name: str = "mlp",
    *,
    epochs: int | None = None,
    lr: float | None = None,
    l1: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> TrainConfig:
    """The :class:`nets.train.TrainConfig` of :func:`train_default_model`.

    ``model_name`` in :data:`nets.train.PAPER_CONFIGS` (fc5, fc12, alexnet, vgg16, resnet18, resnet50) gets the
    authors' configuration (:func:`nets.train.paper_config`); any other model (the digits ``mlp``/``cnn``
    defaults, ...) :data:`DIGITS_TRAIN_DEFAULTS`. ``epochs``/``lr``/``l1``/``batch_size`` override.

    >>> default_train_config("mlp").epochs, default_train_config("resnet18", epochs=30).epochs
    (60, 30)
    """
    overrides = {k: v for k, v in {"epochs": epochs, "lr": lr, "l1": l1, "batch_size": batch_size}.items()
                 if v is not None}
    if model_name.lower() in PAPER_CONFIGS:
        return paper_config(model_name, seed=seed, device=device, **overrides)
    return TrainConfig(**{**DIGITS_TRAIN_DEFAULTS, **overrides, "seed": seed, "device": device})


def train_default_model(
    data: DataSplit,
    *,
    model_name: str = "mlp",
    epochs: int | None = None,
    lr: float | None = None,
    l1: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: Callable[[dict[str, float]], None] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, Any]:
    """Build and train a model with ℓ1 regularisation: the pipeline's default when no checkpoint is given.

    The configuration is :func:`default_train_config` (the authors' for the paper's models, else
    :data:`DIGITS_TRAIN_DEFAULTS`; ``epochs``/``lr``/``l1``/``batch_size`` override). ``model_kwargs`` go to
    :func:`nets.models.build_model` (e.g. ``{"hidden": (64,)}`` for the ``mlp``). Initialisation is drawn from
    ``torch.Generator().manual_seed(seed)`` and the data order from the training config's ``seed``. Returns
    ``(model, nets.train.TrainResult)``.
    """
    from nets.models import build_model

    if not isinstance(data, DataSplit):
        raise TypeError(f"data must be a nets.data.DataSplit, got {type(data).__name__}")
    config = default_train_config(model_name, epochs=epochs, lr=lr, l1=l1, batch_size=batch_size, seed=seed,
                                  device=device)
    model = build_model(model_name, data.num_classes, data.input_shape, generator=torch.Generator().manual_seed(seed),
                        **dict(model_kwargs or {}))
    result = train(model, data, config, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
    return model, result


def load_state_dict(model: nn.Module, path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load weights into ``model`` from a file written by :func:`nets.train.train` (``checkpoint.pt``: the
    ``"model"`` entry) or by ``torch.save(model.state_dict(), path)``. Read with ``weights_only=True``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(f"could not read checkpoint {p} with weights_only=True: {exc}") from exc
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint {p} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {p} does not fit the model {type(model).__name__}: {exc}") from exc
    return model
