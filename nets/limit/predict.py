"""Stage 3 of the pipeline: the predicted limits — the fundamental one and the magnitude-pruning one.

*Fundamental* (compensated) limit ρ_F (docs/math.md §2.2): the least kept fraction at which some point
supported on the magnitude-chosen coordinates stays within ε of the loss. Predicted from the spectrum by
:func:`theory.limits.pruning_limit`: ``"flat"`` (the authors' formula) or ``"free"`` (our free-probability
threshold); both are always computed, ``method`` names the primary one.

*Magnitude-pruning* (LOMP, uncompensated) limit ρ_M: the least kept fraction at which plain global magnitude
pruning stays within ε. Predicted two ways:

* ``"haar"`` — spectral only: ``½ R(ρ)² tr(H)/N ≤ ε`` (:func:`theory.limits.haar_magnitude_limit`; ours);
* ``"taylor"`` — the second-order Taylor model with the real Hessian and gradient at ``w*``:
  ``ΔL(k) = −g_Pᵀ w*_P + ½ w*_Pᵀ H w*_P`` (``P`` the pruned coordinates of the ``k`` largest magnitudes), one
  Hessian-vector product per level, the least qualifying ``k`` by grid + bisection
  (:func:`nets.limit.search.threshold_search`). The gradient term matters: ℓ1-trained weights are not a
  stationary point of the data loss.

The defaults (:data:`DEFAULT_FUNDAMENTAL_METHOD`, :data:`DEFAULT_MAGNITUDE_METHOD`) were chosen by their
accuracy against the *measured* limits on trained networks (``bench/limits_trained.py``; the table is in
docs/guide.md), not on synthetic spectra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nets.limit.search import SearchResult, grid_counts, threshold_search
from numerics.operators import LinearOperator
from theory.limits import (
    DEFAULT_METHOD,
    METHODS,
    NEGATIVE_POLICIES,
    HaarMagnitudeLimit,
    PruningLimit,
    haar_magnitude_limit,
    pruning_limit,
)
from theory.spectrum import Spectrum
from theory.validation import check_choice, check_real

__all__ = ["PredictionConfig", "FundamentalPrediction", "MagnitudePrediction", "TaylorMagnitudeLimit",
           "predict_fundamental", "predict_magnitude", "taylor_magnitude_limit", "MAGNITUDE_METHODS",
           "DEFAULT_FUNDAMENTAL_METHOD", "DEFAULT_MAGNITUDE_METHOD"]

#: Predictions of the magnitude-pruning limit.
MAGNITUDE_METHODS: tuple[str, ...] = ("taylor", "haar")
#: The primary prediction of the fundamental limit (:data:`theory.limits.DEFAULT_METHOD`, chosen by
#: bench/limits_trained.py: mean absolute error 0.032 flat vs 0.035 free on 60 trained networks).
DEFAULT_FUNDAMENTAL_METHOD = DEFAULT_METHOD
#: The primary prediction of the magnitude-pruning limit (bench/limits_trained.py: Taylor mean absolute error 0.009,
#: worst 0.053; Haar 0.040, worst 0.128).
DEFAULT_MAGNITUDE_METHOD = "taylor"


@dataclass(frozen=True)
class PredictionConfig:
    """``method``: primary fundamental prediction (``"flat"``/``"free"``); ``magnitude_method``: primary
    magnitude-pruning prediction (``"taylor"``/``"haar"``; ``"taylor"`` costs one HVP per searched level);
    ``negative``: negative-eigenvalue policy of the spectral formulas; ``eta``: kinematic failure probability of
    the bands; ``taylor_grid_step``: kept-fraction step of the Taylor curve before bisection."""

    method: str = DEFAULT_FUNDAMENTAL_METHOD
    magnitude_method: str = DEFAULT_MAGNITUDE_METHOD
    negative: str = "abs"
    eta: float = 0.01
    taylor_grid_step: float = 0.05

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("magnitude_method", self.magnitude_method, MAGNITUDE_METHODS)
        check_choice("negative", self.negative, NEGATIVE_POLICIES)
        check_real("eta", self.eta, minimum=0.0, maximum=1.0, open_min=True, open_max=True)
        check_real("taylor_grid_step", self.taylor_grid_step, minimum=0.0, maximum=1.0, open_min=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FundamentalPrediction:
    """Both spectral predictions of the fundamental limit; ``method`` is the primary one."""

    method: str
    limits: dict[str, PruningLimit]

    @property
    def primary(self) -> PruningLimit:
        return self.limits[self.method]

    @property
    def kept_fraction(self) -> float:
        return self.primary.kept_fraction


@dataclass(frozen=True)
class TaylorMagnitudeLimit:
    """The Taylor-model magnitude-pruning limit (module docstring): the search result over
    ``ΔL(k) = −g_Pᵀw_P + ½ w_PᵀHw_P`` and the two terms at the limit."""

    search: SearchResult
    gradient_term: float
    curvature_term: float
    hvps: int

    @property
    def kept_fraction(self) -> float:
        return self.search.kept_fraction

    @property
    def kept_count(self) -> int:
        return self.search.kept_count

    def to_dict(self) -> dict[str, Any]:
        return {"kept_fraction": self.kept_fraction, "kept_count": self.kept_count,
                "gradient_term_at_limit": self.gradient_term, "curvature_term_at_limit": self.curvature_term,
                "hvps": self.hvps, "search": self.search.to_dict()}


@dataclass(frozen=True)
class MagnitudePrediction:
    """The predictions of the magnitude-pruning limit; ``method`` is the primary one."""

    method: str
    haar: HaarMagnitudeLimit
    taylor: TaylorMagnitudeLimit | None

    @property
    def kept_fraction(self) -> float:
        if self.method == "taylor" and self.taylor is not None:
            return self.taylor.kept_fraction
        return self.haar.kept_fraction

    def to_dict(self) -> dict[str, Any]:
        h = self.haar
        return {"method": self.method, "kept_fraction": self.kept_fraction,
                "haar": {"kept_fraction": h.kept_fraction, "removed_fraction": h.removed_fraction,
                         "kept_count": h.kept_count, "stderr": h.stderr, "mean_eigenvalue": h.mean_eigenvalue,
                         "mean_eigenvalue_stderr": h.mean_eigenvalue_stderr, "R": h.R,
                         "predicted_increase": h.predicted_increase},
                "taylor": None if self.taylor is None else self.taylor.to_dict()}


def predict_fundamental(spectrum: Spectrum, weights: np.ndarray, eps: float, config: PredictionConfig
                        ) -> FundamentalPrediction:
    """``pruning_limit`` by every method (the primary one first), with the config's policy and η."""
    limits = {m: pruning_limit(spectrum, weights, eps, method=m, negative=config.negative, eta=config.eta)
              for m in METHODS}
    return FundamentalPrediction(config.method, limits)


def taylor_magnitude_limit(
    operator: LinearOperator,
    gradient: torch.Tensor,
    weights: torch.Tensor,
    eps: float,
    *,
    grid_step: float = 0.05,
    order: torch.Tensor | None = None,
    block: int | None = None,
) -> TaylorMagnitudeLimit:
    """The least kept count ``k`` with ``−g_Pᵀw_P + ½ w_PᵀHw_P ≤ ε`` (grid + bisection; one HVP per level).

    ``operator`` is the Hessian at ``weights`` (``w*``), ``gradient`` the gradient there (flat, prunable
    weights), ``order`` the coordinates by decreasing ``|w*|`` (default: computed, ties to the smaller index).
    The grid levels share batched operator calls of at most ``block`` columns (None: one call), which bounds
    the products' memory (the pipeline passes the SLQ's block width, which its memory plan already counts).
    """
    w = weights.detach().to(torch.float64).reshape(-1)
    g = gradient.detach().to(device=w.device, dtype=torch.float64).reshape(-1)
    N = int(w.numel())
    if operator.shape[0] != N or g.numel() != N:
        raise ValueError(f"operator, gradient and weights must share N={N}")
    if order is None:
        order = torch.sort(w.abs(), descending=True, stable=True).indices
    rank = torch.empty(N, dtype=torch.long, device=w.device)
    rank[order] = torch.arange(N, device=w.device)
    hvps = 0

    def pruned_parts(counts: list[int]) -> torch.Tensor:
        cols = [torch.where(rank >= k, w, torch.zeros_like(w)) for k in counts]  # w on P_k = coordinates ranked ≥ k
        return torch.stack(cols, dim=1)

    terms: dict[int, tuple[float, float]] = {}

    def evaluate(counts: list[int]) -> list[float]:
        nonlocal hvps
        todo = [k for k in counts if k not in terms and k < N]
        width = len(todo) if block is None else block
        for i in range(0, len(todo), max(1, width)):
            part = todo[i:i + width]
            U = pruned_parts(part)
            HU = operator.matmat(U.to(operator.dtype)).to(torch.float64)
            hvps += len(part)
            lin = -(g[:, None] * U).sum(0)
            quad = 0.5 * (U * HU).sum(0)
            for k, a, b in zip(part, lin.tolist(), quad.tolist()):
                terms[k] = (a, b)
        return [0.0 if k >= N else terms[k][0] + terms[k][1] for k in counts]

    step = check_real("grid_step", grid_step, minimum=0.0, maximum=1.0, open_min=True)
    search = threshold_search(evaluate, lambda v: v <= eps, N, grid_counts(N, step).tolist())
    lin, quad = terms.get(search.kept_count, (0.0, 0.0))
    return TaylorMagnitudeLimit(search=search, gradient_term=lin, curvature_term=quad, hvps=hvps)


def predict_magnitude(
    spectrum: Spectrum,
    weights: torch.Tensor,
    eps: float,
    config: PredictionConfig,
    *,
    operator: LinearOperator | None = None,
    gradient: torch.Tensor | None = None,
    block: int | None = None,
) -> MagnitudePrediction:
    """The Haar prediction always; the Taylor prediction when ``operator`` and ``gradient`` are given (its
    products in calls of at most ``block`` columns)."""
    haar = haar_magnitude_limit(spectrum, weights.detach().cpu().double().numpy(), eps)
    taylor = None
    if operator is not None and gradient is not None:
        taylor = taylor_magnitude_limit(operator, gradient, weights, eps, grid_step=config.taylor_grid_step,
                                        block=block)
    method = config.magnitude_method if (config.magnitude_method == "haar" or taylor is not None) else "haar"
    return MagnitudePrediction(method, haar, taylor)
