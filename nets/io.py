"""File and JSON I/O of the package, in one place: atomic writes, JSON sanitising, spectra, provenance.

Atomic writes: a temporary file in the target's directory, flushed and fsync'ed, then ``os.replace``. A
reader (or a resumed run) therefore sees either the old file or the complete new one, never a torn write:
checkpoints, results and plots are all written through :func:`atomic_open`; :func:`jsonable` makes results
strict-JSON-ready; :func:`save_spectrum`/:func:`load_spectrum` persist a :class:`theory.spectrum.Spectrum`;
:func:`provenance` is the record every JSON result carries (package version, git commit, library versions,
device, threads). numpy/stdlib only (torch is looked up in ``sys.modules``, never imported), so ``prunelimit
geometry`` does not pay for torch.
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

__all__ = ["atomic_open", "atomic_write_text", "atomic_write_json", "jsonable", "save_spectrum", "load_spectrum",
           "provenance", "package_version"]


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


# ------------------------------------------------------------------------------------------------ spectra
def save_spectrum(spectrum: Any, path: str | os.PathLike) -> Path:
    """Write a :class:`theory.spectrum.Spectrum` to ``path`` atomically.

    A ``.json`` suffix writes JSON (:meth:`~theory.spectrum.Spectrum.to_dict`; floats round-trip exactly);
    anything else writes ``.npz`` (``numpy.savez``, no pickles; the suffix is added when missing). Returns the
    path written.
    """
    from theory.spectrum import FORMAT, Spectrum

    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a theory.spectrum.Spectrum, got {type(spectrum).__name__}")
    p = Path(path)
    if p.suffix.lower() == ".json":
        return atomic_write_json(p, spectrum.to_dict())
    if p.suffix.lower() != ".npz":
        p = p.with_name(p.name + ".npz")
    with atomic_open(p, "wb") as fh:
        np.savez(fh, format=np.array(FORMAT), nodes=spectrum.nodes, weights=spectrum.weights,
                 dim=np.array(spectrum.dim), exact=np.array(spectrum.exact))
    return p


def load_spectrum(path: str | os.PathLike) -> Any:
    """Read a spectrum written by :func:`save_spectrum` (format checked; ``allow_pickle=False``)."""
    from theory.spectrum import FORMAT, Spectrum

    p = Path(path)
    if p.suffix.lower() == ".json":
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
        try:
            return Spectrum.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{p} is not a {FORMAT} JSON file") from exc
    with np.load(p, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != FORMAT:
            raise ValueError(f"{p} is not a {FORMAT} npz file")
        return Spectrum(data["nodes"], data["weights"], int(data["dim"]), bool(data["exact"]))


# ------------------------------------------------------------------------------------------------ provenance
def package_version() -> str:
    """The installed ``prunelimit`` version (``"unknown"`` when the package metadata is missing)."""
    from importlib import metadata

    try:
        return metadata.version("prunelimit")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit(directory: Path) -> str | None:
    """The commit of the checkout holding ``directory`` (``-dirty`` appended when it has changes), or None."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def provenance(device: Any = None) -> dict[str, Any]:
    """Where a result came from: package version, git commit (when run from a checkout), Python, numpy, scipy
    and torch versions, the device (name of a CUDA device), torch threads, the process's usable CPUs, the host
    and the UTC time. torch is described only when it is already imported."""
    import datetime
    import platform

    import scipy

    out: dict[str, Any] = {
        "package": "prunelimit",
        "version": package_version(),
        "git_commit": _git_commit(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
        out["cuda_available"] = bool(torch.cuda.is_available())
        if device is not None:
            dev = torch.device(device)
            out["device"] = str(dev)
            if dev.type == "cuda" and torch.cuda.is_available():
                out["device_name"] = torch.cuda.get_device_name(dev)
    elif device is not None:
        out["device"] = str(device)
    return out
