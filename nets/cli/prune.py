"""``prunelimit prune``: prune a trained network to a kept fraction, optionally compensating the kept weights.

Global magnitude pruning (LOMP) of the model's prunable (Linear/Conv) weights to ``--kept-fraction``; with
``--compensate`` the kept weights are re-optimised (:func:`nets.compensate.compensate`: the CG quadratic step
``H_SS δ = −(g_S − H_SP w_P)`` on Hessian-vector products, a true-loss line search, then
``--compensation-steps`` masked L-BFGS evaluations; pruned weights stay exactly 0). Writes to ``--out``
(atomically): ``pruned.pt`` (the ``state_dict``, loadable with ``--checkpoint`` by the other subcommands) and
``prune.json`` (kept count, training loss and accuracies before and after, the quadratic model's predictions,
CG diagnostics, cost, provenance). The model comes from ``--checkpoint`` or is trained as in
``prunelimit limit`` (resumable under ``--out/train``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from nets.cli._runner import context
from nets.cli._shared import fraction, nonneg_float, nonneg_int
from nets.cli.limit import add_model_arguments, prepare_model

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, out_default="prunelimit-prune", spectrum=False)
    p = parser.add_argument_group("pruning")
    p.add_argument("--kept-fraction", type=fraction, required=True,
                   help="fraction of the prunable weights to keep (the largest magnitudes), in [0, 1]")
    p.add_argument("--compensate", action="store_true",
                   help="re-optimise the kept weights (CG quadratic step, then masked L-BFGS)")
    p.add_argument("--compensation-steps", type=nonneg_int, default=50,
                   help="masked L-BFGS loss-and-gradient evaluations after the quadratic step (default 50)")
    p.add_argument("--objective-l1", type=nonneg_float, default=0.0,
                   help="add lambda*||w||_1 over the prunable weights to the re-optimised loss (default 0)")


def _metrics(model: Any, data: Any) -> dict[str, float | None]:
    from nets.data import fixed_batches
    from nets.train import evaluate

    trl, tra = evaluate(model, fixed_batches(data.train_eval, 1024))
    tel, tea = evaluate(model, fixed_batches(data.test, 1024))
    return {"train_loss": trl, "train_acc": tra, "test_loss": tel, "test_acc": tea}


def run(args: argparse.Namespace) -> int:
    import torch

    from nets.compensate import CompensationConfig, compensate
    from nets.data import fixed_batches
    from nets.io import atomic_open, atomic_write_json, jsonable, provenance
    from nets.limit.parallel import shard_batches
    from nets.params import copy_model
    from nets.prune import apply_masks, global_magnitude_masks, remove_masks

    model, data, train_info = prepare_model(args)
    t0 = time.perf_counter()
    masks = global_magnitude_masks(model, args.kept_fraction)
    kept = sum(int(m.sum()) for m in masks.values())
    n = sum(m.numel() for m in masks.values())
    dense = _metrics(model, data)
    plain = remove_masks(apply_masks(copy_model(model), masks))
    record: dict[str, Any] = {"format": "prunelimit.Prune/1", "kept_fraction": args.kept_fraction, "kept_count": kept,
                              "n_prunable": n, "dense": dense, "magnitude_pruned": _metrics(plain, data)}
    out_model = plain
    if args.compensate:
        p = next(iter(model.parameters()))
        batches = [(x.to(p.device, p.dtype), y.to(p.device)) for x, y in fixed_batches(data.train_eval, 1024)]
        batches = shard_batches(batches, 1024)  # under torchrun: this process's shard (the products are all-reduced)
        res = compensate(model, masks, batches, l1=args.objective_l1,
                         config=CompensationConfig(steps=args.compensation_steps))
        out_model = res.model
        record["compensated"] = _metrics(out_model, data)
        record["compensation"] = res.to_dict()
    if not context().is_main:  # rank 0 writes and prints
        return 0
    record.update(seconds=time.perf_counter() - t0, train=train_info, provenance=provenance(args.device),
                  command={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    with atomic_open(args.out / "pruned.pt", "wb") as fh:
        torch.save(out_model.state_dict(), fh)
    atomic_write_json(args.out / "prune.json", jsonable(record), indent=1)
    f = record
    print(f"prunelimit prune: {type(model).__name__} on {data.name}: kept {kept} of {n} prunable weights "
          f"(kept fraction {kept / n:.4f})")
    for key, label in (("dense", "dense"), ("magnitude_pruned", "magnitude pruning"), ("compensated", "compensated")):
        if key in f:
            m = f[key]
            print(f"  {label:18s} train loss {m['train_loss']:.4f}, train acc {m['train_acc']:.4f}, "
                  f"test loss {m['test_loss']:.4f}, test acc {m['test_acc']:.4f}")
    if args.compensate:
        c = record["compensation"]
        print(f"  compensation: CG {c['cg']['status']} in {c['cg']['iterations']} iterations (damping "
              f"{c['cg']['damping']:.3g}), step size {c['step_size']}, {c['optimizer_evaluations']} L-BFGS "
              f"evaluations; {c['hvps']} HVPs, {c['gradients']} gradients")
    print(f"wrote {args.out / 'pruned.pt'}, {args.out / 'prune.json'}")
    return 0
