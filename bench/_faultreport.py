"""The fault campaign's result: the record (the engine's), its JSON file and the campaign's tables.

The record itself — :class:`FaultReport`, its trials and violations, the
JSON shape and its strict reading — is owned by
:mod:`engine.records.rundir` (``_faults``), because ``readiness --faults
FILE`` reads it and the engine may not import ``bench``.  This module
subclasses it to add what only the campaign knows: its checker's
invariant order and units, and the tables it prints.  The names used
across bench (``FaultReport``, ``TrialRecord``, ``Violation``, ``KINDS``,
``CONTROL``, ``FORMAT``) stay as they were.

``python -m bench faults --json FILE`` writes :meth:`FaultReport.to_json`
(shape in :mod:`engine.records.rundir._faults`).  ``invariants[name].checked``
counts the trials (control included) in which the invariant was checked
and ``violated`` those in which it did not hold; ``items_checked`` the
units behind them (jobs, outcomes, fenced writes ... see
:data:`bench._faultcheck.UNITS`).
"""
from __future__ import annotations

import statistics
from pathlib import Path

from bench._faultcheck import INVARIANTS, UNITS
from engine.records import rundir
from engine.records.rundir import (FAULT_CONTROL as CONTROL, FAULT_KINDS, FAULT_REPORT_FORMAT, FaultTally,
                                   FaultTrial, FaultViolation)

FORMAT = FAULT_REPORT_FORMAT
KINDS = FAULT_KINDS
Violation = FaultViolation
TrialRecord = FaultTrial
Tally = FaultTally


class FaultReport(rundir.FaultReport):
    """The engine's record with the campaign's tables, invariants in :data:`bench._faultcheck.INVARIANTS` order."""

    __slots__ = ()
    invariant_order = INVARIANTS

    def write(self, path: str | Path) -> Path:
        return rundir.write_fault_report(path, self)

    @classmethod
    def read(cls, path: str | Path) -> "FaultReport":
        """Strict: :class:`engine.errors.RunDirError` naming the file and field on a malformed report."""
        report = rundir.read_fault_report(path, cls)
        assert isinstance(report, cls)
        return report

    # -- the tables -----------------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        kinds = [k for k in KINDS if k in self.trials] + sorted(k for k in self.trials if k not in KINDS)
        out = [f"fault campaign: seed {self.seed}, batch {self.batch} (sha256 {self.batch_sha256[:12]}), "
               f"{self.jobs} jobs, {self.workers} worker(s)"
               + (", read-write reader during supervisor kills" if self.reader else "")]
        for r in self._rows(CONTROL):
            out.append(f"control run (no fault): exit {r.exits[0] if r.exits else '-'} in {r.elapsed_s:.1f} s, "
                       f"{r.failed_jobs} failed job(s), {len(r.violated)} invariant(s) violated")
        out += ["", f"{'kind':<11}{'trials':>7}{'missed':>7}{'violating':>10}{'refused':>8}  {'final exit':<14}"
                    f"{'wall s':>7}  time to gone after supervisor SIGKILL (s)"]
        for kind in kinds:
            rows = self._rows(kind)
            codes: dict[str, int] = {}
            for r in rows:
                c = "-" if not r.exits else ("timeout" if r.exits[-1] is None else str(r.exits[-1]))
                codes[c] = codes.get(c, 0) + 1
            gone = [r.time_to_gone_s for r in rows if r.time_to_gone_s is not None]
            gone_txt = (f"median {statistics.median(gone):.3f}, max {max(gone):.3f} (n={len(gone)})" if gone
                        else "-")
            wall = statistics.median([r.elapsed_s for r in rows]) if rows else 0.0
            out.append(f"{kind:<11}{len(rows):>7}{self.missed.get(kind, 0):>7}"
                       f"{sum(1 for r in rows if r.violated):>10}{sum(r.refused_writes for r in rows):>8}  "
                       f"{', '.join(f'{c} x{n}' for c, n in sorted(codes.items())):<14}{wall:>7.1f}  {gone_txt}")
        cols = kinds + ([CONTROL] if self._rows(CONTROL) else [])
        out += ["", f"{'invariant: violated/checked trials':<30}" + "".join(f"{k:>11}" for k in cols)
                + "  items checked"]
        for name, t in self.invariants.items():
            cells = []
            for k in cols:
                rows = [r for r in self._rows(k) if name in r.checked]
                cells.append(f"{sum(1 for r in rows if name in r.violated)}/{len(rows)}" if rows else "-")
            out.append(f"{name:<30}" + "".join(f"{c:>11}" for c in cells) + f"  {t.items} {UNITS.get(name, '')}")
        return out

    def violation_lines(self, batch_arg: str) -> list[str]:
        out = []
        for v in self.violations:
            ids = ", ".join(v.job_ids) if v.job_ids else "-"
            out.append(f"VIOLATION {v.kind} trial {v.trial} (seed {v.seed}): {v.invariant}: jobs {ids}: {v.detail}")
            if v.kind != CONTROL:
                out.append(f"  replay: python -m bench faults {batch_arg} --seed {v.seed} --kinds {v.kind} "
                           f"--trials {v.trial} --workers {self.workers}{' --reader' if self.reader else ''}"
                           f"  (trial {v.trial} repeats its choices; the run's timing may differ)")
        return out


__all__ = ["FaultReport", "TrialRecord", "Violation", "Tally", "KINDS", "CONTROL", "FORMAT"]
