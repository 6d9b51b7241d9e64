"""Symbolic (sympy) and high-precision (mpmath) checks of every derivation the package relies on.

Run ``python -m proofs_check``: it prints one row per check (the equation verified, pass/fail, detail) and
exits non-zero on any failure.
"""

from proofs_check.registry import CheckResult, all_checks, check, run_all

__all__ = ["CheckResult", "all_checks", "check", "run_all"]
