"""Mutation score of the verification: plant one plausible mathematical bug at a time and see what catches it.

    .venv/bin/python bench/mutation.py                 # every mutation, all checks + the relevant tests
    .venv/bin/python bench/mutation.py --subset ci     # the CI subset (tests/test_mutation.py runs it)
    .venv/bin/python bench/mutation.py --only L-sharp-eps K-tail-8d --json out.json

Each entry of :data:`MUTATIONS` replaces one exact snippet of a library file (a constant, a factor, a sign, an
exponent, floor/ceil, swapped terms). The tool copies the source tree once into a temporary directory (never
touching the working tree), applies one mutation at a time to that copy, runs pytest there on

* the ``proofs_check`` derivations (``tests/test_proofs_check.py::test_derivation``) that cover any formula of
  the mutated module in the full run, only those covering the mutated formula (``covers=``) in the CI subset, and
* the relevant test files of the mutated source file (:data:`FILE_TESTS`) plus its module doctests,

restores the file, and reports each mutation as *caught* (some check or test failed) or *survived*, with the
catching checks. "Independent catchers" counts distinct check functions and test functions (parametrisations
of one test count once). The target: every mutation caught, every core formula by at least two. The CI subset
stops at the first failure (it only asks "caught?"); the full run lists every catcher.

Exit status 1 if a mutation survives, if the unmutated copy does not pass, or (``--require-two``) if a core
mutation has fewer than two independent catchers. Timings are wall-clock on a shared machine; the per-mutation
cost is dominated by pytest start-up and the relevant tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what the temporary copy contains (the packages, their tests, and pytest's configuration)
COPY = ("theory", "numerics", "nets", "proofs_check", "tests", "pyproject.toml")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace ``old`` (which must occur exactly once in ``path``) by ``new``."""

    id: str
    path: str
    old: str
    new: str
    formulas: tuple[str, ...]  # formula ids (proofs_check.formulas) whose covering checks run in the CI subset
    what: str
    core: bool = True
    tests: tuple[str, ...] = field(default_factory=tuple)  # extra pytest node ids beyond FILE_TESTS


#: source file -> the test files that exercise it
_PROPS = "tests/theory/test_properties.py"
FILE_TESTS: dict[str, tuple[str, ...]] = {
    "theory/cones.py": ("tests/theory/test_cones.py", "tests/theory/test_statdim.py", "tests/theory/test_kinematics.py", _PROPS),
    "theory/statdim.py": ("tests/theory/test_statdim.py", "tests/theory/test_cones.py", _PROPS),
    "theory/width.py": ("tests/theory/test_width.py", "tests/theory/test_kinematics.py", _PROPS),
    "theory/kinematics.py": ("tests/theory/test_kinematics.py", "tests/theory/test_limits.py", _PROPS),
    "theory/limits.py": ("tests/theory/test_limits.py", "tests/nets/test_prune.py", _PROPS),
    "theory/quadratic.py": ("tests/theory/test_quadratic.py", "tests/theory/test_limits.py"),
    "theory/directional.py": ("tests/theory/test_directional.py",),
    "theory/spectrum.py": ("tests/numerics/test_slq.py", "tests/theory/test_spectrum.py"),
    "numerics/lanczos.py": ("tests/numerics/test_lanczos.py", "tests/numerics/test_slq.py"),
    "numerics/slq.py": ("tests/numerics/test_slq.py",),
    "numerics/trace.py": ("tests/numerics/test_trace.py",),
    "nets/grda.py": ("tests/nets/test_grda.py", "tests/theory/test_directional.py"),
    "nets/prune.py": ("tests/nets/test_prune.py",),
    "nets/limit/predict.py": ("tests/nets/test_limit.py",),
}

_M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    # ---- theory/limits.py -------------------------------------------------------------------------------
    _M("L-sharp-eps", "theory/limits.py", "sharp = trR2 / (trR2 + 2.0 * eps)", "sharp = trR2 / (trR2 + eps)",
       ("theory.limits.pruning_limit#sharpness_bound",), "sharpness bound with ε instead of 2ε"),
    _M("L-unc-half", "theory/limits.py", "f = lambda rho: 0.5 * profile.R2(rho) * mean_lam - eps",
       "f = lambda rho: profile.R2(rho) * mean_lam - eps",
       ("theory.limits.pruning_limit#uncompensated_bound",), "uncompensated bound without its ½"),
    _M("L-band-sqrt", "theory/limits.py", "rho_upper = float(np.clip(rho_star + se_term + a / math.sqrt(D_band), 0.0, 1.0))",
       "rho_upper = float(np.clip(rho_star + se_term + a / D_band, 0.0, 1.0))",
       ("theory.limits.pruning_limit#bands",), "kinematic band a_η/D instead of a_η/√D"),
    _M("L-band-1D", "theory/limits.py", "rho_star - 1.0 / D_band - se_term", "rho_star - se_term",
       ("theory.limits.pruning_limit#bands",), "lower band without the 1/D of δ ≤ w² + 1"),
    _M("L-band-z", "theory/limits.py", "_BAND_Z = 2.0", "_BAND_Z = 1.0",
       ("theory.limits.pruning_limit#bands",), "bands with one standard error instead of two", core=False),
    _M("L-free-factor", "theory/limits.py", "return rho * s / (1.0 - rho), s", "return rho * s / (1.0 + rho), s",
       ("theory.limits.pruning_limit#free",), "m_S = ρs/(1+ρ) instead of ρs/(1−ρ)"),
    _M("L-flat-2eps", "theory/limits.py", "return lam * R2 / (lam * R2 + 2.0 * eps)", "return lam * R2 / (lam * R2 + eps)",
       ("theory.limits.pruning_limit#flat",), "flat formula with ε instead of 2ε"),
    _M("L-R2-swap", "theory/limits.py", "j = (1.0 - np.clip(np.asarray(rho, dtype=np.float64), 0.0, 1.0)) * self.N",
       "j = np.clip(np.asarray(rho, dtype=np.float64), 0.0, 1.0) * self.N",
       ("theory.limits.MagnitudeProfile.R2",), "R²(ρ) read at ρN instead of (1−ρ)N"),
    _M("L-kept-floor", "theory/limits.py", "return min(n, max(0, math.ceil(x - 8.0 * _U * x)))",
       "return min(n, max(0, math.floor(x - 8.0 * _U * x)))", ("theory.limits.kept_count",), "kept_count with ⌊·⌋"),
    _M("L-kept-ulps", "theory/limits.py", "return min(n, max(0, math.ceil(x - 8.0 * _U * x)))",
       "return min(n, max(0, math.ceil(x)))", ("theory.limits.kept_count",), "kept_count without the ulp guard (0.07·100 = 7.000000000000001 → 8)"),
    _M("L-stderr-flat", "theory/limits.py", "return float(se_T / (1.0 - dT))", "return float(se_T / (1.0 + dT))",
       ("theory.limits.pruning_limit#stderr",), "flat delta method with 1 + T'"),
    _M("L-stderr-free", "theory/limits.py", "return float(se_g / dlog_s / abs(dlogD))", "return float(se_g * dlog_s / abs(dlogD))",
       ("theory.limits.pruning_limit#stderr",), "free delta method multiplying by d log s"),
    _M("L-clip-swap", "theory/limits.py", "nodes = np.where(neg, 0.0, nodes)\n    elif", "nodes = np.where(neg, nodes, 0.0)\n    elif",
       ("theory.limits.pruning_limit#negative",), "clip policy with swapped branches"),
    _M("L-zero-mass", "theory/limits.py", "weights = np.concatenate([(1.0 - z) * weights,", "weights = np.concatenate([weights,",
       ("theory.limits.pruning_limit#zero_mass",), "zero mass added without rescaling the rest"),
    _M("L-authors-floor", "theory/limits.py", "np.maximum(1, np.ceil(removed * float(N)))", "np.maximum(1, np.floor(removed * float(N)))",
       ("theory.limits.authors_pruning_ratio",), "the authors' removed count with ⌊·⌋", core=False),
    _M("L-g-swap", "theory/limits.py", "return self.mean(lam / (lam + s))", "return self.mean(s / (lam + s))",
       ("theory.limits.pruning_limit#free",), "E[s/(λ+s)] instead of E[λ/(λ+s)]"),
    _M("L-haar-half", "theory/limits.py", "rho = float(brentq(lambda r: 0.5 * profile.R2(r) * m - eps, 0.0, 1.0, xtol=_XTOL))",
       "rho = float(brentq(lambda r: profile.R2(r) * m - eps, 0.0, 1.0, xtol=_XTOL))",
       ("theory.limits.haar_magnitude_limit",), "Haar magnitude limit without the ½"),
    _M("L-haar-se", "theory/limits.py", "se = float(2.0 * eps / (m * m) * m_se / abs(slope))", "se = float(eps / (m * m) * m_se / abs(slope))",
       ("theory.limits.haar_magnitude_limit#stderr",), "Haar limit stderr with ε instead of 2ε"),
    _M("T-taylor-lin", "nets/limit/predict.py", "lin = -(g[:, None] * U).sum(0)", "lin = (g[:, None] * U).sum(0)",
       ("nets.limit.predict.taylor_magnitude_limit",), "Taylor model with +g_Pᵀw_P"),
    _M("T-taylor-half", "nets/limit/predict.py", "quad = 0.5 * (U * HU).sum(0)", "quad = (U * HU).sum(0)",
       ("nets.limit.predict.taylor_magnitude_limit",), "Taylor model without the ½"),
    # ---- theory/kinematics.py ---------------------------------------------------------------------------
    _M("K-tail-8d", "theory/kinematics.py", "math.exp(-margin * margin / (8.0 * d))", "math.exp(-margin * margin / (4.0 * d))",
       ("theory.kinematics.kinematic_formula#tail",), "kinematic tail with 4d instead of 8d"),
    _M("K-a-eta", "theory/kinematics.py", "math.sqrt(8.0 * math.log(4.0 / _eta(eta)))", "math.sqrt(8.0 * math.log(2.0 / _eta(eta)))",
       ("theory.kinematics.a_eta",), "a_η with log(2/η)"),
    _M("K-regime-sign", "theory/kinematics.py", "if margin <= -half:", "if margin <= half:",
       ("theory.kinematics.kinematic_formula#regime",), "infeasible regime below +a_η√d"),
    _M("K-crofton-parity", "theory/kinematics.py", "2.0 * np.sum(v[m + 1 :: 2])", "2.0 * np.sum(v[m :: 2])",
       ("theory.kinematics.crofton_probability",), "Crofton 2h_m instead of 2h_{m+1}"),
    _M("K-gordon-sqrt", "theory/kinematics.py", "gap = chi_mean(m) - width", "gap = math.sqrt(m) - width",
       ("theory.kinematics.gordon_escape_probability",), "Gordon's escape with √m instead of λ_m"),
    _M("K-gordon-half", "theory/kinematics.py", "-math.expm1(-0.5 * gap * gap)", "-math.expm1(-gap * gap)",
       ("theory.kinematics.gordon_escape_probability",), "Gordon's escape without the ½"),
    # ---- theory/cones.py --------------------------------------------------------------------------------
    _M("C-circ-swap", "theory/cones.py", "v[0] = 0.5 * special.betainc((d - 1) / 2, 0.5, c * c)",
       "v[0] = 0.5 * special.betainc((d - 1) / 2, 0.5, s * s)", ("theory.cones.circular_intrinsic_volumes",),
       "circular v₀ with sin² (the v₀ ↔ v_d swap, invisible at α = π/4)"),
    _M("C-circ-exp", "theory/cones.py", "+ (k - 1) * math.log(s)", "+ k * math.log(s)",
       ("theory.cones.circular_intrinsic_volumes",), "circular v_k with sin^k instead of sin^{k−1}"),
    _M("C-circ-proj", "theory/cones.py", "c = x1 * self._cos + r * self._sin  # length", "c = x1 * self._sin + r * self._cos  # length",
       ("theory.cones.CircularCone.project",), "circular projection length with sin and cos swapped"),
    _M("C-orthant-vol", "theory/cones.py", "- d * math.log(2))", "- (d - 1) * math.log(2))",
       ("theory.cones.NonnegativeOrthant.intrinsic_volumes",), "orthant volumes C(d,k)/2^{d−1}"),
    _M("C-psd-statdim", "theory/cones.py", "return self.n * (self.n + 1) / 4.0", "return self.n * (self.n + 1) / 2.0",
       ("theory.cones.PSDCone.statistical_dimension",), "δ(PSD) = n(n+1)/2"),
    _M("C-linf-statdim", "theory/cones.py", "return self.ambient_dim - self.k / 2.0", "return self.ambient_dim - self.k",
       ("theory.cones.LinfDescentCone.statistical_dimension",), "δ(ℓ∞ descent) = d − k"),
    _M("C-tau-knots", "theory/cones.py", "knots = (s + j - 1.0) * h - c[..., None] - Cprev", "knots = (s + j) * h - c[..., None] - Cprev",
       ("theory.cones.L1DescentCone.sq_norm_projection",), "descent-cone τ* with shifted knots"),
    _M("C-elliptic-h", "theory/cones.py", "f = (1.0 - 2.0 * t) * N - s[active]", "f = (1.0 - t) * N - s[active]",
       ("theory.cones.EllipticCone.project",), "elliptic root equation (1 − θ) instead of (1 − 2θ)"),
    _M("C-elliptic-z", "theory/cones.py", "z = y[mid] * (1.0 - theta) / (1.0 - theta + theta * self._b2)",
       "z = y[mid] / (1.0 - theta + theta * self._b2)", ("theory.cones.EllipticCone.project",),
       "elliptic z without the factor 1 − θ"),
    _M("C-elliptic-polar", "theory/cones.py", "return NegatedCone(EllipticCone(1.0 / self.slopes))",
       "return NegatedCone(EllipticCone(self.slopes))", ("theory.cones.EllipticCone.polar",), "elliptic polar slopes a instead of 1/a"),
    _M("C-elliptic-lead", "theory/cones.py", "return float(np.sum(a2 / (1.0 + a2)))", "return float(np.sum(a2 / (1.0 + self.slopes)))",
       ("theory.cones.EllipticCone.statistical_dimension_leading_order",), "leading order a²/(1 + a)"),
    _M("C-nuclear-asym", "theory/cones.py", "r * (n - r) * t * t", "r * (m - r) * t * t",
       ("theory.cones.nuclear_statdim_asymptotic",), "nuclear asymptotic with (m − r) in the τ² term"),
    _M("C-svec", "theory/cones.py", "w = np.where(i == j, 1.0, math.sqrt(2.0))\n    return S[..., i, j] * w",
       "w = np.where(i == j, 1.0, 2.0)\n    return S[..., i, j] * w", ("theory.cones.svec",), "svec with 2 instead of √2"),
    # ---- theory/statdim.py ------------------------------------------------------------------------------
    _M("S-excess-sign", "theory/statdim.py", "((1.0 + t * t) * special.erfcx", "((1.0 - t * t) * special.erfcx",
       ("theory.statdim.expected_sq_excess",), "E(|g| − τ)₊² with 1 − τ²"),
    _M("S-psi-target", "theory/statdim.py", "target = (2.0 if half else 1.0) * rm / (1.0 - rm)", "target = rm / (1.0 - rm)",
       ("theory.statdim.l1_psi_nonneg",), "ψ₊ stationarity without the factor 2"),
    _M("S-psi-half", "theory/statdim.py", "factor = 0.5 if half else 1.0", "factor = 1.0",
       ("theory.statdim.l1_psi_nonneg",), "ψ₊ without half the off-support term"),
    _M("S-l1-lower", "theory/statdim.py", "val - 2.0 * math.sqrt(d / cone.s)", "val - math.sqrt(d / cone.s)",
       ("theory.statdim.statistical_dimension",), "ℓ1 lower bound dψ − √(d/s)"),
    _M("S-mc-stderr", "theory/statdim.py", "MonteCarloResult(float(np.mean(vals)), std / math.sqrt(n), n, std)",
       "MonteCarloResult(float(np.mean(vals)), std / n, n, std)", ("theory.statdim.statistical_dimension_mc",),
       "Monte Carlo standard error std/n"),
    # ---- theory/width.py --------------------------------------------------------------------------------
    _M("W-sparse-tau", "theory/width.py", "stats.norm.isf(k / (2.0 * d))", "stats.norm.isf(k / d)",
       ("theory.width.gaussian_width_sparse_bound",), "sparse-width τ from Q(τ) = k/d"),
    _M("W-sparse-excess", "theory/width.py", "+ 2.0 * (1.0 - tau * tau) * stats.norm.sf(tau)", "+ (1.0 - tau * tau) * stats.norm.sf(tau)",
       ("theory.width.gaussian_width_sparse_bound",), "E(g² − τ²)₊ with (1 − τ²)Q(τ)"),
    _M("W-ell-lower", "theory/width.py", "lows = (math.sqrt(2.0 / math.pi) * math.sqrt(tr)", "lows = (math.sqrt(1.0 / math.pi) * math.sqrt(tr)",
       ("theory.width.gaussian_width_ellipsoid",), "ellipsoid lower bound √(1/π)√tr"),
    _M("W-ell-integrand", "theory/width.py", "np.log1p(2.0 * t * m)", "np.log1p(t * m)",
       ("theory.width.gaussian_width_ellipsoid",), "ellipsoid mgf (1 + tμ)^{−1/2}"),
    _M("W-chi-series", "theory/width.py", "np.exp(-1 / (8 * x) + 1 / (192 * x**3)", "np.exp(-1 / (4 * x) + 1 / (192 * x**3)",
       ("theory.width.chi_mean",), "λ_k series with 1/(4x)"),
    _M("W-l1-ball", "theory/width.py", "return -math.expm1(d * math.log1p(", "return -math.expm1((d - 1) * math.log1p(",
       ("theory.width.gaussian_width_l1_ball",), "ℓ1-ball width with d − 1"),
    # ---- theory/quadratic.py ----------------------------------------------------------------------------
    _M("Q-schur-sign", "theory/quadratic.py", "S = H_PP - H_TP.T @ self._psolve", "S = H_PP + H_TP.T @ self._psolve",
       ("theory.quadratic.QuadraticModel.schur_complement",), "Schur complement with +"),
    _M("Q-ldl-half", "theory/quadratic.py", "comp[:-1] = 0.5 * np.cumsum(terms[::-1])[::-1]", "comp[:-1] = np.cumsum(terms[::-1])[::-1]",
       ("theory.quadratic.QuadraticModel.magnitude_curve",), "LDLᵀ curve without ½"),
    _M("Q-unc-2", "theory/quadratic.py", "inc = wp * (np.diag(Hp) * wp + 2.0 * Hw_tail)", "inc = wp * (np.diag(Hp) * wp + Hw_tail)",
       ("theory.quadratic.QuadraticModel.magnitude_curve",), "uncompensated curve without the cross-term 2"),
    _M("Q-threshold", "theory/quadratic.py", "return 0 if bad.size == 0 else int(bad[-1] + 1)", "return 0 if bad.size == 0 else int(bad[-1])",
       ("theory.quadratic.QuadraticModel.magnitude_threshold",), "exact threshold one too small"),
    _M("Q-cone-slope", "theory/quadratic.py", "return np.sqrt(q[0] / -q[1:]), U", "return np.sqrt(-q[1:] / q[0]), U",
       ("theory.quadratic.QuadraticModel.cone_basis",), "cone slopes inverted"),
    # ---- theory/directional.py --------------------------------------------------------------------------
    _M("D-lasso-weights", "theory/directional.py", "s = sgn * flat.project_flat(sgn)\n    limit = ", "s = flat.project_flat(sgn)\n    limit = ",
       ("theory.directional.weighted_lasso_dp",), "weighted lasso s without sign(w)"),
    _M("D-admm-soft", "theory/directional.py", "np.maximum(np.abs(x) - lam / rho, 0.0)", "np.maximum(np.abs(x) - lam * rho, 0.0)",
       ("theory.directional.constrained_dp_admm",), "ADMM prox threshold λρ instead of λ/ρ"),
    _M("D-flat-abs", "theory/directional.py", "mask = np.abs(evals) <= tau * lam_max", "mask = evals <= tau * lam_max",
       ("theory.directional.flat_subspace",), "negative curvature counted as flat"),
    _M("D-kkt-sign", "theory/directional.py", "rhs = -z - lam * (U[S].T @ np.sign(w[S]))", "rhs = z - lam * (U[S].T @ np.sign(w[S]))",
       ("theory.directional.kkt_residual",), "KKT stationarity with +z"),
    _M("D-wl-limit", "theory/directional.py", "return float(np.min(np.abs(w[pos]) / s[pos])) if np.any(pos) else math.inf",
       "return float(np.max(np.abs(w[pos]) / s[pos])) if np.any(pos) else math.inf",
       ("theory.directional.weighted_lasso_limit",), "weighted-lasso validity limit from the last coordinate, not the first"),
    # ---- theory/spectrum.py, numerics -------------------------------------------------------------------
    _M("N-gauss-weights", "numerics/lanczos.py", "w = Y[0, :] ** 2", "w = np.abs(Y[0, :])",
       ("numerics.lanczos.tridiagonal_quadrature",), "Gauss weights |e₁ᵀy| instead of (e₁ᵀy)²"),
    _M("N-hutch-rad", "numerics/trace.py", "return 2.0 * (fro2 - float(np.sum(np.diag(S) ** 2))) / n_probes",
       "return 2.0 * (fro2 + float(np.sum(np.diag(S) ** 2))) / n_probes", ("numerics.trace.hutchinson_variance",),
       "Rademacher variance with + Σ A_ii²"),
    _M("N-hutch-var-n", "numerics/trace.py", "var = float(samples.var(ddof=1) / N) if N > 1 else math.inf",
       "var = float(samples.var(ddof=1)) if N > 1 else math.inf", ("numerics.trace.hutchinson",),
       "Hutchinson variance of one sample instead of the mean"),
    _M("N-hutchpp-trace", "numerics/trace.py", "exact_part = float(torch.trace(Q.T @ AQ))", "exact_part = float(torch.trace(AQ))",
       ("numerics.trace.hutchpp",), "Hutch++ exact part tr(AQ) instead of tr(QᵀAQ)"),
    _M("N-deflated-w", "numerics/slq.py", "weights = np.concatenate([np.full((nv, k), 1.0 / n), weights_r * ((n - k) / n)], axis=1)",
       "weights = np.concatenate([np.full((nv, k), 1.0 / k), weights_r * ((n - k) / n)], axis=1)",
       ("numerics.slq.slq_deflated",), "deflated pairs weighted 1/k"),
    _M("N-spec-stderr", "theory/spectrum.py", "se = float(vals.std(ddof=1) / math.sqrt(vals.size))", "se = float(vals.std(ddof=1) / vals.size)",
       ("theory.spectrum.Spectrum.expect",), "SLQ standard error std/n_v"),
    _M("N-ctu-steps", "theory/spectrum.py", "math.ceil(12.0 / t + 0.5)", "math.ceil(12.0 / t - 0.5)",
       ("theory.spectrum.ctu_parameters",), "CTU steps ⌈12/t − ½⌉", core=False),
    _M("N-cms-lower", "theory/spectrum.py", "lower[i] = below - (float(tau[j - 1]) if j > 0 else 0.0)", "lower[i] = below",
       ("theory.spectrum.Spectrum.mass_bounds_per_probe",), "CMS lower bound without the adjacent node"),
    # ---- nets/grda.py -----------------------------------------------------------------------------------
    _M("G-exponent", "nets/grda.py", "return c * lr ** (mu + 0.5) * float(k) ** mu", "return c * lr ** (mu - 0.5) * float(k) ** mu",
       ("nets.grda.threshold_closed_form",), "threshold γ^{μ−½}"),
    _M("G-increment", "nets/grda.py", "math.expm1(mu * math.log1p(-1.0 / k))", "math.expm1(mu * math.log1p(1.0 / k))",
       ("nets.grda.threshold_increment",), "increment (k+1)^μ − k^μ"),
    _M("G-counter", "nets/grda.py", "return n if convention == \"authors\" else n - 1", "return n if convention == \"authors\" else n + 1",
       ("nets.grda.threshold_closed_form",), "paper convention n + 1"),
    _M("G-soft", "nets/grda.py", "p.copy_(torch.sign(a) * torch.clamp_min(torch.abs(a) - T, 0.0))",
       "p.copy_(torch.clamp_min(a - T, 0.0))", ("nets.grda.grda_update#threshold",), "one-sided soft threshold (reference path)"),
    _M("G-ema", "nets/grda.py", "buf.lerp_(d, 1.0 - momentum)", "buf.lerp_(d, momentum)",
       ("nets.grda.grda_update#momentum",), "EMA weight β instead of 1 − β (reference path)"),
    _M("G-damp", "nets/grda.py", "torch._foreach_add_(B, Dold, alpha=1.0 - damp)", "torch._foreach_add_(B, Dold, alpha=1.0)",
       ("nets.grda.grda_update#momentum",), "dampening ignored (foreach path)"),
    _M("G-dual-sign", "nets/grda.py", "torch._foreach_add_(A, D, alpha=-lr)", "torch._foreach_add_(A, D, alpha=lr)",
       ("nets.grda.grda_update#dual",), "dual step uphill (foreach path)"),
    _M("G-wd", "nets/grda.py", "D = torch._foreach_add(D, P, alpha=wd)", "D = torch._foreach_add(D, P, alpha=-wd)",
       ("nets.grda.grda_update#dual",), "weight decay sign (foreach path)"),
    _M("G-predict-c", "nets/grda.py", "T = a[m - 1] if m == a.size else 0.5 * (a[m - 1] + a[m])", "T = a[m - 1] if m == a.size else a[m]",
       ("nets.grda.predict_c",), "calibration threshold at the (m+1)-th dual sum instead of the midpoint"),
    # ---- nets/prune.py ----------------------------------------------------------------------------------
    _M("P-topk", "nets/prune.py", "order = torch.sort(scores, descending=True, stable=True).indices",
       "order = torch.sort(scores, descending=False, stable=True).indices",
       ("nets.prune.global_magnitude_masks",), "magnitude pruning keeps the smallest"),
    _M("P-smart-q", "nets/prune.py", "(big_l - l + 1) ** 2 + (big_l - l + 1)", "(big_l - l + 1) ** 2",
       ("nets.prune.smart_ratio_kept_counts",), "Smart-Ratio q_l without the linear term"),
    _M("P-smart-floor", "nets/prune.py", "base = np.minimum(np.floor(exact), nl)", "base = np.minimum(np.round(exact), nl)",
       ("nets.prune.smart_ratio_kept_counts",), "Smart-Ratio counts rounded instead of floored", core=False),
)

#: The CI subset (tests/test_mutation.py): the four mutations that once survived everything, and one from
#: each other area. Budgeted to ~5 minutes on the shared 2-core machine.
CI_SUBSET: tuple[str, ...] = (
    "L-sharp-eps", "K-tail-8d", "L-band-sqrt", "L-unc-half",
    "C-circ-swap", "L-kept-ulps", "L-stderr-free", "S-psi-half", "W-sparse-excess", "Q-schur-sign",
    "N-hutch-rad", "G-exponent",
)


# ------------------------------------------------------------------------------------------------------------
def check_mutations(root: Path = ROOT) -> list[str]:
    """Problems with the mutation list against the tree at ``root`` (each ``old`` must occur exactly once)."""
    problems, seen = [], set()
    for m in MUTATIONS:
        if m.id in seen:
            problems.append(f"duplicate mutation id {m.id}")
        seen.add(m.id)
        text = (root / m.path).read_text(encoding="utf-8")
        n = text.count(m.old)
        if n != 1:
            problems.append(f"{m.id}: {m.old!r} occurs {n} times in {m.path} (expected once)")
        if m.path not in FILE_TESTS:
            problems.append(f"{m.id}: no relevant tests listed for {m.path}")
    return problems


def _checks_covering(formula_ids: tuple[str, ...]) -> list[str]:
    """The derivation checks that name one of ``formula_ids`` in their ``covers=``."""
    from proofs_check.registry import all_checks

    return [c.name for c in all_checks() if set(c.covers) & set(formula_ids)]


def _checks_for_file(path: str) -> list[str]:
    """The derivation checks covering any formula of the module at ``path`` (the full run's selection)."""
    from proofs_check.registry import all_checks

    module = path[:-3].replace("/", ".") + "."
    return [c.name for c in all_checks() if any(f.startswith(module) for f in c.covers)]


def _module_doctest(path: str) -> str:
    return f"tests/test_doctests.py::test_module_doctests[{path[:-3].replace('/', '.')}]"


def _failed_nodes(junit: Path) -> list[str]:
    if not junit.exists():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            cls = case.get("classname", "")
            # classname "tests.theory.test_cones.TestEllipticCone" -> file + class
            parts = cls.split(".")
            for i in range(len(parts), 0, -1):
                if parts[i - 1].startswith("test_"):
                    file = "/".join(parts[:i]) + ".py"
                    rest = parts[i:]
                    break
            else:
                file, rest = cls, []
            out.append("::".join([file, *rest, case.get("name", "")]))
    return out


def _catcher(node: str) -> str:
    """The independent unit a failed node belongs to: the derivation check's name, or the test function."""
    if "test_proofs_check.py::test_derivation[" in node:
        return "proofs_check:" + node.split("test_derivation[", 1)[1].rstrip("]")
    return node.split("[", 1)[0]


def _stamp(path: Path, counter: list[int]) -> None:
    # a fresh mtime per write, so that Python never reuses bytecode compiled from another version
    counter[0] += 2
    t = 1_000_000_000 + counter[0]
    os.utime(path, (t, t))


def run(selected: list[Mutation], *, ci: bool, timeout: float, test_timeout: float = 120.0, progress=print) -> dict:
    """Apply each mutation to a temporary copy of the tree and run the checks; return the report dict."""
    work = Path(tempfile.mkdtemp(prefix="prunelimit-mutation-"))
    counter = [0]
    try:
        for name in COPY:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis"))
            else:
                shutil.copy2(src, work / name)
        env = dict(os.environ, PYTHONPATH=str(work), OMP_NUM_THREADS="1",
                   PYTHONPYCACHEPREFIX=str(work / ".pycache"), PRUNELIMIT_MUTATION_RUN="1")

        def pytest(nodes: list[str], junit: Path, stop_first: bool) -> tuple[int, float]:
            # a mutation that makes a computation hang is caught by the per-test timeout (pytest-timeout)
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--junitxml", str(junit),
                   "-W", "ignore::DeprecationWarning", f"--timeout={test_timeout:g}"]
            if stop_first:
                cmd.append("-x")
            t0 = time.perf_counter()
            try:
                rc = subprocess.run(cmd + nodes, cwd=work, env=env, capture_output=True, text=True, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            return rc, time.perf_counter() - t0

        def stages_for(m: Mutation) -> list[list[str]]:
            checks = _checks_covering(m.formulas) if ci else _checks_for_file(m.path)
            first = [f"tests/test_proofs_check.py::test_derivation[{c}]" for c in checks] + [_module_doctest(m.path)]
            tests = list(FILE_TESTS[m.path]) + list(m.tests)
            # CI: the covering checks first, the test files only if they all pass (the subset asks "caught?")
            return [first, tests] if ci else [first + tests]

        if ci:  # the test files pass in the same CI run; the copy only needs its covering checks to pass
            baseline_nodes = sorted({n for m in selected for n in stages_for(m)[0]})
        else:
            baseline_nodes = sorted({n for m in selected for stage in stages_for(m) for n in stage})
        progress(f"baseline: {len(baseline_nodes)} targets on the unmutated copy in {work}")
        rc, secs = pytest(baseline_nodes, work / "baseline.xml", stop_first=False)
        baseline_failed = _failed_nodes(work / "baseline.xml")
        report = {"baseline": {"returncode": rc, "seconds": secs, "failed": baseline_failed}, "mutations": []}
        if rc != 0:
            progress(f"baseline FAILED (rc={rc}): {baseline_failed[:5]}")
            return report
        progress(f"baseline passed in {secs:.0f} s")
        for i, m in enumerate(selected, 1):
            target = work / m.path
            original = target.read_text(encoding="utf-8")
            target.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
            _stamp(target, counter)
            failed, rc, secs = [], 0, 0.0
            try:
                for j, nodes in enumerate(stages_for(m)):
                    junit = work / f"m{i}-{j}.xml"
                    rc, t = pytest(nodes, junit, stop_first=ci)
                    secs += t
                    failed += _failed_nodes(junit)
                    if rc != 0:
                        break
            finally:
                target.write_text(original, encoding="utf-8")
                _stamp(target, counter)
            catchers = sorted({_catcher(n) for n in failed})
            caught = rc != 0
            row = {"id": m.id, "path": m.path, "what": m.what, "formulas": list(m.formulas), "core": m.core,
                   "caught": caught, "catchers": catchers, "independent": len(catchers), "seconds": round(secs, 1),
                   "timeout": rc == -1}
            report["mutations"].append(row)
            progress(f"[{i}/{len(selected)}] {m.id:18s} {'caught' if caught else 'SURVIVED':8s} by {len(catchers)} "
                     f"({secs:.0f} s): {', '.join(catchers[:6])}{' …' if len(catchers) > 6 else ''}")
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(report: dict) -> str:
    lines = ["| mutation | file | planted bug | caught | independent catchers | catching checks and tests |",
             "|---|---|---|---|---|---|"]
    for r in report["mutations"]:
        catchers = ", ".join(f"`{c}`" for c in r["catchers"]) or "—"
        lines.append(f"| {r['id']} | {r['path']} | {r['what']} | {'yes' if r['caught'] else '**no**'} | {r['independent']} | {catchers} |")
    rows = report["mutations"]
    caught = sum(r["caught"] for r in rows)
    two = sum(r["independent"] >= 2 for r in rows if r["core"])
    n_core = sum(r["core"] for r in rows)
    lines.append("")
    lines.append(f"caught {caught} of {len(rows)}; core mutations with ≥ 2 independent catchers: {two} of {n_core}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=("all", "ci"), default="all",
                        help="ci: the CI subset, covering checks only, stop at the first failure")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutation ids")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON")
    parser.add_argument("--require-two", action="store_true", help="fail if a core mutation has < 2 catchers")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run")
    parser.add_argument("--test-timeout", type=float, default=120.0, help="seconds per test (a hang counts as caught)")
    args = parser.parse_args(argv)

    problems = check_mutations()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    if args.list:
        for m in MUTATIONS:
            print(f"{m.id:18s} {m.path:22s} {m.what}")
        return 0
    by_id = {m.id: m for m in MUTATIONS}
    ids = args.only or (list(CI_SUBSET) if args.subset == "ci" else [m.id for m in MUTATIONS])
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        print(f"unknown mutation ids: {unknown}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    report = run([by_id[i] for i in ids], ci=args.subset == "ci", timeout=args.timeout, test_timeout=args.test_timeout)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["subset"] = args.subset
    report["environment"] = {"python": platform.python_version(), "machine": platform.machine(),
                             "cpus": os.cpu_count(), "note": "wall-clock on a shared machine"}
    print(render(report))
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        from nets.io import atomic_write_json

        atomic_write_json(args.json, report, indent=1)
    rows = report["mutations"]
    if report["baseline"]["returncode"] != 0:
        return 1
    if any(not r["caught"] for r in rows):
        return 1
    if args.require_two and any(r["core"] and r["independent"] < 2 for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
