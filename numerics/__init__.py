"""Operators, Lanczos, stochastic Lanczos quadrature and trace estimators on torch tensors.

Modules: :mod:`numerics.operators`, :mod:`numerics.lanczos`, :mod:`numerics.slq`, :mod:`numerics.trace`,
:mod:`numerics.eigs`, :mod:`numerics.testing`. The public names below are re-exported lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> defining module. The functions ``slq`` and ``eigs`` share their names with their modules, so
#: they are not re-exported here (the submodule import would shadow them): use ``from numerics.slq import slq``.
_EXPORTS: dict[str, str] = {
    "LinearOperator": "numerics.operators",
    "DenseOperator": "numerics.operators",
    "DiagonalOperator": "numerics.operators",
    "SumOperator": "numerics.operators",
    "ScaledOperator": "numerics.operators",
    "DeflatedOperator": "numerics.operators",
    "aslinearoperator": "numerics.operators",
    "LanczosResult": "numerics.lanczos",
    "lanczos": "numerics.lanczos",
    "tridiagonal_quadrature": "numerics.lanczos",
    "draw_probes": "numerics.lanczos",
    "Spectrum": "theory.spectrum",
    "slq_deflated": "numerics.slq",
    "pyhessian_sigma": "theory.spectrum",
    "ctu_parameters": "theory.spectrum",
    "TraceEstimate": "numerics.trace",
    "hutchinson": "numerics.trace",
    "hutchpp": "numerics.trace",
    "hutchinson_variance": "numerics.trace",
    "EigResult": "numerics.eigs",
    "KnownSpectrum": "numerics.testing",
    "haar_orthogonal": "numerics.testing",
    "goe": "numerics.testing",
    "spiked_wigner": "numerics.testing",
    "wishart": "numerics.testing",
    "rotated_diagonal": "numerics.testing",
    "path_laplacian": "numerics.testing",
    "semicircle_density": "numerics.testing",
    "marchenko_pastur_density": "numerics.testing",
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
