"""The ``prunelimit`` command line.

Each subcommand lives in its own module ``nets.cli.<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen subcommand's module is imported, so ``prunelimit geometry`` does not pay
for torch. The CLI renders results; the library never prints.

Every subcommand runs through :func:`nets.cli._runner.run_command`, which gives it the shared machinery
without the subcommand doing anything: torchrun process groups (rank 0 prints), the preflight of ``--out``,
``--device``, ``--json``, ``--data-root`` and ``--checkpoint``, the thread count, progress (bars on a terminal,
one line per stage otherwise) and one error path: a user error exits 2 with one line naming the option and
the value, Ctrl-C exits 130 saying how to resume, anything else exits 1 with one line; ``--debug`` (before or
after the subcommand) shows the traceback. Argument errors are one line too (``prunelimit limit: error:
argument --slq-steps: must be > 0, got 0``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

__all__ = ["main", "COMMANDS"]

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "geometry": ("nets.cli.geometry", "statistical dimensions of standard cones: closed form vs Monte Carlo vs cvxpy"),
    "spectrum": ("nets.cli.spectrum", "Hessian spectrum (SLQ) of a network"),
    "limit": ("nets.cli.limit", "both pruning limits of a network, predicted and measured"),
    "prune": ("nets.cli.prune", "prune a network to a kept fraction, optionally compensating the kept weights"),
    "grda": ("nets.cli.grda", "train with gRDA vs SGD and report directional-pruning diagnostics"),
    "experiment": ("nets.cli.experiment", "regenerate a figure or table of the pruning-limit paper (or all of them)"),
}


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: message``, exit code 2), without the
    usage block: the message already names the option and the value."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from nets.cli._errors import EXIT_USAGE, one_line

        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = (mod, help_)
    return out


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on ``parser`` and every nested subparser that lacks it (default SUPPRESS, so that a nested
    parser does not reset a value given before its name)."""
    if "--debug" not in parser._option_string_actions:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="print the traceback of an error (default: one line)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_debug(sub)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The ``prunelimit`` parser; only ``chosen``'s options are added (its module is imported)."""
    from nets.io import package_version

    commands = _available()
    parser = Parser(prog="prunelimit", description="How sparse can this network be pruned?")
    parser.add_argument("--version", action="version", version=f"prunelimit {package_version()}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="print the traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (mod, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            importlib.import_module(mod).add_arguments(p)
            _add_debug(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _available()
    chosen = next((a for a in argv if a in commands), None)
    parser = build_parser(chosen)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argument error (2, already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    from nets.cli._runner import run_command

    module = importlib.import_module(commands[args.command][0])
    # a subcommand's own subcommand (``grda calibrate``) names itself in messages through ``command_label``
    return run_command(getattr(args, "command_label", None) or args.command, module.run, args)


if __name__ == "__main__":
    sys.exit(main())
