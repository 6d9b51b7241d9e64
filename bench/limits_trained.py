"""Benchmark: accuracy of every prediction of both pruning limits on trained networks (issue 9, requirement 7).

A grid of networks trained here on the bundled data — digits (1797 real 8×8 images) and the seeded
teacher–student task — MLPs of widths 32–512 and depth 1–3, ℓ1 strength λ ∈ {0, 1e-3, 1e-2}, two seeds —
each run through :func:`nets.limit.estimate_pruning_limit` with its default settings. Per network it prints
the predictions and measurements of both limits:

* fundamental (compensated): ``flat`` (the authors' formula), ``free`` (ours), the dense quadratic oracle
  (small N), against the measured limit with the quadratic (OBS) step (the primary measurement) and after
  masked L-BFGS re-optimisation;
* magnitude pruning (LOMP): ``taylor`` and ``haar`` against the LOMP sweep;

and the mean and worst |gap| of each (prediction, measurement) pair over the grid, by ℓ1 strength too. The
defaults of :mod:`nets.limit.predict` were chosen from this table.

Each network's result is written atomically to ``--out/cells/<name>.json`` and reused on a rerun (resumable);
``--json PATH`` writes the summary. ``--objective-l1 train`` adds the training's ℓ1 term to the loss of every
stage (``estimate_pruning_limit(..., l1=λ)``).

Usage::

    python bench/limits_trained.py --out bench-out/limits_trained [--quick] [--json summary.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _networks(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [{"data": d, "hidden": h, "l1": l1, "seed": 0} for d, h, l1 in
                itertools.product(("digits",), ((32,), (64, 64)), (0.0, 1e-2))]
    hidden = ((32,), (128,), (512,), (64, 64), (64, 64, 64))
    return [{"data": d, "hidden": h, "l1": l1, "seed": s} for d, h, l1, s in
            itertools.product(("digits", "teacher-student"), hidden, (0.0, 1e-3, 1e-2), (0, 1))]


def _name(cell: dict[str, Any], objective: str) -> str:
    return (f"{cell['data']}_h{'x'.join(map(str, cell['hidden']))}_l1{cell['l1']:g}_s{cell['seed']}"
            + ("" if objective == "data" else "_objl1"))


def run_cell(cell: dict[str, Any], objective: str) -> dict[str, Any]:
    from nets.data import load_dataset
    from nets.limit import estimate_pruning_limit
    from nets.models import build_model
    from nets.train import TrainConfig, train

    data = load_dataset(cell["data"], seed=cell["seed"])
    model = build_model("mlp", data.num_classes, data.input_shape, generator=torch.Generator().manual_seed(cell["seed"]),
                        hidden=tuple(cell["hidden"]))
    t0 = time.perf_counter()
    tr = train(model, data, TrainConfig(epochs=60, lr=0.05, l1=cell["l1"], batch_size=128, seed=cell["seed"]))
    t_train = time.perf_counter() - t0
    lam = cell["l1"] if objective == "train" else 0.0
    t0 = time.perf_counter()
    r = estimate_pruning_limit(model, data, l1=lam, seed=cell["seed"])
    secs = time.perf_counter() - t0
    fp, mp, mm, fm, q = (r.fundamental_prediction, r.magnitude_prediction, r.magnitude_measurement,
                         r.fundamental_measurement, r.oracle)
    return {
        "cell": cell, "objective_l1": lam, "N": r.model["n_prunable"], "train_seconds": t_train, "seconds": secs,
        "train_loss": r.tolerance.train.loss, "train_acc": r.tolerance.train.accuracy,
        "test_acc": None if r.tolerance.test is None else r.tolerance.test.accuracy,
        "final_train": tr.final, "eps": r.tolerance.eps, "gradient_norm": r.gradient_norm,
        "pred_flat": fp.limits["flat"].kept_fraction, "pred_free": fp.limits["free"].kept_fraction,
        "band_flat": [fp.limits["flat"].kept_fraction_lower, fp.limits["flat"].kept_fraction_upper],
        "band_free": [fp.limits["free"].kept_fraction_lower, fp.limits["free"].kept_fraction_upper],
        "oracle_compensated": None if q is None else q.kept_fraction_compensated,
        "oracle_uncompensated": None if q is None else q.kept_fraction_uncompensated,
        "meas_fundamental": fm.kept_fraction, "meas_fundamental_reopt": fm.kept_fraction_reoptimised,
        "pred_taylor": None if mp.taylor is None else mp.taylor.kept_fraction, "pred_haar": mp.haar.kept_fraction,
        "meas_lomp": mm.kept_fraction,
        "meas_lomp_acc": None if "test_accuracy" not in mm.limits else mm.limits["test_accuracy"].kept_fraction,
        "warnings": [w.code for w in r.warnings], "cost": r.cost, "timings": r.timings,
    }


PAIRS = {
    "fundamental": [("pred_flat", "meas_fundamental"), ("pred_free", "meas_fundamental"),
                    ("oracle_compensated", "meas_fundamental"), ("pred_flat", "meas_fundamental_reopt"),
                    ("pred_free", "meas_fundamental_reopt"), ("oracle_compensated", "meas_fundamental_reopt")],
    "magnitude": [("pred_taylor", "meas_lomp"), ("pred_haar", "meas_lomp"), ("oracle_uncompensated", "meas_lomp")],
}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for limit, pairs in PAIRS.items():
        for p, m in pairs:
            for group, sel in [("all", rows)] + [(f"l1={l1:g}", [r for r in rows if r["cell"]["l1"] == l1])
                                                  for l1 in sorted({r["cell"]["l1"] for r in rows})]:
                gaps = [r[p] - r[m] for r in sel if r.get(p) is not None and r.get(m) is not None]
                if not gaps:
                    continue
                g = np.asarray(gaps)
                out.setdefault(f"{p} vs {m}", {})[group] = {
                    "n": int(g.size), "mean_abs": float(np.mean(np.abs(g))), "worst_abs": float(np.max(np.abs(g))),
                    "bias": float(np.mean(g))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-out/limits_trained"))
    ap.add_argument("--objective-l1", choices=("data", "train"), default="data",
                    help="the limits' loss: the data loss (default) or the training objective with its l1 term")
    ap.add_argument("--quick", action="store_true", help="4 small networks (a smoke run)")
    ap.add_argument("--json", type=Path, default=None, help="write the summary and rows here (atomic)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nets.io import atomic_write_json, jsonable, provenance

    cells_dir = args.out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    cells = _networks(args.quick)
    for i, cell in enumerate(cells):
        path = cells_dir / f"{_name(cell, args.objective_l1)}.json"
        if path.is_file():
            row = json.loads(path.read_text())
        else:
            row = run_cell(cell, args.objective_l1)
            atomic_write_json(path, jsonable(row), indent=1)
        rows.append(row)
        f = lambda x: "   —  " if x is None else f"{x:6.3f}"  # noqa: E731
        print(f"[{i + 1:2d}/{len(cells)}] {_name(cell, args.objective_l1):34s} N={row['N']:6d} acc {row['train_acc']:.3f} "
              f"| F: flat {f(row['pred_flat'])} free {f(row['pred_free'])} oracle {f(row['oracle_compensated'])} "
              f"meas {f(row['meas_fundamental'])} reopt {f(row['meas_fundamental_reopt'])} "
              f"| M: taylor {f(row['pred_taylor'])} haar {f(row['pred_haar'])} meas {f(row['meas_lomp'])} "
              f"| {row['seconds']:.0f}s", flush=True)
    summary = summarise(rows)
    print("\nmean / worst |predicted − measured| (kept fraction), bias = mean(predicted − measured)")
    for key, groups in summary.items():
        print(f"  {key:48s} " + "  ".join(f"{g}: {v['mean_abs']:.3f}/{v['worst_abs']:.3f} (bias {v['bias']:+.3f}, n={v['n']})"
                                          for g, v in groups.items()))
    if args.json is not None:
        atomic_write_json(args.json, jsonable({"benchmark": "limits_trained", "objective": args.objective_l1,
                                               "summary": summary, "rows": rows, "provenance": provenance("cpu")}),
                          indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
