"""The fault campaign's report (``python -m bench faults --json FILE``): the record, owned here, not in bench.

Why in the engine: ``readiness --faults FILE`` takes the campaign's result
as its ``faults_survived`` criterion, and the engine may not import
``bench`` (imports point down).  So the file format has one owner, like
every other run-directory file: this module reads and writes the record
(:class:`FaultReport` and its parts); ``bench._faultreport`` subclasses it
to add the campaign's tables and the invariant order of its checker.

The shape (``format`` 1)::

    {"format": 1, "seed": S, "batch": path, "batch_sha256": "...", "jobs": n, "workers": w, "reader": bool,
     "trials": {kind: n},
     "violations": [{"kind", "trial", "seed", "invariant", "job_ids", "detail"}, ...],
     "invariants": {name: {"checked": trials, "violated": trials}},
     "items_checked": {name: n}, "missed": {kind: n}, "refused_writes": {kind: n},
     "time_to_gone_s": [...], "per_trial": [{...}, ...]}

``trials``, ``invariants``, ``missed``, ``refused_writes`` and
``time_to_gone_s`` are derived from ``per_trial`` (written for readers of
the file, recomputed on reading).  ``trials`` counts the fault trials per
kind (the control run, kind ``control``, is in ``per_trial`` only).  A
trial is ``missed`` when its fault could not be injected: it proves
nothing and does not count as survived.

Reading is strict: a missing or mistyped field raises
:class:`~engine.errors.RunDirError` naming the file and the field
(``faults.json: per_trial[3].exits: expected a list, got 'x'``); a
violation read from the file always counts, whatever else it holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.records.rundir._fields import Obj, Record, kind_of

FAULT_REPORT_FORMAT = 1
FAULT_KINDS: tuple[str, ...] = ("worker", "browser", "supervisor", "sigterm")
CONTROL = "control"


def _need(o: Obj, key: str, value: Any, expected: str) -> Any:
    """``value`` (read from ``key``), or a strict error naming the field when it is missing."""
    if value is None:
        o.rd.bad(o.file, o.where(key), f"missing (expected {expected})")
    return value


def _list(o: Obj, key: str) -> list[Any]:
    raw = o.items(key)
    return [] if raw is None else raw


def _int_map(o: Obj, key: str) -> dict[str, int]:
    sub = o.obj(key)
    out: dict[str, int] = {}
    for k in (sub.raw if sub is not None else {}):
        v = sub.count(k)  # type: ignore[union-attr]
        if v is not None:
            out[str(k)] = v
    return out


@dataclass(frozen=True, slots=True)
class FaultViolation(Record):
    """One invariant broken in one trial, with the jobs behind it."""

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
    def _read(cls, o: Obj) -> "FaultViolation":
        return cls(_need(o, "kind", o.text("kind"), "a string") or "?",
                   _need(o, "trial", o.count("trial"), "a whole number") or 0,
                   _need(o, "seed", o.whole("seed"), "a whole number") or 0,
                   _need(o, "invariant", o.text("invariant"), "a string") or "?",
                   o.texts("job_ids") or (), o.text("detail") or "")


@dataclass(frozen=True, slots=True)
class FaultTrial(Record):
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
    def _read(cls, o: Obj) -> "FaultTrial":
        exits: list[int | None] = []
        for i, c in enumerate(_list(o, "exits")):
            if c is not None and type(c) is not int:
                o.rd.bad(o.file, o.where("exits") + f"[{i}]", f"expected an exit code or null, got {kind_of(c)}")
                continue
            exits.append(c)
        return cls(_need(o, "kind", o.text("kind"), "a string") or "?",
                   _need(o, "trial", o.count("trial"), "a whole number") or 0,
                   bool(_need(o, "injected", o.flag("injected"), "true or false")), o.text("target") or "",
                   o.count("at_outcomes") or 0, o.num("delay_s") or 0.0, tuple(exits), o.num("elapsed_s") or 0.0,
                   _int_map(o, "checked"), o.texts("violated") or (), o.count("refused_writes") or 0,
                   o.count("failed_jobs") or 0, o.num("time_to_gone_s"), o.count("reader_opens"),
                   o.count("tries") or 1)


@dataclass(frozen=True, slots=True)
class Tally:
    checked: int
    violated: int
    items: int


@dataclass(slots=True)
class FaultReport(Record):
    """The whole campaign: its settings, every trial and every violation; the figures derive from the trials.

    ``invariant_order`` (a class attribute) puts the invariants the
    campaign's checker knows first, in its order; the engine does not know
    them (bench's subclass sets it), so here they come in the order the
    trials checked them.
    """

    seed: int
    batch: str
    batch_sha256: str
    jobs: int
    workers: int
    reader: bool = False
    violations: list[FaultViolation] = field(default_factory=list)
    per_trial: list[FaultTrial] = field(default_factory=list)

    invariant_order: ClassVar[tuple[str, ...]] = ()

    def add(self, record: FaultTrial, violations: list[FaultViolation]) -> None:
        self.per_trial.append(record)
        self.violations.extend(violations)

    # -- figures (all derived from the trials) ----------------------------------------------------------

    def _rows(self, kind: str) -> list[FaultTrial]:
        return [r for r in self.per_trial if r.kind == kind]

    @property
    def trials(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.per_trial:
            if r.kind != CONTROL:
                out[r.kind] = out.get(r.kind, 0) + 1
        return out

    @property
    def injected(self) -> dict[str, int]:
        """Fault trials per kind whose fault went in (the ones that prove something)."""
        out: dict[str, int] = {}
        for r in self.per_trial:
            if r.kind != CONTROL and r.injected:
                out[r.kind] = out.get(r.kind, 0) + 1
        return out

    @property
    def invariants(self) -> dict[str, Tally]:
        seen = list(dict.fromkeys(n for r in self.per_trial for n in r.checked))
        names = [n for n in self.invariant_order if n in seen]
        names += [n for n in seen if n not in names] if not self.invariant_order else \
            sorted(set(seen) - set(names))
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
            "format": FAULT_REPORT_FORMAT, "seed": self.seed, "batch": self.batch, "batch_sha256": self.batch_sha256,
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
    def _read(cls, o: Obj) -> "FaultReport":
        fmt = o.json("format")
        if fmt != FAULT_REPORT_FORMAT:
            o.rd.bad(o.file, o.where("format"),
                     f"fault report format {fmt!r}, this version reads {FAULT_REPORT_FORMAT}")
        violations = _need(o, "violations", o.objs("violations"), "a list of violations")
        trials = _need(o, "per_trial", o.objs("per_trial"), "a list of trials")
        return cls(_need(o, "seed", o.whole("seed"), "a whole number") or 0, o.text("batch") or "",
                   _need(o, "batch_sha256", o.text("batch_sha256"), "a string") or "", o.count("jobs") or 0,
                   o.count("workers") or 0, bool(o.flag("reader")),
                   [FaultViolation._read(v) for v in violations or ()],
                   [FaultTrial._read(t) for t in trials or ()])


__all__ = ["FAULT_REPORT_FORMAT", "FAULT_KINDS", "CONTROL", "FaultViolation", "FaultTrial", "Tally", "FaultReport"]
