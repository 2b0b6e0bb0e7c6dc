"""Merge the four log streams of a run into one time-ordered timeline for an id.

The id may be a run id, a job id, or any prefix of a correlation id
(``RUN/JOB/aN/...``); every record from ``operational``, ``performance``,
``domain`` and ``audit`` that belongs to it is printed in time order.
"""
from __future__ import annotations

import argparse
import os
import time

import orjson

from engine.config import load_settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT
from engine.cli.stores import open_store
from engine.records.streams import STANDARD_FIELDS, trace

NAME = "trace"
HELP = "one timeline across the four log streams for a run, job or attempt id"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ident", metavar="ID", help="run id, job id or correlation id prefix")
    p.add_argument("--run", default=None, help="run id (default: the run the id belongs to, else the latest)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--config", default=None)
    p.add_argument("--state-dir", default=None, help="the run's state directory (default: DROVER_STATE_DIR, "
                                                     "the settings file, drover-state)")


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config, overrides={"state_dir": args.state_dir})
    with open_store(loaded) as store:
        run_id = args.run or (args.ident.split("/")[0] if args.ident.startswith("r") and
                              any(r.run_id == args.ident.split("/")[0] for r in store.runs()) else None) \
            or store.latest_run_id()
        if run_id is None:
            console.error(f"no runs in {store.path}")
            return EXIT_INPUT
        run_dir = store.run(run_id).run_dir
    records = trace(run_dir, args.ident)
    if not records:
        console.error(f"no records for {args.ident!r} in {run_dir}")
        return 1
    for r in records:
        if args.json:
            console.result(orjson.dumps(r).decode())
            continue
        t = time.strftime("%H:%M:%S", time.localtime(float(r.get("ts", 0)))) + f".{int(float(r.get('ts', 0)) * 1000) % 1000:03d}"
        extra = " ".join(f"{k}={v}" for k, v in r.items() if k not in STANDARD_FIELDS and v is not None)
        console.result(f"{t} {r.get('stream', '?'):<11} {r.get('worker') or '-':<10} {r.get('correlation_id') or '-'}"
                       f"  {r.get('message')}  {extra}")
    console.line(f"{len(records)} records from {os.path.basename(run_dir)}: "
                 + ", ".join(f"{st}={sum(1 for r in records if r.get('stream') == st)}"
                             for st in ("operational", "performance", "domain", "audit")))
    return 0
