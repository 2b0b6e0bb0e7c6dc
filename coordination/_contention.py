"""Contention telemetry in shared memory: one row per worker, read by the supervisor at any time.

Why rows with a single writer each: the counters are bumped on hot paths
(every lock wait, every retry), so they must cost a few memory stores and
no lock.  A row is written only by the process bound to it, so writes
never race each other; a seqlock counter per row (odd while a write is in
progress) lets the supervisor copy a row that is consistent, without ever
stopping or blocking a worker.  A reader that keeps seeing an odd counter
is looking at a row whose writer died mid-update; it takes the row as it
is and marks it ``consistent=False`` (the next writer bound to the row
repairs the counter).

Waits (queue wait for a session slot, lock wait for a credential) keep
count, sum and max plus a fixed log-scale histogram (see
:mod:`coordination._layout`), so any percentile of any set of workers can
be computed after the fact and memory stays bounded however long the run.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

from coordination import _layout as L
from coordination._process import current_identity, is_alive
from coordination._segment import Segment
from coordination.errors import CoordinationError

_READ_SPINS = 100_000
_READ_BUDGET = 0.1  # seconds a reader waits for one live writer to finish an update
_WAIT_OFFSETS = (L.QUEUE_WAIT_OFFSET, L.LOCK_WAIT_OFFSET)
_HIST_AT = L.WAIT_HEAD.size


@dataclass(frozen=True, slots=True)
class WaitStats:
    """Count, sum, max and log-bucket histogram of one kind of wait (seconds)."""

    count: int
    total: float
    max: float
    buckets: tuple[int, ...]

    @classmethod
    def empty(cls) -> "WaitStats":
        return cls(0, 0.0, 0.0, (0,) * L.HIST_BUCKETS)

    @classmethod
    def from_samples(cls, seconds: "list[float] | tuple[float, ...]") -> "WaitStats":
        """The same summary of waits measured elsewhere (e.g. cluster lease waits), bucketed the same way."""
        buckets = [0] * L.HIST_BUCKETS
        for s in seconds:
            buckets[L.bucket_of(s)] += 1
        return cls(len(seconds), float(sum(seconds)), max(seconds, default=0.0), tuple(buckets))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) from the buckets: the bucket's upper bound, capped at the max.

        Resolution is one bucket (~19 %), exact for the max.
        """
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        n = sum(self.buckets)
        if n == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * n))
        seen = 0
        for k, c in enumerate(self.buckets):
            seen += c
            if seen >= rank:
                return min(L.bucket_upper(k), self.max)
        return self.max

    @property
    def p50(self) -> float:
        return self.percentile(50.0)

    @property
    def p99(self) -> float:
        return self.percentile(99.0)

    def merge(self, other: "WaitStats") -> "WaitStats":
        return WaitStats(
            self.count + other.count,
            self.total + other.total,
            max(self.max, other.max),
            tuple(a + b for a, b in zip(self.buckets, other.buckets)),
        )


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """One worker's row as copied at one instant (``worker == -1`` for the aggregate)."""

    worker: int
    pid: int
    updated_at: float
    queue_wait: WaitStats
    lock_wait: WaitStats
    retries: int
    forced_reconnects: int
    unowned_uses: int
    invalid_transitions: int
    lock_timeouts: int
    consistent: bool = True


@dataclass(frozen=True, slots=True)
class ContentionSnapshot:
    """All bound rows and their aggregate."""

    taken_at: float
    workers: tuple[WorkerStats, ...]
    aggregate: WorkerStats

    def worker(self, worker: int) -> WorkerStats:
        for w in self.workers:
            if w.worker == worker:
                return w
        raise KeyError(f"no contention row for worker {worker}")


def _aggregate(rows: tuple[WorkerStats, ...], now: float) -> WorkerStats:
    queue = lock = WaitStats.empty()
    totals = [0] * len(L.COUNTER_NAMES)
    for r in rows:
        queue = queue.merge(r.queue_wait)
        lock = lock.merge(r.lock_wait)
        for i, name in enumerate(L.COUNTER_NAMES):
            totals[i] += getattr(r, name)
    return WorkerStats(-1, 0, now, queue, lock, *totals, consistent=all(r.consistent for r in rows))


def _parse_row(data: bytes, consistent: bool) -> WorkerStats | None:
    _seq, worker, pid, _start, updated = L.ROW_HEAD.unpack_from(data, 0)
    if worker == L.NO_WORKER:
        return None
    counters = L.ROW_COUNTERS.unpack_from(data, L.ROW_COUNTERS_OFFSET)
    waits = []
    for base in _WAIT_OFFSETS:
        count, total, peak = L.WAIT_HEAD.unpack_from(data, base)
        waits.append(WaitStats(count, total, peak, L.WAIT_HIST.unpack_from(data, base + _HIST_AT)))
    return WorkerStats(worker, pid, updated, waits[0], waits[1], *counters[: len(L.COUNTER_NAMES)],
                       consistent=consistent)


class ContentionTelemetry:
    """The contention segment of a directory: ``rows`` worker rows, created by the supervisor."""

    __slots__ = ("_seg", "rows")

    def __init__(self, segment: Segment) -> None:
        self._seg = segment
        self.rows = segment.count

    @classmethod
    def create(cls, directory: str | os.PathLike[str], workers: int) -> "ContentionTelemetry":
        if not 1 <= workers <= 4096:
            raise ValueError(f"workers must be 1..4096, got {workers}")
        seg = Segment.create(directory, L.KIND_CONTENTION, workers, L.contention_size(workers))
        for i in range(workers):
            L.ROW_HEAD.pack_into(seg.buf, L.row_offset(i), 0, L.NO_WORKER, 0, 0.0, 0.0)
        return cls(seg)

    @classmethod
    def attach(cls, directory: str | os.PathLike[str]) -> "ContentionTelemetry":
        return cls(Segment.attach(directory, L.KIND_CONTENTION))

    def close(self) -> None:
        self._seg.close()

    def unlink(self) -> None:
        self._seg.unlink()

    def __enter__(self) -> "ContentionTelemetry":
        return self

    def __exit__(self, *exc: object) -> None:
        creator = self._seg.is_creator
        self.close()
        if creator:
            self.unlink()

    @property
    def name(self) -> str:
        return self._seg.name

    def writer(self, worker: int) -> "WorkerCounters":
        """Bind this process as the single writer of ``worker``'s row (a restarted worker continues its counts)."""
        if not 0 <= worker < self.rows:
            raise ValueError(f"worker {worker} has no row (rows 0..{self.rows - 1})")
        return WorkerCounters(self._seg, worker)

    def snapshot(self) -> ContentionSnapshot:
        """Copy every bound row without blocking its writer, and aggregate them."""
        buf = self._seg.buf
        rows = []
        for i in range(self.rows):
            off = L.row_offset(i)
            data, consistent = self._copy_row(buf, off)
            row = _parse_row(data, consistent)
            if row is not None:
                rows.append(row)
        now = time.time()
        frozen = tuple(rows)
        return ContentionSnapshot(now, frozen, _aggregate(frozen, now))


    @staticmethod
    def _copy_row(buf: memoryview, off: int) -> tuple[bytes, bool]:
        """Copy one row; retry while its writer is mid-update (bounded in count and time).

        A counter that stays odd while its writer process is dead will never
        turn even: that copy is returned as not consistent.  A live writer
        that was merely preempted mid-update is waited for, up to
        ``_READ_BUDGET`` seconds.
        """
        data = b""
        stuck_at = -1
        deadline = time.monotonic() + _READ_BUDGET
        for i in range(_READ_SPINS):
            s1 = L.ROW_SEQ.unpack_from(buf, off)[0]
            with buf[off: off + L.ROW_SIZE] as view:
                data = view.tobytes()
            if not s1 & 1 and L.ROW_SEQ.unpack_from(buf, off)[0] == s1:
                return data, True
            if i % 64 == 63:
                if s1 & 1 and s1 == stuck_at:
                    _seq, _worker, pid, start, _updated = L.ROW_HEAD.unpack_from(data, 0)
                    if not is_alive(pid, start):
                        return data, False
                stuck_at = s1
                if time.monotonic() >= deadline:
                    break
                time.sleep(0)  # let a writer on a busy core finish its update
        return data, False


class WorkerCounters:
    """The writer of one worker row.  Use it from one process only (threads of it are fine).

    Keeps a private mirror of the row so every update is a few stores into
    shared memory, bracketed by the row's seqlock counter.
    """

    __slots__ = ("worker", "_buf", "_off", "_seq", "_counters", "_waits", "_hists", "_tlock")

    def __init__(self, segment: Segment, worker: int) -> None:
        self.worker = worker
        self._buf = segment.buf
        self._off = off = L.row_offset(worker)
        self._tlock = threading.Lock()
        me = current_identity()
        seq, row_worker, pid, start, _updated = L.ROW_HEAD.unpack_from(self._buf, off)
        if row_worker != L.NO_WORKER and pid not in (0, me.pid) and is_alive(pid, start):
            raise CoordinationError(f"contention row {worker} is being written by live pid {pid}")
        self._seq = seq + (seq & 1)  # a predecessor killed mid-write left it odd
        self._counters = list(L.ROW_COUNTERS.unpack_from(self._buf, off + L.ROW_COUNTERS_OFFSET))
        self._waits = [list(L.WAIT_HEAD.unpack_from(self._buf, off + b)) for b in _WAIT_OFFSETS]
        self._hists = [list(L.WAIT_HIST.unpack_from(self._buf, off + b + _HIST_AT)) for b in _WAIT_OFFSETS]
        L.ROW_HEAD.pack_into(self._buf, off, self._seq, worker, me.pid, me.start_time, time.time())

    # -- counters ----------------------------------------------------------------
    def _bump(self, index: int, n: int) -> None:
        with self._tlock:
            value = self._counters[index] + n
            self._counters[index] = value
            buf, off = self._buf, self._off
            seq = self._seq + 1
            L.ROW_SEQ.pack_into(buf, off, seq)
            L.ROW_COUNTER.pack_into(buf, off + L.ROW_COUNTERS_OFFSET + 8 * index, value)
            L.ROW_SEQ.pack_into(buf, off, seq + 1)
            self._seq = seq + 1

    def add_retry(self, n: int = 1) -> None:
        self._bump(0, n)

    def add_forced_reconnect(self, n: int = 1) -> None:
        self._bump(1, n)

    def add_unowned_use(self, n: int = 1) -> None:
        self._bump(2, n)

    def add_invalid_transition(self, n: int = 1) -> None:
        self._bump(3, n)

    def add_lock_timeout(self, n: int = 1) -> None:
        self._bump(4, n)

    # -- waits -------------------------------------------------------------------
    def _record(self, which: int, seconds: float) -> None:
        seconds = max(0.0, seconds)
        k = L.bucket_of(seconds)
        with self._tlock:
            w = self._waits[which]
            w[0] += 1
            w[1] += seconds
            if seconds > w[2]:
                w[2] = seconds
            h = self._hists[which]
            h[k] += 1
            buf, base = self._buf, self._off + _WAIT_OFFSETS[which]
            seq = self._seq + 1
            L.ROW_SEQ.pack_into(buf, self._off, seq)
            L.WAIT_HEAD.pack_into(buf, base, w[0], w[1], w[2])
            L.HIST_CELL.pack_into(buf, base + _HIST_AT + 4 * k, h[k])
            L.ROW_SEQ.pack_into(buf, self._off, seq + 1)
            self._seq = seq + 1

    def record_queue_wait(self, seconds: float) -> None:
        """Time a worker waited for a session slot."""
        self._record(0, seconds)

    def record_lock_wait(self, seconds: float) -> None:
        """Time a worker waited for a credential lock."""
        self._record(1, seconds)


__all__ = ["WaitStats", "WorkerStats", "ContentionSnapshot", "ContentionTelemetry", "WorkerCounters"]
