"""Entry points of the child processes the coordination tests start.

They live in an importable module (not inside test functions) so that
``spawn``-started children and fresh interpreters can run them too.  Every
wait is bounded; a child that cannot finish exits non-zero and the test
sees its exit code.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

from coordination import ContentionTelemetry, CredentialLocks, OwnershipTable
from coordination.errors import TableFull

CHILD_WAIT = 30.0


def create_and_die(directory: str) -> None:
    """A supervisor that crashes: creates both segments, then SIGKILLs itself."""
    OwnershipTable.create(directory, 2)
    ContentionTelemetry.create(directory, 2)
    os.kill(os.getpid(), signal.SIGKILL)


def hold_credential(directory: str, scope: str, worker: int, acquired, release, report=None) -> None:
    """Take ``scope``, say so, keep it until ``release`` is set (or CHILD_WAIT passes)."""
    hold = CredentialLocks(directory, worker=worker).acquire(scope, CHILD_WAIT)
    if report is not None:
        report.send((worker, os.getpid(), hold.epoch))
    acquired.set()
    release.wait(CHILD_WAIT)
    hold.release()


def hold_credential_and_fork(directory: str, scope: str, acquired, grandchild_pid) -> None:
    """Take ``scope``, fork a grandchild that outlives us, then wait to be killed."""
    hold = CredentialLocks(directory, worker=1).acquire(scope, CHILD_WAIT)
    r, _w = os.pipe()
    pid = os.fork()
    if pid == 0:  # grandchild: blocks on a pipe whose write end it holds itself, until the test kills it
        os.read(r, 1)
        os._exit(0)
    grandchild_pid.value = pid
    acquired.set()
    time.sleep(CHILD_WAIT)  # the test SIGKILLs us long before this ends
    hold.release()


def wait_credential(directory: str, scope: str, worker: int, queued, conn, hold_for: float = 0.0) -> None:
    """Queue for ``scope``; report (worker, monotonic time acquired, epoch, recovered-from pid)."""
    locks = CredentialLocks(directory, worker=worker)
    hold = locks.acquire(scope, CHILD_WAIT, on_queued=lambda _ticket: queued.set())
    acquired_at = time.monotonic()
    recovered = hold.recovered_from.pid if hold.recovered_from is not None else None
    conn.send((worker, acquired_at, hold.epoch, recovered))
    if hold_for:
        time.sleep(hold_for)
    hold.release()


def claim_and_wait(directory: str, worker: int, claimed, conn) -> None:
    """Claim and activate a slot, report it, then wait to be killed."""
    table = OwnershipTable.attach(directory)
    slot = table.claim(worker)
    table.activate(slot.index, worker, slot.epoch)
    conn.send((slot.index, slot.epoch))
    claimed.set()
    time.sleep(CHILD_WAIT)


def cycle_slots(directory: str, worker: int, rounds: int, conn) -> None:
    """Claim/activate/release repeatedly; report every (slot, epoch) claimed."""
    table = OwnershipTable.attach(directory)
    seen = []
    for _ in range(rounds):
        for _try in range(10_000):
            try:
                slot = table.claim(worker)
                break
            except TableFull:
                time.sleep(0.0005)
        else:
            raise RuntimeError("never got a slot")
        table.activate(slot.index, worker, slot.epoch)
        table.check_owner(slot.index, worker, slot.epoch)
        table.begin_release(slot.index, worker, slot.epoch)
        table.finish_release(slot.index, worker, slot.epoch)
        seen.append((slot.index, slot.epoch))
    table.close()
    conn.send(seen)


def churn_slot(directory: str, seconds: float, started) -> None:
    """Cycle slot 0 as fast as possible; while ACTIVE its session id spells its epoch."""
    table = OwnershipTable.attach(directory)
    started.set()
    end = time.monotonic() + seconds
    for _ in range(1_000_000):
        if time.monotonic() >= end:
            break
        s = table.claim(1, slot=0)
        table.activate(0, 1, s.epoch, session_id=f"e{s.epoch}")
        table.begin_release(0, 1, s.epoch)
        table.finish_release(0, 1, s.epoch)
    table.close()


def write_counters(directory: str, worker: int, n: int, done=None, release=None) -> None:
    """Bind a row, record ``n`` lock waits of 1 ms and ``n`` retries; optionally stay alive until released."""
    tele = ContentionTelemetry.attach(directory)
    row = tele.writer(worker)
    for _ in range(n):
        row.record_lock_wait(0.001)
        row.add_retry()
    if done is not None:
        done.set()
    if release is not None:
        release.wait(CHILD_WAIT)
    tele.close()


def hammer_counters(directory: str, worker: int, seconds: float, started) -> None:
    """Write as fast as possible for ``seconds`` (bounded), so readers race a busy writer."""
    tele = ContentionTelemetry.attach(directory)
    row = tele.writer(worker)
    started.set()
    end = time.monotonic() + seconds
    for i in range(10_000_000):
        if time.monotonic() >= end:
            break
        row.record_lock_wait((i % 100) * 1e-4)
        row.add_retry()
    tele.close()


def _attach_cycle(directory: str, worker: int) -> None:
    table = OwnershipTable.attach(directory)
    slot = table.claim(worker)
    table.activate(slot.index, worker, slot.epoch)
    table.begin_release(slot.index, worker, slot.epoch)
    table.finish_release(slot.index, worker, slot.epoch)
    table.close()


def tracker_scenario(directory: str) -> None:
    """Run in a fresh interpreter: create, let forked and spawned children attach at once, unlink.

    Its stderr (which the resource tracker inherits) must stay silent: no
    "leaked shared_memory" warning, no KeyError traceback from the tracker.
    """
    table = OwnershipTable.create(directory, 8)
    procs = []
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        for w in range(3):
            worker = w if method == "fork" else w + 3
            procs.append(ctx.Process(target=_attach_cycle, args=(directory, worker)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(CHILD_WAIT)
    codes = [p.exitcode for p in procs]
    table.close()
    table.unlink()
    if codes != [0] * len(procs):
        sys.stderr.write(f"children exit codes {codes}\n")
        sys.exit(1)
