"""Benchmark: SLQ spectra at scale, ours (the pipeline's path) against PyHessian 0.1, measured in the same run.

Issue 11, requirement 7 ("scale on one machine"). Models: the FC5 family, ``Linear d→1000s→600s→300s→100s→10``
with ReLU (FC5 of the pruning-limit paper at ``s = 1``, 3.9 M weights) scaled by ``s`` to the requested number
of weights, on seeded synthetic CIFAR-shaped data (3×32×32 Gaussian images labelled by a random linear teacher;
below 10⁵ weights the images are 4×4 average-pooled to 3×8×8, ``d = 192``, so that the small models keep all
five layers). Each model is trained briefly (full-batch Adam). Biases are frozen (``requires_grad=False``), so
PyHessian (which differentiates every parameter that requires grad) and our operator (the prunable weights, the
pipeline's default) take the same Hessian.

Per size, in interleaved rounds (round r runs every contender once, in an order rotated by r; medians with
min–max over the rounds):

* ``ours``: what ``prunelimit limit``/``spectrum`` run — ``HessianOperator(model, CrossEntropyLoss(),
  batches, cache_graph="auto")`` with the library's defaults, then :func:`nets.limit.estimate_spectrum` with
  the default :class:`nets.limit.SpectrumConfig` (``reorth="auto"``: full reorthogonalisation of a float64
  basis up to 64 MiB, about 16 k weights at 128 × 4, else the basis-free recurrence in float64) — timed from
  the operator's construction (the first product builds the cached graph) to the result;
* ``PyHessian single-batch``: ``hessian(model, criterion, data=(X, Y)).density(iter=steps, n_v=probes)``
  (its graph built once in the constructor, timed), on the same samples as one batch;
* ``PyHessian dataloader`` (``--modes`` includes ``dataloader``): ``dataloader=`` over the same samples in
  batches of ``--batch-size`` (forward and first-order backward recomputed for every product), against
  ``ours`` on the same list of batches;
* ``ours reorth=partial`` (``--partial``, where its stored basis fits ``--partial-max-gb``): Simon's partial
  reorthogonalisation on the same operator path (no ghost nodes: the better W1 per step on small models).

Reported beside seconds: HVPs and data passes of each run, the time of one HVP (``op.matmat`` of a block of
``--probes`` columns in the layout Lanczos passes, on a warm cached operator, divided by the probes; timed in
every round), the ratio ``SLQ wall / (HVPs × one HVP)`` (what SLQ costs beyond its products, first graph build
included), PyHessian's time over ours, and, on models with at most ``--dense-max`` weights, the Wasserstein-1
distance of each spectrum to the exact one (``eigvalsh`` of the dense float64 Hessian), also over
``--w1-seeds`` independent probe draws (W1 of one run is a random variable). ``--hvp-paths`` times one
product of each path (cached double-backward, double-backward, forward-over-reverse) against one gradient on
the same batches (the cost unit of the streaming choice ``hvp_method="auto"``). ``--memory`` runs each
contender once more in a fresh subprocess and reports its peak resident memory (VmHWM after resetting it with
``/proc/self/clear_refs``; glibc told to return large blocks, ``MALLOC_MMAP_THRESHOLD_``) per weight, in total
(from before the model was built) and for the SLQ stage alone, beside our estimate
(:func:`numerics.lanczos.basis_bytes` + :meth:`nets.hessian.HessianOperator.estimate_memory`). On ``--device
cuda`` the peak is ``torch.cuda.max_memory_allocated``.

PyHessian 0.1 calls ``torch.eig`` (removed in PyTorch 2) on its symmetric tridiagonal; :func:`torch_eig_shim`
maps that one call to ``torch.linalg.eigh`` for the duration of the PyHessian run (site-packages untouched).
It writes ``.grad`` and calls ``model.eval()``, so it gets a deep copy of the model. It draws its probes from
torch's global generator, which this script seeds (a script, not library code).

The script runs unchanged on the previous code (``PYTHONPATH=<old checkout> python bench/spectrum.py ...``),
which is how the "before" figures of issue 11 were measured: it uses only what both versions have and reads
the newer diagnostics when present.

Usage::

    OMP_NUM_THREADS=1 python bench/spectrum.py --threads 1 [--sizes 1e4,1e5,1e6,4e6] [--steps 128]
        [--probes 4] [--samples 512] [--repeats 3] [--modes single,dataloader] [--memory] [--json PATH]
        [--device cuda]

On a machine shared with other jobs the absolute seconds move with the load; the ratios to a peer measured in
the same round are what the benchmark reports.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.hessian import HessianOperator
from nets.io import atomic_write_json, provenance
from numerics.slq import slq
from theory.spectrum import Spectrum

WIDTHS = (1000, 600, 300, 100)


# -- models and data ---------------------------------------------------------------------------------------
def fc5_family(target: int, d: int) -> tuple[int, ...]:
    """Layer widths ``(d, 1000s, 600s, 300s, 100s, 10)`` whose weight count is closest to ``target``."""

    def count(widths: tuple[int, ...]) -> int:
        return sum(a * b for a, b in zip(widths[:-1], widths[1:]))

    def widths(s: float) -> tuple[int, ...]:
        return (d, *(max(1, round(w * s)) for w in WIDTHS), 10)

    lo, hi = 1e-4, 10.0
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if count(widths(mid)) < target else (lo, mid)
    return min((widths(lo), widths(hi)), key=lambda w: abs(count(w) - target))


def mlp(widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            mod.bias.requires_grad_(False)  # the Hessian of the prunable weights, for both libraries
    return model


def synthetic_cifar(n: int, seed: int, pooled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` Gaussian 3×32×32 images (4×4 average-pooled to 3×8×8 when ``pooled``) labelled by a random linear
    teacher, from a local generator."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, 32, 32, generator=g)
    teacher = torch.randn(3 * 32 * 32, 10, generator=g)
    y = (X.reshape(n, -1) @ teacher).argmax(dim=1)
    if pooled:
        X = nn.functional.avg_pool2d(X, 4)
    return X.contiguous(), y


def build(target: int, samples: int, seed: int, train_steps: int, device: torch.device):
    pooled = target < 100_000
    d = 3 * 8 * 8 if pooled else 3 * 32 * 32
    widths = fc5_family(target, d)
    torch.manual_seed(seed)  # model initialisation (a script; the library never seeds)
    model = mlp(widths).to(device)
    X, y = synthetic_cifar(samples, seed, pooled)
    X, y = X.to(device), y.to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(train_steps):
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    return model, X, y, widths


def n_weights(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def split(X: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- contenders --------------------------------------------------------------------------------------------
def operator(model: nn.Module, batches: list) -> HessianOperator:
    """The pipeline's operator: the library's defaults with ``cache_graph="auto"`` (passed explicitly, as the
    pipeline does; the older code's default was ``False``)."""
    return HessianOperator(model, nn.CrossEntropyLoss(), batches, cache_graph="auto")


def has_partial() -> bool:
    """Whether this code has partial reorthogonalisation (the older code had only "none"/"full")."""
    try:
        from numerics.lanczos import REORTH_MODES
    except ImportError:
        return False
    return "partial" in REORTH_MODES


def run_ours(model: nn.Module, batches: list, args: argparse.Namespace, seed: int, partial: bool = False) -> dict:
    device = next(model.parameters()).device
    sync(device)
    t0 = time.perf_counter()
    op = operator(model, batches)
    generator = torch.Generator().manual_seed(seed)
    try:  # the pipeline's own call (reorth="auto", float64 Lanczos vectors)
        from nets.limit.spectrum import SpectrumConfig, estimate_spectrum, resolve_reorth  # noqa: F401

        cfg = SpectrumConfig(steps=args.steps, n_probes=args.probes, **({"reorth": "partial"} if partial else {}))
        res = estimate_spectrum(op, cfg, generator)
    except ImportError:  # the older code: slq's defaults were the pipeline's
        kw: dict[str, Any] = {"reorth": "partial"} if partial else {}
        res = slq(op, steps=args.steps, n_probes=args.probes, generator=generator, **kw)
    sync(device)
    seconds = time.perf_counter() - t0
    cost = op.cost()
    return {
        "seconds": seconds,
        "spectrum": res.spectrum,
        "hvps": cost["hvps"],
        "data_passes": cost["data_passes"],
        "hvp_path": getattr(op, "hvp_path", None),
        "reorth": getattr(res, "reorth", None),
        "basis_dtype": getattr(res, "basis_dtype", None),
        "lanczos_bytes": getattr(res, "lanczos_bytes", None),
        "cached_graph_bytes": getattr(op, "cached_graph_bytes", None),
    }


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


def run_pyhessian(model: nn.Module, batches: list, mode: str, args: argparse.Namespace, seed: int) -> dict:
    from pyhessian import hessian as PyHessian

    m = copy.deepcopy(model)
    device = next(m.parameters()).device
    crit = nn.CrossEntropyLoss()
    torch.manual_seed(seed)  # PyHessian's probes come from the global generator
    sync(device)
    t0 = time.perf_counter()
    with torch_eig_shim():
        if mode == "dataloader":
            h = PyHessian(m, crit, dataloader=batches, cuda=device.type == "cuda")
        else:
            X = torch.cat([x for x, _ in batches])
            Y = torch.cat([y for _, y in batches])
            h = PyHessian(m, crit, data=(X, Y), cuda=device.type == "cuda")
        nodes, weights = h.density(iter=args.steps, n_v=args.probes)
    sync(device)
    seconds = time.perf_counter() - t0
    w = np.asarray(weights, dtype=np.float64)
    # PyHessian's weights are float32 squares of eigenvector entries; renormalise to sum 1 exactly.
    spec = Spectrum(np.asarray(nodes, dtype=np.float64), w / w.sum(axis=1, keepdims=True), n_weights(m))
    hvps = args.steps * args.probes
    return {"seconds": seconds, "spectrum": spec, "hvps": hvps,
            "data_passes": hvps if mode == "dataloader" else 1}


def one_hvp_seconds(op: HessianOperator, k: int, gen: torch.Generator) -> float:
    """Seconds of one product per probe: ``op.matmat`` of an ``(n, k)`` block in Lanczos's layout (columns
    contiguous), divided by ``k``; the operator is warm (cached graph built by an earlier call)."""
    V = torch.randn(k, op.shape[0], generator=gen).to(op.device).T
    sync(op.device)
    t0 = time.perf_counter()
    op.matmat(V)
    sync(op.device)
    return (time.perf_counter() - t0) / k


# -- HVP paths against one gradient ------------------------------------------------------------------------
def hvp_paths(model: nn.Module, batches: list, args: argparse.Namespace) -> dict:
    """One product of each path (``k = --probes`` columns, per probe) and one gradient over the same batches,
    interleaved over ``--repeats`` rounds; only available with the newer ``hvp_method`` argument."""
    import inspect

    if "hvp_method" not in inspect.signature(HessianOperator).parameters:
        return {}
    loss_fn = nn.CrossEntropyLoss()
    device = next(model.parameters()).device
    paths = {
        "cached double-backward": HessianOperator(model, loss_fn, batches, hvp_method="double-backward", cache_graph=True),
        "double-backward": HessianOperator(model, loss_fn, batches, hvp_method="double-backward", cache_graph=False),
        "forward-over-reverse": HessianOperator(model, loss_fn, batches, hvp_method="forward-over-reverse",
                                                cache_graph=False),
    }
    params = [p for p in model.parameters() if p.requires_grad]
    N = sum(x.shape[0] for x, _ in batches)

    def gradient() -> None:
        acc = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            g = torch.autograd.grad(loss_fn(model(x), y), params)
            for a, gi in zip(acc, g):
                a.add_(gi, alpha=x.shape[0] / N)

    gen = torch.Generator().manual_seed(args.seed)
    V = torch.randn(args.probes, paths["double-backward"].shape[0], generator=gen).to(device).T
    ref = paths["double-backward"].matmat(V)  # also the warm-up
    parity = {}
    for name, op in paths.items():
        out = op.matmat(V)
        parity[name] = float((out - ref).abs().max() / ref.abs().max())
    gradient()
    times: dict[str, list[float]] = {"gradient": [], **{name: [] for name in paths}}
    jobs: list[tuple[str, Callable[[], Any]]] = [("gradient", gradient)] + [
        (name, lambda op=op: op.matmat(V)) for name, op in paths.items()
    ]
    for r in range(args.repeats):
        for name, fn in jobs[r % len(jobs):] + jobs[: r % len(jobs)]:
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    grad_s = statistics.median(times["gradient"])
    out: dict[str, Any] = {"gradient_s": summary(times["gradient"]), "n_batches": len(batches), "paths": {}}
    for name in paths:
        per_probe = [t / args.probes for t in times[name]]
        out["paths"][name] = {"per_probe_s": summary(per_probe), "per_probe_over_gradient": statistics.median(per_probe) / grad_s,
                              "parity_vs_double_backward": parity[name]}
    return out


# -- exact spectrum ----------------------------------------------------------------------------------------
def exact_eigenvalues(model: nn.Module, X: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> tuple[np.ndarray, float]:
    """``eigvalsh`` of the dense Hessian of the mean loss over all samples, built from float64 products (a float64
    copy of the model) block by block."""
    t0 = time.perf_counter()
    kw = {"hvp_method": "double-backward"} if "hvp_method" in HessianOperator.__init__.__code__.co_varnames else {
        "method": "double-backward"}
    op = HessianOperator(model, nn.CrossEntropyLoss(), [(X, y)], dtype=torch.float64, cache_graph=True, **kw)
    n = op.shape[0]
    H = torch.empty(n, n, dtype=torch.float64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        E = torch.zeros(n, e - s, dtype=torch.float64, device=op.device)
        E[torch.arange(s, e), torch.arange(e - s)] = 1.0
        H[:, s:e] = op.matmat(E).cpu()
    asym = float((H - H.T).abs().max() / H.abs().max())
    if asym > 1e-10:  # float64 round-off of symmetric products; more means a wrong operator
        raise RuntimeError(f"dense Hessian not symmetric to float64 round-off: {asym:.2e}")
    H = 0.5 * (H + H.T)
    eigs = torch.linalg.eigvalsh(H).numpy()
    return eigs, time.perf_counter() - t0


# -- memory (fresh subprocess) -----------------------------------------------------------------------------
def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(args: argparse.Namespace) -> int:
    """Run one contender once and print its memory as JSON (called by :func:`measure_memory`)."""
    device = torch.device(args.device)
    rss0 = _status_bytes("VmRSS") if device.type == "cpu" else 0
    model, X, y, _ = build(args.memory_child_size, args.samples, args.seed, args.train_steps, device)
    batches = split(X, y, args.samples if args.memory_child_mode == "single" else args.batch_size)
    n = n_weights(model)
    estimate = None
    if args.memory_child_contender.startswith("ours"):
        try:
            from numerics.lanczos import basis_bytes

            est_op = operator(model, batches).estimate_memory(args.probes)
            path = "cached double-backward" if est_op.cached_graph_bytes is not None and (
                est_op.cached_graph_bytes <= 1 << 30) else "double-backward"
            from nets.limit.spectrum import SpectrumConfig, resolve_reorth

            cfg = SpectrumConfig(steps=args.steps, n_probes=args.probes,
                                 reorth="partial" if args.memory_child_contender == "ours reorth=partial" else "auto")
            estimate = basis_bytes(n, steps=args.steps, n_probes=args.probes,
                                   reorth=resolve_reorth(cfg, n, args.steps, torch.float32),
                                   dtype=cfg.basis_dtype, operator_dtype=torch.float32) + est_op.paths[path]
        except (ImportError, AttributeError):  # the older code has no estimator
            estimate = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
    if args.memory_child_contender == "ours":
        run = run_ours(model, batches, args, args.seed)
    elif args.memory_child_contender == "ours reorth=partial":
        run = run_ours(model, batches, args, args.seed, partial=True)
    else:
        run = run_pyhessian(model, batches, args.memory_child_mode, args, args.seed)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _status_bytes("VmHWM")
    print(json.dumps({"n": n, "rss_before_model": rss0, "rss_before_slq": base, "peak": peak,
                      "slq_bytes_per_weight": (peak - base) / n, "total_bytes_per_weight": (peak - rss0) / n,
                      "estimate_bytes_per_weight": None if estimate is None else estimate / n,
                      "seconds": run["seconds"]}))
    return 0


def measure_memory(size: int, contender: str, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child-size", str(size), "--memory-child-contender",
           contender, "--memory-child-mode", mode, "--steps", str(args.steps), "--probes", str(args.probes),
           "--samples", str(args.samples), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--train-steps", str(args.train_steps), "--device", args.device]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- one size ----------------------------------------------------------------------------------------------
def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_size(target: int, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    model, X, y, widths = build(target, args.samples, args.seed, args.train_steps, device)
    n = n_weights(model)
    progress(f"n = {n} weights {widths}, {args.samples} samples")
    out: dict[str, Any] = {"target": target, "n": n, "widths": list(widths), "samples": args.samples, "modes": {}}
    exact = None
    if n <= args.dense_max:
        cache = None
        if args.exact_cache:
            os.makedirs(args.exact_cache, exist_ok=True)
            key = f"exact_n{n}_N{args.samples}_seed{args.seed}_train{args.train_steps}_{'-'.join(map(str, widths))}.npy"
            cache = os.path.join(args.exact_cache, key)
        if cache is not None and os.path.exists(cache):
            exact, t_dense = np.load(cache), float("nan")
            progress(f"n = {n}: exact eigenvalues from {cache}")
        else:
            progress(f"n = {n}: dense Hessian and eigvalsh")
            exact, t_dense = exact_eigenvalues(model, X, y)
            if cache is not None:
                np.save(cache, exact)
        out["exact"] = {"seconds": t_dense, "lambda_min": float(exact[0]), "lambda_max": float(exact[-1])}
    span = None if exact is None else float(exact[-1] - exact[0])
    partial = args.partial and has_partial() and args.probes * args.steps * n * 8 <= args.partial_max_gb * 2**30
    for mode in args.modes:
        batches = split(X, y, args.samples if mode == "single" else args.batch_size)
        peer = f"PyHessian {'single-batch' if mode == 'single' else 'dataloader'}"
        contenders: list[tuple[str, Callable[[int], dict]]] = [
            ("ours", lambda seed: run_ours(model, batches, args, seed)),
            (peer, lambda seed: run_pyhessian(model, batches, mode, args, seed)),
        ]
        if partial:
            contenders.append(("ours reorth=partial", lambda seed: run_ours(model, batches, args, seed, True)))
        warm = operator(model, batches)
        gen = torch.Generator().manual_seed(args.seed + 1)
        one_hvp_seconds(warm, args.probes, gen)  # builds the cached graph (or decides the streaming method)
        runs: dict[str, list[dict]] = {name: [] for name, _ in contenders}
        hvp_s: list[float] = []
        for r in range(args.repeats):
            order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
            for name, fn in order:
                progress(f"n = {n}, {mode}, round {r + 1}/{args.repeats}: {name}")
                runs[name].append(fn(args.seed + r))
            hvp_s.append(one_hvp_seconds(warm, args.probes, gen))
        one = statistics.median(hvp_s)
        recs: dict[str, Any] = {}
        for name, rs in runs.items():
            secs = [r_["seconds"] for r_ in rs]
            rec: dict[str, Any] = {"seconds": summary(secs), "hvps": rs[0]["hvps"], "data_passes": rs[0]["data_passes"]}
            rec["over_ours"] = statistics.median(secs) / statistics.median([r_["seconds"] for r_ in runs["ours"]])
            rec["peer_over_this"] = statistics.median([r_["seconds"] for r_ in runs[peer]]) / statistics.median(secs)
            for key in ("hvp_path", "reorth", "basis_dtype", "lanczos_bytes", "cached_graph_bytes"):
                if key in rs[0]:
                    rec[key] = rs[0][key]
            if name.startswith("ours"):
                rec["wall_over_hvps"] = statistics.median(secs) / (rs[0]["hvps"] * one)
            if exact is not None:
                w1 = [r_["spectrum"].wasserstein1(exact) / span for r_ in rs]
                rec["w1_over_range"] = summary(w1)
            recs[name] = rec
        out["modes"][mode] = {"one_hvp_s": summary(hvp_s), "runs": recs,
                              "hvp_path": getattr(warm, "hvp_path", None),
                              "hvp_choice": getattr(warm, "hvp_choice", None)}
        del warm
        if exact is not None and args.w1_seeds > 0 and mode == "single":
            # W1 is random (n_v probes): compare means over independent probe draws, the same draws for all
            w1: dict[str, list[float]] = {name: [] for name, _ in contenders}
            secs: dict[str, list[float]] = {name: [] for name, _ in contenders}
            for j in range(args.w1_seeds):
                seed = args.seed + 1000 + j
                for name, fn in contenders[j % len(contenders):] + contenders[: j % len(contenders)]:
                    rr = fn(seed)
                    w1[name].append(rr["spectrum"].wasserstein1(exact) / span)
                    secs[name].append(rr["seconds"])
            out["modes"][mode]["w1_draws"] = {
                name: {"w1_over_range": summary(v), "mean": statistics.mean(v),
                       "sd": statistics.stdev(v) if len(v) > 1 else 0.0, "seconds": summary(secs[name])}
                for name, v in w1.items()
            }
    if args.hvp_paths:
        progress(f"n = {n}: HVP paths against one gradient")
        out["hvp_paths"] = hvp_paths(model, split(X, y, args.batch_size), args)
    if args.memory:
        out["memory"] = {}
        contenders_m = ["ours", "PyHessian single-batch"]
        if partial:
            contenders_m.append("ours reorth=partial")
        for name in contenders_m:
            progress(f"n = {n}: memory of {name} (fresh process)")
            out["memory"][name] = measure_memory(target, name, "single", args)
    return out


# -- report ------------------------------------------------------------------------------------------------
def fmt(s: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{s['median'] * scale:.{digits}f} [{s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f}]"


def fmt_e(s: dict[str, float]) -> str:
    return f"{s['median']:.2e} [{s['min']:.2e}–{s['max']:.2e}]"


def print_report(results: list[dict], env: dict, args: argparse.Namespace) -> None:
    print(f"# SLQ at scale: {args.steps} steps x {args.probes} probes, {args.samples} synthetic CIFAR-shaped samples, "
          f"FC5-family MLPs; medians [min–max] over {args.repeats} interleaved rounds")
    if env.get("label"):
        print(f"# {env['label']}")
    print(f"# environment: torch {env.get('torch')}, {env.get('torch_threads')} thread(s), {env.get('cpus_usable')} usable "
          f"CPUs, device {args.device}, git {env.get('git_commit')}, load avg at start {env.get('loadavg_at_start')}")
    print("\nn | mode | run | seconds | PyHessian/this | HVPs | data passes | one HVP ms | wall/(HVPs x HVP) | W1/range | path")
    for res in results:
        for mode, m in res["modes"].items():
            one_ms = m["one_hvp_s"]["median"] * 1e3
            for name, r in m["runs"].items():
                w1 = fmt_e(r["w1_over_range"]) if "w1_over_range" in r else "n/a"
                ratio = f"{r['wall_over_hvps']:.2f}" if "wall_over_hvps" in r else "-"
                path = r.get("hvp_path") or "-"
                if r.get("reorth"):
                    path += f", reorth={r['reorth']}, {r.get('basis_dtype')}"
                print(f"{res['n']} | {mode} | {name} | {fmt(r['seconds'])} | {r['peer_over_this']:.2f} | {r['hvps']} | "
                      f"{r['data_passes']} | {one_ms:.2f} | {ratio} | {w1} | {path}")
            if "w1_draws" in m:
                d = m["w1_draws"]
                print("   W1/range over " + ", ".join(
                    f"{k}: {v['mean']:.3e} ± {v['sd']:.1e} (sd) in {v['seconds']['median']:.2f} s" for k, v in d.items()
                ) + f" ({args.w1_seeds} probe draws)")
        if "hvp_paths" in res and res["hvp_paths"]:
            hp = res["hvp_paths"]
            print(f"   one product per probe / one gradient ({hp['n_batches']} batches of {args.batch_size}, k = {args.probes}): " +
                  ", ".join(f"{k} {v['per_probe_over_gradient']:.2f}" for k, v in hp["paths"].items()))
        if "memory" in res:
            for name, mem in res["memory"].items():
                if "error" in mem:
                    print(f"   memory {name}: failed ({mem['error']})")
                    continue
                est = mem.get("estimate_bytes_per_weight")
                est_s = f", our estimate {est:.0f}" if est is not None else ""
                print(f"   memory {name}: {mem['total_bytes_per_weight']:.0f} B/weight in total, SLQ stage "
                      f"{mem['slq_bytes_per_weight']:.0f} B/weight{est_s} (fresh process, {mem['seconds']:.1f} s)")


def parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1e4,1e5,1e6,4e6"),
                   help="target weight counts, comma-separated (default 1e4,1e5,1e6,4e6)")
    p.add_argument("--steps", type=int, default=128, help="Lanczos steps (default 128, the pipeline's)")
    p.add_argument("--probes", type=int, default=4, help="probes (default 4, the pipeline's)")
    p.add_argument("--samples", type=int, default=512, help="samples in the Hessian (default 512)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size of the dataloader mode (default 128)")
    p.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=["single", "dataloader"],
                   help="single (one batch: PyHessian data=) and/or dataloader (PyHessian dataloader=)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--w1-seeds", type=int, default=4, help="extra probe draws for W1 where exact (default 4)")
    p.add_argument("--dense-max", type=int, default=12_000, help="largest n with a dense eigvalsh reference")
    p.add_argument("--exact-cache", metavar="DIR", help="keep the exact eigenvalues here (keyed by model and data)")
    p.add_argument("--partial", action=argparse.BooleanOptionalAction, default=True,
                   help="also time reorth='partial' (stored basis) where it fits --partial-max-gb")
    p.add_argument("--partial-max-gb", type=float, default=0.5,
                   help="skip reorth='partial' where its float64 basis exceeds this (GiB; default 0.5)")
    p.add_argument("--hvp-paths", action=argparse.BooleanOptionalAction, default=True,
                   help="time each product path against one gradient")
    p.add_argument("--memory", action="store_true", help="measure peak memory per weight in fresh processes")
    p.add_argument("--train-steps", type=int, default=30, help="full-batch Adam steps (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (use 1 with OMP_NUM_THREADS=1 when shared)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON (atomically)")
    p.add_argument("--label", default="", help="a label recorded with the results (e.g. the code version run)")
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 1e4,1e5, 32 steps, 2 rounds, 1 W1 draw")
    p.add_argument("--memory-child-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--memory-child-contender", help=argparse.SUPPRESS)
    p.add_argument("--memory-child-mode", default="single", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available in this torch build")
    if args.memory_child_size is not None:
        return memory_child(args)
    if args.quick:
        args.sizes, args.steps, args.repeats, args.w1_seeds = [10_000, 100_000], 32, 2, 1
    try:
        import pyhessian  # noqa: F401
    except ImportError:
        p.error("PyHessian is not installed: pip install -c constraints.txt -e '.[bench]'")
    env = provenance(args.device)
    env["label"] = args.label
    env["loadavg_at_start"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        env["pyhessian"] = version("pyhessian")
    results = []
    for size in args.sizes:
        results.append(bench_size(size, args))
        if args.json:  # rewritten after every size: a long run leaves its finished sizes behind
            atomic_write_json(args.json, jsonable_results(env, args, results), indent=2)
    print_report(results, env, args)
    return 0


def jsonable_results(env: dict, args: argparse.Namespace, results: list[dict]) -> dict:
    from nets.io import jsonable

    a = {k: v for k, v in vars(args).items() if not k.startswith("memory_child")}
    return jsonable({"environment": env, "args": a, "results": results})


if __name__ == "__main__":
    raise SystemExit(main())
