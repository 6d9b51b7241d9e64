r"""Directional-pruning diagnostics for networks, each beside its controls (docs/math.md §4; ours unless cited).

The directional-pruning paper's network evidence (Chao, Wang, Xing & Cheng 2020, §4) is the projection ratio
``‖P_top δ‖/‖δ‖`` of ``δ = w^gRDA − w^SGD`` onto the top-10 Hessian eigenvectors at ``w^SGD`` and the training loss
along a quadratic Bézier curve between the two minima (Garipov et al. 2018). Measured on the digits MLP
(issue 13), neither is evidence by itself: one-shot magnitude pruning at the same sparsity has a small
projection ratio too, at top-200 gRDA equals a random direction, and a "barrier 0" on the linear path only
says that the loss rises monotonically towards the pruned end. So every diagnostic here is computed for gRDA
*and* for its controls at the same sparsity:

* ``magnitude``: global one-shot magnitude pruning (LOMP) of ``w^SGD`` at gRDA's kept fraction of the prunable
  weights (the other parameters keep their SGD values);
* ``compensated``: the same mask with OBS-style compensation of the kept weights
  (:func:`nets.compensate.compensate`: ``H_SS δ = −(g_S − H_SP w_P)`` by CG on Hessian-vector products);
* ``compensated_grda_mask``: the same compensation on gRDA's own mask (how good gRDA's support is, given the
  best second-order use of it);
* ``compensated_reopt``: the LOMP mask compensated and then re-optimised on the true loss (masked L-BFGS; the
  retraining a pruning-after-training method gets);
* ``directional``: the constrained directional-pruning solution (:func:`theory.directional.constrained_dp_admm`,
  ours) with the flat subspace at the run's training time (:func:`theory.directional.flat_subspace_at_time`)
  and ``λ`` chosen to match gRDA's sparsity (dense Hessian only);
* ``random``: ``w^SGD + ‖δ‖·u`` with ``u`` uniform on the sphere (a random direction of gRDA's length).

For each point: training loss and its increase over ``w^SGD``, test accuracy, distance, the projection ratio
onto the top-``k`` eigenvectors for several ``k`` (a random unit vector gives ``√(k/D)`` in expectation), the
share of the displacement outside the flat subspace ``‖P₁δ‖/‖δ‖`` for cuts around ``1/t`` (``t = Σ_n γ_n``,
the training time), and the losses along the linear path and a fitted quadratic Bézier curve with three
explicitly defined barriers (:class:`PathLosses`).

Mask stability (:func:`mask_overlap`): Jaccard overlap of kept sets, per layer and global, always beside the
overlap two independent random masks of the same sizes would have.

The Hessian is that of the mean training cross-entropy over *all* trainable parameters at ``w^SGD`` (float64,
eval mode), dense (``torch`` HVPs against the identity, one per parameter) up to ``dense_limit`` parameters,
else the top eigenpairs by block Lanczos (:func:`numerics.eigs.eigs`; then the flat-subspace share is a lower
bound unless the smallest computed eigenvalue is already below the cut, and ``directional`` is skipped).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nets.params import flatten, prunable_parameters, unflatten_like
from theory.validation import check_choice, check_int, check_real, check_torch_generator

__all__ = [
    "flat_parameters",
    "set_flat_parameters",
    "prunable_index",
    "functional_loss",
    "dense_hessian",
    "HessianEigen",
    "hessian_eigen",
    "bezier_point",
    "BezierFit",
    "fit_bezier",
    "PathLosses",
    "path_losses",
    "masks_of",
    "MaskOverlap",
    "mask_overlap",
    "DiagnosticsConfig",
    "PointDiagnostics",
    "DirectionalDiagnostics",
    "directional_diagnostics",
    "BARRIER_DEFINITIONS",
]

log = logging.getLogger(__name__)

Masks = dict[str, torch.Tensor]

#: What each barrier in :class:`PathLosses` means (written into every result).
BARRIER_DEFINITIONS: dict[str, str] = {
    "barrier_endpoints": "max_t L(phi(t)) - max(L(phi(0)), L(phi(1))): the bump above the higher end; 0 whenever the "
                         "loss rises monotonically towards the pruned end, so 0 does NOT mean a flat path",
    "barrier_interpolation": "max_t [L(phi(t)) - ((1-t) L(phi(0)) + t L(phi(1)))]: the bump above the chord between the "
                             "end losses (Frankle et al. 2020; Entezari et al. 2022); <= 0 for a path that is convex "
                             "below its chord",
    "rise": "max_t L(phi(t)) - L(w_SGD): how far above the SGD minimum the path goes",
}


# ---------------------------------------------------------------------------------------------------------
# Flat parameter vectors and the loss as a function of them
# ---------------------------------------------------------------------------------------------------------
def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def flat_parameters(model: nn.Module, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All trainable parameters of ``model`` as one flat CPU vector (a copy), in ``named_parameters`` order."""
    return flatten([p.detach().to("cpu", dtype) for _, p in _trainable(model)])


def set_flat_parameters(model: nn.Module, w: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` with its trainable parameters set from the flat vector ``w``."""
    out = copy.deepcopy(model)
    params = [p for _, p in _trainable(out)]
    with torch.no_grad():
        for p, piece in zip(params, unflatten_like(w.detach(), params)):
            p.copy_(piece.to(p.device, p.dtype))
    return out


def prunable_index(model: nn.Module) -> np.ndarray:
    """Boolean mask over :func:`flat_parameters` marking the prunable (conv/linear) weights."""
    pw = {n for n, _ in prunable_parameters(model)}
    return np.concatenate([np.full(p.numel(), n in pw) for n, p in _trainable(model)])


def functional_loss(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``L(w)``: the sample-weighted mean of ``loss_fn`` (default cross-entropy) over ``batches`` at the flat
    parameter vector ``w``, differentiable in ``w``, on a float64 eval-mode copy of ``model`` (on the model's
    device; ``w`` may live on the CPU, the value is returned there)."""
    from torch.func import functional_call

    m64 = copy.deepcopy(model).double().eval()
    names = [n for n, _ in _trainable(m64)]
    like = [p for _, p in _trainable(m64)]
    device = like[0].device
    data = [(x.to(device, torch.float64), y.to(device)) for x, y in batches]
    n_total = sum(len(y) for _, y in data)
    fn = loss_fn if loss_fn is not None else nn.functional.cross_entropy

    def loss(w: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, unflatten_like(w.to(device), like)))
        return (sum(fn(functional_call(m64, params, (x,)), y) * len(y) for x, y in data) / n_total).cpu()

    return loss


# ---------------------------------------------------------------------------------------------------------
# Hessian
# ---------------------------------------------------------------------------------------------------------
def dense_hessian(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *, block: int = 256,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """The dense float64 Hessian of the mean cross-entropy over all trainable parameters (symmetrised), and the
    number of Hessian-vector products it cost (one per parameter), by :class:`nets.hessian.HessianOperator`
    against blocks of the identity."""
    from nets.hessian import HessianOperator

    op = HessianOperator(model, nn.CrossEntropyLoss(), list(batches), params=lambda n, p: p.requires_grad,
                         dtype=torch.float64)
    n = op.shape[0]
    H = np.empty((n, n), dtype=np.float64)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        E = torch.zeros(n, j1 - j0, dtype=torch.float64, device=op.device)
        E[torch.arange(j0, j1), torch.arange(j1 - j0)] = 1.0
        H[:, j0:j1] = op.matmat(E).to("cpu", torch.float64).numpy()
        if progress is not None:
            progress(j1, n)
    return 0.5 * (H + H.T), int(op.n_products)


@dataclass(frozen=True)
class HessianEigen:
    """Eigenpairs of the Hessian at ``w^SGD``: ``eigenvalues`` descending with ``eigenvectors`` (D, m) — all of
    them (``method="dense"``, ``H`` kept in ``matrix``) or the top ``m`` (``"lanczos"``, with ``converged``)."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    method: str
    hvps: int
    seconds: float
    converged: bool = True
    matrix: np.ndarray | None = None

    @property
    def complete(self) -> bool:
        return self.method == "dense"


def hessian_eigen(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *, top: int,
                  solver: str = "auto", dense_limit: int = 3000, generator: torch.Generator) -> HessianEigen:
    """All eigenpairs (dense, ``D ≤ dense_limit`` under ``"auto"``) or the ``top`` largest (block Lanczos)."""
    from nets.hessian import HessianOperator

    check_choice("solver", solver, ("auto", "dense", "lanczos"))
    D = sum(p.numel() for _, p in _trainable(model))
    top = check_int("top", top, minimum=1, maximum=D - 1)
    use = solver if solver != "auto" else ("dense" if D <= dense_limit else "lanczos")
    t0 = time.perf_counter()
    if use == "dense":
        H, hvps = dense_hessian(model, batches)
        evals, evecs = np.linalg.eigh(H)
        return HessianEigen(evals[::-1].copy(), evecs[:, ::-1].copy(), "dense", hvps, time.perf_counter() - t0,
                            True, H)
    from numerics.eigs import eigs

    op = HessianOperator(model, nn.CrossEntropyLoss(), list(batches), params=lambda n, p: p.requires_grad,
                         dtype=torch.float64)
    res = eigs(op, top, which="LA", generator=generator)
    return HessianEigen(np.asarray(res.eigenvalues, dtype=np.float64), res.eigenvectors.double().cpu().numpy(),
                        "lanczos", int(res.matvecs), time.perf_counter() - t0, bool(np.all(res.converged)))


# ---------------------------------------------------------------------------------------------------------
# Paths between two points
# ---------------------------------------------------------------------------------------------------------
def bezier_point(w0: torch.Tensor, theta: torch.Tensor, w1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """``φ(t) = (1−t)² w0 + 2t(1−t) θ + t² w1`` (quadratic Bézier curve; Garipov et al. 2018, eq. (2))."""
    return (1 - t) ** 2 * w0 + 2 * t * (1 - t) * theta + t**2 * w1


@dataclass(frozen=True)
class BezierFit:
    """The fitted control point ``theta`` and the last Monte Carlo estimate of ``E_t L(φ(t))``."""

    theta: torch.Tensor
    objective: float
    steps: int


def fit_bezier(loss: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor, w1: torch.Tensor, *, steps: int,
               generator: torch.Generator, lr: float = 1e-2, batch_t: int = 4) -> BezierFit:
    """Fit the control point θ of :func:`bezier_point` by Adam on ``E_{t∼U(0,1)} L(φ(t))`` (Garipov et al. 2018,
    the procedure the directional-pruning authors used), ``batch_t`` values of ``t`` per step from
    ``generator``, starting from the midpoint (``steps = 0`` returns the midpoint: the straight line)."""
    steps = check_int("steps", steps, minimum=0)
    check_torch_generator("generator", generator)
    check_real("lr", lr, minimum=0.0, open_min=True)
    batch_t = check_int("batch_t", batch_t, minimum=1)
    theta = (0.5 * (w0 + w1)).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    obj = float("nan")
    for _ in range(steps):
        ts = torch.rand(batch_t, generator=generator, dtype=w0.dtype)
        opt.zero_grad()
        val = sum(loss(bezier_point(w0, theta, w1, t)) for t in ts) / batch_t
        val.backward()
        opt.step()
        obj = float(val.detach())
    return BezierFit(theta.detach(), obj, steps)


@dataclass(frozen=True)
class PathLosses:
    """Training loss along a path ``φ`` from ``w^SGD`` (``t = 0``) to a point (``t = 1``), with the barriers of
    :data:`BARRIER_DEFINITIONS`."""

    t: np.ndarray
    loss: np.ndarray

    @property
    def barrier_endpoints(self) -> float:
        return float(self.loss.max() - max(self.loss[0], self.loss[-1]))

    @property
    def barrier_interpolation(self) -> float:
        chord = (1 - self.t) * self.loss[0] + self.t * self.loss[-1]
        return float(np.max(self.loss - chord))

    @property
    def rise(self) -> float:
        return float(self.loss.max() - self.loss[0])

    @property
    def monotone(self) -> bool:
        """Whether the loss never decreases along the path (then ``barrier_endpoints`` is 0 by construction)."""
        return bool(np.all(np.diff(self.loss) >= 0))

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "loss": self.loss, "barrier_endpoints": self.barrier_endpoints,
                "barrier_interpolation": self.barrier_interpolation, "rise": self.rise, "monotone": self.monotone}


def path_losses(loss: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor, w1: torch.Tensor, *, points: int,
                theta: torch.Tensor | None = None) -> PathLosses:
    """The loss at ``points`` equally spaced ``t ∈ [0, 1]`` on the straight line (``theta=None``) or on the
    Bézier curve with control point ``theta``."""
    points = check_int("points", points, minimum=2)
    ts = torch.linspace(0, 1, points, dtype=torch.float64)
    with torch.no_grad():
        if theta is None:
            vals = [float(loss((1 - t) * w0 + t * w1)) for t in ts]
        else:
            vals = [float(loss(bezier_point(w0, theta, w1, t))) for t in ts]
    return PathLosses(ts.numpy(), np.asarray(vals))


# ---------------------------------------------------------------------------------------------------------
# Mask stability
# ---------------------------------------------------------------------------------------------------------
def masks_of(model: nn.Module) -> Masks:
    """The kept set of every prunable weight of a (gRDA-)trained model: ``w != 0`` (``nets.prune`` mask format)."""
    return {n: (p.detach() != 0).cpu() for n, p in prunable_parameters(model)}


@dataclass(frozen=True)
class MaskOverlap:
    """Jaccard overlap ``|A∩B|/|A∪B|`` of two kept sets, global and per layer, beside chance.

    ``chance``: the ratio of expectations ``E|A∩B|/E|A∪B| = k_a k_b/N / (k_a + k_b − k_a k_b/N)`` for independent
    uniformly random kept sets of the same sizes (a first-order value of the expected Jaccard, exact as
    ``N → ∞``). Two empty kept sets count as identical (1.0).
    """

    jaccard: float
    chance: float
    per_layer: dict[str, float]
    per_layer_chance: dict[str, float]
    kept_fraction_a: float
    kept_fraction_b: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"jaccard": self.jaccard, "chance": self.chance, "per_layer": self.per_layer,
                "per_layer_chance": self.per_layer_chance, "kept_fraction_a": self.kept_fraction_a,
                "kept_fraction_b": self.kept_fraction_b, "n": self.n}


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    inter = int((a & b).sum())
    union = int((a | b).sum())
    n, ka, kb = a.numel(), int(a.sum()), int(b.sum())
    e_inter = ka * kb / n
    e_union = ka + kb - e_inter
    return (1.0 if union == 0 else inter / union), (1.0 if e_union == 0 else e_inter / e_union)


def mask_overlap(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> MaskOverlap:
    """Jaccard overlap of two mask sets (``True`` = kept) with the same names and shapes.

    >>> A = {"w": torch.tensor([True, True, False, False])}
    >>> B = {"w": torch.tensor([True, False, True, False])}
    >>> o = mask_overlap(A, B)
    >>> o.jaccard, o.chance    # |{0}| / |{0, 1, 2}|; chance (2·2/4) / (2 + 2 − 1)
    (0.3333333333333333, 0.3333333333333333)
    """
    if set(a) != set(b):
        raise ValueError(f"mask sets name different weights: {sorted(set(a) ^ set(b))[:5]}")
    if not a:
        raise ValueError("masks are empty")
    per, per_chance, fa, fb = {}, {}, [], []
    for name in a:
        ma, mb = a[name], b[name]
        if not (isinstance(ma, torch.Tensor) and isinstance(mb, torch.Tensor)) or ma.dtype != torch.bool \
                or mb.dtype != torch.bool:
            raise TypeError(f"mask {name!r} must be bool tensors in both sets")
        if ma.shape != mb.shape:
            raise ValueError(f"mask {name!r} has shapes {tuple(ma.shape)} and {tuple(mb.shape)}")
        ma, mb = ma.reshape(-1).cpu(), mb.reshape(-1).cpu()
        per[name], per_chance[name] = _jaccard(ma, mb)
        fa.append(ma)
        fb.append(mb)
    A, B = torch.cat(fa), torch.cat(fb)
    j, ch = _jaccard(A, B)
    return MaskOverlap(j, ch, per, per_chance, float(A.double().mean()), float(B.double().mean()), A.numel())


# ---------------------------------------------------------------------------------------------------------
# Diagnostics with controls
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiagnosticsConfig:
    """Settings of :func:`directional_diagnostics`.

    ``top_ks``: the ``k`` of the projection ratio (default 1, 10 — the authors' —, 50, 200; values ``≥ D`` are
    dropped); ``hessian``: ``"auto"`` (dense up to ``dense_limit`` parameters), ``"dense"`` or ``"lanczos"``;
    ``path_points``: where each path's loss is evaluated; ``bezier_steps``: Adam steps per Bézier fit (0: the
    linear path only); ``cut_multipliers``: the flat-subspace cuts ``|λ| ≤ m/t`` reported (ours: ``m = 1`` is the
    relaxation time of gRDA's dynamics, ``e^{−λt}``); ``compensation``/``directional``: compute those controls
    (``compensation_steps > 0`` adds ``compensated_reopt``: the LOMP mask compensated and then re-optimised by
    that many L-BFGS loss-and-gradient evaluations on the kept weights, default 100);
    ``samples``: use a fixed random subset of this many training samples for the Hessian, the losses and the
    paths (default: all; for large datasets, where every path point is a pass over the data). Under Lanczos the
    largest ``k`` sets the cost (about ``2k`` HVPs per restart).
    """

    top_ks: tuple[int, ...] = (1, 10, 50, 200)
    hessian: str = "auto"
    dense_limit: int = 3000
    path_points: int = 21
    bezier_steps: int = 200
    cut_multipliers: tuple[float, ...] = (0.1, 1.0, 10.0)
    compensation: bool = True
    compensation_steps: int = 100
    directional: bool = True
    samples: int | None = None

    def __post_init__(self) -> None:
        if not self.top_ks:
            raise ValueError("top_ks must not be empty")
        for k in self.top_ks:
            check_int("top_ks[i]", k, minimum=1)
        object.__setattr__(self, "top_ks", tuple(sorted(set(int(k) for k in self.top_ks))))
        check_choice("hessian", self.hessian, ("auto", "dense", "lanczos"))
        check_int("dense_limit", self.dense_limit, minimum=1)
        check_int("path_points", self.path_points, minimum=2)
        check_int("bezier_steps", self.bezier_steps, minimum=0)
        for m in self.cut_multipliers:
            check_real("cut_multipliers[i]", m, minimum=0.0, open_min=True)
        if self.samples is not None:
            check_int("samples", self.samples, minimum=1)
        check_int("compensation_steps", self.compensation_steps, minimum=0)


@dataclass(frozen=True)
class PointDiagnostics:
    """Every diagnostic of one point ``w`` against ``w^SGD`` (see the module docstring)."""

    name: str
    kept_fraction: float
    train_loss: float
    loss_increase: float
    test_acc: float
    distance: float
    projection_ratio: dict[int, float]
    share_outside_flat: dict[float, float]
    linear: PathLosses
    bezier: PathLosses | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kept_fraction": self.kept_fraction, "removed_fraction": 1.0 - self.kept_fraction,
                "train_loss": self.train_loss, "loss_increase": self.loss_increase, "test_acc": self.test_acc,
                "distance": self.distance,
                "projection_ratio": {str(k): v for k, v in self.projection_ratio.items()},
                "share_outside_flat": {f"{m:g}/t": v for m, v in self.share_outside_flat.items()},
                "linear_path": self.linear.to_dict(), "bezier_path": None if self.bezier is None else self.bezier.to_dict(),
                **self.extra}


@dataclass(frozen=True)
class DirectionalDiagnostics:
    """Result of :func:`directional_diagnostics`: one :class:`PointDiagnostics` per point (``grda`` and the
    controls), the Hessian's top eigenvalues and method, the training time ``t`` and the cuts, the expected
    projection ratio of a random direction ``√(k/D)``, costs and timings."""

    points: dict[str, PointDiagnostics]
    n_parameters: int
    n_prunable: int
    training_time: float
    cuts: dict[float, float]
    share_is_lower_bound: bool
    random_expectation: dict[int, float]
    top_eigenvalues: np.ndarray
    hessian_method: str
    hessian_hvps: int
    hessian_converged: bool
    sgd_train_loss: float
    sgd_test_acc: float
    config: DiagnosticsConfig
    seconds: dict[str, float]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "points": {k: p.to_dict() for k, p in self.points.items()},
            "n_parameters": self.n_parameters, "n_prunable": self.n_prunable, "training_time": self.training_time,
            "flat_cuts": {f"{m:g}/t": v for m, v in self.cuts.items()},
            "share_outside_flat_is_lower_bound": self.share_is_lower_bound,
            "projection_ratio_random_expectation": {str(k): v for k, v in self.random_expectation.items()},
            "top_eigenvalues": self.top_eigenvalues, "hessian_method": self.hessian_method,
            "hessian_hvps": self.hessian_hvps, "hessian_converged": self.hessian_converged,
            "sgd": {"train_loss": self.sgd_train_loss, "test_acc": self.sgd_test_acc},
            "barrier_definitions": BARRIER_DEFINITIONS,
            "config": {"top_ks": list(c.top_ks), "hessian": c.hessian, "dense_limit": c.dense_limit,
                       "path_points": c.path_points, "bezier_steps": c.bezier_steps,
                       "cut_multipliers": list(c.cut_multipliers), "compensation": c.compensation,
                       "compensation_steps": c.compensation_steps, "directional": c.directional,
                       "samples": c.samples},
            "seconds": self.seconds, "notes": self.notes,
        }

    def summary(self) -> str:
        ks = sorted(self.random_expectation)
        head = f"{'point':24s} {'kept':>7s} {'ΔL train':>10s} {'test acc':>8s} " + " ".join(
            f"{'P_top' + str(k):>9s}" for k in ks) + f" {'outside flat':>12s} {'line rise':>9s} {'line barr.':>10s}"
        lines = [head, "-" * len(head)]
        for p in self.points.values():
            share = p.share_outside_flat.get(1.0, float("nan"))
            lines.append(f"{p.name:24s} {p.kept_fraction:7.4f} {p.loss_increase:+10.4g} {p.test_acc:8.4f} "
                         + " ".join(f"{p.projection_ratio.get(k, float('nan')):9.3e}" for k in ks)
                         + f" {share:12.4f} {p.linear.rise:9.4g} {p.linear.barrier_endpoints:10.3g}")
        lines.append(f"{'random expectation √(k/D)':24s} {'':7s} {'':10s} {'':8s} "
                     + " ".join(f"{self.random_expectation[k]:9.3e}" for k in ks))
        return "\n".join(lines)


def _eval_points(data: Any, model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
                 ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], float]]:
    from nets.data import fixed_batches

    train_loss = functional_loss(model, batches)
    test = fixed_batches(data.test, 4096)

    def test_acc(w: torch.Tensor) -> float:
        from nets.train import evaluate

        return evaluate(set_flat_parameters(model, w.to(next(model.parameters()).dtype)), test)[1]

    return train_loss, test_acc


def _match_directional(w_sgd: np.ndarray, flat: Any, target_zeros: int, prunable: np.ndarray,
                       max_evals: int = 40) -> tuple[Any, float, int]:
    """Constrained DP solution with ``λ`` bisected (geometrically) so that its number of zero prunable weights
    reaches ``target_zeros`` (the least λ that does); returns (result, λ, solves)."""
    from theory.directional import constrained_dp_admm

    def zeros(res: Any) -> int:
        return int(np.count_nonzero(res.w[prunable] == 0))

    lo, hi = 0.0, float(np.max(np.abs(w_sgd)))
    best = constrained_dp_admm(w_sgd, flat, hi)
    solves = 1
    for _ in range(10):  # as λ → ∞ the solution tends to the sparsest (ℓ1) point of w^SGD + range(P₀)
        if zeros(best) >= target_zeros:
            break
        res = constrained_dp_admm(w_sgd, flat, 4.0 * hi)
        solves += 1
        if zeros(res) <= zeros(best):
            return best, hi, solves  # the flat subspace cannot reach this sparsity: report the most it can
        lo, hi, best = hi, 4.0 * hi, res
    if zeros(best) < target_zeros:
        return best, hi, solves
    best_lam = hi
    for _ in range(max_evals):
        mid = math.sqrt(max(lo, hi * 1e-8) * hi)
        res = constrained_dp_admm(w_sgd, flat, mid)
        solves += 1
        if zeros(res) >= target_zeros:
            hi, best, best_lam = mid, res, mid
            if zeros(res) == target_zeros:
                break
        else:
            lo = mid
        if hi / max(lo, 1e-300) < 1 + 1e-6:
            break
    return best, best_lam, solves


def directional_diagnostics(
    model_sgd: nn.Module,
    model_grda: nn.Module,
    data: Any,
    *,
    training_time: float,
    config: DiagnosticsConfig = DiagnosticsConfig(),
    generator: torch.Generator,
    progress: Callable[[str], None] | None = None,
) -> DirectionalDiagnostics:
    """Directional diagnostics of a gRDA point against ``w^SGD``, each beside its controls at the same sparsity
    (module docstring). ``training_time``: ``t = Σ_n γ_n`` of the gRDA run (sets the flat-subspace cut ``1/t``);
    ``data``: a :class:`nets.data.DataSplit` (Hessian and losses on ``train_eval``, accuracy on ``test``).
    Neither model is changed."""
    from nets.data import fixed_batches
    from nets.prune import global_magnitude_masks
    from theory.directional import flat_subspace, projection_ratio

    training_time = check_real("training_time", training_time, minimum=0.0, open_min=True)
    check_torch_generator("generator", generator)
    if not isinstance(config, DiagnosticsConfig):
        raise TypeError(f"config must be a DiagnosticsConfig, got {type(config).__name__}")
    say = progress or (lambda s: None)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    w_sgd = flat_parameters(model_sgd)
    w_grda = flat_parameters(model_grda)
    if w_sgd.shape != w_grda.shape:
        raise ValueError(f"the two models differ in size: {w_sgd.numel()} vs {w_grda.numel()} parameters")
    D = w_sgd.numel()
    prunable = prunable_index(model_sgd)
    n_prunable = int(prunable.sum())
    top_ks = tuple(k for k in config.top_ks if k < D)
    if not top_ks:
        raise ValueError(f"every top_k in {config.top_ks} is >= the number of parameters D={D}")
    batches = fixed_batches(data.train_eval, 4096)
    if config.samples is not None and config.samples < sum(len(y) for _, y in batches):
        X = torch.cat([x for x, _ in batches])
        Y = torch.cat([y for _, y in batches])
        idx = torch.randperm(len(Y), generator=generator)[: config.samples].sort().values
        batches = [(X[idx[i:i + 4096]], Y[idx[i:i + 4096]]) for i in range(0, len(idx), 4096)]
        notes.append(f"Hessian, losses and paths on a fixed random subset of {config.samples} training samples")
    loss, test_acc = _eval_points(data, model_sgd, batches)

    say("hessian")
    eig = hessian_eigen(model_sgd, batches, top=max(top_ks), solver=config.hessian, dense_limit=config.dense_limit,
                        generator=generator)
    seconds["hessian"] = eig.seconds
    cuts = {m: m / training_time for m in config.cut_multipliers}
    lower_bound = not eig.complete and bool(eig.eigenvalues[-1] > min(cuts.values()))
    if lower_bound:
        notes.append("Lanczos top eigenpairs only: the share outside the flat subspace is a lower bound")

    # ---- the points ----
    kept = 1.0 - float(np.count_nonzero(w_grda.numpy()[prunable] == 0)) / n_prunable
    points: dict[str, torch.Tensor] = {"grda": w_grda}
    extra: dict[str, dict[str, Any]] = {"grda": {}}
    t0 = time.perf_counter()
    lomp = global_magnitude_masks(model_sgd, kept)
    w_mag = flat_parameters(_masked(model_sgd, lomp))
    points["magnitude"] = w_mag
    extra["magnitude"] = {}
    if config.compensation:
        from nets.compensate import CompensationConfig, compensate

        say("compensation")
        todo = [("compensated", lomp, CompensationConfig()),
                ("compensated_grda_mask", masks_of(model_grda), CompensationConfig())]
        if config.compensation_steps > 0:
            todo.append(("compensated_reopt", lomp, CompensationConfig(steps=config.compensation_steps)))
        for name, masks, ccfg in todo:
            res = compensate(model_sgd, masks, batches, config=ccfg)
            points[name] = flat_parameters(res.model)
            extra[name] = {"compensation": res.to_dict()}
    seconds["controls"] = time.perf_counter() - t0
    if config.directional:
        if not eig.complete:
            notes.append("directional (constrained DP) control skipped: it needs the dense Hessian")
        else:
            say("directional")
            t0 = time.perf_counter()
            flat = flat_subspace(eig.matrix, tau=min(1.0 / (eig.eigenvalues[0] * training_time), 0.999999))
            target_zeros = n_prunable - round(kept * n_prunable)
            res, lam, solves = _match_directional(w_sgd.numpy(), flat, target_zeros, prunable)
            points["directional"] = torch.from_numpy(res.w.copy())
            reached = int(np.count_nonzero(res.w[prunable] == 0))
            if reached < target_zeros:
                notes.append(f"directional: the constrained form with the flat subspace at the cut 1/t (dimension "
                             f"{flat.k} of {D}) zeroes at most {reached} of {n_prunable} prunable weights (sparsity "
                             f"{reached / n_prunable:.4f}), short of gRDA's {target_zeros}: compared at that sparsity")
            extra["directional"] = {"lambda": lam, "admm_solves": solves, "flat_dim": flat.k,
                                    "kkt": res.kkt, "converged": res.converged,
                                    "quadratic_model_increase": float(0.5 * (res.w - w_sgd.numpy()) @ eig.matrix
                                                                      @ (res.w - w_sgd.numpy()))}
            seconds["directional"] = time.perf_counter() - t0
    delta_norm = float((w_grda - w_sgd).norm())
    u = torch.randn(D, generator=generator, dtype=torch.float64)
    points["random"] = w_sgd + delta_norm * u / u.norm()
    extra["random"] = {}

    # ---- diagnostics of every point ----
    say("paths")
    t0 = time.perf_counter()
    L0 = float(loss(w_sgd).detach())
    V = eig.eigenvectors
    out: dict[str, PointDiagnostics] = {}
    for name, w in points.items():
        d = (w - w_sgd).numpy()
        nd = float(np.linalg.norm(d))
        ratio = {k: (projection_ratio(d, V[:, :k]) if nd > 0 else float("nan")) for k in top_ks}
        share = {}
        for m, cut in cuts.items():
            sharp = np.abs(eig.eigenvalues) > cut
            share[m] = float(np.linalg.norm(V[:, sharp].T @ d) / nd) if nd > 0 else float("nan")
        lin = path_losses(loss, w_sgd, w, points=config.path_points)
        bez = None
        if config.bezier_steps > 0 and nd > 0:
            fit = fit_bezier(loss, w_sgd, w, steps=config.bezier_steps, generator=generator)
            bez = path_losses(loss, w_sgd, w, points=config.path_points, theta=fit.theta)
            extra[name]["bezier_fit_objective"] = fit.objective
        kf = 1.0 - float(np.count_nonzero(w.numpy()[prunable] == 0)) / n_prunable
        Lw = float(loss(w).detach())
        out[name] = PointDiagnostics(name, kf, Lw, Lw - L0, test_acc(w), nd, ratio, share, lin, bez, extra[name])
    seconds["paths"] = time.perf_counter() - t0
    return DirectionalDiagnostics(
        out, D, n_prunable, training_time, cuts, lower_bound, {k: math.sqrt(k / D) for k in top_ks},
        eig.eigenvalues[: max(top_ks)].copy(), eig.method, eig.hvps, eig.converged, L0, test_acc(w_sgd), config,
        seconds, notes)


def _masked(model: nn.Module, masks: Masks) -> nn.Module:
    out = copy.deepcopy(model)
    named = dict(out.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            named[n].mul_(m.to(named[n].device, named[n].dtype))
    return out
