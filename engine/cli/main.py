"""Argument parsing and dispatch for ``python -m engine``.

Each subcommand lives in its own module under :mod:`engine.cli.commands` and
exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, console) -> int``; adding a command means adding it to
:data:`COMMANDS`, nothing else.
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
from engine.errors import StateBusy

COMMANDS: tuple[str, ...] = ("demo", "health", "validate", "replay", "config", "run", "results", "trace", "monitor",
                             "soak", "report", "readiness")


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"engine.cli.commands.{name}")


def build_parser(modules: list[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Drover: run recorded browser flows on many headless Chromium browsers.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    modules = [_load(name) for name in COMMANDS]
    args = build_parser(modules).parse_args(argv)
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


__all__ = ["COMMANDS", "build_parser", "main"]
