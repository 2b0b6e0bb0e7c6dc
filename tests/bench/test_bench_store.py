"""Results-store write path: what every job costs in SQLite (real file, WAL, synchronous=FULL).

A job writes ``start_attempt``, ``end_attempt`` (with its step timings) and
``record_outcome``; the last one is durable before the worker releases its
credential lock and session slot, so its latency sits on the coordination
critical path.  Timings are reported, not asserted.  Measure with::

    python -m pytest tests/bench/test_bench_store.py --benchmark-enable -p no:cacheprovider
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from engine.records.store import DuplicateOutcome, ResultsStore

RUN = "r-bench"
JOBS = 400
ROUNDS = 150
STEPS = [{"key": f"{i}:click", "type": "click", "phase": "Act", "ms": 12.5, "ok": True, "matched": "#b"}
         for i in range(12)]


@pytest.fixture
def store(tmp_path: Path):
    with ResultsStore(tmp_path / "results.sqlite") as s:
        s.create_run(RUN, batch="bench.jsonl", mode="parallel", workers=2, run_dir=str(tmp_path),
                     jobs=[(f"j{i:04d}", i + 1, "form.json", {"id": f"j{i:04d}"}) for i in range(JOBS)])
        yield s


def test_bench_store_job_write_cycle(benchmark, store: ResultsStore) -> None:
    """start_attempt + end_attempt (12 step timings) + record_outcome: one job's writes."""
    ids = (f"j{i:04d}" for i in itertools.count())

    def cycle() -> None:
        job = next(ids)
        store.start_attempt(RUN, job, 1, "w0", 3)
        store.end_attempt(RUN, job, 1, outcome="passed", duration_ms=812.0, matched={"2:click": "#b"},
                          steps=STEPS)
        store.record_outcome(RUN, job, outcome="passed", attempts=1, worker="w0", duration_ms=830.0)

    benchmark.pedantic(cycle, rounds=ROUNDS, warmup_rounds=5)
    counts = store.counts(RUN)
    assert counts["passed"] == counts["attempts"] >= 1


def test_bench_store_record_outcome(benchmark, store: ResultsStore) -> None:
    """The durable final outcome alone (inside the lock and the slot in a worker)."""
    ids = (f"j{i:04d}" for i in itertools.count())
    benchmark.pedantic(lambda: store.record_outcome(RUN, next(ids), outcome="passed", attempts=1, worker="w0",
                                                    duration_ms=1.0), rounds=ROUNDS, warmup_rounds=5)
    with pytest.raises(DuplicateOutcome):
        store.record_outcome(RUN, "j0000", outcome="failed", attempts=2, worker="w1")


def test_bench_store_next_attempt(benchmark, store: ResultsStore) -> None:
    """The read before every attempt (attempt number for the job)."""
    store.start_attempt(RUN, "j0001", 1, "w0")
    assert benchmark(store.next_attempt, RUN, "j0001") == 2
