"""Progress of a command: tqdm bars on a terminal, one log line per stage elsewhere, nothing when asked.

:func:`progress_mode` decides once per run: ``"bars"`` when stderr is a terminal, ``"lines"`` when it is a
file or pipe (a log, CI, ``nohup``), ``"off"`` with ``--no-progress``/``--quiet`` and on every rank but 0 under
``torchrun``. In ``"lines"`` mode each finished stage writes one line ``[  12.3 s] stage spectrum done: 4.1 s,
512 HVPs`` (the library logs it on ``nets.limit.pipeline``; the CLI adds training and its own stages), so a log
holds a handful of lines instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["progress_mode", "StageBars", "StageLogger", "training_progress", "STAGE_LOGGERS", "stage_line"]

#: The loggers whose INFO records are stage lines (the pipeline's, and the CLI's own).
STAGE_LOGGERS = ("nets.limit.pipeline", "nets.cli")

log = logging.getLogger("nets.cli")


def progress_mode(args: Any, *, rank: int = 0, stream: Any = None) -> str:
    """``"bars"``, ``"lines"`` or ``"off"`` (module docstring)."""
    if rank != 0 or getattr(args, "no_progress", False) or getattr(args, "quiet", False):
        return "off"
    s = sys.stderr if stream is None else stream
    try:
        return "bars" if s.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def stage_line(stage: str, seconds: float, cost: str = "") -> None:
    """Log one stage line (shown in ``"lines"`` mode)."""
    log.info("stage %s done: %.1f s%s", stage, seconds, f", {cost}" if cost else "")


class StageLogger(logging.Handler):
    """Writes the INFO records of :data:`STAGE_LOGGERS` (and warnings of every project logger) to ``stream``,
    each prefixed with the seconds since the run started."""

    def __init__(self, stream: Any = None, *, command: str = "") -> None:
        super().__init__(logging.INFO)
        self.stream = sys.stderr if stream is None else stream
        self.t0 = time.perf_counter()
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno >= logging.WARNING:
                line = f"prunelimit {self.command}: warning: {msg}"
            else:
                line = f"[{time.perf_counter() - self.t0:8.1f} s] {msg}"
            print(line, file=self.stream, flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class StageBars:
    """``progress(stage, done, total)`` callback drawing one tqdm bar per stage (``"bars"`` mode only)."""

    LABELS = {"tolerance": "dense loss and eps", "spectrum": "SLQ (Lanczos steps)", "predict": "predicted limits",
              "sweep": "magnitude-pruning sweep (levels)", "compensated": "compensated pruning (levels)",
              "oracle": "dense Hessian (columns)"}

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage), leave=False,
                                           file=sys.stderr)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def training_progress(mode: str, total_epochs: int, on_epoch: Callable[[int], None] | None = None,
                      desc: str = "training") -> Callable[[dict[str, float]], None]:
    """A :func:`nets.train.train` ``progress`` callback: a tqdm bar in ``"bars"`` mode; ``on_epoch(epoch)``
    after every epoch in every mode (the CLI records the last checkpointed epoch for Ctrl-C)."""
    bar = None
    if mode == "bars":
        from nets.train import tqdm_progress

        bar = tqdm_progress(total_epochs, desc=desc, leave=False, file=sys.stderr)

    def update(record: dict[str, float]) -> None:
        if on_epoch is not None:
            on_epoch(int(record["epoch"]))
        if bar is not None:
            bar(record)

    return update
