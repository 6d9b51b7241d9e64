"""``baselines``: LOMP against Rare Gems, IMP with rewinding and Smart-Ratio at several sparsities (test
accuracy), with the dense network beside them (the paper's comparison tables).

* **Dense**: the ℓ1-trained network (the dense recipe of the scale).
* **LOMP** (the paper's method): that network pruned once by global magnitude, no fine-tuning (its LOMP sweep,
  which contains every level of the table).
* **IMP with rewinding** (Frankle & Carbin 2019; Frankle et al. 2020, :func:`nets.prune.iterative_magnitude_pruning`):
  from the same initialisation, ``max(baseline_rounds)`` rounds removing ``imp_prune_fraction`` of the remaining
  weights, rewinding to epoch ``imp_rewind_epoch``; the table's sparsities are its rounds.
* **Smart-Ratio** (Su et al., NeurIPS 2020, :func:`nets.prune.smart_ratio_masks`): random masks with their
  layer-wise ratios, trained from the same initialisation. Where their Linear-layer ratio 0.3 alone keeps more
  weights than the target allows, the Linear layers keep the target fraction instead (ours, noted per row).
* **Rare Gems** (:func:`nets.raregems.rare_gems`): Gem-Miner's score search at the same initialisation, then
  fine-tuning of the ticket.

The retrained baselines use the dense recipe without the ℓ1 term (ℓ1 is LOMP's ingredient); Rare Gems' search
and fine-tuning use its own recipe (:mod:`nets.raregems`, the scale's epochs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nets.experiments.common import figure_grid, mean_std, pm, seeds_text
from nets.experiments.context import Context, config_params
from nets.experiments.report import Outcome, Verdict
from nets.prune import fine_tune, iterative_magnitude_pruning, mask_kept_fraction, smart_ratio_masks
from theory.limits import kept_count
from nets.raregems import GemMinerConfig, finetune_config, rare_gems

NAME = "baselines"
TITLE = "LOMP vs Rare Gems, IMP and Smart-Ratio"
REPRODUCES = "the paper's tables comparing LOMP with dense training, Rare Gems, IMP and Smart-Ratio (test accuracy)"
METHODS = ("LOMP", "IMP", "Smart-Ratio", "Rare Gems")
COLORS = {"LOMP": "tab:red", "IMP": "tab:blue", "Smart-Ratio": "tab:orange", "Rare Gems": "tab:green"}


def rare_gems_ticket(ctx: Context, spec: Any, seed: int, kept: float, score_l2: float) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The fine-tuned Rare Gems ticket of ``(spec, seed)`` at kept fraction ``kept`` (cached in ``DIR/_shared``,
    shared by the baselines and l2 experiments) and its record (test accuracy before/after fine-tuning)."""
    sc = ctx.scale
    search = GemMinerConfig(kept, epochs=sc.gem_epochs, iter_period=sc.gem_iter_period, score_l2=score_l2, seed=seed,
                            device=ctx.device)
    ft = finetune_config(search, epochs=sc.gem_finetune_epochs, lr=sc.gem_finetune_lr)
    params = {"spec": spec.to_dict(), "seed": seed, "search": search.to_dict(), "finetune": config_params(ft)}
    params["search"].pop("device")
    record: dict[str, Any] = {}

    def build() -> torch.nn.Module:
        ctx.log(f"{spec.key} seed {seed}: Rare Gems at kept {kept:.4f} (λ = {score_l2:g})")
        model = ctx.init_model(spec, seed).to(ctx.device)
        res = rare_gems(model, ctx.data(spec), search, ft)
        record.update({"gem_test_acc": res.gem_test_acc, "test_acc": res.test_acc,
                       "kept_fraction": mask_kept_fraction(res.masks), "search_seconds": res.search.seconds,
                       "rounded_fraction_end": res.search.history[-1]["rounded_fraction"]})
        return model

    model = ctx.shared.model("raregems", f"{spec.key}-seed{seed}-kept{kept:.6f}-l2{score_l2:g}", params, build,
                             lambda: ctx.init_model(spec, seed), info=lambda m: dict(record))
    info = ctx.shared.model_info("raregems", f"{spec.key}-seed{seed}-kept{kept:.6f}-l2{score_l2:g}", params)
    return model.to(ctx.device), info or record


def run(ctx: Context) -> Outcome:
    sc = ctx.scale
    levels = ctx.baseline_levels()
    rows: list[dict[str, Any]] = []
    cells = ctx.cells(NAME)
    for spec in ctx.specs:
        data = ctx.data(spec)
        for seed in ctx.seeds:
            a = ctx.base_analysis(spec, seed)
            recipe = ctx.train_config(spec, seed, l1=0.0)
            rows.append({"model": spec.key, "seed": seed, "method": "Dense", "level": 1.0, "kept_fraction": 1.0,
                         "test_acc": a.dense["test_acc"], "note": "ℓ1-trained"})
            for q in levels:
                rows.append({"model": spec.key, "seed": seed, "method": "LOMP", "level": q,
                             "kept_fraction": kept_count(q, a.n_prunable) / a.n_prunable,
                             "test_acc": a.sweep_at("test_acc", q), "note": "no fine-tuning"})

            def imp() -> dict[str, Any]:
                ctx.log(f"{spec.key} seed {seed}: IMP with rewinding, {max(sc.baseline_rounds)} rounds")
                res = iterative_magnitude_pruning(ctx.init_model(spec, seed).to(ctx.device), data, recipe,
                                                  rounds=max(sc.baseline_rounds), prune_fraction=sc.imp_prune_fraction,
                                                  rewind_epoch=sc.imp_rewind_epoch)
                return {"rounds": res.rounds}

            hist = cells.compute("imp", f"{spec.key}-seed{seed}",
                                 {"spec": spec.to_dict(), "seed": seed, "recipe": config_params(recipe),
                                  "rounds": max(sc.baseline_rounds), "p": sc.imp_prune_fraction,
                                  "rewind": sc.imp_rewind_epoch}, imp)["rounds"]
            for r in sc.baseline_rounds:
                rec = hist[r]
                rows.append({"model": spec.key, "seed": seed, "method": "IMP", "level": (1.0 - sc.imp_prune_fraction) ** r,
                             "kept_fraction": rec["kept_fraction"],
                             "test_acc": rec["test_acc"], "note": f"round {r}, rewind to epoch {sc.imp_rewind_epoch}"})
            for q in levels:
                def smart(q: float = q) -> dict[str, Any]:
                    model = ctx.init_model(spec, seed).to(ctx.device)
                    g = torch.Generator().manual_seed(seed)
                    note = "linear_kept_fraction 0.3 (Su et al.)"
                    try:
                        masks = smart_ratio_masks(model, q, generator=g)
                    except ValueError:
                        masks = smart_ratio_masks(model, q, generator=g, linear_kept_fraction=q)
                        note = f"linear_kept_fraction {q:.4g} (0.3 does not fit; ours)"
                    ctx.log(f"{spec.key} seed {seed}: Smart-Ratio at kept {q:.4f}")
                    res = fine_tune(model, masks, data, recipe)
                    return {"kept_fraction": mask_kept_fraction(masks), "test_acc": res.final["test_acc"], "note": note}

                s = cells.compute("smart-ratio", f"{spec.key}-seed{seed}-kept{q:.6f}",
                                  {"spec": spec.to_dict(), "seed": seed, "kept": q, "recipe": config_params(recipe)}, smart)
                rows.append({"model": spec.key, "seed": seed, "method": "Smart-Ratio", "level": q, **s})
                _, info = rare_gems_ticket(ctx, spec, seed, q, sc.gem_score_l2)
                rows.append({"model": spec.key, "seed": seed, "method": "Rare Gems", "level": q,
                             "kept_fraction": info["kept_fraction"],
                             "test_acc": info["test_acc"], "gem_test_acc": info["gem_test_acc"],
                             "note": f"search {sc.gem_epochs} + fine-tune {sc.gem_finetune_epochs} epochs"})
    table = []
    for spec in ctx.specs:
        dense = pm((r["test_acc"] for r in rows if r["model"] == spec.key and r["method"] == "Dense"), 4)
        for q in levels:
            entry: dict[str, Any] = {"network": spec.key, "kept": q, "sparsity %": 100 * (1 - q), "Dense": dense}
            for m in METHODS:
                entry[m] = pm((r["test_acc"] for r in rows if r["model"] == spec.key and r["method"] == m
                               and r["level"] == q), 4)
            entry["Rare Gems before fine-tuning"] = pm((r.get("gem_test_acc") for r in rows if r["model"] == spec.key
                                                        and r["method"] == "Rare Gems" and r["level"] == q), 4)
            table.append(entry)

    def mean_acc(key: str, m: str, q: float) -> float | None:
        return mean_std(r["test_acc"] for r in rows if r["model"] == key and r["method"] == m and r["level"] == q)[0]

    high = sorted(levels)[:2]
    verdicts = []
    for other in ("IMP", "Rare Gems", "Smart-Ratio"):
        pairs = {(spec.key, q): (mean_acc(spec.key, "LOMP", q), mean_acc(spec.key, other, q)) for spec in ctx.specs for q in high}
        ok = [l is not None and o is not None and l >= o for l, o in pairs.values()]
        verdicts.append(Verdict(
            f"LOMP beats {other} at high sparsity",
            f"mean test accuracy of LOMP ≥ {other}'s at the two highest sparsities "
            f"({', '.join(f'{100 * (1 - q):.1f} %' for q in high)}), "
            "every network (ours)",
            all(ok),
            "; ".join(f"{k} @ {100 * (1 - q):.1f} %: LOMP {l:.3f} vs {o:.3f}" if l is not None and o is not None
                      else f"{k} @ {100 * (1 - q):.1f} %: missing" for (k, q), (l, o) in pairs.items())
            + f" ({seeds_text(ctx.seeds)})"))
    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        for m in METHODS:
            ys = [mean_acc(spec.key, m, q) for q in levels]
            ax.plot([100 * (1 - q) for q in levels], [np.nan if y is None else y for y in ys], "o-", color=COLORS[m],
                    ms=4, label=m)
        d = mean_std(r["test_acc"] for r in rows if r["model"] == spec.key and r["method"] == "Dense")[0]
        ax.axhline(d, color="k", ls=":", lw=1, label="dense")
        ax.set_xlabel("sparsity (% removed)")
        ax.set_ylabel("test accuracy")
        ax.set_title(spec.label, fontsize=9)
    axes[0].legend(fontsize=7)
    q = high[0]
    headline = f"test accuracy at {100 * (1 - q):.1f} % sparsity: " + "; ".join(
        f"{spec.key} " + ", ".join(f"{m} {mean_acc(spec.key, m, q):.3f}" if mean_acc(spec.key, m, q) is not None
                                   else f"{m} —" for m in METHODS) for spec in ctx.specs)
    notes = [f"Sparsities = IMP's rounds {list(sc.baseline_rounds)} at prune fraction {sc.imp_prune_fraction}; "
             f"kept fractions {', '.join(f'{q:.4g}' for q in levels)}.",
             "LOMP is not fine-tuned (the paper's method); IMP, Smart-Ratio and Rare Gems retrain.",
             "Retrained baselines: the dense recipe without ℓ1; Rare Gems: score search then fine-tuning "
             f"(lr {sc.gem_finetune_lr}, {sc.gem_finetune_epochs} epochs)."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)

