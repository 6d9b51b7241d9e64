"""The three scales of the experiments: ``tiny`` (tests, seconds), ``cpu`` (the bundled data, under 30 minutes on
two CPU cores) and ``paper`` (the pruning-limit paper's models, data and hyperparameters, for a GPU).

A :class:`Scale` names its networks (:class:`ModelSpec`: a model of :func:`nets.models.build_model` on a dataset
of :func:`nets.data.load_dataset`), the training recipe of the dense (ℓ1-trained, LOMP) networks, the limit
analysis settings (:class:`~nets.experiments.analysis.AnalysisSettings`) and every experiment's knobs. Each
value says where it comes from: the paper (docs/experiments.md §1.2: the authors' configs), Rare Gems' configuration
(:mod:`nets.raregems`), or ours (chosen so that the ``cpu`` scale fits its time budget).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nets.experiments.analysis import AnalysisSettings
from nets.train import TrainConfig, paper_config

__all__ = ["ModelSpec", "Scale", "SCALES", "get_scale"]


@dataclass(frozen=True)
class ModelSpec:
    """One network of a scale: ``model`` (a :func:`nets.models.build_model` name) on ``data`` (a
    :func:`nets.data.load_dataset` name), with the options of both, the training overrides of its dense run and
    its Hessian subset (``None``: the whole training set). ``cost`` is its relative compute cost, used only to
    share the networks between worker processes (``jobs``); it does not change any result."""

    key: str
    model: str
    data: str
    label: str
    data_options: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    hessian_samples: int | None = None
    slq_steps: int | None = None
    cost: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The fields that determine results (``cost`` left out: it only schedules work)."""
        d = dataclasses.asdict(self)
        d.pop("cost")
        d["model_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_kwargs.items()}
        return d


@dataclass(frozen=True)
class Scale:
    """Everything that sizes a run of the experiments (see the module docstring for the sources)."""

    name: str
    description: str
    models: tuple[ModelSpec, ...]
    seeds: int
    needs_data_root: bool
    #: base (dense, ℓ1) training: ``"paper"`` uses nets.train.paper_config per model, else these TrainConfig fields
    train: dict[str, Any]
    analysis: AnalysisSettings
    #: epochs of the retraining inside weight-scaling and iterative pruning (the base recipe otherwise)
    retrain_epochs: int
    scaling_factors: tuple[float, ...]
    iterative_rounds: int
    #: λ₂ of the l2 experiment (ℓ2 added to the base recipe's ℓ1)
    l2: float
    #: baselines: IMP prunes this fraction per round; the table's sparsities are IMP's rounds listed here
    imp_prune_fraction: float
    baseline_rounds: tuple[int, ...]
    imp_rewind_epoch: int
    #: Gem-Miner (Rare Gems): search epochs, fine-tuning epochs and lr, iter_period, score λ
    gem_epochs: int
    gem_finetune_epochs: int
    gem_finetune_lr: float
    gem_iter_period: int
    gem_score_l2: float
    #: tv-distance: bins of the histogram estimator, permutations of the sampling floor
    tv_bins: int
    tv_permutations: int
    #: hessian-row-l1: dense rows up to this N, else rows sampled at this many magnitude quantiles; Cauchy probes
    rows_exact_max_n: int
    row_quantiles: int
    row_probes: int
    #: slq-settings: grids and repetitions (independent probe draws) per setting
    slq_steps_grid: tuple[int, ...]
    slq_probes_grid: tuple[int, ...]
    slq_samples_grid: tuple[int | None, ...]
    slq_reps: int
    slq_base_steps: int
    slq_base_probes: int

    def model(self, key: str) -> ModelSpec:
        for spec in self.models:
            if spec.key == key:
                return spec
        raise ValueError(f"scale {self.name!r} has no model {key!r}; choose from {', '.join(m.key for m in self.models)}")

    def train_config(self, spec: ModelSpec, seed: int, device: str = "cpu", **overrides: Any) -> TrainConfig:
        """The dense (ℓ1, LOMP) training recipe of ``spec`` at ``seed``."""
        if self.train.get("recipe") == "paper":
            base = paper_config(spec.model, seed=seed, device=device)
            return dataclasses.replace(base, **{**spec.train, **overrides})
        return TrainConfig(**{**self.train, **spec.train, **overrides, "seed": seed, "device": device})

    def retrain_config(self, spec: ModelSpec, seed: int, device: str = "cpu", **overrides: Any) -> TrainConfig:
        """The base recipe for ``retrain_epochs`` epochs without warm-up (a retraining continues a trained net)."""
        cfg = self.train_config(spec, seed, device)
        ms = tuple(m for m in cfg.milestones if m < self.retrain_epochs)
        return dataclasses.replace(cfg, **{"epochs": self.retrain_epochs, "warmup_epochs": 0, "milestones": ms,
                                           **overrides})

    def analysis_for(self, spec: ModelSpec) -> AnalysisSettings:
        changes: dict[str, Any] = {}
        if spec.hessian_samples is not None:
            changes["hessian_samples"] = spec.hessian_samples
        if spec.slq_steps is not None:
            changes["slq_steps"] = spec.slq_steps
        return self.analysis.replace(**changes) if changes else self.analysis

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["models"] = [m.to_dict() for m in self.models]
        d["analysis"] = self.analysis.to_dict()
        return d


# ------------------------------------------------------------------------------------------------ tiny
_TS_TINY = {"n_train": 256, "n_test": 128, "input_dim": 8, "hidden": 8, "num_classes": 4}

TINY = Scale(
    name="tiny",
    description="tests only: a 96-weight MLP on a small seeded teacher-student task, a few epochs (seconds)",
    models=(ModelSpec("mlp-ts", "mlp", "teacher-student", "MLP 8-8-4 / teacher-student (tiny)",
                      data_options=_TS_TINY, model_kwargs={"hidden": (8,)}),),
    seeds=3,
    needs_data_root=False,
    train={"epochs": 6, "lr": 0.05, "l1": 1e-3, "batch_size": 64},
    analysis=AnalysisSettings(slq_steps=12, slq_probes=2, hessian_batch_size=256, eps_batch_size=64, sweep_step=0.05),
    retrain_epochs=2,
    scaling_factors=(1.0, 2.0, 3.0),
    iterative_rounds=2,
    l2=1e-2,
    imp_prune_fraction=0.5,
    baseline_rounds=(1, 2),
    imp_rewind_epoch=1,
    gem_epochs=3,
    gem_finetune_epochs=3,
    gem_finetune_lr=0.05,
    gem_iter_period=1,
    gem_score_l2=1e-4,
    tv_bins=10,
    tv_permutations=5,
    rows_exact_max_n=100,
    row_quantiles=10,
    row_probes=16,
    slq_steps_grid=(4, 8),
    slq_probes_grid=(1, 2),
    slq_samples_grid=(64, None),
    slq_reps=2,
    slq_base_steps=8,
    slq_base_probes=2,
)

# ------------------------------------------------------------------------------------------------ cpu
#: The digits recipe of ``prunelimit limit`` (nets.limit.DIGITS_TRAIN_DEFAULTS, ours): the paper's SGD recipe
#: (momentum 0.9, batch 128, constant lr, ℓ1 over all parameters) with λ₁ = 1e-3 and lr 0.05 for 60 epochs.
_CPU_TRAIN = {"epochs": 60, "lr": 0.05, "l1": 1e-3, "batch_size": 128}

CPU = Scale(
    name="cpu",
    description="the bundled data (scikit-learn digits, seeded teacher-student) and small models; "
                "`experiment all` fits in 30 minutes on 2 CPU cores",
    models=(
        ModelSpec("mlp-digits", "mlp", "digits", "MLP 64-32-10 / digits", model_kwargs={"hidden": (32,)}),
        ModelSpec("cnn-digits", "cnn", "digits", "CNN (2 conv + linear) / digits", data_options={"as_image": True},
                  hessian_samples=256, cost=2.0),
        ModelSpec("mlp-ts", "mlp", "teacher-student", "MLP 32-64-10 / teacher-student",
                  model_kwargs={"hidden": (64,)}),
    ),
    seeds=3,
    needs_data_root=False,
    train=_CPU_TRAIN,
    # 64 SLQ steps x 4 probes (ours, cost): the slq-settings experiment measures what 128 steps would change
    analysis=AnalysisSettings(slq_steps=64, slq_probes=4, sweep_step=0.005),
    retrain_epochs=20,
    scaling_factors=(1.0, 2.0, 3.0, 4.0, 5.0),
    iterative_rounds=3,
    l2=1e-3,
    imp_prune_fraction=0.5,
    baseline_rounds=(2, 3, 4, 5),
    imp_rewind_epoch=2,
    gem_epochs=30,
    gem_finetune_epochs=60,
    gem_finetune_lr=0.05,
    gem_iter_period=5,
    gem_score_l2=1e-4,
    tv_bins=100,
    tv_permutations=20,
    rows_exact_max_n=3000,
    row_quantiles=100,
    row_probes=128,
    slq_steps_grid=(8, 16, 32, 64, 128),
    slq_probes_grid=(1, 2, 4, 8),
    slq_samples_grid=(128, 256, 512, None),
    slq_reps=3,
    slq_base_steps=32,
    slq_base_probes=4,
)

# ------------------------------------------------------------------------------------------------ paper
PAPER = Scale(
    name="paper",
    description="the pruning-limit paper's models, data (CIFAR-10/100, TinyImageNet from --data-root) and "
                "hyperparameters (nets.train.paper_config: SGD, 200 epochs); for a GPU",
    models=(
        ModelSpec("fc5-cifar10", "fc5", "cifar10", "FC5 / CIFAR-10"),
        ModelSpec("fc12-cifar10", "fc12", "cifar10", "FC12 / CIFAR-10"),
        ModelSpec("alexnet-cifar10", "alexnet", "cifar10", "AlexNet / CIFAR-10", slq_steps=96),
        ModelSpec("vgg16-cifar10", "vgg16", "cifar10", "VGG16 / CIFAR-10"),
        ModelSpec("resnet18-cifar100", "resnet18", "cifar100", "ResNet18 / CIFAR-100"),
        ModelSpec("resnet50-cifar100", "resnet50", "cifar100", "ResNet50 / CIFAR-100"),
        ModelSpec("resnet50-tinyimagenet", "resnet50", "tinyimagenet", "ResNet50 / TinyImageNet"),
    ),
    seeds=3,
    needs_data_root=True,
    train={"recipe": "paper"},
    # the authors: 128 Lanczos steps (AlexNet 96), the whole training set, batch-128 loss std as eps, 0.001 grid;
    # 4 probes instead of their 1 (the package default: a finite SLQ standard error)
    analysis=AnalysisSettings(slq_steps=128, slq_probes=4, sweep_step=0.001, hessian_batch_size=512),
    retrain_epochs=20,
    scaling_factors=(1.0, 2.0, 3.0, 4.0, 5.0),
    iterative_rounds=3,
    l2=5e-4,
    imp_prune_fraction=0.2,
    baseline_rounds=(10, 14, 18),
    imp_rewind_epoch=2,
    gem_epochs=150,
    gem_finetune_epochs=150,
    gem_finetune_lr=0.01,
    gem_iter_period=5,
    gem_score_l2=1e-4,
    tv_bins=100,
    tv_permutations=20,
    rows_exact_max_n=3000,
    row_quantiles=100,
    row_probes=64,
    slq_steps_grid=(32, 64, 128),
    slq_probes_grid=(1, 2, 4),
    slq_samples_grid=(1000, 5000, None),
    slq_reps=3,
    slq_base_steps=64,
    slq_base_probes=2,
)

SCALES: dict[str, Scale] = {s.name: s for s in (TINY, CPU, PAPER)}


def get_scale(name: str) -> Scale:
    """The scale called ``name`` (``tiny``, ``cpu``, ``paper``).

    >>> get_scale("cpu").models[0].key
    'mlp-digits'
    """
    if name not in SCALES:
        raise ValueError(f"unknown scale={name!r}; choose one of {', '.join(SCALES)}")
    return SCALES[name]
