"""``tv-distance``: total-variation distance between the trained-weight distributions of independent runs (the
paper's TV table: the weight distribution is the same whatever the initialisation).

Estimator (ours, stated because the value depends on it): the prunable weights of each run are binned into
``B`` equal-width bins on the pooled central range ``[q_{0.005}, q_{0.995}]`` of all runs of the network plus
one overflow bin on each side, and ``TV = ½ Σ_b |p̂_b − q̂_b|`` between the two runs' bin frequencies. A
histogram estimate is biased upwards by sampling noise (about ``√(B/N)``), so beside it we report the
**sampling floor**: the same statistic between the two halves of a random split of the two runs' pooled
weights (the value for two samples of one distribution; mean over ``P`` random splits). ``B/2`` and ``2B``
bins show the binning sensitivity; the two-sample Kolmogorov–Smirnov statistic (``scipy.stats.ks_2samp``) is a
binning-free companion; ``TV(init, trained)`` (same run) gives the scale of a real change.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from nets.experiments.common import figure_grid, mean_std, pm, seeds_text
from nets.experiments.context import Context
from nets.experiments.report import Outcome, Verdict
from nets.params import flatten, prunable_parameters

NAME = "tv-distance"
TITLE = "Total-variation distance between the weight distributions of independent runs"
REPRODUCES = "the paper's table of TV distances between trained-weight distributions of independent runs"
#: "Small" (ours): TV ≤ SMALL and at most HALF of the init-vs-trained distance.
SMALL = 0.1
HALF = 0.5


def bin_edges(samples: list[np.ndarray], bins: int) -> np.ndarray:
    """``bins`` equal-width bins on the pooled ``[q_0.005, q_0.995]`` plus an overflow bin on each side.

    >>> bin_edges([np.linspace(0, 1, 201)], 4)[[0, 1, -2, -1]].tolist()
    [-inf, 0.005, 0.995, inf]
    """
    pooled = np.concatenate(samples)
    lo, hi = np.quantile(pooled, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.concatenate([[-np.inf], np.linspace(lo, hi, bins + 1), [np.inf]])


def tv_hist(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> float:
    """``½ Σ_b |p̂_b − q̂_b|`` of the bin frequencies of ``x`` and ``y``.

    >>> e = np.array([-np.inf, 0.0, np.inf])
    >>> tv_hist(np.array([-1.0, -1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, -1.0]), e)
    0.25
    """
    p = np.histogram(x, edges)[0] / x.size
    q = np.histogram(y, edges)[0] / y.size
    return 0.5 * float(np.abs(p - q).sum())


def sampling_floor(x: np.ndarray, y: np.ndarray, edges: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Mean TV between the halves (sizes ``|x|``, ``|y|``) of random splits of the pooled ``x ∪ y``."""
    pooled = np.concatenate([x, y])
    vals = []
    for _ in range(permutations):
        perm = rng.permutation(pooled.size)
        vals.append(tv_hist(pooled[perm[: x.size]], pooled[perm[x.size:]], edges))
    return float(np.mean(vals))


def _weights(model: torch.nn.Module) -> np.ndarray:
    return flatten([p.detach() for _, p in prunable_parameters(model)]).cpu().double().numpy()


def run(ctx: Context) -> Outcome:
    from scipy.stats import ks_2samp

    if len(ctx.seeds) < 2:
        raise ValueError(f"tv-distance compares independent runs: it needs seeds >= 2 (the paper's table: >= 3), "
                         f"got seeds={len(ctx.seeds)}")
    B, P = ctx.scale.tv_bins, ctx.scale.tv_permutations
    rows, trained, initial = [], {}, {}
    for spec in ctx.specs:
        trained[spec.key] = {s: _weights(ctx.base_model(spec, s)) for s in ctx.seeds}
        initial[spec.key] = {s: _weights(ctx.init_model(spec, s)) for s in ctx.seeds}
        ws = list(trained[spec.key].values())
        edges = {b: bin_edges(ws, b) for b in (B // 2, B, 2 * B)}
        init_edges = {s: bin_edges([initial[spec.key][s], trained[spec.key][s]], B) for s in ctx.seeds}
        rng = np.random.default_rng(0)
        for i, j in itertools.combinations(ctx.seeds, 2):
            x, y = trained[spec.key][i], trained[spec.key][j]
            rows.append({"model": spec.key, "seed_a": i, "seed_b": j, "n_prunable": x.size, "bins": B,
                         "tv": tv_hist(x, y, edges[B]), f"tv_{B // 2}_bins": tv_hist(x, y, edges[B // 2]),
                         f"tv_{2 * B}_bins": tv_hist(x, y, edges[2 * B]),
                         "sampling_floor": sampling_floor(x, y, edges[B], P, rng),
                         "ks": float(ks_2samp(x, y).statistic),
                         "tv_init_vs_trained_a": tv_hist(initial[spec.key][i], x, init_edges[i])})
    table = []
    for spec in ctx.specs:
        rs = [r for r in rows if r["model"] == spec.key]
        table.append({"network": spec.label, "pairs": len(rs), f"TV ({B} bins)": pm(r["tv"] for r in rs),
                      f"TV ({B // 2})": pm(r[f"tv_{B // 2}_bins"] for r in rs),
                      f"TV ({2 * B})": pm(r[f"tv_{2 * B}_bins"] for r in rs),
                      "sampling floor": pm(r["sampling_floor"] for r in rs), "KS": pm(r["ks"] for r in rs),
                      "TV init vs trained": pm(r["tv_init_vs_trained_a"] for r in rs)})
    tv = {spec.key: mean_std(r["tv"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}
    ref = {spec.key: mean_std(r["tv_init_vs_trained_a"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}
    floor = {spec.key: mean_std(r["sampling_floor"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}
    holds = all(tv[k] <= SMALL and tv[k] <= HALF * ref[k] for k in tv)
    verdicts = [Verdict(
        "The TV distance between the weight distributions of independent runs is small",
        f"mean TV over seed pairs ≤ {SMALL} and ≤ {HALF} × TV(init, trained), for every network (ours; "
        f"{B} equal-width bins on the pooled central 99 %)",
        holds,
        "; ".join(f"{k}: TV {tv[k]:.3f} (floor {floor[k]:.3f}, init vs trained {ref[k]:.3f})" for k in tv)
        + f" ({seeds_text(ctx.seeds)}, all pairs)")]

    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        ws = trained[spec.key]
        e = bin_edges(list(ws.values()), B)[1:-1]
        for s, w in ws.items():
            ax.hist(w, bins=e, histtype="step", density=True, lw=1, label=f"trained, seed {s}")
        ax.hist(initial[spec.key][ctx.seeds[0]], bins=e, histtype="step", density=True, lw=1, color="gray", ls="--",
                label=f"init, seed {ctx.seeds[0]}")
        ax.set_yscale("log")
        ax.set_title(f"{spec.label}: TV {tv[spec.key]:.3f} (floor {floor[spec.key]:.3f})", fontsize=9)
        ax.set_xlabel("weight w")
    axes[0].legend(fontsize=7)
    headline = "TV between runs: " + "; ".join(f"{k} {tv[k]:.3f} (floor {floor[k]:.3f}, init→trained {ref[k]:.3f})"
                                               for k in tv)
    notes = ["Independent runs differ in the initialisation and the data order (the data split is fixed).",
             f"Estimator: histogram with {B} equal-width bins on the pooled [q0.005, q0.995] + 2 overflow bins; "
             f"sampling floor over {P} random splits of the pooled weights.",
             "Signed weights (not magnitudes) are compared."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes,
                   raw={"bins": B, "permutations": P}, figure=fig)
