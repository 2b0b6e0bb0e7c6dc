"""Stale owners: the supervisor's sweep frees the slots of dead processes, pid reuse included."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from coordination import OwnershipTable, SlotState, reclaim_dead
from coordination._process import current_identity, is_alive, start_time_of
from coordination.errors import UnownedUse

from . import _procs


@pytest.fixture
def table(run_dir: Path):
    with OwnershipTable.create(run_dir, 4) as t:
        yield t


def test_liveness_needs_pid_and_start_time() -> None:
    me = current_identity()
    assert is_alive(me.pid, me.start_time)
    assert not is_alive(me.pid, me.start_time - 5.0)  # same pid, another process: reused
    assert not is_alive(0, 0.0)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    start = start_time_of(pid)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # wait for the exit but leave it unreaped: a zombie
    assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not is_alive(pid, start)  # exited but not reaped yet: dead all the same
    os.waitpid(pid, 0)
    assert not is_alive(pid, start)


def test_a_wall_clock_step_does_not_make_a_live_owner_look_dead(run_dir: Path, table: OwnershipTable,
                                                                 monkeypatch) -> None:
    """The kernel's boot time follows the wall clock: a step (NTP, a VM restored) moved every
    wall-clock start time by whole seconds, and a sweep then took live owners' slots."""
    mine = table.claim(7)
    real = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real + 37.0)  # what /proc/stat says after a step
    assert is_alive(mine.owner_pid, mine.owner_start)
    assert reclaim_dead(table) == []
    table.check_owner(mine.index, 7, mine.epoch)


def test_sweep_frees_slots_of_a_killed_owner_and_leaves_live_ones(run_dir: Path, table: OwnershipTable,
                                                                  fork_ctx, coordination_logs) -> None:
    mine = table.claim(7)
    claimed = fork_ctx.Event()
    recv, send = fork_ctx.Pipe(duplex=False)
    child = fork_ctx.Process(target=_procs.claim_and_wait, args=(str(run_dir), 3, claimed, send))
    child.start()
    assert claimed.wait(30)
    index, epoch = recv.recv()
    assert reclaim_dead(table) == []  # everyone alive: nothing to take
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    [got] = reclaim_dead(table)
    assert (got.slot, got.from_state, got.dead_worker, got.dead_pid) == (index, SlotState.ACTIVE, 3, child.pid)
    assert (got.old_epoch, got.new_epoch) == (epoch, epoch + 1)
    assert table.read(index).state is SlotState.FREE and table.read(index).epoch == epoch + 1
    with pytest.raises(UnownedUse):
        table.check_owner(index, 3, epoch)  # a zombie-like late send with the old token is fenced
    table.check_owner(mine.index, 7, mine.epoch)  # the live owner kept its slot
    [event] = [r for r in coordination_logs.records if r.getMessage() == "slot reclaimed from dead owner"]
    assert event.name.startswith("drover.audit.")
    assert (event.slot, event.owner_pid, event.old_epoch, event.new_epoch) == (index, child.pid, epoch, epoch + 1)
    assert reclaim_dead(table) == []


def test_a_reused_pid_is_still_a_dead_owner(table: OwnershipTable) -> None:
    """The slot names this very (live) pid, but with another start time: the pid was reused."""
    s = table.claim(2)
    me = current_identity()
    # Rewrite the owner's start time as a predecessor with our pid would have left it.
    table._mutex.acquire(5)
    try:
        table._write(s.index, None, s.epoch, me.start_time - 100.0, 2, me.pid, SlotState.ACTIVE, s.claimed_at,
                     s.updated_at, b"")
    finally:
        table._mutex.release()
    [got] = reclaim_dead(table)
    assert (got.slot, got.dead_pid) == (s.index, me.pid)
    assert table.read(s.index).state is SlotState.FREE


def test_sweep_does_not_touch_a_slot_that_changed_hands(table: OwnershipTable) -> None:
    old = table.claim(1, slot=0)
    table.begin_release(0, 1, old.epoch)
    table.finish_release(0, 1, old.epoch)
    new = table.claim(2, slot=0)
    # The sweep judged `old` dead, but by the time it locks the slot it belongs to someone else.
    assert table.reclaim_if_dead(old, alive=lambda pid, start: False) is None
    assert table.read(0).epoch == new.epoch and table.read(0).owner_worker == 2
    assert table.totals().invalid_transitions == 0
