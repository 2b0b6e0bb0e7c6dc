"""Validate Recorder flow files without running them.

Each file is parsed with the same schema and step-strategy registry the
runner uses, so a step nothing can run (an unknown type such as a
misspelt ``clip``, or a ``customStep`` without a handler) is named here,
with its index, before any job starts.
"""
from __future__ import annotations

import argparse

from engine.cli.commands.run import activate_plugins, add_plugin_arguments
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_OK
from navigation.errors import FlowError
from navigation.flow import load_flow
from navigation.steps import build_registry

NAME = "validate"
HELP = "check Recorder flow files (exit 0 when all are valid)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("flows", nargs="+", metavar="FLOW", help="Recorder JSON files")
    add_plugin_arguments(p)


def run(args: argparse.Namespace, console: Console) -> int:
    activate_plugins(args)
    registry = build_registry()
    bad = 0
    for path in args.flows:
        try:
            flow = load_flow(path, extra_types=registry.extra_types())
        except FlowError as exc:
            bad += 1
            console.result(f"FAIL {exc}")
            continue
        problems = registry.problems(flow)
        if problems:
            bad += 1
            console.result(f"FAIL {path}: {len(problems)} problem(s)")
            for p in problems:
                console.result(f"  - {p}")
            continue
        drift = f", {len(flow.unknown_fields)} unknown field(s) ignored" if flow.unknown_fields else ""
        aliases = f", {len(flow.aliases_applied)} old spelling(s) mapped" if flow.aliases_applied else ""
        console.result(f"ok   {path}: {flow.title!r}, {len(flow.steps)} steps{drift}{aliases}")
        unknown, old = flow.drift_summary
        if flow.unknown_fields:
            console.line(f"       unknown fields (kept, not acted on), count per field: {unknown}")
        if flow.aliases_applied:
            console.line(f"       old spellings mapped, count per spelling: {old}")
        for step in registry.unhandled_custom(flow):
            console.line(f"       note: {registry.custom_step_notice(step)}; skipped when run (--strict rejects it)")
    if len(args.flows) > 1:
        console.line(f"{len(args.flows) - bad} valid, {bad} invalid")
    return EXIT_INPUT if bad else EXIT_OK
