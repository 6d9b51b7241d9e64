"""``loss-vs-ratio``: test loss and test accuracy of LOMP-pruned networks against the removed fraction, with
the predicted limits as vertical lines (the paper's grid of panels, one per network).

The curves are the LOMP sweep of each dense ℓ1-trained network (global one-shot magnitude pruning, no
fine-tuning; shared analysis), mean over seeds with the min–max range shaded; the vertical lines are the
predicted removed fractions ``1 − ρ*`` (``flat``: the authors' formula; ``free``: ours; ``magnitude``: the
pipeline's Taylor prediction of the LOMP limit), mean over seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nets.experiments.common import figure_grid, mean_std, seeds_text
from nets.experiments.context import Context
from nets.experiments.report import Outcome, Verdict

NAME = "loss-vs-ratio"
TITLE = "Test loss and accuracy vs removed fraction, with the predicted limits"
REPRODUCES = "the paper's figure of test loss/accuracy vs pruning ratio with the predicted limit as a vertical line"
#: Accuracy drop (absolute) that counts as "degraded", and how much further pruning must degrade it (ours).
TOLERANCE = 0.01
FURTHER = 0.1
COLORS = {"flat": "tab:red", "free": "tab:blue", "magnitude": "tab:green"}


def run(ctx: Context) -> Outcome:
    rows: list[dict[str, Any]] = []
    checks: dict[str, list[tuple[float, float]]] = {}
    analyses: dict[str, list[Any]] = {}
    for spec in ctx.specs:
        for seed in ctx.seeds:
            a = ctx.base_analysis(spec, seed)
            analyses.setdefault(spec.key, []).append(a)
            for i, rho in enumerate(a.sweep["kept_fraction"]):
                rows.append({"model": spec.key, "seed": seed, "kept_fraction": rho, "removed_fraction": 1.0 - rho,
                             "kept_count": a.sweep["kept_count"][i], "train_loss": a.sweep["train_loss"][i],
                             "test_loss": a.sweep["test_loss"][i], "test_acc": a.sweep["test_acc"][i]})
            rho_star = a.predicted["flat"]["kept_fraction"]
            dense = a.dense["test_acc"]
            checks.setdefault(spec.key, []).append(
                (dense - a.sweep_at("test_acc", rho_star), dense - a.sweep_at("test_acc", max(rho_star - FURTHER, 0.0))))
    table = []
    for spec in ctx.specs:
        aa = analyses[spec.key]
        drop_at, drop_beyond = zip(*checks[spec.key])
        table.append({
            "network": spec.label, "dense test acc": mean_std(a.dense["test_acc"] for a in aa)[0],
            **{f"removed at {m}": 1.0 - mean_std(a.predicted[m]["kept_fraction"] for a in aa)[0]
               for m in ("flat", "free", "magnitude")},
            "acc drop at flat": mean_std(drop_at)[0], f"acc drop {FURTHER:g} beyond": mean_std(drop_beyond)[0],
            "test loss at flat": mean_std(a.sweep_at("test_loss", a.predicted["flat"]["kept_fraction"]) for a in aa)[0],
            "dense test loss": mean_std(a.dense["test_loss"] for a in aa)[0],
        })
    safe = {k: mean_std(d for d, _ in v)[0] for k, v in checks.items()}
    tight = {k: mean_std(d for _, d in v)[0] for k, v in checks.items()}
    holds = all(safe[k] <= TOLERANCE and tight[k] > TOLERANCE for k in safe)
    verdicts = [Verdict(
        "Loss and accuracy stay flat up to the predicted limit and degrade beyond it",
        f"mean test-accuracy drop ≤ {TOLERANCE} at the flat prediction ρ* and > {TOLERANCE} at ρ* − {FURTHER} "
        "(more pruning), for every network (ours)",
        holds,
        "; ".join(f"{k}: drop {safe[k]:+.3f} at ρ*, {tight[k]:+.3f} beyond" for k in safe) + f" ({seeds_text(ctx.seeds)})")]

    fig, axes = figure_grid(len(ctx.specs), rows_per_panel=2, height=2.6)
    for i, spec in enumerate(ctx.specs):
        aa = analyses[spec.key]
        removed = 1.0 - np.asarray(aa[0].sweep["kept_fraction"], dtype=float)
        for ax, key, label in ((axes[2 * i], "test_loss", "test loss"), (axes[2 * i + 1], "test_acc", "test accuracy")):
            ys = np.array([[np.nan if v is None else v for v in a.sweep[key]] for a in aa], dtype=float)
            ax.plot(removed, np.nanmean(ys, axis=0), color="k", lw=1.3)
            ax.fill_between(removed, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color="gray", alpha=0.3)
            for m, c in COLORS.items():
                ax.axvline(1.0 - mean_std(a.predicted[m]["kept_fraction"] for a in aa)[0], color=c, ls="--", lw=1,
                           label=f"{m} (predicted)")
            ax.set_ylabel(label)
            if key == "test_loss":
                ax.set_yscale("log")
                ax.set_title(spec.label, fontsize=9)
            else:
                ax.set_xlabel("removed fraction 1 − ρ")
    axes[0].legend(fontsize=7)
    headline = "accuracy drop at the flat prediction: " + "; ".join(f"{k} {safe[k]:+.3f}" for k in safe)
    notes = [f"Curves: mean over {seeds_text(ctx.seeds)}, shaded min–max; LOMP without fine-tuning.",
             "Vertical lines: predicted removed fractions 1 − ρ* (mean over seeds)."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)
