"""Stochastic Lanczos quadrature (SLQ) and the :class:`Spectrum` it returns.

A :class:`Spectrum` (defined in :mod:`numerics.spectrum`, whose docstring states the quadrature; re-exported
here) is a set of Gauss quadrature rules, one per probe, approximating the normalised spectral measure of a
symmetric operator.

:func:`slq` builds a :class:`Spectrum` from ``n_probes`` Lanczos recurrences advanced together
(:func:`numerics.lanczos.lanczos`); :func:`slq_deflated` computes the top-k eigenpairs exactly and runs SLQ on
the rest, for functionals that are sharp near the outliers. Accuracy (MATH.md §3, Chen, Trogdon & Ubaru
2021, main theorem [literature]): ``m = ⌈12/t + ½⌉`` steps and ``n_v = ⌈4 (n+2)⁻¹ t⁻² ln(2n/η)⌉`` Gaussian probes
give ``W₁(Spectrum, μ_A) ≤ t (λ_max − λ_min)`` with probability ``1 − η``, so ``|(1/n) tr f − expect(f)| ≤ L t
(λ_max − λ_min)`` for L-Lipschitz ``f`` (:func:`ctu_parameters`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from numerics.lanczos import _check_generator
from numerics.spectrum import Spectrum, ctu_parameters, pyhessian_sigma

__all__ = ["Spectrum", "slq", "slq_deflated", "pyhessian_sigma", "ctu_parameters"]

logger = logging.getLogger(__name__)


def slq(
    op: Any,
    steps: int,
    n_probes: int,
    *,
    generator: torch.Generator,
    probe: str = "rademacher",
    reorth: str = "full",
    accumulate_dtype: torch.dtype | None = torch.float64,
    deflate: int | None = None,
) -> Spectrum:
    """Stochastic Lanczos quadrature of a symmetric (possibly indefinite) operator.

    Runs ``n_probes`` Lanczos recurrences of ``steps`` steps advanced together (one ``matmat`` of
    ``n_probes`` columns per step; :func:`numerics.lanczos.lanczos`) from normalised Rademacher or Gaussian
    probes drawn with ``generator``, and returns their Gauss rules: nodes ``θ`` = eigenvalues of each ``T``,
    weights ``τ = (e₁ᵀy)²`` (Ubaru, Chen & Saad 2017, SIMAX 38(4), Alg. 1; MATH.md §3). ``(1/n) tr f(A) ≈
    expect(f)`` is exact for polynomials of degree ≤ 2·steps − 1 per probe, and ``steps = n`` recovers the
    spectrum. Cost: ``steps · n_probes`` matvecs in ``steps`` operator calls (``deflate`` adds the
    eigensolver's). A recurrence that finds an invariant subspace stops early, with an exact rule.

    ``deflate=k`` delegates to :func:`slq_deflated` (exact top-k eigenpairs by magnitude + SLQ on the rest).

    >>> from numerics.operators import DiagonalOperator
    >>> d = np.array([-2.0, -1.0, 0.5, 3.0])
    >>> s = slq(DiagonalOperator(d), steps=4, n_probes=2, generator=torch.Generator().manual_seed(0))
    >>> np.allclose(np.sort(s.nodes[0]), d, atol=1e-12), round(s.expect(lambda x: x**3)[0], 10)
    (True, 4.53125)
    """
    from numerics.lanczos import lanczos
    from numerics.operators import aslinearoperator

    _check_generator(generator)
    if deflate is not None:
        return slq_deflated(
            op,
            deflate,
            steps,
            n_probes,
            generator=generator,
            probe=probe,
            reorth=reorth,
            accumulate_dtype=accumulate_dtype,
        )
    op = aslinearoperator(op)
    res = lanczos(
        op,
        n_probes,
        steps,
        reorth=reorth,
        accumulate_dtype=accumulate_dtype,
        generator=generator,
        probe=probe,
        keep_basis=reorth == "full",
    )
    logger.info(
        "slq: n=%d, %d probes x %d steps, %d matvecs in %d operator calls, breakdowns %d, orthogonality loss %s",
        op.shape[0],
        res.n_probes,
        steps,
        res.matvecs,
        res.operator_calls,
        int(res.breakdown.sum()),
        None if res.orthogonality_loss is None else float(res.orthogonality_loss.max()),
    )
    return Spectrum.from_lanczos(res)


def slq_deflated(
    op: Any,
    k: int,
    steps: int,
    n_probes: int,
    *,
    generator: torch.Generator,
    probe: str = "rademacher",
    reorth: str = "full",
    accumulate_dtype: torch.dtype | None = torch.float64,
    which: str = "LM",
    eig_tol: float | None = None,
) -> Spectrum:
    """Top-k deflated SLQ: ``k`` extreme eigenpairs computed to residual tolerance, SLQ on the rest.

    For functionals that are sharp relative to the spectral range (MATH.md §3 "Pitfalls"), a few outliers
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
    Cost: the eigensolver's matvecs plus ``steps · n_probes``.

    >>> from numerics.operators import DiagonalOperator
    >>> d = np.concatenate([np.linspace(0.0, 1.0, 20), [50.0, -40.0]])
    >>> s = slq_deflated(DiagonalOperator(d), 2, 20, 2, generator=torch.Generator().manual_seed(0))
    >>> bool(abs(s.expect(lambda x: x)[0] - d.mean()) < 1e-12), sorted(s.nodes[0, :2].round(10).tolist())
    (True, [-40.0, 50.0])
    """
    from numerics.eigs import eigs
    from numerics.lanczos import draw_probes, lanczos
    from numerics.operators import LinearOperator, aslinearoperator

    _check_generator(generator)
    op = aslinearoperator(op)
    if op.shape[0] != op.shape[1] or not op.symmetric:
        raise ValueError(f"slq_deflated needs a square operator declared symmetric, got {op!r}")
    n = op.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(f"deflate must be an int with 1 <= k < n = {n}, got {k!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= n - k:
        raise ValueError(f"steps must be an int in [1, n - k = {n - k}] after deflating k = {k}, got {steps!r}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, (int, np.integer)) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")
    top = eigs(op, int(k), which=which, generator=generator, tol=eig_tol, accumulate_dtype=accumulate_dtype)
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
    res = lanczos(proj, V0=Z, steps=int(steps), reorth=reorth, accumulate_dtype=accumulate_dtype,
                  keep_basis=reorth == "full")
    nodes_r, weights_r = res.quadrature()
    nv = nodes_r.shape[0]
    nodes = np.concatenate([np.broadcast_to(top.eigenvalues, (nv, k)), nodes_r], axis=1)
    weights = np.concatenate([np.full((nv, k), 1.0 / n), weights_r * ((n - k) / n)], axis=1)
    logger.info(
        "slq_deflated: k=%d (max residual %.2e, %d matvecs) + %d probes x %d steps (%d matvecs)",
        k, float(top.residuals.max()), top.matvecs, nv, steps, res.matvecs,
    )
    return Spectrum(nodes, weights, n)
