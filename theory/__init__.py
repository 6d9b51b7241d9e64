"""Closed forms of convex geometry and the pruning limit (numpy/scipy, float64).

Modules: :mod:`theory.cones`, :mod:`theory.statdim`, :mod:`theory.width`, :mod:`theory.kinematics`,
:mod:`theory.limits`, :mod:`theory.quadratic`, :mod:`theory.directional`. The public names below are
re-exported lazily (PEP 562), so importing the package does no work.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> defining module
_EXPORTS: dict[str, str] = {
    "Cone": "theory.cones",
    "PolarCone": "theory.cones",
    "NegatedCone": "theory.cones",
    "Subspace": "theory.cones",
    "NonnegativeOrthant": "theory.cones",
    "CircularCone": "theory.cones",
    "LorentzCone": "theory.cones",
    "PSDCone": "theory.cones",
    "L1DescentCone": "theory.cones",
    "LinfDescentCone": "theory.cones",
    "NuclearDescentCone": "theory.cones",
    "EllipticCone": "theory.cones",
    "CvxpyCone": "theory.cones",
    "svec": "theory.cones",
    "smat": "theory.cones",
    "circular_intrinsic_volumes": "theory.cones",
    "nuclear_statdim_asymptotic": "theory.cones",
    "MonteCarloResult": "theory.statdim",
    "StatDimFormula": "theory.statdim",
    "PsiResult": "theory.statdim",
    "statistical_dimension": "theory.statdim",
    "statistical_dimension_mc": "theory.statdim",
    "l1_psi": "theory.statdim",
    "l1_psi_nonneg": "theory.statdim",
    "expected_sq_excess": "theory.statdim",
    "chi_mean": "theory.width",
    "gaussian_width_l2_ball": "theory.width",
    "gaussian_width_l1_ball": "theory.width",
    "gaussian_width_linf_ball": "theory.width",
    "gaussian_width_sparse_mc": "theory.width",
    "gaussian_width_sparse_bound": "theory.width",
    "EllipsoidWidth": "theory.width",
    "gaussian_width_ellipsoid": "theory.width",
    "gaussian_width_mc": "theory.width",
    "a_eta": "theory.kinematics",
    "KinematicResult": "theory.kinematics",
    "kinematic_formula": "theory.kinematics",
    "crofton_probability": "theory.kinematics",
    "gordon_escape_probability": "theory.kinematics",
    "PruningLimit": "theory.limits",
    "LimitCurves": "theory.limits",
    "MagnitudeProfile": "theory.limits",
    "pruning_limit": "theory.limits",
    "magnitude_scaling": "theory.limits",
    "authors_pruning_ratio": "theory.limits",
    "AuthorsRatio": "theory.limits",
    "NEGATIVE_POLICIES": "theory.limits",
    "METHODS": "theory.limits",
    "QuadraticModel": "theory.quadratic",
    "MagnitudeCurve": "theory.quadratic",
    "ExactThreshold": "theory.quadratic",
    "FlatSubspace": "theory.directional",
    "flat_subspace": "theory.directional",
    "weighted_lasso_dp": "theory.directional",
    "constrained_dp_objective": "theory.directional",
    "kkt_residual": "theory.directional",
    "DPResult": "theory.directional",
    "constrained_dp_cvxpy": "theory.directional",
    "constrained_dp_admm": "theory.directional",
    "projection_ratio": "theory.directional",
    "STATUS": "theory.directional",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
