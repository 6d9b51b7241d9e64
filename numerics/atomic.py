"""Atomic file writes: a temporary file in the target's directory, flushed and fsync'ed, then ``os.replace``.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never a torn write:
checkpoints, results and plots are all written through :func:`atomic_open`; :func:`jsonable` makes results
strict-JSON-ready. numpy/stdlib only, so every layer (the torch-free :mod:`numerics.spectrum` and
``prunelimit geometry`` included) can use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

__all__ = ["atomic_open", "atomic_write_text", "atomic_write_json", "jsonable"]


def _swap_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask at import: the fallback where ``/proc/self/status`` cannot be read. Reading the umask with
#: ``os.umask`` means setting it, for a moment, to 0 for every thread of the process; that happens only here.
_UMASK_AT_IMPORT = _swap_umask()


def _umask() -> int:
    """The current umask without changing it (Linux ``/proc/self/status``; else the umask at import)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def jsonable(x: Any) -> Any:
    """A strict-JSON-ready copy of ``x``: mappings (keys as ``str``), lists/tuples and numpy arrays become dicts
    and lists, numpy scalars Python scalars, non-finite floats ``None`` (strict JSON has no NaN/inf) and a
    ``torch.dtype`` its name; anything else is returned as it is.

    >>> jsonable({"a": np.array([1.0, np.nan]), 2: (np.int64(3), float("inf"), np.bool_(True))})
    {'a': [1.0, None], '2': [3, None, True]}
    """
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    torch = sys.modules.get("torch")  # never imported here: a torch.dtype exists only if torch is loaded
    if torch is not None and isinstance(x, torch.dtype):
        return str(x)
    return x


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on normal exit it atomically replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. The new file gets the
    ordinary permissions ``0666 & ~umask`` (``mkstemp`` alone would leave ``0600``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_open(p, "w", encoding="utf-8") as fh:
    ...     _ = fh.write("done")
    >>> p.read_text()
    'done'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"directory of path does not exist: {str(directory)!r}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Serialise ``obj`` as strict JSON (``allow_nan=False`` unless overridden) and write it atomically.

    The object is serialised before the file is opened, so a serialisation error leaves no file behind.
    """
    dumps_kwargs.setdefault("allow_nan", False)
    text = json.dumps(obj, **dumps_kwargs)
    return atomic_write_text(path, text + "\n")
