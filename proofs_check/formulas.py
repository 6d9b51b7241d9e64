"""The library functions that implement a formula, each registered once, and what the coverage scan skips.

``python -m proofs_check --coverage`` lists every formula below with the checks that cover it (a check names
its formulas with ``@check(..., covers=(...))``), and ``python -m proofs_check`` fails when

* a formula is covered by no check,
* a check covers an id that is not registered here (a typo, or a renamed function),
* an id does not resolve to a library object any more, or
* a public function or class of a :data:`SCANNED_MODULES` module is neither registered here nor listed in
  :data:`EXEMPT` with the reason it implements no formula.

**Registering a new formula function** (the hook for new work, e.g. new predictions in
:mod:`theory.limits`) is one line in this file::

    formula("theory.limits.my_new_prediction", "§2.1", "what it computes, in one line")

and one or more checks naming it in ``covers=`` (in ``proofs_check/limits.py`` for the pruning limit) that
evaluate it at several non-degenerate points against a symbolic or ≥ 30-digit reference. Until both exist,
``python -m proofs_check`` fails with the name of the unregistered or uncovered function.

An id is ``module.attribute[.attribute]`` (a function, a class or a method), optionally followed by
``#facet`` for one formula among several computed by the same function (``pruning_limit#sharpness_bound``).
Sections refer to docs/math.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Formula", "FORMULAS", "formula", "SCANNED_MODULES", "EXEMPT"]


@dataclass(frozen=True)
class Formula:
    """A registered formula: ``id`` (see the module docstring), docs ``section`` and a one-line ``what``."""

    id: str
    section: str
    what: str

    @property
    def target(self) -> str:
        """The dotted library path (the id without its ``#facet``)."""
        return self.id.split("#", 1)[0]


#: id -> Formula, in registration order
FORMULAS: dict[str, Formula] = {}


def formula(id: str, section: str, what: str) -> None:
    """Register the library formula ``id`` (see the module docstring)."""
    if id in FORMULAS:
        raise ValueError(f"formula {id!r} registered twice")
    FORMULAS[id] = Formula(id, section, what)


# ----------------------------------------------------------------------------------------------------------
# §1 convex geometry: theory.cones, theory.statdim, theory.width, theory.kinematics
# ----------------------------------------------------------------------------------------------------------
formula("theory.cones.Subspace.project", "§1.2", "orthogonal projector Q Qᵀ x")
formula("theory.cones.Subspace.intrinsic_volumes", "§1.2", "v = e_k, δ = k")
formula("theory.cones.PolarCone.project", "§1.1", "Moreau: Π_{C°} x = x − Π_C x")
formula("theory.cones.PolarCone.intrinsic_volumes", "§1.1", "v_k(C°) = v_{d−k}(C), δ(C°) = d − δ(C)")
formula("theory.cones.NegatedCone.project", "§1.1", "Π_{−C}(x) = −Π_C(−x)")
formula("theory.cones.NonnegativeOrthant.project", "§1.2", "max(x, 0)")
formula("theory.cones.NonnegativeOrthant.intrinsic_volumes", "§1.2", "v_k = C(d, k)/2^d")
formula("theory.cones.NonnegativeOrthant.statistical_dimension", "§1.2", "δ = d/2")
formula("theory.cones.circular_intrinsic_volumes", "§1.2", "conivol: v₀, v_d regularised betas, v_k Γ-ratio")
formula("theory.cones.CircularCone.project", "§1.2", "(x₁cos α + r sin α)(cos α, sin α x̄/r) on the middle region")
formula("theory.cones.CircularCone.sq_norm_projection", "§1.2", "‖Π x‖² per region")
formula("theory.cones.CircularCone.polar", "§1.2", "Circ_d(α)° = −Circ_d(π/2 − α)")
formula("theory.cones.CircularCone.statistical_dimension", "§1.2", "δ = Σ k v_k")
formula("theory.cones.CircularCone.statistical_dimension_asymptotic", "§1.2", "d sin²α + cos 2α")
formula("theory.cones.LorentzCone.statistical_dimension", "§1.2", "δ = d/2 (self-dual)")
formula("theory.cones.svec", "§1.2", "isometric vectorisation (off-diagonal ×√2)")
formula("theory.cones.smat", "§1.2", "inverse of svec")
formula("theory.cones.PSDCone.project", "§1.2", "clip eigenvalues at 0")
formula("theory.cones.PSDCone.statistical_dimension", "§1.2", "δ = n(n+1)/4")
formula("theory.cones.L1DescentCone.sq_norm_projection", "§1.2", "exact min over τ ≥ 0 of the piecewise quadratic")
formula("theory.cones.L1DescentCone.project", "§1.2", "x − τ*·u (polar part from the optimal τ)")
formula("theory.cones.LinfDescentCone.project", "§1.2", "signed clip on the k saturated coordinates")
formula("theory.cones.LinfDescentCone.intrinsic_volumes", "§1.2", "v_j = C(k, d − j)/2^k")
formula("theory.cones.LinfDescentCone.statistical_dimension", "§1.2", "δ = d − k/2")
formula("theory.cones.nuclear_statdim_asymptotic", "§1.2", "ALMT Prop. 4.7 (quarter-circle law)")
formula("theory.cones.NuclearDescentCone.sq_norm_projection", "§1.2", "exact min over τ with singular values")
formula("theory.cones.NuclearDescentCone.project", "§1.2", "G − [[τI, 0], [0, U min(Σ, τ) Vᵀ]]")
formula("theory.cones.EllipticCone.project", "§2", "z_i = y_i/(1 + μ b_i²), t = s/(1 − μ), monotone root in θ")
formula("theory.cones.EllipticCone.polar", "§2", "K° = −K(1/a)")
formula("theory.cones.EllipticCone.statistical_dimension_leading_order", "§2", "Σ a²/(1 + a²)")
formula("theory.cones.EllipticCone.statistical_dimension_bounds", "§2", "circular cones at a_min, a_max")
formula("theory.statdim.expected_sq_excess", "§1.2", "E(|g| − τ)₊² = (1+τ²)erfc(τ/√2) − τ√(2/π)e^{−τ²/2}")
formula("theory.statdim.l1_psi", "§1.2", "ψ(ρ) and τ* (stationarity equation)")
formula("theory.statdim.l1_psi_nonneg", "§1.2", "ψ₊(ρ) and τ₊* (half the off-support term)")
formula("theory.statdim.statistical_dimension", "§1.2", "closed forms with kind and bounds (ℓ1: dψ − 2√(d/s))")
formula("theory.statdim.statistical_dimension_mc", "§1.1", "exact Monte Carlo mean of ‖Π g‖², stderr std/√n")
formula("theory.statdim.MonteCarloResult.z_score", "§1.1", "(mean − value)/stderr")
formula("theory.width.chi_mean", "§1.3", "λ_k = √2 Γ((k+1)/2)/Γ(k/2)")
formula("theory.width.gaussian_width_l2_ball", "§1.3", "λ_d")
formula("theory.width.gaussian_width_linf_ball", "§1.3", "d√(2/π)")
formula("theory.width.gaussian_width_l1_ball", "§1.3", "∫₀^∞ [1 − (2Φ(t) − 1)^d] dt")
formula("theory.width.gaussian_width_sparse_bound", "§1.3", "min_τ √(kτ² + d E(g² − τ²)₊), 2Q(τ) = k/d (ours)")
formula("theory.width.gaussian_width_ellipsoid", "§1.3", "(1/2√π)∫[1 − Π(1 + 2tμ)^{−1/2}]t^{−3/2}dt and bounds")
formula("theory.width.gaussian_width_mc", "§1.3", "Monte Carlo mean of the support function")
formula("theory.width.gaussian_width_sparse_mc", "§1.3", "E √(sum of the k largest g_i²)")
formula("theory.kinematics.a_eta", "§1.4", "a_η = √(8 log(4/η))")
formula("theory.kinematics.kinematic_formula#tail", "§1.4", "4 exp(−λ²/(8d)) bounds on P{C ∩ QK ≠ {0}}")
formula("theory.kinematics.kinematic_formula#regime", "§1.4", "regime by the margin against a_η√d")
formula("theory.kinematics.crofton_probability", "§1.4", "2 h_{m+1} = 2(v_{m+1} + v_{m+3} + …)")
formula("theory.kinematics.gordon_escape_probability", "§1.4", "1 − exp(−(λ_m − w)²/2)")

# ----------------------------------------------------------------------------------------------------------
# §2 the pruning limit: theory.limits, theory.quadratic
# ----------------------------------------------------------------------------------------------------------
formula("theory.limits.kept_count", "§2", "k = ⌈ρn⌉ up to rounding (the one fraction → count rule)")
formula("theory.limits.MagnitudeProfile.R2", "§2", "R(ρ)² = sum of the (1−ρ)N smallest w², linearly interpolated")
formula("theory.limits.MagnitudeProfile.R", "§2", "R(ρ)")
formula("theory.limits.pruning_limit#free", "§2", "least ρ with ½R(ρ)²ρ s(ρ)/(1−ρ) ≤ ε, E[λ/(λ+s)] = ρ (ours)")
formula("theory.limits.pruning_limit#flat", "§2", "ρ = E[λR(ρ)²/(λR(ρ)² + 2ε)] (authors')")
formula("theory.limits.pruning_limit#negative", "§2", "negative-eigenvalue policies abs / clip / drop")
formula("theory.limits.pruning_limit#zero_mass", "§2", "exact-zero atom of mass z, rest scaled by 1 − z")
formula("theory.limits.pruning_limit#sharpness_bound", "§2", "Tr(H)R²/(Tr(H)R² + 2εD)")
formula("theory.limits.pruning_limit#uncompensated_bound", "§2.1", "least ρ with ½R(ρ)² Tr(H)/D ≤ ε")
formula("theory.limits.pruning_limit#bands", "§2", "ρ* − (1 + zD·se)/D − a_η/√D and ρ* + z·se + a_η/√D (ours)")
formula("theory.limits.pruning_limit#stderr", "§2", "delta-method standard error of ρ* from the SLQ probes")
formula("theory.limits.pruning_limit#curves", "§2", "plotting curves ½R²·m_S (free), ½R²·s (flat), s(ρ)")
formula("theory.limits.haar_magnitude_limit", "§2.2", "least ρ with ½R(ρ)² tr(H)/N ≤ ε (signed mean; ours)")
formula("theory.limits.haar_magnitude_limit#stderr", "§2.2", "delta method: 2ε/m² · se(m)/|dR²/dρ|")
formula("nets.limit.predict.taylor_magnitude_limit", "§2.1", "least k with −g_Pᵀw_P + ½w_PᵀHw_P ≤ ε (ours)")
formula("theory.limits.magnitude_scaling", "§2", "the limit with the weights scaled by c")
formula("theory.limits.authors_pruning_ratio", "§2", "the authors' cal_rate computation (sweep, ⌈·⌉ count, grid)")
formula("theory.quadratic.QuadraticModel.uncompensated_increase", "§2", "½ c_Pᵀ H_PP c_P")
formula("theory.quadratic.QuadraticModel.schur_complement", "§2", "S = H_PP − H_PT H_TT⁺ H_TP")
formula("theory.quadratic.QuadraticModel.compensated_increase", "§2", "Δ(T) = ½ c_Pᵀ S c_P (schur / inverse)")
formula("theory.quadratic.QuadraticModel.compensated_weights", "§2", "w_T = w*_T + H_TT⁺ H_TP c_P, w_P = 0")
formula("theory.quadratic.QuadraticModel.magnitude_curve", "§2", "Δ(T_k) for all k from one unpivoted LDLᵀ")
formula("theory.quadratic.QuadraticModel.magnitude_threshold", "§2", "least k with Δ(T_k') ≤ ε for k' ≥ k")
formula("theory.quadratic.QuadraticModel.cone_basis", "§2", "slopes √(q₀/|q_i|) of cone(S(ε) − w^T)")
formula("theory.quadratic.QuadraticModel.cone_projection", "§2", "rotate, elliptic projection, rotate back")

# ----------------------------------------------------------------------------------------------------------
# §3 spectra: theory.spectrum, numerics
# ----------------------------------------------------------------------------------------------------------
formula("numerics.lanczos.tridiagonal_quadrature", "§3", "Golub–Welsch: nodes eig(T), weights (e₁ᵀy)²")
formula("numerics.slq.slq", "§3", "Gauss rules exact for polynomials of degree ≤ 2m − 1")
formula("numerics.slq.slq_deflated", "§3", "weights 1/n on k deflated pairs, (n−k)/n τ on the rest")
formula("theory.spectrum.Spectrum.expect", "§3", "mean of per-probe Σ τ f(θ), stderr std/√n_v")
formula("theory.spectrum.Spectrum.trace", "§3", "n · expect")
formula("theory.spectrum.Spectrum.mass_bounds_per_probe", "§3", "Chebyshev–Markov–Stieltjes bounds")
formula("theory.spectrum.Spectrum.cdf", "§3", "pooled step CDF")
formula("theory.spectrum.Spectrum.wasserstein1", "§3", "∫|F − G| between discrete measures")
formula("theory.spectrum.Spectrum.density", "§3", "Gaussian-smoothed density Σ τ φ_σ(x − θ)")
formula("theory.spectrum.pyhessian_sigma", "§3", "σ = √(σ² · max(1, range + 2·overhead))")
formula("theory.spectrum.ctu_parameters", "§3", "m = ⌈12/t + ½⌉, n_v = ⌈4(n+2)⁻¹t⁻² ln(2n/η)⌉")
formula("numerics.trace.hutchinson_variance", "§3", "2‖A‖_F² (Gaussian), 2(‖A‖_F² − Σ A_ii²) (Rademacher)")
formula("numerics.trace.hutchinson", "§3", "(1/N) Σ zᵀAz with sample-variance stderr")
formula("numerics.trace.hutchpp", "§3", "tr(QᵀAQ) + Hutchinson on the deflated remainder")

# ----------------------------------------------------------------------------------------------------------
# §4 gRDA and directional pruning: nets.grda, theory.directional; magnitude pruning counts: nets.prune
# ----------------------------------------------------------------------------------------------------------
formula("nets.grda.threshold_increment", "§4", "c·γ^{μ+½}(k^μ − (k−1)^μ) without cancellation")
formula("nets.grda.threshold_closed_form", "§4", "c·γ^{μ+½}k^μ, k = n (authors) or n − 1 (paper)")
formula("nets.grda.grda_update#threshold", "§4", "w = sign(a) max(|a| − T, 0)")
formula("nets.grda.grda_update#dual", "§4", "a ← a − γ(g + λ_wd w)")
formula("nets.grda.grda_update#momentum", "§4", "b ← βb + (1 − τ)d, b₁ = d (EMA gain 1 when τ = β)")
formula("nets.grda.GRDA", "§4", "optimizer shell: per-group counter and accumulated threshold")
formula("theory.directional.flat_subspace", "§4", "P₀ onto eigenvectors with |λ| ≤ τλ_max")
formula("theory.directional.weighted_lasso_dp", "§4", "sign(w)max(|w| − λs, 0), s = sign(w)∘P₀ sign(w)")
formula("theory.directional.constrained_dp_objective", "§4", "½‖w − w^SGD‖² + λ‖w‖₁")
formula("theory.directional.kkt_residual", "§4", "feasibility, stationarity, dual residuals")
formula("theory.directional.constrained_dp_admm", "§4", "ADMM + exact active-set polish")
formula("theory.directional.constrained_dp_cvxpy", "§4", "conic ground truth over z")
formula("theory.directional.projection_ratio", "§4", "‖Vᵀδ‖/‖δ‖")
formula("theory.directional.flat_subspace_at_time", "§4", "flat directions |λ| ≤ m/t after training time t (ours)")
formula("theory.directional.weighted_lasso_limit", "§4", "λ* = min_{s_j > 0} |w_j|/s_j")
formula("theory.directional.support_agreement", "§4", "exact-support rate and mismatch counts of replicates")
formula("theory.directional.valley_comparison", "§4", "DP vs OBS vs magnitude pruning in a quadratic valley (ours)")
formula("nets.grda.threshold_factor", "§4", "Φ_N = Σ_n γ_n^{μ+½}(k_n^μ − (k_n−1)^μ), T_N = cΦ_N")
formula("nets.grda.predict_sparsity", "§4.1", "ŝ(c) = fraction of pilot |a_N| ≤ cΦ_N (ours)")
formula("nets.grda.predict_c", "§4.1", "ĉ = midpoint of the m-th and (m+1)-th smallest |a_N| over Φ_N (ours)")
formula("nets.prune.global_magnitude_masks", "§2", "keep the kept_count(ρ, N) largest |w|")
formula("nets.prune.smart_ratio_kept_counts", "§2", "q_l = (L−l+1)² + (L−l+1), water-filling, largest remainders")


#: Modules whose public names (``__all__``) must each be registered above or exempted below.
SCANNED_MODULES: tuple[str, ...] = (
    "theory.cones",
    "theory.statdim",
    "theory.width",
    "theory.kinematics",
    "theory.limits",
    "theory.quadratic",
    "theory.directional",
    "theory.spectrum",
    "numerics.lanczos",
    "numerics.slq",
    "numerics.trace",
    "nets.grda",
    "nets.prune",
)

#: Public functions and classes of the scanned modules that implement no formula, with the reason.
EXEMPT: dict[str, str] = {
    "theory.cones.Cone": "abstract base class (the generic δ = Σ k v_k is covered through its subclasses)",
    "theory.cones.CvxpyCone": "solver wrapper used as ground truth by the tests",
    "theory.statdim.StatDimFormula": "result container",
    "theory.statdim.PsiResult": "result container",
    "theory.width.EllipsoidWidth": "result container (its fields are pinned with gaussian_width_ellipsoid)",
    "theory.kinematics.KinematicResult": "result container",
    "theory.limits.PruningLimit": "result container (its formula fields are registered as pruning_limit#...)",
    "theory.limits.LimitCurves": "result container (pruning_limit#curves)",
    "theory.limits.MagnitudeProfile": "class; its formulas R2 and R are registered",
    "theory.limits.AuthorsRatio": "result container",
    "theory.limits.HaarMagnitudeLimit": "result container (haar_magnitude_limit)",
    "theory.quadratic.QuadraticModel": "class; its formula methods are registered",
    "theory.quadratic.MagnitudeCurve": "result container (threshold is covered with magnitude_threshold)",
    "theory.quadratic.ExactThreshold": "result container",
    "theory.directional.FlatSubspace": "result container of flat_subspace",
    "theory.directional.DPResult": "result container",
    "theory.spectrum.Spectrum": "class; its formula methods are registered",
    "numerics.lanczos.LanczosResult": "result container",
    "numerics.lanczos.lanczos": "the iteration itself (its Gauss rules are covered through slq)",
    "numerics.lanczos.draw_probes": "random probe generation",
    "numerics.lanczos.basis_bytes": "memory accounting in bytes, checked against the measured peak memory in "
                                    "tests/numerics/test_lanczos.py",
    "numerics.slq.SLQResult": "result container",
    "numerics.trace.TraceEstimate": "result container",
    "theory.directional.SupportAgreement": "result container",
    "theory.directional.TauPoint": "result container",
    "theory.directional.ValleyComparison": "result container",
    "theory.directional.tau_sweep": "constrained_dp_admm over a list of cuts τ",
    "nets.grda.step_learning_rates": "per-step learning rates of a training config (schedule plumbing)",
    "nets.grda.PilotRun": "result container",
    "nets.grda.CalibrationConfig": "configuration",
    "nets.grda.Calibration": "result container",
    "nets.grda.calibrate": "safeguarded secant over pilot runs (a procedure; tested in tests/nets)",
    "nets.grda.training_pilot": "training loop",
    "nets.grda.calibrate_training": "training loop",
    "nets.grda.StopTraining": "exception",
    "nets.grda.StoppingRule": "stopping heuristic on training histories (ours; tested in tests/nets)",
    "nets.grda.StoppingCallback": "training callback",
    "nets.grda.StoppedRun": "result container",
    "nets.grda.train_with_stopping": "training loop",
    "nets.prune.layerwise_magnitude_masks": "the global rule per layer (kept_count per layer)",
    "nets.prune.random_masks": "random masks",
    "nets.prune.smart_ratio_masks": "random masks with smart_ratio_kept_counts",
    "nets.prune.compute_masks": "dispatcher",
    "nets.prune.apply_masks": "model plumbing",
    "nets.prune.remove_masks": "model plumbing",
    "nets.prune.model_masks": "model plumbing",
    "nets.prune.mask_kept_fraction": "k/N of a mask set",
    "nets.prune.SweepResult": "result container",
    "nets.prune.magnitude_sweep": "evaluation loop over kept_count levels",
    "nets.prune.fine_tune": "training loop",
    "nets.prune.IMPResult": "result container",
    "nets.prune.iterative_magnitude_pruning": "training loop",
}
