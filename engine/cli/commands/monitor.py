"""Live view of a running batch: workers and their current jobs, rates, retries, contention, unowned uses.

Read only from the run's state, so a monitor can come and go without the
run noticing: the results store (opened read-only: it never holds a write
lock a worker waits for, never creates a store) and, while the run is live,
the run directory's shared memory (contention rows, copied lock-free; the
ownership table).  When the run is not live, or its segments are gone, the
view shows the store's figures and says why.

``--once`` prints one snapshot.  Otherwise the view is redrawn every
``--interval`` seconds (in place on a terminal, one line per interval
otherwise) until the run is no longer running, its supervisor has been gone
for a few seconds (a killed run: resume it), or Ctrl-C.  Exit 0; 2 when
there is no such run or no results store.

Live means a process holds the run's run lock (:func:`engine.records.rundir.run_lock_path`).  The monitor looks
the lock up in ``/proc/locks`` instead of trying to take it: a ``--resume``
starting at that instant takes it without waiting and would fail.
"""
from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path


from coordination import ContentionSnapshot, ContentionTelemetry, OwnershipTable, Slot
from coordination.errors import CoordinationError
from engine.config import load_settings
from engine.cli.console import Console
from engine.errors import ResultsStoreError
from engine.cli.exit_codes import EXIT_INPUT, EXIT_OK
from engine.cli.stores import readable_store, state_origin
from engine.records import rundir
from engine.records.statedir import StoreUnavailable
from engine.records.reader import CurrentJob, StateReader, StoreView

NAME = "monitor"
HELP = "live view of a running batch: workers, current jobs, rates, contention"

DEFAULT_INTERVAL = 2.0
# A running run whose run lock nobody holds for this long is dead (killed): stop watching it.
# Long enough to cover the moment between recording a run and its supervisor taking the lock.
GONE_AFTER_S = 5.0
LOCKS_FILE = "/proc/locks"
_CLEAR = "\x1b[H\x1b[J"  # cursor home, clear to the end of the screen


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"interval must be 0.1 .. 3600 seconds, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", default="last", metavar="RUN_ID", help="run id, or 'last' (default)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--interval", type=_interval, default=DEFAULT_INTERVAL,
                   help="seconds between redraws, and the window of the recent rate (default: %(default)s)")
    p.add_argument("--config", default=None, help="settings file (TOML)")
    p.add_argument("--state-dir", default=None, help="where the run's results and run directory are")


# -- what one look at the state sees ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveView:
    contention: ContentionSnapshot
    slots: dict[int, Slot]
    # The ownership table's totals (None when it could not be attached) count every use of the table;
    # the contention rows break the same events down per worker and miss processes without a row.
    # So: the totals when there are any, the rows otherwise, never the sum.
    table_unowned: int | None
    table_invalid: int | None

    @property
    def unowned_uses(self) -> int:
        agg = self.contention.aggregate
        return self.table_unowned if self.table_unowned is not None else agg.unowned_uses

    @property
    def invalid_transitions(self) -> int:
        agg = self.contention.aggregate
        return self.table_invalid if self.table_invalid is not None else agg.invalid_transitions


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float
    window: float
    store: StoreView
    supervisor: str  # "running" | "not running" | "unknown"
    live: LiveView | None = None
    live_note: str = ""

    @property
    def elapsed(self) -> float:
        run = self.store.run
        return max(0.0, (run.finished_at or self.taken_at) - run.started_at)

    @property
    def recent_rate(self) -> float:
        span = min(self.window, self.elapsed)
        return self.store.recent / span if span > 0 else 0.0

    @property
    def overall_rate(self) -> float:
        return self.store.done / self.elapsed if self.elapsed > 0 else 0.0


def supervisor_state(run_dir: str | os.PathLike[str], locks_file: str = LOCKS_FILE) -> str:
    """``running`` if a process holds the run's run lock, ``not running`` if none does, else ``unknown``.

    Matched by inode in ``/proc/locks`` (the device number there is the
    underlying file system's, which differs from ``stat`` on overlay mounts).
    """
    try:
        inode = os.stat(rundir.run_lock_path(run_dir)).st_ino
    except FileNotFoundError:
        return "not running"
    except OSError:
        return "unknown"
    try:
        with open(locks_file, encoding="ascii", errors="replace") as fh:
            table = fh.read()
    except OSError:
        return "unknown"
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4711 fe:00:2147785 0 EOF"; a waiter has "->" after the number.
        if len(parts) >= 6 and parts[1] != "->" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return "running"
    return "not running"


def live_view(run_dir: str) -> tuple[LiveView | None, str]:
    """The shared-memory figures of a live parallel run, or None and the reason there are none."""
    try:
        telemetry = ContentionTelemetry.attach(run_dir)
    except (CoordinationError, OSError) as exc:
        return None, f"no contention segment ({exc})"
    try:
        contention = telemetry.snapshot()
    finally:
        telemetry.close()
    try:
        table = OwnershipTable.attach(run_dir)
    except (CoordinationError, OSError) as exc:
        return LiveView(contention, {}, None, None), f"no ownership table ({exc})"
    try:
        slots = {s.index: s for s in table.snapshot()}
        totals = table.totals()
    finally:
        table.close()
    return LiveView(contention, slots, totals.unowned_uses, totals.invalid_transitions), ""


def take(reader: StateReader, run_id: str, window: float) -> Snapshot:
    now = time.time()
    view = reader.look(run_id, window, now)
    run = view.run
    supervisor = supervisor_state(run.run_dir) if run.status == "running" else "not running"
    if run.status != "running":
        note = f"run {run.status}: shared-memory figures are gone (see {Path(run.run_dir) / rundir.SUMMARY_TEXT})"
        return Snapshot(now, window, view, supervisor, None, note)
    if run.mode == "legacy":
        return Snapshot(now, window, view, supervisor, None, "legacy mode: no shared-memory coordination")
    if supervisor == "not running":
        return Snapshot(now, window, view, supervisor, None, "run not live: store figures only")
    live, note = live_view(run.run_dir)
    return Snapshot(now, window, view, supervisor, live, note)


# -- how it is shown ------------------------------------------------------------------------------


def _natural(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, -1)


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 120 else f"{int(s // 60)}m{int(s % 60):02d}s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def worker_names(snap: Snapshot) -> list[str]:
    view = snap.store
    expected = {"legacy"} if view.run.mode == "legacy" else {f"w{i}" for i in range(view.run.workers)}
    names = expected | {c.worker for c in view.current} | (set(view.done_by_worker) - {"supervisor"})
    return sorted(names, key=_natural)


def render(snap: Snapshot) -> list[str]:
    view, run = snap.store, snap.store.run
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
    lines = [f"run {run.run_id}: {run.status} ({run.mode}, {run.workers} worker(s)), {_seconds(snap.elapsed)} "
             f"elapsed, supervisor {snap.supervisor}  [{stamp}]",
             f"  jobs: {view.jobs} total, {view.passed} passed, {view.failed} failed, {view.pending} pending "
             f"({len(view.current)} running)",
             f"  attempts: {view.attempts}, retries {view.retries}, interrupted {view.interrupted}, lost {view.lost}",
             f"  rate: {snap.recent_rate:.2f} jobs/s over the last {snap.window:g}s, "
             f"{snap.overall_rate:.2f} jobs/s overall"]
    running: dict[str, list[CurrentJob]] = {}
    for job in view.current:
        running.setdefault(job.worker, []).append(job)
    rows = {w.worker: w for w in snap.live.contention.workers} if snap.live is not None else {}
    lines.append("  workers:")
    for name in worker_names(snap):
        jobs = running.get(name, [])
        doing = ", ".join(f"{j.job_id} (attempt {j.attempt}) for {_seconds(max(0.0, snap.taken_at - j.started_at))}"
                          for j in jobs) or "idle"
        extra = ""
        prefix, index = _natural(name)
        if snap.live is not None and prefix == "w":
            slot = snap.live.slots.get(index)
            if slot is not None:
                extra += f", slot {slot.state.name.lower()} epoch {slot.epoch}"
            if index in rows:  # a worker binds its row when it starts
                extra += f", reconnects {rows[index].forced_reconnects}"
        lines.append(f"    {name:<8} {doing:<44} done {view.done_by_worker.get(name, 0)}{extra}")
    if snap.live is not None:
        agg = snap.live.contention.aggregate
        lw = agg.lock_wait
        lines.append(f"  contention: lock wait n={lw.count} p50={_ms(lw.p50)} p99={_ms(lw.p99)} max={_ms(lw.max)}; "
                     f"forced reconnects {agg.forced_reconnects}; lock timeouts {agg.lock_timeouts}")
        lines.append(f"  safety: unowned session uses {snap.live.unowned_uses}, "
                     f"invalid transitions {snap.live.invalid_transitions}")
    if snap.live_note:
        lines.append(f"  ({snap.live_note})")
    return lines


def one_line(snap: Snapshot) -> str:
    view = snap.store
    busy = ", ".join(f"{c.worker}:{c.job_id} {_seconds(max(0.0, snap.taken_at - c.started_at))}"
                     for c in view.current)
    safety = (f", unowned {snap.live.unowned_uses}, invalid {snap.live.invalid_transitions}"
              if snap.live is not None else "")
    return (f"{time.strftime('%H:%M:%S', time.localtime(snap.taken_at))} {view.run.run_id} {view.run.status}: "
            f"{view.done}/{view.jobs} done, {view.failed} failed, {view.pending} pending, {view.retries} retries, "
            f"{snap.recent_rate:.2f} jobs/s (last {snap.window:g}s), {snap.overall_rate:.2f} overall; "
            f"running [{busy}]{safety}")


# -- the command ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config, overrides={"state_dir": args.state_dir})
    try:
        path = readable_store(loaded)  # exit 2 with the hint, as every command that reads a store
        try:
            reader = StateReader(path)
        except ResultsStoreError as exc:
            raise StoreUnavailable(path, f"SQLite cannot open the file to read ({exc})", state_origin(loaded)) \
                from exc
    except StoreUnavailable as exc:
        console.error(f"[{type(exc).category}] {exc}")
        return EXIT_INPUT
    with reader:
        try:
            run_id = reader.resolve(args.run_id)
        except ResultsStoreError as exc:
            console.error(str(exc))
            return EXIT_INPUT
        snap = take(reader, run_id, args.interval)
        if args.once:
            for line in render(snap):
                console.result(line)
            return EXIT_OK
        return _watch(reader, run_id, args.interval, snap, console)


def _watch(reader: StateReader, run_id: str, interval: float, snap: Snapshot, console: Console) -> int:
    tty = console.interactive
    if not tty:
        for line in render(snap):
            console.line(line)
    gone_since: float | None = None
    polled = False
    try:
        while True:
            if tty:
                console.status(_CLEAR + "\n".join(render(snap)))
            if snap.store.run.status != "running":
                break
            if snap.supervisor == "not running":
                gone_since = gone_since if gone_since is not None else time.monotonic()
                if time.monotonic() - gone_since >= GONE_AFTER_S:
                    break
            else:
                gone_since = None
            time.sleep(interval)
            snap = take(reader, run_id, interval)
            polled = True
            if not tty:
                console.line(one_line(snap))
    except KeyboardInterrupt:
        console.end_status()
        return EXIT_OK
    console.end_status()
    if not tty and polled:
        for line in render(snap):
            console.line(line)
    if snap.store.run.status == "running":
        console.warn(f"run {run_id} is recorded as running but its supervisor is gone; "
                     f"finish it with: python -m engine run --resume {run_id}")
    return EXIT_OK
