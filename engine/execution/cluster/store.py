"""The executor's results store on a cluster worker, and the coordinator round trips it costs.

Every write of a cluster worker's executor is a call to the
:class:`~.coordinator.Coordinator` actor, which checks the lease's epoch
against the store's fence in the same call.  :class:`RoundTrips` counts
and times the calls that hold a job up (the bench's per-job coordination
figure).
"""
from __future__ import annotations

import time
from typing import Any

from coordination.leases import LeaseLost
from engine.errors import ResultsStoreError
from engine.records.store import Lease


def import_ray():
    import ray  # noqa: PLC0415 - optional dependency, imported where it is used

    return ray


def unwrap(exc: BaseException) -> BaseException:
    """A store error raised in the coordinator, as itself (Ray wraps remote exceptions)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, (ResultsStoreError, LeaseLost)) else exc


class RoundTrips:
    """Blocking calls to the coordinator made on the job's thread: how many, and how long they took in all.

    The per-job coordination overhead of the Ray path (the heartbeat's
    renewals run on their own thread and are not counted: they do not hold
    the job up).
    """

    __slots__ = ("n", "seconds")

    def __init__(self) -> None:
        self.n = 0
        self.seconds = 0.0

    def call(self, ref_of: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return import_ray().get(ref_of())
        finally:
            self.n += 1
            self.seconds += time.perf_counter() - t0

    def settle(self, ref: Any) -> Any:
        """The answer to a call sent earlier without waiting: its wait (if any) counts, not as a round trip."""
        t0 = time.perf_counter()
        try:
            return import_ray().get(ref)
        finally:
            self.seconds += time.perf_counter() - t0


class CoordinatorStore:
    """The executor's results store on a cluster worker: every write is a call to the coordinator.

    An attempt's start is sent without waiting for its answer, which is
    taken before the attempt's end is sent (:meth:`finish_attempt`): the
    flow runs meanwhile, one round trip less on every job's path (11 ms of
    a 550-ms form job on this 2-core host).  Nothing is lost by it: no CDP
    command is sent without a lease the worker still trusts on its own
    clock (the guard), and a start the coordinator refused (a stale epoch,
    a lease not held) is raised before the end is sent — the attempt
    records nothing more, and the executor handles the refusal as the
    end's own (a stale write, logged and raised).

    A job's *final* end (its outcome) is sent without waiting too: the
    worker hands its answer to the driver with the job's report
    (:meth:`take_final`), and the driver counts the job done only once the
    answer says the outcome is recorded (see the backend's ``confirm``).
    The worker meanwhile starts the next job queued on it — that job's
    writes reach the coordinator after this one's (one caller's calls to
    an actor run in the order they were sent).  A refusal comes back to the
    driver instead of the executor: a duplicate is marked on the report, a
    stale write is the worker's death (as it was raised before).
    """

    def __init__(self, coordinator: Any, holder: str, trips: RoundTrips | None = None) -> None:
        self.coordinator = coordinator
        self.holder = holder
        self.trips = trips or RoundTrips()
        self._next: dict[str, int] = {}  # job -> its next attempt number, when known without asking
        self._started: dict[tuple[str, int], Any] = {}  # (job, attempt) -> the start's answer, not yet taken
        self._final: dict[str, Any] = {}  # job -> the answer to its final end, for the driver (take_final)

    def _call(self, method: str, *args: Any, **kw: Any) -> Any:
        ray = import_ray()
        try:
            return self.trips.call(lambda: getattr(self.coordinator, method).remote(*args, **kw))
        except ray.exceptions.RayTaskError as exc:
            raise unwrap(exc) from None

    def expect(self, job_id: str, attempt: int | None) -> None:
        """The job's next attempt number as the driver read it from the store when it sent the job.

        Saves the job's first round trip.  Safe because, from that send on,
        this worker is the job's only writer: an earlier holder was written
        off (its slot reclaimed, which it never takes up again) before the
        job was re-queued, and its writes are fenced.  ``None`` forgets it.
        """
        if attempt is None:
            self._next.pop(job_id, None)
        else:
            self._next[job_id] = attempt

    def next_attempt(self, run_id: str, job_id: str) -> int:
        known = self._next.pop(job_id, None)
        return known if known is not None else self._call("next_attempt", run_id, job_id)

    def start_attempt(self, run_id: str, job_id: str, attempt: int, worker: str, epoch: int = 0, *,
                      lease: Lease | None = None) -> None:
        assert lease is not None, "a cluster worker always writes under a lease"
        self._started[(job_id, attempt)] = self.coordinator.start_attempt.remote(
            run_id, job_id, attempt, worker, lease, self.holder)
        self._next[job_id] = attempt + 1  # a retry in this run: still the only writer of this job

    def finish_attempt(self, run_id: str, job_id: str, attempt: int, lease: Lease, **kw: Any) -> None:
        self._take_start(job_id, attempt)
        if kw.get("final"):
            self._final[job_id] = self.coordinator.finish_attempt.remote(run_id, job_id, attempt, lease,
                                                                         self.holder, **kw)
            return
        self._call("finish_attempt", run_id, job_id, attempt, lease, self.holder, **kw)

    def take_final(self, job_id: str) -> Any:
        """The answer (an ObjectRef) to the job's final end, sent without waiting; None if none was sent."""
        return self._final.pop(job_id, None)

    def _take_start(self, job_id: str, attempt: int) -> None:
        ref = self._started.pop((job_id, attempt), None)
        if ref is None:
            return
        ray = import_ray()
        try:
            self.trips.settle(ref)
        except ray.exceptions.RayTaskError as exc:
            raise unwrap(exc) from None

    def settle(self) -> None:
        """Take every start's answer still outstanding (the end of a job: a refusal is raised, not lost)."""
        for job_id, attempt in list(self._started):
            self._take_start(job_id, attempt)

    def drop_unsettled(self) -> None:
        """Forget the starts and final end of a job that ended in an error (the error is what the driver gets;
        the store says whether its outcome was recorded)."""
        self._started.clear()
        self._final.clear()

    def close(self) -> None:
        return


__all__ = ["CoordinatorStore", "RoundTrips"]
