r"""``hessian-row-l1``: the ℓ1 norms of the rows of the Hessian of the prunable weights, sorted, against the
percentage of rows (the paper's figure of Hessian-row ℓ1 norms, one panel per network).

Three estimators, all by Hessian-vector products (no Hessian is ever formed by the network code):

* **exact rows** (:func:`row_l1_exact`): ``H e_j`` is column ``j`` of the symmetric ``H``, i.e. row ``j``; all
  ``N`` rows cost ``N`` products, in blocks of basis vectors. Used up to ``rows_exact_max_n`` weights.
* **sampled rows**: the same on the rows of the weights at ``Q`` magnitude quantiles (the authors' way of
  probing the rows of large networks: 100 rows at the quantiles of ``|w|``).
* **Cauchy probes** (:func:`row_l1_cauchy`, ours; the ℓ1 sketch of Indyk 2006, "Stable distributions,
  pseudorandom generators, embeddings, and data stream computation", J. ACM 53(3)): for ``z`` with independent
  standard Cauchy entries, ``(Hz)_i = Σ_j H_ij z_j`` is Cauchy with scale ``‖H_{i·}‖₁`` (1-stability), so the
  median of ``|(Hz)_i|`` over ``m`` probes estimates every row's ℓ1 norm at once with ``m`` products. The
  sample median of ``|X|``, ``X ~ Cauchy(0, γ)``, is asymptotically normal with standard deviation
  ``πγ/(2√m)`` (the density of ``|X|`` at its median ``γ`` is ``1/(πγ)``), a relative error of ``π/(2√m)``.

On networks with exact rows the Cauchy estimate is compared with them row by row (the fraction of rows within
3 standard errors). The authors count a row as zero when its ℓ1 norm is below 1e-7 (their zero-mass estimate
for the limit, docs/math.md §2); that fraction is reported too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from nets.experiments.analysis import hessian_operator
from nets.experiments.common import figure_grid, mean_std, pm, seeds_text, spearman
from nets.experiments.context import Context
from nets.experiments.report import Outcome, Verdict
from nets.params import count_parameters, flatten, prunable_parameters
from numerics.operators import LinearOperator
from theory.validation import check_int, check_torch_generator

NAME = "hessian-row-l1"
TITLE = "ℓ1 norms of Hessian rows"
REPRODUCES = "the paper's figure of the ℓ1 norms of the Hessian rows, sorted, as a percentage of rows"
#: The authors' zero threshold for a row's ℓ1 norm.
ZERO = 1e-7
#: "Concentrated at small values" (ours): the median row is below this fraction of the largest row.
CONCENTRATION = 0.05

__all__ = ["row_l1_exact", "row_l1_cauchy", "cauchy_relative_stderr", "quantile_rows", "dense_facts"]


def row_l1_exact(op: LinearOperator, rows: Any = None, *, block: int = 256, eigenvalues: bool = False) -> Any:
    """``‖H_{j·}‖₁`` for the rows ``rows`` (default: all) of a symmetric operator by products with basis vectors
    (``len(rows)`` products in blocks of ``block``). With ``eigenvalues=True`` (all rows only) also returns the
    eigenvalues of the assembled, symmetrised float64 matrix: ``(row_l1, eigenvalues)``.

    >>> from numerics.operators import DenseOperator
    >>> H = DenseOperator(torch.tensor([[2.0, -1.0], [-1.0, 0.0]], dtype=torch.float64), symmetric=True)
    >>> row_l1_exact(H).tolist()
    [3.0, 1.0]
    """
    if not op.symmetric:
        raise ValueError("row_l1_exact needs a symmetric operator (rows = columns)")
    n = op.shape[0]
    idx = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"rows must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
    if eigenvalues and rows is not None:
        raise ValueError("eigenvalues=True needs all rows (rows=None)")
    block = check_int("block", block, minimum=1)
    out = np.empty(idx.size)
    dense = np.empty((n, n)) if eigenvalues else None
    for start in range(0, idx.size, block):
        sel = idx[start:start + block]
        V = torch.zeros(n, sel.size, dtype=op.dtype, device=op.device)
        V[torch.as_tensor(sel, device=op.device), torch.arange(sel.size, device=op.device)] = 1.0
        cols = op.matmat(V).to("cpu", torch.float64)
        out[start:start + sel.size] = cols.abs().sum(dim=0).numpy()
        if dense is not None:
            dense[:, sel] = cols.numpy()
    if dense is not None:
        return out, np.linalg.eigvalsh(0.5 * (dense + dense.T))
    return out


def cauchy_relative_stderr(n_probes: int) -> float:
    """Asymptotic relative standard error ``π/(2√m)`` of the median-of-``|Cauchy|`` row-norm estimate.

    >>> round(cauchy_relative_stderr(100), 6)
    0.15708
    """
    return math.pi / (2.0 * math.sqrt(check_int("n_probes", n_probes, minimum=1)))


def row_l1_cauchy(op: LinearOperator, n_probes: int, *, generator: torch.Generator, block: int = 64) -> np.ndarray:
    """Estimates of every row's ℓ1 norm: ``median_k |(H z_k)_i|`` over ``n_probes`` standard Cauchy probes
    ``z_k = tan(π(u − ½))``, ``u ~ U(0, 1)`` from ``generator`` (module docstring; ours, after Indyk 2006).

    >>> from numerics.operators import DiagonalOperator
    >>> est = row_l1_cauchy(DiagonalOperator(np.array([1.0, -4.0])), 4001, generator=torch.Generator().manual_seed(0))
    >>> bool(np.allclose(est, [1.0, 4.0], rtol=0.1))
    True
    """
    check_torch_generator("generator", generator)
    m = check_int("n_probes", n_probes, minimum=1)
    block = check_int("block", block, minimum=1)
    n = op.shape[0]
    vals = []
    for start in range(0, m, block):
        k = min(block, m - start)
        u = torch.rand(n, k, generator=generator, dtype=torch.float64)
        Z = torch.tan(math.pi * (u - 0.5)).to(device=op.device, dtype=op.dtype)
        vals.append(op.matmat(Z).abs())
    s = torch.cat(vals, dim=1).sort(dim=1).values  # on the operator's device and dtype
    return (0.5 * (s[:, (m - 1) // 2] + s[:, m // 2])).to("cpu", torch.float64).numpy()


def quantile_rows(weights: np.ndarray, q: int) -> np.ndarray:
    """Indices of the weights at ``q`` evenly spaced quantiles of ``|w|`` (smallest to largest; distinct).

    >>> quantile_rows(np.array([0.3, -0.1, 0.2, 0.05]), 2).tolist()
    [3, 0]
    """
    order = np.argsort(np.abs(weights), kind="stable")
    pos = np.unique(np.round(np.linspace(0, order.size - 1, check_int("q", q, minimum=1))).astype(np.int64))
    return order[pos]


def dense_facts(ctx: Context, spec: Any, seed: int) -> dict[str, Any] | None:
    """Exact row ℓ1 norms and eigenvalues of the dense network's Hessian (the analysis's Hessian data), cached;
    ``None`` when ``N`` exceeds the scale's ``rows_exact_max_n``."""
    settings = ctx.analysis_settings(spec)
    n = count_parameters(ctx.init_model(spec, seed), prunable_only=True)
    if n > ctx.scale.rows_exact_max_n:
        return None
    params = {"model": ctx.base_params(spec, seed), "hessian": {"samples": settings.hessian_samples,
                                                                 "batch": settings.hessian_batch_size}, "seed": seed}

    def compute() -> dict[str, Any]:
        ctx.log(f"{spec.key} seed {seed}: {n} Hessian rows by basis vectors")
        model = ctx.base_model(spec, seed)
        op = hessian_operator(model, ctx.data(spec), settings, generator=torch.Generator().manual_seed(seed))
        rows, eig = row_l1_exact(op, eigenvalues=True)
        return {"row_l1": rows, "eigenvalues": eig, "hvps": op.cost()}

    return ctx.shared.compute("dense-hessian", f"{spec.key}-seed{seed}", params, compute)


def run(ctx: Context) -> Outcome:
    rows, curves = [], {}
    se_rel = cauchy_relative_stderr(ctx.scale.row_probes)
    for spec in ctx.specs:
        settings = ctx.analysis_settings(spec)
        for seed in ctx.seeds:
            facts = dense_facts(ctx, spec, seed)
            w = flatten([p.detach() for _, p in prunable_parameters(ctx.base_model(spec, seed))]).cpu().double().numpy()
            params = {"model": ctx.base_params(spec, seed), "probes": ctx.scale.row_probes,
                      "quantiles": ctx.scale.row_quantiles, "exact": facts is not None,
                      "hessian": {"samples": settings.hessian_samples, "batch": settings.hessian_batch_size}}

            def compute() -> dict[str, Any]:
                ctx.log(f"{spec.key} seed {seed}: Cauchy-probe row norms ({ctx.scale.row_probes} probes)"
                        + ("" if facts is not None else f" and {ctx.scale.row_quantiles} sampled rows"))
                model = ctx.base_model(spec, seed)
                op = hessian_operator(model, ctx.data(spec), settings, generator=torch.Generator().manual_seed(seed))
                est = row_l1_cauchy(op, ctx.scale.row_probes, generator=torch.Generator().manual_seed(10_000 + seed))
                out: dict[str, Any] = {"cauchy": est}
                if facts is None:
                    idx = quantile_rows(w, ctx.scale.row_quantiles)
                    out.update({"sampled_index": idx, "sampled": row_l1_exact(op, idx)})
                return out

            r = ctx.cells(NAME).compute("rows", f"{spec.key}-seed{seed}", params, compute)
            cauchy = np.asarray(r["cauchy"], dtype=float)
            exact = None if facts is None else np.asarray(facts["row_l1"], dtype=float)
            ref = exact if exact is not None else np.asarray(r["sampled"], dtype=float)
            ref_w = w if exact is not None else w[np.asarray(r["sampled_index"])]
            row: dict[str, Any] = {"model": spec.key, "seed": seed, "n_prunable": w.size,
                                   "method": "exact (all rows)" if exact is not None else f"{ref.size} sampled rows",
                                   "zero_fraction_1e-7": float(np.mean(ref < ZERO)),
                                   "zero_fraction_cauchy": float(np.mean(cauchy < ZERO)),
                                   "median_over_max": float(np.median(ref) / ref.max()) if ref.max() > 0 else None,
                                   **{f"q{int(q * 100)}": float(np.quantile(ref, q)) for q in (0.0, 0.1, 0.5, 0.9, 1.0)},
                                   "spearman_abs_w_vs_row_l1": spearman(np.abs(ref_w), ref),
                                   "cauchy_probes": ctx.scale.row_probes, "cauchy_rel_stderr": se_rel}
            if exact is not None:
                nz = exact > ZERO
                rel = cauchy[nz] / exact[nz] - 1.0
                row.update({"cauchy_median_rel_error": float(np.median(rel)) if rel.size else None,
                            "cauchy_rel_error_sd": float(np.std(rel)) if rel.size else None,
                            "cauchy_within_3se": float(np.mean(np.abs(rel) <= 3 * se_rel)) if rel.size else None,
                            "negative_eigen_fraction": float(np.mean(np.asarray(facts["eigenvalues"]) < 0))})
            rows.append(row)
            curves.setdefault(spec.key, (exact, cauchy, ref if exact is None else None))
    table = []
    for spec in ctx.specs:
        rs = [r for r in rows if r["model"] == spec.key]
        table.append({"network": spec.label, "rows": rs[0]["method"], "ℓ1 < 1e-7": pm(r["zero_fraction_1e-7"] for r in rs),
                      "median / max": pm(r["median_over_max"] for r in rs), "median": pm(r["q50"] for r in rs),
                      "max": pm(r["q100"] for r in rs), "Spearman(|w|, ℓ1)": pm(r["spearman_abs_w_vs_row_l1"] for r in rs),
                      "Cauchy within 3 se": pm(r.get("cauchy_within_3se") for r in rs)})
    conc = {spec.key: mean_std(r["median_over_max"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}
    zero = {spec.key: mean_std(r["zero_fraction_1e-7"] for r in rows if r["model"] == spec.key)[0] for spec in ctx.specs}
    within = [r["cauchy_within_3se"] for r in rows if r.get("cauchy_within_3se") is not None]
    checks = [(r["cauchy_rel_error_sd"], r["cauchy_median_rel_error"]) for r in rows
              if r.get("cauchy_rel_error_sd") is not None]
    verdicts = [
        Verdict("The ℓ1 norms of the Hessian rows concentrate at low values",
                f"median row ℓ1 ≤ {CONCENTRATION} × the largest, for every network (ours)",
                all(v is not None and v <= CONCENTRATION for v in conc.values()),
                "; ".join(f"{k}: median/max {conc[k]:.3g}, rows below 1e-7: {zero[k]:.3f}" for k in conc)
                + f" ({seeds_text(ctx.seeds)})"),
        Verdict("(check, ours) The Cauchy-probe estimate matches the exact rows",
                "where exact rows exist: the spread of the relative errors over the non-zero rows is the stated "
                "standard error π/(2√m) within ±30 % and the median relative error is within 3 of them (the rows "
                "share the probes, so their errors move together within one draw)",
                None if not checks else all(0.7 * se_rel <= sd <= 1.3 * se_rel and abs(med) <= 3 * se_rel
                                            for sd, med in checks),
                f"relative-error sd {pm(sd for sd, _ in checks)} vs stated {se_rel:.3f}; median "
                f"{pm(med for _, med in checks)}; {pm(within)} of the rows within 3 se ({ctx.scale.row_probes} probes)"
                if checks else "no network small enough for exact rows"),
    ]
    fig, axes = figure_grid(len(ctx.specs))
    for ax, spec in zip(axes, ctx.specs):
        exact, cauchy, sampled = curves[spec.key]
        for vals, style, label in ((exact, "k-", "exact rows"), (cauchy, "b-", f"Cauchy, {ctx.scale.row_probes} probes")):
            if vals is not None:
                v = np.sort(vals)[::-1]
                ax.semilogy(100 * np.arange(1, v.size + 1) / v.size, np.clip(v, 1e-12, None), style, lw=1, label=label)
        if sampled is not None:
            v = np.sort(sampled)[::-1]
            ax.semilogy(100 * np.arange(1, v.size + 1) / v.size, np.clip(v, 1e-12, None), "r.", ms=4,
                        label=f"{v.size} rows at |w| quantiles")
        ax.axhline(ZERO, color="gray", ls=":", lw=1)
        ax.set_xlabel("% of rows")
        ax.set_ylabel("row ℓ1 norm")
        ax.set_title(f"{spec.label} (seed {ctx.seeds[0]})", fontsize=9)
        ax.legend(fontsize=7)
    headline = "median/max row ℓ1: " + "; ".join(f"{k} {v:.3g}" for k, v in conc.items()) + \
        (f"; Cauchy within 3 se: {pm(within)}" if within else "")
    notes = ["Exact rows: H e_j by Hessian-vector products over the analysis's Hessian data (the same operator as "
             "the SLQ spectrum); the dense-Hessian check in float64 is a test (tests/nets/test_experiments.py).",
             f"Cauchy probes: median of |Hz| over {ctx.scale.row_probes} standard Cauchy vectors (relative se "
             f"{se_rel:.3f}).", "Rows with ℓ1 < 1e-7 are the authors' 'zero' rows."]
    return Outcome(NAME, TITLE, REPRODUCES, rows, table, verdicts, headline, notes, figure=fig)
