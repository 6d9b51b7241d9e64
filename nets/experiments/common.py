"""Small helpers shared by the experiments: statistics over seeds, figure grids, wording of numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["mean_std", "pm", "figure_grid", "finite", "seeds_text", "spearman"]


def finite(values: Iterable[Any]) -> list[float]:
    """The finite numbers among ``values`` (``None`` and NaN dropped)."""
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of the finite values, or ``None``.

    >>> mean_std([1.0, 3.0, None])
    (2.0, 1.4142135623730951)
    """
    v = finite(values)
    if not v:
        return None, None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def pm(values: Iterable[Any], digits: int = 3) -> str:
    """``"mean ± std (n)"`` of the finite values.

    >>> pm([0.5, 0.7])
    '0.600 ± 0.141 (n=2)'
    """
    v = finite(values)
    if not v:
        return "—"
    m, s = mean_std(v)
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={len(v)})"


def seeds_text(seeds: Iterable[int]) -> str:
    """``"seeds 0, 1, 2"``."""
    return "seeds " + ", ".join(str(s) for s in seeds)


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when a side is constant.

    >>> spearman([1, 2, 3], [0.1, 0.5, 0.4])
    0.5
    """
    from scipy.stats import spearmanr

    xs, ys = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    if xs.size < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return math.nan
    return float(spearmanr(xs, ys).statistic)


def figure_grid(n: int, *, cols: int = 3, width: float = 4.2, height: float = 3.2,
                rows_per_panel: int = 1) -> tuple[Any, list[Any]]:
    """A matplotlib ``Figure`` (no pyplot state) with ``n`` panels (``rows_per_panel`` axes stacked in each)."""
    from matplotlib.figure import Figure

    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols) * rows_per_panel
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = []
    for i in range(n):
        r, c = divmod(i, cols)
        for j in range(rows_per_panel):
            flat.append(axes[r * rows_per_panel + j][c])
    for ax in [a for row in axes for a in row]:
        if ax not in flat:
            ax.set_visible(False)
    return fig, flat
