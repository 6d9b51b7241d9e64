"""Stochastic Lanczos quadrature (SLQ): the :class:`SLQResult` it returns, with the :class:`Spectrum`.

A :class:`~theory.spectrum.Spectrum` (defined in :mod:`theory.spectrum`, whose docstring states the
quadrature) is a set of Gauss quadrature rules, one per probe, approximating the normalised spectral measure
of a symmetric operator.

:func:`slq` builds one from ``n_probes`` Lanczos recurrences advanced together
(:func:`numerics.lanczos.lanczos`) and returns it inside an :class:`SLQResult` that also carries what the run
did (steps per probe, breakdowns, orthogonality loss, products, the operator's own cost counters and the
Hessian-vector-product path it took); :func:`slq_deflated` computes the top-k eigenpairs exactly and runs SLQ
on the rest, for functionals that are sharp near the outliers. Accuracy (docs/math.md §3, Chen, Trogdon & Ubaru
2021, main theorem [literature]): ``m = ⌈12/t + ½⌉`` steps and ``n_v = ⌈4 (n+2)⁻¹ t⁻² ln(2n/η)⌉`` Gaussian probes
give ``W₁(Spectrum, μ_A) ≤ t (λ_max − λ_min)`` with probability ``1 − η``, so ``|(1/n) tr f − expect(f)| ≤ L t
(λ_max − λ_min)`` for L-Lipschitz ``f`` (:func:`theory.spectrum.ctu_parameters`).

Defaults (measured in ``bench/spectrum.py``; the mathematics in :mod:`numerics.lanczos`): no
reorthogonalisation and the operator's own precision (``reorth="none"``, ``accumulate_dtype=None``), so a run
keeps ``O(n_probes · n)`` numbers whatever ``steps`` (:func:`numerics.lanczos.basis_bytes`) and its work beside
the products is a few passes over the probe block per step. The Gauss rules of unreorthogonalised Lanczos
remain quadratures for (a tiny perturbation of) the spectral measure (Greenbaum 1989; Knizhnerman 1996): ghost
copies of converged outliers share the outlier's weight instead of adding to it, but they use up nodes, so at
equal steps the rule is coarser (n = 10⁴ network Hessian, 128 × 4: W1 to the exact spectrum 4.1e-4 of the
range against 3.2e-4 with reorthogonalisation; ~200 steps close the gap). ``reorth="partial"`` (Simon's partial
reorthogonalisation) or ``"full"`` store the basis (``n_probes · steps · n`` numbers) and cost
``O(n_probes · steps² · n)`` memory traffic: the choice on small models, and whenever nodes must be counted as
eigenvalues (e.g. ``steps = n`` recovering the spectrum exactly); ``memory_budget`` makes them fall back to
``"none"`` (with a warning in the result) when the basis does not fit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from theory.spectrum import Spectrum
from theory.validation import check_choice, check_int, check_torch_generator

__all__ = ["SLQResult", "slq", "slq_deflated"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SLQResult:
    """What :func:`slq` computed and what it cost.

    Attributes
    ----------
    spectrum:
        The quadrature rules (:class:`theory.spectrum.Spectrum`).
    steps, n_probes:
        The requested Lanczos steps per probe and number of probes.
    steps_per_probe:
        ``(n_probes,)`` the size of each recurrence's tridiagonal (smaller than ``steps`` after a breakdown).
    breakdowns:
        ``(n_probes,)`` bool: the recurrence found an invariant subspace (its rule is exact for its probe).
    orthogonality_loss:
        ``(n_probes,)`` ``max|QᵀQ − I|`` of each basis, or None when no basis was kept.
    reorth:
        The reorthogonalisation used (``"none"``, ``"partial"`` or ``"full"``; ``"none"`` after a
        ``memory_budget`` fallback).
    reorthogonalisations:
        ``(n_probes,)`` steps at which each recurrence was reorthogonalised (None without a stored basis).
    basis_dtype:
        dtype of the Lanczos vectors (``"torch.float64"``, ...).
    lanczos_bytes:
        Memory of the Lanczos vectors of the mode used (:func:`numerics.lanczos.basis_bytes`; with deflation
        plus the eigensolver's basis), the operator's own memory not included.
    warnings:
        Messages about the run that a reader of the result must see (e.g. the ``memory_budget`` fallback).
    deflated:
        Number of eigenpairs computed exactly first (0: none); ``deflation_residuals`` their residual norms.
    matvecs, operator_calls:
        Operator–vector products and ``matmat`` calls of the whole run (deflation included).
    operator_cost:
        The operator's own cost counters accumulated during the run (``cost()`` after minus before; e.g. HVPs,
        data passes, gradients of a :class:`nets.hessian.HessianOperator`), or None when it has none.
    hvp_path:
        The product path the operator reports (its ``hvp_path`` attribute, e.g. ``"cached double-backward"``),
        or None.
    seconds:
        Wall time of the run.
    """

    spectrum: Spectrum
    steps: int
    n_probes: int
    steps_per_probe: np.ndarray
    breakdowns: np.ndarray
    orthogonality_loss: np.ndarray | None
    reorth: str
    basis_dtype: str
    matvecs: int
    operator_calls: int
    deflated: int = 0
    deflation_residuals: np.ndarray | None = None
    operator_cost: dict[str, int] | None = None
    hvp_path: str | None = None
    seconds: float = 0.0
    lanczos_bytes: int | None = None
    warnings: tuple[str, ...] = ()
    reorthogonalisations: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The diagnostics as a JSON-ready dict (the spectrum itself under ``"spectrum"``)."""
        return {
            "spectrum": self.spectrum.to_dict(),
            "steps": self.steps,
            "n_probes": self.n_probes,
            "steps_per_probe": self.steps_per_probe.tolist(),
            "breakdowns": self.breakdowns.tolist(),
            "orthogonality_loss": None if self.orthogonality_loss is None else self.orthogonality_loss.tolist(),
            "reorth": self.reorth,
            "basis_dtype": self.basis_dtype,
            "deflated": self.deflated,
            "deflation_residuals": None if self.deflation_residuals is None else self.deflation_residuals.tolist(),
            "matvecs": self.matvecs,
            "operator_calls": self.operator_calls,
            "operator_cost": self.operator_cost,
            "hvp_path": self.hvp_path,
            "seconds": self.seconds,
            "lanczos_bytes": self.lanczos_bytes,
            "warnings": list(self.warnings),
            "reorthogonalisations": None if self.reorthogonalisations is None else self.reorthogonalisations.tolist(),
            **self.extra,
        }


def _cost(op: Any) -> dict[str, int] | None:
    cost = getattr(op, "cost", None)
    return dict(cost()) if callable(cost) else None


def _cost_delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {k: int(after[k]) - int(before.get(k, 0)) for k in after}


def _operator_extra(op: Any) -> dict[str, Any]:
    """What the operator reports about the product path it chose (e.g. the measured choice of
    :class:`nets.hessian.HessianOperator` with ``hvp_method="auto"``), under ``"hvp_choice"``."""
    choice = getattr(op, "hvp_choice", None)
    return {"hvp_choice": dict(choice)} if choice else {}


def _plan_memory(
    n: int, steps: int, n_probes: int, reorth: str, acc: torch.dtype, op_dtype: torch.dtype,
    memory_budget: int | None, extra_bytes: int = 0,
) -> tuple[str, int, tuple[str, ...]]:
    """The reorthogonalisation to run under ``memory_budget``: ``(reorth, bytes, warnings)``.

    ``"full"`` whose basis does not fit falls back to the basis-free ``"none"`` (with a warning); a basis-free
    run that does not fit is refused before any product (fewer probes is then the only remedy)."""
    from numerics.lanczos import basis_bytes

    need = basis_bytes(n, steps=steps, n_probes=n_probes, reorth=reorth, dtype=acc, operator_dtype=op_dtype)
    need += extra_bytes
    if memory_budget is None or need <= memory_budget:
        return reorth, need, ()
    lean = basis_bytes(n, steps=steps, n_probes=n_probes, reorth="none", dtype=acc, operator_dtype=op_dtype)
    lean += extra_bytes
    if lean > memory_budget:
        raise ValueError(
            f"memory_budget must cover the Lanczos vectors, {lean} bytes for n_probes={n_probes} on n={n} in "
            f"{acc} without a stored basis, got memory_budget={memory_budget}; use fewer probes per run"
        )
    msg = (
        f"reorth={reorth!r} needs {need} bytes for the Lanczos basis (n_probes={n_probes} x steps={steps} x n={n} in "
        f"{acc}), more than memory_budget={memory_budget}: ran reorth='none' ({lean} bytes; the spectral measure "
        "is as accurate, but nodes may include ghost copies of converged eigenvalues, so do not count them)"
    )
    logger.warning("slq: %s", msg)
    return "none", lean, (msg,)


def slq(
    op: Any,
    *,
    steps: int,
    n_probes: int,
    generator: torch.Generator,
    probe: str = "rademacher",
    reorth: str = "none",
    accumulate_dtype: torch.dtype | None = None,
    deflate: int | None = None,
    memory_budget: int | None = None,
) -> SLQResult:
    """Stochastic Lanczos quadrature of a symmetric (possibly indefinite) operator.

    Runs ``n_probes`` Lanczos recurrences of ``steps`` steps advanced together (one ``matmat`` of
    ``n_probes`` columns per step; :func:`numerics.lanczos.lanczos`) from normalised Rademacher or Gaussian
    probes drawn with ``generator``, and returns their Gauss rules: nodes ``θ`` = eigenvalues of each ``T``,
    weights ``τ = (e₁ᵀy)²`` (Ubaru, Chen & Saad 2017, SIMAX 38(4), Alg. 1; docs/math.md §3). ``(1/n) tr f(A) ≈
    expect(f)`` is exact for polynomials of degree ≤ 2·steps − 1 per probe, and ``steps = n`` with
    ``reorth="full"`` recovers the spectrum. Cost: ``steps · n_probes`` matvecs in ``steps`` operator calls
    (``deflate`` adds the eigensolver's). A recurrence that finds an invariant subspace stops early, with an
    exact rule.

    Parameters
    ----------
    reorth:
        ``"none"`` (default: basis-free, ``O(n_probes · n)`` memory), ``"partial"`` or ``"full"`` (stored basis,
        semi-orthogonal or orthogonal: nodes are Ritz values, no ghosts); module docstring.
    accumulate_dtype:
        dtype of the Lanczos vectors; ``None`` (default): the operator's.
    deflate:
        ``k``: delegate to :func:`slq_deflated` (exact top-k eigenpairs by magnitude + SLQ on the rest).
    memory_budget:
        Bytes allowed for the Lanczos vectors (:func:`numerics.lanczos.basis_bytes`; the operator's own memory
        is the operator's business, e.g. :meth:`nets.hessian.HessianOperator.estimate_memory`). ``"partial"`` or
        ``"full"`` that does not fit runs ``"none"`` instead, with a warning in :attr:`SLQResult.warnings`; a basis-free run
        that does not fit raises ``ValueError`` before any product. ``None`` (default): no limit.

    >>> from numerics.operators import DiagonalOperator
    >>> d = np.array([-2.0, -1.0, 0.5, 3.0])
    >>> res = slq(DiagonalOperator(d), steps=4, n_probes=2, generator=torch.Generator().manual_seed(0))
    >>> s = res.spectrum
    >>> np.allclose(np.sort(s.nodes[0]), d, atol=1e-12), round(s.expect(lambda x: x**3)[0], 10), res.matvecs
    (True, 4.53125, 8)
    """
    from numerics.lanczos import _check_dtype, lanczos, REORTH_MODES
    from numerics.operators import aslinearoperator

    check_torch_generator("generator", generator)
    if deflate is not None:
        return slq_deflated(op, deflate=deflate, steps=steps, n_probes=n_probes, generator=generator, probe=probe,
                            reorth=reorth, accumulate_dtype=accumulate_dtype, memory_budget=memory_budget)
    t0 = time.perf_counter()
    lop = aslinearoperator(op)
    n = lop.shape[0]
    steps = check_int("steps", steps, minimum=1, maximum=n)
    n_probes = check_int("n_probes", n_probes, minimum=1)
    check_choice("reorth", reorth, REORTH_MODES)
    acc = _check_dtype("accumulate_dtype", accumulate_dtype, allow_none=True) or lop.dtype
    if memory_budget is not None:
        memory_budget = check_int("memory_budget", memory_budget, minimum=0)
    used, nbytes, warns = _plan_memory(n, steps, n_probes, reorth, acc, lop.dtype, memory_budget)
    before = _cost(op)
    res = lanczos(lop, n_probes=n_probes, steps=steps, reorth=used, accumulate_dtype=acc, generator=generator,
                  probe=probe)
    out = SLQResult(
        spectrum=Spectrum.from_lanczos(res),
        steps=steps,
        n_probes=res.n_probes,
        steps_per_probe=res.steps.copy(),
        breakdowns=res.breakdown.copy(),
        orthogonality_loss=None if res.orthogonality_loss is None else res.orthogonality_loss.copy(),
        reorth=used,
        basis_dtype=str(acc),
        matvecs=res.matvecs,
        operator_calls=res.operator_calls,
        operator_cost=_cost_delta(before, _cost(op)),
        hvp_path=getattr(op, "hvp_path", None),
        seconds=time.perf_counter() - t0,
        lanczos_bytes=nbytes,
        warnings=warns,
        reorthogonalisations=None if used == "none" else res.reorthogonalisations.copy(),
        extra=_operator_extra(op),
    )
    logger.info(
        "slq: n=%d, %d probes x %d steps (reorth=%s, %s), %d matvecs in %d operator calls, breakdowns %d, "
        "orthogonality loss %s, %.2f s",
        n, out.n_probes, steps, used, acc, out.matvecs, out.operator_calls, int(out.breakdowns.sum()),
        None if out.orthogonality_loss is None else float(out.orthogonality_loss.max()), out.seconds,
    )
    return out


def slq_deflated(
    op: Any,
    *,
    deflate: int,
    steps: int,
    n_probes: int,
    generator: torch.Generator,
    probe: str = "rademacher",
    reorth: str = "none",
    accumulate_dtype: torch.dtype | None = None,
    which: str = "LM",
    eig_tol: float | None = None,
    memory_budget: int | None = None,
) -> SLQResult:
    """Top-k deflated SLQ: ``k`` extreme eigenpairs computed to residual tolerance, SLQ on the rest.

    For functionals that are sharp relative to the spectral range (docs/math.md §3 "Pitfalls"), a few outliers
    (large Hessian eigenvalues) would otherwise take most of the Krylov budget. Let ``(θ_i, u_i)``, ``i ≤ k``,
    be Ritz pairs from :func:`numerics.eigs.eigs` (``which``, default largest magnitude), ``U = [u_i]``,
    ``P = I − UUᵀ``. SLQ is run on ``P A P`` with probes ``P z`` (normalised), so every Krylov vector lies in
    ``range(P)``; each probe's rule ``(ϑ_{l,j}, τ_{l,j})`` then approximates the normalised spectral measure of
    the compression ``A|_{range P}`` (dimension ``n − k``). The combined rule per probe is

        nodes ``(θ_1, …, θ_k, ϑ_{l,1}, …, ϑ_{l,m})``,  weights ``(1/n, …, 1/n, ((n−k)/n) τ_{l,1}, …)``,

    which sums to 1, so ``expect(f) = (1/n) Σ_{i≤k} f(θ_i) + ((n−k)/n) · SLQ_rest(f)`` and the standard error
    comes from the rest only. Accuracy: with residual block ``R = AU − UΘ`` (``UᵀR = 0`` for Ritz pairs), ``A``
    equals ``diag(Θ, A|_{range P})`` plus a coupling of norm ``‖R‖₂``, so by Weyl's inequality the combined
    measure is within ``W₁ ≤ ‖R‖₂ ≤ ‖R‖_F`` of the true one before the SLQ error (our construction; it follows
    the deflation idea of Lin, Saad & Yang 2016 and Ghorbani, Krishnan & Xiao 2019, App. C).
    Cost: the eigensolver's matvecs plus ``steps · n_probes``. ``reorth``, ``accumulate_dtype`` and
    ``memory_budget`` as in :func:`slq` (the budget also covers the eigensolver's basis ``V`` and ``AV``,
    ``2 · max_basis · n`` numbers, and the ``k`` eigenvectors).

    >>> from numerics.operators import DiagonalOperator
    >>> d = np.concatenate([np.linspace(0.0, 1.0, 20), [50.0, -40.0]])
    >>> s = slq_deflated(DiagonalOperator(d), deflate=2, steps=20, n_probes=2,
    ...                  generator=torch.Generator().manual_seed(0)).spectrum
    >>> bool(abs(s.expect(lambda x: x)[0] - d.mean()) < 1e-12), sorted(s.nodes[0, :2].round(10).tolist())
    (True, [-40.0, 50.0])
    """
    from numerics.eigs import eigs
    from numerics.lanczos import REORTH_MODES, _check_dtype, draw_probes, lanczos
    from numerics.operators import LinearOperator, aslinearoperator

    check_torch_generator("generator", generator)
    t0 = time.perf_counter()
    outer = op
    op = aslinearoperator(op)
    if op.shape[0] != op.shape[1] or not op.symmetric:
        raise ValueError(f"slq_deflated needs a square operator declared symmetric, got {op!r}")
    n = op.shape[0]
    k = check_int("deflate", deflate, minimum=1, maximum=n - 1)
    steps = check_int("steps", steps, minimum=1, maximum=n - k)
    n_probes = check_int("n_probes", n_probes, minimum=1)
    check_choice("reorth", reorth, REORTH_MODES)
    acc = _check_dtype("accumulate_dtype", accumulate_dtype, allow_none=True) or op.dtype
    if memory_budget is not None:
        memory_budget = check_int("memory_budget", memory_budget, minimum=0)
    eig_basis = min(n, max(4 * k, 2 * k + 20))  # eigs' default max_basis with block_size = k
    extra = (2 * eig_basis + k) * n * (torch.finfo(acc).bits // 8)
    reorth, nbytes, warns = _plan_memory(n, steps, n_probes, reorth, acc, op.dtype, memory_budget, extra)
    before = _cost(outer)
    top = eigs(op, k, which=which, generator=generator, tol=eig_tol, accumulate_dtype=acc)
    if not top.converged.all():
        logger.warning("slq_deflated: eigenpairs not converged (residuals %s); W1 error up to ‖R‖", top.residuals)
    U = top.eigenvectors  # (n, k), orthonormal, accumulation dtype

    class _Projected(LinearOperator):
        """``P A P`` with ``P = I − UUᵀ`` (projections applied in the accumulation dtype)."""

        def _matmat(self, V: torch.Tensor) -> torch.Tensor:
            W = V.to(U.dtype)
            W = W - U @ (U.T @ W)
            W = op.matmat(W.to(op.dtype)).to(U.dtype)
            W = W - U @ (U.T @ W)
            return W.to(self.dtype)

    # Declared in op's dtype, not U's: lanczos's default breakdown tolerance scales with eps(proj.dtype), and
    # the products are only as accurate as op's (with U's float64 a float32 operator's invariant subspaces would
    # go undetected); the blocks' f64->f32->f64 round trip costs two casts per step.
    proj = _Projected(op.shape, op.dtype, op.device, True)
    Z = draw_probes(n, int(n_probes), generator=generator, probe=probe, dtype=U.dtype, device=op.device)
    for _ in range(2):  # project twice so the probes are in range(P) to working precision
        Z = Z - U @ (U.T @ Z)
    res = lanczos(proj, V0=Z, steps=int(steps), reorth=reorth, accumulate_dtype=acc)
    nodes_r, weights_r = res.quadrature()
    nv = nodes_r.shape[0]
    nodes = np.concatenate([np.broadcast_to(top.eigenvalues, (nv, k)), nodes_r], axis=1)
    weights = np.concatenate([np.full((nv, k), 1.0 / n), weights_r * ((n - k) / n)], axis=1)
    logger.info(
        "slq_deflated: k=%d (max residual %.2e, %d matvecs) + %d probes x %d steps (%d matvecs)",
        k, float(top.residuals.max()), top.matvecs, nv, steps, res.matvecs,
    )
    return SLQResult(
        spectrum=Spectrum(nodes, weights, n),
        steps=steps,
        n_probes=nv,
        steps_per_probe=res.steps.copy(),
        breakdowns=res.breakdown.copy(),
        orthogonality_loss=None if res.orthogonality_loss is None else res.orthogonality_loss.copy(),
        reorth=reorth,
        basis_dtype=str(acc),
        matvecs=res.matvecs + int(top.matvecs),
        operator_calls=res.operator_calls + int(getattr(top, "operator_calls", 0)),
        deflated=k,
        deflation_residuals=np.asarray(top.residuals, dtype=np.float64).copy(),
        operator_cost=_cost_delta(before, _cost(outer)),
        hvp_path=getattr(outer, "hvp_path", None),
        seconds=time.perf_counter() - t0,
        lanczos_bytes=nbytes,
        warnings=warns,
        reorthogonalisations=None if reorth == "none" else res.reorthogonalisations.copy(),
        extra=_operator_extra(outer),
    )
