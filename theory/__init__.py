"""Closed forms of convex geometry and the pruning limit (numpy/scipy, float64).

Modules: :mod:`theory.cones`, :mod:`theory.statdim`, :mod:`theory.width`, :mod:`theory.kinematics`,
:mod:`theory.limits`, :mod:`theory.quadratic`, :mod:`theory.directional`.
"""
