"""Benchmark: exact projections vs cvxpy (per-sample cost), ψ at 10⁴ values, elliptic projection at n = 10⁴.

    .venv/bin/python bench/geometry.py [--quick] [--json PATH]

Prints seconds per sample for the exact Monte Carlo sample (closed-form projection / exact 1-D minimisation
over τ) and for a cvxpy (CLARABEL) projection of the same points, their ratio (target ≥ 100× at d = 1000),
the time of ``l1_psi`` on 10⁴ values (target < 50 ms), and the elliptic-cone projection cost at n = 10⁴.
Cost is also given in model-independent units: projections, and root-find iterations (each one pass over
the n coordinates) for the elliptic cone. Accuracy is asserted against cvxpy and by the Moreau conditions. ``--json`` writes every figure with the environment (``nets.io.provenance()``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_projection(label: str, cone, n_exact: int, n_cvx: int, rng: np.random.Generator) -> dict:
    from theory.cones import CvxpyCone

    d = cone.ambient_dim
    g = rng.standard_normal((n_exact, d))
    t_exact = _best(lambda: cone.sq_norm_projection(g), 3) / n_exact
    t_exact_proj = _best(lambda: cone.project(g), 3) / n_exact
    ref = CvxpyCone.from_cone(cone)
    ref.project(g[0])  # compile once (not counted: a Monte Carlo run compiles once too)
    x = g[1 : 1 + n_cvx]
    t0 = time.perf_counter()
    p_ref = ref.project(x)
    t_cvx = (time.perf_counter() - t0) / n_cvx
    err = float(np.abs(cone.project(x) - p_ref).max())
    # CLARABEL's default gap tolerance 1e-8 on ‖v − x‖² (~d): point error ≲ √(2·1e-8·d)
    tol = np.sqrt(2e-8 * d)
    assert err <= tol, f"{label}: exact vs cvxpy projection differ by {err:.2e} > {tol:.2e}"
    assert set(ref.statuses) == {"optimal"}, ref.statuses
    return {
        "label": label,
        "d": d,
        "exact_s": t_exact,
        "exact_proj_s": t_exact_proj,
        "cvxpy_s": t_cvx,
        "ratio": t_cvx / t_exact,
        "ratio_proj": t_cvx / t_exact_proj,
        "max_diff": err,
        "n_cvx": n_cvx,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few cvxpy solves (smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON (atomically)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    import cvxpy
    import scipy

    from theory.cones import CircularCone, CvxpyCone, EllipticCone, L1DescentCone
    from theory.statdim import l1_psi

    print(
        f"environment: python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"cvxpy {cvxpy.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    n_cvx = 3 if args.quick else 20
    n_exact = 200 if args.quick else 2000
    rows = [
        bench_projection("l1 descent d=1000 s=100", L1DescentCone(1000, 100), n_exact, n_cvx, rng),
        bench_projection("circular d=1000 a=pi/6", CircularCone(1000, np.pi / 6), n_exact, n_cvx, rng),
    ]
    print(f"\n{'cone':<26} {'exact ‖Π‖² s/sample':>20} {'exact Π s/sample':>18} {'cvxpy s/sample':>15} {'ratio':>10} {'ratio (Π)':>10} {'max|Δ|':>9}")
    for r in rows:
        print(
            f"{r['label']:<26} {r['exact_s']:>20.2e} {r['exact_proj_s']:>18.2e} {r['cvxpy_s']:>15.2e} "
            f"{r['ratio']:>9.0f}x {r['ratio_proj']:>9.0f}x {r['max_diff']:>9.1e}"
        )
        print(f"{'':<26} target ≥ 100x: {'met' if r['ratio_proj'] >= 100 else 'NOT met'} (cvxpy over {r['n_cvx']} samples)")

    # ψ at 10⁴ values
    rho = rng.uniform(0.0, 1.0, size=10_000)
    t_psi = _best(lambda: l1_psi(rho), 5)
    ref_vals = np.array([l1_psi(float(r)).value for r in rho[:50]])
    assert np.allclose(l1_psi(rho).value[:50], ref_vals, rtol=0, atol=1e-14)
    assert abs(l1_psi(0.1).value - 0.328794) < 1e-6
    print(f"\nl1_psi on 10^4 values: {t_psi * 1e3:.1f} ms (best of 5; target < 50 ms: {'met' if t_psi < 0.05 else 'NOT met'})")

    # elliptic projection at n = 10⁴
    n = 10_000
    K = EllipticCone(np.exp(rng.uniform(-3, 3, size=n)))
    batch = 5 if args.quick else 50
    x = rng.standard_normal((batch, n + 1))
    t_ell = _best(lambda: K.project(x), 3) / batch
    p = K.project(x)
    iters = K.last_iterations
    q = K.polar().project(x)
    moreau = float(np.abs(p + q - x).max())
    ortho = float(np.abs(np.sum(p * q, axis=1)).max())
    assert moreau < 1e-9 and ortho < 1e-8 * n, (moreau, ortho)
    ref = CvxpyCone.from_cone(K)
    ref.project(x[0])
    t0 = time.perf_counter()
    pr = ref.project(x[1])
    t_ell_cvx = time.perf_counter() - t0
    err = float(np.abs(pr - p[1]).max())
    assert err <= np.sqrt(2e-8 * n), err
    print(
        f"\nelliptic cone n=10^4: {t_ell * 1e3:.2f} ms per projection (batch of {batch}; ≤ {iters} root-find "
        f"iterations, each one O(n) pass); cvxpy {t_ell_cvx * 1e3:.1f} ms per projection; ratio "
        f"{t_ell_cvx / t_ell:.0f}x; max|Δ| vs cvxpy {err:.1e}; Moreau residual {moreau:.1e}"
    )
    if args.json:
        from nets.io import atomic_write_json, jsonable, provenance

        env = provenance()
        env.update({"cvxpy": cvxpy.__version__, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
        atomic_write_json(args.json, jsonable({
            "environment": env,
            "args": vars(args),
            "projections": rows,
            "l1_psi": {"values": rho.size, "seconds": t_psi, "target_seconds": 0.05},
            "elliptic": {"n": n, "batch": batch, "seconds_per_projection": t_ell, "root_find_iterations": iters,
                         "cvxpy_seconds_per_projection": t_ell_cvx, "ratio": t_ell_cvx / t_ell,
                         "max_diff_vs_cvxpy": err, "moreau_residual": moreau, "orthogonality": ortho},
        }), indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
