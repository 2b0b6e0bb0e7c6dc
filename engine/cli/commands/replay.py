"""Replay one Recorder flow on one fresh browser, printing every step as it finishes.

``--fixture-site`` starts the bundled fixture site and sets ``${BASE_URL}``,
so the example flows run with no network.  Secrets (``{"secret": NAME}``)
come from ``--credentials FILE`` (mode 600) or ``DROVER_SECRET_<NAME>``
variables and are masked in everything printed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile

from engine.cli.commands.run import activate_plugins, add_plugin_arguments
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_JOB_FAILURES, EXIT_OK
from navigation.credentials import CredentialStore
from navigation.flow import load_flow
from navigation.lifecycle import BrowserLifecycle
from navigation.runner import FlowRunner, StepResult
from navigation.steps import build_registry

NAME = "replay"
HELP = "run one flow on one browser and print each step"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("flow", metavar="FLOW", help="Recorder JSON file")
    p.add_argument("--credentials", default=os.environ.get("DROVER_CREDENTIALS"),
                   help="JSON credential store (must be mode 600); else DROVER_SECRET_<NAME> variables")
    p.add_argument("--artifacts", default=None, help="artifact folder (default: a new temporary folder)")
    p.add_argument("--no-failure-screenshots", action="store_true",
                   help="on a failing step write only the (masked) DOM, no PNG (flows that draw secrets on a canvas)")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a ${NAME} substitution (repeatable)")
    p.add_argument("--fixture-site", action="store_true",
                   help="start the bundled fixture site and set ${BASE_URL} to it")
    add_plugin_arguments(p)


def run(args: argparse.Namespace, console: Console) -> int:
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            console.error(f"--var expects NAME=VALUE, got {item!r}")
            return EXIT_INPUT
        variables[name] = value
    activate_plugins(args)
    registry = build_registry()
    flow = load_flow(args.flow, extra_types=registry.extra_types())
    store = CredentialStore.from_file(args.credentials) if args.credentials else CredentialStore.from_env()
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="drover-replay-")

    def show(step: StepResult) -> None:
        mark = "ok  " if step.ok else "FAIL"
        sel = f"  [{step.matched_selector}]" if step.matched_selector else ""
        phase = f" <{step.phase}>" if step.phase else ""
        console.line(f"{mark} {step.timing_key:<24}{phase} {step.duration_ms:8.1f} ms{sel}")

    runner = FlowRunner(registry, resolve_secret=store.resolve, on_step=show,
                        failure_screenshots=not args.no_failure_screenshots)
    with contextlib.ExitStack() as stack:
        if args.fixture_site:
            from navigation.fixture_site import FixtureSite

            site = stack.enter_context(FixtureSite())
            variables.setdefault("BASE_URL", site.base_url)
        life = stack.enter_context(BrowserLifecycle())
        result = runner.run(flow, life.ensure(), artifacts_dir=artifacts, variables=variables)
    console.line(f"{'passed' if result.ok else 'failed'}: {flow.title!r} in {result.duration_ms:.0f} ms"
                 f" ({len(result.steps)}/{len(flow.steps)} steps)")
    for phase, ms in result.phase_ms.items():
        console.line(f"  phase {phase}: {ms:.1f} ms")
    if not result.ok:
        console.error(f"[{result.error_category}] {result.error}")
        return EXIT_JOB_FAILURES
    return EXIT_OK
