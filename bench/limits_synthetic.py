"""Synthetic error table of the pruning limit: exact quadratic oracle vs free (ours) vs flat (the authors').

For each spectrum law, dimension D and seed we build ``H = Q diag(λ) Qᵀ`` with a Haar-random ``Q``, trained
weights ``w* = 0.1 · Laplace(1)`` (the setting of the table in docs/math.md §2: with seed 0, D = 1000, exp(1),
ε = 0.005 it gives exact / flat / free = 0.817 / 0.755 / 0.819), and compare kept fractions at several ε:

* ``exact``: :meth:`theory.quadratic.QuadraticModel.magnitude_threshold` (one unpivoted LDLᵀ, checked
  against the bisection/Schur reference path on every case);
* ``free`` / ``flat`` from the exact eigenvalues, and from SLQ spectra (``numerics.slq.slq``) without and
  with deflation of the top eigenpairs (the cost of the SLQ error);
* ``surrogate``: the exact oracle on an independent Haar rotation of the same spectrum with the same
  weights -- a Monte Carlo draw of what the deterministic (free) equivalent predicts, so ``|surrogate −
  exact|`` is the finite-D fluctuation that no spectral formula can remove;
* on the indefinite law, the negative-eigenvalue policies ``abs`` / ``clip`` / ``drop`` for both methods.
  There the oracle is the stationary compensation with a running median over ``2⌈0.005 D⌉ + 1`` supports
  (:meth:`theory.quadratic.MagnitudeCurve.threshold`): each negative eigenvalue puts an isolated pole in
  ``Δ(T_k)`` where a leading block ``H_TT`` becomes singular, and the raw last crossing is dominated by them.

Spectrum laws: ``mixed`` (70 % Exp(mean 0.05) + 30 % Exp(mean 5)), ``exponential`` (Exp(mean 1)),
``half-zero`` (half exactly 0, half Exp(mean 2); the zero mass is passed to the formulas through the
spectrum itself), ``indefinite`` (Exp(mean 1) with a random 5 % of the eigenvalues negated).

Goal (issue 4): worst |free − exact| ≤ 0.02 at D ≥ 1000 from exact eigenvalues, ≤ 0.03 from SLQ spectra.
The goals are reported (MET / NOT MET), not asserted; internal consistency is asserted.

Usage::

    python bench/limits_synthetic.py            # full run (D ∈ {300, 1000, 2000}, 3 seeds)
    python bench/limits_synthetic.py --quick    # smoke run (D = 300, 1 seed)
    python bench/limits_synthetic.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import scipy
import torch

from nets.io import atomic_write_json
from numerics.operators import DenseOperator
from numerics.slq import slq
from theory.spectrum import Spectrum
from numerics.testing import rotated_diagonal
from theory.limits import DEFAULT_NEGATIVE, pruning_limit
from theory.quadratic import QuadraticModel

SPECTRA = ("mixed", "exponential", "half-zero", "indefinite")
EPSILONS = (0.002, 0.005, 0.05, 0.5, 2.0)
WEIGHT_SCALE = 0.1
NEG_FRACTION = 0.05
POLICIES = ("abs", "clip", "drop")


def draw_spectrum(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "mixed":
        n1 = int(round(0.7 * n))
        return np.concatenate([rng.exponential(0.05, n1), rng.exponential(5.0, n - n1)])
    if kind == "exponential":
        return rng.exponential(1.0, n)
    if kind == "half-zero":
        n0 = n // 2
        return np.concatenate([np.zeros(n0), rng.exponential(2.0, n - n0)])
    if kind == "indefinite":
        lam = rng.exponential(1.0, n)
        neg = rng.choice(n, size=int(round(NEG_FRACTION * n)), replace=False)
        lam[neg] *= -1.0
        return lam
    raise ValueError(f"unknown spectrum {kind!r}")


def run_case(kind: str, n: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    ss = np.random.SeedSequence([seed, n, SPECTRA.index(kind)])
    rng = np.random.default_rng(ss)
    lam = draw_spectrum(kind, n, rng)
    t0 = time.perf_counter()
    H = rotated_diagonal(lam, rng).matrix
    w = WEIGHT_SCALE * rng.laplace(size=n)
    model = QuadraticModel(H, w)
    curve = model.magnitude_curve()
    t_oracle = time.perf_counter() - t0
    # parity of the LDLᵀ fast path with the Schur-complement reference path (a few supports)
    for k in (n // 10, n // 2, (9 * n) // 10):
        ref = model.compensated_increase(model.magnitude_support(k))
        fast = curve.compensated[k]
        # rounding on the scale of the problem (Δ(0)); the curve is exact up to c·n·eps relative to it
        assert abs(ref - fast) <= 1e-7 * abs(ref) + 1e-9 * curve.compensated[0], (kind, n, k, ref, fast)

    # surrogate: independent Haar rotation of the same spectrum, same weights
    t0 = time.perf_counter()
    sur_curve = QuadraticModel(rotated_diagonal(lam, rng).matrix, w).magnitude_curve()
    t_sur = time.perf_counter() - t0

    # SLQ spectra (seeded generator: the benchmark, not the library, chooses the seed)
    op = DenseOperator(torch.from_numpy(H))
    gen = torch.Generator().manual_seed(int(ss.generate_state(1)[0]))
    t0 = time.perf_counter()
    spec_slq = slq(op, steps=args.steps, n_probes=args.probes, generator=gen).spectrum
    t_slq = time.perf_counter() - t0
    spec_defl, t_defl, defl_error = None, float("nan"), None
    try:
        t0 = time.perf_counter()
        spec_defl = slq(op, steps=args.steps, n_probes=args.probes, generator=gen, deflate=args.deflate).spectrum
        t_defl = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - report, do not hide
        defl_error = f"{type(exc).__name__}: {exc}"
    spec_exact = Spectrum.from_eigenvalues(lam)

    rows = []
    for eps in EPSILONS:
        # indefinite H: the stationary compensation has isolated poles; use the running-median convention
        win = 2 * int(np.ceil(0.005 * n)) + 1 if kind == "indefinite" else 1
        k_exact = curve.threshold(eps, median_window=win)
        row: dict[str, Any] = {
            "spectrum": kind,
            "D": n,
            "seed": seed,
            "eps": eps,
            "exact": k_exact / n,
            "surrogate": sur_curve.threshold(eps, median_window=win) / n,
        }
        for method in ("free", "flat"):
            row[f"{method}_exact"] = pruning_limit(spec_exact, w, eps, method=method, n_curve=0).kept_fraction
            r = pruning_limit(spec_slq, w, eps, method=method, n_curve=0)
            row[f"{method}_slq"], row[f"{method}_slq_se"] = r.kept_fraction, r.stderr
            if spec_defl is not None:
                r = pruning_limit(spec_defl, w, eps, method=method, n_curve=0)
                row[f"{method}_slq_defl"], row[f"{method}_slq_defl_se"] = r.kept_fraction, r.stderr
            if kind == "indefinite":
                for pol in POLICIES:
                    # the default policy's value is the "exact" column already
                    row[f"{method}_{pol}"] = row[f"{method}_exact"] if pol == DEFAULT_NEGATIVE else pruning_limit(
                        spec_exact, w, eps, method=method, negative=pol, n_curve=0).kept_fraction
        rows.append(row)
    cost = {
        "oracle_s": t_oracle,
        "surrogate_s": t_sur,
        "slq_s": t_slq,
        "slq_matvecs": args.steps * args.probes,
        "slq_deflated_s": t_defl,
        "deflation_error": defl_error,
    }
    return {"rows": rows, "cost": cost}


def summarise(rows: list[dict[str, Any]], key: str) -> tuple[float, float, int]:
    errs = [abs(r[key] - r["exact"]) for r in rows if key in r]
    if not errs:
        return float("nan"), float("nan"), 0
    return float(np.mean(errs)), float(np.max(errs)), len(errs)


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: D = 300, one seed")
    p.add_argument("--dims", type=int, nargs="+", default=[300, 1000, 2000])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=80, help="Lanczos steps per SLQ probe")
    p.add_argument("--probes", type=int, default=16, help="SLQ probes")
    p.add_argument("--deflate", type=int, default=20, help="top eigenpairs deflated in the deflated SLQ")
    p.add_argument("--json", type=str, default=None, help="write all rows and the summary to this path")
    args = p.parse_args(argv)
    if args.quick:
        args.dims, args.seeds = [300], 1

    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    costs: list[dict[str, Any]] = []
    for n in args.dims:
        for kind in SPECTRA:
            for seed in range(args.seeds):
                out = run_case(kind, n, seed, args)
                rows += out["rows"]
                costs.append({"spectrum": kind, "D": n, "seed": seed, **out["cost"]})
                print(
                    f"  D={n:5d} {kind:12s} seed={seed}: oracle {out['cost']['oracle_s']:.1f}s, "
                    f"SLQ {out['cost']['slq_s']:.2f}s ({out['cost']['slq_matvecs']} matvecs)",
                    flush=True,
                )

    keys = ["free_exact", "flat_exact", "free_slq", "free_slq_defl", "flat_slq", "surrogate"]
    summary: dict[str, Any] = {}
    print()
    print(f"Absolute error in kept fraction vs the exact oracle (mean / worst over seeds × ε; ε ∈ {EPSILONS})")
    header = f"{'D':>5} {'spectrum':12s} {'n':>3} " + " ".join(f"{k:>15s}" for k in keys)
    print(header)
    print("-" * len(header))
    for n in args.dims:
        for kind in SPECTRA:
            sel = [r for r in rows if r["D"] == n and r["spectrum"] == kind]
            cells = []
            for k in keys:
                mean, worst, cnt = summarise(sel, k)
                summary[f"{n}/{kind}/{k}"] = {"mean": mean, "worst": worst, "n": cnt}
                cells.append(f"{mean:6.3f} / {worst:5.3f}")
            print(f"{n:5d} {kind:12s} {len(sel):3d} " + " ".join(f"{c:>15s}" for c in cells))
    # free vs flat ratio of mean errors, per D (peers measured in the same run)
    print()
    for n in args.dims:
        sel = [r for r in rows if r["D"] == n]
        mf, wf, _ = summarise(sel, "free_exact")
        ma, wa, _ = summarise(sel, "flat_exact")
        print(f"D={n}: mean error flat/free = {ma / mf:.1f}x, worst flat/free = {wa / wf:.1f}x "
              f"(free {mf:.4f}/{wf:.4f}, flat {ma:.4f}/{wa:.4f})")

    ind = [r for r in rows if r["spectrum"] == "indefinite"]
    if ind:
        print()
        print("Negative-eigenvalue policies on the indefinite law (exact eigenvalues; mean / worst |error|):")
        for method in ("free", "flat"):
            parts = []
            for pol in POLICIES:
                for n in args.dims:
                    mean, worst, cnt = summarise([r for r in ind if r["D"] == n], f"{method}_{pol}")
                    summary[f"policy/{method}/{pol}/{n}"] = {"mean": mean, "worst": worst, "n": cnt}
                mean, worst, cnt = summarise(ind, f"{method}_{pol}")
                summary[f"policy/{method}/{pol}"] = {"mean": mean, "worst": worst, "n": cnt}
                parts.append(f"{pol}: {mean:.4f} / {worst:.4f}")
            print(f"  {method:4s}  " + "   ".join(parts))

    # goals (reported honestly, not asserted)
    print()
    # Reported per class: on the PSD laws the goal is a statement about the formula; on the indefinite law the
    # oracle itself fluctuates by more than the goal between Haar draws (the "surrogate" column), so pooling
    # the two would hide both facts.
    summary["goals"] = {}
    for label, keep in (("PSD laws", lambda r: r["spectrum"] != "indefinite"),
                        ("indefinite law", lambda r: r["spectrum"] == "indefinite")):
        big = [r for r in rows if r["D"] >= 1000 and keep(r)]
        if not big:
            continue
        _, w_exact, _ = summarise(big, "free_exact")
        _, w_slq, _ = summarise(big, "free_slq")
        _, w_defl, _ = summarise(big, "free_slq_defl")
        _, w_sur, _ = summarise(big, "surrogate")
        print(f"[{label}] goal free/exact eigenvalues worst ≤ 0.02 at D ≥ 1000: {w_exact:.4f} "
              f"{'MET' if w_exact <= 0.02 else 'NOT MET'}")
        print(f"[{label}] goal free/SLQ worst ≤ 0.03 at D ≥ 1000: plain {w_slq:.4f} "
              f"{'MET' if w_slq <= 0.03 else 'NOT MET'}; deflated {w_defl:.4f} "
              f"{'MET' if w_defl <= 0.03 else 'NOT MET'}")
        print(f"[{label}] finite-D fluctuation of the oracle (independent Haar rotation), worst at D ≥ 1000: "
              f"{w_sur:.4f}")
        summary["goals"][label] = {"free_exact_worst": w_exact, "free_slq_worst": w_slq,
                                   "free_slq_defl_worst": w_defl, "surrogate_worst": w_sur}

    # consistency asserted: the free threshold never exceeds the rank fraction (half-zero law)
    for r in rows:
        if r["spectrum"] == "half-zero":
            assert r["free_exact"] <= 0.5 + 1e-12, r
    total = time.perf_counter() - t_start
    env = environment()
    print()
    print(f"total {total:.1f}s; oracle {sum(c['oracle_s'] for c in costs):.1f}s, "
          f"SLQ {sum(c['slq_s'] for c in costs):.1f}s ({args.steps} steps × {args.probes} probes = "
          f"{args.steps * args.probes} matvecs per spectrum; deflation k={args.deflate})")
    print("environment:", json.dumps(env))
    if any(c["deflation_error"] for c in costs):
        print("deflated SLQ unavailable:", next(c["deflation_error"] for c in costs if c["deflation_error"]))
    if args.json:
        payload = {"args": vars(args), "environment": env, "summary": summary, "rows": rows, "costs": costs,
                   "total_s": total}
        atomic_write_json(args.json, payload, indent=1, allow_nan=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
