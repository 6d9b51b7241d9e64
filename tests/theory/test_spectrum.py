"""theory.spectrum: the estimates and their standard errors on rules whose values are exact rationals."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from theory.spectrum import Spectrum


def test_expect_and_trace_with_their_standard_errors():
    """Per-probe rules (1, 2; ½ each), (½, 4; ¾, ¼), (3; 1): per-probe means 3/2, 11/8, 3; the estimate is their
    mean and the standard error std(ddof = 1)/√n_v; trace scales both by n; an exact spectrum has stderr 0."""
    s = Spectrum(np.array([[1.0, 2.0], [0.5, 4.0], [3.0, 3.0]]), np.array([[0.5, 0.5], [0.75, 0.25], [1.0, 0.0]]), 8)
    per = [Fraction(3, 2), Fraction(11, 8), Fraction(3)]
    mean = sum(per) / 3
    se = math.sqrt(float(sum((v - mean) ** 2 for v in per) / 2)) / math.sqrt(3)
    m, e = s.expect(lambda x: x)
    assert m == pytest.approx(float(mean), rel=1e-15) and e == pytest.approx(se, rel=1e-14)
    t, te = s.trace(lambda x: x)
    assert t == pytest.approx(8 * float(mean), rel=1e-15) and te == pytest.approx(8 * se, rel=1e-14)
    assert Spectrum.from_eigenvalues([1.0, 5.0]).expect(lambda x: x) == (3.0, 0.0)
    one = Spectrum(np.array([[1.0, 2.0]]), np.array([[0.5, 0.5]]), 4)
    assert math.isinf(one.expect(lambda x: x)[1])
