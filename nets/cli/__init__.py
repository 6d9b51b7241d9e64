"""The ``prunelimit`` command line.

Each subcommand lives in its own module ``nets.cli.<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen subcommand's module is imported, so ``prunelimit geometry`` does not pay
for torch. The CLI renders results; the library never prints.
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
}


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = (mod, help_)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _available()
    parser = argparse.ArgumentParser(prog="prunelimit", description="How sparse can this network be pruned?")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in commands else None
    for name, (mod, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            importlib.import_module(mod).add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(commands[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
