"""Soak / burn-in: run the batch in a loop for a duration on the production path.

Cron-friendly: one run or soak per state directory at a time, a dated run
directory, and one line on stdout (the verdict) unless ``-v``; alerts go to
stderr, the run's alerts file and the optional webhook as they fire.

Exit codes: 0 go, 4 no-go (an SLO breached or a safety counter non-zero),
6 aborted (a critical alert halted it), 5 could not start (another soak holds
the state directory), 2 could not start (invalid batch, SLO file or settings),
130 interrupted.
"""
from __future__ import annotations

import argparse

from engine.config import load_settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_ABORTED, EXIT_BUSY, EXIT_INTERRUPTED, EXIT_NO_GO, EXIT_OK
from engine.cli.commands.run import (activate_plugins, add_endpoint_argument, add_plugin_arguments, endpoint_override,
                                     progress_printer)
from engine.cli.outputs import add_metrics_argument
from engine.evidence.outputs import check_writable
from engine.evidence.outputs.metrics import soak_figures, write_metrics
from engine.evidence.slo import parse_duration
from engine.records import statedir
from engine.soak.loop import SoakBusy, SoakSettings, run_soak

NAME = "soak"
HELP = "run the batch in a loop for a duration with SLO budgets and alerts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch", help="batch file, one job per line")
    p.add_argument("--duration", required=True, help="how long: 90s, 10m, 24h, 1h30m")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--slo", default=None, help="SLO budget file (JSON or TOML, k6-style thresholds)")
    p.add_argument("--window", default=None, help="evaluation window (default: the SLO file's, else 1h)")
    p.add_argument("--webhook", default=None, help="POST every alert to this URL (JSON)")
    p.add_argument("--rollback-drill", action="store_true",
                   help="switch to the legacy sequential path at 40%% of the duration and back at 60%%, and "
                        "record that jobs kept completing with no loss and no duplicate outcome")
    p.add_argument("--config", default=None)
    p.add_argument("--state-dir", default=None)
    p.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="local: forked worker processes (default); ray: Ray actors on a cluster")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join (auto, HOST:6379); default: start a local Ray instance")
    p.add_argument("--credentials", default=None)
    add_endpoint_argument(p)
    add_metrics_argument(p)
    add_plugin_arguments(p)


def run(args: argparse.Namespace, console: Console) -> int:
    activate_plugins(args)
    loaded = load_settings(args.config, overrides={"workers": args.workers, "state_dir": args.state_dir,
                                                   "backend": args.backend, "ray_address": args.ray_address,
                                                   "browser_endpoints": endpoint_override(args)})
    s = loaded.settings
    soak = SoakSettings(duration_s=parse_duration(args.duration),
                        window_s=parse_duration(args.window) if args.window else None,
                        slo_path=args.slo, webhook=args.webhook, rollback_drill=args.rollback_drill,
                        metrics_path=args.metrics)
    if args.metrics:
        check_writable(args.metrics, "--metrics")  # exit 2 before the soak starts
    verbose = args.verbose > 0
    try:
        result = run_soak(args.batch, s, soak, credentials_path=args.credentials or s.credentials or None,
                          write_line=console.warn, on_progress=progress_printer(console) if verbose else None)
    except SoakBusy as exc:
        console.error(str(exc))
        return EXIT_BUSY
    console.end_status()
    verdict = "GO" if result.go else "NO-GO"
    agg = result.summary["aggregate"]
    console.result(f"soak {result.run_id}: {verdict} ({result.status}, {result.summary['cycles']} cycle(s), "
                   f"{agg['jobs']['passed']} passed, {agg['jobs']['failed']} failed)"
                   + (f": {'; '.join(result.reasons)}" if result.reasons else "") + f" — {result.run_dir}")
    if args.metrics:  # the soak's end, with its verdict's status (each window rewrote it while it ran)
        try:
            write_metrics(args.metrics, soak_figures(result.record, statedir.store_path(s.state_dir),
                                                     backend=s.backend))
        except OSError as exc:
            console.error(f"--metrics {args.metrics}: cannot write: {exc.strerror}")
    if result.status == "halted":
        return EXIT_ABORTED
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.go else EXIT_NO_GO
