"""Symbolic (sympy) and high-precision (mpmath) checks of every derivation the package relies on, each tied to
the library functions that implement it.

Run ``python -m proofs_check``: it prints one row per check (the equation verified, pass/fail, detail), verifies
that every library formula is covered by a check, and exits non-zero on any failure or gap.
``python -m proofs_check --coverage [--markdown] [--by-check]`` prints which check covers which formula (the
table docs/math.md includes). A new formula function is registered with one line in
:mod:`proofs_check.formulas` and covered by a check that names it in ``covers=``.
"""

from proofs_check.registry import CheckResult, all_checks, check, run_all

__all__ = ["CheckResult", "all_checks", "check", "run_all"]
