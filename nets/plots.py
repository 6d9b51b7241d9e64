"""Figures of a pipeline run (matplotlib, Agg backend; written atomically as PNG).

:func:`plot_limit` is the paper's loss/accuracy-vs-ratio figure with both limits: the LOMP training-loss curve
and the compensated training-loss curve against the kept fraction, the criterion ``L(w*) + ε``, and each
limit's prediction and measurement as vertical lines — one colour per limit (fundamental: red; magnitude
pruning: blue), solid for the prediction, dotted for the measurement, labelled with their values.
:func:`plot_spectrum` is the Hessian spectral density (log scale) and the cumulative spectral mass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nets.io import atomic_open

__all__ = ["plot_limit", "plot_spectrum"]

FUNDAMENTAL_COLOR = "C3"
MAGNITUDE_COLOR = "C0"


def _savefig(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_limit(result: Any, path: str | Path) -> Path:
    """Both limits against the kept fraction (module docstring); returns the path written."""
    plt = _pyplot()
    r = result
    mm = r.magnitude_measurement
    x = np.asarray(mm.curves["kept_fraction"])
    has_acc = r.model.get("task") == "classification" and np.isfinite(mm.curves["test_acc"]).any()
    fig, axes = plt.subplots(2 if has_acc else 1, 1, figsize=(8, 7.5 if has_acc else 4.5), sharex=True, squeeze=False)
    ax1 = axes[0, 0]
    thr = r.tolerance.threshold
    floor = max(1e-12, 0.2 * min(float(np.nanmin(mm.curves["objective"])), r.tolerance.loss_dense))
    ax1.plot(x, np.maximum(mm.curves["objective"], floor), color=MAGNITUDE_COLOR, lw=1.6,
             label="training loss, magnitude pruning (LOMP, no compensation)")
    if np.isfinite(mm.curves["test_loss"]).any():
        ax1.plot(x, np.maximum(mm.curves["test_loss"], floor), color=MAGNITUDE_COLOR, lw=0.9, alpha=0.45,
                 label="test loss, LOMP")
    fm = r.fundamental_measurement
    if fm is not None:
        c = fm.curve()
        full = np.isfinite(c["loss_after"])
        if full.any():
            ax1.plot(c["kept_fraction"][full], np.maximum(c["loss_after"][full], floor), color="C1", lw=1.0, ls="--",
                     marker="o", ms=3, label="training loss, quadratic step + masked re-optimisation")
        ax1.plot(c["kept_fraction"], np.maximum(c["loss_quadratic_step"], floor), color=FUNDAMENTAL_COLOR, lw=1.6,
                 marker=".", ms=4, label="training loss, compensated by the quadratic (OBS) step")
    if r.oracle is not None:
        ax1.plot(x, np.maximum(r.oracle.taylor_loss, floor), color="C5", lw=0.9, ls="--",
                 label="2nd-order Taylor model of the LOMP loss (dense H)")
    ax1.axhline(thr, color="k", lw=0.8, ls=":", label=f"criterion L(w*) + ε = {thr:.4g}")
    ax1.set_yscale("log")
    ax1.set_ylabel(r.model.get("loss", "loss"))
    f, mg = r.fundamental, r.magnitude
    ax_list = [ax1] + ([axes[1, 0]] if has_acc else [])
    for i, ax in enumerate(ax_list):
        lab = (lambda s: s) if i == 0 else (lambda s: None)
        ax.axvline(f.predicted, color=FUNDAMENTAL_COLOR, lw=1.8,
                   label=lab(f"fundamental limit, predicted ({f.method}): {f.predicted:.3f}"))
        if f.predicted_lower is not None:
            ax.axvspan(f.predicted_lower, f.predicted_upper, color=FUNDAMENTAL_COLOR, alpha=0.08, lw=0)
        if f.measured is not None:
            ax.axvline(f.measured, color=FUNDAMENTAL_COLOR, lw=1.4, ls=":",
                       label=lab(f"fundamental limit, measured (OBS step): {f.measured:.3f}"))
        if f.measured_reoptimised is not None:
            ax.axvline(f.measured_reoptimised, color="C1", lw=1.0, ls=":",
                       label=lab(f"fundamental limit, measured after re-optimisation: {f.measured_reoptimised:.3f}"))
        ax.axvline(mg.predicted, color=MAGNITUDE_COLOR, lw=1.8,
                   label=lab(f"magnitude-pruning limit, predicted ({mg.method}): {mg.predicted:.3f}"))
        if mg.measured is not None:
            ax.axvline(mg.measured, color=MAGNITUDE_COLOR, lw=1.4, ls=":",
                       label=lab(f"magnitude-pruning limit, measured (LOMP): {mg.measured:.3f}"))
        ax.grid(alpha=0.3)
    if has_acc:
        ax2 = axes[1, 0]
        ax2.plot(x, mm.curves["test_acc"], color="C2", lw=1.5, label="test accuracy, LOMP")
        ax2.plot(x, mm.curves["train_acc"], color="C2", lw=1.0, alpha=0.5, label="training accuracy, LOMP")
        acc_lim = mm.limits.get("test_accuracy")
        if acc_lim is not None:
            ax2.axhline(acc_lim.threshold, color="k", lw=0.8, ls=":", label=f"{acc_lim.description}")
        ax2.set_ylabel("accuracy")
        ax2.legend(fontsize=7, loc="lower right")
    ax_list[-1].set_xlabel("kept fraction ρ = k/N   (removed fraction = 1 − ρ)")
    ax1.legend(fontsize=6.5, loc="upper right")
    ax1.set_xlim(0.0, 1.0)
    sec = ax1.secondary_xaxis("top", functions=(lambda v: 1.0 - v, lambda v: 1.0 - v))
    sec.set_xlabel("removed fraction 1 − ρ")
    ax1.set_title(f"{r.model.get('class')} on {r.model.get('data')}: the two pruning limits, predicted (solid) and "
                  f"measured (dotted); shaded: the fundamental prediction's band (SLQ + kinematic only)", fontsize=8)
    fig.tight_layout()
    try:
        return _savefig(fig, Path(path))
    finally:
        plt.close(fig)


def plot_spectrum(spectrum: Any, path: str | Path, *, exact_eigenvalues: Any = None, title: str = "") -> Path:
    """Smoothed spectral density (log scale) and cumulative spectral mass of a Spectrum (atomic PNG).

    The Gaussian kernel's standard deviation is PyHessian's default smoothing expressed in eigenvalue units
    (:meth:`theory.spectrum.Spectrum.pyhessian_sigma`, variance 1e-5 × range); the grid resolves it.
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    sigma = spectrum.pyhessian_sigma()
    spectrum.plot(ax1, sigma=sigma, color="C0", label=f"SLQ ({spectrum.n_probes} probes)")
    ax1.set_yscale("log")
    ax1.set_ylim(bottom=1e-5)
    spectrum.plot(ax2, color="C0", label="SLQ")
    if exact_eigenvalues is not None:
        lam = np.sort(np.asarray(exact_eigenvalues, dtype=float))
        ax2.step(lam, np.arange(1, lam.size + 1) / lam.size, where="post", color="k", lw=0.8, ls="--",
                 label="exact (dense eigvalsh)")
    x, _ = spectrum.atoms()
    # symlog resolves the bulk near 0; a power-of-ten threshold puts the ±linthresh ticks one decade from 0
    scale = max(1e-3 * float(np.max(np.abs(x))), 1e-300)
    ax2.set_xscale("symlog", linthresh=10.0 ** np.floor(np.log10(scale)))
    for ax in (ax1, ax2):
        ax.axvline(0.0, color="grey", lw=0.6)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        return _savefig(fig, Path(path))
    finally:
        plt.close(fig)
