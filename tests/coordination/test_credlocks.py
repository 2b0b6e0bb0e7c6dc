"""Credential locks: holder records, timeouts, FIFO order, dead holders and dead waiters recovered."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import filelock
import pytest

from coordination import ContentionTelemetry, CredentialLocks
from coordination._credlocks import scope_dirname
from coordination._process import current_identity
from coordination.errors import LockTimeout

from . import _procs

SCOPE = "example.com/alice"
WAIT = 30.0


def _start(ctx, target, *args):
    p = ctx.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def _recv(conn):
    """The next report of a child, or a failure (never a hang) if none comes."""
    if not conn.poll(WAIT):
        pytest.fail(f"no report from a child within {WAIT}s")
    return conn.recv()


def _join_all(*procs) -> None:
    for p in procs:
        p.join(WAIT)
        if p.exitcode is None:
            p.kill()
            p.join(WAIT)
            pytest.fail(f"child {p.pid} did not finish")


def test_hold_records_holder_and_epochs_rise(run_dir: Path) -> None:
    locks = CredentialLocks(run_dir, worker=4)
    me = current_identity()
    epochs = []
    for _ in range(3):
        with locks.acquire(SCOPE, 1.0) as hold:
            rec = locks.holder(SCOPE)
            assert (rec.scope, rec.worker, rec.pid, rec.start_time, rec.epoch) == (SCOPE, 4, me.pid, me.start_time,
                                                                                  hold.epoch)
            assert hold.recovered_from is None and hold.held
            epochs.append(hold.epoch)
        assert locks.holder(SCOPE) is None and not hold.held
    assert epochs == sorted(epochs) and len(set(epochs)) == 3
    assert locks.queue(SCOPE) == []
    scope_dir = run_dir / "credlocks" / scope_dirname(SCOPE)
    assert (scope_dir / "scope").read_text() == SCOPE and (scope_dir / "mutex.lock").exists()


def test_scope_names_are_sanitized_and_distinct() -> None:
    hostile = scope_dirname("../../etc/passwd")
    assert "/" not in hostile and not hostile.startswith(".") and ".." not in hostile
    assert scope_dirname("a/b") != scope_dirname("a:b")  # same slug, different scope
    assert len(scope_dirname("x" * 1000)) < 80
    for bad in ("", "a\0b", "x" * 1025):
        with pytest.raises(ValueError):
            scope_dirname(bad)


def test_it_is_filelocks_lock(run_dir: Path) -> None:
    """Any tool holding filelock.FileLock on the same file contends with us (and we with it)."""
    locks = CredentialLocks(run_dir, worker=1)
    mutex = run_dir / "credlocks" / scope_dirname(SCOPE) / "mutex.lock"
    with locks.acquire(SCOPE, 1.0):
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(mutex, timeout=0.05).acquire()
    with filelock.FileLock(mutex, timeout=1):
        with pytest.raises(LockTimeout):
            locks.acquire(SCOPE, 0.1)
    with locks.acquire(SCOPE, 1.0):
        pass


def test_timeout_names_the_holder_counts_and_leaves_the_line_clean(run_dir: Path, fork_ctx) -> None:
    acquired, release = fork_ctx.Event(), fork_ctx.Event()
    holder = _start(fork_ctx, _procs.hold_credential, str(run_dir), SCOPE, 1, acquired, release)
    assert acquired.wait(WAIT)
    with ContentionTelemetry.create(run_dir, 4) as tele:
        locks = CredentialLocks(run_dir, worker=2, counters=tele.writer(2))
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            locks.acquire(SCOPE, 0.2)
        assert time.monotonic() - started >= 0.2
        err = info.value
        assert (err.scope, err.timeout, err.holder.pid, err.holder.worker) == (SCOPE, 0.2, holder.pid, 1)
        assert err.waited >= 0.2 and type(err).category == "timeout"
        assert len(locks.queue(SCOPE)) == 1  # only the holder's ticket; ours was withdrawn
        assert tele.snapshot().worker(2).lock_timeouts == 1
    release.set()
    _join_all(holder)
    assert holder.exitcode == 0


def test_waiters_are_served_first_come_first_served(run_dir: Path, fork_ctx) -> None:
    acquired, release = fork_ctx.Event(), fork_ctx.Event()
    holder = _start(fork_ctx, _procs.hold_credential, str(run_dir), SCOPE, 0, acquired, release)
    assert acquired.wait(WAIT)
    recv, send = fork_ctx.Pipe(duplex=False)
    waiters = []
    for worker in (3, 1, 4, 2):  # arrival order differs from worker order on purpose
        queued = fork_ctx.Event()
        waiters.append(_start(fork_ctx, _procs.wait_credential, str(run_dir), SCOPE, worker, queued, send, 0.01))
        assert queued.wait(WAIT)  # the next one arrives only after this one is in line
    release.set()
    served = [_recv(recv) for _ in waiters]
    _join_all(holder, *waiters)
    assert [s[0] for s in served] == [3, 1, 4, 2]
    assert [s[2] for s in served] == sorted(s[2] for s in served)  # epochs rise in service order
    assert all(p.exitcode == 0 for p in (holder, *waiters))


def test_dead_holder_is_recovered_within_one_second(run_dir: Path, fork_ctx, coordination_logs) -> None:
    acquired, never = fork_ctx.Event(), fork_ctx.Event()
    recv, send = fork_ctx.Pipe(duplex=False)
    holder = _start(fork_ctx, _procs.hold_credential, str(run_dir), SCOPE, 1, acquired, never, send)
    assert acquired.wait(WAIT)
    _worker, holder_pid, holder_epoch = _recv(recv)
    queued = fork_ctx.Event()
    waiter = _start(fork_ctx, _procs.wait_credential, str(run_dir), SCOPE, 2, queued, send)
    assert queued.wait(WAIT)
    killed_at = time.monotonic()
    os.kill(holder_pid, signal.SIGKILL)
    worker, acquired_at, epoch, recovered_from = _recv(recv)
    _join_all(holder, waiter)
    assert holder.exitcode == -signal.SIGKILL and waiter.exitcode == 0
    assert worker == 2 and epoch > holder_epoch
    assert acquired_at - killed_at < 1.0
    assert recovered_from == holder_pid  # the new holder knows it took over from a dead one
    assert CredentialLocks(run_dir, worker=9).queue(SCOPE) == []


def test_dead_waiter_is_skipped(run_dir: Path, fork_ctx) -> None:
    acquired, release = fork_ctx.Event(), fork_ctx.Event()
    holder = _start(fork_ctx, _procs.hold_credential, str(run_dir), SCOPE, 1, acquired, release)
    assert acquired.wait(WAIT)
    recv, send = fork_ctx.Pipe(duplex=False)
    q_dead, q_live = fork_ctx.Event(), fork_ctx.Event()
    doomed = _start(fork_ctx, _procs.wait_credential, str(run_dir), SCOPE, 2, q_dead, send)
    assert q_dead.wait(WAIT)
    live = _start(fork_ctx, _procs.wait_credential, str(run_dir), SCOPE, 3, q_live, send)
    assert q_live.wait(WAIT)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(WAIT)
    released_at = time.monotonic()
    release.set()
    worker, acquired_at, _epoch, recovered_from = _recv(recv)
    _join_all(holder, live)
    assert worker == 3 and recovered_from is None  # the dead waiter never held it
    assert acquired_at - released_at < 1.0
    assert CredentialLocks(run_dir, worker=9).queue(SCOPE) == []


def test_a_child_forked_by_the_holder_does_not_keep_the_lock_alive(run_dir: Path, fork_ctx) -> None:
    acquired = fork_ctx.Event()
    grandchild = fork_ctx.Value("i", 0)
    holder = _start(fork_ctx, _procs.hold_credential_and_fork, str(run_dir), SCOPE, acquired, grandchild)
    assert acquired.wait(WAIT)
    try:
        os.kill(holder.pid, signal.SIGKILL)
        # Not joined yet: the grandchild still holds the holder's sentinel pipe, so join would wait.
        started = time.monotonic()
        with CredentialLocks(run_dir, worker=2).acquire(SCOPE, 5.0) as hold:
            assert time.monotonic() - started < 1.0
            assert hold.recovered_from is not None and hold.recovered_from.pid == holder.pid
    finally:
        os.kill(grandchild.value, signal.SIGKILL)  # still alive until now, with inherited descriptors
        holder.join(WAIT)
    assert holder.exitcode == -signal.SIGKILL


def test_threads_of_one_process_exclude_each_other(run_dir: Path) -> None:
    locks = CredentialLocks(run_dir, worker=1)
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps
        for _ in range(40):
            with locks.acquire(SCOPE, WAIT):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.0002)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert overlaps == 0
    assert locks.queue(SCOPE) == []
