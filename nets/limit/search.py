"""The threshold search shared by every measured or Taylor-model limit: a grid, then bisection, monotonicity
made explicit.

Each limit is the least kept count ``k`` whose level *qualifies* (e.g. its loss is ``≤ L(w*) + ε``). Level
``k = N`` (nothing pruned) always qualifies. :func:`threshold_search` evaluates a coarse grid of kept counts,
takes the first failure seen coming from the dense end (so the answer is the least ``k`` such that ``k`` and
every denser grid level qualify — the convention of the exact quadratic threshold), and bisects between that
failing level and the next grid level up to the requested resolution. Levels below the limit that qualify
anyway are reported as *non-monotone* (the curve is not monotone there; a reader should know), as are bisection
steps whose outcome contradicts an evaluated neighbour. Every evaluation is kept, in order, with its value, so
a result can always be re-checked and plotted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theory.validation import check_int

__all__ = ["SearchResult", "threshold_search", "grid_counts"]


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`threshold_search`.

    Attributes
    ----------
    kept_count:
        The least qualifying kept count found (``N`` qualifies by definition).
    N:
        The number of prunable weights.
    resolution:
        The bracket width at which bisection stopped (in weights).
    grid_counts, grid_values, grid_ok:
        The grid levels (kept counts, ascending), their values and whether each qualifies.
    evaluations:
        ``(kept_count, value, qualifies)`` of every evaluation in the order made (grid first).
    non_monotone:
        Kept counts below the limit that qualify (the criterion is not monotone there).
    kept_count_any:
        The least evaluated kept count that qualifies at all (≤ ``kept_count``).
    """

    kept_count: int
    N: int
    resolution: int
    grid_counts: np.ndarray
    grid_values: np.ndarray
    grid_ok: np.ndarray
    evaluations: tuple[tuple[int, float, bool], ...] = field(repr=False)
    non_monotone: tuple[int, ...] = ()
    kept_count_any: int | None = None

    @property
    def kept_fraction(self) -> float:
        return self.kept_count / self.N

    @property
    def n_evaluations(self) -> int:
        return len(self.evaluations)

    def to_dict(self) -> dict[str, Any]:
        return {"kept_count": self.kept_count, "kept_fraction": self.kept_fraction, "N": self.N,
                "resolution": self.resolution, "grid_kept_fraction": (self.grid_counts / self.N).tolist(),
                "grid_kept_count": self.grid_counts.tolist(), "grid_value": self.grid_values.tolist(),
                "grid_ok": self.grid_ok.tolist(),
                "evaluations": [{"kept_count": k, "value": v, "ok": ok} for k, v, ok in self.evaluations],
                "non_monotone_kept_fractions": [k / self.N for k in self.non_monotone],
                "kept_fraction_any": None if self.kept_count_any is None else self.kept_count_any / self.N}


def grid_counts(N: int, step: float, extra: Sequence[int] = ()) -> np.ndarray:
    """Kept counts of the grid ``0, step, 2·step, …, 1`` (by :func:`theory.limits.kept_count`), plus ``extra``,
    sorted and unique.

    >>> grid_counts(10, 0.25).tolist()
    [0, 3, 5, 8, 10]
    """
    from theory.limits import kept_count

    n = int(round(1.0 / step))
    fr = np.linspace(0.0, 1.0, n + 1)
    counts = {kept_count(float(min(max(f, 0.0), 1.0)), N) for f in fr}
    counts.update(int(e) for e in extra if 0 <= int(e) <= N)
    return np.array(sorted(counts), dtype=np.int64)


def threshold_search(
    evaluate: Callable[[Sequence[int]], Sequence[float]],
    qualifies: Callable[[float], bool],
    N: int,
    grid: Sequence[int],
    *,
    resolution: int = 1,
) -> SearchResult:
    """The least qualifying kept count by grid + bisection (module docstring).

    ``evaluate(counts)`` returns the values of a batch of kept counts (a batch lets products share a call);
    ``qualifies(value)`` decides a level. ``grid`` is a set of kept counts (``N`` is added). Bisection stops when
    the bracket is at most ``resolution`` weights wide.

    >>> loss = lambda ks: [10.0 / (k + 1) for k in ks]          # decreasing in k
    >>> r = threshold_search(loss, lambda v: v <= 1.0, 100, [0, 50, 100])
    >>> r.kept_count, r.n_evaluations                            # 10/(k+1) ≤ 1 ⇔ k ≥ 9
    (9, 9)
    """
    N = check_int("N", N, minimum=1)
    resolution = check_int("resolution", resolution, minimum=1)
    counts = np.array(sorted({int(k) for k in grid if 0 <= int(k) <= N} | {N}), dtype=np.int64)
    values = np.asarray(evaluate(counts.tolist()), dtype=np.float64).reshape(-1)
    if values.shape != counts.shape:
        raise ValueError(f"evaluate returned {values.size} values for {counts.size} kept counts")
    ok = np.array([bool(qualifies(float(v))) for v in values])
    ok[-1] = True  # k = N: nothing pruned
    evals: list[tuple[int, float, bool]] = [(int(k), float(v), bool(o)) for k, v, o in zip(counts, values, ok)]
    # first failure from the dense end
    fail = np.nonzero(~ok)[0]
    if fail.size == 0:
        lo, hi = None, int(counts[0])
    else:
        i = int(fail[-1])
        lo, hi = int(counts[i]), int(counts[i + 1])
    non_monotone = [int(k) for k, o in zip(counts, ok) if o and lo is not None and k < lo]
    # bisection on (lo, hi]: lo fails, hi qualifies
    while lo is not None and hi - lo > resolution:
        mid = (lo + hi) // 2
        v = float(np.asarray(evaluate([mid]), dtype=np.float64).reshape(-1)[0])
        q = bool(qualifies(v))
        evals.append((mid, v, q))
        if q:
            hi = mid
        else:
            lo = mid
    # any evaluation contradicting the final bracket is non-monotone too
    for k, _, q in evals:
        if q and lo is not None and k < lo and k not in non_monotone:
            non_monotone.append(k)
    any_ok = [k for k, _, q in evals if q]
    return SearchResult(kept_count=hi, N=N, resolution=resolution, grid_counts=counts, grid_values=values,
                        grid_ok=ok, evaluations=tuple(evals), non_monotone=tuple(sorted(non_monotone)),
                        kept_count_any=min(any_ok) if any_ok else None)
