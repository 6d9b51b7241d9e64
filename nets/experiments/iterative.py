"""``iterative``: the predicted threshold over rounds of iterative pruning — prune to the predicted limit,
retrain, recompute (the paper's figure: the threshold grows with the iterations).

Round 0 is the dense ℓ1-trained network and its analysis. In round ``r ≥ 1`` the network of round ``r − 1`` is
pruned by global magnitude to the kept fraction predicted in round ``r − 1`` (``flat``, the paper's formula;
nested masks), retrained with the mask fixed for ``retrain_epochs`` epochs of the dense recipe (ℓ1 included;
:func:`nets.prune.fine_tune`), and analysed in the space of its surviving weights
(:func:`~nets.experiments.analysis.analyze` with ``within``), which gives the next prediction. All kept
fractions are relative to the ``N`` prunable weights. A round whose prediction keeps at least as many weights
as survive prunes nothing more. The mask of a stored round is recovered as its non-zero weights (pruned
weights are exactly zero; a kept weight is zero only with probability 0).
"""

from __future__ import annotations

from typing import Any

import torch

from nets.experiments.common import figure_grid, mean_std, pm, seeds_text
from nets.experiments.context import Context, config_params
from nets.experiments.report import Outcome, Verdict
from nets.prune import fine_tune, global_magnitude_masks, mask_kept_fraction
from nets.params import prunable_parameters

NAME = "iterative"
TITLE = "The predicted threshold over rounds of iterative pruning"
REPRODUCES = "the paper's figure of the pruning-ratio threshold over iterations of iterative pruning"
TOLERANCE = 0.01


def nonzero_masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The masks of a pruned network: its non-zero prunable weights."""
    return {n: w.detach() != 0 for n, w in prunable_parameters(model)}


def run(ctx: Context) -> Outcome:
    R = ctx.scale.iterative_rounds
    rows = []
    for spec in ctx.specs:
        for seed in ctx.seeds:
            a = ctx.base_analysis(spec, seed)
            params: dict[str, Any] = {"base": ctx.base_params(spec, seed)}
            rows.append(_row(spec, seed, 0, 1.0, a))
            model = None
            for r in range(1, R + 1):
                target = a.predicted["flat"]["kept_fraction"]
                cfg = ctx.scale.retrain_config(spec, seed, ctx.device)
                prev_params, prev_model = params, model
                params = {"previous": prev_params, "round": r, "target": target, "retrain": config_params(cfg)}

                def build(prev_model: Any = prev_model, target: float = target, cfg: Any = cfg, r: int = r) -> torch.nn.Module:
                    m = prev_model if prev_model is not None else ctx.base_model(spec, seed)
                    within = None if r == 1 else nonzero_masks(m)
                    current = 1.0 if within is None else mask_kept_fraction(within)
                    masks = global_magnitude_masks(m, min(target, current), within=within)
                    ctx.log(f"{spec.key} seed {seed}: round {r}: pruned to kept {mask_kept_fraction(masks):.4f}, retraining")
                    fine_tune(m, masks, ctx.data(spec), cfg)
                    return m

                model = ctx.cells(NAME).model("models", f"{spec.key}-seed{seed}-round{r}", params, build,
                                              lambda: ctx.init_model(spec, seed)).to(ctx.device)
                masks = nonzero_masks(model)
                a = ctx.analysis(spec, seed, model, tag=f"iterative-round{r}", model_params=params, within=masks)
                rows.append(_row(spec, seed, r, mask_kept_fraction(masks), a))
    table = []
    for spec in ctx.specs:
        for r in range(R + 1):
            rs = [x for x in rows if x["model"] == spec.key and x["round"] == r]
            table.append({"network": spec.key, "round": r, "kept before": pm(x["kept_fraction"] for x in rs),
                          "predicted removed (flat)": pm(1 - x["predicted_flat"] for x in rs),
                          "predicted removed (magnitude)": pm(1 - x["predicted_magnitude"] for x in rs),
                          "test acc": pm(x["test_acc"] for x in rs)})
    grows, keeps = {}, {}
    for spec in ctx.specs:
        by_round = [mean_std(1 - x["predicted_flat"] for x in rows if x["model"] == spec.key and x["round"] == r)[0]
                    for r in range(R + 1)]
        grows[spec.key] = by_round
        acc0 = mean_std(x["test_acc"] for x in rows if x["model"] == spec.key and x["round"] == 0)[0]
        accR = mean_std(x["test_acc"] for x in rows if x["model"] == spec.key and x["round"] == R)[0]
        keeps[spec.key] = (acc0, accR)
    verdicts = [
        Verdict("The predicted threshold (removed fraction) increases over rounds of iterative pruning",
                "the mean predicted removed fraction (flat) increases strictly from each round to the next, every "
                "network (ours)",
                all(all(b > a for a, b in zip(v[:-1], v[1:])) for v in grows.values()),
                "; ".join(f"{k}: " + " → ".join(f"{x:.3f}" for x in v) for k, v in grows.items())
                + f" ({seeds_text(ctx.seeds)})"),
        Verdict("Pruning to the predicted threshold and retraining keeps the accuracy",
                f"mean test accuracy after the last round ≥ dense − {TOLERANCE}, every network (ours)",
                all(b >= a - TOLERANCE for a, b in keeps.values()),
                "; ".join(f"{k}: {a:.3f} → {b:.3f}" for k, (a, b) in keeps.items())),
    ]
    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        for seed in ctx.seeds:
            rs = [x for x in rows if x["model"] == spec.key and x["seed"] == seed]
            ax.plot([x["round"] for x in rs], [1 - x["predicted_flat"] for x in rs], "o-", color="tab:red", ms=3, lw=0.8,
                    label="predicted removed (flat)" if seed == ctx.seeds[0] else None)
            ax.plot([x["round"] for x in rs], [1 - x["kept_fraction"] for x in rs], "s--", color="gray", ms=3, lw=0.8,
                    label="removed so far" if seed == ctx.seeds[0] else None)
        ax2 = ax.twinx()
        ax2.plot(range(R + 1), [mean_std(x["test_acc"] for x in rows if x["model"] == spec.key and x["round"] == r)[0]
                                for r in range(R + 1)], "k:", lw=1)
        ax2.set_ylabel("test accuracy (dotted)", fontsize=8)
        ax.set_xlabel("round")
        ax.set_ylabel("removed fraction")
        ax.set_xticks(range(R + 1))
        ax.set_title(spec.label, fontsize=9)
    axes[0].legend(fontsize=7)
    headline = "predicted removed fraction by round: " + "; ".join(
        f"{k} " + "→".join(f"{x:.2f}" for x in v) for k, v in grows.items())
    notes = [f"Prune to the flat prediction, retrain {ctx.scale.retrain_epochs} epochs with the mask fixed (ℓ1 "
             "recipe), recompute in the space of the surviving weights; kept fractions relative to all N weights."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)


def _row(spec: Any, seed: int, r: int, kept: float, a: Any) -> dict[str, Any]:
    return {"model": spec.key, "seed": seed, "round": r, "kept_fraction": kept, "n_active": a.n_active,
            **{f"predicted_{m}": a.predicted[m]["kept_fraction"] for m in ("flat", "free", "magnitude")},
            "measured_lomp_loss": a.measured_kept("loss"), "test_acc": a.dense["test_acc"],
            "train_loss": a.dense["train_loss"], "eps": a.eps}

