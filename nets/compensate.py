"""Compensated pruning: re-optimise the kept weights after a mask is applied (OBS for a whole mask).

For trained weights ``w*`` (the prunable ones, ``N`` of them), a mask keeping the set ``S`` and pruning ``P``
(``w_P = 0``), the pruned network is moved back towards the loss minimum on its support in two stages
(docs/math.md §2.3; ours, after Hassibi & Stork 1993, "Second order derivatives for network pruning: Optimal
Brain Surgeon", and LeCun, Denker & Solla 1990, "Optimal Brain Damage"):

1. **The quadratic step.** In the second-order model ``L(w* + d) ≈ L(w*) + gᵀd + ½ dᵀHd`` with
   ``d_P = −w*_P`` fixed, the best ``d_S = δ`` solves

   .. math::  H_{SS}\\,δ = −(g_S − H_{SP} w^*_P),

   which for a single pruned weight is OBS's update and for a whole mask is OBS applied to all of it at once;
   its model value is ``L(w*) + Δ`` with ``Δ = ½ c_Pᵀ S c_P + (gradient terms)``, ``S`` the Schur complement
   of ``H_SS`` (:class:`theory.quadratic.QuadraticModel`, the dense oracle this is tested against). The
   system is solved by conjugate gradients on Hessian-vector products restricted to ``S``
   (:func:`numerics.cg.damped_cg`; no dense Hessian): ``H_SS v = (H E_S v)_S``. A trained network's ``H_SS``
   is often indefinite; CG reports each direction of non-positive curvature and Levenberg damping
   ``H_SS + λI`` is raised until the model is convex along every explored direction (the result records
   ``λ``, the iterations, the residual and the curvature failures). The step is then checked on the *true*
   loss: a backtracking search over ``α ∈ {1, ½, ¼, ⅛, 0}`` keeps the best of ``L(w* on S + αδ, 0 on P)``
   (``α = 0`` is plain magnitude pruning), so a poor quadratic model never makes things worse.
2. **Masked re-optimisation** (``steps > 0``): full-batch L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line
   search; or Adam) on the true training loss over the kept weights only, gradients multiplied by the mask so
   that pruned weights stay exactly zero; at most ``steps`` loss-and-gradient evaluations.

The loss is the same function everywhere (:mod:`nets.limit` uses it for ``L(w*)``, the sweeps and the
compensation): ``L(w) = (mean of loss_fn over the fixed, un-augmented training batches, weighted by batch size,
eval mode) + l1·‖w‖₁`` over the prunable weights. With ``l1 = 0`` (the default) it is the data loss alone; an
ℓ1-trained ``w*`` is then not a stationary point of it (``g ≠ 0``; the gradient terms above account for
that), and re-optimising lowers the loss below ``L(w*)`` partly just because it no longer pays the ℓ1 penalty
the training paid — pass the training's ``l1`` to measure against the objective ``w*`` minimises. The ℓ1 term is
exact in every formula: pruning ``w_P`` changes it by ``−l1·‖w*_P‖₁ = −(l1·sign w*)_Pᵀ w*_P``, so it enters
through the gradient ``g = ∇(data loss) + l1·sign(w*)`` and its Hessian is 0. Only the prunable weights move;
biases, BatchNorm parameters and buffers stay as trained.

:class:`Compensator` holds what every mask shares (the Hessian operator at ``w*``, the gradient, the
magnitude order) so that a search over many kept counts pays for them once; :func:`compensate` is the
one-mask convenience that returns a compensated copy of the model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nets.hessian import HessianOperator, eval_mode
from nets.params import copy_model, flatten, prunable_parameters, unflatten_like
from numerics.cg import CGResult, damped_cg
from numerics.operators import LinearOperator
from theory.limits import kept_count as _kept_count
from theory.validation import check_choice, check_int, check_real

__all__ = ["CompensationConfig", "CompensationResult", "Compensator", "compensate", "OPTIMIZERS"]

logger = logging.getLogger(__name__)

#: Optimisers of the masked re-optimisation stage.
OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")
#: Step sizes tried on the true loss along the quadratic step (the last, 0, is plain pruning).
LINE_SEARCH_STEPS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CompensationConfig:
    """Settings of :class:`Compensator` (validated once, here).

    Attributes
    ----------
    cg_rtol:
        Relative residual at which CG stops (default 1e-6).
    damping:
        Levenberg damping ``λ`` of the first CG attempt: ``None`` (default) uses ``1.05·max(0, −λ_min(H))``
        (the most negative eigenvalue of the Hessian at ``w*``, which bounds that of every ``H_SS`` by Cauchy
        interlacing, so ``H_SS + λI`` is positive definite and CG converges without restarts), from the
        ``min_eigenvalue`` given to :class:`Compensator` or else a short Lanczos run (:func:`numerics.eigs.eigs`);
        a number fixes it (0: undamped, restarted with more damping only on negative curvature).
    cg_max_iter:
        CG iteration limit per attempt (default None: ``min(|S|, 200)``; exact arithmetic needs ``≤ |S|``).
    damping_attempts:
        CG runs with increasing Levenberg damping on negative curvature (:func:`numerics.cg.damped_cg`).
    line_search:
        Backtrack the quadratic step on the true loss (module docstring); ``False`` takes ``α = 1``.
    steps:
        Loss-and-gradient evaluations of the masked re-optimisation (0: the quadratic step only).
    optimizer:
        ``"lbfgs"`` (default; full-batch, strong-Wolfe line search, history 20) or ``"adam"``.
    lr:
        Learning rate of the optimiser (default None: 1.0 for L-BFGS, 1e-3 for Adam).
    hvp_method, cache_graph:
        :class:`nets.hessian.HessianOperator` settings of the Hessian at ``w*`` (cached first-order graphs when
        they fit: one second-order backward per CG iteration).
    """

    cg_rtol: float = 1e-6
    damping: float | None = None
    cg_max_iter: int | None = None
    damping_attempts: int = 4
    line_search: bool = True
    steps: int = 0
    optimizer: str = "lbfgs"
    lr: float | None = None
    hvp_method: str = "auto"
    cache_graph: bool | str = "auto"

    def __post_init__(self) -> None:
        check_real("cg_rtol", self.cg_rtol, minimum=0.0, open_min=True)
        if self.damping is not None:
            check_real("damping", self.damping, minimum=0.0)
        if self.cg_max_iter is not None:
            check_int("cg_max_iter", self.cg_max_iter, minimum=1)
        check_int("damping_attempts", self.damping_attempts, minimum=1)
        if not isinstance(self.line_search, bool):
            raise TypeError(f"line_search must be a bool, got line_search={self.line_search!r}")
        check_int("steps", self.steps, minimum=0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("hvp_method", self.hvp_method, ("auto", "forward-over-reverse", "double-backward"))
        if self.lr is not None:
            check_real("lr", self.lr, minimum=0.0, open_min=True)

    @property
    def effective_lr(self) -> float:
        """The learning rate used: ``lr`` or the optimiser's default."""
        if self.lr is not None:
            return float(self.lr)
        return 1.0 if self.optimizer == "lbfgs" else 1e-3


@dataclass(frozen=True)
class CompensationResult:
    """One mask's compensation (all losses are the true training loss; increases are relative to ``L(w*)``).

    Attributes
    ----------
    kept_count, kept_fraction:
        ``|S|`` and ``|S|/N``.
    loss_dense:
        ``L(w*)``.
    loss_pruned:
        The loss of plain magnitude pruning on this mask (``w*`` on ``S``, 0 on ``P``): no compensation.
    loss_quadratic_step:
        The loss after the quadratic step at the chosen step size ``step_size``.
    loss_after:
        The final loss (after the masked re-optimisation when ``steps > 0``).
    predicted_increase_uncompensated:
        Second-order Taylor model of plain pruning: ``−g_Pᵀw*_P + ½ w*_Pᵀ H_PP w*_P``.
    predicted_increase_compensated:
        The quadratic model's value at the quadratic step (``α = 1``): ``gᵀd + ½ dᵀHd`` with ``d = (δ, −w*_P)``.
    step_size:
        ``α`` kept by the line search.
    cg:
        :class:`numerics.cg.CGResult` of the quadratic step (status, iterations, residual, damping,
        negative-curvature events).
    optimizer, optimizer_evaluations:
        The re-optimisation's optimiser and the number of loss-and-gradient evaluations it used.
    hvps, gradients, forward_passes:
        Cost of this mask: Hessian-vector products, full-data gradient evaluations, full-data loss evaluations.
    seconds:
        Wall time.
    weights:
        The compensated prunable weights (flat, in :func:`nets.params.prunable_parameters` order; exactly 0 on
        ``P``).
    model:
        A compensated copy of the model (only from :func:`compensate` / ``Compensator(..., copy=True)``).
    """

    kept_count: int
    kept_fraction: float
    loss_dense: float
    loss_pruned: float
    loss_quadratic_step: float
    loss_after: float
    predicted_increase_uncompensated: float
    predicted_increase_compensated: float
    step_size: float
    cg: CGResult
    optimizer: str
    optimizer_evaluations: int
    hvps: int
    gradients: int
    forward_passes: int
    seconds: float
    weights: torch.Tensor = field(repr=False)
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def increase_after(self) -> float:
        """``L_after − L(w*)``."""
        return self.loss_after - self.loss_dense

    @property
    def increase_pruned(self) -> float:
        """``L_pruned − L(w*)``."""
        return self.loss_pruned - self.loss_dense

    def to_dict(self) -> dict[str, Any]:
        """Everything but the weights and the model, JSON-ready."""
        return {
            "kept_count": self.kept_count, "kept_fraction": self.kept_fraction, "loss_dense": self.loss_dense,
            "loss_pruned": self.loss_pruned, "loss_quadratic_step": self.loss_quadratic_step,
            "loss_after": self.loss_after,
            "predicted_increase_uncompensated": self.predicted_increase_uncompensated,
            "predicted_increase_compensated": self.predicted_increase_compensated, "step_size": self.step_size,
            "cg": self.cg.to_dict(), "optimizer": self.optimizer,
            "optimizer_evaluations": self.optimizer_evaluations, "hvps": self.hvps, "gradients": self.gradients,
            "forward_passes": self.forward_passes, "seconds": self.seconds,
        }


class _Restricted(LinearOperator):
    """``H_SS``: the operator restricted to the coordinates ``index`` (``v ↦ (H E_S v)_S``)."""

    def __init__(self, op: LinearOperator, index: torch.Tensor) -> None:
        m = int(index.numel())
        super().__init__((m, m), dtype=op.dtype, device=op.device, symmetric=True)
        self._op, self._index, self._n = op, index, op.shape[0]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        full = torch.zeros((self._n, V.shape[1]), dtype=V.dtype, device=V.device)
        full[self._index] = V
        return self._op.matmat(full)[self._index]


def _default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


class Compensator:
    """Compensated pruning of one trained model for any number of masks (module docstring).

    Parameters
    ----------
    model:
        The trained model (never modified: a working copy is used; torch prune masks are made permanent on it).
    data:
        The fixed training batches, a list of ``(inputs, targets)`` (un-augmented; e.g.
        :func:`nets.data.fixed_batches`).
    loss:
        ``loss(outputs, targets)`` returning the batch *mean* (default cross-entropy).
    config:
        :class:`CompensationConfig`.
    operator:
        An existing :class:`nets.hessian.HessianOperator` at the same weights, data and loss to reuse (its
        cached graphs); default: built here.
    l1:
        The objective's ℓ1 coefficient over the prunable weights (module docstring; default 0).
    min_eigenvalue:
        An estimate of ``λ_min(H)`` at ``w*`` (e.g. the smallest Ritz value of an SLQ run) for the default
        damping; None estimates it when first needed.

    The shared work, done once: ``L(w*)`` and ``g = ∇L(w*)`` (one gradient), the magnitude order of ``w*``.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Sequence[tuple[torch.Tensor, torch.Tensor]],
        *,
        loss: LossFn | None = None,
        config: CompensationConfig | None = None,
        operator: HessianOperator | None = None,
        l1: float = 0.0,
        min_eigenvalue: float | None = None,
    ) -> None:
        from nets.prune import remove_masks

        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(data, (list, tuple)) or not data:
            raise TypeError("data must be a non-empty list of (inputs, targets) batches")
        self.config = CompensationConfig() if config is None else config
        if not isinstance(self.config, CompensationConfig):
            raise TypeError(f"config must be a CompensationConfig, got {type(self.config).__name__}")
        self.l1 = check_real("l1", l1, minimum=0.0)
        self.loss_fn: LossFn = _default_loss if loss is None else loss
        if not callable(self.loss_fn):
            raise TypeError(f"loss must be callable, got {type(self.loss_fn).__name__}")
        self.model = remove_masks(copy_model(model))
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._params = [w for _, w in prunable_parameters(self.model)]
        if not self._params:
            raise ValueError("model has no prunable (Linear/Conv) weights")
        p0 = self._params[0]
        self.data = [(x.to(device=p0.device, dtype=p0.dtype if torch.is_floating_point(x) else None), y.to(p0.device))
                     for x, y in data]
        self.w_star = flatten([w.detach() for w in self._params]).clone()
        self.N = int(self.w_star.numel())
        if not bool(torch.isfinite(self.w_star).all()):
            raise ValueError("model has non-finite prunable weights")
        #: coordinates by decreasing ``|w*|``, ties to the smaller flat index (as nets.prune.global_magnitude_masks)
        self.order = torch.sort(self.w_star.abs(), descending=True, stable=True).indices
        self.operator = operator if operator is not None else HessianOperator(
            self.model, self.loss_fn, self.data, hvp_method=self.config.hvp_method, cache_graph=self.config.cache_graph)
        if self.operator.shape[0] != self.N:
            raise ValueError(f"operator has dimension {self.operator.shape[0]}, expected N={self.N}")
        before = self.operator.cost()
        data_loss, g = self.operator.value_and_gradient()
        w64 = self.w_star.to(torch.float64)
        self.loss_dense = float(data_loss) + self.l1 * float(w64.abs().sum())
        #: ``∇L(w*)`` of the objective (data loss gradient + l1·sign(w*)), float64
        self.gradient = g.detach().to(torch.float64) + self.l1 * torch.sign(w64)
        self._setup_gradients = self.operator.cost()["gradients"] - before["gradients"]
        self.forward_passes = 0
        self._min_eigenvalue = None if min_eigenvalue is None else check_real("min_eigenvalue", min_eigenvalue)

    @property
    def damping(self) -> float:
        """The first CG attempt's damping (:class:`CompensationConfig`, ``damping``)."""
        if self.config.damping is not None:
            return float(self.config.damping)
        if self._min_eigenvalue is None:
            from numerics.eigs import eigs

            res = eigs(self.operator, 1, which="SA", generator=torch.Generator().manual_seed(0), tol=1e-3)
            self._min_eigenvalue = float(res.eigenvalues[0])
        return 1.05 * max(0.0, -self._min_eigenvalue)

    # -- masks ---------------------------------------------------------------------------------------------
    def kept_mask(self, kept: int | float | Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """A flat bool vector (True = kept) from a kept count (int), a kept fraction (float: the ``kept_count``
        largest magnitudes), a ``nets.prune`` mask dict, or a flat bool tensor."""
        if isinstance(kept, Mapping):
            names = [n for n, _ in prunable_parameters(self.model)]
            missing = [n for n in names if n not in kept]
            if missing:
                raise ValueError(f"masks has no entry for prunable weight(s) {missing[:3]}")
            return flatten([kept[n].reshape(-1).to(torch.bool).to(self.w_star.device) for n in names])
        if isinstance(kept, torch.Tensor):
            if kept.dtype != torch.bool or kept.numel() != self.N:
                raise ValueError(f"a flat mask must be a bool tensor of {self.N} entries, got {kept.dtype} "
                                 f"with {kept.numel()}")
            return kept.reshape(-1).to(self.w_star.device)
        if isinstance(kept, float):
            kept = _kept_count(kept, self.N)
        k = check_int("kept", kept, minimum=0, maximum=self.N)
        mask = torch.zeros(self.N, dtype=torch.bool, device=self.w_star.device)
        mask[self.order[:k]] = True
        return mask

    # -- the true loss -------------------------------------------------------------------------------------
    def _set(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            for w, piece in zip(self._params, unflatten_like(flat.to(self.w_star.dtype), self._params)):
                w.copy_(piece)

    def loss(self, flat: torch.Tensor) -> float:
        """The true training loss at prunable weights ``flat`` (every other parameter as trained)."""
        self._set(flat)
        self.forward_passes += 1
        total = torch.zeros((), dtype=torch.float64, device=self.w_star.device)
        n = 0
        with eval_mode(self.model), torch.no_grad():
            for x, y in self.data:
                total += self.loss_fn(self.model(x), y).to(torch.float64) * int(x.shape[0])
                n += int(x.shape[0])
        penalty = self.l1 * float(flat.to(torch.float64).abs().sum()) if self.l1 else 0.0
        if _distributed():
            both = torch.stack([total, torch.tensor(float(n), dtype=torch.float64, device=total.device)])
            torch.distributed.all_reduce(both)
            return float(both[0] / both[1]) + penalty
        return float(total) / n + penalty

    # -- one mask ------------------------------------------------------------------------------------------
    def __call__(self, kept: int | float | Mapping[str, torch.Tensor] | torch.Tensor, *, copy: bool = False,
                 reoptimise: bool = True) -> CompensationResult:
        """Compensate one mask (module docstring); ``copy=True`` also returns a compensated model copy;
        ``reoptimise=False`` stops after the quadratic step (``loss_after = loss_quadratic_step``)."""
        t0 = time.perf_counter()
        cfg = self.config if reoptimise else dataclasses.replace(self.config, steps=0)
        mask = self.kept_mask(kept)
        k = int(mask.sum())
        cost0 = self.operator.cost()
        fwd0 = self.forward_passes
        w64 = self.w_star.to(torch.float64)
        S = torch.nonzero(mask).reshape(-1)
        u = torch.where(mask, torch.zeros_like(w64), w64)  # w*_P on P, 0 on S
        pruned = torch.where(mask, w64, torch.zeros_like(w64))
        loss_pruned = self.loss(pruned)
        g = self.gradient
        if k == self.N:  # nothing pruned
            cg = CGResult(torch.zeros(k, dtype=torch.float64, device=w64.device), "zero_rhs", 0, 0, 0.0, 0.0, 0.0, 0.0,
                          0, math.inf)
            return self._finish(t0, cfg, mask, w64, loss_pruned, loss_pruned, 1.0, 0.0, 0.0, cg, cost0, fwd0, copy)
        Hu = self.operator.matmat(u.to(self.operator.dtype).reshape(-1, 1)).reshape(-1).to(torch.float64)
        uHu = float(u @ Hu)
        gPwP = float(g[~mask] @ w64[~mask])
        pred_unc = -gPwP + 0.5 * uHu
        if k == 0:
            cg = CGResult(torch.zeros(0, dtype=torch.float64, device=w64.device), "zero_rhs", 0, 0, 0.0, 0.0, 0.0, 0.0,
                          0, math.inf)
            return self._finish(t0, cfg, mask, pruned, loss_pruned, loss_pruned, 0.0, pred_unc, pred_unc, cg, cost0,
                                fwd0, copy)
        # H_SS δ = −(g_S − H_SP w*_P) = (H u)_S − g_S  (u = w*_P embedded; H_SP w*_P = (H u)_S)
        b = Hu[S] - g[S]
        max_iter = cfg.cg_max_iter if cfg.cg_max_iter is not None else min(k, 200)
        cg = damped_cg(_Restricted(self.operator, S), b, rtol=cfg.cg_rtol, max_iter=max_iter,
                       max_attempts=cfg.damping_attempts, damping=self.damping)
        delta = cg.x
        # model value at d = (δ, −w*_P): gᵀd + ½dᵀHd = g_S·δ − g_P·w_P + ½(δᵀH_SSδ − 2δ·(Hu)_S + uᵀHu);
        # CG's model value is q(δ) = ½δᵀ(H_SS + λI)δ − b·δ = ½δᵀH_SSδ + ½λ‖δ‖² − (Hu)_S·δ + g_S·δ
        pred_comp = cg.model_value - 0.5 * cg.damping * float(delta @ delta) - gPwP + 0.5 * uHu
        step = torch.zeros_like(w64)
        step[S] = delta
        best_alpha, best_loss = 0.0, loss_pruned
        for alpha in LINE_SEARCH_STEPS if cfg.line_search else (1.0,):
            if alpha == 0.0:
                break
            val = self.loss(pruned + alpha * step)
            if val < best_loss or not cfg.line_search:
                best_alpha, best_loss = alpha, val
                if cfg.line_search and alpha == 1.0:
                    break  # the full step already improves on plain pruning
            elif best_alpha > 0.0:
                break  # past the best step size
        w_q = pruned + best_alpha * step
        return self._finish(t0, cfg, mask, w_q, loss_pruned, best_loss, best_alpha, pred_unc, pred_comp, cg, cost0,
                            fwd0, copy)

    def reoptimise(self, kept: int | float | Mapping[str, torch.Tensor] | torch.Tensor,
                   quadratic: CompensationResult, *, copy: bool = False) -> CompensationResult:
        """Continue ``quadratic`` — the result of ``self(kept, reoptimise=False)`` — with the masked
        re-optimisation: the outcome of ``self(kept, reoptimise=True)`` without repeating its CG solve and line
        search (both deterministic). Costs and seconds count both parts."""
        if quadratic.optimizer_evaluations or quadratic.kept_count != int(self.kept_mask(kept).sum()):
            raise ValueError("quadratic must be the quadratic-step-only result of the same kept set")
        t0 = time.perf_counter()
        mask = self.kept_mask(kept)
        cost0 = self.operator.cost()
        fwd0 = self.forward_passes
        w_q = quadratic.weights.to(device=self.w_star.device, dtype=torch.float64)
        r = self._finish(t0, self.config, mask, w_q, quadratic.loss_pruned,
                         quadratic.loss_quadratic_step, quadratic.step_size,
                         quadratic.predicted_increase_uncompensated, quadratic.predicted_increase_compensated,
                         quadratic.cg, cost0, fwd0, copy)
        return dataclasses.replace(r, hvps=r.hvps + quadratic.hvps, gradients=r.gradients + quadratic.gradients,
                                   forward_passes=r.forward_passes + quadratic.forward_passes,
                                   seconds=r.seconds + quadratic.seconds)

    def _finish(self, t0: float, cfg: CompensationConfig, mask: torch.Tensor, w_q: torch.Tensor, loss_pruned: float,
                loss_q: float, alpha: float, pred_unc: float, pred_comp: float, cg: CGResult,
                cost0: dict[str, int], fwd0: int, copy: bool) -> CompensationResult:
        w_final, loss_final, evals = w_q, loss_q, 0
        if cfg.steps > 0 and 0 < int(mask.sum()):
            w_final, loss_final, evals = self._reoptimise(w_q, mask, loss_q)
        w_final = torch.where(mask, w_final, torch.zeros_like(w_final))  # the mask, exactly
        cost1 = self.operator.cost()
        model = None
        if copy:
            self._set(w_final)
            model = copy_model(self.model)
            for p in model.parameters():
                p.requires_grad_(True)
        k = int(mask.sum())
        return CompensationResult(
            kept_count=k, kept_fraction=k / self.N, loss_dense=float(self.loss_dense), loss_pruned=loss_pruned,
            loss_quadratic_step=loss_q, loss_after=loss_final, predicted_increase_uncompensated=float(pred_unc),
            predicted_increase_compensated=float(pred_comp), step_size=float(alpha), cg=cg, optimizer=cfg.optimizer,
            optimizer_evaluations=evals, hvps=cost1["hvps"] - cost0["hvps"],
            gradients=(cost1["gradients"] - cost0["gradients"]) + evals,
            forward_passes=self.forward_passes - fwd0, seconds=time.perf_counter() - t0,
            weights=w_final.to(self.w_star.dtype), model=model)

    def _reoptimise(self, start: torch.Tensor, mask: torch.Tensor, start_loss: float) -> tuple[torch.Tensor, float, int]:
        """Masked full-batch optimisation of the true loss over the kept weights (module docstring, stage 2)."""
        cfg = self.config
        self._set(start)
        masks = [m.to(w.dtype) for m, w in zip(unflatten_like(mask, self._params), self._params)]
        for w in self._params:
            w.requires_grad_(True)
        evals = 0

        def closure() -> torch.Tensor:
            # L = Σ_b n_b ℓ_b / Σ_b n_b over the (all-reduced) batches; gradient masked to the kept weights
            nonlocal evals
            evals += 1
            for w in self._params:
                w.grad = None
            total = torch.zeros((), dtype=torch.float64, device=self.w_star.device)
            count = torch.zeros((), dtype=torch.float64, device=self.w_star.device)
            with eval_mode(self.model):
                for x, y in self.data:
                    val = self.loss_fn(self.model(x), y) * float(x.shape[0])
                    val.backward()
                    total += val.detach().to(torch.float64)
                    count += float(x.shape[0])
            if _distributed():
                for w in self._params:
                    torch.distributed.all_reduce(w.grad)
                torch.distributed.all_reduce(total)
                torch.distributed.all_reduce(count)
            for w, m in zip(self._params, masks):
                w.grad.mul_(m).div_(count.to(w.dtype))
            value = total / count
            if self.l1:  # the objective's ℓ1 term (pruned weights are exactly 0 and stay so)
                with torch.enable_grad():
                    pen = self.l1 * sum(w.abs().sum() for w in self._params)
                    pen.backward()
                for w, m in zip(self._params, masks):
                    w.grad.mul_(m)
                value = value + pen.detach().to(torch.float64)
            return value.to(self._params[0].dtype)

        try:
            if cfg.optimizer == "lbfgs":
                opt = torch.optim.LBFGS(self._params, lr=cfg.effective_lr, max_iter=cfg.steps, max_eval=cfg.steps,
                                        history_size=20, line_search_fn="strong_wolfe",
                                        tolerance_grad=1e-12, tolerance_change=1e-15)
                opt.step(closure)
            else:
                opt = torch.optim.Adam(self._params, lr=cfg.effective_lr)
                for _ in range(cfg.steps):
                    opt.zero_grad(set_to_none=True)
                    closure()
                    opt.step()
                    with torch.no_grad():
                        for w, m in zip(self._params, masks):
                            w.mul_(m)
        finally:
            for w in self._params:
                w.requires_grad_(False)
                w.grad = None
        cand = flatten([w.detach() for w in self._params]).to(torch.float64)
        if not bool(torch.isfinite(cand).all()):
            logger.warning("masked re-optimisation diverged (non-finite weights); keeping the quadratic step")
            return start, start_loss, evals
        val = self.loss(cand)
        if not (val <= start_loss):  # never worse than where it started (a diverging step, or NaN)
            return start, start_loss, evals
        return cand, val, evals


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def compensate(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | torch.Tensor | int | float,
    data: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss: LossFn | None = None,
    config: CompensationConfig | None = None,
    l1: float = 0.0,
) -> CompensationResult:
    """Prune ``model`` to ``masks`` and re-optimise the kept weights (module docstring).

    ``masks``: a :mod:`nets.prune` mask dict (True = kept), a flat bool vector, a kept count (int) or a kept
    fraction (float; global magnitude pruning). Returns a :class:`CompensationResult` whose ``model`` is the
    compensated copy (the caller's model is not changed; pruned weights exactly 0).

    >>> from nets.prune import global_magnitude_masks
    >>> m = nn.Linear(3, 2, bias=False)
    >>> x = torch.eye(3); y = torch.tensor([0, 1, 0])
    >>> res = compensate(m, global_magnitude_masks(m, 0.5), [(x, y)])
    >>> int((res.model.weight == 0).sum()), res.loss_after <= res.loss_pruned
    (3, True)
    """
    comp = Compensator(model, data, loss=loss, config=config, l1=l1)
    return comp(masks, copy=True)
