"""What the coordination mechanism costs per operation, timed here on the real structures.

The engine logs lock *waits* per attempt but not what claiming and
releasing a session slot, or the ownership guard before each CDP command,
cost inside a worker.  So the bench times those operations in its own
process on a real shared-memory :class:`~coordination.OwnershipTable` and
real credential lock files (same code the workers run, uncontended), and
multiplies them by the counts the run produced (attempts, credential
attempts, CDP commands per job).  The in-run audit records give a
cross-check (see ``bench._e2e``: the gaps between audit records bracket
the same operations, plus one log write each).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

from coordination import CredentialLocks, OwnershipTable


@dataclass(frozen=True, slots=True)
class CoordinationCosts:
    """Median cost in microseconds of one ..."""

    slot_cycle_us: float  # claim + activate + begin_release + finish_release
    guard_us: float       # check_owner (before every CDP command)
    lock_cycle_us: float  # uncontended credential lock acquire + release

    def as_dict(self) -> dict[str, float]:
        return {"slot_cycle_us": self.slot_cycle_us, "guard_us": self.guard_us,
                "lock_cycle_us": self.lock_cycle_us}


def _median_us(fn, rounds: int, inner: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner * 1e6)
    samples.sort()
    return samples[len(samples) // 2]


def measure(rounds: int = 7) -> CoordinationCosts:
    with tempfile.TemporaryDirectory(prefix="drover-bench-coord-") as tmp:
        with OwnershipTable.create(tmp, 2) as table:
            def cycle() -> None:
                slot = table.claim(0, slot=0, session_id="w0")
                table.activate(0, 0, slot.epoch)
                table.begin_release(0, 0, slot.epoch)
                table.finish_release(0, 0, slot.epoch)

            slot_us = _median_us(cycle, rounds, 200)
            held = table.claim(1, slot=1, session_id="w1")
            table.activate(1, 1, held.epoch)
            guard_us = _median_us(lambda: table.check_owner(1, 1, held.epoch), rounds, 2000)
        locks = CredentialLocks(tmp, worker=0)
        try:
            lock_us = _median_us(lambda: locks.acquire("bench/alice", 5.0).release(), rounds, 50)
        finally:
            locks.close()
    return CoordinationCosts(slot_us, guard_us, lock_us)


__all__ = ["CoordinationCosts", "measure"]
