"""The soak's parts on their own: the cycling scheduler, window accumulators, memory series, store accounting."""
from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from engine.records.batch import Batch, Job
from engine.execution.executor import JobReport
from engine.soak.loop import CyclingScheduler
from engine.soak.watch import MEMORY_POINTS, MemoryTrack, Window
from engine.records.store import ResultsStore
from engine.execution.supervisor import take_preferred

RUN = "r20261125-000000-abcd"


def _batch(n: int = 3, credentials: tuple[str | None, ...] = (None,)) -> Batch:
    jobs = tuple(Job(f"j{i}", i + 1, "flow.json", credentials[i % len(credentials)]) for i in range(n))
    return Batch("batch.jsonl", jobs, {}, {})


@pytest.fixture
def store(tmp_path: Path):
    s = ResultsStore(tmp_path / "results.sqlite")
    batch = _batch()
    s.create_run(RUN, batch="batch.jsonl", mode="parallel", workers=2, run_dir=str(tmp_path),
                 jobs=[(j.id, j.line, j.flow_key, j.spec()) for j in batch.jobs])
    yield s
    s.close()


def test_batch_finds_cycle_ids_and_ids_that_contain_an_at_sign():
    batch = Batch("b", (Job("user@example", 1, "f.json"), Job("j1", 2, "f.json", "shop/alice")), {}, {})
    assert batch.job("user@example").id == "user@example"
    again = batch.job("j1@7")
    assert again.id == "j1@7" and again.credential == "shop/alice"
    assert batch.job("user@example@3").id == "user@example@3"
    for bad in ("j2", "j1@x", "j1@", "nope@2"):
        with pytest.raises(KeyError):
            batch.job(bad)


def test_take_preferred_tries_each_predicate_in_turn_then_the_head():
    q = collections.deque(["a1", "b1", "c1", "b2"])
    assert take_preferred(q, lambda j: j.startswith("c"), lambda j: j.startswith("b")) == "c1"
    assert take_preferred(q, lambda j: j.startswith("c"), lambda j: j.startswith("b")) == "b1"
    assert take_preferred(q, lambda j: False) == "a1"
    assert list(q) == ["b2"]
    assert take_preferred(collections.deque(), lambda j: True) is None


def test_cycling_scheduler_repeats_the_batch_and_records_each_cycle(store):
    batch = _batch()
    sched = CyclingScheduler(batch, store, RUN, ["j0", "j1", "j2"])
    got = [sched.next_job() for _ in range(7)]
    assert got == ["j0", "j1", "j2", "j0@2", "j1@2", "j2@2", "j0@3"]
    assert sched.cycle == 3
    assert set(store.job_ids(RUN)) == {"j0", "j1", "j2", "j0@2", "j1@2", "j2@2", "j0@3", "j1@3", "j2@3"}


def test_after_the_phase_ends_only_requeued_jobs_are_handed_out(store):
    sched = CyclingScheduler(_batch(), store, RUN, ["j0", "j1", "j2"])
    assert sched.next_job() == "j0"
    sched.stop_at = time.monotonic() - 1
    assert len(sched) == 0 and sched.next_job() is None
    sched.requeue("j0")  # its worker died: it was started, so it must still run
    assert len(sched) == 1 and sched.next_job() == "j0" and sched.next_job() is None
    sched.stop_at = float("inf")  # the next phase picks up where this one stopped
    assert sched.next_job() == "j1"


def test_queue_wait_is_measured_per_window_and_for_the_run(store):
    sched = CyclingScheduler(_batch(), store, RUN, ["j0", "j1", "j2"])
    time.sleep(0.2)
    sched.next_job()
    first = sched.take_wait_max()
    assert 0.2 <= first < 5 and sched.take_wait_max() == 0.0
    sched.next_job()
    assert sched.run_wait_max >= first


def test_a_window_keeps_step_types_and_phase_labels_apart():
    w = Window(0, 0.0, 60.0)
    w.add(JobReport("j", "passed", 1, None, 100.0, "checkout", steps=[
        ("s0", "navigate", "Open", 40.0), ("s1", "click", "Login", 10.0), ("s2", "click", "Login", 20.0),
        ("s3", "waitForElement", None, 5.0)]), "w0")
    w.add(JobReport("k", "failed", 1, "cdp", 50.0, "checkout"), "w1")
    d = w.to_dict(30.0, {}, histograms=False)
    lat = d["latency"]
    assert lat["phase:click"]["n"] == 2 and lat["label:Login"]["n"] == 1 and lat["label:Login"]["max"] == 30.0
    assert lat["phase:navigate"]["n"] == 1 and "phase:Open" not in lat and "label:None" not in lat
    assert lat["flow:checkout"]["n"] == 2 and d["jobs"] == {"passed": 1, "failed": 1} and d["error_rate"] == 0.5
    assert d["partial"] is False and "histogram" not in lat["flow:checkout"]
    assert Window(1, 0.0, 60.0).to_dict(10.0, {}, histograms=True)["partial"] is True


def test_resources_keep_each_workers_maximum_in_the_window():
    w = Window(0, 0.0, 60.0)
    w.note_resources({"w0": {"browser_uss_mb": 100.0, "fds": 30.0}, "w1": {"browser_uss_mb": 90.0, "fds": 9.0}})
    w.note_resources({"w0": {"browser_uss_mb": 80.0, "fds": 31.0}})
    res = w.to_dict(1.0, {}, histograms=False)["resources"]
    assert res["w0"] == {"samples": 2, "browser_uss_mb": 100.0, "fds": 31.0}
    assert res["w1"]["samples"] == 1


def test_memory_series_stays_bounded_and_growth_starts_after_settling():
    track = MemoryTrack(started=0.0, settle_s=10.0)
    for t in range(5000):
        track.sample(float(t))
    d = track.to_dict()
    assert len(d["samples"]) < MEMORY_POINTS
    assert d["samples"][0][0] == 0.0 and d["samples"][-1][0] > 4000
    assert d["first_mb"] > 0 and d["max_mb"] >= d["first_mb"] and d["growth_mb"] == d["max_mb"] - d["first_mb"]
    assert MemoryTrack(0.0, 10.0).to_dict()["growth_mb"] is None


def test_store_accounts_for_jobs_and_discards_only_never_started_ones(store):
    store.start_attempt(RUN, "j0", 1, "w0")
    store.end_attempt(RUN, "j0", 1, outcome="passed")
    store.record_outcome(RUN, "j0", outcome="passed", attempts=1, worker="w0")
    store.start_attempt(RUN, "j1", 1, "w1")  # started, never finished
    spans = {j: (first, done) for j, first, done in store.job_spans(RUN)}
    assert spans["j0"][0] is not None and spans["j0"][1] >= spans["j0"][0]
    assert spans["j1"][0] is not None and spans["j1"][1] is None and spans["j2"] == (None, None)
    assert store.outcome_counts_since(RUN, 0.0) == {"passed": 1, "failed": 0}
    assert store.outcome_counts_since(RUN, time.time() + 10) == {"passed": 0, "failed": 0}
    assert store.discard_unstarted(RUN) == 1
    assert sorted(store.job_ids(RUN)) == ["j0", "j1"]


# -- which job an idle worker gets (the supervisor's dispatch policy, without processes) ---------------------


def _supervisor(tmp_path: Path, batch: Batch, workers: int):
    from engine.config import Settings
    from engine.execution.supervisor import Supervisor, WorkerHandle

    sup = Supervisor(settings=Settings(workers=workers, state_dir=str(tmp_path)), batch=batch, run_id=RUN,
                     run_dir=tmp_path, state_dir=str(tmp_path), store_path=str(tmp_path / "r.sqlite"),
                     job_ids=[j.id for j in batch.jobs], seed=1, credentials_path=None)
    sent: list = []
    sup._send = lambda handle, msg: sent.append((handle.index, msg))  # the pipe is the only thing faked
    for i in range(workers):
        sup.workers[i] = WorkerHandle(i, process=None, conn=None)
    return sup, sent


def _ready(sup, index: int) -> None:
    sup.msg_ready(sup.workers[index], index)


def test_dispatch_keeps_a_credential_on_the_worker_that_has_its_profile_open(tmp_path):
    # form, form, alice, form, form, alice ...; the two workers finish in turn
    batch = _batch(12, credentials=(None, None, "fixture/alice"))
    sup, sent = _supervisor(tmp_path, batch, 2)
    _ready(sup, 0)
    _ready(sup, 1)
    for turn in range(10):
        sup.workers[turn % 2].job = None
        _ready(sup, turn % 2)
    jobs = [(i, m[1]) for i, m in sent if m[0] == "job"]
    assert sorted(j for _, j in jobs) == sorted(j.id for j in batch.jobs)  # each job once, none left behind
    assert {i for i, j in jobs if batch.job(j).credential} == {0}  # every alice job on one worker: no lock wait
    assert not sup._deferred


def test_a_worker_waits_instead_of_queueing_on_a_credential_another_worker_has_open(tmp_path):
    batch = _batch(3, credentials=("fixture/alice",))
    sup, sent = _supervisor(tmp_path, batch, 2)
    _ready(sup, 0)
    assert sent == [(0, ("job", "j0"))]
    _ready(sup, 1)  # only alice jobs left, and worker 0 has alice open: worker 1 is deferred, not sent j1
    assert sent == [(0, ("job", "j0"))] and 1 in sup._deferred
    sup.workers[0].job = None  # worker 0 reports; worker 1 still must not take alice from it
    sup._redispatch()
    assert sent == [(0, ("job", "j0"))] and 1 in sup._deferred
    _ready(sup, 0)
    assert sent[-1] == (0, ("job", "j1"))
    del sup.workers[0]  # worker 0 died: alice is open nowhere, the waiting worker takes it
    sup._redispatch()
    assert sent[-1] == (1, ("job", "j2")) and not sup._deferred


def test_a_single_worker_or_an_empty_queue_never_waits(tmp_path):
    batch = _batch(2, credentials=("fixture/alice",))
    sup, sent = _supervisor(tmp_path, batch, 1)
    _ready(sup, 0)
    sup.workers[0].job = None
    _ready(sup, 0)
    sup.workers[0].job = None
    _ready(sup, 0)
    assert [m for _, m in sent] == [("job", "j0"), ("job", "j1"), ("stop",)]
