"""Print or export a run's results: one row per job with its final outcome.

``--format table`` (default) for people, ``json``, ``jsonl`` or ``csv`` for
tools; ``--attempts`` adds every attempt with its outcome, category and
error.  Every job carries its extracted data (``extract`` steps): a
``data`` object in json and jsonl (one job per line, for streaming into a
pipeline), one ``data.NAME`` column per name with JSON-encoded values in csv.
"""
from __future__ import annotations

import argparse

import orjson

from engine.config import load_settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT
from engine.cli.stores import open_store

NAME = "results"
HELP = "print or export the results of a run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", default="last", help="run id, or 'last' (default)")
    p.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table")
    p.add_argument("--attempts", action="store_true", help="include every attempt")
    p.add_argument("--config", default=None)
    p.add_argument("--state-dir", default=None, help="the runs' state directory (default: DROVER_STATE_DIR, "
                                                     "the settings file, drover-state)")


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config, overrides={"state_dir": args.state_dir})
    with open_store(loaded) as store:
        run_id = store.latest_run_id() if args.run_id == "last" else args.run_id
        if run_id is None:
            console.error(f"no runs in {store.path}")
            return EXIT_INPUT
        rec = store.run(run_id)
        rows = store.export_rows(run_id)
        attempts = store.attempts(run_id) if args.attempts else []
        if args.format == "json":
            doc = {"run": {"run_id": rec.run_id, "batch": rec.batch, "mode": rec.mode, "status": rec.status,
                           "workers": rec.workers, "started_at": rec.started_at, "finished_at": rec.finished_at},
                   "jobs": rows}
            if args.attempts:
                doc["attempts"] = [{"job_id": a.job_id, "attempt": a.attempt, "worker": a.worker, "epoch": a.epoch,
                                    "outcome": a.outcome, "category": a.category, "error": a.error,
                                    "duration_ms": a.duration_ms, "matched": a.matched, "steps": a.steps,
                                    "artifacts": a.artifacts} for a in attempts]
            console.result(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
            return 0
        if args.format == "jsonl":
            if args.attempts:
                console.error("--attempts goes with --format json or table (jsonl holds one job per line)")
                return EXIT_INPUT
            for row in rows:
                console.result(orjson.dumps({"run_id": run_id, **row}).decode())
            return 0
        if args.format == "csv":
            console.result(store.export_csv(run_id).rstrip("\n"))
            return 0
        counts = store.counts(run_id)
        console.result(f"run {run_id} ({rec.mode}, {rec.status}): {counts['passed']} passed, {counts['failed']} failed, "
                       f"{counts['pending']} pending, {counts['attempts']} attempts")
        for r in rows:
            ms = f"{r['duration_ms']:.0f}ms" if r["duration_ms"] is not None else "-"
            err = f"  [{r['category']}] {r['error'][:120]}" if r["error"] else ""
            console.result(f"  {r['job_id']:<20} {r['outcome']:<8} attempts={r['attempts']} {ms:>8}{err}")
        for a in attempts:
            console.result(f"    {a.job_id} a{a.attempt} {a.worker} epoch={a.epoch} {a.outcome} {a.category or ''} "
                           f"{(a.error or '')[:100]}")
    return 0
