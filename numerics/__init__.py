"""Operators, Lanczos, stochastic Lanczos quadrature and trace estimators on torch tensors.

Modules: :mod:`numerics.operators`, :mod:`numerics.lanczos`, :mod:`numerics.slq`, :mod:`numerics.trace`,
:mod:`numerics.eigs`, :mod:`numerics.testing`.
"""
