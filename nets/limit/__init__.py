"""The pruning-limit pipeline: predicted vs measured limits of a trained network, as typed stages.

Two limits (docs/math.md §2.2), each predicted and measured:

* the **fundamental** (compensated) limit — predicted from the Hessian spectrum (flat: the authors' formula;
  free: ours), measured by compensated pruning in the real network;
* the **magnitude-pruning** (LOMP) limit — predicted by the Taylor model (real Hessian and gradient) or the
  Haar model (spectrum only), measured by the LOMP sweep.

Stages (each a public function with a frozen config and a frozen result):

1. :func:`estimate_tolerance` (:class:`ToleranceConfig` → :class:`ToleranceResult`): ``L(w*)``, ε, dense metrics;
2. :func:`estimate_spectrum` (:class:`SpectrumConfig` → :class:`numerics.slq.SLQResult`);
3. :func:`predict_fundamental`, :func:`predict_magnitude` (:class:`PredictionConfig`);
4. :func:`measure_magnitude`, :func:`measure_fundamental` (:class:`MeasureConfig`);
5. :func:`quadratic_oracle` (:class:`OracleConfig`), small models only;

checked before any work against the device's memory (:func:`plan_memory`, :func:`check_plan`) and split
across ``torch.distributed`` ranks when a process group is initialised (:mod:`nets.limit.parallel`);

composed by :func:`estimate_pruning_limit` (:class:`LimitConfig`) into a :class:`LimitResult`.

>>> import torch
>>> from torch import nn
>>> g = torch.Generator().manual_seed(0)
>>> X = torch.randn(256, 6, generator=g); y = (X[:, 0] + X[:, 1] > 0).long()
>>> model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
>>> opt = torch.optim.Adam(model.parameters(), lr=0.05)
>>> for _ in range(200):
...     opt.zero_grad(); nn.functional.cross_entropy(model(X), y).backward(); opt.step()
>>> cfg = LimitConfig(spectrum=SpectrumConfig(steps=32, n_probes=2), oracle=OracleConfig(enabled=False))
>>> r = estimate_pruning_limit(model, (X, y), config=cfg)
>>> 0.0 <= r.fundamental.measured <= r.magnitude.measured <= 1.0
True
"""

from __future__ import annotations

from nets.limit.measure import (
    DEFAULT_ACCURACY_TOLERANCE,
    MAX_GRID_LEVELS,
    CriterionLimit,
    FundamentalMeasurement,
    MagnitudeMeasurement,
    MeasureConfig,
    measure_fundamental,
    measure_magnitude,
)
from nets.limit.oracle import DEFAULT_ORACLE_MAX_N, OracleConfig, QuadraticOracle, quadratic_oracle
from nets.limit.pipeline import LimitConfig, describe_cost, estimate_pruning_limit
from nets.limit.predict import (
    DEFAULT_FUNDAMENTAL_METHOD,
    DEFAULT_MAGNITUDE_METHOD,
    FundamentalPrediction,
    MagnitudePrediction,
    PredictionConfig,
    TaylorMagnitudeLimit,
    predict_fundamental,
    predict_magnitude,
    taylor_magnitude_limit,
)
from nets.limit.preflight import MemoryPlan, MemoryRefusal, available_memory, check_plan, plan_memory
from nets.limit.result import LimitPair, LimitResult, LimitWarning, diagnose, settings_warnings
from nets.limit.search import SearchResult, threshold_search
from nets.limit.spectrum import (
    DEFAULT_SLQ_PROBES,
    DEFAULT_SLQ_STEPS,
    SpectrumConfig,
    SpectrumSummary,
    estimate_spectrum,
    hessian_operator,
    summarize_spectrum,
)
from nets.limit.tolerance import DEFAULT_EPS_BATCH_SIZE, Metrics, ToleranceConfig, ToleranceResult, estimate_tolerance

__all__ = [
    "LimitConfig", "estimate_pruning_limit", "LimitResult", "LimitPair", "LimitWarning", "diagnose",
    "settings_warnings", "describe_cost", "MemoryPlan", "MemoryRefusal", "plan_memory", "available_memory",
    "check_plan",
    "ToleranceConfig", "ToleranceResult", "Metrics", "estimate_tolerance", "DEFAULT_EPS_BATCH_SIZE",
    "SpectrumConfig", "SpectrumSummary", "estimate_spectrum", "hessian_operator", "summarize_spectrum",
    "DEFAULT_SLQ_STEPS", "DEFAULT_SLQ_PROBES",
    "PredictionConfig", "FundamentalPrediction", "MagnitudePrediction", "TaylorMagnitudeLimit",
    "predict_fundamental", "predict_magnitude", "taylor_magnitude_limit", "DEFAULT_FUNDAMENTAL_METHOD",
    "DEFAULT_MAGNITUDE_METHOD",
    "MeasureConfig", "CriterionLimit", "MagnitudeMeasurement", "FundamentalMeasurement", "measure_magnitude",
    "measure_fundamental", "MAX_GRID_LEVELS", "DEFAULT_ACCURACY_TOLERANCE",
    "OracleConfig", "QuadraticOracle", "quadratic_oracle", "DEFAULT_ORACLE_MAX_N",
    "SearchResult", "threshold_search",
]
