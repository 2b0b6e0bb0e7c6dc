"""Run a batch of jobs (JSON Lines) on parallel workers, or on the legacy sequential path.

Exit codes: 0 all jobs passed, 1 some failed, 2 invalid input (nothing
run), 3 Drover/environment failure, 130 interrupted (drained; resume with
``--resume RUN_ID``).
"""
from __future__ import annotations

import argparse
import time

from engine.config import load_settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INTERRUPTED, EXIT_JOB_FAILURES, EXIT_OK
from engine.execution.runs import RunRequest, execute, prepare
from engine.execution.supervisor import Progress

NAME = "run"
HELP = "run a batch (JSON Lines) of recorded flows"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch", nargs="?", help="batch file, one job per line")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: from CPUs and memory)")
    p.add_argument("--mode", choices=("parallel", "legacy"), default=None,
                   help="legacy = the sequential rollback path (one process, no shared memory)")
    p.add_argument("--resume", metavar="RUN_ID", default=None, help="finish an interrupted run ('last' for the latest)")
    p.add_argument("--skip-invalid", action="store_true", help="report and skip bad batch lines instead of stopping")
    p.add_argument("--config", default=None, help="settings file (TOML)")
    p.add_argument("--state-dir", default=None, help="where results, logs and artifacts go")
    p.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="local: forked worker processes (default); ray: Ray actors on a cluster")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join (auto, HOST:6379); default: start a local Ray instance")
    p.add_argument("--credentials", default=None, help="credential store file (mode 600)")


def progress_printer(console: Console) -> "callable":
    last = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if not console.interactive and now - last[0] < 5 and p.done < p.total:
            return
        last[0] = now
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        eta = f"{(p.total - p.done) / rate:.0f}s" if rate > 0 else "-"
        width = 24
        filled = int(width * p.done / p.total) if p.total else width
        bar = "#" * filled + "." * (width - filled)
        console.status(f"[{bar}] {p.done}/{p.total} done, {p.failed} failed, {p.retries} retries, "
                       f"{p.running} running, {rate:.2f} jobs/s, ETA {eta}")
    return show


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config, overrides={"workers": args.workers, "mode": args.mode,
                                                   "state_dir": args.state_dir, "backend": args.backend,
                                                   "ray_address": args.ray_address})
    s = loaded.settings
    creds = args.credentials or s.credentials or None
    req = RunRequest(args.batch, s, resume=args.resume, skip_invalid=args.skip_invalid, credentials_path=creds,
                     settings_source=loaded.source)
    prepared = prepare(req)
    for problem in prepared.batch.skipped:
        console.warn(f"skipped: {problem}")
    workers = 1 if prepared.mode == "legacy" else s.effective_workers
    console.line(f"run {prepared.run_id}: {len(prepared.job_ids)} job(s), mode {prepared.mode}, {workers} worker(s)"
                 f"{' (auto: CPUs and free memory)' if not s.workers and prepared.mode != 'legacy' else ''}; "
                 f"settings from {loaded.source}; run dir {prepared.run_dir}")
    summary = execute(req, prepared, on_progress=progress_printer(console))
    console.end_status()
    for line in summary.lines():
        console.line(line)
    if summary.status == "interrupted":
        console.line(f"resume with: python -m engine run --resume {prepared.run_id}")
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.outcomes.get("failed", 0) == 0 and summary.outcomes.get("pending", 0) == 0 \
        else EXIT_JOB_FAILURES
