"""``l2``: the pruning threshold with and without ℓ2 regularisation, and the effect of ℓ2 on Rare Gems (the
paper's figure: ℓ2 raises the threshold, and improves Rare Gems).

* **Dense training**: the dense recipe (ℓ1, the paper's LOMP training) against the same recipe plus
  ``λ₂/2 ‖w‖²`` (:class:`nets.train.TrainConfig` ``l2``), from the same initialisation; each network is analysed
  (predicted limits, LOMP measured). The theory's reading: smaller weights → smaller ``R`` → more can be removed.
* **Rare Gems**: Gem-Miner's ℓ2 regulariser on the scores (``λ‖p‖²``, the authors' 1e-4) against none
  (``λ = 0``), at the second sparsity of the comparison table; the fine-tuned tickets' accuracy and their
  predicted threshold, computed in the space of the ticket's surviving weights and reported relative to all
  ``N`` weights (the shared Rare Gems cells of ``baselines`` are reused).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from nets.experiments.baselines import rare_gems_ticket
from nets.experiments.common import figure_grid, mean_std, pm, seeds_text
from nets.experiments.context import Context, config_params
from nets.experiments.iterative import nonzero_masks
from nets.experiments.report import Outcome, Verdict
from nets.raregems import GemMinerConfig
from nets.params import flatten, prunable_parameters
from nets.train import train

NAME = "l2"
TITLE = "The threshold with and without ℓ2 regularisation, and ℓ2 in Rare Gems"
REPRODUCES = "the paper's figure of the threshold with/without ℓ2 regularisation and its effect on Rare Gems"


def _removed(a: Any) -> dict[str, float | None]:
    """Predicted removed fractions (1 − kept) of an analysis and the measured LOMP one (training loss); all
    ``None`` for an undefined analysis (``a is None``)."""
    if a is None:
        return {**{f"predicted_removed_{m}": None for m in ("flat", "free", "magnitude")},
                "measured_removed_lomp_loss": None}
    lomp = a.measured_kept("loss")
    return {**{f"predicted_removed_{m}": 1 - a.predicted[m]["kept_fraction"] for m in ("flat", "free", "magnitude")},
            "measured_removed_lomp_loss": None if lomp is None else 1 - lomp}


def _norm(model: torch.nn.Module) -> float:
    return float(flatten([p.detach() for _, p in prunable_parameters(model)]).double().norm())


#: Accuracy a ticket may lose for its higher threshold to count as an improvement (ours: one point).
ACC_TOLERANCE = 0.01
#: The authors' Gem-Miner search length on CIFAR-10: 150 epochs of ⌈50000/128⌉ = 391 steps.
AUTHORS_SEARCH_STEPS = 150 * 391


def matched_l2(ctx: Context, spec: Any) -> float:
    """The score λ whose total pull ``Σ_steps 2λ·lr`` over this search equals the authors' (ours): their λ times
    their number of search steps over ours (both under the same cosine lr schedule)."""
    steps = ctx.scale.gem_epochs * math.ceil(len(ctx.data(spec).train) / GemMinerConfig(1.0).batch_size)
    return ctx.scale.gem_score_l2 * AUTHORS_SEARCH_STEPS / steps


def run(ctx: Context) -> Outcome:
    sc = ctx.scale
    level = ctx.baseline_levels()[min(1, len(ctx.baseline_levels()) - 1)]
    rows = []
    for spec in ctx.specs:
        for seed in ctx.seeds:
            base = ctx.base_analysis(spec, seed)
            cfg = ctx.train_config(spec, seed, l2=sc.l2)
            params = {"spec": spec.to_dict(), "seed": seed, "train": config_params(cfg)}

            def build(cfg: Any = cfg) -> torch.nn.Module:
                ctx.log(f"{spec.key} seed {seed}: training with l1 + l2 (λ₂ = {sc.l2:g})")
                model = ctx.init_model(spec, seed).to(ctx.device)
                train(model, ctx.data(spec), cfg)
                return model

            model = ctx.cells(NAME).model("models", f"{spec.key}-seed{seed}-l2", params, build,
                                          lambda: ctx.init_model(spec, seed)).to(ctx.device)
            a = ctx.analysis(spec, seed, model, tag="l2", model_params=params)
            for label, an, norm in (("ℓ1", base, _norm(ctx.base_model(spec, seed))),
                                    (f"ℓ1 + ℓ2 ({sc.l2:g})", a, _norm(model))):
                rows.append({"model": spec.key, "seed": seed, "part": "dense", "setting": label, **_removed(an),
                             "test_acc": an.dense["test_acc"], "weight_norm": norm, "eps": an.eps})
            lams = {"λ = 0": 0.0, "λ = authors'": sc.gem_score_l2, "λ = matched": matched_l2(ctx, spec)}
            tickets = {}
            for label, lam in lams.items():
                ticket, info = rare_gems_ticket(ctx, spec, seed, level, lam)
                masks = tickets[label] = nonzero_masks(ticket)
                ticket_params = {"spec": spec.to_dict(), "seed": seed, "kept": level, "score_l2": lam,
                                 **{f: getattr(sc, f) for f in ("gem_epochs", "gem_finetune_epochs", "gem_finetune_lr",
                                                                "gem_iter_period")}}
                ta = ctx.analysis(spec, seed, ticket, tag=f"raregems-l2{lam:g}", within=masks,
                                  model_params={"ticket": ticket_params}, allow_failure=True)
                same = all(torch.equal(masks[k], tickets["λ = 0"][k]) for k in masks)
                rows.append({"model": spec.key, "seed": seed, "part": "Rare Gems", "setting": f"Rare Gems, score ℓ2 {label}",
                             "score_l2": lam, "same_ticket_as_lambda_0": same,
                             **_removed(ta),
                             "test_acc": info["test_acc"], "gem_test_acc": info["gem_test_acc"], "weight_norm": _norm(ticket),
                             "eps": None if ta is None else ta.eps, "ticket_kept_fraction": info["kept_fraction"]})
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    table = []
    for spec in ctx.specs:
        for s in settings:
            rs = [r for r in rows if r["model"] == spec.key and r["setting"] == s]
            table.append({"network": spec.key, "part": rs[0]["part"], "setting": s,
                          "predicted removed (flat)": pm(r["predicted_removed_flat"] for r in rs),
                          "predicted removed (magnitude)": pm(r["predicted_removed_magnitude"] for r in rs),
                          "LOMP removed (loss)": pm(r["measured_removed_lomp_loss"] for r in rs),
                          "test acc": pm(r["test_acc"] for r in rs), "‖w‖": pm(r["weight_norm"] for r in rs)})

    def compare(key: str, with_: str, without: str) -> dict[str, tuple[float | None, float | None]]:
        """Per network: (mean of ``key`` under setting ``with_``, under ``without``)."""
        return {spec.key: tuple(mean_std(r[key] for r in rows if r["model"] == spec.key and r["setting"] == s)[0]
                                for s in (with_, without)) for spec in ctx.specs}

    l1, l1l2, gem_off, gem_authors, gem_matched = settings
    dense = compare("predicted_removed_flat", l1l2, l1)

    def better(d: dict[str, tuple[float | None, float | None]]) -> bool | None:
        if any(a is None or b is None for a, b in d.values()):
            return None
        return all(a > b for a, b in d.values())

    def gem_verdict(setting: str, what: str) -> Verdict:
        """Threshold claim: a higher threshold counts only where the ticket's accuracy did not fall (a collapsed
        ticket has a flat loss and a vacuous threshold); accuracy claim: higher test accuracy."""
        threshold = what.startswith("increases")
        d = compare("predicted_removed_flat" if threshold else "test_acc", setting, gem_off)
        acc = compare("test_acc", setting, gem_off)
        same = [r["same_ticket_as_lambda_0"] for r in rows if r["setting"] == setting]
        if all(same) or better(d) is None:
            holds = None
        elif threshold:
            holds = all(d[k][0] > d[k][1] and acc[k][0] >= acc[k][1] - ACC_TOLERANCE for k in d)
        else:
            holds = better(d)
        lam = pm((r["score_l2"] for r in rows if r["setting"] == setting), 4)
        criterion = (f"mean predicted removed fraction (flat) of the fine-tuned ticket with λ > 0 > with λ = 0 and its "
                     f"test accuracy not lower by more than {ACC_TOLERANCE}, every network (ours)" if threshold else
                     "mean test accuracy of the fine-tuned ticket with λ > 0 > with λ = 0, every network (ours)")
        evidence = "; ".join(f"{k}: {a:.3f} vs {b:.3f}" + (f" (test acc {acc[k][0]:.3f} vs {acc[k][1]:.3f})"
                                                           if threshold else "") for k, (a, b) in d.items())
        return Verdict(f"ℓ2 (Gem-Miner's score regulariser, {setting.split('score ℓ2 ')[1]}) {what}",
                       criterion + "; inconclusive when the regulariser leaves every ticket unchanged", holds,
                       evidence + f" (λ {lam}; identical tickets in {sum(same)} of {len(same)} runs)")

    verdicts = [
        Verdict("ℓ2 regularisation increases the pruning threshold (more can be removed)",
                "mean predicted removed fraction (flat) with ℓ1 + ℓ2 > with ℓ1 alone, every network (ours)",
                better(dense), "; ".join(f"{k}: {a:.3f} with ℓ2 vs {b:.3f} without" for k, (a, b) in dense.items())
                + f" ({seeds_text(ctx.seeds)})"),
        gem_verdict(gem_authors, "increases Rare Gems' threshold"),
        gem_verdict(gem_matched, "increases Rare Gems' threshold"),
        gem_verdict(gem_matched, "improves Rare Gems' accuracy"),
    ]
    gems = compare("predicted_removed_flat", gem_matched, gem_off)
    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        x = np.arange(len(settings))
        for k, (key, c, lab) in enumerate((("predicted_removed_flat", "tab:red", "predicted removed (flat)"),
                                          ("measured_removed_lomp_loss", "k", "LOMP removed (loss)"))):
            ms = [mean_std(r[key] for r in rows if r["model"] == spec.key and r["setting"] == s) for s in settings]
            ax.bar(x + 0.4 * k - 0.2, [m or 0.0 for m, _ in ms], 0.4, yerr=[sd or 0.0 for _, sd in ms], color=c,
                   alpha=0.7, label=lab)
        ax.set_xticks(x, settings, fontsize=7, rotation=15)
        ax.set_ylabel("removed fraction")
        ax.set_title(spec.label, fontsize=9)
    axes[0].legend(fontsize=7)
    headline = ("predicted removed (flat) with/without ℓ2: " + "; ".join(f"{k} {a:.3f}/{b:.3f}" for k, (a, b) in dense.items())
                + "; Rare Gems matched λ / λ=0: " + "; ".join(f"{k} {a:.3f}/{b:.3f}" for k, (a, b) in gems.items()))
    notes = [f"Dense: same initialisation and data order; λ₂ = {sc.l2:g} added to the dense recipe's ℓ1.",
             f"Rare Gems at kept fraction {level:.4g}: the ticket's threshold is predicted within its surviving "
             "weights and reported relative to all N weights (so it is at least 1 − kept).",
             "Score regulariser: λ = 0, the authors' λ, and a 'matched' λ (ours) = the authors' λ × (their 150 epochs × "
             "391 steps) / (this search's epochs × steps per epoch), which gives the regulariser the same total pull "
             "on the scores as in the authors' CIFAR run (the authors' λ over a short search barely moves them).",
             "Removed fraction = 1 − kept fraction: larger = more can be pruned."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)
