"""The run context shared by the experiments: the scale, the selected networks and seeds, the output folder,
the data, and the shared (cached) dense networks and their limit analyses.

The dense ℓ1-trained network of a (model, seed) and its :class:`~nets.experiments.analysis.Analysis` are used
by most experiments; they are computed once per output folder and stored under ``DIR/_shared`` (the training
through :func:`nets.train.train`'s checkpoints, so an interrupted training resumes bit-identically; the
analysis as a cell). Independent runs (seeds) differ in the initialisation and the data order; the data split
(digits) and the task (teacher–student) are fixed (seed 0), so that seeds measure the run-to-run variation of
training alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nets.data import DataSplit, load_dataset
from nets.experiments.analysis import Analysis, AnalysisSettings, analyze
from nets.experiments.cells import CellStore, params_hash
from nets.experiments.scales import ModelSpec, Scale
from nets.models import build_model
from nets.prune import Masks
from nets.train import TrainConfig, train
from theory.validation import check_int

__all__ = ["Context", "config_params"]

log = logging.getLogger(__name__)

_BUILTIN_DATA = ("digits", "teacher-student")


def config_params(config: TrainConfig) -> dict[str, Any]:
    """A training configuration as cell parameters (the device does not change what is computed)."""
    d = config.to_dict()
    d.pop("device", None)
    return d


class Context:
    """What an experiment needs: ``scale``, ``specs`` (the selected networks), ``seeds``, ``out`` (the run's
    folder), ``device``, the data, the shared dense networks and analyses, and a progress callback."""

    def __init__(
        self,
        scale: Scale,
        out: str | Path,
        *,
        models: Sequence[str] | None = None,
        seeds: int | None = None,
        data_root: str | Path | None = None,
        device: str = "cpu",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.scale = scale
        self.specs: tuple[ModelSpec, ...] = tuple(scale.model(k) for k in models) if models else scale.models
        if not self.specs:
            raise ValueError("models must name at least one network")
        k = scale.seeds if seeds is None else check_int("seeds", seeds, minimum=1)
        self.seeds: tuple[int, ...] = tuple(range(k))
        self.out = Path(out)
        self.device = str(device)
        self.data_root = None if data_root is None else Path(data_root)
        needs_root = sorted({s.data for s in self.specs if s.data not in _BUILTIN_DATA})
        if needs_root and self.data_root is None:
            raise ValueError(f"scale {scale.name!r} reads {', '.join(needs_root)} from a local folder: pass data_root "
                             "(--data-root); nothing is downloaded")
        if self.data_root is not None and not self.data_root.is_dir():
            raise FileNotFoundError(f"data_root folder not found: {self.data_root}")
        self.shared = CellStore(self.out / "_shared")
        self._progress = progress
        self._data: dict[str, DataSplit] = {}
        self._models: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        self._analyses: dict[str, Analysis | None] = {}
        self._stores: dict[str, CellStore] = {}
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------------------------------- progress
    def log(self, message: str) -> None:
        log.info(message)
        if self._progress is not None:
            self._progress(message)

    # ------------------------------------------------------------------------------------------- data
    def data(self, spec: ModelSpec) -> DataSplit:
        key = f"{spec.data}:{sorted(spec.data_options.items())}"
        if key not in self._data:
            root = None if spec.data in _BUILTIN_DATA else self.data_root
            self._data[key] = load_dataset(spec.data, root, seed=0, **spec.data_options)
        return self._data[key]

    # ------------------------------------------------------------------------------------------- networks
    def init_model(self, spec: ModelSpec, seed: int) -> nn.Module:
        """``spec``'s network at initialisation (Kaiming normal drawn from ``Generator().manual_seed(seed)``)."""
        d = self.data(spec)
        return build_model(spec.model, d.num_classes, d.input_shape, generator=torch.Generator().manual_seed(seed),
                           **spec.model_kwargs)

    def train_config(self, spec: ModelSpec, seed: int, **overrides: Any) -> TrainConfig:
        return self.scale.train_config(spec, seed, self.device, **overrides)

    def base_params(self, spec: ModelSpec, seed: int) -> dict[str, Any]:
        """The cell parameters that identify the dense ℓ1-trained network of ``(spec, seed)``."""
        return {"spec": spec.to_dict(), "seed": seed, "train": config_params(self.train_config(spec, seed))}

    def base_model(self, spec: ModelSpec, seed: int) -> nn.Module:
        """A fresh copy of the dense ℓ1-trained network of ``(spec, seed)`` (trained once per output folder)."""
        key = (spec.key, seed)
        if key not in self._models:
            params = self.base_params(spec, seed)
            folder = self.out / "_shared" / "train" / f"{spec.key}-seed{seed}-{params_hash(params)}"
            model = self.init_model(spec, seed)
            done = (folder / "checkpoint.pt").is_file()
            self.log(f"{spec.key} seed {seed}: {'loading' if done else 'training'} the dense network")
            train(model, self.data(spec), self.train_config(spec, seed), checkpoint_dir=folder, resume=True)
            self._models[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model = self.init_model(spec, seed)
        model.load_state_dict(self._models[key])
        return model.to(self.device)

    # ------------------------------------------------------------------------------------------- analyses
    def analysis_settings(self, spec: ModelSpec) -> AnalysisSettings:
        return self.scale.analysis_for(spec)

    def baseline_levels(self) -> list[float]:
        """The kept fractions of the comparison tables (IMP's rounds), added to every sweep grid."""
        q = 1.0 - self.scale.imp_prune_fraction
        return [q ** r for r in self.scale.baseline_rounds]

    def analysis(
        self,
        spec: ModelSpec,
        seed: int,
        model: nn.Module | Callable[[], nn.Module],
        *,
        tag: str,
        model_params: Any,
        within: Masks | None = None,
        settings: AnalysisSettings | None = None,
        allow_failure: bool = False,
    ) -> Analysis | None:
        """The (cached) :func:`~nets.experiments.analysis.analyze` of ``model``, identified by ``model_params``.

        ``model`` may be a function returning the network, called only when the analysis is not cached. With
        ``allow_failure=True`` an analysis that is undefined for this network (a ``ValueError`` such as
        ``ε = 0`` when every per-batch loss is 0) is stored as such and ``None`` is returned, so that a rerun
        does not retry it; otherwise the error propagates.
        """
        settings = self.analysis_settings(spec) if settings is None else settings
        params = {"model": model_params, "analysis": settings.to_dict(), "seed": seed, "tag": tag,
                  "extra_levels": self.baseline_levels(), "masked": within is not None}
        key = f"{tag}:{params_hash(params)}"
        if key not in self._analyses:
            def compute() -> dict[str, Any]:
                self.log(f"{spec.key} seed {seed}: limit analysis ({tag})")
                net = model if isinstance(model, nn.Module) else model()
                try:
                    return analyze(net, self.data(spec), settings, seed=seed, within=within,
                                   extra_levels=self.baseline_levels(), device=self.device).to_dict()
                except ValueError as exc:
                    if not allow_failure:
                        raise
                    self.log(f"{spec.key} seed {seed}: the analysis ({tag}) is undefined: {exc}")
                    return {"failed": str(exc)}

            rec = self.shared.compute("analysis", f"{spec.key}-seed{seed}-{tag}", params, compute)
            self._analyses[key] = None if "failed" in rec else Analysis.from_dict(rec)
        return self._analyses[key]

    def base_analysis(self, spec: ModelSpec, seed: int) -> Analysis:
        """The analysis of the dense ℓ1-trained network of ``(spec, seed)`` (trained only if not cached)."""
        return self.analysis(spec, seed, lambda: self.base_model(spec, seed), tag="base",
                             model_params=self.base_params(spec, seed))

    def cells(self, experiment: str) -> CellStore:
        """The cell store of one experiment (``DIR/NAME/cells``; one object per experiment and context)."""
        if experiment not in self._stores:
            self._stores[experiment] = CellStore(self.out / experiment / "cells")
        return self._stores[experiment]

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0
