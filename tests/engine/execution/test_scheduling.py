"""The dispatch policy against the Scheduler protocol alone: no supervisor, no processes.

A tiny driver plays the supervisor's part of the contract: ask ``assign``
for an idle worker, send the job / park the worker (WAIT) / stop it, and
offer work again to parked workers after each report or death.
"""
from __future__ import annotations

import collections

from engine.execution.scheduling import Action, FifoScheduler, WorkerView, take_preferred
from engine.records.batch import Batch, Job


def _batch(n: int, credentials: tuple[str | None, ...] = (None,)) -> Batch:
    jobs = tuple(Job(f"j{i}", i + 1, "flow.json", credentials[i % len(credentials)]) for i in range(n))
    return Batch("batch.jsonl", jobs, {}, {})


class Driver:
    """What the supervisor does with the scheduler's answers."""

    def __init__(self, batch: Batch, workers: int) -> None:
        self.batch = batch
        self.sched = FifoScheduler([j.id for j in batch.jobs], lambda job_id: batch.job(job_id).credential)
        self.workers = {i: WorkerView(i) for i in range(workers)}
        self.deferred: set[int] = set()
        self.sent: list[tuple[int, tuple]] = []

    def ready(self, index: int) -> None:
        me = self.workers[index]
        decision = self.sched.assign(me, list(self.workers.values()))
        if decision.action is Action.WAIT:
            self.deferred.add(index)
        elif decision.action is Action.STOP:
            self.sent.append((index, ("stop",)))
        else:
            self.workers[index] = WorkerView(index, self.batch.job(decision.job_id).credential, True)
            self.sent.append((index, ("job", decision.job_id)))

    def finish(self, index: int) -> None:
        w = self.workers[index]
        self.workers[index] = WorkerView(index, w.credential, False)

    def redispatch(self) -> None:
        waiting, self.deferred = self.deferred, set()
        for i in sorted(waiting):
            if i in self.workers:
                self.ready(i)

    def jobs(self) -> list[tuple[int, str]]:
        return [(i, m[1]) for i, m in self.sent if m[0] == "job"]


def test_take_preferred_tries_each_predicate_in_turn_then_the_head():
    q = collections.deque(["a1", "b1", "c1", "a2"])
    assert take_preferred(q, lambda j: j.startswith("c"), lambda j: j.startswith("b")) == "c1"
    assert take_preferred(q, lambda j: j.startswith("c"), lambda j: j.startswith("b")) == "b1"
    assert take_preferred(q, lambda j: False) == "a1"
    assert take_preferred(q, lambda j: False, fallback=False) is None
    assert take_preferred(collections.deque(), lambda j: True) is None


def test_dispatch_keeps_a_credential_on_the_worker_that_has_its_profile_open():
    # form, form, alice, form, form, alice ...; the two workers finish in turn
    batch = _batch(12, credentials=(None, None, "fixture/alice"))
    d = Driver(batch, 2)
    d.ready(0)
    d.ready(1)
    for turn in range(10):
        d.finish(turn % 2)
        d.ready(turn % 2)
        d.redispatch()
    jobs = d.jobs()
    assert sorted(j for _, j in jobs) == sorted(j.id for j in batch.jobs)  # each job once, none left behind
    assert {i for i, j in jobs if batch.job(j).credential} == {0}  # every alice job on one worker: no lock wait
    assert not d.deferred


def test_a_worker_waits_instead_of_queueing_on_a_credential_another_worker_has_open():
    batch = _batch(3, credentials=("fixture/alice",))
    d = Driver(batch, 2)
    d.ready(0)
    assert d.sent == [(0, ("job", "j0"))]
    d.ready(1)  # only alice jobs left, and worker 0 has alice open: worker 1 waits, it is not sent j1
    assert d.sent == [(0, ("job", "j0"))] and d.deferred == {1}
    d.finish(0)  # worker 0 reports; worker 1 still must not take alice from it
    d.redispatch()
    assert d.sent == [(0, ("job", "j0"))] and d.deferred == {1}
    d.ready(0)
    assert d.sent[-1] == (0, ("job", "j1"))
    del d.workers[0]  # worker 0 died: alice is open nowhere, the waiting worker takes it
    d.redispatch()
    assert d.sent[-1] == (1, ("job", "j2")) and not d.deferred


def test_a_single_worker_or_an_empty_queue_never_waits():
    batch = _batch(2, credentials=("fixture/alice",))
    d = Driver(batch, 1)
    d.ready(0)
    d.finish(0)
    d.ready(0)
    d.finish(0)
    d.ready(0)
    assert [m for _, m in d.sent] == [("job", "j0"), ("job", "j1"), ("stop",)]


def test_a_requeued_job_goes_first_and_a_busy_holder_does_not_keep_its_credential_from_itself():
    batch = _batch(4, credentials=(None, "fixture/alice"))
    d = Driver(batch, 2)
    d.ready(0)  # j0 (anonymous)
    d.ready(1)  # j1 (alice): worker 1 has alice open now
    d.sched.requeue("j0")  # worker 0 died with j0; the replacement starts with no profile open
    d.workers[0] = WorkerView(0)
    d.ready(0)
    assert d.sent[-1] == (0, ("job", "j0"))
    d.finish(1)
    d.ready(1)  # its own profile: alice's next job stays with it
    assert d.sent[-1] == (1, ("job", "j3"))
