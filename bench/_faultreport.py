"""The fault campaign's result: one typed record, its JSON file and its tables.

``python -m bench faults --json FILE`` writes :meth:`FaultReport.to_json`
(the "faults survived" evidence ``readiness`` can take); the shape::

    {"format": 1, "seed": S, "batch": path, "batch_sha256": "...", "jobs": n, "workers": w, "reader": bool,
     "trials": {kind: n},
     "violations": [{"kind", "trial", "seed", "invariant", "job_ids", "detail"}, ...],
     "invariants": {name: {"checked": trials, "violated": trials}},
     "items_checked": {name: n}, "missed": {kind: n}, "refused_writes": {kind: n},
     "time_to_gone_s": [...], "per_trial": [{...}, ...]}

``trials`` counts the fault trials per kind (the control run, kind
``control``, is in ``per_trial`` only).  ``invariants[name].checked``
counts the trials (control included) in which the invariant was checked
and ``violated`` those in which it did not hold; ``items_checked`` the
units behind them (jobs, outcomes, fenced writes ... see
:data:`bench._faultcheck.UNITS`).  A trial is ``missed`` when its fault
could not be injected (the run ended first, or no process of the kind was
found): it proves nothing and does not count as survived.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench._faultcheck import INVARIANTS, UNITS
from engine.records.rundir import write_atomic

FORMAT = 1
KINDS = ("worker", "browser", "supervisor", "sigterm")
CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    trial: int
    seed: int
    invariant: str
    job_ids: tuple[str, ...]
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "trial": self.trial, "seed": self.seed, "invariant": self.invariant,
                "job_ids": list(self.job_ids), "detail": self.detail}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Violation":
        return cls(str(d["kind"]), int(d["trial"]), int(d["seed"]), str(d["invariant"]),
                   tuple(str(j) for j in d.get("job_ids", ())), str(d.get("detail", "")))


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """What one trial did and found (one row of ``per_trial``)."""

    kind: str
    trial: int
    injected: bool
    target: str                     # what was signalled ("worker pid 123 (w1)"), or why nothing was
    at_outcomes: int                # outcomes in the store when the signal went out
    delay_s: float                  # the random wait after the chosen outcome count was reached
    exits: tuple[int | None, ...]   # every run of the trial, in order (None: killed at its time bound)
    elapsed_s: float
    checked: dict[str, int] = field(default_factory=dict)  # invariant -> items checked
    violated: tuple[str, ...] = ()
    refused_writes: int = 0
    failed_jobs: int = 0
    time_to_gone_s: float | None = None
    reader_opens: int | None = None
    tries: int = 1  # draws of the kill moment (a clean run whose fault could not go in draws again)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "trial": self.trial, "injected": self.injected, "target": self.target,
                "at_outcomes": self.at_outcomes, "delay_s": round(self.delay_s, 4), "exits": list(self.exits),
                "elapsed_s": round(self.elapsed_s, 3), "checked": dict(self.checked),
                "violated": list(self.violated), "refused_writes": self.refused_writes,
                "failed_jobs": self.failed_jobs, "time_to_gone_s": self.time_to_gone_s,
                "reader_opens": self.reader_opens, "tries": self.tries}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrialRecord":
        gone, opens = d.get("time_to_gone_s"), d.get("reader_opens")
        return cls(str(d["kind"]), int(d["trial"]), bool(d["injected"]), str(d.get("target", "")),
                   int(d.get("at_outcomes", 0)), float(d.get("delay_s", 0.0)),
                   tuple(None if c is None else int(c) for c in d.get("exits", ())), float(d.get("elapsed_s", 0.0)),
                   {str(k): int(v) for k, v in d.get("checked", {}).items()},
                   tuple(str(v) for v in d.get("violated", ())), int(d.get("refused_writes", 0)),
                   int(d.get("failed_jobs", 0)), None if gone is None else float(gone),
                   None if opens is None else int(opens), int(d.get("tries", 1)))


@dataclass(frozen=True, slots=True)
class Tally:
    checked: int
    violated: int
    items: int


@dataclass(slots=True)
class FaultReport:
    seed: int
    batch: str
    batch_sha256: str
    jobs: int
    workers: int
    reader: bool = False
    violations: list[Violation] = field(default_factory=list)
    per_trial: list[TrialRecord] = field(default_factory=list)

    def add(self, record: TrialRecord, violations: list[Violation]) -> None:
        self.per_trial.append(record)
        self.violations.extend(violations)

    # -- figures (all derived from the trials) ----------------------------------------------------------

    def _rows(self, kind: str) -> list[TrialRecord]:
        return [r for r in self.per_trial if r.kind == kind]

    @property
    def trials(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.per_trial:
            if r.kind != CONTROL:
                out[r.kind] = out.get(r.kind, 0) + 1
        return out

    @property
    def invariants(self) -> dict[str, Tally]:
        names = [n for n in INVARIANTS if any(n in r.checked for r in self.per_trial)]
        names += sorted({n for r in self.per_trial for n in r.checked} - set(names))
        return {n: Tally(sum(1 for r in self.per_trial if n in r.checked),
                         sum(1 for r in self.per_trial if n in r.violated),
                         sum(r.checked.get(n, 0) for r in self.per_trial)) for n in names}

    @property
    def missed(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.per_trial:
            if r.kind != CONTROL and not r.injected:
                out[r.kind] = out.get(r.kind, 0) + 1
        return out

    @property
    def refused_writes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.per_trial:
            out[r.kind] = out.get(r.kind, 0) + r.refused_writes
        return out

    @property
    def time_to_gone_s(self) -> list[float]:
        return [r.time_to_gone_s for r in self.per_trial if r.time_to_gone_s is not None]

    @property
    def survived(self) -> bool:
        """At least one fault trial, every fault injected, no invariant broken."""
        return bool(self.trials) and not self.violations and not self.missed

    # -- the wire form ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        inv = self.invariants
        return {
            "format": FORMAT, "seed": self.seed, "batch": self.batch, "batch_sha256": self.batch_sha256,
            "jobs": self.jobs, "workers": self.workers, "reader": self.reader,
            "trials": self.trials,
            "violations": [v.to_json() for v in self.violations],
            "invariants": {n: {"checked": t.checked, "violated": t.violated} for n, t in inv.items()},
            "items_checked": {n: t.items for n, t in inv.items()},
            "missed": self.missed, "refused_writes": self.refused_writes,
            "time_to_gone_s": [round(t, 4) for t in self.time_to_gone_s],
            "per_trial": [r.to_json() for r in self.per_trial],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FaultReport":
        if int(d.get("format", 0)) != FORMAT:
            raise ValueError(f"fault report format {d.get('format')!r}, this bench reads {FORMAT}")
        return cls(int(d["seed"]), str(d.get("batch", "")), str(d["batch_sha256"]), int(d.get("jobs", 0)),
                   int(d.get("workers", 0)), bool(d.get("reader", False)),
                   [Violation.from_json(v) for v in d["violations"]],
                   [TrialRecord.from_json(r) for r in d.get("per_trial", ())])

    def write(self, path: str | Path) -> Path:
        return write_atomic(path, orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))

    @classmethod
    def read(cls, path: str | Path) -> "FaultReport":
        return cls.from_json(orjson.loads(Path(path).read_bytes()))

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
