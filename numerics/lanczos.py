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

Reorthogonalisation (``reorth``):

* ``"none"``: the plain three-term recurrence, with only the two latest vectors in memory (``keep_basis=False``):
  ``O(k n)`` memory whatever ``m``, and ``O(k n)`` work per step beside the product. In finite precision the
  basis loses orthogonality as soon as a Ritz value converges (Paige 1976), and converged Ritz values reappear
  as *ghost* copies. The quadrature is still a quadrature for (nearly) the right measure: Greenbaum (1989,
  *Linear Algebra Appl.* 113, "Behavior of slightly perturbed Lanczos and conjugate-gradient recurrences")
  showed that the finite-precision ``T_m`` is the exact Lanczos tridiagonal of a larger matrix whose eigenvalues
  lie in tiny intervals around those of ``A``, the start vector's weight on each eigenvalue being shared by its
  interval; so the finite-precision Gauss rule is the exact Gauss rule of a measure ``μ̃`` within a tiny
  Wasserstein distance of ``μ``, and ghosts *split* a converged eigenvalue's weight instead of adding to it.
  Knizhnerman (1996, *Comput. Math. Math. Phys.* 36(11)) bounds the quadrature error of the simple
  (unreorthogonalised) recurrence for smooth ``f`` directly; Chen, Trogdon & Ubaru (2021, ICML; 2022) discuss
  the finite-precision case of SLQ in these terms [literature, not re-derived here]. What the tests check
  (``tests/numerics/test_slq.py``): each probe's float32 unreorthogonalised rule stays within the exact-arithmetic
  Jackson bound ``W1 ≤ πR/(4m)`` of that probe's own measure, and the ghosts of an outlier share its weight.
  What ghosts *do* break is counting: a node is no longer one eigenvalue (docs/math.md §3).
* ``"partial"``: partial reorthogonalisation (Simon 1984, *Math. Comp.* 42(165), "The Lanczos algorithm with
  partial reorthogonalization"): the basis is stored, the level of orthogonality ``ω_{j,i} ≈ q_jᵀq_i`` is
  estimated from ``α, β`` alone by Simon's recurrence (:func:`_omega_next`, ``O(m)`` scalars per step), and the new
  vector is reorthogonalised against the basis only when the estimate passes ``√u`` (and at the step after, as
  Simon prescribes). Semi-orthogonality ``|ω| ≤ √u`` suffices for ``T_m`` to equal, to ``O(u‖A‖)``, the projection
  of ``A`` on an orthonormal basis of the Krylov space (Simon 1984), so nodes and weights are as accurate as with
  ``"full"``, with no ghosts (tested against ``"full"``). What it saves depends on how fast Ritz values converge: 8 of 120 steps on a
  GOE matrix, but most steps on network Hessians, whose extreme eigenvalues converge within ~10 steps.
* ``"full"``: classical Gram–Schmidt against the stored basis at every step, repeated under the DGKS criterion
  as in ARPACK ("twice is enough", Giraud, Langou & Rozložník 2005), keeps ``Q`` orthonormal to working
  precision.

With a stored basis (``"partial"``, ``"full"``) a run holds ``k m n`` numbers and every reorthogonalisation reads
``j n`` of them per probe: ``O(k n m²)`` memory traffic, bandwidth-bound (at n = 10⁶ one step's two GEMVs over a
128-vector basis took ~0.2 s per probe, ten products' worth, on one core). Measured on an FC5-family network
Hessian with n = 10⁴ (``bench/spectrum.py``): W1 to the exact spectrum at 128 steps × 4 probes was 3.2e-4 of
the spectral range with a stored basis and 4.1e-4 without (ghost nodes are nodes taken from the bulk); without
reorthogonalisation ~200 steps reach the same W1, which at n ≥ 10⁵ still costs less time than reorthogonalising.

Precision (``accumulate_dtype``): the vectors, ``α`` and ``β`` may be kept in float64 for a float32 operator,
but the rounding error of a float32 product, ``~ eps₃₂ ‖A‖`` per step, then dominates the local error that
Paige's and Greenbaum's analyses are driven by, so a float64 recurrence buys little over float32 (the
operator's own precision, ``accumulate_dtype=None``) while doubling the memory traffic. The inner products and
norms use ``torch.dot`` (BLAS ``dot``, blocked accumulation: relative error ~1e-9 at n = 4·10⁶ in float32)
rather than ``torch.linalg.vector_norm``, whose float32 reduction lost 7e-5 relative at n = 4·10⁶ in our
measurement (torch 2.13, CPU).

Implementation: the two latest vectors of each recurrence sit in a ring buffer ``(k, 2, n)``, so the update
``w −= α_j q_j + β_{j−1} q_{j−1}`` is one GEMV per probe (one pass over memory) and ``q_{j+1} = w/β_j`` is
written in place over ``q_{j−1}``; ``α`` and ``β`` cross to the host once per step. :func:`basis_bytes` gives
the memory of a run before it starts.
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
from theory.validation import check_choice, check_int, check_real, check_torch_generator

__all__ = ["LanczosResult", "REORTH_MODES", "basis_bytes", "lanczos", "tridiagonal_quadrature", "draw_probes"]

logger = logging.getLogger(__name__)

_PROBES = ("rademacher", "gaussian")
#: The reorthogonalisation modes of :func:`lanczos` (module docstring).
REORTH_MODES: tuple[str, ...] = ("none", "partial", "full")
_DTYPES = (torch.float32, torch.float64)


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
    check_choice("probe", probe, _PROBES)
    check_torch_generator("generator", generator, allow_none=True)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if probe == "rademacher":
        Z = torch.randint(0, 2, (n, k), generator=generator, device=gen_device, dtype=torch.int8)
        Z = Z.to(torch.float64).mul_(2.0).sub_(1.0)
    else:
        Z = torch.randn((n, k), generator=generator, device=gen_device, dtype=torch.float64)
    return Z.to(device=device, dtype=dtype)


def _check_dtype(name: str, dtype: Any, allow_none: bool = False) -> torch.dtype | None:
    if dtype is None and allow_none:
        return None
    if dtype not in _DTYPES:
        what = "torch.float32, torch.float64 or None" if allow_none else "torch.float32 or torch.float64"
        raise TypeError(f"{name} must be {what}, got {name}={dtype!r}")
    return dtype


def basis_bytes(
    n: int,
    *,
    steps: int,
    n_probes: int,
    reorth: str = "none",
    dtype: torch.dtype = torch.float32,
    operator_dtype: torch.dtype | None = None,
) -> int:
    """Bytes of Lanczos vectors that :func:`lanczos` holds at its peak (the operator's own memory not included).

    Counted (``s`` = bytes of ``dtype``, the accumulation dtype; ``s_op`` = bytes of ``operator_dtype``, default
    the same): the ring buffer of the two latest vectors ``2 k n s``, the product ``w`` in row layout ``k n s``,
    the operator's output ``k n s_op`` (alive while it is copied into ``w``), the input cast to the operator's
    dtype ``k n s_op`` when the dtypes differ, and the stored basis ``k m n s`` for ``reorth="full"`` and
    ``"partial"``. Arrays of size ``O(k m)`` are neglected; the final orthogonality measurement needs
    ``O(m²)``. Verified against the peak resident memory in ``tests/numerics/test_lanczos.py``.

    >>> basis_bytes(10**6, steps=128, n_probes=4, reorth="none", dtype=torch.float32) / 10**6  # bytes per weight
    64.0
    >>> basis_bytes(10**6, steps=128, n_probes=4, reorth="full", dtype=torch.float64) / 10**6
    4224.0
    """
    n = check_int("n", n, minimum=1)
    m = check_int("steps", steps, minimum=1)
    k = check_int("n_probes", n_probes, minimum=1)
    check_choice("reorth", reorth, REORTH_MODES)
    acc = _check_dtype("dtype", dtype)
    opd = _check_dtype("operator_dtype", operator_dtype, allow_none=True) or acc
    s = torch.finfo(acc).bits // 8
    s_op = torch.finfo(opd).bits // 8
    total = 3 * k * n * s + k * n * s_op
    if opd != acc:
        total += k * n * s_op
    if reorth != "none":
        total += k * m * n * s
    return int(total)


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
    reorth:
        The reorthogonalisation used (``"none"``, ``"partial"`` or ``"full"``).
    reorthogonalisations:
        ``(k,)`` int, the steps at which each recurrence's new vector was reorthogonalised against its basis
        (``"full"``: every step; ``"partial"``: where Simon's estimate passed ``√u``, and the step after).
    dtype:
        The accumulation dtype of the vectors and coefficients.
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
    reorth: str = "full"
    reorthogonalisations: np.ndarray | None = None
    dtype: torch.dtype = torch.float64
    basis: torch.Tensor | None = None

    @property
    def n_probes(self) -> int:
        return int(self.alphas.shape[0])

    def tridiagonal(self, probe: int) -> tuple[np.ndarray, np.ndarray]:
        """``(α, β)`` of one recurrence, trimmed to its own length."""
        probe = check_int("probe", probe, minimum=0, maximum=self.n_probes - 1)
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

    Two GEMVs per pass (``B @ w``, ``Bᵀc``), each reading the stored basis once: the memory-bound part of full
    reorthogonalisation. Norms by ``torch.dot`` (module docstring).
    """
    for _ in range(2):
        before = torch.dot(w, w)
        w.addmv_(B.T, B @ w, alpha=-1.0)
        if bool(torch.dot(w, w) >= 0.5 * before):
            break


def _omega_next(
    om: np.ndarray, om_prev: np.ndarray, a: np.ndarray, b: np.ndarray, j: int, noise: float
) -> np.ndarray:
    """Simon's (1984) estimate of the row ``ω_{j+1,i} ≈ q_{j+1}ᵀq_i``, ``i ≤ j + 1``, from the two previous rows.

    Subtracting the finite-precision recurrences ``A q_j = β_{j−1}q_{j−1} + α_j q_j + β_j q_{j+1} − f_j`` taken
    against ``q_i`` and ``q_i``'s against ``q_j`` (``A`` symmetric) gives, 0-based,

        β_j ω_{j+1,i} = β_i ω_{j,i+1} + (α_i − α_j) ω_{j,i} + β_{i−1} ω_{j,i−1} − β_{j−1} ω_{j−1,i} + (q_iᵀf_j − q_jᵀf_i),

    where the last term, unknown, is replaced by ``±noise`` in the direction that increases ``|ω|`` (the caller
    passes ``noise = 2u‖A‖``, twice a product's and a step's rounding: calibrated on GOE, spiked-Wigner and
    spiked-diagonal matrices, where this estimate stayed above the measured ``max_i |q_{j+1}ᵀq_i|`` by 2–400×,
    while Simon's ``√n·u‖A‖`` overestimates by up to 10⁴× and reorthogonalises far too often);
    ``ω_{j+1,j} = noise/β_j`` (local orthogonality) and ``ω_{j+1,j+1} = 1``. ``a``/``b`` hold ``α_0..α_j`` and ``β_0..β_j``; rows have length
    ``m + 1``.
    """
    new = np.zeros_like(om)
    bj = b[j]
    if j > 0:
        i = np.arange(j)
        raw = b[:j] * om[1 : j + 1] + (a[:j] - a[j]) * om[:j] - b[j - 1] * om_prev[:j]
        raw[1:] += b[: j - 1] * om[: j - 1]
        raw += np.where(raw >= 0.0, noise, -noise)
        new[i] = raw / bj
    new[j] = noise / bj
    new[j + 1] = 1.0
    return new


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
    keep_basis: bool | None = None,
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
        ``"full"`` (default here: the reference path), ``"partial"`` or ``"none"``; see the module docstring.
        :func:`numerics.slq.slq` chooses between ``"partial"`` and ``"none"`` by memory.
    accumulate_dtype:
        dtype of the Lanczos vectors and coefficients (default float64; ``None`` uses the operator's dtype,
        halving the memory and traffic of the vectors: module docstring, "Precision").
    generator, probe:
        Source and law of random start vectors: ``"rademacher"`` (default; minimum-variance Hutchinson
        probes, Hutchinson 1990) or ``"gaussian"`` (the law assumed by Chen, Trogdon & Ubaru 2021).
    breakdown_tol:
        Absolute tolerance on ``β``. Default ``10 · √n · eps(op.dtype) · ‖T‖`` with ``‖T‖`` the largest
        ``√(α² + β²)`` seen so far: the rounding error of one product and orthogonalisation is about
        ``√n · eps · ‖A‖`` (random-walk accumulation), so a smaller ``β`` is numerically zero.
    keep_basis:
        Keep the ``(k, m, n)`` basis and measure ``orthogonality_loss`` (required by ``"full"`` and
        ``"partial"``). Default: ``reorth != "none"``, so ``"none"`` runs in ``O(k n)`` memory (:func:`basis_bytes`).

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
    m = check_int("steps", steps, minimum=1, maximum=n)
    check_choice("reorth", reorth, REORTH_MODES)
    if keep_basis is None:
        keep_basis = reorth != "none"
    elif not isinstance(keep_basis, bool):
        raise TypeError(f"keep_basis must be a bool or None, got keep_basis={keep_basis!r}")
    if reorth != "none" and not keep_basis:
        raise ValueError(f"reorth={reorth!r} needs the basis: keep_basis=False is only allowed with reorth='none'")
    acc = _check_dtype("accumulate_dtype", accumulate_dtype, allow_none=True) or op.dtype
    if breakdown_tol is not None:
        breakdown_tol = check_real("breakdown_tol", breakdown_tol, minimum=0.0)
    dev = op.device

    # ---- start vectors ---------------------------------------------------------------------------------
    if V0 is not None:
        if n_probes is not None:
            raise ValueError("give either n_probes or V0, not both")
        Z = torch.as_tensor(V0) if isinstance(V0, np.ndarray) else V0
        if not isinstance(Z, torch.Tensor):
            raise TypeError(f"V0 must be a torch.Tensor or numpy.ndarray, got {type(V0).__name__}")
        if Z.ndim == 1:
            Z = Z.reshape(-1, 1)
        if Z.ndim != 2 or Z.shape[0] != n or Z.shape[1] == 0:
            raise ValueError(f"V0 must have shape ({n}, k) with k >= 1, got {tuple(Z.shape)}")
        Z = Z.detach().to(device=dev, dtype=acc)
        if not bool(torch.isfinite(Z).all()):
            raise ValueError("V0 must be finite (got NaN or inf)")
    else:
        if n_probes is None:
            raise ValueError("give n_probes (random start vectors) or V0")
        n_probes = check_int("n_probes", n_probes, minimum=1)
        Z = draw_probes(n, n_probes, generator=generator, probe=probe, dtype=acc, device=dev)
    k = Z.shape[1]
    norms = torch.linalg.vector_norm(Z.to(torch.float64), dim=0)
    if bool((norms == 0).any()):
        bad = torch.nonzero(norms == 0).reshape(-1).tolist()
        raise ValueError(f"start vectors must be non-zero; columns {bad} are zero")
    # Ring buffer of the two latest vectors per recurrence, row layout: ring[l, j % 2] = q_j of probe l, so each
    # vector is contiguous and the pair (q_j, q_{j-1}) of a probe is one (2, n) matrix for the fused update.
    ring = torch.zeros((k, 2, n), dtype=acc, device=dev)
    ring[:, 0, :] = (Z / norms.to(Z.dtype)).T
    del Z

    eps_op = float(torch.finfo(op.dtype).eps)
    alphas = np.zeros((k, m))
    betas = np.zeros((k, m))  # betas[:, j] = β_{j+1}; the last one is the final residual norm
    steps_done = np.zeros(k, dtype=np.int64)
    broke = np.zeros(k, dtype=bool)
    act_np = np.ones(k, dtype=bool)
    basis = torch.zeros((k, m, n), dtype=acc, device=dev) if keep_basis else None
    coef = torch.zeros((k, 2), dtype=acc, device=dev)  # (α_j, β_{j-1}) placed at the ring slots of (q_j, q_{j-1})
    ab = torch.zeros((2, k), dtype=acc, device=dev)  # α_j and β_j² of this step, one host transfer
    beta_prev = np.zeros(k)
    reorths = np.zeros(k, dtype=np.int64)
    # partial reorthogonalisation: Simon's estimates ω_{j,i} ≈ q_jᵀq_i of the last two rows, per probe
    u = max(float(torch.finfo(acc).eps), eps_op)  # the operator's rounding enters the local errors too
    semi = math.sqrt(u)
    omega = np.zeros((k, 2, m + 1))
    omega[:, 1, 0] = 1.0  # ω_{0,0} = 1
    force = np.zeros(k, dtype=bool)
    anorm = 0.0
    matvecs = 0
    calls = 0
    tol = 0.0 if breakdown_tol is None else float(breakdown_tol)

    for j in range(m):
        cur, prev = j % 2, 1 - j % 2
        active = np.flatnonzero(act_np).tolist()
        all_active = len(active) == k
        Qj = ring[:, cur, :]
        if basis is not None:
            if all_active:
                basis[:, j, :] = Qj
            else:
                for l in active:
                    basis[l, j, :] = Qj[l]
        Qa = Qj if all_active else Qj[active]
        Wop = op.matmat(Qa.T)  # (n, k_active); LinearOperator.matmat casts to the operator's dtype
        calls += 1
        matvecs += len(active)
        W = Wop.T.to(dtype=acc, memory_format=torch.contiguous_format)  # (k_active, n), rows contiguous
        del Wop
        for i, l in enumerate(active):
            torch.dot(Qj[l], W[i], out=ab[0, l])
        coef[:, cur] = ab[0]
        coef[:, prev] = torch.as_tensor(beta_prev, dtype=acc).to(dev, non_blocking=True)
        for i, l in enumerate(active):
            # w −= α_j q_j + β_{j−1} q_{j−1}: one GEMV over the probe's (2, n) ring slot
            W[i].addmv_(ring[l].T, coef[l], alpha=-1.0)
            if reorth == "full":
                _reorthogonalise(basis[l, : j + 1, :], W[i])
            torch.dot(W[i], W[i], out=ab[1, l])
        host = ab.cpu().to(torch.float64).numpy()  # one device sync per step
        a_np, b2_np = host[0], host[1]
        bad = [l for l in active if not (math.isfinite(a_np[l]) and math.isfinite(b2_np[l]))]
        if bad:
            raise ValueError(
                f"operator product at Lanczos step {j + 1} is not finite (NaN or inf) for probes {bad}"
            )
        b_np = np.sqrt(np.maximum(b2_np, 0.0))
        anorm = max(anorm, float(np.sqrt(a_np**2 + b_np**2 + beta_prev**2)[act_np].max()))
        if reorth == "partial" and basis is not None and j + 1 < m:
            redo = []
            for i, l in enumerate(active):
                if b_np[l] <= 0.0:
                    continue
                alphas[l, j], betas[l, j] = a_np[l], b_np[l]
                new = _omega_next(omega[l, 1], omega[l, 0], alphas[l], betas[l], j, 2.0 * u * anorm)
                if force[l] or np.abs(new[: j + 1]).max() > semi:
                    redo.append((i, l))
                    force[l] = not force[l]  # Simon's rule: the next vector is reorthogonalised too
                    new[: j + 1] = u  # orthogonal to working precision after CGS2
                omega[l, 0] = omega[l, 1]
                omega[l, 1] = new
            for i, l in redo:
                _reorthogonalise(basis[l, : j + 1, :], W[i])
                torch.dot(W[i], W[i], out=ab[1, l])
                reorths[l] += 1
            if redo:
                b2 = ab[1].cpu().to(torch.float64).numpy()
                for _, l in redo:
                    b_np[l] = math.sqrt(max(float(b2[l]), 0.0))
        elif reorth == "full":
            reorths[act_np] += 1
        alphas[act_np, j] = a_np[act_np]
        betas[act_np, j] = b_np[act_np]
        steps_done[act_np] = j + 1
        if breakdown_tol is None:
            tol = 10.0 * math.sqrt(n) * eps_op * anorm
        newly = act_np & (b_np <= tol)
        if newly.any():
            broke[newly] = True
            logger.debug("Lanczos: invariant subspace for probes %s after %d steps", np.flatnonzero(newly), j + 1)
        if j == m - 1 or not (act_np & ~newly).any():
            break
        for i, l in enumerate(active):
            if not newly[l]:
                torch.div(W[i], float(b_np[l]), out=ring[l, prev, :])  # q_{j+1} over q_{j−1}
        beta_prev = np.where(act_np & ~newly, b_np, beta_prev)
        act_np = act_np & ~newly
        del W

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
        reorth=reorth,
        reorthogonalisations=reorths,
        dtype=acc,
        basis=basis,
    )
