"""Block-parallel Lanczos: ``k`` independent recurrences advanced together through one ``matmat`` per step.

For a symmetric ``A`` and a unit start vector ``q₁`` the Lanczos recurrence (Lanczos 1950; Golub & Van Loan,
*Matrix Computations*, 4th ed., §10.1)

.. math::

    β_j q_{j+1} = A q_j − α_j q_j − β_{j−1} q_{j−1},\\qquad α_j = q_jᵀ A q_j,

builds an orthonormal basis ``Q_m`` of the Krylov space ``K_m(A, q₁)`` with ``Q_mᵀ A Q_m = T_m``, the
symmetric tridiagonal with diagonal ``α`` and off-diagonal ``β``. Gauss quadrature for the measure
``μ(λ) = Σ_i (u_iᵀq₁)² δ_{λ_i}`` has nodes ``θ_k`` = eigenvalues of ``T_m`` and weights
``τ_k = (e₁ᵀ y_k)²`` (Golub & Meurant 2010, *Matrices, Moments and Quadrature*, ch. 6); it integrates
polynomials of degree ≤ 2m − 1 exactly.

Here ``k`` start vectors are advanced *together*: each step applies the operator once to an ``(n, k)`` block
(so one data pass of a Hessian–vector product serves ``k`` probes), but the ``k`` recurrences stay
independent (this is not block Lanczos). A recurrence whose ``β_j`` falls below the breakdown tolerance has
found an invariant subspace: it is stopped, its ``T`` is exact, and the remaining entries are padded.

Reorthogonalisation: ``"full"`` (default; classical Gram–Schmidt against the stored basis, repeated under
the DGKS criterion as in ARPACK; "twice is enough", Giraud, Langou & Rozložník 2005) keeps ``Q`` orthonormal
to working precision at ``O(n m²)`` cost per probe; ``"none"`` is the plain three-term recurrence, whose loss
of orthogonality produces ghost copies of converged Ritz values (Paige 1976) — harmless for smoothed
densities, wrong for counting eigenvalues (see MATH.md §3).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from numerics.operators import aslinearoperator

__all__ = ["LanczosResult", "lanczos", "tridiagonal_quadrature", "draw_probes"]

logger = logging.getLogger(__name__)

_PROBES = ("rademacher", "gaussian")
_REORTH = ("full", "none")


def tridiagonal_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the Jacobi matrix ``T = tridiag(β, α, β)``.

    Nodes are the eigenvalues of ``T`` (ascending) and weights the squared first components of its
    normalised eigenvectors, ``τ_k = (e₁ᵀ y_k)²`` (Golub & Welsch 1969). Uses the symmetric tridiagonal
    solver ``scipy.linalg.eigh_tridiagonal`` (LAPACK ``stemr``), never a general eigensolver.

    >>> nodes, weights = tridiagonal_quadrature(np.array([0.0, 0.0]), np.array([1.0]))
    >>> nodes.round(12).tolist(), weights.round(12).tolist()
    ([-1.0, 1.0], [0.5, 0.5])
    """
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("alpha must be non-empty")
    if b.size != a.size - 1:
        raise ValueError(f"beta must have length len(alpha) - 1 = {a.size - 1}, got {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("alpha and beta must be finite (got NaN or inf)")
    if a.size == 1:
        return a.copy(), np.ones(1)
    theta, Y = scipy.linalg.eigh_tridiagonal(a, b)
    w = Y[0, :] ** 2
    return theta, w / w.sum()


def _check_generator(generator: Any) -> torch.Generator:
    """``generator`` if it is a ``torch.Generator`` (the one check shared by :mod:`numerics.slq`,
    :mod:`numerics.eigs` and :mod:`numerics.trace`), else ``TypeError``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def draw_probes(
    n: int,
    k: int,
    *,
    generator: torch.Generator | None,
    probe: str = "rademacher",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``k`` random probe vectors as an ``(n, k)`` tensor (not normalised).

    ``"rademacher"``: entries ±1 with probability ½; ``"gaussian"``: standard normal entries. The numbers are
    drawn on the generator's device (so a CPU generator gives the same probes whatever ``device`` is) and
    then moved.
    """
    if probe not in _PROBES:
        raise ValueError(f"probe must be one of {_PROBES}, got {probe!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if probe == "rademacher":
        Z = torch.randint(0, 2, (n, k), generator=generator, device=gen_device, dtype=torch.int8)
        Z = Z.to(torch.float64).mul_(2.0).sub_(1.0)
    else:
        Z = torch.randn((n, k), generator=generator, device=gen_device, dtype=torch.float64)
    return Z.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class LanczosResult:
    """Output of :func:`lanczos` for ``k`` probes and at most ``m`` steps.

    Attributes
    ----------
    alphas:
        ``(k, m)`` float64 diagonals of the tridiagonals; entries past ``steps[l]`` are 0 (padding).
    betas:
        ``(k, m − 1)`` float64 off-diagonals; entries past ``steps[l] − 1`` are 0 (padding).
    steps:
        ``(k,)`` int, the size of each recurrence's tridiagonal.
    breakdown:
        ``(k,)`` bool: an invariant subspace was found (``β`` below ``breakdown_tol``) after ``steps[l]``
        steps, so that recurrence's quadrature is exact for its start vector's spectral measure.
    final_betas:
        ``(k,)`` float64, the last computed ``β`` (``β_{steps}``; the residual norm of the Krylov space).
    orthogonality_loss:
        ``(k,)`` float64 ``max|Q_lᵀQ_l − I|`` over each recurrence's basis, or None when the basis was not
        kept (``keep_basis=False``).
    matvecs:
        Number of operator–vector products (columns applied, summed over steps).
    operator_calls:
        Number of ``matmat`` calls (one per step).
    dim:
        ``n``.
    breakdown_tol:
        The absolute tolerance used for ``β``.
    basis:
        ``(k, m, n)`` tensor of Lanczos vectors (rows past ``steps[l]`` are 0), or None.
    """

    alphas: np.ndarray
    betas: np.ndarray
    steps: np.ndarray
    breakdown: np.ndarray
    final_betas: np.ndarray
    orthogonality_loss: np.ndarray | None
    matvecs: int
    operator_calls: int
    dim: int
    breakdown_tol: float
    basis: torch.Tensor | None = None

    @property
    def n_probes(self) -> int:
        return int(self.alphas.shape[0])

    def tridiagonal(self, probe: int) -> tuple[np.ndarray, np.ndarray]:
        """``(α, β)`` of one recurrence, trimmed to its own length."""
        if not 0 <= probe < self.n_probes:
            raise ValueError(f"probe must be in [0, {self.n_probes}), got {probe!r}")
        s = int(self.steps[probe])
        return self.alphas[probe, :s].copy(), self.betas[probe, : s - 1].copy()

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss nodes and weights per probe, ``(k, m)`` each, padded with zero weights.

        A padded node repeats that probe's first node, so that ``nodes.min()``/``max()`` stay in range.
        """
        m = self.alphas.shape[1]
        nodes = np.zeros((self.n_probes, m))
        weights = np.zeros((self.n_probes, m))
        for l in range(self.n_probes):
            a, b = self.tridiagonal(l)
            th, w = tridiagonal_quadrature(a, b)
            nodes[l, : th.size] = th
            nodes[l, th.size :] = th[0]
            weights[l, : w.size] = w
        return nodes, weights


def _reorthogonalise(B: torch.Tensor, w: torch.Tensor) -> None:
    """Project the rows of ``B`` (orthonormal, ``(j, n)``) out of ``w`` in place: classical Gram–Schmidt, repeated
    once when the norm dropped below ``1/√2`` of its value (the DGKS criterion, Daniel, Gragg, Kaufman & Stewart
    1976, as in ARPACK's ``dsaitr``), which keeps ``w ⟂ B`` to working precision.

    One matrix–vector product per pass and per probe (``B @ w``, ``Bᵀc``): on CPU these per-probe GEMVs are several
    times faster than the equivalent batched ``bmm``, and the probe count is small.
    """
    for _ in range(2):
        before = torch.linalg.vector_norm(w)
        w.addmv_(B.T, B @ w, alpha=-1.0)
        if torch.linalg.vector_norm(w) >= before * (1.0 / math.sqrt(2.0)):
            break


def _check_steps(steps: Any, n: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps > n:
        raise ValueError(f"steps must be <= n = {n} (the Krylov space cannot exceed the dimension), got {steps}")
    return int(steps)


def lanczos(
    op: Any,
    *,
    steps: int,
    n_probes: int | None = None,
    V0: Any = None,
    reorth: str = "full",
    accumulate_dtype: torch.dtype | None = torch.float64,
    generator: torch.Generator | None = None,
    probe: str = "rademacher",
    breakdown_tol: float | None = None,
    keep_basis: bool = True,
) -> LanczosResult:
    """Run ``k`` independent Lanczos recurrences on a symmetric operator, one ``matmat`` per step.

    Parameters
    ----------
    op:
        A :class:`~numerics.operators.LinearOperator` declared symmetric (or a symmetric matrix, wrapped by
        :func:`~numerics.operators.aslinearoperator`). Nothing assumes definiteness.
    n_probes:
        Number of random start vectors (drawn with ``generator`` from ``probe``); exclusive with ``V0``.
    steps:
        Maximum number of Lanczos steps ``m`` (``1 ≤ m ≤ n``).
    V0:
        ``(n, k)`` start vectors (normalised here; a zero column is an error).
    reorth:
        ``"full"`` (default) or ``"none"``; see the module docstring.
    accumulate_dtype:
        dtype of the Lanczos vectors and coefficients (default float64, so that a float32 operator still
        gets float64 orthogonalisation; ``None`` uses the operator's dtype, halving the basis memory).
    generator, probe:
        Source and law of random start vectors: ``"rademacher"`` (default; minimum-variance Hutchinson
        probes, Hutchinson 1990) or ``"gaussian"`` (the law assumed by Chen, Trogdon & Ubaru 2021).
    breakdown_tol:
        Absolute tolerance on ``β``. Default ``10 · √n · eps(op.dtype) · ‖T‖`` with ``‖T‖`` the largest
        ``√(α² + β²)`` seen so far: the rounding error of one product and orthogonalisation is about
        ``√n · eps · ‖A‖`` (random-walk accumulation), so a smaller ``β`` is numerically zero.
    keep_basis:
        Keep the ``(k, m, n)`` basis (required by ``reorth="full"``; with ``"none"``, ``False`` keeps only
        the last two vectors and ``orthogonality_loss`` is then not measured).

    Raises
    ------
    ValueError
        non-square or non-symmetric operator, ``steps`` outside ``[1, n]``, bad start vectors, or a
        non-finite operator product (the message names the step and probes).

    >>> from numerics.operators import DiagonalOperator
    >>> res = lanczos(DiagonalOperator(np.array([1.0, 2.0, 3.0])), V0=np.ones((3, 1)), steps=3)
    >>> nodes, weights = res.quadrature()
    >>> nodes.round(10).tolist(), weights.round(10).tolist(), bool(res.breakdown[0])
    ([[1.0, 2.0, 3.0]], [[0.3333333333, 0.3333333333, 0.3333333333]], True)
    """
    op = aslinearoperator(op)
    if op.shape[0] != op.shape[1]:
        raise ValueError(f"Lanczos needs a square operator, got shape {op.shape}")
    if not op.symmetric:
        raise ValueError(f"Lanczos needs an operator declared symmetric, got {op!r}")
    n = op.shape[0]
    m = _check_steps(steps, n)
    if reorth not in _REORTH:
        raise ValueError(f"reorth must be one of {_REORTH}, got {reorth!r}")
    if reorth == "full" and not keep_basis:
        raise ValueError("reorth='full' needs the basis: keep_basis=False is only allowed with reorth='none'")
    acc = op.dtype if accumulate_dtype is None else accumulate_dtype
    if acc not in (torch.float32, torch.float64):
        raise TypeError(f"accumulate_dtype must be torch.float32, torch.float64 or None, got {acc!r}")
    if breakdown_tol is not None and not (math.isfinite(breakdown_tol) and breakdown_tol >= 0):
        raise ValueError(f"breakdown_tol must be a finite non-negative number, got {breakdown_tol!r}")
    dev = op.device

    # ---- start vectors ---------------------------------------------------------------------------------
    if V0 is not None:
        if n_probes is not None:
            raise ValueError("give either n_probes or V0, not both")
        Q = torch.as_tensor(V0) if isinstance(V0, np.ndarray) else V0
        if not isinstance(Q, torch.Tensor):
            raise TypeError(f"V0 must be a torch.Tensor or numpy.ndarray, got {type(V0).__name__}")
        if Q.ndim == 1:
            Q = Q.reshape(-1, 1)
        if Q.ndim != 2 or Q.shape[0] != n or Q.shape[1] == 0:
            raise ValueError(f"V0 must have shape ({n}, k) with k >= 1, got {tuple(Q.shape)}")
        Q = Q.detach().to(device=dev, dtype=acc).clone()
        if not bool(torch.isfinite(Q).all()):
            raise ValueError("V0 must be finite (got NaN or inf)")
    else:
        if n_probes is None:
            raise ValueError("give n_probes (random start vectors) or V0")
        if isinstance(n_probes, bool) or not isinstance(n_probes, (int, np.integer)) or n_probes < 1:
            raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")
        Q = draw_probes(n, int(n_probes), generator=generator, probe=probe, dtype=acc, device=dev)
    k = Q.shape[1]
    norms = torch.linalg.vector_norm(Q, dim=0)
    if bool((norms == 0).any()):
        bad = torch.nonzero(norms == 0).reshape(-1).tolist()
        raise ValueError(f"start vectors must be non-zero; columns {bad} are zero")
    # Work in row layout (k, n): each probe's vector is contiguous, so the per-probe reductions, the basis
    # writes and the per-probe reorthogonalisation (GEMVs in _reorthogonalise) run on contiguous memory.
    Q = (Q / norms).T.contiguous()

    eps_op = float(torch.finfo(op.dtype).eps)
    alphas = np.zeros((k, m))
    betas = np.zeros((k, m))  # betas[:, j] = β_{j+1}; the last one is the final residual norm
    steps_done = np.zeros(k, dtype=np.int64)
    broke = np.zeros(k, dtype=bool)
    act_np = np.ones(k, dtype=bool)
    act = torch.ones((k, 1), dtype=torch.bool, device=dev)  # act_np on the device, uploaded once per step
    basis = torch.zeros((k, m, n), dtype=acc, device=dev) if keep_basis else None
    Q_prev = torch.zeros_like(Q)
    beta_prev = torch.zeros((k, 1), dtype=acc, device=dev)
    anorm = 0.0
    matvecs = 0
    calls = 0
    tol = 0.0 if breakdown_tol is None else float(breakdown_tol)

    for j in range(m):
        all_active = bool(act_np.all())
        idx = None if all_active else torch.as_tensor(np.flatnonzero(act_np), device=dev)
        if basis is not None:
            if all_active:
                basis[:, j, :] = Q
            else:
                basis[idx, j, :] = Q[idx]
        Qa = Q if all_active else Q[idx]
        Wa = op.matmat(Qa.T.to(op.dtype)).to(acc).T  # (k_active, n)
        calls += 1
        matvecs += int(Qa.shape[0])
        finite = torch.isfinite(Wa).all(dim=1)
        if not bool(finite.all()):
            rows = np.flatnonzero(act_np)[~finite.cpu().numpy()].tolist()
            raise ValueError(f"operator product at Lanczos step {j + 1} is not finite (NaN or inf) for probes {rows}")
        if all_active:
            W = Wa.contiguous()
        else:
            W = torch.zeros((k, n), dtype=acc, device=dev)
            W[idx] = Wa
        alpha = (Q * W).sum(dim=1, keepdim=True)
        W = W - alpha * Q - beta_prev * Q_prev
        if basis is not None and reorth == "full":
            for l in np.flatnonzero(act_np).tolist():
                _reorthogonalise(basis[l, : j + 1, :], W[l])
        if not all_active:
            W.masked_fill_(~act, 0.0)
        beta = torch.linalg.vector_norm(W, dim=1, keepdim=True)
        ab = torch.cat([alpha, beta], dim=1).detach().cpu().to(torch.float64).numpy()  # one device sync
        a_np, b_np = ab[:, 0], ab[:, 1]
        # β_{j}, already on the host: an active probe was active at the previous step, so its beta_prev is
        # betas[:, j - 1] (entries of inactive probes are never read)
        bp = betas[:, j - 1] if j > 0 else np.zeros(k)
        alphas[act_np, j] = a_np[act_np]
        betas[act_np, j] = b_np[act_np]
        steps_done[act_np] = j + 1
        anorm = max(anorm, float(np.sqrt(a_np**2 + b_np**2 + bp**2)[act_np].max()))
        if breakdown_tol is None:
            tol = 10.0 * math.sqrt(n) * eps_op * anorm
        newly = act_np & (b_np <= tol)
        if newly.any():
            broke[newly] = True
            logger.debug("Lanczos: invariant subspace for probes %s after %d steps", np.flatnonzero(newly), j + 1)
            act_np = act_np & ~newly
        if j == m - 1 or not act_np.any():
            break
        act = torch.as_tensor(act_np, device=dev).reshape(k, 1)
        safe = torch.where(act, beta, torch.ones_like(beta))
        Q_prev, Q = Q, torch.where(act, W / safe, Q)
        beta_prev = torch.where(act, beta, beta_prev)

    final_betas = betas[np.arange(k), steps_done - 1].copy()
    alphas_out = alphas  # entries past steps_done were never written: already the zero padding
    betas_out = np.zeros((k, m - 1))
    for l in range(k):
        s = int(steps_done[l])
        betas_out[l, : s - 1] = betas[l, : s - 1]

    orth = None
    if basis is not None:
        orth = np.zeros(k)
        for l in range(k):
            s = int(steps_done[l])
            Ql = basis[l, :s, :]
            G = Ql @ Ql.T - torch.eye(s, dtype=acc, device=dev)
            orth[l] = float(G.abs().max())
    return LanczosResult(
        alphas=alphas_out,
        betas=betas_out,
        steps=steps_done,
        breakdown=broke,
        final_betas=final_betas,
        orthogonality_loss=orth,
        matvecs=matvecs,
        operator_calls=calls,
        dim=n,
        breakdown_tol=float(tol),
        basis=basis,
    )
