"""Which job an idle worker gets next: the whole dispatch policy, behind the :class:`Scheduler` protocol.

The supervisor only asks (``scheduler.assign(worker, others)``) and carries
out the answer — send a job, let the worker wait for the next report, or
stop it — the way pytest-xdist's controller defers to
``xdist/scheduler/load.py``.  The policy needs nothing from the supervisor
but a :class:`WorkerView` per worker, so it is tested without processes.

Credential affinity, in order of preference:

1. a job for the credential whose profile this worker's browser has open
   (no browser restart), unless another worker is running a job for it
   right now (this one would only wait on the credential's lock);
2. a job without a credential, or for one no other worker has open: no
   restart elsewhere, no wait;
3. when every job in reach needs a credential whose profile another live
   worker has open, this worker **waits** for the next report (or death)
   instead of switching profiles to queue on that credential's lock;
4. the head of the queue otherwise, so nothing starves.

A credential open in another worker that is idle for an instant still
counts as theirs: taking it would make both browsers switch profiles.
The lookahead is bounded (:data:`AFFINITY_LOOKAHEAD`), and a job can be
passed over only while others wait behind it.

With ``sessions_per_worker = K`` every session is a consumer of its own: a
:class:`WorkerView` per session (its index is the session's table slot)
whose credential is the profile *that session's* browser has open, so the
same rules keep two sessions of one worker from queueing on one lock.
"""
from __future__ import annotations

import collections
import enum
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

AFFINITY_LOOKAHEAD = 32


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What the policy may know of one worker: its index, the profile it has open, whether it is busy."""

    index: int
    credential: str | None = None
    busy: bool = False


class Action(enum.Enum):
    JOB = "job"    # send ``job_id``
    WAIT = "wait"  # nothing now: ask again after the next report or death
    STOP = "stop"  # no work left for this worker


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    job_id: str | None = None


WAIT = Decision(Action.WAIT)
STOP = Decision(Action.STOP)


class Scheduler(Protocol):
    """Hands out jobs: ``assign`` decides for one idle worker; ``len`` is how many are waiting."""

    def assign(self, worker: WorkerView, others: Iterable[WorkerView]) -> Decision: ...
    def requeue(self, job_id: str) -> None: ...
    def __len__(self) -> int: ...


def take_preferred(queue: "collections.deque[str]", *prefer: Callable[[str], bool],
                   fallback: bool = True) -> str | None:
    """The first queued job the first predicate likes among the next few, else the second's ..., else the head.

    ``fallback=False``: None instead of the head.
    """
    if not queue:
        return None
    for wanted in prefer:
        for i, job_id in enumerate(queue):
            if i >= AFFINITY_LOOKAHEAD:
                break
            if wanted(job_id):
                del queue[i]
                return job_id
    return queue.popleft() if fallback else None


class AffinityScheduler:
    """The credential-affinity policy over a queue; subclasses own the queue (``next_job``, ``requeue``, ``len``)."""

    def __init__(self, credential_of: Callable[[str], str | None]) -> None:
        self.credential_of = credential_of

    def next_job(self, *prefer: Callable[[str], bool], fallback: bool = True) -> str | None:
        raise NotImplementedError

    def requeue(self, job_id: str) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def assign(self, worker: WorkerView, others: Iterable[WorkerView]) -> Decision:
        others = [o for o in others if o.index != worker.index]
        last = worker.credential
        running = {o.credential for o in others if o.busy and o.credential is not None}
        opened = {o.credential for o in others if o.credential is not None}
        credential_of = self.credential_of

        def same_profile(job_id: str) -> bool:
            cred = credential_of(job_id)
            return cred is not None and cred == last and cred not in running

        def free(job_id: str) -> bool:
            cred = credential_of(job_id)
            return cred is None or cred not in opened

        job_id = self.next_job(same_profile, free, fallback=False)
        if job_id is None and opened and len(self):
            return WAIT
        if job_id is None:
            job_id = self.next_job()
        return STOP if job_id is None else Decision(Action.JOB, job_id)


class FifoScheduler(AffinityScheduler):
    """Jobs in batch order (with the affinity policy); a re-queued job goes to the front."""

    def __init__(self, job_ids: list[str], credential_of: Callable[[str], str | None]) -> None:
        super().__init__(credential_of)
        self._queue: collections.deque[str] = collections.deque(job_ids)

    def next_job(self, *prefer: Callable[[str], bool], fallback: bool = True) -> str | None:
        return take_preferred(self._queue, *prefer, fallback=fallback)

    def requeue(self, job_id: str) -> None:
        self._queue.appendleft(job_id)

    def __len__(self) -> int:
        return len(self._queue)


__all__ = ["Scheduler", "AffinityScheduler", "FifoScheduler", "WorkerView", "Decision", "Action", "WAIT", "STOP",
           "take_preferred", "AFFINITY_LOOKAHEAD"]
