"""Benchmark: wall time of ``prunelimit experiment all --scale cpu`` (issue 12: under 30 minutes on 2 CPU cores).

Runs the command in a fresh output folder (nothing cached) as a subprocess and reports

* the total wall time, the CPU time of the processes (user + system, from ``getrusage``) and their ratio (how
  much CPU the run actually got on a shared machine: 1.0 = one full core; each process uses one torch thread,
  ``--jobs`` processes, default 2);
* each experiment's wall time and cells computed, read back from its ``results.json`` (the shared dense
  networks and analyses are paid by the first experiment that needs them);
* as the peer measured in the same run: the same command again on the now-filled folder (everything is read
  from cells), i.e. the cost of assembling the outputs, and the ratio fresh / resumed;
* accuracy assertions: every experiment wrote its four files, every verdict has a status, the report's links
  resolve, and the resumed run computed no cell and reproduced every row.

Timing on a machine shared with other jobs is only meaningful with the CPU/wall ratio beside it; the 1-minute
load average before and after is recorded. One fresh run takes minutes, so there are no repeats.

Usage::

    python bench/experiments_cpu.py [--quick] [--json PATH] [--keep DIR] [--jobs N]

``--quick`` runs one network and two seeds (a smoke test of the benchmark itself, not the issue's number).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
    return wall, cpu, proc.returncode


def _results(out: Path) -> dict[str, Any]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))}


def _check(out: Path, names: list[str]) -> None:
    for n in names:
        for f in ("results.csv", "results.json", "figure.png", "summary.md"):
            assert (out / n / f).is_file(), f"{n}/{f} missing"
    md = (out / "report.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / target).is_file(), f"report link {target} does not resolve"
    for target in re.findall(r'(?:href|src)="([^"]+)"', (out / "report.html").read_text()):
        assert (out / target).is_file(), f"report.html link {target} does not resolve"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one network, two seeds (smoke test)")
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here")
    ap.add_argument("--keep", type=Path, default=None, help="run into this (empty or new) folder and keep it")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of `experiment all` (default 2: two cores)")
    args = ap.parse_args(argv)

    out = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="bench-experiments-"))
    if out.exists() and any(out.iterdir()):
        ap.error(f"--keep folder {out} is not empty (the benchmark needs a fresh run)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nets.cli", "experiment", "all", "--scale", "cpu", "--out", str(out), "--quiet",
           "--jobs", str(args.jobs)]
    if args.quick:
        cmd += ["--models", "mlp-digits", "--seeds", "2"]
    load0 = os.getloadavg()[0]
    wall, cpu, rc = _run(cmd, env)
    if rc != 0:
        print(f"the run failed with exit status {rc}", file=sys.stderr)
        return 1
    first = _results(out)
    wall2, cpu2, rc2 = _run(cmd, env)
    load1 = os.getloadavg()[0]
    second = _results(out)
    names = list(first)
    _check(out, names)
    assert rc2 == 0 and all(second[n]["run"]["cells_computed"] == 0 for n in names), "the resumed run recomputed"
    assert all(second[n]["rows"] == first[n]["rows"] for n in names), "the resumed run changed results"

    print(f"prunelimit experiment all --scale cpu{' (quick)' if args.quick else ''}: fresh {wall / 60:.1f} min wall, "
          f"{cpu / 60:.1f} min CPU (CPU/wall {cpu / wall:.2f}); resumed {wall2:.1f} s (fresh/resumed {wall / wall2:.1f}x); "
          f"load average {load0:.1f} -> {load1:.1f}")
    print(f"{'experiment':<20} {'wall s':>8} {'cells':>6}  claims")
    for n in names:
        run = first[n]["run"]
        print(f"{n:<20} {run['wall_seconds']:8.1f} {run['cells_computed']:6d}  "
              + "; ".join(v["status"] for v in first[n]["verdicts"]))
    record = {"command": cmd, "jobs": args.jobs, "fresh_wall_seconds": wall, "fresh_cpu_seconds": cpu,
              "resumed_wall_seconds": wall2,
              "resumed_cpu_seconds": cpu2, "loadavg_before": load0, "loadavg_after": load1, "quick": args.quick,
              "experiments": {n: {"wall_seconds": first[n]["run"]["wall_seconds"],
                                  "cells_computed": first[n]["run"]["cells_computed"],
                                  "verdicts": [v["status"] for v in first[n]["verdicts"]],
                                  "headline": first[n]["headline"]} for n in names},
              "provenance": next(iter(first.values()))["provenance"]}
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.keep is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
