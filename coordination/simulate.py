"""Seeded contention simulation: real processes, real shared memory, real lock files.

Why: the coordination rules (one owner per slot and per credential,
rising epochs, no starvation, no deadlock) are claims about concurrency,
and only many processes racing for real can falsify them.  The driver
forks ``procs`` workers that compete for ``slots`` session slots and
``credentials`` credential locks with seeded random hold times, optionally
SIGKILLs seeded victims (preferring credential holders) and restarts them,
and checks the invariants after every single event.

How the checking is sound: every worker appends one line per event to a
shared log opened with ``O_APPEND`` (one ``write`` per line, so lines never
interleave and a SIGKILL cannot tear one).  A worker logs an acquisition
*after* it acquired and a release *before* it releases, so in file order
a correct run can never show a second acquisition of a resource before
the first one's release.  The supervisor logs a kill *before* it sends
SIGKILL, so the recovery of a dead holder's lock always follows the kill
line.  The supervisor tails the log and replays it against a model.

Replay: every random choice (hold times, credentials, kill times and
victims) comes from streams seeded by ``--seed`` (see
:func:`coordination.backoff.cohort_seed`), so a failing seed replays the
same workload; the operating system's interleaving is not reproducible,
so a rare race may need a few replays.  A failing run prints its replay
command.

CLI::

    python -m coordination.simulate --procs 16 --seconds 600 --seed 1 [--kill-rate 0.5]
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import orjson

from coordination._contention import ContentionTelemetry
from coordination._credlocks import CredentialLocks
from coordination._table import (
    CLAIM_QUEUE_SCOPE,
    OwnershipTable,
    Reclaimed,
    SlotState,
    claim_in_turn,
    reclaim_dead,
)
from coordination.backoff import cohort_seed
from coordination.errors import LockTimeout, TableFull

EVENTS_FILE = "events.log"
_MAX_CYCLES = 10_000_000
_EXIT_STARVED = 3


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """One simulation, fully determined by these values (plus the OS scheduler)."""

    procs: int = 8
    credentials: int = 3
    slots: int = 4
    seconds: float = 3.0
    seed: int = 1
    kill_rate: float = 0.0  # SIGKILLs per second, seeded Poisson arrivals
    hold_min: float = 0.001
    hold_max: float = 0.010
    jobs_max: int = 3  # credential holds per slot claim: 1..jobs_max
    lock_timeout: float = 10.0  # starvation bound for one credential wait
    slot_timeout: float = 10.0  # starvation bound for one slot wait
    grace: float = 20.0  # after `seconds`, how long workers get to wind down before it counts as a hang
    directory: str | None = None  # None: a fresh temporary directory, removed after a passing run

    def __post_init__(self) -> None:
        if not (1 <= self.procs <= 256 and 1 <= self.credentials <= 1000 and 1 <= self.slots <= 1000):
            raise ValueError("procs 1..256, credentials 1..1000, slots 1..1000")
        if not (0 < self.seconds <= 86_400 and self.kill_rate >= 0 and 0 <= self.hold_min <= self.hold_max):
            raise ValueError("seconds in (0, 86400], kill_rate >= 0, 0 <= hold_min <= hold_max")
        if not (self.jobs_max >= 1 and self.lock_timeout > 0 and self.slot_timeout > 0 and self.grace > 0):
            raise ValueError("jobs_max >= 1 and positive timeouts")

    def credential(self, i: int) -> str:
        return f"sim/cred{i}"

    def replay_command(self) -> str:
        return (
            f"python -m coordination.simulate --procs {self.procs} --credentials {self.credentials} "
            f"--slots {self.slots} --seconds {self.seconds:g} --seed {self.seed} --kill-rate {self.kill_rate:g} "
            f"--hold-min {self.hold_min:g} --hold-max {self.hold_max:g}"
        )


@dataclass(frozen=True, slots=True)
class SimulationReport:
    config: SimulationConfig
    violations: tuple[str, ...]
    events: int
    invariants_checked: int
    table_checks: int  # of invariants_checked: epoch checks on scans of the live table between events
    slot_claims: int
    lock_acquisitions: int
    kills: int
    reclaims: int
    recovered_locks: int
    max_lock_wait: float
    max_queue_wait: float
    p50_lock_wait: float
    p99_lock_wait: float
    p99_queue_wait: float
    retries: int
    elapsed: float
    directory: str

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        c = self.config
        out = [
            f"seed {c.seed}  procs {c.procs}  credentials {c.credentials}  slots {c.slots}  "
            f"seconds {c.seconds:g}  kill-rate {c.kill_rate:g}  elapsed {self.elapsed:.1f}s",
            f"events {self.events}  invariants checked {self.invariants_checked} "
            f"({self.invariants_checked - self.table_checks} on events, {self.table_checks} on live-table scans)  "
            f"violations {len(self.violations)}",
            f"slot claims {self.slot_claims}  lock acquisitions {self.lock_acquisitions}  retries {self.retries}  "
            f"kills {self.kills}  reclaims {self.reclaims}  recovered locks {self.recovered_locks}",
            f"max lock wait {self.max_lock_wait * 1e3:.1f} ms  p50 lock wait {self.p50_lock_wait * 1e3:.2f} ms  "
            f"p99 wait {self.p99_lock_wait * 1e3:.1f} ms",
            f"max queue wait {self.max_queue_wait * 1e3:.1f} ms  p99 queue wait {self.p99_queue_wait * 1e3:.1f} ms",
            f"result {'PASS' if self.ok else 'FAIL'}",
        ]
        out.extend(f"violation: {v}" for v in self.violations[:50])
        if not self.ok:
            out.append(f"kept run directory {self.directory}")
            out.append(f"replay: {self.config.replay_command()}")
        return out


# ---------------------------------------------------------------------------- event log
class _EventLog:
    """Append-only JSON lines; one ``write`` per event so lines never interleave or tear."""

    __slots__ = ("_fd", "_pid", "_worker")

    def __init__(self, path: Path, worker: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._pid = os.getpid()
        self._worker = worker

    def emit(self, kind: str, **fields: object) -> None:
        fields.update(k=kind, w=self._worker, pid=self._pid, t=time.monotonic())
        os.write(self._fd, orjson.dumps(fields) + b"\n")

    def close(self) -> None:
        os.close(self._fd)


class _EventReader:
    __slots__ = ("_fd", "_partial")

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._partial = b""

    def read_new(self) -> Iterator[dict]:
        for _ in range(10_000):
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                return
            data = self._partial + chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                yield orjson.loads(line)

    def close(self) -> None:
        os.close(self._fd)


# ---------------------------------------------------------------------------- worker
def _worker_main(cfg: SimulationConfig, directory: str, worker: int, generation: int, deadline: float) -> None:
    """One competing process: claim a slot, hold 1..jobs_max credentials in turn, release, repeat."""
    log = _EventLog(Path(directory) / EVENTS_FILE, worker)
    try:
        _worker_loop(cfg, directory, worker, generation, deadline, log)
    except Exception as exc:
        log.emit("error", error=f"{type(exc).__name__}: {exc}")
        raise


def _worker_loop(cfg: SimulationConfig, directory: str, worker: int, generation: int, deadline: float,
                 log: _EventLog) -> None:
    rng = random.Random(cohort_seed(cfg.seed, f"worker-{worker}-gen-{generation}"))
    table = OwnershipTable.attach(directory)
    telemetry = ContentionTelemetry.attach(directory)
    counters = telemetry.writer(worker)
    table.bind_counters(counters)
    locks = CredentialLocks(directory, worker=worker, counters=counters)
    gate = CredentialLocks(directory, worker=worker)  # the slot line: its wait is queue wait, not lock wait
    log.emit("start", gen=generation)
    for _ in range(_MAX_CYCLES):
        if time.monotonic() >= deadline:
            break
        slot = _claim_slot(cfg, table, gate, worker, log)
        if slot is None:
            sys.exit(_EXIT_STARVED)
        index, epoch = slot
        table.activate(index, worker, epoch, session_id=f"w{worker}-e{epoch}")
        table.check_owner(index, worker, epoch)
        log.emit("slot_use", slot=index, ep=epoch)
        for _job in range(rng.randint(1, cfg.jobs_max)):
            cred = cfg.credential(rng.randrange(cfg.credentials))
            hold_for = rng.uniform(cfg.hold_min, cfg.hold_max)
            try:
                hold = locks.acquire(cred, cfg.lock_timeout)
            except LockTimeout as exc:
                log.emit("timeout", res=cred, waited=exc.waited)
                sys.exit(_EXIT_STARVED)
            log.emit("cred_acq", res=cred, ep=hold.epoch, wait=hold.waited,
                     recovered=hold.recovered_from is not None)
            table.check_owner(index, worker, epoch)  # a "CDP send" under the credential
            time.sleep(hold_for)
            table.check_owner(index, worker, epoch)
            log.emit("cred_rel", res=cred, ep=hold.epoch)
            hold.release()
        table.begin_release(index, worker, epoch)
        log.emit("slot_free", slot=index, ep=epoch)
        table.finish_release(index, worker, epoch)
    log.emit("done")
    table.close()
    telemetry.close()


def _claim_slot(cfg: SimulationConfig, table: OwnershipTable, gate: CredentialLocks, worker: int,
                log: _EventLog) -> tuple[int, int] | None:
    start = time.monotonic()
    try:
        got = claim_in_turn(table, gate, worker, cfg.slot_timeout)
    except (LockTimeout, TableFull):
        log.emit("timeout", res="slot", waited=time.monotonic() - start)
        return None
    log.emit("slot_claim", slot=got.index, ep=got.epoch, wait=time.monotonic() - start)
    return got.index, got.epoch


# ---------------------------------------------------------------------------- invariant model
@dataclass(slots=True)
class _Model:
    """What the event log says must be true; every check counts, every failure is a violation."""

    cfg: SimulationConfig
    checks: int = 0
    events: int = 0
    violations: list[str] = field(default_factory=list)
    slot_owner: dict[int, tuple[int, int]] = field(default_factory=dict)  # slot -> (pid, epoch)
    slot_epoch: dict[int, int] = field(default_factory=dict)
    cred_owner: dict[str, tuple[int, int]] = field(default_factory=dict)
    cred_epoch: dict[str, int] = field(default_factory=dict)
    condemned: set[int] = field(default_factory=set)
    served: dict[int, int] = field(default_factory=dict)
    slot_claims: int = 0
    acquisitions: int = 0
    recovered: int = 0
    reclaims: int = 0
    max_lock_wait: float = 0.0
    max_queue_wait: float = 0.0
    table_epochs: dict[int, int] = field(default_factory=dict)
    table_checks: int = 0

    def check(self, ok: bool, what: Callable[[], str]) -> None:
        self.checks += 1
        if not ok and len(self.violations) < 1000:
            self.violations.append(what())

    def apply(self, ev: dict) -> None:
        self.events += 1
        handler = getattr(self, f"on_{ev['k']}", None)
        if handler is None:
            self.check(False, lambda: f"unknown event {ev!r}")
            return
        handler(ev)

    def on_start(self, ev: dict) -> None:
        pass

    def on_done(self, ev: dict) -> None:
        pass

    def on_error(self, ev: dict) -> None:
        self.check(False, lambda: f"worker {ev['w']} pid {ev['pid']} failed: {ev['error']}")

    def on_timeout(self, ev: dict) -> None:
        self.check(False, lambda: f"starvation: worker {ev['w']} waited {ev['waited']}s for {ev['res']}")

    def on_slot_claim(self, ev: dict) -> None:
        slot, ep, pid = ev["slot"], ev["ep"], ev["pid"]
        owner = self.slot_owner.get(slot)
        self.check(owner is None, lambda: f"slot {slot} claimed by pid {pid} at epoch {ep} while owned by {owner}")
        last = self.slot_epoch.get(slot, 0)
        self.check(ep > last, lambda: f"slot {slot} epoch went from {last} to {ep}")
        self.check(ev["wait"] <= self.cfg.slot_timeout, lambda: f"slot wait {ev['wait']:.3f}s over the bound")
        self.slot_owner[slot] = (pid, ep)
        self.slot_epoch[slot] = ep
        self.slot_claims += 1
        self.max_queue_wait = max(self.max_queue_wait, ev["wait"])

    def on_slot_use(self, ev: dict) -> None:
        slot, key = ev["slot"], (ev["pid"], ev["ep"])
        owner = self.slot_owner.get(slot)
        self.check(owner == key, lambda: f"slot {slot} used by {key} but owned by {owner}")

    def on_slot_free(self, ev: dict) -> None:
        slot, key = ev["slot"], (ev["pid"], ev["ep"])
        owner = self.slot_owner.get(slot)
        self.check(owner == key, lambda: f"slot {slot} freed by {key} but owned by {owner}")
        self.slot_owner.pop(slot, None)

    def on_reclaim(self, ev: dict) -> None:
        slot, dead, old, new = ev["slot"], ev["dead_pid"], ev["old_ep"], ev["new_ep"]
        owner = self.slot_owner.get(slot)
        self.check(dead == 0 or dead in self.condemned, lambda: f"slot {slot} reclaimed from live pid {dead}")
        self.check(owner is None or owner[0] in self.condemned,
                   lambda: f"slot {slot} reclaimed while its live owner {owner} held it")
        last = self.slot_epoch.get(slot, 0)
        self.check(new > old and new > last, lambda: f"slot {slot} reclaim epoch {old}->{new}, last seen {last}")
        self.slot_epoch[slot] = new
        self.slot_owner.pop(slot, None)
        self.reclaims += 1

    def on_cred_acq(self, ev: dict) -> None:
        res, ep, pid = ev["res"], ev["ep"], ev["pid"]
        last = self.cred_epoch.get(res, 0)
        self.check(ep > last, lambda: f"credential {res} epoch went from {last} to {ep}")
        self.cred_epoch[res] = max(last, ep)
        self.check(ev["wait"] <= self.cfg.lock_timeout, lambda: f"lock wait {ev['wait']:.3f}s over the bound")
        self.max_lock_wait = max(self.max_lock_wait, ev["wait"])
        self.acquisitions += 1
        self.recovered += bool(ev.get("recovered"))
        self.served[ev["w"]] = self.served.get(ev["w"], 0) + 1
        if pid in self.condemned:
            return  # acquired in the instant between its kill line and its death: it never counts as holding
        owner = self.cred_owner.get(res)
        self.check(owner is None, lambda: f"credential {res} taken by pid {pid} epoch {ep} while held by {owner}")
        self.cred_owner[res] = (pid, ep)

    def on_cred_rel(self, ev: dict) -> None:
        res, key = ev["res"], (ev["pid"], ev["ep"])
        if key[0] in self.condemned:
            return
        owner = self.cred_owner.get(res)
        self.check(owner == key, lambda: f"credential {res} released by {key} but held by {owner}")
        self.cred_owner.pop(res, None)

    def on_kill(self, ev: dict) -> None:
        victim = ev["victim"]
        self.condemned.add(victim)
        for res, (pid, _ep) in list(self.cred_owner.items()):
            if pid == victim:
                del self.cred_owner[res]  # the kernel drops its flocks when it dies

    def observe_table(self, table: OwnershipTable) -> None:
        """Between events: epochs in the live table never go down."""
        for s in table.snapshot():
            last = self.table_epochs.get(s.index, 0)
            self.check(s.epoch >= last, lambda: f"table slot {s.index} epoch fell from {last} to {s.epoch}")
            self.table_checks += 1
            self.table_epochs[s.index] = s.epoch


# ---------------------------------------------------------------------------- supervisor
@dataclass(slots=True)
class _Runner:
    cfg: SimulationConfig
    directory: Path
    model: _Model
    log: _EventLog
    table: OwnershipTable
    procs: dict[int, multiprocessing.Process] = field(default_factory=dict)  # worker -> process
    generation: dict[int, int] = field(default_factory=dict)
    killed: set[int] = field(default_factory=set)
    kills: int = 0

    def spawn(self, ctx: multiprocessing.context.BaseContext, worker: int, deadline: float) -> None:
        gen = self.generation.get(worker, -1) + 1
        self.generation[worker] = gen
        p = ctx.Process(target=_worker_main, args=(self.cfg, str(self.directory), worker, gen, deadline),
                        name=f"sim-worker-{worker}", daemon=True)
        p.start()
        self.procs[worker] = p

    def kill_one(self, rng: random.Random) -> int | None:
        live = {p.pid: w for w, p in self.procs.items() if p.pid is not None and p.exitcode is None}
        holders = sorted({pid for pid, _ep in self.model.cred_owner.values() if pid in live})
        pool = holders or sorted(live)
        if not pool:
            return None
        victim = pool[rng.randrange(len(pool))]
        worker = live[victim]
        self.log.emit("kill", victim=victim, victim_worker=worker)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return None  # it exited on its own right before: nothing was killed
        self.procs[worker].join(timeout=10)
        self.killed.add(victim)
        self.kills += 1
        reclaim_dead(self.table, on_reclaim=self.log_reclaim)
        return worker

    def log_reclaim(self, r: Reclaimed) -> None:
        # Runs under the table lock: the line lands before any claim of the freed slot can.
        self.log.emit("reclaim", slot=r.slot, dead_pid=r.dead_pid, old_ep=r.old_epoch, new_ep=r.new_epoch)

    def reap(self) -> list[int]:
        """Join finished workers; a non-zero exit of a worker we did not kill is a violation."""
        finished = []
        for w, p in list(self.procs.items()):
            if p.exitcode is not None:
                p.join()
                if p.pid not in self.killed:
                    code = p.exitcode
                    self.model.check(code == 0, lambda: f"worker {w} pid {p.pid} exited with {code}")
                finished.append(w)
                del self.procs[w]
        return finished


def run_simulation(cfg: SimulationConfig, progress: Callable[[str], None] | None = None) -> SimulationReport:
    """Run one seeded simulation and return what it saw; never raises for a violated invariant."""
    started = time.monotonic()
    own_dir = cfg.directory is None
    directory = Path(tempfile.mkdtemp(prefix="drover-sim-") if own_dir else cfg.directory)  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EVENTS_FILE).unlink(missing_ok=True)
    with OwnershipTable.create(directory, cfg.slots) as table, \
            ContentionTelemetry.create(directory, cfg.procs) as telemetry:
        reader = _EventReader(directory / EVENTS_FILE)
        log = _EventLog(directory / EVENTS_FILE, -1)
        model = _Model(cfg)
        runner = _Runner(cfg, directory, model, log, table)
        try:
            _supervise(cfg, runner, reader, progress)
            _final_checks(cfg, runner, reader, telemetry, directory)
            snap = telemetry.snapshot().aggregate
        finally:
            for p in runner.procs.values():  # only left if the supervisor itself failed
                p.kill()
                p.join(timeout=10)
            reader.close()
            log.close()
    report = SimulationReport(
        config=cfg, violations=tuple(model.violations), events=model.events, invariants_checked=model.checks,
        table_checks=model.table_checks, slot_claims=model.slot_claims, lock_acquisitions=model.acquisitions,
        kills=runner.kills, reclaims=model.reclaims, recovered_locks=model.recovered, max_lock_wait=model.max_lock_wait,
        max_queue_wait=model.max_queue_wait, p50_lock_wait=snap.lock_wait.p50, p99_lock_wait=snap.lock_wait.p99,
        p99_queue_wait=snap.queue_wait.p99, retries=snap.retries, elapsed=time.monotonic() - started,
        directory=str(directory),
    )
    if report.ok and own_dir:
        shutil.rmtree(directory)
    return report


def _supervise(cfg: SimulationConfig, runner: _Runner, reader: _EventReader,
               progress: Callable[[str], None] | None) -> None:
    model = runner.model
    ctx = multiprocessing.get_context("fork")
    start = time.monotonic()
    deadline = start + cfg.seconds
    hard_deadline = deadline + cfg.grace
    stall_bound = max(cfg.lock_timeout, cfg.slot_timeout) + 2.0
    for w in range(cfg.procs):
        runner.spawn(ctx, w, deadline)
    kill_rng = random.Random(cohort_seed(cfg.seed, "kills"))
    next_kill = start + kill_rng.expovariate(cfg.kill_rate) if cfg.kill_rate > 0 else float("inf")
    last_event = start
    next_progress = start + 60.0
    max_rounds = int((cfg.seconds + cfg.grace) / 1e-3) + 10_000
    for _ in range(max_rounds):
        seen = model.events
        for ev in reader.read_new():
            model.apply(ev)
        now = time.monotonic()
        if model.events != seen:
            last_event = now
        model.observe_table(runner.table)
        if now >= next_kill:
            if now < deadline:
                victim = runner.kill_one(kill_rng)
                if victim is not None:
                    runner.spawn(ctx, victim, deadline)
            next_kill = now + kill_rng.expovariate(cfg.kill_rate)
        runner.reap()
        if not runner.procs:
            break
        if now > hard_deadline:
            model.check(False, lambda: f"hang: workers {sorted(runner.procs)} still running {cfg.grace}s "
                                       f"after the end (deadlock?)")
            for p in runner.procs.values():
                p.kill()
                p.join(timeout=10)
            runner.procs.clear()
            break
        if now - last_event > stall_bound:
            model.check(False, lambda: f"no progress for {now - last_event:.1f}s (deadlock?)")
            last_event = now
        if progress is not None and now >= next_progress:
            next_progress = now + 60.0
            progress(f"t={now - start:.0f}s events {model.events} checks {model.checks} "
                     f"violations {len(model.violations)}")
        multiprocessing.connection.wait([p.sentinel for p in runner.procs.values()], timeout=0.005)
    for ev in reader.read_new():
        model.apply(ev)


def _final_checks(cfg: SimulationConfig, runner: _Runner, reader: _EventReader, telemetry: ContentionTelemetry,
                  directory: Path) -> None:
    model = runner.model
    model.check(not runner.procs, lambda: "workers left running")
    reclaim_dead(runner.table, on_reclaim=runner.log_reclaim)  # a victim killed in the last instant
    for ev in reader.read_new():
        model.apply(ev)
    for slot, owner in model.slot_owner.items():
        model.check(False, lambda: f"slot {slot} still owned by {owner} at the end")
    for res, owner in model.cred_owner.items():
        model.check(False, lambda: f"credential {res} still held by {owner} at the end")
    for s in runner.table.snapshot():
        model.check(s.state is SlotState.FREE, lambda: f"slot {s.index} is {s.state.name} at the end")
    locks = CredentialLocks(directory, worker=-1)
    for scope in [cfg.credential(i) for i in range(cfg.credentials)] + [CLAIM_QUEUE_SCOPE]:
        locks.sweep_dead(scope)
        left = locks.queue(scope)
        model.check(not left, lambda: f"credential {scope} has tickets {left} left at the end")
        holder = locks.holder(scope)
        model.check(holder is None or holder.pid in runner.killed,
                    lambda: f"credential {scope} records live holder {holder} at the end")
    totals = runner.table.totals()
    model.check(totals.unowned_uses == 0, lambda: f"{totals.unowned_uses} unowned session uses")
    model.check(totals.invalid_transitions == 0, lambda: f"{totals.invalid_transitions} invalid transitions")
    agg = telemetry.snapshot().aggregate
    model.check(agg.unowned_uses == 0 and agg.invalid_transitions == 0 and agg.lock_timeouts == 0,
                lambda: f"telemetry counted unowned={agg.unowned_uses} invalid={agg.invalid_transitions} "
                        f"timeouts={agg.lock_timeouts}")
    if cfg.seconds >= 1.0:
        for w in range(cfg.procs):
            model.check(model.served.get(w, 0) > 0, lambda: f"worker {w} was never served a credential")


# ---------------------------------------------------------------------------- CLI
def _emit(line: str) -> None:
    """The only terminal output of this module."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _log_to_file(cfg: SimulationConfig) -> str:
    """Send the library's structured events to a JSON-lines file instead of the terminal."""
    path = os.path.join(tempfile.gettempdir(), f"drover-sim-seed{cfg.seed}-{os.getpid()}.log")
    handler = logging.FileHandler(path, encoding="utf-8")
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # older python-json-logger (< 3) or none: plain lines still carry the message
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    drover = logging.getLogger("drover")
    drover.setLevel(logging.INFO)
    drover.propagate = False
    drover.addHandler(handler)
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coordination.simulate", description=__doc__.split("\n\n")[0])
    d = SimulationConfig()
    p.add_argument("--procs", type=int, default=16)
    p.add_argument("--credentials", type=int, default=d.credentials)
    p.add_argument("--slots", type=int, default=d.slots)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--kill-rate", type=float, default=d.kill_rate, help="SIGKILLs per second (seeded)")
    p.add_argument("--hold-min", type=float, default=d.hold_min)
    p.add_argument("--hold-max", type=float, default=d.hold_max)
    p.add_argument("--lock-timeout", type=float, default=30.0)
    p.add_argument("--slot-timeout", type=float, default=30.0)
    p.add_argument("--dir", default=None, help="run directory (default: a temporary one)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = SimulationConfig(
            procs=args.procs, credentials=args.credentials, slots=args.slots, seconds=args.seconds,
            seed=args.seed, kill_rate=args.kill_rate, hold_min=args.hold_min, hold_max=args.hold_max,
            lock_timeout=args.lock_timeout, slot_timeout=args.slot_timeout, directory=args.dir,
        )
    except ValueError as exc:
        _emit(f"error: {exc}")
        return 2
    log_path = _log_to_file(cfg)
    _emit(f"simulating: {cfg.replay_command()}")
    _emit(f"coordination events (reclaims, recoveries) are logged to {log_path}")
    report = run_simulation(cfg, progress=_emit)
    for line in report.lines():
        _emit(line)
    return 0 if report.ok else 1


__all__ = ["SimulationConfig", "SimulationReport", "run_simulation", "main"]


if __name__ == "__main__":
    sys.exit(main())
