"""Worker heartbeats are judged on the machine's monotonic clock: a wall-clock step stalls nobody.

A step of the wall clock (NTP, a VM restored from a snapshot) used to make
every worker's heartbeat look as old as the step, and the supervisor killed
workers in the middle of their jobs.  Here a real forked worker stamps its
heartbeat as the engine's workers do, and the supervisor's side reads it
with the wall clock moved an hour on.
"""
from __future__ import annotations

import os
import threading
import time

from engine.execution import worker
from engine.execution.forked import ForkedWorkers


def _beat_for_a_while(index, conn, beats, inherited, parent) -> None:
    stop = threading.Event()
    threading.Thread(target=worker._heartbeat, args=(beats, index, parent, stop), daemon=True).start()
    conn.send("beating")
    stop.wait(3.0)
    stop.set()
    conn.close()
    os._exit(0)


def test_a_wall_clock_step_does_not_age_a_live_workers_heartbeat(tmp_path, monkeypatch):
    backend = ForkedWorkers(1, _beat_for_a_while, store_path=str(tmp_path / "results.sqlite"))
    backend.open(tmp_path, epoch_floor=1)
    try:
        backend.start(0)
        assert [e.message for e in backend.poll(10.0)] == ["beating"]
        time.sleep(1.0)  # a stamp or two from the child's heartbeat thread
        assert backend.heartbeat_age(0) < 2.0
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600.0)  # the wall clock steps an hour on
        assert backend.heartbeat_age(0) < 2.0
    finally:
        monkeypatch.undo()
        backend.kill(0)
        backend.forget(0)
        backend.close()
