"""The bounded, mergeable latency histogram."""
from __future__ import annotations

import math
import random

from hypothesis import given, settings, strategies as st

from engine.records.metrics import Histogram, bucket_of, bucket_upper_ms
from engine.execution.summary import percentile


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_every_value_lands_in_a_bucket_whose_edge_is_within_two_percent(v):
    b = bucket_of(v)
    upper = bucket_upper_ms(b)
    assert v < upper or math.isclose(v, upper)
    assert upper - v <= max(0.001, v * 0.032) + 1e-12  # one bucket wide: 1/64 of the power of two (+ float slack)


def test_percentiles_match_exact_ones_within_the_bucket_precision():
    rng = random.Random(7)
    values = [rng.lognormvariate(5, 1) for _ in range(20_000)]
    h = Histogram.of(values)
    exact = sorted(values)
    for q in (50, 95, 99, 99.9):
        got, want = h.percentile(q), percentile(exact, q)
        assert want <= got <= want * 1.035, (q, got, want)
    assert h.count == 20_000 and math.isclose(h.mean, sum(values) / len(values))
    assert h.max == max(values) and h.min == min(values)


def test_memory_is_bounded_however_many_values():
    rng = random.Random(1)
    h = Histogram()
    for _ in range(200_000):
        h.record(rng.uniform(0.01, 60_000))
    assert len(h.buckets) < 2000


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(3)
    parts = [[rng.expovariate(1 / 200) for _ in range(1000)] for _ in range(4)]
    merged = Histogram()
    for p in parts:
        merged.merge(Histogram.of(p))
    whole = Histogram.of(v for p in parts for v in p)
    assert merged.buckets == whole.buckets and merged.count == whole.count
    assert merged.percentile(99) == whole.percentile(99)
    assert Histogram.from_dict(merged.to_dict()).buckets == merged.buckets


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_monotonic_and_capped_by_max(values):
    h = Histogram.of(values)
    ps = [h.percentile(q) for q in (1, 50, 90, 99, 100)]
    assert ps == sorted(ps) and ps[-1] <= h.max
