"""``prunelimit grda``: train gRDA and SGD from the same initialisation on digits; directional diagnostics.

Follows the directional-pruning paper's protocol (EXPERIMENTS.md: no momentum, no weight decay, gRDA from the
same random initialisation and data order as SGD) on scikit-learn's 8×8 digits with a small MLP, and reports

* sparsity of gRDA (global over all trainable parameters, as the authors count it; over the prunable
  weights; and per parameter tensor) and the test accuracy of both runs, per epoch;
* the authors' evidence for directional pruning (MATH.md §4): ``‖P_top(w^gRDA − w^SGD)‖/‖w^gRDA − w^SGD‖``
  with ``P_top`` onto the top-k (default 10) Hessian eigenvectors at ``w^SGD`` (Hessian of the mean training
  cross-entropy over all trainable parameters, float64), beside ``√(k/D)``, the value for a random direction;
* the training loss along the straight line and along a fitted quadratic Bézier curve
  ``φ(t) = (1−t)² w^SGD + 2t(1−t) θ + t² w^gRDA`` between the two minima (θ fitted by minimising
  ``E_{t∼U(0,1)} L(φ(t))`` with Adam, as in Garipov et al. 2018, which the authors used).

Outputs in ``--out``: ``grda.json`` (everything above, plus the configuration and timings) and ``grda.png``
(sparsity and accuracy over training, and the path losses); both written atomically.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from pathlib import Path
from typing import Any

from nets.cli._shared import add_threads_argument, nonneg_float, positive, run_with_threads
from nets.io import atomic_open, atomic_write_json, jsonable

log = logging.getLogger(__name__)

JSON_NAME = "grda.json"
PNG_NAME = "grda.png"




def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--model", default="mlp", help="model name for nets.models.build_model (default mlp)")
    add_threads_argument(parser)
    parser.add_argument("--hidden", type=positive(int), nargs="+", default=[32],
                        help="MLP hidden widths (default 32: 2410 parameters)")
    parser.add_argument("--epochs", type=positive(int), default=100, help="epochs for each run (default 100)")
    parser.add_argument("--batch-size", type=positive(int), default=32, help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=positive(float), default=0.1,
                        help="learning rate, both runs (default 0.1, the authors' CIFAR/ImageNet rate)")
    parser.add_argument("--lr-drop-epoch", type=int, default=None,
                        help="multiply lr by 0.1 from this epoch on (the authors' ImageNet schedule; default: "
                             "constant lr)")
    parser.add_argument("--c", type=nonneg_float, default=0.02,
                        help="gRDA c (default 0.02: chosen for this small MLP so that about half the weights "
                             "are pruned; the authors use 0.0005-0.005 on networks with 10^7 weights)")
    parser.add_argument("--mu", type=positive(float), default=0.55, help="gRDA mu (default 0.55, authors' WRN)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, data split and order")
    parser.add_argument("--top-k", type=positive(int), default=10,
                        help="Hessian eigenvectors for the projection ratio (default 10, the authors')")
    parser.add_argument("--hessian", choices=("auto", "dense", "lanczos"), default="auto",
                        help="top eigenvectors by block Lanczos (numerics.eigs; auto for more than 500 parameters) or by "
                             "eigh of the dense Hessian (one HVP per parameter)")
    parser.add_argument("--path-points", type=positive(int), default=21,
                        help="points on each path where the loss is evaluated (default 21)")
    parser.add_argument("--bezier-steps", type=positive(int), default=200,
                        help="Adam steps fitting the Bézier control point, 4 values of t each (default 200)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# ---------------------------------------------------------------------------------------------------------


def _flat(model) -> "torch.Tensor":  # noqa: F821
    from nets.params import flatten

    return flatten([p.detach() for p in model.parameters()])


def _sparsity_report(model) -> dict[str, Any]:
    from nets.params import prunable_parameters

    per = {n: float((p == 0).double().mean()) for n, p in model.named_parameters()}
    tot = sum(p.numel() for p in model.parameters())
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    pw = prunable_parameters(model)
    ptot = sum(p.numel() for _, p in pw)
    pzeros = sum(int((p == 0).sum()) for _, p in pw)
    return {"global_all_parameters": zeros / tot, "prunable_weights": pzeros / ptot if ptot else 0.0,
            "per_tensor": per, "n_parameters": tot, "n_prunable": ptot}


def _functional_loss(model, X, y):
    """``L(w)`` for a flat parameter vector ``w`` (float64 copy of ``model``), via torch.func.functional_call."""
    import torch
    from torch.func import functional_call

    from nets.params import unflatten_like

    names = [n for n, _ in model.named_parameters()]
    like = [p for _, p in model.named_parameters()]

    def loss(w):
        params = dict(zip(names, unflatten_like(w, like)))
        return torch.nn.functional.cross_entropy(functional_call(model, params, (X,)), y)

    return loss


def _bezier(w0, theta, w1, t):
    return (1 - t) ** 2 * w0 + 2 * t * (1 - t) * theta + t**2 * w1


def fit_bezier(loss, w0, w1, steps: int, generator, lr: float = 1e-2, batch_t: int = 4):
    """Fit the control point θ of ``φ(t) = (1−t)²w0 + 2t(1−t)θ + t²w1`` by Adam on ``E_t L(φ(t))``, ``t ∼ U(0,1)``
    (Garipov et al. 2018), starting from the midpoint. Returns ``(θ, final objective estimate)``."""
    import torch

    theta = (0.5 * (w0 + w1)).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    obj = float("nan")
    for _ in range(steps):
        ts = torch.rand(batch_t, generator=generator, dtype=w0.dtype)
        opt.zero_grad()
        val = sum(loss(_bezier(w0, theta, w1, t)) for t in ts) / batch_t
        val.backward()
        opt.step()
        obj = float(val.detach())
    return theta.detach(), obj


def directional_diagnostics(model_sgd, model_grda, data, *, top_k: int, hessian: str, path_points: int,
                            bezier_steps: int, generator) -> dict[str, Any]:
    """Projection ratio onto the top-k Hessian eigenvectors at ``w^SGD`` and losses along the linear and the
    fitted quadratic Bézier path. Both models are left unchanged."""
    import numpy as np
    import torch

    from nets.data import fixed_batches
    from nets.hessian import HessianOperator
    from theory.directional import projection_ratio

    batches = fixed_batches(data.train_eval, 100_000)
    X = torch.cat([b[0] for b in batches]).double()
    y = torch.cat([b[1] for b in batches])
    m64 = copy.deepcopy(model_sgd).double().eval()
    w_sgd = _flat(model_sgd).double()
    w_grda = _flat(model_grda).double()
    D = w_sgd.numel()
    t0 = time.perf_counter()
    H = HessianOperator(model_sgd, torch.nn.CrossEntropyLoss(), [(X, y)], params=lambda n, p: True,
                        dtype=torch.float64)
    method = hessian if hessian != "auto" else ("dense" if D <= 500 else "lanczos")
    if top_k >= D:
        raise ValueError(f"--top-k must be < the number of parameters {D}, got {top_k}")
    if method == "dense":
        Hd = H.to_dense()
        Hd = 0.5 * (Hd + Hd.T)
        evals, evecs = torch.linalg.eigh(Hd)
        top_vals = evals[-top_k:].flip(0).numpy()
        V = evecs[:, -top_k:].flip(1).numpy()
        extra = {"lambda_min": float(evals[0]), "negative_fraction": float((evals < 0).double().mean())}
    else:
        from numerics.eigs import eigs

        res = eigs(H, top_k, which="LA", generator=generator)
        top_vals, V = res.eigenvalues, res.eigenvectors.double().cpu().numpy()
        extra = {"converged": bool(np.all(res.converged)), "matvecs": int(res.matvecs),
                 "max_relative_residual": float(np.max(res.residuals) / res.norm_estimate)}
    hess_seconds = time.perf_counter() - t0
    delta = (w_grda - w_sgd).numpy()
    ratio = projection_ratio(delta, V)

    loss = _functional_loss(m64, X, y)
    ts = torch.linspace(0, 1, path_points, dtype=torch.float64)
    with torch.no_grad():
        linear = [float(loss((1 - t) * w_sgd + t * w_grda)) for t in ts]
    t1 = time.perf_counter()
    theta, obj = fit_bezier(loss, w_sgd, w_grda, bezier_steps, generator)
    with torch.no_grad():
        bez = [float(loss(_bezier(w_sgd, theta, w_grda, t))) for t in ts]
    ends = max(linear[0], linear[-1])
    return {
        "n_parameters": D,
        "hessian_method": method,
        "hessian_products": int(H.n_products),
        "hessian_seconds": hess_seconds,
        "top_eigenvalues": [float(v) for v in top_vals],
        **{f"hessian_{k}": v for k, v in extra.items()},
        "projection_ratio_top_k": ratio,
        "projection_ratio_random_direction": math.sqrt(top_k / D),
        "top_k": top_k,
        "distance_grda_sgd": float(np.linalg.norm(delta)),
        "relative_distance": float(np.linalg.norm(delta) / float(w_sgd.norm())),
        "path_t": [float(t) for t in ts],
        "linear_path_loss": linear,
        "bezier_path_loss": bez,
        "linear_barrier": max(linear) - ends,
        "bezier_barrier": max(bez) - ends,
        "bezier_fit_objective": obj,
        "bezier_steps": bezier_steps,
        "bezier_seconds": time.perf_counter() - t1,
    }


def _plot(path: Path, hist_sgd, hist_grda, diag) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ep = [r["epoch"] for r in hist_grda]
    ax[0].plot(ep, [r["sparsity_all"] for r in hist_grda], label="gRDA, all parameters")
    ax[0].plot(ep, [r["sparsity"] for r in hist_grda], "--", label="gRDA, prunable weights")
    ax[0].set(xlabel="epoch", ylabel="sparsity (fraction zero)", ylim=(0, 1), title="sparsity")
    ax[0].legend()
    ax[1].plot([r["epoch"] for r in hist_sgd], [r["test_acc"] for r in hist_sgd], label="SGD")
    ax[1].plot(ep, [r["test_acc"] for r in hist_grda], label="gRDA")
    ax[1].set(xlabel="epoch", ylabel="test accuracy", title="accuracy")
    ax[1].legend()
    ax[2].plot(diag["path_t"], diag["linear_path_loss"], label="linear")
    ax[2].plot(diag["path_t"], diag["bezier_path_loss"], label="quadratic Bézier")
    ax[2].set(xlabel="t (0 = SGD, 1 = gRDA)", ylabel="training loss", title="paths between the minima")
    ax[2].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())


def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from nets.data import load_dataset
    from nets.models import build_model
    from nets.train import TrainConfig, train, tqdm_progress

    if args.lr_drop_epoch is not None and not 1 <= args.lr_drop_epoch < args.epochs:
        raise SystemExit(f"prunelimit grda: --lr-drop-epoch must be in [1, epochs={args.epochs}), got {args.lr_drop_epoch}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = load_dataset("digits", seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    kwargs = {"hidden": tuple(args.hidden)} if args.model == "mlp" else {}
    init = build_model(args.model, data.num_classes, data.input_shape, generator=gen, **kwargs)
    sched = dict(schedule="multistep", milestones=(args.lr_drop_epoch,), gamma=0.1) if args.lr_drop_epoch else {}
    common = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=0.0, weight_decay=0.0,
                  seed=args.seed, **sched)
    runs = {}
    for name, cfg in (("sgd", TrainConfig(optimizer="sgd", **common)),
                      ("grda", TrainConfig(optimizer="grda", grda_c=args.c, grda_mu=args.mu, **common))):
        model = copy.deepcopy(init)  # same initialisation; same seed gives the same data order
        hist_all: list[float] = []

        def record_all(rec, _m=model, _h=hist_all):
            _h.append(_sparsity_report(_m)["global_all_parameters"])

        bar = None if args.no_progress else tqdm_progress(args.epochs, desc=name, leave=False)

        def progress(rec, _bar=bar, _rec=record_all):
            _rec(rec)
            if _bar is not None:
                _bar(rec)

        t0 = time.perf_counter()
        res = train(model, data, cfg, progress=progress)
        hist = [dict(r, sparsity_all=s) for r, s in zip(res.history, hist_all)]
        runs[name] = {"model": model, "history": hist, "seconds": time.perf_counter() - t0, "config": cfg.to_dict()}

    diag = directional_diagnostics(runs["sgd"]["model"], runs["grda"]["model"], data, top_k=args.top_k,
                                   hessian=args.hessian, path_points=args.path_points,
                                   bezier_steps=args.bezier_steps, generator=gen)
    sp = _sparsity_report(runs["grda"]["model"])
    result = {
        "command": "prunelimit grda",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
        "dataset": "digits (scikit-learn 8x8, 1797 images)",
        "model": args.model,
        "sgd": {"history": runs["sgd"]["history"], "final_test_acc": runs["sgd"]["history"][-1]["test_acc"],
                "final_train_loss": runs["sgd"]["history"][-1]["train_loss"], "seconds": runs["sgd"]["seconds"],
                "config": runs["sgd"]["config"]},
        "grda": {"history": runs["grda"]["history"], "final_test_acc": runs["grda"]["history"][-1]["test_acc"],
                 "final_train_loss": runs["grda"]["history"][-1]["train_loss"], "seconds": runs["grda"]["seconds"],
                 "config": runs["grda"]["config"], "sparsity": sp},
        "directional": diag,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads()},
        "total_seconds": time.perf_counter() - t_start,
    }
    atomic_write_json(out / JSON_NAME, jsonable(result), indent=1)
    _plot(out / PNG_NAME, runs["sgd"]["history"], runs["grda"]["history"], diag)

    print(f"digits / {args.model} ({sp['n_parameters']} parameters), {args.epochs} epochs, lr {args.lr}, "
          f"gRDA c={args.c} mu={args.mu}")
    print(f"  test accuracy   SGD {result['sgd']['final_test_acc']:.4f}   gRDA {result['grda']['final_test_acc']:.4f}")
    print(f"  gRDA sparsity   all parameters {sp['global_all_parameters']:.4f}   prunable weights "
          f"{sp['prunable_weights']:.4f}")
    for n, s in sp["per_tensor"].items():
        print(f"    {n:<24} {s:.4f}")
    print(f"  projection ratio onto top-{args.top_k} Hessian eigenvectors at w_SGD: "
          f"{diag['projection_ratio_top_k']:.3e}  (random direction: {diag['projection_ratio_random_direction']:.3e}; "
          f"Hessian: {diag['hessian_method']}, {diag['hessian_products']} HVPs)")
    print(f"  training loss   SGD {diag['linear_path_loss'][0]:.4f}   gRDA {diag['linear_path_loss'][-1]:.4f}   "
          f"max on line {max(diag['linear_path_loss']):.4f}   max on Bézier {max(diag['bezier_path_loss']):.4f}")
    print(f"  wrote {out / JSON_NAME} and {out / PNG_NAME} ({result['total_seconds']:.1f} s)")
    return 0
