"""Latency histograms with bounded memory that merge across processes.

Why not a list of samples: a 24-hour soak records millions of step
timings; percentiles must come out of a structure whose size does not grow
with the run.  Like HdrHistogram (and locust's rounded buckets), values are
counted in log-linear buckets: every power of two is split into
``SUB_BUCKETS`` equal parts, so any recorded value is known to within
1/SUB_BUCKETS (~1.6 %) of itself, from 1 µs to ~12 days, in at most a few
thousand buckets.  Two histograms merge by adding counts, so each worker
keeps its own and the supervisor adds them up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

SUB_BUCKETS = 64
MIN_VALUE_MS = 0.001
_LOG2_SUB = int(math.log2(SUB_BUCKETS))


def bucket_of(value_ms: float) -> int:
    """The bucket index of a value (values below 1 µs share bucket 0)."""
    units = value_ms / MIN_VALUE_MS
    if units < SUB_BUCKETS:
        return max(0, int(units))
    exponent = int(math.log2(units)) - _LOG2_SUB  # >= 0
    return SUB_BUCKETS * (exponent + 1) + int(units / (1 << exponent)) - SUB_BUCKETS


def bucket_upper_ms(index: int) -> float:
    """The highest value (exclusive) that lands in bucket ``index``."""
    if index < SUB_BUCKETS:
        return (index + 1) * MIN_VALUE_MS
    exponent = index // SUB_BUCKETS - 1
    sub = index % SUB_BUCKETS + SUB_BUCKETS
    return (sub + 1) * (1 << exponent) * MIN_VALUE_MS


@dataclass(slots=True)
class Histogram:
    """Counts per bucket plus exact count, sum, min and max."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    def record(self, value_ms: float, n: int = 1) -> None:
        if value_ms < 0 or value_ms != value_ms:
            raise ValueError(f"latency must be a non-negative number, got {value_ms!r}")
        b = bucket_of(value_ms)
        self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += n
        self.total += value_ms * n
        if value_ms < self.min:
            self.min = value_ms
        if value_ms > self.max:
            self.max = value_ms

    def merge(self, other: "Histogram") -> "Histogram":
        """Add ``other`` into this histogram (in place) and return self."""
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100): the upper edge of the bucket holding that rank, capped at max."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(bucket_upper_ms(b), self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def to_dict(self) -> dict:
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "count": self.count, "total": self.total,
                "min": None if self.count == 0 else self.min, "max": self.max}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Histogram":
        h = cls({int(k): int(v) for k, v in data.get("buckets", {}).items()}, int(data.get("count", 0)),
                float(data.get("total", 0.0)))
        h.min = math.inf if data.get("min") is None else float(data["min"])
        h.max = float(data.get("max", 0.0))
        return h

    @classmethod
    def of(cls, values: Iterable[float]) -> "Histogram":
        h = cls()
        for v in values:
            h.record(v)
        return h


__all__ = ["Histogram", "bucket_of", "bucket_upper_ms", "SUB_BUCKETS"]
