"""The exactly-once checks after a crashed run is resumed, shared by the local and the Ray backend's tests."""
from __future__ import annotations

import sqlite3


def assert_resumed_exactly_once(con: sqlite3.Connection, final: dict[str, str], n: int, run_id: str,
                                before: dict[str, float], killed_at: float, epoch_before: int) -> None:
    """Every job passed once; none that had finished (``before``: job -> recorded_at) ran again; the
    fencing token rose across the resume (``epoch_before``: the highest epoch before the crash at
    ``killed_at``), in a second generation whose floor is above it."""
    assert len(final) == n and set(final.values()) == {"passed"}, final
    for job_id, recorded in before.items():  # none that had finished ran again
        later = con.execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND job_id = ? AND started_at > ?",
                            (run_id, job_id, recorded)).fetchone()[0]
        assert later == 0, f"{job_id} was re-run after it had finished"
    twice = con.execute("SELECT job_id FROM attempts WHERE run_id = ? AND outcome = 'passed' GROUP BY job_id "
                        "HAVING COUNT(*) > 1", (run_id,)).fetchall()
    assert twice == []
    # the fencing token kept rising across the resume
    after = con.execute("SELECT MIN(epoch) FROM attempts WHERE run_id = ? AND started_at > ?",
                        (run_id, killed_at)).fetchone()[0]
    assert after > epoch_before, (epoch_before, after)
    floors = [r[0] for r in con.execute("SELECT epoch_floor FROM generations WHERE run_id = ? ORDER BY generation",
                                        (run_id,))]
    assert len(floors) == 2 and floors[1] > epoch_before >= floors[0]


__all__ = ["assert_resumed_exactly_once"]
