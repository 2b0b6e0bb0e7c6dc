"""Contention telemetry: one writer per row, lock-free consistent snapshots, percentiles from buckets."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from coordination import ContentionTelemetry, WaitStats
from coordination import _layout as L
from coordination.errors import CoordinationError

from . import _procs


@pytest.fixture
def tele(run_dir: Path):
    with ContentionTelemetry.create(run_dir, 4) as t:
        yield t


def _stats(values: list[float]) -> WaitStats:
    buckets = [0] * L.HIST_BUCKETS
    for v in values:
        buckets[L.bucket_of(v)] += 1
    return WaitStats(len(values), sum(values), max(values, default=0.0), tuple(buckets))


def test_percentiles_come_from_the_buckets_within_one_bucket() -> None:
    values = [i * 1e-4 for i in range(1, 1001)]  # 0.1 ms .. 100 ms, evenly
    s = _stats(values)
    width = 2 ** (1 / L.HIST_PER_OCTAVE)  # one bucket: ~19 %
    for q, exact in ((50, 0.05), (90, 0.09), (99, 0.099)):
        assert exact <= s.percentile(q) <= exact * width
    assert s.percentile(100) == s.max == pytest.approx(0.1)
    assert s.mean == pytest.approx(sum(values) / 1000)
    assert WaitStats.empty().p99 == 0.0
    with pytest.raises(ValueError):
        s.percentile(101)


def test_merge_is_the_stats_of_the_union() -> None:
    a, b = [0.001] * 10, [0.5] * 5
    merged = _stats(a).merge(_stats(b))
    assert merged == _stats(a + b)
    assert merged.p50 <= 0.001 * 2 ** 0.25 and merged.p99 == pytest.approx(0.5)


def test_bucket_edges() -> None:
    assert L.bucket_of(0.0) == L.bucket_of(-1.0) == L.bucket_of(float("nan")) == 0
    assert L.bucket_of(1e9) == L.HIST_BUCKETS - 1
    for k in range(1, L.HIST_BUCKETS - 1):
        assert L.bucket_of(L.bucket_upper(k) * 0.999) == k


def test_rows_written_by_other_processes_are_seen_per_worker_and_in_aggregate(run_dir: Path, tele,
                                                                              fork_ctx) -> None:
    procs = [fork_ctx.Process(target=_procs.write_counters, args=(str(run_dir), w, 50 * (w + 1))) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    mine = tele.writer(3)
    mine.record_queue_wait(0.25)
    mine.add_forced_reconnect()
    mine.add_unowned_use()
    snap = tele.snapshot()
    assert [w.worker for w in snap.workers] == [0, 1, 3]
    w0, w1 = snap.worker(0), snap.worker(1)
    assert (w0.lock_wait.count, w0.retries, w1.lock_wait.count, w1.retries) == (50, 50, 100, 100)
    assert w0.lock_wait.max == pytest.approx(0.001) and w0.consistent
    agg = snap.aggregate
    assert (agg.lock_wait.count, agg.retries, agg.queue_wait.count) == (150, 150, 1)
    assert (agg.forced_reconnects, agg.unowned_uses, agg.invalid_transitions) == (1, 1, 0)
    assert agg.queue_wait.max == pytest.approx(0.25)
    assert 0.001 <= agg.lock_wait.p99 <= 0.001 * 2 ** 0.25
    with pytest.raises(KeyError):
        snap.worker(2)


def test_snapshots_of_a_busy_writer_are_consistent(run_dir: Path, tele, fork_ctx) -> None:
    """The supervisor reads while a worker writes flat out; every copy is a state that existed."""
    started = fork_ctx.Event()
    p = fork_ctx.Process(target=_procs.hammer_counters, args=(str(run_dir), 0, 1.0, started))
    p.start()
    assert started.wait(30)
    last = 0
    taken = 0
    for _ in range(200_000):  # bounded; ends when the writer does
        if p.exitcode is not None:
            break
        snap = tele.snapshot()
        if not snap.workers:
            continue
        row = snap.worker(0)
        assert row.consistent
        # One update bumps count, a bucket and (in a second update) retries: a torn copy would break these.
        assert sum(row.lock_wait.buckets) == row.lock_wait.count
        assert row.retries in (row.lock_wait.count, row.lock_wait.count - 1)
        assert row.lock_wait.count >= last
        last = row.lock_wait.count
        taken += 1
    p.join(30)
    assert p.exitcode == 0
    assert taken > 10 and last > 0


def test_a_restarted_worker_continues_its_row(run_dir: Path, tele, fork_ctx) -> None:
    p = fork_ctx.Process(target=_procs.write_counters, args=(str(run_dir), 2, 7))
    p.start()
    p.join(30)
    row = tele.writer(2)  # the previous writer is gone: this process takes the row over
    row.add_retry()
    got = tele.snapshot().worker(2)
    assert (got.retries, got.lock_wait.count) == (8, 7)


def test_a_row_with_a_live_writer_cannot_be_taken(run_dir: Path, tele, fork_ctx) -> None:
    done, release = fork_ctx.Event(), fork_ctx.Event()
    p = fork_ctx.Process(target=_procs.write_counters, args=(str(run_dir), 1, 1, done, release))
    p.start()
    try:
        assert done.wait(30)
        with pytest.raises(CoordinationError, match="live pid"):
            tele.writer(1)
    finally:
        release.set()
        p.join(30)


def test_a_writer_killed_mid_update_is_flagged_then_repaired(tele) -> None:
    row = tele.writer(0)
    row.add_retry()
    struct.pack_into("<Q", tele._seg.buf, L.row_offset(0), 99)  # odd counter: a writer died mid-update
    assert not tele.snapshot().worker(0).consistent
    assert not tele.snapshot().aggregate.consistent
    fresh = tele.writer(0)  # same process binds again, as a restarted worker would
    fresh.add_retry()
    got = tele.snapshot().worker(0)
    assert got.consistent and got.retries == 2


def test_row_bounds_are_checked(tele) -> None:
    with pytest.raises(ValueError):
        tele.writer(4)
