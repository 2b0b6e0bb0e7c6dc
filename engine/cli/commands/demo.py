"""Run a small demo batch on the bundled fixture site (no network needed).

It starts the fixture site on 127.0.0.1, writes two Recorder flows and a
12-job batch into a temporary folder — a form that is filled and submitted
(with an asserted navigation), and the login form drawn on a <canvas>,
driven by coordinate clicks with the password typed from a credential
store (mode 600) — and runs the batch through the real engine: a
supervisor forking 2 workers, each with its own headless Chromium,
shared-memory session ownership and credential locks, results in SQLite,
four JSON log streams.  It prints the run summary and ``demo: OK``.
The flows are in :mod:`engine.cli.demo_flows` (the bench runs them too).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from engine.config import Settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_JOB_FAILURES, EXIT_OK
from engine.execution.runs import RunRequest, execute, prepare
from engine.cli.commands.run import progress_printer
from engine.cli.outputs import EvidenceWriter, Outputs
from engine.cli.demo_flows import CANVAS_FLOW, CREDENTIAL_SCOPE, FORM_FLOW, SECRET_NAME, SECRET_VALUE
from navigation.fixture_site import FixtureSite

NAME = "demo"
HELP = "run a small demo batch on the bundled fixture site"

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=12, help="jobs in the demo batch (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the demo folder (results, logs, artifacts)")


def run(args: argparse.Namespace, console: Console) -> int:
    work = Path(tempfile.mkdtemp(prefix="drover-demo-"))
    with FixtureSite() as site:
        (work / "form.json").write_bytes(orjson.dumps(FORM_FLOW))
        (work / "canvas.json").write_bytes(orjson.dumps(CANVAS_FLOW))
        creds = work / "credentials.json"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps({SECRET_NAME: SECRET_VALUE}))
        with (work / "batch.jsonl").open("wb") as fh:
            for i in range(args.jobs):
                canvas = i % 3 == 2
                job = {"id": f"demo-{i:02d}", "flow": "canvas.json" if canvas else "form.json", "retries": 1,
                       "vars": {"BASE_URL": site.base_url, "name": f"Ada {i}"}}
                if canvas:
                    job["credential"] = CREDENTIAL_SCOPE
                fh.write(orjson.dumps(job) + b"\n")
        settings = Settings(workers=args.workers, state_dir=str(work / "state"))
        req = RunRequest(str(work / "batch.jsonl"), settings, credentials_path=str(creds))
        prepared = prepare(req)
        console.line(f"Drover demo: {args.jobs} jobs (form fill + canvas login) on {site.base_url}, "
                     f"{args.workers} workers")
        summary = execute(req, prepared, on_progress=progress_printer(console),
                          evidence=EvidenceWriter(Outputs(), settings.backend))  # summary.json, report.html
        console.end_status()
    for line in summary.lines():
        console.line(line)
    if args.keep:
        console.line(f"results: python -m engine results {prepared.run_id} --state-dir {work / 'state'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = summary.outcomes.get("passed", 0) == args.jobs
    console.result("demo: OK" if ok else "demo: FAILED")
    return EXIT_OK if ok else EXIT_JOB_FAILURES
