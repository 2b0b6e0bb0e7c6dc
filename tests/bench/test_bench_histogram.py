"""Latency histograms: record into a worker's shared-memory row, merge rows, read percentiles.

The histogram is ``coordination``'s log-bucket :class:`~coordination.WaitStats`
(locust-style bounded buckets: memory does not grow with the run).  The
supervisor merges one row per worker into the aggregate at every snapshot,
so merge + percentile cost scales with the worker count.  Timings are
reported, not asserted::

    python -m pytest tests/bench/test_bench_histogram.py --benchmark-enable -p no:cacheprovider
"""
from __future__ import annotations

import itertools
import random
from functools import reduce
from pathlib import Path

import pytest

from coordination import ContentionTelemetry, WaitStats

WORKERS = 8


@pytest.fixture
def telemetry(tmp_path: Path):
    with ContentionTelemetry.create(tmp_path, WORKERS) as t:
        yield t


def _filled(telemetry: ContentionTelemetry, per_worker: int = 500) -> None:
    rng = random.Random(7)
    for w in range(WORKERS):
        row = telemetry.writer(w)
        for _ in range(per_worker):
            row.record_lock_wait(rng.lognormvariate(-6, 1.5))


def test_bench_histogram_record(benchmark, telemetry: ContentionTelemetry) -> None:
    """One sample spread over many buckets (values from 1 µs to ~1 s)."""
    row = telemetry.writer(0)
    values = itertools.cycle([10 ** (-6 + k / 5) for k in range(30)])
    benchmark(lambda: row.record_lock_wait(next(values)))
    assert telemetry.snapshot().worker(0).lock_wait.count >= 1


def test_bench_histogram_merge_and_percentiles(benchmark, telemetry: ContentionTelemetry) -> None:
    """Merge 8 worker histograms and read p50/p95/p99."""
    _filled(telemetry)
    rows = [w.lock_wait for w in telemetry.snapshot().workers]

    def merge_and_read() -> tuple[float, float, float]:
        merged = reduce(WaitStats.merge, rows, WaitStats.empty())
        return merged.percentile(50), merged.percentile(95), merged.percentile(99)

    p50, p95, p99 = benchmark(merge_and_read)
    assert 0 < p50 <= p95 <= p99


def test_bench_histogram_snapshot(benchmark, telemetry: ContentionTelemetry) -> None:
    """The supervisor's read: copy every row consistently (seqlock) and aggregate."""
    _filled(telemetry, per_worker=50)
    snap = benchmark(telemetry.snapshot)
    assert snap.aggregate.lock_wait.count == WORKERS * 50
