"""Benchmark: gRDA optimizer step time on ResNet18-sized parameter lists (issue 6, requirement 8).

Peers, measured in the same run on the same tensors:

* ``torch.optim.SGD(foreach=True)`` without momentum (the cost floor: one fused add per tensor) and with
  momentum 0.9 (the usual training setting), target: gRDA ≤ 1.3× plain SGD;
* the authors' update rule written in their style (``ResNet50-ImageNet/grda_pytorch.py`` semantics: float32
  running threshold tensor and a CPU iteration counter per parameter, ``torch.pow`` on 1-element tensors,
  ``sign(a)·clamp(|a| − T, 0)``), target: ours ≥ 2× faster.

Accuracy is asserted before timing: our step equals a float64 reference of the authors' rule to float32
rounding, the authors'-style peer agrees with ours, and SGD equals gRDA with ``c = 0`` bit for bit.
Cost per step in memory passes (model-independent): SGD reads p, g and writes p (3 streams); gRDA reads a, g,
writes a, then reads a, writes p (5 streams): ≥ 5/3 of SGD for any unfused implementation on a
bandwidth-bound machine. A gRDA step uses no gradient evaluations beyond the one SGD uses.

Timing: all optimizers are built first and stepped in interleaved rounds (round r steps every optimizer once,
in an order rotated by r), so that a change of machine load hits every optimizer alike; each optimizer's step
time is reported as the median with min–max over the rounds, and each ratio as the median (min–max) of the
per-round ratios (both steps of a ratio measured in the same round).

Usage: ``python bench/grda.py [--quick] [--threads N] [--reps R] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from nets.grda import GRDA
from nets.io import atomic_write_json, jsonable, provenance


def resnet18_cifar_shapes(num_classes: int = 10) -> list[tuple[int, ...]]:
    """Parameter shapes of the CIFAR ResNet18 of :mod:`nets.models` (He et al. 2016 with a 3×3 stem, as in the
    pruning-limit paper's code): 62 tensors, 11 173 962 parameters. Built on the meta device (nothing allocated)."""
    from nets.models import build_model

    model = build_model("resnet18", num_classes, (3, 32, 32), device="meta")
    return [tuple(p.shape) for p in model.parameters()]


class AuthorsGRDA(torch.optim.Optimizer):
    """The authors' update rule in their style (a peer for timing only; written from the description of their
    code in docs/math.md §4): per-parameter 1-element float32 counter and threshold on the CPU, the threshold increment
    recomputed with ``torch.pow`` every step, the soft threshold as ``sign·clamp``."""

    def __init__(self, params, lr, c, mu):
        super().__init__(params, dict(lr=lr, c=c, mu=mu))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, c, mu = group["lr"], group["c"], group["mu"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "iter_num" not in st:
                    st["iter_num"] = torch.zeros(1)
                    st["accumulator"] = p.detach().clone()
                    st["l1_accumulation"] = torch.zeros(1)
                n, a, T = st["iter_num"], st["accumulator"], st["l1_accumulation"]
                n.add_(1)
                a.add_(p.grad, alpha=-lr)
                lr_t = torch.tensor(lr)
                T += c * torch.pow(lr_t, mu + 0.5) * torch.pow(n, mu) - c * torch.pow(lr_t, mu + 0.5) * torch.pow(n - 1, mu)
                p.copy_(torch.sign(a) * (torch.abs(a) - T.to(p.device)).clamp(min=0))


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _interleaved(jobs: dict, reps: int) -> dict[str, list[float]]:
    """Seconds of each job over ``reps`` rounds; round r runs every job once, the order rotated by r (after one
    warm-up call each: state allocation)."""
    names = list(jobs)
    for name in names:
        jobs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def _ratio(times: dict[str, list[float]], a: str, b: str) -> dict[str, float]:
    """Median (min–max) over rounds of ``time[a] / time[b]``, both measured in the same round."""
    return _summary([x / y for x, y in zip(times[a], times[b])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: ResNet18 shapes / 8 widths, 5 repetitions")
    ap.add_argument("--reps", type=int, default=30, help="interleaved rounds (default 30)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON (atomically)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = resnet18_cifar_shapes()
    reps = args.reps
    if args.quick:
        shapes = [tuple(max(1, s // 8) if i < 2 else s for i, s in enumerate(sh)) for sh in shapes]
        reps = 5
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) * 0.05 for s in shapes]
    grads = [torch.randn(s, generator=gen) * 0.01 for s in shapes]
    n_params = sum(t.numel() for t in base)
    lr, c, mu = 0.1, 0.005, 0.55

    def make(kind):
        ps = [torch.nn.Parameter(b.clone()) for b in base]
        for p, g in zip(ps, grads):
            p.grad = g
        if kind == "sgd":
            return ps, torch.optim.SGD(ps, lr=lr, foreach=True)
        if kind == "sgd_m":
            return ps, torch.optim.SGD(ps, lr=lr, momentum=0.9, foreach=True)
        if kind == "grda":
            return ps, GRDA(ps, lr=lr, c=c, mu=mu, foreach=True)
        if kind == "grda_loop":
            return ps, GRDA(ps, lr=lr, c=c, mu=mu, foreach=False)
        if kind == "grdam":
            return ps, GRDA(ps, lr=lr, c=c, mu=mu, momentum=0.9, foreach=True)
        if kind == "grda_c0":
            return ps, GRDA(ps, lr=lr, c=0.0, mu=mu, foreach=True)
        if kind == "authors":
            return ps, AuthorsGRDA(ps, lr=lr, c=c, mu=mu)
        raise ValueError(kind)

    # ---- accuracy first -------------------------------------------------------------------------------
    steps = 5
    ours, o = make("grda")
    auth, oa = make("authors")
    sgd, osgd = make("sgd")
    c0, oc0 = make("grda_c0")
    ref_a = [b.double().clone() for b in base]
    T = 0.0
    for n in range(1, steps + 1):
        o.step()
        oa.step()
        osgd.step()
        oc0.step()
        T += c * lr ** (mu + 0.5) * (n**mu - (n - 1) ** mu)
        ref_a = [a - lr * g.double() for a, g in zip(ref_a, grads)]
    ref_w = [torch.sign(a) * torch.clamp_min(a.abs() - T, 0) for a in ref_a]
    err_ref = max(float((p.detach().double() - r).abs().max()) for p, r in zip(ours, ref_w))
    err_auth = max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(ours, auth))
    sgd_equal = all(torch.equal(p, q) for p, q in zip(sgd, c0))
    zero_frac = sum(int((p.detach() == 0).sum()) for p in ours) / n_params
    tol = 8 * steps * torch.finfo(torch.float32).eps  # a few float32 roundings of O(0.1) values per step
    assert err_ref <= tol, f"gRDA deviates from the float64 reference by {err_ref}"
    assert err_auth <= 1e-6, f"authors'-style peer deviates from ours by {err_auth}"
    assert sgd_equal, "gRDA with c = 0 must equal SGD bit for bit"

    # ---- timing (interleaved rounds) -----------------------------------------------------------------------
    kinds = ("sgd", "sgd_m", "grda", "grda_loop", "grdam", "authors")
    opts = {kind: make(kind) for kind in kinds}
    times = _interleaved({kind: opts[kind][1].step for kind in kinds}, reps)
    del opts

    env = provenance("cpu")
    print(f"# gRDA optimizer step benchmark ({'quick' if args.quick else 'full'})")
    print(f"environment: python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads, {env.get('cpus_usable')} usable CPUs, git {env.get('git_commit')}")
    print(f"parameters: {n_params:,} in {len(shapes)} tensors (ResNet18 CIFAR shapes{' / 8' if args.quick else ''}); "
          f"{reps} interleaved rounds, median [min–max]; 0 gradient evaluations per step (gradients fixed)")
    print(f"accuracy: max |ours - float64 reference| = {err_ref:.2e} (tol {tol:.1e}); "
          f"max |ours - authors' style| = {err_auth:.2e}; SGD == gRDA(c=0): {sgd_equal}; "
          f"sparsity after {steps} steps {zero_frac:.3f}")
    names = {"sgd": "torch SGD foreach, no momentum", "sgd_m": "torch SGD foreach, momentum 0.9",
             "grda": "GRDA foreach (ours)", "grda_loop": "GRDA for-loop reference (ours)",
             "grdam": "GRDA foreach, momentum 0.9 (ours)", "authors": "authors' style (float32, CPU counters)"}
    for k in kinds:
        st = _summary(times[k])
        print(f"  {names[k]:<42} {st['median'] * 1e3:8.2f} ms  [{st['min'] * 1e3:.2f}–{st['max'] * 1e3:.2f}]")
    ratios = {
        "grda_over_sgd": _ratio(times, "grda", "sgd"),
        "grda_over_sgd_momentum": _ratio(times, "grda", "sgd_m"),
        "grdam_over_sgd_momentum": _ratio(times, "grdam", "sgd_m"),
        "authors_over_grda": _ratio(times, "authors", "grda"),
    }

    def show(label: str, key: str, note: str = "") -> None:
        r = ratios[key]
        print(f"{label:<39}: {r['median']:.2f}x [{r['min']:.2f}–{r['max']:.2f}]{note}")

    show("ratio GRDA / SGD (no momentum)", "grda_over_sgd",
         "  (target <= 1.3x; >= 5/3 expected from memory streams, see docstring)")
    show("ratio GRDA / SGD (momentum 0.9)", "grda_over_sgd_momentum")
    show("ratio GRDAM / SGD (both momentum 0.9)", "grdam_over_sgd_momentum")
    show("speed-up over the authors' style", "authors_over_grda", "  (target >= 2x)")

    # ---- memory-stream calibration: the kernels a gRDA step is made of, on the same tensors ----------------
    # SGD's in-place update reads w and g and writes w (3 streams). gRDA adds w = S_T(a) into a separate
    # buffer; on CPUs with write-allocate caches a write to a buffer not in cache first reads it, so that
    # kernel costs like 3 streams too, not 2. A copy shows the same effect.
    A = [b.clone() for b in base]
    P = [torch.empty_like(b) for b in base]

    def k_add():
        torch._foreach_add_(A, grads, alpha=-lr)

    def k_shrink():
        for a, p in zip(A, P):
            torch._C._nn.softshrink(a, 1e-3, out=p)

    def k_copy():
        torch._foreach_copy_(P, A)

    cal_times = _interleaved({"foreach add_ (a -= lr g)": k_add, "softshrink into w": k_shrink,
                              "foreach copy_": k_copy}, reps)
    cal = {name: statistics.median(v) for name, v in cal_times.items()}
    print("kernel calibration (median ms): " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in cal.items()))
    shrink_add = _ratio(cal_times, "softshrink into w", "foreach add_ (a -= lr g)")
    print(f"  softshrink / add = {shrink_add['median']:.2f} [{shrink_add['min']:.2f}–{shrink_add['max']:.2f}] "
          "(2 nominal streams vs 3: about 1 means writes to a fresh buffer cost a read too)")
    if args.json:
        atomic_write_json(args.json, jsonable({
            "environment": env,
            "args": vars(args),
            "n_params": n_params,
            "accuracy": {"max_err_vs_float64": err_ref, "tol": tol, "max_err_vs_authors": err_auth,
                         "sgd_equals_grda_c0": sgd_equal, "sparsity": zero_frac},
            "step_seconds": {k: _summary(v) for k, v in times.items()},
            "ratios": ratios,
            "gradient_evaluations_per_step": 0,
            "memory_streams_per_step": {"sgd": 3, "grda": 5},
            "kernel_calibration_seconds": {k: _summary(v) for k, v in cal_times.items()},
        }), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
