"""Argument parsing and dispatch for ``python -m engine``.

Each subcommand lives in its own module under :mod:`engine.cli.commands` and
exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, console) -> int``; adding a command means adding it to
:data:`COMMANDS`, nothing else.

Two ways in, one parser: ``python -m engine`` (:func:`main`) and the
installed console script ``drover`` (:func:`console_script`), whose usage
and help name it.  ``--version`` prints the distribution and its version
(:mod:`engine.cli.version`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType

from coordination.errors import DroverError
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_BUSY, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED
from engine.cli.version import CONSOLE_SCRIPT, DISTRIBUTION, VERSION
from engine.errors import StateBusy

COMMANDS: tuple[str, ...] = ("demo", "health", "validate", "replay", "config", "run", "results", "trace", "monitor",
                             "soak", "report", "readiness")


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"engine.cli.commands.{name}")


MODULE_PROG = "python -m engine"


def build_parser(modules: list[ModuleType], prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Drover: run recorded browser flows on many headless Chromium browsers.",
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {VERSION}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None, console: Console | None = None, *, prog: str = MODULE_PROG) -> int:
    modules = [_load(name) for name in COMMANDS]
    args = build_parser(modules, prog).parse_args(argv)
    args.prog = prog  # how the operator called Drover, for the commands' hints
    level = logging.WARNING if args.verbose == 0 else (logging.INFO if args.verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    console = console or Console(quiet=args.quiet)
    try:
        return int(args._run(args, console))
    except BrokenPipeError:
        # The reader went away (`| head`): stop writing; point stdout at /dev/null so exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except StateBusy as exc:  # another run or soak holds the state directory: nothing was started
        console.error(f"[busy] {exc}")
        return EXIT_BUSY
    except DroverError as exc:
        console.error(f"[{type(exc).category}] {exc}")
        return EXIT_INPUT if type(exc).category == "input" else EXIT_INTERNAL


def console_script() -> int:
    """The ``drover`` console script (setup.py's entry point): ``main`` under its own name."""
    return main(prog=CONSOLE_SCRIPT)


__all__ = ["COMMANDS", "MODULE_PROG", "build_parser", "main", "console_script"]
