"""The local backend: workers are forked processes, each with a pipe and a slot in a shared heartbeat array.

What only a fork needs lives here and nowhere else:

* **no SQLite connection crosses fork()** — every results store of this
  process is closed around ``Process.start`` and the descriptors checked
  (:meth:`ResultsStore.closed_for_fork`);
* each child closes the supervisor's ends of the *other* workers' pipes it
  inherited, or those workers would never see EOF when the supervisor dies;
* the child learns its parent's pid, so it dies with it (PDEATHSIG).

Heartbeats are a ``RawArray`` of timestamps the workers stamp twice a
second (see :mod:`engine.execution.worker`).  Single-writer coordination
on one host is shared memory in the run directory: the ownership table
(one slot per session: worker i's session s is slot ``i * K + s`` with
``K = sessions_per_worker``, epochs as fencing tokens) and the contention
counters (one row per worker), which the workers attach to by the same
directory.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from pathlib import Path

from coordination import ContentionTelemetry, OwnershipTable, reclaim_dead
from coordination.telemetry_context import stream_logger
from engine.execution.backend import Reclaim, SafetyTotals, WorkerEvent
from engine.records.store import ResultsStore

ops = stream_logger("operational", __name__)


@dataclass(slots=True)
class _Child:
    process: mp.process.BaseProcess
    conn: Connection


class ForkedWorkers:
    """Forks ``target(index, conn, beats, inherited, parent_pid)`` per worker; see :class:`WorkerBackend`."""

    def __init__(self, slots: int, target: Callable[..., None], *, store_path: str, sessions: int = 1) -> None:
        self._ctx = mp.get_context("fork")
        self._beats = self._ctx.RawArray("d", slots)
        self._target = target
        self._store_path = store_path
        self._children: dict[int, _Child] = {}
        self._slots = slots          # workers: heartbeats and contention rows
        self._sessions = sessions    # ownership-table slots per worker
        self.consumers = sessions    # each session takes jobs of its own
        self.table: OwnershipTable | None = None
        self._telemetry: ContentionTelemetry | None = None

    def open(self, run_dir: Path, epoch_floor: int) -> None:
        self.table = OwnershipTable.create(run_dir, slots=self._slots * self._sessions, epoch_floor=epoch_floor - 1)
        self._telemetry = ContentionTelemetry.create(run_dir, workers=self._slots)

    def reclaim(self) -> list[Reclaim]:
        assert self.table is not None, "open() first"
        return [Reclaim(f"slot:{r.slot}", f"w{r.dead_worker}", r.old_epoch, r.new_epoch,
                        {"slot": r.slot, "dead_pid": r.dead_pid, "dead_worker": r.dead_worker,
                         "from_state": r.from_state.name})
                for r in reclaim_dead(self.table, on_reclaim=None)]

    def totals(self) -> SafetyTotals:
        assert self.table is not None, "open() first"
        t = self.table.totals()
        return SafetyTotals(t.unowned_uses, t.invalid_transitions)

    def contention(self) -> Any:
        assert self._telemetry is not None, "open() first"
        return self._telemetry.snapshot()

    def start(self, index: int) -> int:
        parent_conn, child_conn = self._ctx.Pipe()
        inherited = tuple(c.conn for c in self._children.values()) + (parent_conn,)
        proc = self._ctx.Process(target=self._target,
                                 args=(index, child_conn, self._beats, inherited, os.getpid()),
                                 name=f"drover-w{index}", daemon=False)
        self._beats[index] = time.monotonic()
        with ResultsStore.closed_for_fork(self._store_path):  # no SQLite connection may cross fork()
            proc.start()
        child_conn.close()
        self._children[index] = _Child(proc, parent_conn)
        return proc.pid or 0

    def send(self, index: int, message: tuple) -> bool:
        try:
            self._children[index].conn.send(message)
            return True
        except (BrokenPipeError, ConnectionResetError, EOFError):
            ops.warning("worker pipe closed", extra={"event": "pipe_closed", "worker_index": index})
            return False

    def poll(self, timeout: float) -> list[WorkerEvent]:
        children = list(self._children.items())
        waitables: list[Any] = [c.conn for _, c in children] + [c.process.sentinel for _, c in children]
        events: list[WorkerEvent] = []
        dead: set[int] = set()
        for ready in wait(waitables, timeout=timeout):
            for index, child in children:
                if index in dead:
                    continue
                if ready is child.conn:
                    try:
                        events.append(WorkerEvent(index, child.conn.recv()))
                    except (EOFError, ConnectionResetError):
                        dead.add(index)
                        events.append(WorkerEvent(index, None))
                    break
                if ready == child.process.sentinel:
                    dead.add(index)
                    events.append(WorkerEvent(index, None))
                    break
        return events

    def alive(self, index: int) -> bool:
        child = self._children.get(index)
        return child is not None and child.process.is_alive()

    def pid(self, index: int) -> int:
        return self._children[index].process.pid or 0

    def exit_code(self, index: int) -> int | None:
        return self._children[index].process.exitcode

    def heartbeat_age(self, index: int) -> float:
        return time.monotonic() - self._beats[index]

    def kill(self, index: int) -> None:
        child = self._children.get(index)
        if child is not None and child.process.is_alive():
            child.process.kill()

    def terminate(self, index: int) -> None:
        child = self._children.get(index)
        if child is not None and child.process.is_alive():
            child.process.terminate()

    def join(self, index: int, timeout: float) -> None:
        child = self._children.get(index)
        if child is not None:
            child.process.join(timeout)

    def forget(self, index: int, timeout: float = 5.0) -> None:
        child = self._children.pop(index, None)
        if child is not None:
            child.process.join(timeout)
            child.conn.close()

    def indices(self) -> list[int]:
        return list(self._children)

    def close(self) -> None:
        for index in list(self._children):
            self.kill(index)
            self.forget(index)
        for shared in (self.table, self._telemetry):
            if shared is not None:
                shared.close()
                shared.unlink()
        self.table = self._telemetry = None


__all__ = ["ForkedWorkers"]
