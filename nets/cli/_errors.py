"""The one error path of the command line: what a failure prints and which exit code it returns.

* a **user error** (a bad option value, a path that cannot be written, a device that does not exist, a run that
  cannot fit in memory, training that diverges): exit code 2 and one line
  ``prunelimit <command>: error: <what>, got <option> <value>; <what to do>``, no traceback;
* **Ctrl-C**: exit code 130 and ``interrupted; rerun the same command to resume from epoch N`` (or what else
  rerunning does);
* anything else (a bug, an out-of-memory the estimate missed): exit code 1 and one line naming the exception.

``--debug`` prints the traceback before the line. Subcommands raise :class:`UserError` (or the library's
``ValueError``/``TypeError``/``FileNotFoundError``, whose messages name the argument and value); the dispatcher
(:func:`nets.cli._runner.run_command`) turns every exception into the line and the exit code.
"""

from __future__ import annotations

import sys
import traceback
from typing import TextIO

__all__ = ["UserError", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED", "one_line", "report",
           "USER_ERRORS"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention

#: Exceptions that mean bad input: the library raises these with the argument and value in the message.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError, PermissionError)


class UserError(Exception):
    """A mistake the user can fix: exit code 2 and this message, one line.

    ``option``/``value`` name what to change (for the message and for tests)."""

    def __init__(self, message: str, *, option: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.option = option
        self.value = value


def one_line(text: str) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed)."""
    return " ".join(str(text).split())


def report(command: str, message: str, *, kind: str = "error", stream: TextIO | None = None,
           exc: BaseException | None = None, debug: bool = False, prefix: str = "") -> None:
    """Print ``prunelimit <command>: <kind>: <message>`` as one line (the traceback of ``exc`` first under
    ``debug``)."""
    out = sys.stderr if stream is None else stream
    if debug and exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=out)
    name = f"prunelimit {command}" if command else "prunelimit"
    print(f"{prefix}{name}: {kind}: {one_line(message)}", file=out, flush=True)
