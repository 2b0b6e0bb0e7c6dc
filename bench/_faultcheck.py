"""The fault campaign's invariants, checked from what one trial left behind.

Input is evidence, not processes: the trial's results store
(``STATE/results.sqlite``, opened read-only), its run directory's four
JSON-lines streams, the exit codes and terminal output of the ``run``
invocations, and facts the campaign gathered about processes and
temporary folders (:class:`TrialEvidence`).  Output is one
:class:`TrialCheck`: per invariant how many items were checked, and a
:class:`Finding` for each invariant that does not hold, naming the jobs.

The invariants (:data:`INVARIANTS`; the unit each one counts in
``checked`` is in :data:`UNITS`):

``one_final_outcome``
    every job of the run has exactly one final outcome (none pending);
``no_double_pass``
    no job has two ``passed`` attempts;
``no_rerun_after_outcome``
    no attempt of a job started after that job's outcome was recorded;
``finished_recorded``
    every job a worker logged as finished (``job_finished`` in
    ``domain.jsonl``) has its outcome in the store;
``no_unowned_use``
    every ``run`` summary says ``unowned session uses=0`` and no stream
    holds an ``unowned session use`` record (the ownership table's,
    :mod:`coordination._table`, in the operational stream; the cluster
    worker's ``unowned session use refused`` in the audit stream);
``no_stale_epoch_write``
    every attempt start and every outcome written by a worker carries an
    epoch ``>=`` the ``epoch_floor`` of the generation current when it
    was written (the supervisor's own outcomes, epoch 0, are exempt);
``epochs_rise``
    every generation's floor is above every epoch used before it started;
``no_leftovers``
    after the run: no process of the trial alive, no ``drover-profile-*``,
    ``drover-tmp-*`` or ``org.chromium.Chromium.*`` folder in its TMPDIR,
    no shared-memory segment of the run left in ``/dev/shm``;
``exit_code``
    every ``run`` exited with the code its fault implies (the final one 0,
    or 1 when the batch fails jobs by itself);
``workers_die_with_supervisor`` (supervisor kills only)
    every process recorded under the supervisor before the kill is gone
    within :data:`GONE_WITHIN_S`;
``reader_ok`` (``--reader`` only)
    the read-write reader opened the store at least once and never failed.

Refused stale writes (``refusals`` rows) are counted, not judged: a
refusal is the fence doing its job.

Why the checks are written against the schema with plain SQL rather than
through :class:`~engine.records.store.ResultsStore`: they must see columns
the store's records leave out (outcome epochs, generations), and they must
not write to the evidence (opening a ``ResultsStore`` runs its schema and
migrations).
"""
from __future__ import annotations

import bisect
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from engine.records.rundir import stream_path
from engine.records.streams import read_stream

INVARIANTS = ("one_final_outcome", "no_double_pass", "no_rerun_after_outcome", "finished_recorded",
              "no_unowned_use", "no_stale_epoch_write", "epochs_rise", "no_leftovers", "exit_code",
              "workers_die_with_supervisor", "reader_ok")
UNITS = {"one_final_outcome": "jobs", "no_double_pass": "jobs", "no_rerun_after_outcome": "outcomes",
         "finished_recorded": "job_finished events", "no_unowned_use": "run summaries",
         "no_stale_epoch_write": "fenced writes", "epochs_rise": "generations", "no_leftovers": "trials",
         "exit_code": "runs", "workers_die_with_supervisor": "processes", "reader_ok": "store opens"}
GONE_WITHIN_S = 3.0
STREAMS = ("operational", "performance", "domain", "audit")
# coordination._table (operational "unowned session use"), engine.execution.cluster (audit "... refused")
UNOWNED_MESSAGE = "unowned session use"
SUPERVISOR_WRITER = "supervisor"  # the worker column of outcomes the supervisor records itself (epoch 0)
_SAFETY = re.compile(r"unowned session uses=(\d+)")
_DUPLICATES = re.compile(r"duplicate outcomes refused=(\d+)")
_MAX_IDS = 20  # job ids listed per finding (the count is always complete)


class EvidenceError(Exception):
    """The trial's store cannot be read as a Drover results store (named file and reason)."""


@dataclass(frozen=True, slots=True)
class RunExit:
    """One ``python -m engine run`` of the trial: how it ended and how it should have."""

    label: str                    # "run", "resume", ...
    code: int | None              # None: still running at its time bound (the campaign killed it)
    expected: tuple[int, ...]
    stdout: str = ""
    bound_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What outlived the trial's last run (after a short grace)."""

    processes: tuple[str, ...] = ()  # "pid 123 chromium --type=..." (cut short)
    dirs: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SupervisorKill:
    """The supervisor's process tree as recorded just before its SIGKILL, and how fast it went."""

    tree: int                         # processes recorded (the supervisor included)
    alive_after: tuple[str, ...]      # still alive GONE_WITHIN_S after the kill
    time_to_gone_s: float | None      # None: not all gone within the bound
    late_gone_s: float | None = None  # when not: when the last one went on its own (None: the campaign killed it)


@dataclass(frozen=True, slots=True)
class ReaderStats:
    opens: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrialEvidence:
    state_dir: Path
    run_id: str
    exits: tuple[RunExit, ...]
    leftovers: Leftovers | None = None
    supervisor_kill: SupervisorKill | None = None
    reader: ReaderStats | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    invariant: str
    job_ids: tuple[str, ...]
    detail: str


@dataclass(slots=True)
class TrialCheck:
    checked: dict[str, int] = field(default_factory=dict)  # invariant -> items checked in this trial
    findings: list[Finding] = field(default_factory=list)
    refused_writes: int = 0
    failed_jobs: tuple[str, ...] = ()
    duplicates_refused: int = 0
    unreadable_records: int = 0

    def violated(self) -> set[str]:
        return {f.invariant for f in self.findings}

    def _add(self, invariant: str, items: int, job_ids: list[str] | tuple[str, ...] = (), detail: str = "",
             failed: bool = False) -> None:
        self.checked[invariant] = self.checked.get(invariant, 0) + items
        if failed:
            ids = tuple(sorted(set(job_ids)))
            self.findings.append(Finding(invariant, ids, detail))


@dataclass(frozen=True, slots=True)
class _Store:
    """The rows the checks need, read once."""

    run_dir: Path
    jobs: tuple[str, ...]
    outcomes: dict[str, tuple[str, str, float, int]]   # job -> (outcome, worker, recorded_at, epoch)
    attempts: tuple[tuple[str, int, str, int, float, str | None], ...]  # job, attempt, worker, epoch, start, outcome
    generations: tuple[tuple[int, int, float], ...]    # (generation, epoch_floor, started_at), by generation
    refusals: int


def _read_store(state_dir: Path, run_id: str) -> _Store:
    path = state_dir / "results.sqlite"
    if not path.is_file():
        raise EvidenceError(f"no results store at {path}")
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise EvidenceError(f"cannot open {path} read-only: {exc}") from exc
    try:
        row = db.execute("SELECT run_dir FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise EvidenceError(f"no run {run_id!r} in {path}")
        jobs = tuple(r[0] for r in db.execute("SELECT job_id FROM jobs WHERE run_id = ? ORDER BY line", (run_id,)))
        outcomes = {r[0]: (r[1], r[2], float(r[3]), int(r[4])) for r in db.execute(
            "SELECT job_id, outcome, worker, recorded_at, epoch FROM outcomes WHERE run_id = ?", (run_id,))}
        attempts = tuple((r[0], int(r[1]), r[2], int(r[3]), float(r[4]), r[5]) for r in db.execute(
            "SELECT job_id, attempt, worker, epoch, started_at, outcome FROM attempts WHERE run_id = ? "
            "ORDER BY started_at", (run_id,)))
        generations = tuple((int(r[0]), int(r[1]), float(r[2])) for r in db.execute(
            "SELECT generation, epoch_floor, started_at FROM generations WHERE run_id = ? ORDER BY generation",
            (run_id,)))
        refusals = int(db.execute("SELECT COUNT(*) FROM refusals WHERE run_id = ?", (run_id,)).fetchone()[0])
    except sqlite3.Error as exc:
        raise EvidenceError(f"cannot read run {run_id} from {path}: {exc}") from exc
    finally:
        db.close()
    return _Store(Path(row[0]), jobs, outcomes, attempts, generations, refusals)


def _records(run_dir: Path, stream: str) -> list[dict]:
    path = stream_path(run_dir, stream)
    return list(read_stream(path)) if path.exists() else []


def _few(ids: list[str] | set[str]) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:_MAX_IDS]) + (f" (+{len(ids) - _MAX_IDS} more)" if len(ids) > _MAX_IDS else "")


# -- the store's invariants -------------------------------------------------------------------------------


def _outcomes_once(s: _Store, out: TrialCheck) -> None:
    pending = [j for j in s.jobs if j not in s.outcomes]
    strays = [j for j in s.outcomes if j not in set(s.jobs)]
    bad = pending + strays
    detail = []
    if pending:
        detail.append(f"{len(pending)} of {len(s.jobs)} job(s) have no final outcome: {_few(pending)}")
    if strays:
        detail.append(f"{len(strays)} outcome(s) for jobs the run does not have: {_few(strays)}")
    out._add("one_final_outcome", len(s.jobs), bad, "; ".join(detail), failed=bool(bad))


def _no_double_pass(s: _Store, out: TrialCheck) -> None:
    passes: dict[str, list[int]] = {}
    for job, attempt, _w, _e, _t, outcome in s.attempts:
        if outcome == "passed":
            passes.setdefault(job, []).append(attempt)
    twice = {j: sorted(a) for j, a in passes.items() if len(a) > 1}
    out._add("no_double_pass", len(s.jobs), list(twice),
             "passed twice: " + "; ".join(f"{j} attempts {a}" for j, a in sorted(twice.items())[:_MAX_IDS]),
             failed=bool(twice))


def _no_rerun(s: _Store, out: TrialCheck) -> None:
    late: dict[str, list[str]] = {}
    for job, attempt, worker, _e, started, _o in s.attempts:
        done = s.outcomes.get(job)
        if done is not None and started > done[2]:
            late.setdefault(job, []).append(f"attempt {attempt} by {worker} started {started - done[2]:.3f} s "
                                            f"after the outcome ({done[0]} by {done[1]})")
    out._add("no_rerun_after_outcome", len(s.outcomes), list(late),
             "re-run after its outcome: " + "; ".join(f"{j}: {', '.join(v)}" for j, v in sorted(late.items())[:5]),
             failed=bool(late))


def _generation_at(by_start: list[tuple[int, int, float]], when: float) -> tuple[int, int, float] | None:
    """The generation current at ``when``: the last one (in ``by_start``, ordered by start) started by then."""
    i = bisect.bisect_right([g[2] for g in by_start], when)
    return by_start[i - 1] if i else None


def _no_stale_epoch(s: _Store, out: TrialCheck) -> None:
    by_start = sorted(s.generations, key=lambda g: g[2])
    stale: list[str] = []
    bad_ids: list[str] = []
    writes = 0
    for job, attempt, worker, epoch, started, _o in s.attempts:
        writes += 1
        gen = _generation_at(by_start, started)
        if gen is None or epoch < gen[1]:
            bad_ids.append(job)
            stale.append(f"{job} attempt {attempt} start by {worker} at epoch {epoch} "
                         + ("before any generation" if gen is None else
                            f"in generation {gen[0]} (floor {gen[1]})"))
    for job, (outcome, worker, recorded, epoch) in s.outcomes.items():
        if worker == SUPERVISOR_WRITER:
            continue  # the supervisor's own verdict (a job whose workers kept dying): no lease, epoch 0
        writes += 1
        gen = _generation_at(by_start, recorded)
        if gen is None or epoch < gen[1]:
            bad_ids.append(job)
            stale.append(f"{job} outcome {outcome} by {worker} at epoch {epoch} "
                         + ("before any generation" if gen is None else
                            f"in generation {gen[0]} (floor {gen[1]})"))
    out._add("no_stale_epoch_write", writes, bad_ids, "accepted below the floor: " + "; ".join(stale[:_MAX_IDS]),
             failed=bool(stale))


def _epochs_rise(s: _Store, out: TrialCheck) -> None:
    problems: list[str] = []
    bad_ids: list[str] = []
    if not s.generations and s.attempts:
        problems.append("the run has attempts but no generation: nothing fenced its epochs")
    previous_floor: int | None = None
    previous_start: float | None = None
    for gen, floor, started in s.generations:
        if previous_start is not None and started < previous_start:
            problems.append(f"generation {gen} started before generation {gen - 1}")
        if previous_floor is not None and floor <= previous_floor:
            problems.append(f"generation {gen} floor {floor} <= the previous floor {previous_floor}")
        used = [(j, e) for j, _a, _w, e, t, _o in s.attempts if t < started and e >= floor]
        used += [(j, o[3]) for j, o in s.outcomes.items() if o[2] < started and o[3] >= floor]
        if used:
            bad_ids += [j for j, _e in used]
            problems.append(f"generation {gen} floor {floor} is not above epoch {max(e for _j, e in used)} "
                            f"used before it started (jobs {_few({j for j, _e in used})})")
        previous_floor, previous_start = floor, started
    out._add("epochs_rise", len(s.generations), bad_ids, "; ".join(problems), failed=bool(problems))


def _finished_recorded(s: _Store, run_id: str, domain: list[dict], out: TrialCheck) -> None:
    finished = {str(r.get("job_id")) for r in domain
                if r.get("event") == "job_finished" and r.get("run_id", run_id) == run_id}
    missing = sorted(finished - set(s.outcomes))
    out._add("finished_recorded", len(finished), missing,
             f"logged job_finished but no outcome in the store: {_few(missing)}", failed=bool(missing))


# -- the runs' own reports and the trial's processes ---------------------------------------------------------


def _no_unowned(ev: TrialEvidence, streams: dict[str, list[dict]], out: TrialCheck) -> None:
    problems: list[str] = []
    summaries = 0
    for ex in ev.exits:
        uses = [int(n) for n in _SAFETY.findall(ex.stdout)]
        out.duplicates_refused += sum(int(n) for n in _DUPLICATES.findall(ex.stdout))
        summaries += len(uses)
        if any(uses):
            problems.append(f"{ex.label} reported unowned session uses={sum(uses)}")
    final = ev.exits[-1] if ev.exits else None
    if final is not None and final.code is not None and not _SAFETY.search(final.stdout):
        problems.append(f"the {final.label} printed no safety summary (nothing proves zero unowned uses)")
    records = [(name, r) for name, recs in streams.items() for r in recs
               if str(r.get("message", "")).startswith(UNOWNED_MESSAGE) or "unowned" in str(r.get("event") or "")]
    if records:
        stream, first = records[0]
        fields = ", ".join(f"{k}={first.get(k)}" for k in ("slot", "caller_worker", "presented_epoch",
                                                            "current_epoch"))
        problems.append(f"{len(records)} unowned-use record(s) in the streams (first in {stream}: {fields})")
    ids = [str(r.get("job_id")) for _n, r in records if r.get("job_id")]
    out._add("no_unowned_use", summaries, ids, "; ".join(problems), failed=bool(problems))


def _exit_codes(ev: TrialEvidence, s: _Store, out: TrialCheck) -> None:
    problems: list[str] = []
    failed = [j for j, o in s.outcomes.items() if o[0] == "failed"]
    for ex in ev.exits:
        if ex.code is None:
            problems.append(f"the {ex.label} did not exit within {ex.bound_s:.0f} s (killed by the campaign)")
        elif ex.code not in ex.expected:
            why = f" (failed jobs: {_few(failed)})" if failed and ex.code == 1 else ""
            problems.append(f"the {ex.label} exited {ex.code}, expected {' or '.join(map(str, ex.expected))}{why}")
    ids = failed if any(ex.code == 1 and 1 not in ex.expected for ex in ev.exits) else []
    out._add("exit_code", len(ev.exits), ids, "; ".join(problems), failed=bool(problems))


def _leftovers(ev: TrialEvidence, out: TrialCheck) -> None:
    left = ev.leftovers
    if left is None:
        return
    problems = []
    if left.processes:
        problems.append(f"{len(left.processes)} process(es) alive: {'; '.join(left.processes[:5])}")
    if left.dirs:
        problems.append(f"{len(left.dirs)} temp folder(s) left: {', '.join(left.dirs[:5])}")
    if left.segments:
        problems.append(f"shared-memory segment(s) left: {', '.join(left.segments)}")
    out._add("no_leftovers", 1, (), "; ".join(problems), failed=bool(problems))


def _supervisor_kill(ev: TrialEvidence, out: TrialCheck) -> None:
    k = ev.supervisor_kill
    if k is None:
        return
    then = (f"; all gone {k.late_gone_s:.2f} s after the kill" if k.late_gone_s is not None
            else "; still alive after the campaign's wait, killed by it")
    out._add("workers_die_with_supervisor", k.tree, (),
             f"{len(k.alive_after)} of {k.tree} process(es) still alive {GONE_WITHIN_S:g} s after the supervisor's "
             f"SIGKILL{then}: {'; '.join(k.alive_after[:5])}", failed=bool(k.alive_after))


def _reader(ev: TrialEvidence, out: TrialCheck) -> None:
    r = ev.reader
    if r is None:
        return
    problems = []
    if r.opens == 0:
        problems.append("the read-write reader never opened the store")
    if r.errors:
        problems.append(f"{len(r.errors)} failed open(s)/read(s): {r.errors[0]}")
    out._add("reader_ok", r.opens + len(r.errors), (), "; ".join(problems), failed=bool(problems))


def check_trial(ev: TrialEvidence) -> TrialCheck:
    """Every invariant over one trial's evidence; raises :class:`EvidenceError` when the store is unreadable."""
    s = _read_store(ev.state_dir, ev.run_id)
    streams = {name: _records(s.run_dir, name) for name in STREAMS}
    out = TrialCheck(refused_writes=s.refusals,
                     failed_jobs=tuple(sorted(j for j, o in s.outcomes.items() if o[0] == "failed")))
    out.unreadable_records = sum(1 for recs in streams.values() for r in recs
                                 if str(r.get("message", "")).startswith("unreadable record"))
    _outcomes_once(s, out)
    _no_double_pass(s, out)
    _no_rerun(s, out)
    _finished_recorded(s, ev.run_id, streams["domain"], out)
    _no_unowned(ev, streams, out)
    _no_stale_epoch(s, out)
    _epochs_rise(s, out)
    _leftovers(ev, out)
    _exit_codes(ev, s, out)
    _supervisor_kill(ev, out)
    _reader(ev, out)
    return out


__all__ = ["INVARIANTS", "UNITS", "GONE_WITHIN_S", "EvidenceError", "RunExit", "Leftovers", "SupervisorKill",
           "ReaderStats", "TrialEvidence", "Finding", "TrialCheck", "check_trial"]
