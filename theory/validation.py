"""Argument checks shared by every layer: each error names the argument and carries the bad value.

One module instead of a ladder of ``isinstance`` tests in every function (validate once, at the boundary;
lower layers trust what the boundary checked). The rule everywhere: a value of the wrong *type* raises
``TypeError``, a value of the right type outside its range raises ``ValueError``; both messages read
``"<name> must be <what>, got <name>=<value>"``.
Booleans are never accepted as numbers.

numpy only (the :mod:`theory` layer imports nothing from the project): :func:`check_torch_generator` looks
torch up in ``sys.modules`` instead of importing it, since a ``torch.Generator`` cannot exist before torch is
imported.

>>> check_int("steps", 5, minimum=1)
5
>>> check_int("steps", 0, minimum=1)
Traceback (most recent call last):
...
ValueError: steps must be an integer >= 1, got steps=0
>>> check_fraction("kept_fraction", 1.5)
Traceback (most recent call last):
...
ValueError: kept_fraction must be a number in [0, 1], got kept_fraction=1.5
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = [
    "check_int",
    "check_real",
    "check_positive",
    "check_fraction",
    "check_choice",
    "check_rng",
    "check_torch_generator",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``int(value)`` for an integer (not a bool) in ``[minimum, maximum]`` (either bound optional)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, got {name}={value!r} of type {type(value).__name__}")
    if minimum is not None and maximum is not None:
        what = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        what = f"an integer >= {minimum}"
    else:
        what = f"an integer <= {maximum}"
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {name}={value!r}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    """``float(value)`` for a finite real number (not a bool) within the given bounds.

    ``open_min``/``open_max`` make a bound strict (``value > minimum``).
    """
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {name}={value!r} of type {type(value).__name__}")
    v = float(value)
    lo_ok = minimum is None or (v > minimum if open_min else v >= minimum)
    hi_ok = maximum is None or (v < maximum if open_max else v <= maximum)
    if not (math.isfinite(v) and lo_ok and hi_ok):
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if open_min else '>='} {minimum:g}")
        if maximum is not None:
            parts.append(f"{'<' if open_max else '<='} {maximum:g}")
        what = "a finite number" + (" " + " and ".join(parts) if parts else "")
        raise ValueError(f"{name} must be {what}, got {name}={value!r}")
    return v


def check_positive(name: str, value: Any) -> float:
    """A finite real number ``> 0``.

    >>> check_positive("eps", 0.0)
    Traceback (most recent call last):
    ...
    ValueError: eps must be a finite number > 0, got eps=0.0
    """
    return check_real(name, value, minimum=0.0, open_min=True)


def check_fraction(name: str, value: Any) -> float:
    """A real number in ``[0, 1]``."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {name}={value!r} of type {type(value).__name__}")
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {name}={value!r}")
    return v


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    >>> check_choice("negative", "flip", ("abs", "clip", "drop"))
    Traceback (most recent call last):
    ...
    ValueError: negative must be one of ('abs', 'clip', 'drop'), got negative='flip'
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {name}={value!r}")
    return value


def check_rng(name: str, rng: Any) -> np.random.Generator:
    """``rng`` if it is a ``numpy.random.Generator`` (the library never uses global random state)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def check_torch_generator(name: str, generator: Any, *, allow_none: bool = False) -> Any:
    """``generator`` if it is a ``torch.Generator`` (or ``None`` when ``allow_none``)."""
    if generator is None and allow_none:
        return None
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(generator, torch.Generator):
        what = "a torch.Generator or None" if allow_none else "a torch.Generator"
        raise TypeError(f"{name} must be {what}, got {type(generator).__name__}")
    return generator
