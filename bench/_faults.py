"""``python -m bench faults BATCH``: a fault campaign against the user's own batch.

For each fault kind and each trial: a fresh state directory and TMPDIR
under a folder the campaign owns, ``python -m engine run BATCH`` as a
subprocess, a wait until a random number of outcomes (1 .. n-1) is in the
store plus a random delay, then the fault:

``worker``      SIGKILL one forked worker (a direct child of the engine that is
                not multiprocessing's resource tracker);
``browser``     SIGKILL one Chromium main process (a descendant with
                ``--remote-debugging-port`` and no ``--type=``);
``supervisor``  SIGKILL the engine process; its recorded descendants must be
                gone within 3 s; then ``run --resume``;
``sigterm``     SIGTERM the engine process (it drains, exits 130); then
                ``run --resume``.

Half of the trials are *aimed*: no delay after the chosen outcome, which
is watched for every 2 ms, and the signal goes to the process that wrote
it (the worker, or that worker's browser): the few milliseconds right
after a commit are where a crash splits what the store knows from what
the supervisor knows.  The other half wait a random delay of up to half a
job.  A trial whose run ended before its fault could go in (and broke
nothing) draws its moment again, up to :data:`MISS_TRIES` times.  With ``--reader`` a thread opens the store
read-write every 50 ms from just before a supervisor kill until the resume
starts, as ``results`` and ``monitor`` do.

Before the trials, one control run without a fault measures the batch
(its length bounds every wait; whether it fails jobs by itself decides
which final exit code is right).  Every run's evidence then goes through
:func:`bench._faultcheck.check_trial`.  Each trial's choices come from
``random.Random(f"{seed}:{kind}:{trial}")``, so ``--seed S --kinds K
--trials N`` repeats trial N's choices (the run's own timing may differ).

Processes: the campaign kills only what it started — the engine runs it
launched, and descendants it saw under them (pid and start time, from
psutil walks of those pids while they ran).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import psutil

from bench._faultcheck import (GONE_WITHIN_S, EvidenceError, Leftovers, ReaderStats, RunExit, SupervisorKill,
                               TrialEvidence, check_trial)
from bench._faultreport import CONTROL, KINDS, FaultReport, TrialRecord, Violation
from bench._run import UsageError
from engine.cli.console import Console
from engine.config import load_settings
from engine.errors import ResultsStoreError
from engine.records.rundir import stream_path
from engine.records.statedir import store_path
from engine.records.store import ResultsStore
from navigation.launcher import PROFILE_PREFIX, TMP_PREFIX

EXIT_OK, EXIT_VIOLATION, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
_ROOT = str(Path(__file__).resolve().parents[1])  # where ``engine`` imports from, for the child runs
_TAG = {CONTROL: "c", "worker": "w", "browser": "b", "supervisor": "k", "sigterm": "t"}
LEFTOVER_PREFIXES = (PROFILE_PREFIX, TMP_PREFIX, "org.chromium.Chromium.")
SHM_DIR = Path("/dev/shm")
POLL_S = 0.02             # outcome-count poll while waiting for the kill moment
FAST_POLL_S = 0.002       # ... in an aimed trial, once the outcome before the moment is in
SCAN_S = 0.2              # process-tree walks while a run is going
GONE_POLL_S = 0.005       # after a supervisor SIGKILL: how finely time-to-gone is measured
LEFTOVER_GRACE_S = 5.0    # after the last run: processes and folders get this long to go away
STRAGGLER_WAIT_S = 30.0   # processes still alive after a supervisor kill: waited for, then killed
STOP_WAIT_S = 20.0        # an interrupted campaign gives the run under way this long to stop cleanly
MISS_TRIES = 3            # a clean trial whose fault could not go in (the run ended first) draws again
READER_PERIOD_S = 0.05
READER_LIMIT_S = 900.0
MAX_TMPDIR = 42           # a longer TMPDIR sends Chromium's folders to /tmp, outside the trial's (navigation._reaper)


# -- processes ------------------------------------------------------------------------------------------------


def _running(p: psutil.Process) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # gone between the two questions
        return False


def _describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid} {' '.join(p.cmdline())[:140]}"
    except psutil.NoSuchProcess:
        return f"pid {p.pid} (exited)"
    except psutil.AccessDenied:
        return f"pid {p.pid} (cmdline not readable)"


def _cmdline(p: psutil.Process) -> list[str] | None:
    try:
        return p.cmdline()
    except psutil.NoSuchProcess:  # exited (or a zombie) while we looked: not a target any more
        return None


class ProcessTracker:
    """Every process the campaign started, and every descendant it saw under them (pid + start time)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], psutil.Process] = {}

    def scan(self, root_pid: int) -> list[psutil.Process]:
        """The live tree under ``root_pid`` (root first), remembered; [] when the root has exited."""
        try:
            root = psutil.Process(root_pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:  # the root is gone: the descendants it had were seen by earlier walks
            return []
        for p in tree:
            self._seen.setdefault((p.pid, p.create_time()), p)
        return tree

    def alive(self) -> list[psutil.Process]:
        return [p for p in self._seen.values() if _running(p)]

    def kill_alive(self) -> list[str]:
        """SIGKILL every remembered process still alive (psutil refuses a pid reused by someone else)."""
        killed = []
        for p in self.alive():
            try:
                p.kill()
                killed.append(_describe(p))
            except psutil.NoSuchProcess:  # exited (or the pid now belongs to another process): nothing of ours
                continue
        return killed


def _workers(engine: psutil.Process) -> list[psutil.Process]:
    """The engine's forked workers: its direct children, less multiprocessing's resource tracker."""
    try:
        children = engine.children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for c in children:
        cmd = _cmdline(c)
        if cmd and not any("resource_tracker" in part for part in cmd):
            out.append(c)
    return out


def _browsers(under: psutil.Process) -> list[psutil.Process]:
    """Chromium main processes below ``under``: DevTools port, no ``--type=``, not the reaper (python)."""
    try:
        tree = under.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in tree:
        cmd = _cmdline(p)
        if not cmd or any(part.endswith("_reaper.py") for part in cmd):
            continue
        if any(a.startswith("--remote-debugging-port") for a in cmd) and not any(a.startswith("--type=") for a in cmd):
            out.append(p)
    return out


# -- the store, read from outside -------------------------------------------------------------------------------


def _query(path: Path, sql: str, params: tuple = ()) -> list[tuple] | None:
    """Rows of a read-only query; None while the store or its schema does not exist yet, or is busy."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.OperationalError:  # created but not openable yet (the run is starting): ask again
        return None
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # "no such table" (schema not written yet) or "locked": ask again
        return None
    finally:
        db.close()


def _progress_of(path: Path) -> tuple[int, str | None]:
    """(outcomes in the store, the worker that wrote the latest one) in one read."""
    rows = _query(path, "SELECT COUNT(*), (SELECT worker FROM outcomes ORDER BY recorded_at DESC LIMIT 1) "
                        "FROM outcomes")
    return (int(rows[0][0]), rows[0][1]) if rows else (0, None)


def _run_of(path: Path) -> tuple[str, Path] | None:
    rows = _query(path, "SELECT run_id, run_dir FROM runs ORDER BY started_at DESC LIMIT 1")
    return (rows[0][0], Path(rows[0][1])) if rows else None


def _worker_pids(run_dir: Path) -> dict[str, int]:
    """Worker name -> pid, from the latest ``worker_started`` record of each (a replacement reuses the name)."""
    path = stream_path(run_dir, "operational")
    if not path.exists():
        return {}
    pids: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        if b'"worker_started"' not in line:
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:  # a torn last line of a live stream: the next look sees it whole
            continue
        if rec.get("event") == "worker_started" and rec.get("worker") and rec.get("pid"):
            pids[str(rec["worker"])] = int(rec["pid"])
    return pids


class _Reader(threading.Thread):
    """Opens the store read-write every 50 ms (what ``results`` and ``monitor`` do) until told to stop."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="faults-reader", daemon=True)
        self.path = path
        self.stop_event = threading.Event()
        self.opens = 0
        self.errors: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + READER_LIMIT_S
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                with ResultsStore(self.path, timeout=5.0) as store:
                    store.latest_run_id()
                self.opens += 1
            except (ResultsStoreError, sqlite3.Error) as exc:  # the finding itself: kept, reported as reader_ok
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop_event.wait(READER_PERIOD_S)

    def finish(self) -> ReaderStats:
        self.stop_event.set()
        self.join(30)
        return ReaderStats(self.opens, tuple(self.errors))


# -- one trial -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    batch: Path
    batch_arg: str
    kinds: tuple[str, ...]
    trials: int
    seed: int
    workers: int
    reader: bool
    credentials: Path | None
    keep: bool


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the control run taught: the batch's size and length, and whether it fails jobs by itself."""

    jobs: int
    elapsed_s: float
    exit_code: int
    job_s: float  # one job's share of a worker's time, from the control run's outcome timestamps

    @property
    def final_codes(self) -> tuple[int, ...]:
        return (0, 1) if self.exit_code == 1 else (0,)


@dataclass(slots=True)
class TrialResult:
    record: TrialRecord
    violations: list[Violation]
    dir: Path
    jobs: int     # jobs in the trial's run
    keep: bool    # an invariant broke (or --keep): the folder stays for inspection


class Trial:
    """One run (or run + resume) of the batch with one fault, and the evidence it leaves."""

    def __init__(self, cfg: CampaignConfig, root: Path, kind: str, index: int, base: Baseline | None,
                 drain_grace: float, attempt: int = 1) -> None:
        self.cfg, self.kind, self.index, self.base, self.attempt = cfg, kind, index, base, attempt
        self.dir = root / f"{_TAG[kind]}{index:02d}" if attempt == 1 else root / f"{_TAG[kind]}{index:02d}-{attempt}"
        self.state = self.dir / "s"
        self.tmp = self.dir / "t"
        self.store = Path(store_path(str(self.state)))
        self.rng = random.Random(f"{cfg.seed}:{kind}:{index}" + (f":{attempt}" if attempt > 1 else ""))
        self.tracker = ProcessTracker()
        expected = base.elapsed_s if base else 120.0
        self.bound_s = 60.0 + 4.0 * expected + (drain_grace if kind == "sigterm" else 0.0)
        self.exits: list[RunExit] = []
        self.target = "no fault (control)" if kind == CONTROL else ""
        self.injected = False
        self.at_outcomes = 0
        self.delay_s = 0.0
        self.kill: SupervisorKill | None = None
        self.reader: _Reader | None = None
        self.reader_stats: ReaderStats | None = None
        self._aim_at: dict[str, psutil.Process] = {}  # aimed trials: the workers, looked up before the moment
        self._proc: subprocess.Popen[bytes] | None = None

    # -- running the engine --------------------------------------------------------------------------------

    def _start(self, label: str, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "engine", "run", *args, "--workers", str(self.cfg.workers),
               "--state-dir", str(self.state)]
        if self.cfg.credentials is not None:
            cmd += ["--credentials", str(self.cfg.credentials)]
        env = {**os.environ, "TMPDIR": str(self.tmp),
               "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        with open(self.dir / f"{label}.out", "wb") as out, open(self.dir / f"{label}.err", "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, close_fds=True,
                                    start_new_session=True)  # the operator's Ctrl-C stops the campaign, which cleans up
        self.tracker.scan(proc.pid)
        self._proc = proc
        return proc

    def _wait(self, proc: subprocess.Popen[bytes], bound_s: float) -> int | None:
        """The run's exit code; None when it was still running at ``bound_s`` (then its tree is killed)."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return code
            self.tracker.scan(proc.pid)
            time.sleep(SCAN_S)
        self.tracker.kill_alive()
        proc.wait(30)
        return None

    def _stop_running(self) -> None:
        """A run still going when the trial ends early (the campaign was interrupted): stop it the engine's way.

        Two SIGTERMs: drain, then stop at once; the engine closes its attempts
        as interrupted, its workers and browsers, and its shared memory.
        Whatever of ours is left after that is killed by the caller.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:  # killed with the rest of the tree by the caller
            return

    def _record(self, label: str, code: int | None, expected: tuple[int, ...], bound_s: float) -> None:
        out = (self.dir / f"{label}.out").read_text(errors="replace")
        self.exits.append(RunExit(label, code, expected, out, bound_s))

    # -- the fault -------------------------------------------------------------------------------------------

    def _await_moment(self, proc: subprocess.Popen[bytes], k: int, aimed: bool) -> tuple[int, str | None] | None:
        """Until ``k`` outcomes are in the store: (outcomes, who wrote the latest); None if the run ends first.

        Aimed trials poll every 2 ms once ``k - 1`` outcomes are in, with the
        workers' pids at hand: the window between a worker's commit and the
        supervisor hearing of it is a few milliseconds.
        """
        deadline = time.monotonic() + self.bound_s
        next_scan = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            count, writer = _progress_of(self.store)
            if count >= k:
                return count, writer
            close = aimed and count == k - 1
            if time.monotonic() >= next_scan:
                self.tracker.scan(proc.pid)
                if close:
                    self._aim_at = self._workers_by_name(proc.pid)
                next_scan = time.monotonic() + SCAN_S
            time.sleep(FAST_POLL_S if close else POLL_S)
        return None

    def _workers_by_name(self, engine_pid: int) -> dict[str, psutil.Process]:
        """The engine's live workers by name (w0, w1 ...), ready to be signalled without another lookup."""
        run = _run_of(self.store)
        out = {}
        for name, pid in (_worker_pids(run[1]) if run else {}).items():
            try:
                p = psutil.Process(pid)
                if p.ppid() == engine_pid:
                    out[name] = p
            except psutil.NoSuchProcess:  # a worker that died (or was replaced) since its record
                continue
        return out

    def _victim(self, proc: subprocess.Popen[bytes], writer: str | None) -> psutil.Process | None:
        """The process this kind kills; with a ``writer`` (aimed), the worker that wrote the latest outcome,
        or that worker's browser."""
        try:
            engine = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return None
        if self.kind in ("supervisor", "sigterm"):
            return engine
        aimed = self._aim_at.get(writer) if writer is not None else None
        if self.kind == "worker" and aimed is not None and _running(aimed):
            return aimed  # no process walk between the commit and the signal
        workers = _workers(engine)
        preferred: list[psutil.Process] = []
        if writer is not None:
            aimed = self._aim_at.get(writer) or self._workers_by_name(proc.pid).get(writer)
            preferred = [w for w in workers if aimed is not None and w.pid == aimed.pid]
        if self.kind == "worker":
            pool = preferred or workers
        else:
            pool = [b for w in preferred for b in _browsers(w)] or [b for w in workers for b in _browsers(w)]
        return self.rng.choice(pool) if pool else None

    def _inject(self, proc: subprocess.Popen[bytes]) -> None:
        n = self.base.jobs if self.base else 2
        k = self.rng.randint(1, max(1, n - 1))
        aimed = self.rng.random() < 0.5
        # at most half a job: longer, and with k = n - 1 the run would often end before the fault
        self.delay_s = 0.0 if aimed else self.rng.uniform(0.0, 0.5 * (self.base.job_s if self.base else 1.0))
        moment = self._await_moment(proc, k, aimed)
        if moment is None:
            self.target = f"none: the run ended before {k} outcome(s)"
            return
        self.at_outcomes, writer = moment
        if self.delay_s:
            time.sleep(self.delay_s)
            self.at_outcomes = _progress_of(self.store)[0]
        if proc.poll() is not None or self.at_outcomes >= n:
            self.target = f"none: the run had finished ({self.at_outcomes}/{n} outcomes) at the kill moment"
            return
        victim = self._victim(proc, writer if aimed else None)
        if victim is None:
            self.target = f"none: no {self.kind} process found"
            return
        sig = signal.SIGTERM if self.kind == "sigterm" else signal.SIGKILL
        what = {"worker": "worker", "browser": "chromium", "supervisor": "engine", "sigterm": "engine"}[self.kind]
        if self.kind == "supervisor":
            if self.cfg.reader:
                self.reader = _Reader(self.store)
                self.reader.start()
            self._kill_supervisor(proc)
        else:
            try:
                victim.send_signal(sig)
            except psutil.NoSuchProcess:  # it exited on its own in the meantime: no fault went in
                self.target = f"none: the chosen {what} pid {victim.pid} exited before the signal"
                return
        self.injected = True
        aim = f" (aimed: right after {writer}'s outcome)" if aimed and writer else ""
        self.target = f"{sig.name} {what} pid {victim.pid}{aim}"

    def _kill_supervisor(self, proc: subprocess.Popen[bytes]) -> None:
        tree = self.tracker.scan(proc.pid)  # what must die with it, recorded just before the kill
        proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        gone_at: float | None = None
        while time.monotonic() - t0 < GONE_WITHIN_S:
            proc.poll()  # reap our own child so it is not counted as a zombie
            if not any(_running(p) for p in tree):
                gone_at = time.monotonic() - t0
                break
            time.sleep(GONE_POLL_S)
        alive = [p for p in tree if _running(p)]
        described = tuple(_describe(p) for p in alive)
        deadline = time.monotonic() + STRAGGLER_WAIT_S
        while alive and time.monotonic() < deadline:  # the violation is recorded; give them a chance, then kill
            time.sleep(GONE_POLL_S)
            alive = [p for p in alive if _running(p)]
        late = None if gone_at is not None or alive else time.monotonic() - t0
        self.kill = SupervisorKill(len(tree), described, gone_at, late)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:  # went at the last moment
                continue

    # -- the whole trial -------------------------------------------------------------------------------------

    def run(self) -> TrialResult:
        t0 = time.monotonic()
        self.tmp.mkdir(parents=True)
        final = self.base.final_codes if self.base else (0, 1)
        try:
            proc = self._start("run", str(self.cfg.batch))
            if self.kind != CONTROL:
                self._inject(proc)
            resume = self.kind in ("supervisor", "sigterm") and self.injected
            first = {"supervisor": (-signal.SIGKILL,), "sigterm": (EXIT_INTERRUPTED,)}.get(self.kind, final) \
                if resume else final
            self._record("run", self._wait(proc, self.bound_s), first, self.bound_s)
            if resume:
                if self.reader is not None:
                    self.reader_stats = self.reader.finish()
                run = _run_of(self.store)
                if run is None:
                    raise EvidenceError(f"no run in {self.store} to resume")
                proc = self._start("resume", "--resume", run[0])
                self._record("resume", self._wait(proc, self.bound_s), final, self.bound_s)
            leftovers = self._leftovers()
        finally:
            if self.reader is not None and self.reader.is_alive():
                self.reader_stats = self.reader.finish()
            self._stop_running()
            self.tracker.kill_alive()
        run = _run_of(self.store)
        if run is None:
            raise EvidenceError(f"the {self.kind} trial {self.index} left no run in {self.store} "
                                f"(see {self.dir}/run.err)")
        check = check_trial(TrialEvidence(self.state, run[0], tuple(self.exits), leftovers, self.kill,
                                          self.reader_stats if self.kind == "supervisor" else None))
        seed = self.cfg.seed
        violations = [Violation(self.kind, self.index, seed, f.invariant, f.job_ids, f.detail)
                      for f in check.findings]
        record = TrialRecord(self.kind, self.index, self.injected or self.kind == CONTROL, self.target,
                             self.at_outcomes, self.delay_s, tuple(e.code for e in self.exits),
                             time.monotonic() - t0, dict(check.checked), tuple(sorted(check.violated())),
                             check.refused_writes, len(check.failed_jobs),
                             self.kill.time_to_gone_s if self.kill else None,
                             self.reader_stats.opens if self.reader_stats else None, self.attempt)
        return TrialResult(record, violations, self.dir, check.checked.get("one_final_outcome", 0),
                           bool(violations) or self.cfg.keep)

    def _leftovers(self) -> Leftovers:
        """After the last run: what is still alive or on disk, after a short grace."""
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        while True:
            procs, dirs, segs = self._left_processes(), self._left_dirs(), self._left_segments()
            if not (procs or dirs or segs) or time.monotonic() >= deadline:
                return Leftovers(tuple(procs), tuple(dirs), tuple(segs))
            time.sleep(0.1)

    def _left_processes(self) -> list[str]:
        found = {p.pid: _describe(p) for p in self.tracker.alive()}
        marks = (str(self.state), str(self.tmp))
        me = os.getpid()
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info.get("cmdline") or []
            if p.pid != me and p.pid not in found and any(m in part for part in cmd for m in marks):
                if _running(p):
                    found[p.pid] = _describe(p) + " [not seen under our runs: left alone]"
        return sorted(found.values())

    def _left_dirs(self) -> list[str]:
        out = []
        for top, dirs, _files in os.walk(self.tmp):
            out += [os.path.join(top, d) for d in dirs if d.startswith(LEFTOVER_PREFIXES)]
        return sorted(out)

    def _left_segments(self) -> list[str]:
        run = _run_of(self.store)
        if run is None:
            return []
        out = []
        for marker in sorted(run[1].glob("*.segment.json")):
            try:
                name = str(orjson.loads(marker.read_bytes())["name"])
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
                out.append(f"{marker} (unreadable marker: {exc})")
                continue
            if (SHM_DIR / name).exists():
                out.append(f"{SHM_DIR / name} (marker {marker.name})")
        return out


# -- the campaign ----------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _progress(console: Console, text: str) -> None:
    """One line per trial on stderr (kept on a terminal too: a long campaign's history)."""
    console.status(text)
    console.end_status()


def _remove(console: Console, path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        console.warn(f"could not remove {path}: {exc}")


def kinds_arg(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"kinds are a comma list of {', '.join(KINDS)}; got {text!r}")
    return kinds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch", help="the batch (JSON Lines) to run under faults")
    p.add_argument("--trials", type=int, default=3, help="trials per kind (default %(default)s)")
    p.add_argument("--kinds", type=kinds_arg, default=KINDS, help=f"comma list of {','.join(KINDS)} (default all)")
    p.add_argument("--seed", type=int, help="campaign seed (default: random, printed)")
    p.add_argument("--workers", type=int, default=2, help="engine workers (default %(default)s)")
    p.add_argument("--reader", action="store_true",
                   help="during supervisor kills, open the store read-write every 50 ms until the resume")
    p.add_argument("--json", metavar="FILE", help="write the campaign's result as JSON (readiness evidence)")
    p.add_argument("--credentials", metavar="FILE", help="credential store for the batch (passed to every run)")
    p.add_argument("--keep", action="store_true", help="keep every trial's folder (failing ones are always kept)")


def _config(args: argparse.Namespace) -> CampaignConfig:
    if args.trials < 1 or args.workers < 1:
        raise UsageError("--trials and --workers must be >= 1")
    batch = Path(args.batch).resolve()
    if not batch.is_file():
        raise UsageError(f"no batch file {args.batch}")
    creds = Path(args.credentials).resolve() if args.credentials else None
    if creds is not None and not creds.is_file():
        raise UsageError(f"no credential store {args.credentials}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    return CampaignConfig(batch, args.batch, tuple(args.kinds), args.trials, seed, args.workers, args.reader,
                          creds, args.keep)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def faults_command(args: argparse.Namespace, console: Console) -> int:
    cfg = _config(args)
    drain_grace = load_settings(None).settings.drain_grace
    root = Path(tempfile.mkdtemp(prefix="drover-f-"))
    if len(str(root)) + len("/w01-3/t") > MAX_TMPDIR:
        console.warn(f"the campaign folder {root} is long: Chromium's temp folders may go to /tmp, where "
                     f"leftovers are not counted per trial (set TMPDIR to a short path)")
    console.line(f"fault campaign: seed {cfg.seed}; kinds {','.join(cfg.kinds)} x {cfg.trials} trial(s); "
                 f"{cfg.workers} worker(s); folder {root}")
    kept: list[Path] = []
    # SIGTERM (cron's timeout, a CI job cancelled) stops the campaign like Ctrl-C: the trial under way kills
    # the processes it started and the folder goes, instead of leaving a run going in its own session.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = _campaign(cfg, console, root, kept, drain_grace)
    except EvidenceError as exc:
        kept.append(root)
        console.error(f"{exc}; the campaign's folder is kept: {root}")
        return EXIT_INTERNAL
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not kept and not cfg.keep:
            _remove(console, root)
    if isinstance(result, int):
        return result
    report = result
    for line in report.lines():
        console.line(line)
    for line in report.violation_lines(cfg.batch_arg):
        console.result(line)
    if args.json:
        report.write(args.json)
        console.line(f"wrote {args.json}")
    if kept or cfg.keep:
        console.line(f"kept for inspection: {', '.join(map(str, kept)) if kept else root}")
    if report.violations:
        console.result(f"faults: {len(report.violations)} violation(s) in "
                       f"{len({(v.kind, v.trial) for v in report.violations})} trial(s) (seed {cfg.seed})")
        return EXIT_VIOLATION
    if report.missed:
        console.result(f"faults: no violation, but {sum(report.missed.values())} trial(s) could not inject their "
                       f"fault ({report.missed}): not a complete proof (seed {cfg.seed})")
        return EXIT_INTERNAL
    console.result(f"faults: survived: {sum(report.trials.values())} trial(s), 0 violations (seed {cfg.seed})")
    return EXIT_OK


def _campaign(cfg: CampaignConfig, console: Console, root: Path, kept: list[Path],
              drain_grace: float) -> FaultReport | int:
    """The control run, then every kind's trials; a report, or an exit code when the batch cannot be run."""
    control = Trial(cfg, root, CONTROL, 0, None, drain_grace).run()
    code = control.record.exits[0] if control.record.exits else None
    if code not in (0, 1):
        kept.append(control.dir)
        console.error(f"the control run (no fault) exited {code}: see {control.dir}/run.out and run.err")
        return EXIT_INPUT if code == EXIT_INPUT else EXIT_INTERNAL
    if control.violations:  # a run without a fault already breaks an invariant: faults would prove nothing
        kept.append(control.dir)
        for line in FaultReport(cfg.seed, str(cfg.batch), "", control.jobs, cfg.workers,
                                violations=control.violations).violation_lines(cfg.batch_arg):
            console.result(line)
        console.error(f"the control run (no fault) already violates {', '.join(control.record.violated)}: "
                      f"see {control.dir}/run.out and run.err")
        return EXIT_INTERNAL
    if control.jobs < 2:
        _finish(console, control, kept)
        raise UsageError(f"the batch has {control.jobs} job(s): a fault needs a run with at least 2")
    base = Baseline(control.jobs, control.record.elapsed_s, int(code), _job_seconds(control.dir, cfg.workers))
    report = FaultReport(cfg.seed, str(cfg.batch), _sha256(cfg.batch), base.jobs, cfg.workers, cfg.reader)
    report.add(control.record, control.violations)
    _finish(console, control, kept)
    _progress(console, f"faults: control run: exit {code}, {base.jobs} jobs, {base.elapsed_s:.1f} s, "
                       f"{len(control.record.violated)} invariant(s) violated")
    resumes = sum(1 for k in cfg.kinds if k in ("supervisor", "sigterm"))
    estimate = cfg.trials * base.elapsed_s * (1.2 * len(cfg.kinds) + 0.3 * resumes) + cfg.trials * len(cfg.kinds) * 6
    console.line(f"about {estimate / 60:.1f} min for {cfg.trials * len(cfg.kinds)} trial(s)")
    for kind in cfg.kinds:
        for i in range(1, cfg.trials + 1):
            for attempt in range(1, MISS_TRIES + 1):
                out = Trial(cfg, root, kind, i, base, drain_grace, attempt).run()
                if out.record.injected or out.violations or attempt == MISS_TRIES:
                    break
                _finish(console, out, kept)  # a clean run whose fault never went in: draw the moment again
                _progress(console, f"faults: {kind} {i}/{cfg.trials}: {out.record.target}; drawing again "
                                   f"({attempt}/{MISS_TRIES})")
            report.add(out.record, out.violations)
            _finish(console, out, kept)
            r = out.record
            _progress(console, f"faults: {kind} {i}/{cfg.trials}: {r.target}; at {r.at_outcomes}/{base.jobs} "
                               f"outcomes (+{r.delay_s:.2f} s); exits {list(r.exits)}; "
                      + (f"gone in {r.time_to_gone_s:.3f} s; " if r.time_to_gone_s is not None else "")
                      + (f"reader opened the store {r.reader_opens}x; " if r.reader_opens is not None else "")
                      + f"{r.refused_writes} refused; {len(r.violated)} violated"
                      + (f" ({', '.join(r.violated)})" if r.violated else "") + f"; {r.elapsed_s:.1f} s")
    return report


def _job_seconds(control_dir: Path, workers: int) -> float:
    """One job's share of a worker's time in the control run: outcome span x workers / (outcomes - 1)."""
    rows = _query(Path(store_path(str(control_dir / "s"))),
                  "SELECT MIN(recorded_at), MAX(recorded_at), COUNT(*) FROM outcomes")
    if not rows or rows[0][2] < 2:
        return 1.0
    first, last, n = rows[0]
    return max(0.05, (last - first) * workers / (n - 1))


def _finish(console: Console, out: TrialResult, kept: list[Path]) -> None:
    """Keep a trial's folder when it broke an invariant (or --keep), else remove it."""
    if out.keep:
        kept.append(out.dir)
    else:
        _remove(console, out.dir)


__all__ = ["faults_command", "add_arguments", "kinds_arg", "ProcessTracker", "CampaignConfig", "Trial", "TrialResult",
           "Baseline"]
