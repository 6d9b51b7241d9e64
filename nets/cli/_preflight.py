"""Checks a command makes before any compute, each failing with a :class:`~nets.cli._errors.UserError` that
names the option, the value and what to do.

* :func:`check_out_dir`: ``--out`` is a directory this process can write (created when missing, or — before the
  command's own checks — only checked to be creatable);
* :func:`check_device`: ``--device`` names a device this torch build has (``cuda`` on a CPU build, a CUDA
  index past the device count, ``mps`` without Metal, or a string torch does not parse are refused);
* :func:`check_json_path`, :func:`check_existing_dir`, :func:`check_existing_file` for ``--json``,
  ``--data-root`` and ``--checkpoint``;
* :func:`check_resume`: an ``--out`` that already holds a training run made with other options is refused with
  the options that differ and the two ways out (``--overwrite``, a new ``--out``); :func:`record_run` writes
  the run's identity (``run.json``) for the next time;
* :func:`check_memory`: the memory of every stage (:mod:`nets.limit.preflight`) against the device's, before
  training: a stage that cannot fit is refused, or switched to its streaming variant with a note.

:func:`generic_preflight` applies the first three to any subcommand whose options use these names (the
dispatcher calls it for every command, including ones that do not know this module).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nets.cli._errors import UserError

__all__ = ["generic_preflight", "check_out_dir", "check_device", "check_json_path", "check_existing_dir",
           "check_existing_file", "training_identity", "check_resume", "record_run", "check_memory", "RUN_FILE",
           "IDENTITY_OPTIONS"]

#: The file in ``--out`` recording the options that shaped the saved training (for :func:`check_resume`).
RUN_FILE = "run.json"

#: identity key -> the option that sets it
IDENTITY_OPTIONS = {"model": "--model", "hidden": "--hidden", "data": "--data", "data_root": "--data-root",
                    "epochs": "--epochs", "lr": "--lr", "l1": "--l1", "warmup_epochs": "--warmup-epochs",
                    "seed": "--seed"}


def _probe_write(d: Path, option: str, shown: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".prunelimit-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {shown} is not writable ({exc.strerror or exc}); choose a directory you can "
                        "write to", option=option, value=str(shown)) from exc


def check_out_dir(path: str | os.PathLike, *, option: str = "--out", create: bool = True) -> Path:
    """``path`` as a writable directory (module docstring); ``create=False`` only checks it could be made."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {p} is a file, not a directory; choose another {option}", option=option,
                        value=str(p))
    if p.is_dir():
        _probe_write(p, option, p)
        return p
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{option} {p} cannot be created: {anc} is a file, not a directory; choose another "
                        f"{option}", option=option, value=str(p))
    if not create:
        _probe_write(anc, option, p)
        return p
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {p} cannot be created ({exc.strerror or exc}); choose a directory you can "
                        "write to", option=option, value=str(p)) from exc
    _probe_write(p, option, p)
    return p


def check_device(name: str, *, option: str = "--device") -> str:
    """``name`` if this torch can compute there; else a :class:`UserError` saying what exists."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"{option} {name!r} is not a torch device; use cpu, cuda, cuda:N or mps", option=option,
                        value=name) from exc
    if dev.type == "cpu":
        return name
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA device is visible (CUDA_VISIBLE_DEVICES, driver)")
            raise UserError(f"{option} {name}: {why}; use --device cpu", option=option, value=name)
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UserError(f"{option} {name}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1}); use one of "
                            "them", option=option, value=name)
        return name
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError(f"{option} {name}: Metal (mps) is not available here; use --device cpu", option=option,
                            value=name)
        return name
    raise UserError(f"{option} {name}: device type {dev.type!r} is not supported; use cpu, cuda or mps",
                    option=option, value=name)


def check_json_path(path: str | os.PathLike, *, option: str = "--json") -> Path:
    """A file path whose directory exists and is writable (the file is written atomically at the end)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p} is a directory; give a file path", option=option, value=str(p))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{option} {p}: the directory {parent} does not exist; create it or choose another path",
                        option=option, value=str(p))
    _probe_write(parent, option, p)
    return p


def check_existing_dir(path: str | os.PathLike, *, option: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{option} {p} is not an existing directory", option=option, value=str(p))
    return p


def check_existing_file(path: str | os.PathLike, *, option: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{option} {p} is not an existing file", option=option, value=str(p))
    return p


def generic_preflight(args: argparse.Namespace) -> None:
    """The checks any subcommand gets from its option names: ``--out`` (creatable), ``--device``, ``--json``,
    ``--data-root``, ``--checkpoint``."""
    a = vars(args)
    if a.get("out") is not None:
        check_out_dir(a["out"], create=False)
    if a.get("device") is not None:
        args.device = check_device(str(a["device"]))
    if a.get("json") is not None:
        check_json_path(a["json"])
    if a.get("data_root") is not None:
        check_existing_dir(a["data_root"], option="--data-root")
    if a.get("checkpoint") is not None:
        check_existing_file(a["checkpoint"], option="--checkpoint")


# ------------------------------------------------------------------------------------------ resuming
def training_identity(args: argparse.Namespace, train_config: Any) -> dict[str, Any]:
    """What must match for a saved training to be resumed: the model, data and the effective training config."""
    tc = train_config.to_dict()
    return {"model": str(args.model).lower(), "hidden": None if args.hidden is None else list(args.hidden),
            "data": str(args.data).lower().replace("_", "-"),
            "data_root": None if args.data_root is None else str(Path(args.data_root).resolve()),
            **{k: v for k, v in tc.items() if k != "device"}}


def _show(key: str, value: Any) -> str:
    opt = IDENTITY_OPTIONS.get(key)
    if opt is None:
        return f"{key}={value!r} (no option; the code's default)"
    if value is None:
        return f"{opt} (unset)"
    if isinstance(value, list):
        return f"{opt} {' '.join(str(v) for v in value)}"
    return f"{opt} {value:g}" if isinstance(value, float) else f"{opt} {value}"


def check_resume(out: Path, identity: dict[str, Any], *, overwrite: bool, outputs: tuple[str, ...] = (),
                 check: bool = True) -> None:
    """Refuse to resume a different training in ``out`` (module docstring); ``overwrite=True`` removes the saved
    training, the run record and this command's ``outputs`` (only those files) instead; ``check=False`` does
    neither check nor remove (the other ranks of an ``--overwrite`` run)."""
    from nets.train import CHECKPOINT_NAME, HISTORY_NAME

    train_dir = out / "train"
    ckpt = train_dir / CHECKPOINT_NAME
    if overwrite:
        for f in (ckpt, train_dir / HISTORY_NAME, out / RUN_FILE, *(out / o for o in outputs)):
            f.unlink(missing_ok=True)
        return
    if not check or not ckpt.exists():
        return
    saved: dict[str, Any] | None = None
    try:
        saved = json.loads((out / RUN_FILE).read_text())["training"]
    except (OSError, ValueError, KeyError, TypeError):
        try:  # a run without run.json: the training config in history.json
            cfg = json.loads((train_dir / HISTORY_NAME).read_text())["config"]
            saved = {k: v for k, v in cfg.items() if k != "device"}
        except (OSError, ValueError, KeyError, TypeError):
            saved = None
    if saved is None:
        raise UserError(f"--out {out} holds a training checkpoint ({ckpt}) without a readable record of its "
                        "options; pass --overwrite to replace it, or choose a new --out", option="--out",
                        value=str(out))
    differ = [k for k in identity if k in saved and saved[k] != identity[k]]
    if differ:
        was = ", ".join(_show(k, saved[k]) for k in differ)
        now = ", ".join(_show(k, identity[k]) for k in differ)
        raise UserError(f"--out {out} holds a training run made with {was}; this command has {now}: pass "
                        "--overwrite to replace it, or choose a new --out", option=IDENTITY_OPTIONS.get(differ[0]),
                        value=identity[differ[0]])


def record_run(out: Path, command: str, identity: dict[str, Any] | None) -> None:
    """Write ``out/run.json`` (atomically) with the training identity, for the next :func:`check_resume`."""
    from nets.io import atomic_write_json

    atomic_write_json(out / RUN_FILE, {"format": "prunelimit.Run/1", "command": command, "training": identity},
                      indent=1)


# ------------------------------------------------------------------------------------------ memory
#: how the CLI spells the settings of nets.limit.preflight.check_plan's messages
CLI_SETTING_NAMES = {"steps": "--slq-steps", "n_probes": "--slq-probes", "oracle": "--exact on",
                     "samples": "--hessian-samples"}


def check_memory(model: Any, data: Any, config: Any, device: str, *, world_size: int = 1,
                 train_config: Any = None) -> tuple[Any, Any, tuple[str, ...]]:
    """Plan the memory of a run (:func:`nets.limit.plan_memory`, plus training when ``train_config`` is given)
    on ``device`` and decide (:func:`nets.limit.check_plan`): returns ``(config, plan, notes)``; a stage that
    cannot fit raises a :class:`UserError` naming the option."""
    import math

    from nets.limit.preflight import MemoryRefusal, StageMemory, available_memory, check_plan, plan_memory

    shape = tuple(data.input_shape)
    plan = plan_memory(model, input_shape=shape, n_train=len(data.train_eval), n_test=len(data.test), config=config,
                       world_size=world_size)
    if train_config is not None:
        p = plan.parameter_bytes
        act = plan.activation_bytes_per_sample * 3 * train_config.batch_size / world_size
        stages = (*plan.stages, StageMemory("train", int(3 * p + act + math.prod(shape) * 4 * train_config.batch_size),
                                            False, "model, gradients, optimiser state, one batch"))
        from dataclasses import replace

        plan = replace(plan, stages=stages)
    try:
        return check_plan(plan, config, available_memory(device), names=CLI_SETTING_NAMES)
    except MemoryRefusal as exc:
        raise UserError(str(exc), option=exc.setting) from exc
