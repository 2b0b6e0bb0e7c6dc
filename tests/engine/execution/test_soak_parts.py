"""The soak's parts on their own: the cycling scheduler, window accumulators, memory series, store accounting."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.records.batch import Batch, Job
from engine.execution.executor import JobReport
from engine.soak.loop import CyclingScheduler
from engine.soak.watch import MEMORY_POINTS, MemoryTrack, WindowTally
from engine.records.store import ResultsStore

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
    w = WindowTally(0, 0.0, 60.0)
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
    assert WindowTally(1, 0.0, 60.0).to_dict(10.0, {}, histograms=True)["partial"] is True


def test_resources_keep_each_workers_maximum_in_the_window():
    w = WindowTally(0, 0.0, 60.0)
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
