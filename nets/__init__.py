"""PyTorch side: models, data, training, Hessian-vector products, pruning, gRDA, the limit pipeline, CLI.

Modules: :mod:`nets.models`, :mod:`nets.data`, :mod:`nets.train`, :mod:`nets.hessian`, :mod:`nets.prune`,
:mod:`nets.grda`, :mod:`nets.limit`, :mod:`nets.cli`. The public names below are re-exported lazily (PEP 562),
so ``prunelimit geometry`` (which lives in :mod:`nets.cli`) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> defining module
_EXPORTS: dict[str, str] = {
    "PRUNABLE_MODULES": "nets.params",
    "prunable_parameters": "nets.params",
    "flatten": "nets.params",
    "unflatten_like": "nets.params",
    "count_parameters": "nets.params",
    "copy_model": "nets.params",
    "FC5": "nets.models",
    "FC12": "nets.models",
    "MLP": "nets.models",
    "MLPNet": "nets.models",
    "AlexNet": "nets.models",
    "VGG16": "nets.models",
    "ResNet18": "nets.models",
    "ResNet50": "nets.models",
    "ResNet20": "nets.models",
    "DigitsCNN": "nets.models",
    "MODEL_NAMES": "nets.models",
    "build_model": "nets.models",
    "init_weights": "nets.models",
    "ArrayDataset": "nets.data",
    "Augmentation": "nets.data",
    "BatchLoader": "nets.data",
    "DataSplit": "nets.data",
    "DATASET_NAMES": "nets.data",
    "CIFAR10_MEAN": "nets.data",
    "CIFAR10_STD": "nets.data",
    "CIFAR100_MEAN": "nets.data",
    "CIFAR100_STD": "nets.data",
    "IMAGENET_MEAN": "nets.data",
    "IMAGENET_STD": "nets.data",
    "load_dataset": "nets.data",
    "load_digits": "nets.data",
    "teacher_student": "nets.data",
    "load_cifar": "nets.data",
    "load_tinyimagenet": "nets.data",
    "make_loader": "nets.data",
    "fixed_batches": "nets.data",
    "TrainConfig": "nets.train",
    "TrainResult": "nets.train",
    "PAPER_CONFIGS": "nets.train",
    "paper_config": "nets.train",
    "train": "nets.train",
    "evaluate": "nets.train",
    "tqdm_progress": "nets.train",
    "CHECKPOINT_NAME": "nets.train",
    "HISTORY_NAME": "nets.train",
    "HessianOperator": "nets.hessian",
    "HVP_METHODS": "nets.hessian",
    "eval_mode": "nets.hessian",
    "Masks": "nets.prune",
    "PRUNING_METHODS": "nets.prune",
    "kept_count": "theory.limits",
    "global_magnitude_masks": "nets.prune",
    "layerwise_magnitude_masks": "nets.prune",
    "random_masks": "nets.prune",
    "smart_ratio_kept_counts": "nets.prune",
    "smart_ratio_masks": "nets.prune",
    "compute_masks": "nets.prune",
    "apply_masks": "nets.prune",
    "remove_masks": "nets.prune",
    "model_masks": "nets.prune",
    "mask_kept_fraction": "nets.prune",
    "SweepResult": "nets.prune",
    "magnitude_sweep": "nets.prune",
    "fine_tune": "nets.prune",
    "IMPResult": "nets.prune",
    "iterative_magnitude_pruning": "nets.prune",
    "GRDA": "nets.grda",
    "grda_update": "nets.grda",
    "threshold_increment": "nets.grda",
    "threshold_closed_form": "nets.grda",
    "THRESHOLD_PARAMS": "nets.grda",
    "CONVENTIONS": "nets.grda",
    "calibrate": "nets.grda",
    "calibrate_training": "nets.grda",
    "threshold_factor": "nets.grda",
    "StoppingRule": "nets.grda",
    "mask_overlap": "nets.directional",
    "GemMinerConfig": "nets.raregems",
    "gem_miner": "nets.raregems",
    "rare_gems": "nets.raregems",
    "directional_diagnostics": "nets.directional",
    "LimitResult": "nets.limit",
    "LimitConfig": "nets.limit",
    "LimitPair": "nets.limit",
    "LimitWarning": "nets.limit",
    "estimate_pruning_limit": "nets.limit",
    "ToleranceConfig": "nets.limit",
    "SpectrumConfig": "nets.limit",
    "PredictionConfig": "nets.limit",
    "MeasureConfig": "nets.limit",
    "OracleConfig": "nets.limit",
    "summarize_spectrum": "nets.limit",
    "CompensationConfig": "nets.compensate",
    "CompensationResult": "nets.compensate",
    "Compensator": "nets.compensate",
    "compensate": "nets.compensate",
    "train_default_model": "nets.train",
    "default_train_config": "nets.train",
    "load_state_dict": "nets.train",
    "DIGITS_TRAIN_DEFAULTS": "nets.train",
    "as_batches": "nets.data",
    "plot_limit": "nets.plots",
    "plot_spectrum": "nets.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
