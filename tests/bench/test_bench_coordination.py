"""Micro-benchmarks of the coordination hot paths (targets: transition < 20 µs, lock cycle < 300 µs).

Timings are reported, not asserted.  In the normal suite (``--benchmark-disable``)
each runs once as a smoke test; measure with::

    python -m pytest tests/bench/test_bench_coordination.py --benchmark-enable -p no:cacheprovider
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from coordination import ContentionTelemetry, CredentialLocks, OwnershipTable, SlotState


@pytest.fixture
def table(tmp_path: Path):
    with OwnershipTable.create(tmp_path, 4) as t:
        yield t


@pytest.fixture
def telemetry(tmp_path: Path):
    with ContentionTelemetry.create(tmp_path, 2) as t:
        yield t


def test_ownership_transition(benchmark, table: OwnershipTable) -> None:
    """One transition per call, walking the cycle claim -> activate -> begin_release -> finish_release."""
    epoch = 0

    def claim() -> None:
        nonlocal epoch
        epoch = table.claim(1, slot=0).epoch

    steps = itertools.cycle([
        claim,
        lambda: table.activate(0, 1, epoch),
        lambda: table.begin_release(0, 1, epoch),
        lambda: table.finish_release(0, 1, epoch),
    ])
    benchmark(lambda: next(steps)())
    assert table.read(0).state in set(SlotState) - {SlotState.QUARANTINED}
    assert table.totals().invalid_transitions == 0


def test_check_owner_guard(benchmark, table: OwnershipTable) -> None:
    """The fencing check every CDP send makes."""
    s = table.claim(1)
    table.activate(s.index, 1, s.epoch)
    benchmark(table.check_owner, s.index, 1, s.epoch)
    assert table.totals().unowned_uses == 0


def test_credential_lock_cycle(benchmark, tmp_path: Path) -> None:
    """Uncontended acquire + release of one credential lock."""
    locks = CredentialLocks(tmp_path, worker=1)

    def cycle() -> None:
        locks.acquire("bench/alice", 5.0).release()

    benchmark(cycle)
    assert locks.holder("bench/alice") is None and locks.queue("bench/alice") == []


def test_counter_update(benchmark, telemetry: ContentionTelemetry) -> None:
    """One lock-wait sample into the shared-memory row (count, sum, max, histogram bucket)."""
    row = telemetry.writer(0)
    benchmark(row.record_lock_wait, 0.0042)
    assert telemetry.snapshot().worker(0).lock_wait.count >= 1
