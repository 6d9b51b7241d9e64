"""The high-precision geometry checks work at their own mpmath precision and leave the global one as it was."""

from __future__ import annotations

import mpmath as mp

from proofs_check import geometry


def test_geometry_checks_restore_mpmath_precision():
    before = mp.mp.dps
    try:
        mp.mp.dps = 17
        assert geometry.circular_volumes().passed
        assert mp.mp.dps == 17
        assert geometry.elliptic_leading_order().passed
        assert mp.mp.dps == 17
    finally:
        mp.mp.dps = before
