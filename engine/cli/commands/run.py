"""Run a batch of jobs (JSON Lines) on parallel workers, or on the legacy sequential path.

Every run writes its evidence into its run directory (``summary.json``,
``report.html``, the failure matrix, the drilldown of its first failure);
``--slo``, ``--junit``, ``--metrics`` and ``--summary-export`` are in
:mod:`engine.cli.outputs`.

Exit codes: 0 all jobs passed, 1 some failed, 2 invalid input (nothing
run), 3 Drover/environment failure, 4 an ``--slo`` threshold breached
(named on stderr; before 1), 130 interrupted (drained; resume with
``--resume RUN_ID``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from engine.config import load_settings
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INTERRUPTED, EXIT_JOB_FAILURES, EXIT_OK
from engine.cli.outputs import EvidenceWriter, add_output_arguments, finish, outputs_of
from engine.cli.stores import readable_store
from engine.execution.runs import RunRequest, execute, prepare
from engine.errors import BatchInputError
from engine.execution.supervisor import Progress
from navigation.flow import MAX_FLOW_BYTES
from navigation.flow.rebase import parse_base_url, rebase_recording
from navigation.steps import activate

NAME = "run"
HELP = "run a batch (JSON Lines) of recorded flows"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch", nargs="*", metavar="BATCH",
                   help="batch file (JSON Lines, one job per line), or Recorder recordings: a folder of *.json "
                        "files, a glob or .json files, each run once as a job")
    p.add_argument("--base-url", default=None, metavar="URL",
                   help="with recordings: rewrite the origin of every navigate, asserted and target URL to URL")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: from CPUs and memory)")
    p.add_argument("--sessions", type=sessions_arg, default=None, metavar="K|auto",
                   help="concurrent jobs per worker on its one browser (1..32, default 1); auto: as many as "
                        "the host has headroom for (bounds in [autoscale])")
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
    add_endpoint_argument(p)
    add_output_arguments(p)
    add_plugin_arguments(p)


def add_endpoint_argument(p: argparse.ArgumentParser) -> None:
    """``--cdp-endpoint URL`` (repeatable): remote browsers instead of launched ones (run, soak, health)."""
    p.add_argument("--cdp-endpoint", action="append", default=[], metavar="URL", dest="cdp_endpoint",
                   help="connect to the browser at URL instead of launching one: http://host:9222 or "
                        "ws://host:9222/devtools/browser/ID (repeatable; worker i uses endpoint i %% N)")


def endpoint_override(args: argparse.Namespace) -> tuple[str, ...] | None:
    return tuple(args.cdp_endpoint) or None


def add_plugin_arguments(p: argparse.ArgumentParser) -> None:
    """``--plugin MODULE`` (repeatable) and ``--strict``: shared by run, replay, validate and soak."""
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE for its step strategies / customStep handlers (repeatable); "
                        "installed drover.steps entry points are always loaded")
    p.add_argument("--strict", action="store_true",
                   help="reject a customStep that no handler runs, instead of skipping it with a warning")


def activate_plugins(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` modules before anything is built or forked (workers inherit them)."""
    activate(args.plugin, strict=args.strict)


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


def sessions_arg(text: str) -> int | str:
    """``--sessions``: an integer or ``auto`` (the range is the settings' to check)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 1..32 or 'auto', got {text!r}") from None


def run(args: argparse.Namespace, console: Console) -> int:
    activate_plugins(args)
    loaded = load_settings(args.config, overrides={"workers": args.workers, "mode": args.mode,
                                                   "sessions_per_worker": getattr(args, "sessions", None),
                                                   "state_dir": args.state_dir, "backend": args.backend,
                                                   "ray_address": args.ray_address,
                                                   "browser_endpoints": endpoint_override(args)})
    s = loaded.settings
    creds = args.credentials or s.credentials or None
    outputs = outputs_of(args)  # a bad SLO file or output path: exit 2 before anything is made or run
    batch_path, made = recordings_batch(args.batch, s.state_dir, args.base_url, console)
    req = RunRequest(batch_path, s, resume=args.resume, skip_invalid=args.skip_invalid, credentials_path=creds,
                     settings_source=loaded.source)
    if args.resume:
        readable_store(loaded)  # no store to resume from: exit 2 with the hint, as results/trace/monitor
    try:
        prepared = prepare(req)
    except BatchInputError:
        if made is not None:  # nothing runs: the generated batch goes too
            discard_recordings_batch(made, s.state_dir)
        raise
    for problem in prepared.batch.skipped:
        console.warn(f"skipped: {problem}")
    workers = 1 if prepared.mode == "legacy" else s.effective_workers
    sessions = s.sessions_per_worker if prepared.mode != "legacy" else 1
    shape = (f" x auto sessions (1..{s.session_slots} each)" if sessions == "auto"
             else f" x {sessions} sessions" if sessions > 1 else "")
    console.line(f"run {prepared.run_id}: {len(prepared.job_ids)} job(s), mode {prepared.mode}, {workers} worker(s)"
                 f"{' (auto: CPUs and free memory)' if not s.workers and prepared.mode != 'legacy' else ''}"
                 f"{shape}; "
                 f"settings from {loaded.source}; run dir {prepared.run_dir}")
    writer = EvidenceWriter(outputs, s.backend)
    summary = execute(req, prepared, on_progress=progress_printer(console), evidence=writer)
    console.end_status()
    for line in summary.lines():
        console.line(line)
    verdict = finish(outputs, writer.evidence, console) if writer.evidence is not None else None
    if summary.status == "interrupted":
        console.line(f"resume with: {getattr(args, 'prog', 'python -m engine')} run --resume {prepared.run_id}")
        return EXIT_INTERRUPTED
    if verdict is not None:
        return verdict
    return EXIT_OK if summary.outcomes.get("failed", 0) == 0 and summary.outcomes.get("pending", 0) == 0 \
        else EXIT_JOB_FAILURES


_GLOB = ("*", "?", "[")


def recordings_batch(items: list[str], state_dir: str, base_url: str | None,
                     console: Console) -> tuple[str | None, Path | None]:
    """(the batch file to run, the folder made for it or None) for ``run``'s positional arguments.

    One JSON Lines file is a batch, as ever.  Recordings — a folder (its
    ``*.json``), a glob, or ``.json`` files — become a batch of one job per
    recording (id: the file name without ``.json``), written with their
    ``--base-url`` copies under ``STATE_DIR/recordings/``, where a
    ``--resume`` finds them again.
    """
    if not items:
        return None, None
    if len(items) == 1 and not (os.path.isdir(items[0]) or items[0].endswith(".json")
                                or any(c in items[0] for c in _GLOB)):
        if base_url is not None:
            raise BatchInputError("--base-url applies to recordings (a folder, a glob or .json files); "
                                  f"{items[0]} is a JSON Lines batch: set the URLs with its jobs' vars")
        return items[0], None
    base = base_url
    if base is not None:
        try:
            parse_base_url(base)
        except ValueError as exc:
            raise BatchInputError(str(exc)) from exc
    paths: list[Path] = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(Path(item).glob("*.json"))
        elif any(c in item for c in _GLOB):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if p.endswith(".json"))
        else:
            found = [Path(item)]
        if not found:
            raise BatchInputError(f"{item}: no recordings (*.json) found")
        paths.extend(p.resolve() for p in found if p.resolve() not in paths)
    made = Path(state_dir) / "recordings" / (time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2))
    (made / "flows").mkdir(parents=True)  # a rejected batch removes it again (discard_recordings_batch)
    ids: set[str] = set()
    rewritten = 0
    with open(made / "batch.jsonl", "w", encoding="utf-8") as fh:
        for path in paths:
            job_id = path.stem.replace("/", "_").replace("@", "_")[:190] or "recording"
            while job_id in ids:
                job_id += "-2"
            ids.add(job_id)
            flow = str(path)
            if base is not None:
                copied, n = _rebased_copy(path, made / "flows" / f"{job_id}.json", base)
                if copied is not None:
                    flow, rewritten = str(copied), rewritten + n
            fh.write(json.dumps({"id": job_id, "flow": flow}) + "\n")
    console.line(f"recordings: {len(paths)} job(s) from {', '.join(items)}"
                 + (f"; origins rewritten to {base} ({rewritten} URL(s))" if base is not None else "")
                 + f"; batch {made / 'batch.jsonl'}")
    return str(made / "batch.jsonl"), made


def discard_recordings_batch(made: Path, state_dir: str) -> None:
    """Remove a generated batch that will not run, and the folders above it that it alone filled."""
    shutil.rmtree(made)
    for folder in (made.parent, Path(state_dir)):
        if any(folder.iterdir()):
            return
        folder.rmdir()


def _rebased_copy(path: Path, target: Path, base: str) -> tuple[Path | None, int]:
    """Write ``path`` pointed at ``base`` to ``target``; a file that does not decode is left to the loader,
    whose error names the original file."""
    try:
        if path.stat().st_size > MAX_FLOW_BYTES:
            return None, 0
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, 0
    rebased, count = rebase_recording(data, base)
    target.write_text(json.dumps(rebased, indent=1), encoding="utf-8")
    return target, count
