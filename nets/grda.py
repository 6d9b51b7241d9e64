r"""gRDA: generalized regularized dual averaging (Chao & Cheng 2019) as a ``torch.optim.Optimizer``.

gRDA prunes while it trains: it keeps the dual sum of all gradient steps and soft-thresholds it with a
threshold that grows like ``n^μ`` (MATH.md §4). With ``c = 0`` it is plain SGD.

Paper form [Chao & Cheng 2019, eq. (1.2); Chao, Wang, Xing & Cheng 2020, eq. (5)]:

.. math::
    w_{n+1} = \mathcal S_{g(n,\gamma)}\Big(w_0 - \gamma \sum_{i=0}^{n} \nabla f(w_i; Z_{i+1})\Big),\qquad
    g(n,\gamma) = c\,\gamma^{1/2}(n\gamma)^{\mu},\qquad \mathcal S_g(v) = \operatorname{sign}(v)\max(|v|-g, 0).

The authors' PyTorch code (the reference, MATH.md §4) differs from the paper in two documented ways, both
kept here by default (``convention="authors"``):

* the threshold is *accumulated* with the current learning rate,
  ``T_n = T_{n-1} + c\,\gamma_n^{\mu+1/2}(n^\mu - (n-1)^\mu)``, so an LR schedule changes only future
  increments (for a constant rate this telescopes to ``c γ^{μ+½} n^μ = g(n, γ)``);
* the first step already thresholds with ``n = 1`` (the paper's ``g(0, γ) = 0`` means no threshold on the
  first step). ``convention="paper"`` shifts the counter by one (``T_n`` uses ``n − 1``), which reproduces the
  paper's indexing exactly.

Our additions (not in the authors' code; each documented where it is implemented):

* **momentum (gRDAM)**, calibrated: the dual sum receives an exponential moving average
  ``b_n = β b_{n-1} + (1-β) d_n`` (``dampening = momentum``, the default), initialised with ``b_1 = d_1``.
  Its weights sum to exactly 1 at every step, so a constant gradient moves the dual sum at the same speed as
  plain gRDA and ``(c, μ)`` keep their meaning. The undamped buffer of ``torch.optim.SGD``
  (``dampening = 0``) multiplies the dual step by ``≈ 1/(1-β)`` while the threshold does not change, which
  silently weakens the ℓ1 pressure by that factor (MATH.md §4); it is available for comparison only.
* **weight decay**: coupled ℓ2, ``d_n = ∇f(w_n) + λ_{wd} w_n`` enters the dual sum like a gradient.
* ``threshold_params="weights"`` leaves 1-D parameters (biases, BatchNorm affine parameters) unthresholded
  (plain dual averaging = SGD on them); the authors threshold every trainable tensor (``"all"``).
* the threshold is kept in float64 (a Python float per parameter group) and uses the closed form
  ``c γ^{μ+½} n^μ`` while ``(γ, c, μ)`` have not changed; the authors accumulate it in a float32 tensor per
  parameter, whose rounding error grows like ``n·eps₃₂`` relative (6 % after 10⁶ steps).
* one step counter per parameter group: a parameter without a gradient is skipped (not touched, as in
  ``torch.optim``) without falling behind; when it next receives a gradient it is thresholded with the same
  ``T_n`` as the rest of its group. The authors keep a per-parameter CPU counter, so such a parameter's
  threshold lags behind forever.

The dual accumulator ``a`` is kept in the parameter dtype by default: it plays exactly the role the weights
play in SGD (a running sum of ``-γ d_n``), so it has the same rounding behaviour as SGD's own weights and
costs the same memory as an SGD momentum buffer. ``float64_accumulator=True`` keeps it in float64 (twice the
memory, one extra cast per step) for long float32 or any bfloat16/float16 runs, where the sum of many small
increments would otherwise stall.

Pseudo-code of :class:`GRDA` (one parameter group):

.. math::
   \begin{aligned}
   &\textbf{input}: \gamma_n \text{ (lr)},\ c,\ \mu,\ \beta \text{ (momentum)},\ \tau \text{ (dampening)},\
        \lambda_{wd},\ w_0\\
   &a_0 \leftarrow w_0,\quad T_0 \leftarrow 0\\
   &\textbf{for}\ n = 1, 2, \ldots\\
   &\quad d_n \leftarrow \nabla f(w_{n-1}) + \lambda_{wd} w_{n-1}\\
   &\quad \textbf{if}\ \beta \ne 0:\ b_n \leftarrow d_n \text{ if } n = 1 \text{ else } \beta b_{n-1} + (1-\tau) d_n;
        \quad d_n \leftarrow b_n\\
   &\quad a_n \leftarrow a_{n-1} - \gamma_n d_n\\
   &\quad k \leftarrow n \text{ (authors) or } n - 1 \text{ (paper)};\quad
        T_n \leftarrow T_{n-1} + c\,\gamma_n^{\mu+1/2}\,(k^\mu - (k-1)^\mu)\ \ (0 \text{ if } k \le 0)\\
   &\quad w_n \leftarrow \operatorname{sign}(a_n)\max(|a_n| - T_n, 0)\quad
        (w_n \leftarrow a_n \text{ for unthresholded parameters})\\
   &\textbf{return}\ w_n
   \end{aligned}

Example (closed form of the threshold; ``c = 1``, ``γ = 0.01``, ``μ = ½``, ``n = 4``: ``0.01¹·4^½ = 0.02``):

>>> round(threshold_closed_form(4, lr=0.01, c=1.0, mu=0.5), 12)
0.02
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = [
    "GRDA",
    "grda_update",
    "threshold_increment",
    "threshold_closed_form",
    "THRESHOLD_PARAMS",
    "CONVENTIONS",
]

#: values of ``threshold_params``: every tensor (the authors), or only tensors with ``ndim >= 2``.
THRESHOLD_PARAMS: tuple[str, ...] = ("all", "weights")
#: values of ``convention``: the authors' code (``n = 1`` already thresholds) or the paper (``g(0, γ) = 0``).
CONVENTIONS: tuple[str, ...] = ("authors", "paper")

# Group keys that hold the optimizer's own per-group state (saved with ``state_dict`` via param_groups).
_STEP, _THRESH, _CONST = "grda_step", "grda_threshold", "grda_constant"


# ----------------------------------------------------------------------------------------------------------
# Threshold schedule
# ----------------------------------------------------------------------------------------------------------
def _counter(n: int, convention: str) -> int:
    return n if convention == "authors" else n - 1


def threshold_increment(n: int, lr: float, c: float, mu: float, convention: str = "authors") -> float:
    r"""Threshold increment at step ``n`` (1-based): ``c·lr^{μ+½}·(k^μ − (k−1)^μ)``, ``k = n`` (authors) or
    ``n − 1`` (paper), 0 for ``k ≤ 0``. Computed as ``−k^μ·expm1(μ·log1p(−1/k))``, which has no
    cancellation for large ``k`` (the naive difference loses ``log10(k)`` digits).

    >>> threshold_increment(1, lr=0.25, c=2.0, mu=0.5)
    0.5
    """
    k = _counter(n, convention)
    if k <= 0 or c == 0.0:
        return 0.0
    diff = 1.0 if k == 1 else -(k**mu) * math.expm1(mu * math.log1p(-1.0 / k))
    return c * lr ** (mu + 0.5) * diff


def threshold_closed_form(n: int, lr: float, c: float, mu: float, convention: str = "authors") -> float:
    r"""Threshold after ``n`` steps at constant ``lr``: ``c·lr^{μ+½}·k^μ = g(k, lr)`` (MATH.md §4), the telescoped
    sum of :func:`threshold_increment`."""
    k = _counter(n, convention)
    if k <= 0:
        return 0.0
    return c * lr ** (mu + 0.5) * float(k) ** mu


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------
def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _validate_hparams(lr, c, mu, momentum, dampening, weight_decay, threshold_params, convention) -> None:
    if _real("lr", lr) < 0.0:
        raise ValueError(f"lr must be >= 0, got {lr}")
    if _real("c", c) < 0.0:
        raise ValueError(f"c must be >= 0, got {c}")
    if _real("mu", mu) <= 0.0:
        raise ValueError(f"mu must be > 0, got {mu}")
    m = _real("momentum", momentum)
    if not 0.0 <= m < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if dampening is not None:
        d = _real("dampening", dampening)
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"dampening must be in [0, 1], got {dampening}")
    if _real("weight_decay", weight_decay) < 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if threshold_params not in THRESHOLD_PARAMS:
        raise ValueError(f"threshold_params must be one of {THRESHOLD_PARAMS}, got {threshold_params!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _warn_mu(mu: float) -> None:
    if not 0.5 < mu < 1.0:
        warnings.warn(
            f"mu={mu} is outside (0.5, 1), the range in which gRDA's convergence and directional-pruning results "
            "hold (Chao & Cheng 2019; the authors use 0.501-0.65 and mu = 0.4 only as a contrast); proceeding",
            UserWarning,
            stacklevel=3,
        )


# ----------------------------------------------------------------------------------------------------------
# Functional core
# ----------------------------------------------------------------------------------------------------------
def grda_update(
    params: list[Tensor],
    grads: list[Tensor],
    accumulators: list[Tensor],
    momentum_buffers: list[Tensor | None] | None = None,
    *,
    lr: float,
    threshold: float,
    momentum: float = 0.0,
    dampening: float | None = None,
    weight_decay: float = 0.0,
    thresholded: Sequence[bool] | None = None,
    foreach: bool | None = None,
) -> None:
    r"""One gRDA step over tensor lists, in place (see the module docstring for the mathematics).

    ``a ← a − lr·d`` with ``d = grad + weight_decay·param``, optionally through the momentum buffer
    ``b ← β b + (1 − dampening) d`` (``b = d`` on first use; ``dampening=None`` means ``dampening = β``, the
    calibrated EMA); then ``param ← S_threshold(a)`` where ``thresholded[i]`` (default all) else ``param ← a``.
    ``momentum_buffers`` entries that are ``None`` are created and stored back into the list (as
    ``torch.optim.sgd`` does). ``threshold`` is the cumulative threshold ``T_n`` (see
    :func:`threshold_closed_form`), not the increment.

    ``foreach=True`` uses ``torch._foreach_*`` kernels for the dual/momentum updates and one fused
    ``softshrink`` kernel per tensor for the threshold (PyTorch has no foreach soft-threshold); ``False`` is the
    literal reference path ``sign(a)·max(|a| − T, 0)`` per tensor. Both give bit-identical results.

    >>> p = torch.tensor([1.0, -0.2]); a = p.clone()
    >>> grda_update([p], [torch.tensor([0.5, 0.5])], [a], lr=0.2, threshold=0.5)
    >>> p.tolist(), a.tolist()
    ([0.3999999761581421, -0.0], [0.8999999761581421, -0.30000001192092896])
    """
    n = len(params)
    if len(grads) != n or len(accumulators) != n:
        raise ValueError(
            f"params, grads and accumulators must have equal lengths, got {n}, {len(grads)}, {len(accumulators)}"
        )
    if momentum_buffers is not None and len(momentum_buffers) != n:
        raise ValueError(f"momentum_buffers has length {len(momentum_buffers)}, expected {n}")
    if thresholded is None:
        thresholded = [True] * n
    elif len(thresholded) != n:
        raise ValueError(f"thresholded has length {len(thresholded)}, expected {n}")
    _validate_hparams(lr, 0.0, 1.0, momentum, dampening, weight_decay, "all", "authors")
    if _real("threshold", threshold) < 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if momentum != 0.0 and momentum_buffers is None:
        raise ValueError("momentum_buffers must be given when momentum != 0")
    for i, (p, g, a) in enumerate(zip(params, grads, accumulators)):
        if p.shape != g.shape or p.shape != a.shape:
            raise ValueError(
                f"shape mismatch at index {i}: param {tuple(p.shape)}, grad {tuple(g.shape)}, "
                f"accumulator {tuple(a.shape)}"
            )
        if p.is_complex() or not p.is_floating_point():
            raise TypeError(f"gRDA needs real floating-point parameters, got dtype {p.dtype} at index {i}")
        if g.is_sparse:
            raise TypeError(f"gRDA does not support sparse gradients (index {i})")
    _grda_update_unchecked(params, grads, accumulators, momentum_buffers, lr=lr, threshold=threshold,
                           momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           thresholded=thresholded, foreach=foreach)


def _grda_update_unchecked(params, grads, accumulators, momentum_buffers, *, lr, threshold, momentum, dampening,
                           weight_decay, thresholded, foreach) -> None:
    """:func:`grda_update` without its checks (the optimiser's hot path; :meth:`GRDA.step` validated the group)."""
    if not params:
        return
    damp = momentum if dampening is None else float(dampening)
    fn = _multi_tensor_grda if foreach is None or foreach else _single_tensor_grda
    fn(params, grads, accumulators, momentum_buffers, lr, float(threshold), momentum, damp, weight_decay,
       list(thresholded))


def _single_tensor_grda(params, grads, accs, bufs, lr, T, momentum, damp, wd, thr) -> None:
    for i, (p, g, a) in enumerate(zip(params, grads, accs)):
        d = g if wd == 0.0 else g.add(p, alpha=wd)
        if d.dtype != a.dtype:
            d = d.to(a.dtype)
        if momentum != 0.0:
            buf = bufs[i]
            if buf is None:
                buf = torch.clone(d).detach()
                bufs[i] = buf
            elif damp == momentum:
                buf.lerp_(d, 1.0 - momentum)  # = β b + (1-β) d, the same kernel as the foreach path
            else:
                buf.mul_(momentum).add_(d, alpha=1.0 - damp)
            d = buf
        a.add_(d, alpha=-lr)
        if thr[i]:
            p.copy_(torch.sign(a) * torch.clamp_min(torch.abs(a) - T, 0.0))
        else:
            p.copy_(a)


def _multi_tensor_grda(params, grads, accs, bufs, lr, T, momentum, damp, wd, thr) -> None:
    # Tensors are grouped by (device, accumulator dtype) so that every foreach call sees uniform lists.
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, (p, a) in enumerate(zip(params, accs)):
        groups.setdefault((p.device, a.dtype), []).append(i)
    for (_, adtype), idx in groups.items():
        P = [params[i] for i in idx]
        A = [accs[i] for i in idx]
        D = [grads[i] for i in idx]
        if wd != 0.0:
            D = torch._foreach_add(D, P, alpha=wd)
        if any(d.dtype != adtype for d in D):
            D = [d.to(adtype) for d in D]
        if momentum != 0.0:
            new = [j for j, i in enumerate(idx) if bufs[i] is None]
            for j in new:
                bufs[idx[j]] = torch.clone(D[j]).detach()
            fresh = set(new)
            old = [j for j in range(len(idx)) if j not in fresh]
            if old:
                B = [bufs[idx[j]] for j in old]
                Dold = [D[j] for j in old]
                if damp == momentum:
                    # b + (1-β)(d - b) = β b + (1-β) d: one fused pass for the calibrated EMA
                    torch._foreach_lerp_(B, Dold, 1.0 - momentum)
                else:
                    torch._foreach_mul_(B, momentum)
                    torch._foreach_add_(B, Dold, alpha=1.0 - damp)
            D = [bufs[i] for i in idx]
        torch._foreach_add_(A, D, alpha=-lr)
        for i, p, a in zip(idx, P, A):
            if not thr[i]:
                p.copy_(a)
            elif a.dtype == p.dtype:
                # softshrink: a - T if a > T, a + T if a < -T, else 0 -- the same IEEE operations as
                # sign(a)·max(|a| - T, 0), so the two paths agree bit for bit.
                torch._C._nn.softshrink(a, T, out=p)
            else:
                p.copy_(torch._C._nn.softshrink(a, T))


# ----------------------------------------------------------------------------------------------------------
# Optimizer shell
# ----------------------------------------------------------------------------------------------------------
class GRDA(Optimizer):
    r"""gRDA (Chao & Cheng 2019) with the authors' PyTorch semantics by default; gRDAM and weight decay ours.

    See the module docstring for the update (LaTeX pseudo-code), the conventions and the deviations.

    Args:
        params: iterable of parameters or of param-group dicts (each group may override every option below).
        lr: learning rate ``γ``; may be changed by an LR scheduler between steps: the threshold increment of
            each step uses that step's rate (authors' semantics).
        c: threshold scale, ``c ≥ 0`` (``c = 0`` is SGD exactly). The authors use 0.0005-0.005 on CIFAR /
            ImageNet networks (EXPERIMENTS.md).
        mu: threshold growth exponent ``μ > 0``; ``(0.5, 1)`` is the range of the theory (0.501-0.65 in the
            authors' runs). Values outside warn (the authors run ``μ = 0.4`` as a contrast) but proceed.
        momentum: ``β ∈ [0, 1)`` (gRDAM, ours). Default 0 as in the authors' experiments.
        dampening: ``τ ∈ [0, 1]``; ``None`` (default) means ``τ = β``, the calibrated EMA whose weights sum to
            one. ``τ = 0`` is ``torch.optim.SGD``'s undamped buffer (uncalibrated; for comparison only).
        weight_decay: coupled ℓ2 coefficient, added to the gradient before the dual sum. Default 0 (authors).
        threshold_params: ``"all"`` (authors: every tensor) or ``"weights"`` (leave 1-D tensors, i.e. biases and
            normalisation parameters, unthresholded).
        convention: ``"authors"`` (first step thresholds with ``n = 1``) or ``"paper"`` (``g(0, γ) = 0``).
        foreach: ``True``/``None`` for the foreach fast path, ``False`` for the per-tensor reference path.
        float64_accumulator: keep the dual sums in float64 (see module docstring). Default False.

    Example: with ``c = 0`` one step is an SGD step.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = GRDA([w], lr=0.5, c=0.0, mu=0.6)
    >>> w.grad = torch.tensor([1.0, 1.0]); opt.step()
    >>> w.tolist()
    [0.5, -2.5]
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        c: float,
        mu: float,
        *,
        momentum: float = 0.0,
        dampening: float | None = None,
        weight_decay: float = 0.0,
        threshold_params: str = "all",
        convention: str = "authors",
        foreach: bool | None = None,
        float64_accumulator: bool = False,
    ) -> None:
        _validate_hparams(lr, c, mu, momentum, dampening, weight_decay, threshold_params, convention)
        if foreach is not None and not isinstance(foreach, bool):
            raise TypeError(f"foreach must be a bool or None, got {type(foreach).__name__}")
        if not isinstance(float64_accumulator, bool):
            raise TypeError(f"float64_accumulator must be a bool, got {type(float64_accumulator).__name__}")
        _warn_mu(float(mu))
        defaults = dict(
            lr=float(lr),
            c=float(c),
            mu=float(mu),
            momentum=float(momentum),
            dampening=None if dampening is None else float(dampening),
            weight_decay=float(weight_decay),
            threshold_params=threshold_params,
            convention=convention,
            foreach=foreach,
            float64_accumulator=float64_accumulator,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        g = self.param_groups[-1]
        _validate_hparams(g["lr"], g["c"], g["mu"], g["momentum"], g["dampening"], g["weight_decay"],
                          g["threshold_params"], g["convention"])
        if g["mu"] != self.defaults["mu"]:
            _warn_mu(g["mu"])
        for p in g["params"]:
            if p.is_complex() or not p.is_floating_point():
                raise TypeError(f"gRDA needs real floating-point parameters, got dtype {p.dtype}")
        g.setdefault(_STEP, 0)
        g.setdefault(_THRESH, 0.0)
        g.setdefault(_CONST, None)

    # -- threshold bookkeeping ------------------------------------------------------------------------------
    @staticmethod
    def _advance_threshold(group: dict[str, Any]) -> float:
        n = group[_STEP] + 1
        lr, c, mu, conv = group["lr"], group["c"], group["mu"], group["convention"]
        key = [lr, c, mu]
        if n == 1 or group[_CONST] == key:
            # (γ, c, μ) constant since step 1: closed form, no accumulated rounding.
            T, const = threshold_closed_form(n, lr, c, mu, conv), key
        else:
            T, const = group[_THRESH] + threshold_increment(n, lr, c, mu, conv), None
        group[_STEP], group[_THRESH], group[_CONST] = n, T, const
        return T

    def threshold(self, group_index: int = 0) -> float:
        """Current cumulative threshold ``T_n`` of a parameter group (0 before the first step)."""
        if not 0 <= group_index < len(self.param_groups):
            raise ValueError(f"group_index must be in [0, {len(self.param_groups)}), got {group_index}")
        return float(self.param_groups[group_index][_THRESH])

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One gRDA step for every parameter group; returns ``closure()``'s loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _validate_hparams(group["lr"], group["c"], group["mu"], group["momentum"], group["dampening"],
                              group["weight_decay"], group["threshold_params"], group["convention"])
            T = self._advance_threshold(group)
            params, grads, accs, bufs, thr = [], [], [], [], []
            use_mom = group["momentum"] != 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue  # skipped; the group counter still advances (see module docstring)
                if p.grad.is_sparse:
                    raise TypeError("gRDA does not support sparse gradients")
                st = self.state[p]
                if "accumulator" not in st:
                    dt = torch.float64 if group["float64_accumulator"] else p.dtype
                    st["accumulator"] = p.detach().clone(memory_format=torch.preserve_format).to(dt)
                params.append(p)
                grads.append(p.grad)
                accs.append(st["accumulator"])
                bufs.append(st.get("momentum_buffer"))
                thr.append(group["threshold_params"] == "all" or p.ndim >= 2)
            # the group was validated above and every tensor here is a dense floating-point gradient of its
            # parameter: skip grda_update's per-step re-validation
            _grda_update_unchecked(
                params, grads, accs, bufs if use_mom else None,
                lr=group["lr"], threshold=T, momentum=group["momentum"], dampening=group["dampening"],
                weight_decay=group["weight_decay"], thresholded=thr, foreach=group["foreach"],
            )
            if use_mom:
                for p, b in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = b
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``, but float64 state (``float64_accumulator=True``) is restored without
        being cast to the parameter dtype (the base class casts all floating state to the parameter's dtype)."""
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        keep = {}
        for pid, st in state_dict["state"].items():
            for key, val in st.items():
                if isinstance(val, Tensor) and val.dtype == torch.float64:
                    keep[(pid, key)] = val
        super().load_state_dict(state_dict)
        if keep:
            params = [p for g in self.param_groups for p in g["params"]]
            id_to_param = dict(zip(saved_ids, params))
            for (pid, key), val in keep.items():
                p = id_to_param[pid]
                self.state[p][key] = val.detach().clone().to(device=p.device)
