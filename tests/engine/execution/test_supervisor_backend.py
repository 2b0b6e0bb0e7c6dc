"""The supervisor against a scripted WorkerBackend: deaths at exact moments the real backends only hit by chance.

The real backends (forked processes, Ray actors) are tested end to end
elsewhere; here a backend that plays back events injects the one fault that
is hard to time for real: a worker that dies after its job's outcome is
committed but before its report arrives.
"""
from __future__ import annotations

from pathlib import Path

from engine.config import Settings
from engine.execution.backend import Reclaim, SafetyTotals, WorkerEvent
from engine.execution.supervisor import Supervisor
from engine.records.batch import Batch, Job
from engine.records.store import Lease, ResultsStore

RUN = "r-backend"


class ScriptedBackend:
    """Workers that exist only as a script: ``on_job(index, job_id)`` decides what happens to each job."""

    consumers = 1  # one job at a time per worker

    def __init__(self, on_job) -> None:
        self.on_job = on_job
        self.queue: list[WorkerEvent] = []
        self.alive_set: set[int] = set()
        self.sent: list[tuple[int, tuple]] = []
        self.starts = 0

    def open(self, run_dir: Path, epoch_floor: int) -> None:
        self.floor = epoch_floor

    def reclaim(self) -> list[Reclaim]:
        return []

    def totals(self) -> SafetyTotals:
        return SafetyTotals(0, 0)

    def contention(self):
        from coordination import ContentionSnapshot, WaitStats, WorkerStats

        agg = WorkerStats(-1, 0, 0.0, WaitStats.empty(), WaitStats.empty(), 0, 0, 0, 0, 0)
        return ContentionSnapshot(0.0, (), agg)

    def start(self, index: int) -> int:
        self.starts += 1
        self.alive_set.add(index)
        self.queue.append(WorkerEvent(index, ("ready", index)))
        return 1000 + self.starts

    def send(self, index: int, message: tuple) -> bool:
        self.sent.append((index, message))
        if message[0] == "job":
            self.queue.extend(self.on_job(index, message[1]))
        elif message[0] == "stop":
            self.alive_set.discard(index)
            self.queue.append(WorkerEvent(index, None))
        return True

    def poll(self, timeout: float) -> list[WorkerEvent]:
        out, self.queue = self.queue, []
        for e in out:
            if e.message is None:
                self.alive_set.discard(e.index)
        return out

    def alive(self, index: int) -> bool:
        return index in self.alive_set

    def pid(self, index: int) -> int:
        return 1000 + index

    def exit_code(self, index: int) -> int | None:
        return None if index in self.alive_set else -9

    def heartbeat_age(self, index: int) -> float:
        return 0.0

    def kill(self, index: int) -> None:
        self.alive_set.discard(index)

    def terminate(self, index: int) -> None:
        self.kill(index)

    def join(self, index: int, timeout: float) -> None:
        return

    def forget(self, index: int, timeout: float = 5.0) -> None:
        return

    def indices(self) -> list[int]:
        return sorted(self.alive_set)

    def close(self) -> None:
        self.alive_set.clear()


def _setup(tmp_path: Path, n: int):
    batch = Batch("b.jsonl", tuple(Job(f"j{i}", i + 1, "f.json", None) for i in range(n)), {}, {})
    store_path = str(tmp_path / "results.sqlite")
    with ResultsStore(store_path) as store:
        store.create_run(RUN, batch="b.jsonl", mode="parallel", workers=1, run_dir=str(tmp_path),
                         jobs=[(j.id, j.line, j.flow_key, j.spec()) for j in batch.jobs])
    return batch, store_path


def test_a_worker_that_dies_after_committing_its_outcome_is_not_run_again(tmp_path):
    batch, store_path = _setup(tmp_path, 2)
    writer = ResultsStore(store_path)

    def on_job(index: int, job_id: str) -> list[WorkerEvent]:
        # the worker records the job (one transaction) ... and dies before its report is sent
        lease = Lease(f"slot:{index}", sup.generation.epoch_floor)
        writer.start_attempt(RUN, job_id, 1, f"w{index}", lease=lease)
        writer.finish_attempt(RUN, job_id, 1, lease, outcome="passed", final=True, worker=f"w{index}")
        return [WorkerEvent(index, None)]

    backend = ScriptedBackend(on_job)
    sup = Supervisor(settings=Settings(workers=1, state_dir=str(tmp_path)), batch=batch, run_id=RUN,
                     run_dir=tmp_path, state_dir=str(tmp_path), store_path=store_path,
                     job_ids=[j.id for j in batch.jobs], seed=1, credentials_path=None, backend=backend)
    out = sup.run()
    jobs_sent = [m[1] for _, m in backend.sent if m[0] == "job"]
    assert jobs_sent == ["j0", "j1"]  # each job handed out once: none re-queued after its worker died
    assert out.progress.done == 2 and out.progress.passed == 2 and out.lost_attempts == 0
    attempts = writer.attempts(RUN)
    assert [(a.job_id, a.outcome) for a in attempts] == [("j0", "passed"), ("j1", "passed")]
    writer.close()


def _first_attempt_dies(writer: ResultsStore, sup_of, on_death):
    """A job script: every attempt starts; the first ends in ``on_death(index)``'s events, later ones pass."""
    first = [True]

    def on_job(index: int, job_id: str) -> list[WorkerEvent]:
        lease = Lease(f"slot:{index}", sup_of().generation.epoch_floor)
        attempt = writer.next_attempt(RUN, job_id)
        writer.start_attempt(RUN, job_id, attempt, f"w{index}", lease=lease)
        if first and first.pop():
            return on_death(index)
        writer.finish_attempt(RUN, job_id, attempt, lease, outcome="passed", final=True, worker=f"w{index}")
        from engine.execution.executor import JobReport

        return [WorkerEvent(index, ("done", index, JobReport(job_id, "passed", attempt, None, 1.0, "f"), 0, 0.1,
                                    {})), WorkerEvent(index, ("ready", index))]

    return on_job


def test_a_worker_that_dies_before_committing_has_its_job_run_again(tmp_path):
    batch, store_path = _setup(tmp_path, 1)
    writer = ResultsStore(store_path)
    # dies mid-attempt: nothing committed
    backend = ScriptedBackend(_first_attempt_dies(writer, lambda: sup, lambda index: [WorkerEvent(index, None)]))
    sup = Supervisor(settings=Settings(workers=1, state_dir=str(tmp_path)), batch=batch, run_id=RUN,
                     run_dir=tmp_path, state_dir=str(tmp_path), store_path=store_path, job_ids=["j0"], seed=1,
                     credentials_path=None, backend=backend)
    out = sup.run()
    assert [m[1] for _, m in backend.sent if m[0] == "job"] == ["j0", "j0"]
    assert out.lost_attempts == 1 and out.progress.passed == 1 and backend.starts == 2
    assert [a.outcome for a in writer.attempts(RUN, "j0")] == ["lost", "passed"]
    writer.close()


class ChannelClosesBackend(ScriptedBackend):
    """A worker whose channel reports EOF while its process lives on (until it is killed)."""

    def __init__(self, on_job) -> None:
        super().__init__(on_job)
        self.lingering: set[int] = set()
        self.kills: list[tuple[int, int]] = []  # (index, jobs re-sent by then)

    def poll(self, timeout: float) -> list[WorkerEvent]:
        out, self.queue = self.queue, []
        for e in out:
            if e.message is None and e.index not in self.lingering:
                self.alive_set.discard(e.index)
        return out

    def kill(self, index: int) -> None:
        self.kills.append((index, sum(1 for _, m in self.sent if m[0] == "job")))
        self.lingering.discard(index)
        super().kill(index)


def test_a_worker_whose_channel_closed_while_it_lives_is_killed_before_its_job_is_requeued(tmp_path):
    batch, store_path = _setup(tmp_path, 1)
    writer = ResultsStore(store_path)

    def pipe_breaks(index: int) -> list[WorkerEvent]:
        backend.lingering.add(index)
        return [WorkerEvent(index, None)]  # its pipe broke; the process is still running the job

    backend = ChannelClosesBackend(_first_attempt_dies(writer, lambda: sup, pipe_breaks))
    sup = Supervisor(settings=Settings(workers=1, state_dir=str(tmp_path)), batch=batch, run_id=RUN,
                     run_dir=tmp_path, state_dir=str(tmp_path), store_path=store_path, job_ids=["j0"], seed=1,
                     credentials_path=None, backend=backend)
    out = sup.run()
    assert backend.kills[0] == (0, 1)  # killed while j0 had been sent once: before it was handed out again
    assert [m[1] for _, m in backend.sent if m[0] == "job"] == ["j0", "j0"]
    assert out.progress.passed == 1 and [a.outcome for a in writer.attempts(RUN, "j0")] == ["lost", "passed"]
    writer.close()
