"""The result of :func:`nets.limit.estimate_pruning_limit`: every stage's typed result, one record, one table.

Two limits, each with a prediction and a measurement of *the same* quantity (docs/math.md §2.2):

* ``fundamental`` — the least kept fraction at which some point on the magnitude support, with the kept
  weights re-optimised, stays within ε: predicted from the spectrum (flat/free), measured by compensated
  pruning in the real network;
* ``magnitude`` — the least kept fraction at which plain global magnitude pruning (LOMP) stays within ε:
  predicted by the Taylor or Haar model, measured by the LOMP sweep.

:meth:`LimitResult.summary` is the table the CLI prints; :meth:`LimitResult.to_dict` the JSON record (with
provenance); :meth:`LimitResult.save` writes it atomically. :func:`diagnose` lists what may make a number not
mean what it says, each warning naming the setting to change.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nets.io import atomic_write_json, jsonable
from nets.limit.measure import FundamentalMeasurement, MagnitudeMeasurement
from nets.limit.oracle import QuadraticOracle
from nets.limit.predict import FundamentalPrediction, MagnitudePrediction
from nets.limit.spectrum import MIN_RELIABLE_STEPS, SpectrumSummary
from nets.limit.tolerance import ToleranceResult
from numerics.slq import SLQResult
from theory.limits import PruningLimit

__all__ = ["LimitResult", "LimitPair", "LimitWarning", "diagnose", "settings_warnings", "FORMAT"]

#: The ``format`` tag of the JSON record.
FORMAT = "prunelimit.LimitResult/2"


@dataclass(frozen=True)
class LimitWarning:
    """A reason a number may not mean what it says: a short ``code`` and a message naming what to change."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class LimitPair:
    """One limit: its primary prediction (with band, when it has one) and its measurement, as kept fractions.

    ``band_covers`` says what the band accounts for: the SLQ and kinematic error only — not the error of the
    model behind the prediction (the benchmark in docs/guide.md §4 measures that)."""

    name: str
    predicted: float
    method: str
    predicted_lower: float | None
    predicted_upper: float | None
    measured: float | None
    measured_by: str
    band_covers: str = "SLQ standard error and the kinematic-formula width only (not the model error)"
    measured_reoptimised: float | None = None

    @property
    def gap(self) -> float | None:
        """``predicted − measured`` (None without a measurement)."""
        return None if self.measured is None else self.predicted - self.measured

    @property
    def gap_reoptimised(self) -> float | None:
        """``predicted − measured_reoptimised`` (the fundamental limit only; None otherwise)."""
        return None if self.measured_reoptimised is None else self.predicted - self.measured_reoptimised

    @property
    def within_band(self) -> bool | None:
        if self.measured is None or self.predicted_lower is None or self.predicted_upper is None:
            return None
        return self.predicted_lower <= self.measured <= self.predicted_upper

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "predicted": self.predicted, "method": self.method,
                "predicted_lower": self.predicted_lower, "predicted_upper": self.predicted_upper,
                "measured": self.measured, "measured_by": self.measured_by, "gap": self.gap,
                "measured_reoptimised": self.measured_reoptimised, "gap_reoptimised": self.gap_reoptimised,
                "within_band": self.within_band, "band_covers": self.band_covers,
                "removed_fraction_predicted": 1.0 - self.predicted,
                "removed_fraction_measured": None if self.measured is None else 1.0 - self.measured}


def _limit_dict(lim: PruningLimit) -> dict[str, Any]:
    d = {k: v for k, v in lim.__dict__.items() if k not in ("curves", "stderr")}
    d.update(removed_fraction=lim.removed_fraction, kept_count=lim.kept_count, kept_fraction_stderr=lim.stderr)
    c = lim.curves
    d["curves"] = None if c is None else {"kept_fraction": c.kept_fraction, "predicted_loss_increase": c.loss_increase,
                                          "R": c.R, "s": c.s}
    return d


@dataclass(frozen=True)
class LimitResult:
    """Everything the pipeline measured (module docstring). Stage results are kept typed, as returned.

    Attributes
    ----------
    model:
        ``class``, ``n_parameters`` (all trainable), ``n_prunable`` (N, the Hessian's dimension), ``data``,
        ``n_train``, ``n_test``, ``task``, ``loss``.
    tolerance:
        :class:`nets.limit.tolerance.ToleranceResult` (ε, ``L(w*)``, dense metrics).
    spectrum, spectrum_summary:
        :class:`numerics.slq.SLQResult` (the spectrum with its diagnostics and the HVP path taken) and its summary.
    fundamental_prediction, magnitude_prediction:
        Stage 3 (:mod:`nets.limit.predict`).
    magnitude_measurement, fundamental_measurement:
        Stage 4 (:mod:`nets.limit.measure`); the compensated one is None when switched off.
    oracle:
        Stage 5 (:class:`nets.limit.oracle.QuadraticOracle`) on small models, else None.
    gradient_norm:
        ``‖∇L(w*)‖`` over the prunable weights (None when not computed).
    warnings:
        :func:`diagnose`'s findings.
    timings, cost:
        Seconds and cost (HVPs, gradients, forward passes) per stage.
    config:
        The :class:`nets.limit.LimitConfig` used (its ``to_dict``), plus the seed and device.
    provenance:
        :func:`nets.io.provenance` at the end of the run.
    """

    model: dict[str, Any]
    tolerance: ToleranceResult
    spectrum: SLQResult
    spectrum_summary: SpectrumSummary
    fundamental_prediction: FundamentalPrediction
    magnitude_prediction: MagnitudePrediction
    magnitude_measurement: MagnitudeMeasurement
    fundamental_measurement: FundamentalMeasurement | None
    oracle: QuadraticOracle | None
    gradient_norm: float | None
    warnings: tuple[LimitWarning, ...]
    timings: dict[str, float]
    cost: dict[str, dict[str, int]]
    config: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- the two limits --------------------------------------------------------------------------------------
    @property
    def fundamental(self) -> LimitPair:
        """The fundamental (compensated) limit: spectral prediction vs compensated pruning."""
        p = self.fundamental_prediction.primary
        m = self.fundamental_measurement
        return LimitPair("fundamental", p.kept_fraction, self.fundamental_prediction.method, p.kept_fraction_lower,
                         p.kept_fraction_upper, None if m is None else m.kept_fraction,
                         "compensated pruning by the quadratic (OBS) step, training loss <= L(w*) + eps",
                         measured_reoptimised=None if m is None else m.kept_fraction_reoptimised)

    @property
    def magnitude(self) -> LimitPair:
        """The magnitude-pruning (LOMP) limit: Taylor/Haar prediction vs the LOMP sweep."""
        mp = self.magnitude_prediction
        lo = hi = None
        if mp.method == "haar" and math.isfinite(mp.haar.stderr):
            lo = max(0.0, mp.haar.kept_fraction - 2.0 * mp.haar.stderr)
            hi = min(1.0, mp.haar.kept_fraction + 2.0 * mp.haar.stderr)
        return LimitPair("magnitude", mp.kept_fraction, mp.method, lo, hi, self.magnitude_measurement.kept_fraction,
                         "LOMP, training loss <= L(w*) + eps",
                         band_covers="SLQ standard error only" if mp.method == "haar" else "none (deterministic model)")

    # -- records ---------------------------------------------------------------------------------------------
    def to_dict(self, *, include_spectrum: bool = True, include_curves: bool = True) -> dict[str, Any]:
        """A strict-JSON-ready record (numpy → lists, non-finite floats → None)."""
        fp = self.fundamental_prediction
        d: dict[str, Any] = {
            "format": FORMAT,
            "naming": "kept_fraction = k/N (the final paper's 'pruning ratio'); removed_fraction = 1 - kept_fraction "
                      "(what the authors' code prints)",
            "limits": {"fundamental": self.fundamental.to_dict(), "magnitude": self.magnitude.to_dict()},
            "model": self.model,
            "tolerance": self.tolerance.to_dict(),
            "spectrum_summary": self.spectrum_summary.to_dict(),
            "spectrum_run": {k: v for k, v in self.spectrum.to_dict().items() if k != "spectrum"},
            "predicted": {"fundamental": {"method": fp.method, "by_method": {m: _limit_dict(v) for m, v in
                                                                             fp.limits.items()}},
                          "magnitude": self.magnitude_prediction.to_dict()},
            "measured": {"magnitude": self.magnitude_measurement.to_dict(),
                         "fundamental": None if self.fundamental_measurement is None
                         else self.fundamental_measurement.to_dict()},
            "oracle": None if self.oracle is None else self.oracle.to_dict(),
            "gradient_norm": self.gradient_norm,
            "warnings": [w.to_dict() for w in self.warnings],
            "timings_seconds": self.timings,
            "cost": self.cost,
            "config": self.config,
            "provenance": self.provenance,
        }
        if not include_curves:
            for v in d["predicted"]["fundamental"]["by_method"].values():
                v.pop("curves", None)
            d["measured"]["magnitude"].pop("curves", None)
        if include_spectrum:
            d["spectrum"] = self.spectrum.spectrum.to_dict()
        return jsonable(d)

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None, **kwargs: Any) -> Path:
        """Write :meth:`to_dict` (plus ``extra`` keys) to ``path`` atomically; a directory gets ``result.json``."""
        p = Path(path)
        if p.is_dir():
            p = p / "result.json"
        d = self.to_dict(**kwargs)
        if extra:
            d.update(jsonable(extra))
        return atomic_write_json(p, d, indent=1)

    # -- rendering -------------------------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, float | None, str, float | None, float | None]]:
        """The table's rows: ``(label, kept fraction, band, measured, gap)`` — the two limits first."""
        out = []
        for pair, label in ((self.fundamental, "fundamental (compensated)"), (self.magnitude, "magnitude pruning (LOMP)")):
            band = ("—" if pair.predicted_lower is None else f"[{pair.predicted_lower:.4f}, {pair.predicted_upper:.4f}]")
            out.append((f"{label}, {pair.method}", pair.predicted, band, pair.measured, pair.gap))
            if pair.measured_reoptimised is not None:
                out.append(("  … measured after re-optimisation", None, "", pair.measured_reoptimised,
                            pair.gap_reoptimised))
        return out

    def summary(self) -> str:
        """The limits table (each prediction beside the measurement of the same limit), secondary rows and notes."""
        def f(x: Any, spec: str = ".4f") -> str:
            return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)

        head = f"{'limit, prediction method':38s} {'predicted':>9s}  {'band':17s} {'measured':>8s} {'gap':>8s}"
        lines = [head, "-" * len(head)]
        for label, pred, band, meas, gap in self.rows():
            pred_s = "" if pred is None and not band else f(pred)
            lines.append(f"{label:38s} {pred_s:>9s}  {band:17s} {f(meas):>8s} {f(gap, '+.4f'):>8s}")
        lines.append("")
        lines.append("secondary (kept fraction; removed = 1 − kept)")
        fp = self.fundamental_prediction
        for m, lim in fp.limits.items():
            if m == fp.method:
                continue
            who = "ours" if m == "free" else "authors' formula"
            lines.append(f"  fundamental, {m} ({who}): {lim.kept_fraction:.4f} "
                         f"[{lim.kept_fraction_lower:.4f}, {lim.kept_fraction_upper:.4f}]")
        mp = self.magnitude_prediction
        if mp.method != "haar":
            lines.append(f"  magnitude, haar (spectral only): {mp.haar.kept_fraction:.4f} ± {f(mp.haar.stderr)}")
        elif mp.taylor is not None:
            lines.append(f"  magnitude, taylor: {mp.taylor.kept_fraction:.4f}")
        for name, lim in self.magnitude_measurement.limits.items():
            if name == "train_loss":
                continue
            val = lim.kept_fraction if name != "authors_strict_accuracy" else lim.kept_fraction_any
            lines.append(f"  LOMP measured, {lim.description}: {f(val)}")
        q = self.oracle
        if q is not None:
            sur = {"abs": " (|H|)", "clip": " (H+)", "none": ""}[q.psd_surrogate]
            lines.append(f"  exact quadratic model{sur}: compensated {q.kept_fraction_compensated:.4f}, "
                         f"uncompensated {q.kept_fraction_uncompensated:.4f}; from exact eigenvalues: "
                         + ", ".join(f"{m} {v.kept_fraction:.4f}" for m, v in q.predicted_exact_spectrum.items()))
        if self.warnings:
            lines.append("")
            lines += [f"warning [{w.code}]: {w.message}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        fp, mg = self.fundamental, self.magnitude
        return (f"LimitResult({self.model.get('class')} on {self.model.get('data')}, N={self.model.get('n_prunable')}, "
                f"eps={self.tolerance.eps:.4g}; fundamental: predicted {fp.predicted:.4f} ({fp.method}), measured "
                f"{'—' if fp.measured is None else format(fp.measured, '.4f')}; magnitude: predicted "
                f"{mg.predicted:.4f} ({mg.method}), measured "
                f"{'—' if mg.measured is None else format(mg.measured, '.4f')}; {len(self.warnings)} warning(s))")


#: A sweep grid coarser than this (fewer than 21 levels) cannot show the loss curves or a non-monotone stretch
#: (ours: the default 0.01 gives 101 levels; the limit itself is refined by bisection at any step).
MAX_PLAUSIBLE_SWEEP_STEP = 0.05
#: Fewer Hessian samples than this (or than the training set) make the spectrum a noisy estimate (ours: a few
#: batches of the paper's 128).
MIN_PLAUSIBLE_HESSIAN_SAMPLES = 512


def settings_warnings(*, steps: int, dim: int, n_probes: int, hessian_samples: int, n_train: int,
                      sweep_step: float | None = None) -> list[LimitWarning]:
    """Settings below what the reported precision needs, each naming the option to raise (shared by
    :func:`diagnose` and ``prunelimit spectrum``).

    >>> [w.code for w in settings_warnings(steps=5, dim=100, n_probes=1, hessian_samples=10, n_train=1000,
    ...                                    sweep_step=0.5)]
    ['slq-steps', 'slq-probes', 'hessian-samples', 'sweep-step']
    """
    out: list[LimitWarning] = []
    if steps < MIN_RELIABLE_STEPS and steps < dim:
        out.append(LimitWarning("slq-steps", f"SLQ used {steps} Lanczos steps, fewer than {MIN_RELIABLE_STEPS}: the "
                                "quadrature cannot resolve the spectrum near 0 on the scale the limits need; raise "
                                "--slq-steps (default 128)"))
    if n_probes < 2:
        out.append(LimitWarning("slq-probes", "SLQ used 1 probe: its standard error is unknown and the bands are "
                                "[0, 1]; raise --slq-probes (default 4)"))
    if hessian_samples < min(n_train, MIN_PLAUSIBLE_HESSIAN_SAMPLES):
        out.append(LimitWarning("hessian-samples", f"the Hessian was averaged over {hessian_samples} training samples "
                                f"(of {n_train}): fewer than a few batches make the spectrum a noisy estimate of the "
                                "training-loss Hessian; raise --hessian-samples or drop it (default: all)"))
    if sweep_step is not None and sweep_step > MAX_PLAUSIBLE_SWEEP_STEP:
        levels = int(round(1.0 / sweep_step)) + 1
        out.append(LimitWarning("sweep-step", f"the LOMP sweep's grid has {levels} levels (--sweep-step {sweep_step:g}): "
                                "too coarse to show where the loss rises or to see a non-monotone stretch between "
                                "levels (the limit itself is refined by bisection); lower --sweep-step (default "
                                f"0.01, at most {MAX_PLAUSIBLE_SWEEP_STEP:g})"))
    return out


def diagnose(
    *,
    tolerance: ToleranceResult,
    spectrum: SLQResult,
    summary: SpectrumSummary,
    fundamental_prediction: FundamentalPrediction,
    magnitude_prediction: MagnitudePrediction,
    magnitude_measurement: MagnitudeMeasurement,
    fundamental_measurement: FundamentalMeasurement | None,
    num_classes: int | None,
    gradient_term_at_prediction: float | None,
    hessian_samples: int,
    n_train: int,
    sweep_step: float | None = None,
) -> tuple[LimitWarning, ...]:
    """The warnings of a run (module docstring); each names the setting to change."""
    out: list[LimitWarning] = []
    tr = tolerance.train
    if num_classes is not None and num_classes >= 2:
        chance = 1.0 / num_classes
        ln_c = math.log(num_classes)
        if tr.accuracy is not None and tr.accuracy <= 1.5 * chance:
            out.append(LimitWarning("untrained", f"the dense model's training accuracy {tr.accuracy:.3f} is near chance "
                                    f"({chance:.3f}): the limits of an untrained network do not mean what they say; "
                                    "train it first (more epochs, a working --lr) or pass the trained --checkpoint"))
        elif tr.loss >= ln_c:
            out.append(LimitWarning("untrained", f"the dense model's training loss {tr.loss:.3f} is at least ln C = "
                                    f"{ln_c:.3f} (the loss of a uniform guess): train it first or pass the trained "
                                    "--checkpoint"))
    if tr.accuracy is not None and tr.accuracy >= 0.999 and tr.loss < 0.01 and tolerance.eps < 0.01:
        out.append(LimitWarning(
            "interpolation", f"the dense model fits its training set (accuracy {tr.accuracy:.4f}, loss {tr.loss:.2g}) "
            f"and eps = {tolerance.eps:.2g} is tiny: near interpolation the loss is far from quadratic on the scale "
            "that pruning moves the weights, and the spectral predictions of the fundamental limit are least "
            "reliable (bench/limits_trained.py: errors up to ~0.2 there); read the measured limits, or pass a larger "
            "--eps for a looser criterion"))
    if gradient_term_at_prediction is not None and abs(gradient_term_at_prediction) > tolerance.eps:
        out.append(LimitWarning(
            "not-stationary", f"w* is not a stationary point of the loss: the gradient term −g_P·w_P of pruning to the "
            f"predicted fundamental limit is {gradient_term_at_prediction:+.3g}, larger than eps = {tolerance.eps:.3g}, "
            "which the spectral predictions ignore (the Taylor prediction and both measurements include it); train to "
            "convergence (more epochs, a smaller final --lr) or compare with the measured limits"))
    out += settings_warnings(steps=int(spectrum.steps), dim=spectrum.spectrum.dim, n_probes=spectrum.n_probes,
                             hessian_samples=hessian_samples, n_train=n_train, sweep_step=sweep_step)
    # ε against the Hessian-estimation noise: the probe standard error of tr(H)/N, in loss units at the limit
    h = magnitude_prediction.haar
    if math.isfinite(h.mean_eigenvalue_stderr) and h.mean_eigenvalue_stderr > 0:
        R = fundamental_prediction.primary.R
        noise = 0.5 * R * R * 2.0 * h.mean_eigenvalue_stderr
        if noise > tolerance.eps:
            out.append(LimitWarning("eps-below-noise", f"eps = {tolerance.eps:.3g} is below the Hessian-estimation noise "
                                    f"at the predicted limit (½R²·2·se(tr H/N) = {noise:.3g}): raise --slq-probes, or "
                                    "pass a larger --eps"))
    if fundamental_measurement is not None and fundamental_measurement.kept_fraction_reoptimised is not None:
        lo = fundamental_measurement.kept_fraction_reoptimised
        if fundamental_measurement.kept_fraction - lo > 0.1:
            out.append(LimitWarning(
                "beyond-quadratic", f"re-optimising the kept weights reaches a fundamental limit of {lo:.4f}, far below "
                f"the {fundamental_measurement.kept_fraction:.4f} of the quadratic (OBS) step: the loss valley extends "
                "well beyond the second-order model around w*, which the spectral predictions describe; for the "
                "sparsity you can actually reach, use the re-optimised value (and fine-tune: prunelimit prune)"))
    # prediction vs measurement, per limit
    for name, pred_lo, pred_hi, pred, meas in (
        ("fundamental", fundamental_prediction.primary.kept_fraction_lower,
         fundamental_prediction.primary.kept_fraction_upper, fundamental_prediction.primary.kept_fraction,
         None if fundamental_measurement is None else fundamental_measurement.kept_fraction),
    ):
        if meas is not None and not (pred_lo <= meas <= pred_hi):
            out.append(LimitWarning(
                "outside-band", f"the measured {name} limit {meas:.4f} lies outside the predicted band "
                f"[{pred_lo:.4f}, {pred_hi:.4f}] (prediction {pred:.4f}, method {fundamental_prediction.method}): the "
                "band covers the SLQ and kinematic error only, and the model behind the prediction (quadratic loss, "
                "random eigenbasis) does not hold this well for this network; trust the measured value"))
    for meas_obj, label in ((magnitude_measurement.limits.get("train_loss"), "LOMP sweep"),):
        if meas_obj is not None and meas_obj.non_monotone_kept_fractions:
            nm = ", ".join(f"{v:.4f}" for v in meas_obj.non_monotone_kept_fractions[:5])
            out.append(LimitWarning("non-monotone", f"the {label}'s training loss is not monotone in the kept fraction: "
                                    f"levels {nm} below the limit qualify again; the reported limit is the least level "
                                    "from which every denser level qualifies (lower --sweep-step to look closer)"))
    if fundamental_measurement is not None:
        if fundamental_measurement.search.non_monotone:
            nm = ", ".join(f"{k / fundamental_measurement.search.N:.4f}"
                           for k in fundamental_measurement.search.non_monotone[:5])
            out.append(LimitWarning("non-monotone", f"the compensated loss is not monotone in the kept fraction: levels "
                                    f"{nm} below the measured fundamental limit qualify again"))
    return tuple(out)
