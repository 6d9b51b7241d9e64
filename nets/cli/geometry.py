"""``prunelimit geometry``: statistical dimensions of standard cones, closed form vs exact Monte Carlo vs cvxpy.

For each cone and size the table shows the closed-form δ and its kind (exact / bound / asymptotic /
leading order), the exact Monte Carlo δ ± standard error (closed-form projections), the Monte Carlo δ ± s.e.
through cvxpy projections (small sizes only; independent samples), the deviations in standard errors
(for bounds: the distance outside the bound interval), and the largest discrepancy between exact and cvxpy
projections on the cvxpy samples. A final ``max |z|`` line summarises the agreement. Does not import torch.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from typing import Any

import numpy as np

from nets.cli._errors import UserError
from nets.cli._shared import bounded, nonneg_int
from nets.io import atomic_write_json

__all__ = ["add_arguments", "run", "standard_cones", "compute_table"]

#: cvxpy ground truth is used for cones up to this ambient dimension (per-sample solves are slow)
CVXPY_MAX_DIM = 60


def _cvxpy_samples(s: str) -> int:
    """0 (skip) or an int >= 2 (a standard error needs two samples)."""
    v = nonneg_int(s)
    if v == 1:
        raise argparse.ArgumentTypeError("must be 0 (skip) or >= 2 (a standard error needs two samples), got 1")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=bounded(int, 2), default=2000,
                        help="exact Monte Carlo samples per cone (default 2000; at least 2; refused before any work "
                             "when their values would not fit in memory)")
    parser.add_argument("--cvxpy-samples", type=_cvxpy_samples, default=100,
                        help="cvxpy-projection samples per small cone (default 100; 0 = skip)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed of the numpy Generator (default 0)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the table as JSON to PATH (atomic)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")


def standard_cones(quick: bool = False) -> list[tuple[str, Any]]:
    """The cones of the table: (label, cone), small sizes first."""
    from theory.cones import (
        CircularCone,
        EllipticCone,
        L1DescentCone,
        LinfDescentCone,
        LorentzCone,
        NonnegativeOrthant,
        NuclearDescentCone,
        PSDCone,
        Subspace,
    )

    slopes_rng = np.random.default_rng(12345)  # fixed slopes for the elliptic rows (part of the table's definition)
    small = [
        ("subspace d=10 k=4", Subspace.coordinate(10, 4)),
        ("orthant d=10", NonnegativeOrthant(10)),
        ("Lorentz d=10", LorentzCone(10)),
        ("circular d=10 a=pi/6", CircularCone(10, math.pi / 6)),
        ("PSD n=4", PSDCone(4)),
        ("l1 descent d=20 s=3", L1DescentCone(20, 3)),
        ("l1 descent nonneg d=20 s=3", L1DescentCone(20, 3, nonnegative=True)),
        ("linf descent d=20 k=5", LinfDescentCone(20, 5)),
        ("nuclear descent 6x6 r=1", NuclearDescentCone(6, 6, 1)),
        ("elliptic n=20", EllipticCone(slopes_rng.uniform(0.1, 3.0, size=20))),
    ]
    if quick:
        return small
    large = [
        ("orthant d=100", NonnegativeOrthant(100)),
        ("Lorentz d=100", LorentzCone(100)),
        ("circular d=100 a=pi/8", CircularCone(100, math.pi / 8)),
        ("PSD n=10", PSDCone(10)),
        ("l1 descent d=1000 s=100", L1DescentCone(1000, 100)),
        ("l1 descent nonneg d=1000 s=100", L1DescentCone(1000, 100, nonnegative=True)),
        ("linf descent d=1000 k=100", LinfDescentCone(1000, 100)),
        ("nuclear descent 60x60 r=5", NuclearDescentCone(60, 60, 5)),
        ("elliptic n=1000", EllipticCone(slopes_rng.uniform(0.1, 3.0, size=1000))),
    ]
    return small + large


def compute_table(samples: int, cvxpy_samples: int, seed: int, quick: bool = False) -> dict:
    """Compute every row (see the module docstring); returns a JSON-serialisable dict."""
    from theory.cones import CvxpyCone
    from theory.statdim import statistical_dimension, statistical_dimension_mc

    seqs = np.random.SeedSequence(seed).spawn(2 * len(standard_cones(quick)))
    rows = []
    for i, (label, cone) in enumerate(standard_cones(quick)):
        t0 = time.perf_counter()
        f = statistical_dimension(cone)
        mc = statistical_dimension_mc(cone, samples, np.random.default_rng(seqs[2 * i]))
        row: dict[str, Any] = {
            "cone": label,
            "d": cone.ambient_dim,
            "kind": f.kind,
            "closed_form": f.value,
            "lower": f.lower,
            "upper": f.upper,
            "reference": f.reference,
            "mc_mean": mc.mean,
            "mc_stderr": mc.stderr,
            "mc_z": f.deviation_in_stderr(mc),
            "mc_rel_dev": (mc.mean - f.value) / f.value if f.value else 0.0,
            "cvxpy_mean": None,
            "cvxpy_stderr": None,
            "cvxpy_z": None,
            "cvxpy_max_proj_diff": None,
            "cvxpy_statuses": None,
        }
        if cvxpy_samples >= 2 and cone.ambient_dim <= CVXPY_MAX_DIM:
            ref = CvxpyCone.from_cone(cone)
            rng = np.random.default_rng(seqs[2 * i + 1])
            g = rng.standard_normal((cvxpy_samples, cone.ambient_dim))
            p_ref = ref.project(g)
            vals = np.sum(p_ref * p_ref, axis=1)
            from theory.statdim import MonteCarloResult

            std = float(np.std(vals, ddof=1))
            cmc = MonteCarloResult(float(vals.mean()), std / math.sqrt(cvxpy_samples), cvxpy_samples, std)
            row.update(
                cvxpy_mean=cmc.mean,
                cvxpy_stderr=cmc.stderr,
                cvxpy_z=f.deviation_in_stderr(cmc),
                cvxpy_max_proj_diff=float(np.abs(cone.project(g) - p_ref).max()),
                cvxpy_statuses=sorted(set(ref.statuses)),
            )
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    checked = [r for r in rows if r["kind"] != "asymptotic"]
    zs = [(abs(r["mc_z"]), r["cone"], "exact MC") for r in checked]
    zs += [(abs(r["cvxpy_z"]), r["cone"], "cvxpy MC") for r in checked if r["cvxpy_z"] is not None]
    zmax = max(zs)
    asym = [r for r in rows if r["kind"] == "asymptotic"]
    return {
        "rows": rows,
        "max_abs_z": zmax[0],
        "max_abs_z_row": f"{zmax[1]} ({zmax[2]})",
        "max_abs_gap_leading_order": max(
            (abs(r["mc_mean"] - r["closed_form"]) for r in rows if r["kind"] == "leading order"), default=None
        ),
        "max_rel_dev_asymptotic": max((abs(r["mc_rel_dev"]) for r in asym), default=None),
        "max_cvxpy_proj_diff": max((r["cvxpy_max_proj_diff"] for r in rows if r["cvxpy_max_proj_diff"] is not None), default=None),
        "settings": {"samples": samples, "cvxpy_samples": cvxpy_samples, "seed": seed, "quick": quick},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()},
    }


def _fmt(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def render(table: dict) -> str:
    head = f"{'cone':<32} {'d':>5} {'kind':<13} {'closed form':>12} {'exact MC ± s.e.':>22} {'z':>6} {'cvxpy MC ± s.e.':>22} {'z':>6} {'max|Δproj|':>10}"
    lines = [head, "-" * len(head)]
    for r in table["rows"]:
        mc = f"{r['mc_mean']:.3f} ± {r['mc_stderr']:.3f}"
        cv = "-" if r["cvxpy_mean"] is None else f"{r['cvxpy_mean']:.3f} ± {r['cvxpy_stderr']:.3f}"
        diff = "-" if r["cvxpy_max_proj_diff"] is None else f"{r['cvxpy_max_proj_diff']:.1e}"
        lines.append(
            f"{r['cone']:<32} {r['d']:>5} {r['kind']:<13} {r['closed_form']:>12.3f} {mc:>22} {_fmt(r['mc_z'], 2):>6} "
            f"{cv:>22} {_fmt(r['cvxpy_z'], 2):>6} {diff:>10}"
        )
    lines.append("")
    lines.append(
        "z: (MC − closed form)/s.e. for exact rows; distance outside [lower, upper] in s.e. for bound and "
        "leading-order rows (0 inside)."
    )
    lines.append(f"max |z| (exact, bound and leading-order rows): {table['max_abs_z']:.2f} at {table['max_abs_z_row']}")
    if table["max_rel_dev_asymptotic"] is not None:
        lines.append(
            f"asymptotic formulas (not exact at finite size): max relative deviation of MC {table['max_rel_dev_asymptotic']:.2%}"
        )
    if table["max_abs_gap_leading_order"] is not None:
        lines.append(
            f"leading-order formulas (O(1) error): max |MC − Σ a²/(1+a²)| = {table['max_abs_gap_leading_order']:.2f}"
        )
    if table["max_cvxpy_proj_diff"] is not None:
        lines.append(f"max |exact projection − cvxpy projection| on the cvxpy samples: {table['max_cvxpy_proj_diff']:.1e}")
    return "\n".join(lines)


def memory_bytes(samples: int, cvxpy_samples: int, quick: bool) -> int:
    """Peak bytes of :func:`compute_table`: the ``samples`` float64 values of one cone and one batch of Gaussian
    rows (about 2·10⁶ numbers, :func:`theory.statdim.statistical_dimension_mc`), and the cvxpy samples' rows
    with their two projections (the largest cvxpy cone has ``d ≤ CVXPY_MAX_DIM``)."""
    return 8 * samples + 8 * 2 * 2_000_000 + 3 * 8 * cvxpy_samples * CVXPY_MAX_DIM


def run(args: argparse.Namespace) -> int:
    from nets.resources import host_memory_available

    need = memory_bytes(args.samples, args.cvxpy_samples, args.quick)
    avail = host_memory_available()
    if avail is not None and need > 0.8 * avail:
        most = int((0.8 * avail - memory_bytes(0, args.cvxpy_samples, args.quick)) // 8)
        raise UserError(f"--samples {args.samples} needs about {need / 2**30:.3g} GiB for the per-sample values, more "
                        f"than the {0.8 * avail / 2**30:.3g} GiB usable of the memory available; use --samples "
                        f"{max(2, most)} or fewer", option="--samples", value=args.samples)
    t0 = time.perf_counter()
    table = compute_table(args.samples, args.cvxpy_samples, args.seed, quick=args.quick)
    table["seconds"] = time.perf_counter() - t0
    print(render(table))
    print(f"({table['seconds']:.1f} s)")
    if args.json is not None:
        atomic_write_json(args.json, table, indent=2)
    return 0
