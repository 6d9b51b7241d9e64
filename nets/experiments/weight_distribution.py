"""``weight-distribution``: the weight-magnitude histogram (log scale) of each trained network, and the
predicted vs the actual limit read as a magnitude threshold (the paper's figure of weight distributions and
"pruning ratio vs magnitude of weights").

Magnitude pruning at kept fraction ``ρ`` keeps the weights with ``|w| ≥ t(ρ)``, ``t(ρ)`` the smallest kept
magnitude, and removes the fraction ``F(t) = #{|w| < t}/N`` (the empirical distribution function of ``|w|``).
The right panel of each network plots ``F`` against ``t`` and marks the predicted limits (flat, free,
magnitude) and the measured LOMP limit (training loss ``≤ L(w*) + ε``) at their thresholds: the paper's ratio as
a function of magnitude. Reading the limits as thresholds is our reconstruction of the figure (its exact
axes were not available).
"""

from __future__ import annotations

import math

import numpy as np

from nets.experiments.common import figure_grid, mean_std, pm, seeds_text
from nets.experiments.context import Context
from nets.experiments.report import Outcome, Verdict
from nets.params import flatten, prunable_parameters
from theory.limits import kept_count

NAME = "weight-distribution"
TITLE = "Weight-magnitude distribution and the limit as a magnitude threshold"
REPRODUCES = "the paper's figure of weight distributions (log scale) and pruning ratio vs weight magnitude"
#: Agreement of predicted and measured thresholds: within this factor (ours).
FACTOR = 2.0
LEVELS = (1e-4, 1e-3, 1e-2)
COLORS = {"flat": "tab:red", "free": "tab:blue", "magnitude": "tab:green", "measured": "k"}


def threshold(sorted_abs: np.ndarray, kept_fraction: float | None) -> float | None:
    """The smallest kept magnitude ``t(ρ)`` of magnitude pruning (``None`` if nothing or everything is kept).

    >>> threshold(np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    0.3
    """
    if kept_fraction is None:
        return None
    n = sorted_abs.size
    k = kept_count(kept_fraction, n)
    return None if k == 0 else float(sorted_abs[n - k])


def run(ctx: Context) -> Outcome:
    rows, weights = [], {}
    for spec in ctx.specs:
        for seed in ctx.seeds:
            a = ctx.base_analysis(spec, seed)
            w = flatten([p.detach() for _, p in prunable_parameters(ctx.base_model(spec, seed))]).cpu().double().numpy()
            s = np.sort(np.abs(w))
            weights.setdefault(spec.key, []).append(s)
            t = {m: threshold(s, a.predicted[m]["kept_fraction"]) for m in ("flat", "free", "magnitude")}
            t["measured"] = threshold(s, a.measured_kept("loss"))
            rows.append({"model": spec.key, "seed": seed, "n_prunable": s.size,
                         **{f"fraction_below_{lv:g}": float(np.mean(s < lv)) for lv in LEVELS},
                         "fraction_zero": float(np.mean(s == 0)),
                         **{f"threshold_{m}": v for m, v in t.items()},
                         "log10_ratio_magnitude_vs_measured": (math.log10(t["magnitude"] / t["measured"])
                                                               if t["magnitude"] and t["measured"] else None),
                         "log10_ratio_flat_vs_measured": (math.log10(t["flat"] / t["measured"])
                                                          if t["flat"] and t["measured"] else None)})
    table = []
    for spec in ctx.specs:
        rs = [r for r in rows if r["model"] == spec.key]
        table.append({"network": spec.label, **{f"|w| < {lv:g}": pm(r[f"fraction_below_{lv:g}"] for r in rs) for lv in LEVELS},
                      **{f"t {m}": pm((r[f"threshold_{m}"] for r in rs), 4) for m in ("flat", "magnitude", "measured")}})
    lim = math.log10(FACTOR)
    ratios = {spec.key: mean_std(r["log10_ratio_magnitude_vs_measured"] for r in rows if r["model"] == spec.key)[0]
              for spec in ctx.specs}
    flat_ratios = {spec.key: mean_std(r["log10_ratio_flat_vs_measured"] for r in rows if r["model"] == spec.key)[0]
                   for spec in ctx.specs}
    below = {spec.key: mean_std(r["fraction_below_0.001"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}

    def agree(values: dict[str, float | None]) -> bool | None:
        return None if any(v is None for v in values.values()) else all(abs(v) <= lim for v in values.values())

    verdicts = [
        Verdict("The predicted limit (authors' formula) and the actual one agree as magnitude thresholds",
                f"|mean log10(t_flat / t_measured)| ≤ log10 {FACTOR:g} for every network (ours)", agree(flat_ratios),
                "; ".join(f"{k}: t_flat/t_measured = 10^{v:+.2f}" if v is not None else f"{k}: undefined"
                          for k, v in flat_ratios.items()) + f" ({seeds_text(ctx.seeds)})"),
        Verdict("The magnitude-pruning prediction and LOMP agree as magnitude thresholds",
                f"|mean log10(t_magnitude / t_measured)| ≤ log10 {FACTOR:g} for every network (ours)", agree(ratios),
                "; ".join(f"{k}: 10^{v:+.2f}" if v is not None else f"{k}: undefined" for k, v in ratios.items())),
    ]
    fig, axes = figure_grid(len(ctx.specs), rows_per_panel=2, height=2.6)
    for i, spec in enumerate(ctx.specs):
        ss = weights[spec.key]
        pos = np.concatenate([s[s > 0] for s in ss])
        lo, hi = (max(pos.min(), 1e-8), pos.max()) if pos.size else (1e-8, 1.0)
        bins = np.logspace(math.log10(lo), math.log10(hi), 60)
        for j, s in enumerate(ss):
            axes[2 * i].hist(s[s > 0], bins=bins, histtype="step", lw=1, label=f"seed {ctx.seeds[j]}")
        axes[2 * i].set_xscale("log")
        axes[2 * i].set_title(f"{spec.label}: |w| ({100 * float(np.mean(ss[0] == 0)):.1f}% exactly 0)", fontsize=9)
        axes[2 * i].set_ylabel("count")
        ax = axes[2 * i + 1]
        s0 = ss[0]
        grid = np.logspace(math.log10(lo), math.log10(hi), 200)
        ax.semilogx(grid, np.searchsorted(s0, grid, side="left") / s0.size, color="gray", lw=1.2,
                    label="removed fraction F(t)")
        r0 = next(r for r in rows if r["model"] == spec.key and r["seed"] == ctx.seeds[0])
        for m, c in COLORS.items():
            t = r0[f"threshold_{m}"]
            if t:
                ax.axvline(t, color=c, ls="--" if m != "measured" else "-", lw=1, label=f"{m} (seed {ctx.seeds[0]})")
        ax.set_xlabel("magnitude threshold t")
        ax.set_ylabel("removed fraction")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    headline = ("fraction of weights below 1e-3: " + "; ".join(f"{k} {v:.2f}" for k, v in below.items())
                + "; t_flat/t_measured: " + "; ".join(f"{k} 10^{v:+.2f}" if v is not None else f"{k} —"
                                                        for k, v in flat_ratios.items()))
    notes = ["t = the smallest magnitude kept at a kept fraction; 'measured' = the LOMP limit by training loss.",
             "Exact zeros are left out of the log-scale histogram and counted in its title."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)
