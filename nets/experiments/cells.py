"""Resumable cells: a finished unit of work (model × seed × setting) is written once, atomically, and never
recomputed.

A cell is identified by a group (a folder), a readable name and the parameters that determine its result;
the file is ``<group>/<name>-<hash>.json`` with ``hash`` the first 12 hex digits of the SHA-256 of the
parameters' canonical JSON, so a changed setting makes a new cell instead of silently reusing a stale one, and
the stored parameters are compared on reading (a hash collision or a hand-edited file is recomputed, not
trusted). JSON cells hold results; model cells hold a ``state_dict`` (``torch.save`` through
:func:`nets.io.atomic_open`, read back with ``weights_only=True``) and a JSON sidecar. An interrupted run
leaves either a complete cell or none (atomic replace), so rerunning the same command resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nets.io import atomic_open, atomic_write_json, jsonable, provenance

__all__ = ["CellStore", "params_hash", "slug"]

log = logging.getLogger(__name__)

FORMAT = "prunelimit.experiments.Cell/1"


def params_hash(params: Any) -> str:
    """The first 12 hex digits of the SHA-256 of ``params`` as canonical JSON (sorted keys).

    >>> params_hash({"b": 1, "a": [1.0, None]}) == params_hash({"a": [1.0, None], "b": 1})
    True
    """
    text = json.dumps(jsonable(params), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def slug(text: str) -> str:
    """A file-name-safe version of ``text``.

    >>> slug("mlp-digits seed=0, x2.5")
    'mlp-digits_seed_0_x2.5'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "cell"


class CellStore:
    """Cells under ``root`` (see the module docstring). ``computed``/``cached`` count what this store did."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.computed = 0
        self.cached = 0

    def path(self, group: str, name: str, params: Any, suffix: str = ".json") -> Path:
        return self.root / slug(group) / f"{slug(name)}-{params_hash(params)}{suffix}"

    def _read(self, path: Path, params: Any) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("unreadable cell %s (%s): recomputing", path, exc)
            return None
        if rec.get("format") != FORMAT or rec.get("params") != jsonable(params):
            log.warning("cell %s was written with other parameters: recomputing", path)
            return None
        return rec

    def exists(self, group: str, name: str, params: Any) -> bool:
        return self._read(self.path(group, name, params), params) is not None

    def compute(self, group: str, name: str, params: Any, fn: Callable[[], Any]) -> Any:
        """The stored result of the cell, or ``fn()`` computed now and written atomically.

        The result must be JSON-serialisable after :func:`nets.io.jsonable` (non-finite floats become ``None``).
        """
        path = self.path(group, name, params)
        rec = self._read(path, params)
        if rec is not None:
            self.cached += 1
            return rec["result"]
        t0 = time.perf_counter()
        result = jsonable(fn())
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"format": FORMAT, "group": group, "name": name, "params": jsonable(params),
                                 "seconds": time.perf_counter() - t0, "provenance": provenance(),
                                 "result": result}, indent=1)
        self.computed += 1
        return result

    def model(self, group: str, name: str, params: Any, build: Callable[[], Any], make: Callable[[], Any],
              info: Callable[[Any], dict[str, Any]] | None = None) -> Any:
        """A stored model (``make()`` then its saved ``state_dict``), or ``build()`` now, saved atomically.

        ``info(model)`` (optional) adds a JSON sidecar (``.pt.json`` beside the ``.pt``) describing the model.
        """
        import torch

        path = self.path(group, name, params, suffix=".pt")
        side = path.with_name(path.name + ".json")
        if path.is_file() and self._read(side, params) is not None:
            model = make()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.cached += 1
            return model
        t0 = time.perf_counter()
        model = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, fh)
        extra = jsonable(info(model)) if info is not None else None
        atomic_write_json(side, {"format": FORMAT, "group": group, "name": name, "params": jsonable(params),
                                 "seconds": time.perf_counter() - t0, "provenance": provenance(),
                                 "result": extra}, indent=1)
        self.computed += 1
        return model

    def model_info(self, group: str, name: str, params: Any) -> dict[str, Any] | None:
        """The sidecar of a stored model (``None`` when absent)."""
        rec = self._read(self.path(group, name, params, suffix=".pt.json"), params)
        return None if rec is None else rec["result"]
