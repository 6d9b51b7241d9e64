"""``slq-settings``: the SLQ hyperparameters used per network, and the sensitivity of the predicted limit to
the Lanczos steps, the number of probes and the number of Hessian samples, with error bars (the paper's SLQ
table, extended).

For the dense network of the first seed, each setting is rerun ``slq_reps`` times with independent probes
(and, for the samples grid, an independent random subset of the training set); the table gives the mean and
standard deviation of the predicted kept fraction (``flat`` and ``free``) over the repetitions, beside the mean
delta-method standard error that the package reports for one run. Where the network is small enough for
exact Hessian rows (:mod:`nets.experiments.hessian_row_l1`), the limit predicted from the exact eigenvalues of
the same Hessian is the reference. One grid varies at a time, the others fixed at the scale's
``slq_base_steps`` / ``slq_base_probes`` and the network's Hessian data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nets.experiments.analysis import hessian_operator
from nets.experiments.common import figure_grid, mean_std, pm
from nets.experiments.context import Context
from nets.experiments.hessian_row_l1 import dense_facts
from nets.experiments.report import Outcome, Verdict
from nets.params import flatten, prunable_parameters
from numerics.slq import slq
from theory.limits import pruning_limit
from theory.spectrum import Spectrum

NAME = "slq-settings"
TITLE = "SLQ settings and the sensitivity of the predicted limit"
REPRODUCES = "the paper's table of SLQ hyperparameters, extended with the sensitivity of the limit (error bars)"
#: Change of the mean predicted kept fraction that counts as "converged" (ours: one percentage point).
CONVERGED = 0.01
METHODS = ("flat", "free")


def _limits(spectrum: Spectrum, w: np.ndarray, eps: float) -> dict[str, Any]:
    out = {}
    for m in METHODS:
        lim = pruning_limit(spectrum, w, eps, method=m, n_curve=0)
        out[m] = lim.kept_fraction
        out[f"{m}_stderr"] = lim.stderr
    return out


def run(ctx: Context) -> Outcome:
    sc = ctx.scale
    seed = ctx.seeds[0]
    rows, reference, used = [], {}, []
    for spec in ctx.specs:
        settings = ctx.analysis_settings(spec)
        base = ctx.base_analysis(spec, seed)
        used.append({"network": spec.label, "steps": base.slq["steps"], "probes": base.slq["n_probes"],
                     "Hessian samples": base.slq["hessian_samples"], "N": base.n_prunable,
                     "HVPs": base.slq["matvecs"], "SLQ seconds": base.slq["seconds"],
                     "flat ρ*": base.predicted["flat"]["kept_fraction"], "se (delta)": base.predicted["flat"]["stderr"]})
        facts = dense_facts(ctx, spec, seed)
        model = None
        w = None
        grids = ([("steps", s, {"steps": s, "probes": sc.slq_base_probes, "samples": settings.hessian_samples})
                  for s in sc.slq_steps_grid]
                 + [("probes", p, {"steps": sc.slq_base_steps, "probes": p, "samples": settings.hessian_samples})
                    for p in sc.slq_probes_grid]
                 + [("samples", n, {"steps": sc.slq_base_steps, "probes": sc.slq_base_probes, "samples": n})
                    for n in sc.slq_samples_grid])
        for grid, value, cfg in grids:
            for rep in range(sc.slq_reps):
                params = {"model": ctx.base_params(spec, seed), "cfg": cfg, "rep": rep, "eps": base.eps,
                          "batch": settings.hessian_batch_size}

                def compute() -> dict[str, Any]:
                    nonlocal model, w
                    if model is None:
                        model = ctx.base_model(spec, seed)
                        w = flatten([p.detach() for _, p in prunable_parameters(model)]).cpu().double().numpy()
                    g = torch.Generator().manual_seed(1000 * (rep + 1) + seed)
                    op = hessian_operator(model, ctx.data(spec), settings.replace(hessian_samples=cfg["samples"]),
                                          generator=g)
                    res = slq(op, steps=min(cfg["steps"], op.shape[0]), n_probes=cfg["probes"], generator=g)
                    return {**_limits(res.spectrum, w, base.eps), "hvps": res.matvecs, "seconds": res.seconds,
                            "samples_used": op.n_samples}

                r = ctx.cells(NAME).compute("runs", f"{spec.key}-seed{seed}-{grid}{value}-rep{rep}", params, compute)
                rows.append({"model": spec.key, "seed": seed, "grid": grid, "value": "all" if value is None else value,
                             "rep": rep, **cfg, "samples": r["samples_used"], **{k: r[k] for k in r if k != "samples_used"}})
        if facts is not None:
            if w is None:
                w = flatten([p.detach() for _, p in prunable_parameters(ctx.base_model(spec, seed))]).cpu().double().numpy()
            reference[spec.key] = _limits(Spectrum.from_eigenvalues(np.asarray(facts["eigenvalues"])), w, base.eps)

    table = []
    for spec in ctx.specs:
        for grid in ("steps", "probes", "samples"):
            values = list(dict.fromkeys(r["value"] for r in rows if r["model"] == spec.key and r["grid"] == grid))
            for v in values:
                rs = [r for r in rows if r["model"] == spec.key and r["grid"] == grid and r["value"] == v]
                table.append({"network": spec.key, "grid": grid, "value": v,
                              **{f"{m} ρ* (mean ± sd over reps)": pm((r[m] for r in rs), 4) for m in METHODS},
                              "flat se (delta, mean)": mean_std(r["flat_stderr"] for r in rs)[0],
                              "exact flat ρ*": reference.get(spec.key, {}).get("flat")})

    def spread(key: str, grid: str) -> float | None:
        rs = [r for r in rows if r["model"] == key and r["grid"] == grid]
        vals = list(dict.fromkeys(r["value"] for r in rs))
        if len(vals) < 2:
            return None
        last, prev = ([mean_std(r["flat"] for r in rs if r["value"] == v)[0] for v in vals[-2:]])
        return abs(last - prev)

    conv = {(spec.key, g): spread(spec.key, g) for spec in ctx.specs for g in ("steps", "probes", "samples")}
    known = [v for v in conv.values() if v is not None]
    exact_gap = {k: abs(used[i]["flat ρ*"] - reference[k]["flat"]) for i, k in enumerate(s.key for s in ctx.specs)
                 if k in reference}
    verdicts = [
        Verdict("(ours) The predicted limit has converged in the SLQ settings",
                f"|mean flat ρ*| changes by ≤ {CONVERGED} between the two largest values of each grid, every network",
                None if not known else max(known) <= CONVERGED,
                "; ".join(f"{k} {g}: {v:.4f}" for (k, g), v in conv.items() if v is not None)),
        Verdict("(ours) SLQ at the settings used agrees with the exact spectrum",
                f"|flat ρ*(SLQ, settings used) − flat ρ*(exact eigenvalues)| ≤ {CONVERGED}, where exact rows exist",
                None if not exact_gap else max(exact_gap.values()) <= CONVERGED,
                "; ".join(f"{k}: {v:.4f}" for k, v in exact_gap.items()) or "no network small enough"),
    ]
    fig, axes = figure_grid(len(ctx.specs), rows_per_panel=3, height=2.2)
    for i, spec in enumerate(ctx.specs):
        for j, grid in enumerate(("steps", "probes", "samples")):
            ax = axes[3 * i + j]
            rs = [r for r in rows if r["model"] == spec.key and r["grid"] == grid]
            vals = list(dict.fromkeys(r["value"] for r in rs))
            xs = np.arange(len(vals))
            for k, (m, c) in enumerate((("flat", "tab:red"), ("free", "tab:blue"))):
                ms = [mean_std(r[m] for r in rs if r["value"] == v) for v in vals]
                ax.errorbar(xs + 0.1 * k, [a for a, _ in ms], yerr=[b for _, b in ms], fmt="o-", color=c, ms=3,
                            capsize=2, label=m)
                if spec.key in reference:
                    ax.axhline(reference[spec.key][m], color=c, ls=":", lw=1)
            ax.set_xticks(xs, [str(v) for v in vals], fontsize=7)
            ax.set_xlabel(grid, fontsize=8)
            ax.set_ylabel("ρ*", fontsize=8)
            if j == 0:
                ax.set_title(f"{spec.label} (seed {seed}; dotted: exact spectrum)", fontsize=9)
    axes[0].legend(fontsize=7)
    headline = ("largest change between the two largest grid values: "
                + (f"{max(known):.4f}" if known else "—")
                + ("; SLQ vs exact: " + ", ".join(f"{k} {v:.4f}" for k, v in exact_gap.items()) if exact_gap else ""))
    notes = [f"Repetitions: {sc.slq_reps} independent probe draws (and Hessian subsets) per setting; seed {seed}'s "
             "network; error bars = standard deviation over repetitions.",
             "The authors used 1 probe x 128 Lanczos steps (AlexNet 96) over the whole training set; the first "
             "rows of the table give the settings used here."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, used, verdicts, headline, notes,
                   raw={"exact_reference": reference}, figure=fig,
                   extra_tables={"Sensitivity of the predicted kept fraction": table})
