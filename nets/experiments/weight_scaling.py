"""``weight-scaling``: the predicted limit when the weights are scaled ×1…×5, the closed-form prediction curve,
and what the network actually does when scaled, with and without retraining (the paper's figure of the pruning
ratio against the magnitude of the weights, "Original, ×2, …, ×5, Prediction").

Three readings of "scale the weights by c" (all prunable weights, biases and BatchNorm unchanged):

* **fixed Hessian** (the paper's experiment and its prediction curve): the spectrum of the trained network is
  kept and ``w* → c·w*``, so ``R(ρ) → c·R(ρ)`` (:func:`theory.limits.magnitude_scaling`); by the formulas the
  predicted kept fraction cannot decrease with ``c``. The curve is evaluated on a fine grid of ``c``.
* **scaled, not retrained**: the network with weights ``c·w*`` is a different network (its Hessian, loss and
  ``ε`` change); it is analysed afresh: predicted limits from its own spectrum, LOMP measured.
* **scaled and retrained**: ``c·w*`` retrained for ``retrain_epochs`` epochs with the dense recipe (ℓ1 included),
  then analysed afresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nets.experiments.common import figure_grid, mean_std, pm, seeds_text, spearman
from nets.experiments.context import Context, config_params
from nets.experiments.report import Outcome, Verdict
from nets.params import flatten, prunable_parameters
from nets.train import train
from theory.limits import magnitude_scaling

NAME = "weight-scaling"
TITLE = "The limit when the weights are scaled ×1…×5"
REPRODUCES = "the paper's figure of the predicted pruning ratio with the weights multiplied by 2…5 and its prediction curve"
VARIANTS = ("fixed Hessian", "scaled", "scaled + retrained")


def scaled(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """``model`` with every prunable weight multiplied by ``factor`` (in place; returns it)."""
    with torch.no_grad():
        for _, w in prunable_parameters(model):
            w.mul_(factor)
    return model


def run(ctx: Context) -> Outcome:
    factors = ctx.scale.scaling_factors
    fine = np.linspace(min(factors), max(factors), 41)
    rows, curves = [], {}
    for spec in ctx.specs:
        for seed in ctx.seeds:
            base = ctx.base_analysis(spec, seed)
            bp = ctx.base_params(spec, seed)
            w = flatten([p.detach() for _, p in prunable_parameters(ctx.base_model(spec, seed))]).cpu().double().numpy()
            closed = {m: [lim.kept_fraction for lim in magnitude_scaling(base.spectrum, w, base.eps, fine.tolist(),
                                                                          method=m, n_curve=0)]
                      for m in ("flat", "free")}
            closed["magnitude"] = [lim.uncompensated_bound for lim in
                                   magnitude_scaling(base.spectrum, w, base.eps, fine.tolist(), n_curve=0)]
            curves.setdefault(spec.key, []).append(closed)
            for c in factors:
                i = int(np.argmin(np.abs(fine - c)))
                rows.append({"model": spec.key, "seed": seed, "factor": c, "variant": "fixed Hessian",
                             **{f"predicted_{m}": closed[m][i] for m in closed}, "measured_lomp_loss": None,
                             "measured_lomp_accuracy": None, "dense_test_acc": base.dense["test_acc"], "eps": base.eps})
                for variant in VARIANTS[1:]:
                    if c == 1.0 and variant == "scaled":
                        a = base
                    else:
                        a = _scaled_analysis(ctx, spec, seed, c, retrain=variant.endswith("retrained"), base_params=bp)
                    if a is None:  # undefined for this network (e.g. every batch loss 0, so ε = 0): recorded as such
                        rows.append({"model": spec.key, "seed": seed, "factor": c, "variant": variant,
                                     **{f"predicted_{m}": None for m in ("flat", "free", "magnitude")},
                                     "measured_lomp_loss": None, "measured_lomp_accuracy": None,
                                     "dense_test_acc": None, "eps": None, "note": "analysis undefined (ε = 0)"})
                        continue
                    rows.append({"model": spec.key, "seed": seed, "factor": c, "variant": variant,
                                 **{f"predicted_{m}": a.predicted[m]["kept_fraction"] for m in ("flat", "free", "magnitude")},
                                 "measured_lomp_loss": a.measured_kept("loss"),
                                 "measured_lomp_accuracy": a.measured_kept("accuracy"),
                                 "dense_test_acc": a.dense["test_acc"], "eps": a.eps, "note": ""})
    table = []
    for spec in ctx.specs:
        for variant in VARIANTS:
            for c in factors:
                rs = [r for r in rows if r["model"] == spec.key and r["variant"] == variant and r["factor"] == c]
                table.append({"network": spec.key, "variant": variant, "×": c, "flat ρ*": pm(r["predicted_flat"] for r in rs),
                              "magnitude ρ*": pm(r["predicted_magnitude"] for r in rs),
                              "LOMP (loss)": pm(r["measured_lomp_loss"] for r in rs),
                              "dense acc": pm(r["dense_test_acc"] for r in rs)})

    def trend(variant: str, key: str) -> dict[str, float | None]:
        """Per network: mean over seeds of Spearman(factor, key) over the factors where ``key`` is defined."""
        out = {}
        for spec in ctx.specs:
            rhos = []
            for s in ctx.seeds:
                pairs = [(r["factor"], r[key]) for r in rows if r["model"] == spec.key and r["variant"] == variant
                         and r["seed"] == s and r[key] is not None]
                rhos.append(spearman(*zip(*pairs)) if len(pairs) >= 2 else None)
            out[spec.key] = mean_std(rhos)[0]
        return out

    def verdict(claim: str, variant: str, key: str) -> Verdict:
        t = trend(variant, key)
        ok = [v for v in t.values() if v is not None]
        return Verdict(claim, f"mean over seeds of the Spearman correlation between the factor and {key.replace('_', ' ')} "
                       f"({variant}) > 0 for every network (ours)",
                       None if len(ok) < len(t) else all(v > 0 for v in ok),
                       "; ".join(f"{k}: ρ_S = {v:+.2f}" if v is not None else f"{k}: undefined" for k, v in t.items())
                       + f" ({seeds_text(ctx.seeds)})")

    verdicts = [
        verdict("Larger weights → larger predicted limit (keep more), Hessian fixed", "fixed Hessian", "predicted_flat"),
        verdict("Larger weights → larger limit, measured by LOMP on the scaled network (not retrained)", "scaled",
                "measured_lomp_loss"),
        verdict("Larger weights → larger predicted limit after retraining", "scaled + retrained", "predicted_flat"),
        verdict("Larger weights → larger measured LOMP limit after retraining", "scaled + retrained", "measured_lomp_loss"),
    ]
    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        cs = curves[spec.key]
        for m, color in (("flat", "tab:green"), ("magnitude", "tab:olive")):
            ax.plot(fine, np.mean([c[m] for c in cs], axis=0), color=color, lw=1.5, label=f"prediction ({m}, fixed H)")
        for variant, marker in (("scaled", "s"), ("scaled + retrained", "o")):
            for key, color, lab in (("predicted_flat", "tab:red", "flat"), ("measured_lomp_loss", "k", "LOMP")):
                ys = [mean_std(r[key] for r in rows if r["model"] == spec.key and r["variant"] == variant
                               and r["factor"] == c)[0] for c in factors]
                ax.plot(factors, [np.nan if y is None else y for y in ys], marker=marker, color=color,
                        ls="-" if variant == "scaled" else "--", ms=4, lw=0.8, label=f"{lab}, {variant}")
        ax.set_xlabel("weight scale factor c")
        ax.set_ylabel("kept fraction ρ")
        ax.set_title(spec.label, fontsize=9)
    axes[0].legend(fontsize=6)
    t = trend("fixed Hessian", "predicted_flat")
    headline = ("Spearman(c, ρ*) fixed Hessian: " + ", ".join(f"{k} {v:+.2f}" for k, v in t.items() if v is not None)
                + "; measured after retraining: " + ", ".join(
                    f"{k} {v:+.2f}" if v is not None else f"{k} —"
                    for k, v in trend("scaled + retrained", "measured_lomp_loss").items()))
    notes = ["fixed Hessian = the paper's experiment (theory.limits.magnitude_scaling on the trained spectrum); the "
             "scaled networks are analysed afresh (own spectrum, ε and LOMP sweep).",
             f"Retraining: {ctx.scale.retrain_epochs} epochs of the dense recipe (ℓ1 included) from c·w*.",
             "A scaled network whose per-batch training losses are all equal (typically all exactly 0 in float32 once "
             "the logits are large) has ε = 0 and no limit: its row says so and it is left out of the trends.",
             "Kept fraction ρ: larger = less can be pruned."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)


def _scaled_analysis(ctx: Context, spec: Any, seed: int, factor: float, *, retrain: bool, base_params: Any) -> Any:
    cfg = ctx.scale.retrain_config(spec, seed, ctx.device)
    params = {"base": base_params, "factor": factor, "retrain": config_params(cfg) if retrain else None}
    tag = f"x{factor:g}" + ("-retrained" if retrain else "")

    def build() -> torch.nn.Module:
        model = scaled(ctx.base_model(spec, seed), factor)
        if retrain:
            ctx.log(f"{spec.key} seed {seed}: retraining the network scaled x{factor:g}")
            train(model, ctx.data(spec), cfg)
        return model

    def model() -> torch.nn.Module:
        if not retrain:
            return build()
        return ctx.cells(NAME).model("models", f"{spec.key}-seed{seed}-{tag}", params, build,
                                     lambda: ctx.init_model(spec, seed)).to(ctx.device)

    return ctx.analysis(spec, seed, model, tag=tag, model_params=params, allow_failure=True)
