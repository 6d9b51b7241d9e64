"""Benchmark: Hessian-vector products and SLQ spectra against PyHessian, measured in the same run.

Issue 3, requirement 9. On a digits MLP (64→128→128→10, 26 122 parameters), a smaller digits MLP
(64→48→48→10, 5 962 parameters: small enough for an exact dense eigendecomposition here) and a small
digits CNN with BatchNorm (690 parameters), each trained briefly inside this script, it measures, with the
1 797 digits as one full batch and as fixed minibatches (``--batch-size``, default 256),

(a) HVP time / gradient time (gradient = plain autograd over the same batches, eval mode);
(b) 8 probes in one batched ``matmat`` vs 8 sequential ``matvec`` calls, and 8 batched vs 1 probe;
(c) our SLQ (m = 64 steps, n_v = 8 probes, full reorthogonalisation) vs PyHessian 0.1
    ``density(iter=64, n_v=8)`` on the same model and batches: wall-time ratio, and the Wasserstein-1 distance
    of each to the exact spectrum (``eigvalsh`` of the dense float64 Hessian) where ``n ≤ --dense-max``;
(d) cost in HVPs and data passes beside seconds.

PyHessian is run in the mode matching each layout: ``data=`` for the full batch (it builds the first-order
graph once and reuses it) and ``dataloader=`` for the minibatches (it recomputes the forward and first-order
backward for every product on every batch). Our operator is run with ``forward-over-reverse`` (one data
pass per Lanczos step for all 8 probes), ``double-backward`` with ``cache_graph=True`` (the first-order
graphs of all batches built once and reused: PyHessian's single-batch trick generalised to many batches), and
the default method with ``cache_graph="auto"`` (which takes the cached path here) and a float32 Lanczos basis
(``accumulate_dtype=None``, the operator's own precision, as PyHessian's).

PyHessian 0.1 calls ``torch.eig`` (removed in PyTorch 2) on its symmetric tridiagonal; :func:`torch_eig_shim`
maps that one call to ``torch.linalg.eigh`` for the duration of the PyHessian run (site-packages untouched).
Its cost is in the Lanczos loop, not there. PyHessian also calls ``model.eval()`` and writes ``.grad``, so it
gets a deep copy of the model. PyHessian draws its probes from torch's global generator, which this script
seeds (a script, not library code).

Usage::

    python bench/spectrum.py [--quick] [--json PATH] [--threads T] [--dense-max N] [--batch-size B]

On a machine shared with other jobs, run with ``OMP_NUM_THREADS=1 ... --threads 1``: oversubscribed OpenMP
threads made single products 10-70x slower and erratic in our runs.

The GPU part of requirement 9 (CIFAR-shaped ResNet-18, m = 128 on an H100/H200) is not run by this script.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.hessian import HessianOperator
from nets.params import count_parameters
from nets.io import atomic_write_json
from numerics.slq import slq
from theory.spectrum import Spectrum


# -- environment ------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        from importlib.metadata import version

        import pyhessian  # noqa: F401

        pyh = version("pyhessian")
    except ImportError:  # reported as None; the PyHessian runs then fail with the import error
        pyh = None
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyhessian": pyh,
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "device": "cpu",
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# -- models and data ---------------------------------------------------------------------------------------
def mlp(widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 10),
    )


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.data / 16.0, dtype=torch.float32)
    return X, torch.tensor(d.target, dtype=torch.long)


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Brief full-batch Adam (lr 1e-2, a standard small-model setting); returns the final training loss."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(X), y))


def all_parameters(name: str, p: nn.Parameter) -> bool:
    """PyHessian differentiates every parameter with requires_grad; so do we here, for a like-for-like run."""
    return p.requires_grad


# -- timing ------------------------------------------------------------------------------------------------
def timeit(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum over ``repeats`` calls after one warm-up (the machine is shared: the minimum is the least
    perturbed measurement)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def autograd_gradient(model: nn.Module, batches: list, loss_fn: nn.Module) -> Callable[[], list[torch.Tensor]]:
    params = [p for p in model.parameters() if p.requires_grad]
    N = sum(x.shape[0] for x, _ in batches)

    def run() -> list[torch.Tensor]:
        acc = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            g = torch.autograd.grad(loss_fn(model(x), y), params)
            for a, gi in zip(acc, g):
                a.add_(gi, alpha=x.shape[0] / N)
        return acc

    return run


# -- PyHessian ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def torch_eig_shim() -> Iterator[None]:
    """Provide ``torch.eig(T, eigenvectors=True)`` for PyHessian 0.1 on PyTorch 2, for the block's duration.

    PyHessian applies it to its symmetric tridiagonal ``T`` and reads ``a_[:, 0]`` (real parts of the
    eigenvalues) and ``b_[0, :] ** 2`` (squared first components of the eigenvectors, stored as columns).
    ``torch.linalg.eigh`` returns exactly these for a symmetric matrix; the imaginary column is zero.
    """
    had = hasattr(torch, "eig")
    old = getattr(torch, "eig", None)

    def eig(T: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        w, Q = torch.linalg.eigh(T)
        return torch.stack([w, torch.zeros_like(w)], dim=1), (Q if eigenvectors else torch.empty(0))

    torch.eig = eig  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had:
            torch.eig = old  # type: ignore[attr-defined]
        else:
            del torch.eig  # type: ignore[attr-defined]


def pyhessian_density(model: nn.Module, batches: list, mode: str, steps: int, n_v: int, seed: int) -> dict:
    from pyhessian import hessian as PyHessian

    m = copy.deepcopy(model)
    crit = nn.CrossEntropyLoss()
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch_eig_shim():
        if mode == "dataloader":
            h = PyHessian(m, crit, dataloader=batches, cuda=False)
        else:
            X = torch.cat([x for x, _ in batches])
            Y = torch.cat([y for _, y in batches])
            h = PyHessian(m, crit, data=(X, Y), cuda=False)
        nodes, weights = h.density(iter=steps, n_v=n_v)
    seconds = time.perf_counter() - t0
    w = np.asarray(weights, dtype=np.float64)
    # PyHessian's weights are float32 squares of eigenvector entries; renormalise to sum 1 exactly.
    spec = Spectrum(np.asarray(nodes, dtype=np.float64), w / w.sum(axis=1, keepdims=True), count_parameters(m))
    hvps = steps * n_v
    passes = hvps if mode == "dataloader" else 1
    return {"seconds": seconds, "spectrum": spec, "hvps": hvps, "data_passes": passes}


# -- exact spectrum ----------------------------------------------------------------------------------------
def exact_eigenvalues(model: nn.Module, X: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> tuple[np.ndarray, float]:
    """``eigvalsh`` (float64) of the dense Hessian of the full-data mean loss, built column block by block.

    The columns are float32 double-backward products over the whole dataset as one batch (the first-order graph
    built once): entrywise relative error ~1e-6, so the eigenvalues move by at most ~1e-6·‖H‖ (Weyl), three
    orders below the W1 errors measured. (A float64 build is 3-10x slower on CPU convolutions.)
    """
    t0 = time.perf_counter()
    op = HessianOperator(model, nn.CrossEntropyLoss(), [(X, y)], params=all_parameters,
                         method="double-backward", cache_graph=True)
    n = op.shape[0]
    H = torch.empty(n, n, dtype=torch.float64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        E = torch.zeros(n, e - s)
        E[torch.arange(s, e), torch.arange(e - s)] = 1.0
        H[:, s:e] = op.matmat(E).double()
    asym = float((H - H.T).abs().max() / H.abs().max())
    if asym > 1e-4:  # float32 round-off of symmetric products; more means a wrong operator
        raise RuntimeError(f"dense Hessian not symmetric to float32 round-off: {asym:.2e}")
    eigs = torch.linalg.eigvalsh(0.5 * (H + H.T)).numpy()
    return eigs, time.perf_counter() - t0


# -- one model ---------------------------------------------------------------------------------------------
def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


LAYOUTS = ("full batch", "minibatches")


def hvp_timings(name: str, model: nn.Module, batches: list, layout: str, args: argparse.Namespace, rows: list) -> dict:
    """(a) one-probe HVP / gradient, (b) 8 batched probes vs 1 and vs 8 sequential; fast paths checked first."""
    loss_fn = nn.CrossEntropyLoss()
    n = count_parameters(model)
    gen = torch.Generator().manual_seed(args.seed)
    ops = {
        "forward-over-reverse": HessianOperator(model, loss_fn, batches, params=all_parameters),
        "double-backward": HessianOperator(model, loss_fn, batches, params=all_parameters, method="double-backward"),
        "double-backward cached": HessianOperator(model, loss_fn, batches, params=all_parameters,
                                                  method="double-backward", cache_graph=True),
    }
    V8 = torch.randn(n, 8, generator=gen)
    # parity of the fast paths against the reference (float32 round-off, relative to the product's scale)
    ref = ops["double-backward"].matmat(V8)
    for k, op in ops.items():
        if k == "double-backward":  # the reference itself
            continue
        err = float((op.matmat(V8) - ref).abs().max() / ref.abs().max())
        if err > 1e-4:
            raise RuntimeError(f"{name}: {k} differs from the double-backward reference by {err:.2e}")
    with torch.enable_grad():
        t_grad = timeit(autograd_gradient(model, batches, loss_fn), args.repeats)
    out: dict[str, Any] = {"gradient_s": t_grad, "n_batches": len(batches), "methods": {}}
    v1 = V8[:, :1].contiguous()
    for k, op in ops.items():
        t1 = timeit(lambda op=op: op.matmat(v1), args.repeats)
        t8 = timeit(lambda op=op: op.matmat(V8), args.repeats)
        t8seq = timeit(lambda op=op: [op.matmat(V8[:, j : j + 1]) for j in range(8)], max(1, args.repeats // 2))
        out["methods"][k] = {"hvp_s": t1, "hvp_over_grad": t1 / t_grad, "batched8_s": t8, "batched8_over_1": t8 / t1,
                             "sequential8_s": t8seq, "sequential_over_batched": t8seq / t8,
                             "per_probe_in_8_over_grad": t8 / 8 / t_grad}
        rows.append((name, n, layout, k, f"{t_grad * 1e3:.1f}", f"{t1 * 1e3:.1f}", f"{t1 / t_grad:.2f}",
                     f"{t8 / 8 / t_grad:.2f}", f"{t8 / t1:.2f}", f"{t8seq / t8:.2f}"))
    return out


def bench_model(name: str, model: nn.Module, X: torch.Tensor, y: torch.Tensor, args: argparse.Namespace,
                rows: list) -> dict:
    n = count_parameters(model)
    out: dict[str, Any] = {"model": name, "n_params": n, "n_samples": int(X.shape[0])}
    layouts = {
        "full batch": [(X, y)],
        "minibatches": [(X[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(0, X.shape[0], args.batch_size)],
    }
    out["hvp"] = {}
    for layout, batches in layouts.items():
        progress(f"{name}: HVP timings, {layout}")
        out["hvp"][layout] = hvp_timings(name, model, batches, layout, args, rows)
    exact = None
    if n <= args.dense_max:
        progress(f"{name}: dense Hessian (n = {n}) and eigvalsh")
        exact, t_dense = exact_eigenvalues(model, X, y)
        out["exact"] = {"seconds": t_dense, "lambda_min": float(exact[0]), "lambda_max": float(exact[-1]),
                        "negative_mass": float(np.mean(exact < 0))}
    out["slq"] = {}
    t_ctu = 12.0 / (args.steps - 0.5)  # Chen–Trogdon–Ubaru: m = ⌈12/t + ½⌉ steps ⇒ W1 ≤ t (λmax − λmin) w.h.p.
    for layout, batches in layouts.items():
        progress(f"{name}: SLQ runs, {layout}")
        runs: dict[str, Any] = {}
        for k in ("forward-over-reverse", "double-backward cached", "auto cache, float32 basis"):
            # "auto cache": the default method with cache_graph="auto" (the cached graphs fit the limit here);
            # "float32 basis": Lanczos vectors in the float32 operator's own precision (accumulate_dtype=None)
            op = HessianOperator(model, nn.CrossEntropyLoss(), batches, params=all_parameters,
                                 method="double-backward" if "double" in k else "forward-over-reverse",
                                 cache_graph="auto" if "auto" in k else "cached" in k)
            t0 = time.perf_counter()
            spec = slq(op, steps=args.steps, n_probes=args.probes, generator=torch.Generator().manual_seed(args.seed),
                       accumulate_dtype=None if "float32" in k else torch.float64).spectrum
            runs[f"ours {k}"] = {"seconds": time.perf_counter() - t0, "spectrum": spec, "hvps": op.n_products,
                                 "data_passes": op.n_data_passes}
        peer = "PyHessian dataloader" if layout == "minibatches" else "PyHessian single-batch"
        runs[peer] = pyhessian_density(model, batches, "dataloader" if layout == "minibatches" else "single-batch",
                                       args.steps, args.probes, args.seed)
        recs = {}
        for k, r in runs.items():
            rec = {key: v for key, v in r.items() if key != "spectrum"}
            rec["pyhessian_over_this"] = runs[peer]["seconds"] / r["seconds"]
            if exact is not None:
                rec["w1"] = r["spectrum"].wasserstein1(exact)
                rec["w1_over_range"] = rec["w1"] / float(exact[-1] - exact[0])
                if k.startswith("ours") and rec["w1_over_range"] > t_ctu:
                    raise RuntimeError(f"{name}: {k} W1/range {rec['w1_over_range']:.3g} exceeds the CTU bound {t_ctu:.3g}")
            recs[k] = rec
        out["slq"][layout] = recs
    if exact is not None and args.w1_seeds > 1:
        # W1 of one SLQ run is a random variable (n_v probes); compare its spread over independent probe draws.
        progress(f"{name}: W1 over {args.w1_seeds} probe draws")
        fb = layouts["full batch"]
        w1 = {"ours": [out["slq"]["full batch"]["ours double-backward cached"]["w1"]],
              "PyHessian": [out["slq"]["full batch"]["PyHessian single-batch"]["w1"]]}
        for seed in range(args.seed + 1, args.seed + args.w1_seeds):
            op = HessianOperator(model, nn.CrossEntropyLoss(), fb, params=all_parameters, method="double-backward",
                                 cache_graph=True)
            spec = slq(op, steps=args.steps, n_probes=args.probes, generator=torch.Generator().manual_seed(seed)).spectrum
            w1["ours"].append(spec.wasserstein1(exact))
            w1["PyHessian"].append(pyhessian_density(model, fb, "single-batch", args.steps, args.probes, seed)["spectrum"]
                                   .wasserstein1(exact))
        out["w1_draws"] = {k: {"values": v, "mean": statistics.mean(v), "sd": statistics.stdev(v)} for k, v in w1.items()}
    return out


def print_tables(results: list[dict], rows: list, env: dict, args: argparse.Namespace) -> None:
    print(f"# environment: torch {env['torch']}, {env['threads']} thread(s), {env['cpu']} ({env['cpu_count']} CPUs), "
          f"python {env['python']}, pyhessian {env['pyhessian']}, load avg at start {env['loadavg_at_start']}")
    print(f"# {env['n_samples']} digits samples; minibatches of {args.batch_size}; float32 models; "
          f"times are minima over {args.repeats} repeats")
    print("\n(a,b) HVP cost (gradient = plain autograd over the same batches)")
    print("model | n | layout | method | grad ms | 1 HVP ms | HVP/grad | (8 batched/8)/grad | 8 batched/1 | 8 seq/8 batched")
    for r in rows:
        print(" | ".join(str(x) for x in r))
    print(f"\n(c,d) SLQ m = {args.steps}, n_v = {args.probes} (full reorthogonalisation) vs PyHessian "
          f"density(iter={args.steps}, n_v={args.probes}); W1 against eigvalsh of the dense Hessian")
    print("model | layout | run | seconds | PyHessian s / this | HVPs | data passes | W1 | W1/(λmax−λmin)")
    for res in results:
        for layout, recs in res["slq"].items():
            for k, r in recs.items():
                w1 = f"{r['w1']:.3g}" if "w1" in r else "n/a (n > dense-max)"
                wr = f"{r['w1_over_range']:.2e}" if "w1" in r else "n/a"
                print(f"{res['model']} (n={res['n_params']}) | {layout} | {k} | {r['seconds']:.2f} | "
                      f"{r['pyhessian_over_this']:.2f} | {r['hvps']} | {r['data_passes']} | {w1} | {wr}")
        if "w1_draws" in res:
            d = res["w1_draws"]
            print(f"   W1 over {len(d['ours']['values'])} probe draws (full batch): ours {d['ours']['mean']:.3g} ± "
                  f"{d['ours']['sd']:.2g} (sd), PyHessian {d['PyHessian']['mean']:.3g} ± {d['PyHessian']['sd']:.2g}")
        if "exact" in res:
            e = res["exact"]
            print(f"   exact: dense H + eigvalsh in {e['seconds']:.1f} s, "
                  f"λ ∈ [{e['lambda_min']:.3g}, {e['lambda_max']:.3g}], negative mass {e['negative_mass']:.3f}")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def write_json(path: str, payload: dict) -> None:
    atomic_write_json(path, _jsonable(payload), indent=2, allow_nan=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: m=16, n_v=4, 2 repeats, 30 training steps, no 6k MLP")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON (atomically)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's default). On a shared machine use 1 (with OMP_NUM_THREADS=1):"
                        " oversubscribed OpenMP threads make timings erratic by 10x or more")
    p.add_argument("--dense-max", type=int, default=6000,
                   help="largest n whose dense Hessian is eigendecomposed for W1 (26k needs ~11 GB and ~20 min)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size of the fixed batches (default 256)")
    p.add_argument("--steps", type=int, default=64, help="Lanczos steps m (issue: 64)")
    p.add_argument("--probes", type=int, default=8, help="probes n_v (issue: 8)")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats (minimum reported)")
    p.add_argument("--train-steps", type=int, default=300, help="full-batch Adam steps per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w1-seeds", type=int, default=4,
                   help="independent probe draws for the W1 comparison where the exact spectrum is known (default 4)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.probes, args.repeats, args.train_steps, args.w1_seeds = 16, 4, 2, 30, 2
        args.dense_max = min(args.dense_max, 2500)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    env = environment()
    if env["pyhessian"] is None:
        p.error("PyHessian is not installed: .venv/bin/pip install -c constraints.txt pyhessian==0.1 (the 'bench' extra)")
    torch.manual_seed(args.seed)  # model initialisation (a script; the library never seeds)
    X, y = digits()
    models = [("digits MLP 64-128-128-10", mlp((64, 128, 128, 10)))]
    if not args.quick:
        models.append(("digits MLP 64-48-48-10", mlp((64, 48, 48, 10))))
    models.append(("digits CNN (BN)", cnn()))
    results, rows = [], []
    env["n_samples"] = int(X.shape[0])
    for name, model in models:
        loss = train(model, X, y, args.train_steps)
        res = bench_model(name, model, X, y, args, rows)
        res["train_loss"] = loss
        results.append(res)
    print_tables(results, rows, env, args)
    if args.json:
        write_json(args.json, {"environment": env, "args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
