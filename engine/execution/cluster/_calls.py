"""What the driver knows of each Ray actor: its outstanding calls, in the order the actor runs them.

The queue (``engine.ray_queue_depth``, default 2): the driver keeps that
many jobs sent to each actor, which runs them one after another (an
actor runs its calls in the order they were sent), so the next job starts
as the last one ends instead of after its report has reached the driver
and the next job has come back: measured on the form batch, the gap
between one job's end and the next one's start in the store was 36 ms a
job on Ray against 13 for a forked worker.  To the supervisor each place
in the queue is a consumer (``("ready", i, n)``, ``("done", ..., n)``);
``("started", i, n)`` says when a queued job begins, so its deadline does
not count the wait.  A queued job is never run by an actor the driver has
given up: an actor whose call raised refuses every later one
(:meth:`~.worker.ClusterWorker.run`), a killed or dead one runs nothing,
and a written-off one finds its slot lease reclaimed before it sends
anything (its own clock no longer trusts the lease, and the coordinator
refuses it); the supervisor re-queues every job of the actor's queue.

A job's outcome goes out from the actor without waiting
(:class:`~.store.CoordinatorStore`): the answer to its ``done`` call
carries the reference of that write, and becomes a ``confirm`` call at the
head of the actor's calls; the job is reported done once it is answered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Call:
    """One call the driver waits on: an actor's ready, a job's report, its outcome's answer, a stop."""

    ref: Any                    # its ObjectRef
    kind: str                   # what it answers: ready | done | confirm (a done's outcome recorded) | stop
    number: int = 0             # the place in the actor's queue it was sent for (a "done")
    payload: Any = None         # a confirm's: the job's report, answered once the outcome is recorded


@dataclass(slots=True)
class Actor:
    """One actor as the driver sees it: its handle, its outstanding calls, the places of its queue stopped."""

    handle: Any
    holder: str
    calls: list[Call] = field(default_factory=list)  # outstanding, in the order the actor runs them
    stopped: set[int] = field(default_factory=set)    # places in its queue told to stop
    stopping: bool = False      # its stop is sent: nothing more is
    pid: int = 0
    node: str = ""
    exit_code: int | None = None
    asked_at: float = 0.0       # monotonic: when the driver asked for the actor


__all__ = ["Actor", "Call"]
