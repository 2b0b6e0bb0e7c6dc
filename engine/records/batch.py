"""Batch input: JSON Lines, one job per line, validated whole before anything runs.

Why up front: a batch that fails on line 180 after 179 jobs ran leaves an
operator with half a run and no clean way to redo it.  Every line is
parsed, every flow it names is loaded and checked against the step
registry, and all problems are reported together with their line numbers;
the run starts only when none is left (or, with ``--skip-invalid``, the bad
lines are reported and left out — never silently).

A line::

    {"id": "j1", "flow": "flows/login.json", "credential": "shop/alice",
     "vars": {"name": "Ada"}, "retries": 2, "timeout": 60, "fallback": "fixture_form"}

``flow`` is a path relative to the batch file, or ``legacy:NAME``.

Only a regular file is read as a batch: ``open()`` on a FIFO blocks until
a writer appears (a run that hangs before it starts) and a device never
ends.  The type and size are checked with ``stat`` before opening and
again with ``fstat`` on the opened descriptor, which is opened
non-blocking so that a file swapped for a FIFO in between cannot block
it (:mod:`coordination.inputfiles`, shared with flows and SLO files).  A flow file a line names gets the same refusal from
:func:`navigation.flow.load_flow`.

Every batch field that becomes a path — ``flow`` (a file), ``id`` (the
job's artifact folder), ``credential`` (lock and profile folders) — is
refused with its line number when it holds a NUL byte: no operating
system path can, and Python would raise a bare ``ValueError`` at the first
use (resolving the flow path here, or later inside a worker).
"""
from __future__ import annotations

import codecs
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import orjson

from coordination.inputfiles import InputFileProblem, open_regular
from engine.errors import BatchInputError
from navigation.errors import FlowError
from navigation.flow import Flow, load_flow, nesting_depth
from navigation.legacy import LegacyRegistry
from navigation.steps import StrategyRegistry

MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
KNOWN_FIELDS = frozenset({"id", "flow", "credential", "vars", "retries", "timeout", "fallback", "navigation"})
DEFAULT_RETRIES = 1
DEFAULT_TIMEOUT_S = 120.0
MAX_LINE_DEPTH = 32  # a job line nests 2 deep ({"vars": {...}}); anything near this limit is not a job


@dataclass(frozen=True, slots=True)
class Job:
    """One validated job; ``flow_key`` is the resolved flow path or ``legacy:NAME``."""

    id: str
    line: int
    flow_key: str
    credential: str | None = None
    vars: Mapping[str, str] = field(default_factory=dict)
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT_S
    fallback: str | None = None

    @property
    def legacy(self) -> str | None:
        return self.flow_key[len("legacy:"):] if self.flow_key.startswith("legacy:") else None

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "flow": self.flow_key, "credential": self.credential, "vars": dict(self.vars),
                "retries": self.retries, "timeout": self.timeout, "fallback": self.fallback}


@dataclass(frozen=True, slots=True)
class Batch:
    path: str
    jobs: tuple[Job, ...]
    flows: Mapping[str, Flow]
    flow_errors: Mapping[str, str]
    skipped: tuple[str, ...] = ()
    _by_id: Mapping[str, Job] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The supervisor looks jobs up on every dispatch (and its affinity check on up to 64 more):
        # an index, not a scan of a batch that may hold thousands.
        object.__setattr__(self, "_by_id", {j.id: j for j in self.jobs})

    def job(self, job_id: str) -> Job:
        """The job with this id; ``ID@CYCLE`` (a soak's repeat of a job) is that job under the cycle's id."""
        found = self._by_id.get(job_id)
        if found is not None:
            return found
        base, sep, cycle = job_id.rpartition("@")
        found = self._by_id.get(base) if sep and cycle.isdigit() else None
        if found is None:
            raise KeyError(job_id)
        return dataclasses.replace(found, id=job_id)


def _shown(text: str) -> str:
    """A path or field as it may appear in a message: a NUL byte written ``\\0``, not sent to the terminal."""
    return text.replace("\0", "\\0")


def _open_batch(path: Path, source: str) -> BinaryIO:
    """The batch file opened for reading: checked before it is opened and again once it is, never blocking."""
    try:
        return open_regular(path, "a batch file", MAX_BATCH_BYTES)
    except InputFileProblem as problem:
        reason = "no such batch file" if problem.kind == "missing" else problem.reason
        raise BatchInputError(f"{source}: {reason}") from None


def _nul_problems(raw: Mapping[str, Any], where: str) -> list[str]:
    """NUL bytes in the fields that become paths: the OS cannot name such a file, folder or lock."""
    uses = {"id": "it names the job's artifact folder", "flow": "it names a file",
            "credential": "it names lock and profile folders"}
    return [f'{where}: "{name}" must not contain a NUL byte ({why})'
            for name, why in uses.items() if isinstance(raw.get(name), str) and "\0" in raw[name]]


def _check_line(raw: object, number: int, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: a job must be a JSON object, got {type(raw).__name__}"]
    problems = _nul_problems(raw, where)
    unknown = sorted(set(raw) - KNOWN_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_FIELDS))})")
    job_id = raw.get("id")
    if not isinstance(job_id, str) or not job_id.strip():
        problems.append(f'{where}: "id" must be a non-empty string')
    elif len(job_id) > 200 or "/" in job_id or "@" in job_id:
        problems.append(f'{where}: "id" must be at most 200 characters with no "/" or "@"')
    elif "\0" in job_id:
        pass  # named once, by _nul_problems
    elif job_id in (".", "..") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in job_id):
        # an id names the job's artifacts folder (artifacts/ID/) and a line in every log and export:
        # "." or ".." would put its files outside it, a control character would split a log line or CSV row
        problems.append(f'{where}: "id" must not be "." or ".." nor contain control characters, '
                        f'got {job_id!r}')  # repr: the message itself carries no control character
    if not isinstance(raw.get("flow"), str) or not raw.get("flow"):
        problems.append(f'{where}: "flow" must be a path or "legacy:NAME"')
    cred = raw.get("credential")
    if cred is not None and (not isinstance(cred, str) or cred.count("/") != 1 or not all(cred.split("/"))):
        problems.append(f'{where}: "credential" must be "scope/name"')
    variables = raw.get("vars", {})
    if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in variables.items()):
        problems.append(f'{where}: "vars" must be an object of strings')
    retries = raw.get("retries", DEFAULT_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        problems.append(f'{where}: "retries" must be an integer 0..20')
    timeout = raw.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        problems.append(f'{where}: "timeout" must be seconds, 0 < timeout <= 86400')
    fallback = raw.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback):
        problems.append(f'{where}: "fallback" must name a legacy flow')
    nav = raw.get("navigation")
    if nav is not None and nav not in ("recorder", "legacy"):
        problems.append(f'{where}: "navigation" must be "recorder" or "legacy"')
    return (raw if not problems else None), problems


def load_batch(path: str | os.PathLike[str], *, strategies: StrategyRegistry, legacy: LegacyRegistry,
               skip_invalid: bool = False) -> Batch:
    """Parse and validate a whole batch file; raise :class:`BatchInputError` listing every bad line."""
    path = Path(path)
    source = _shown(str(path))
    fh = _open_batch(path, source)
    base = path.parent
    problems: list[str] = []
    bad_lines: dict[int, list[str]] = {}
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    flows: dict[str, Flow] = {}
    flow_errors: dict[str, str] = {}
    read = 0
    with fh:
        for number, line in enumerate(fh, 1):
            where = f"{source}:{number}"
            read += len(line)
            if read > MAX_BATCH_BYTES:
                raise BatchInputError(f"{source}: grew past the {MAX_BATCH_BYTES // 2**20} MiB limit while being read")
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]  # editors that save "UTF-8 with BOM": the text is still UTF-8
            if not line.strip():
                continue
            if len(line) > MAX_LINE_BYTES:
                bad_lines.setdefault(number, []).append(f"{where}: line is longer than {MAX_LINE_BYTES} bytes")
                continue
            if nesting_depth(line, MAX_LINE_DEPTH) > MAX_LINE_DEPTH:
                bad_lines.setdefault(number, []).append(
                    f"{where}: JSON nests deeper than {MAX_LINE_DEPTH} levels (a job line needs 2)")
                continue
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                bad_lines.setdefault(number, []).append(f"{where}: not valid JSON ({exc})")
                continue
            spec, line_problems = _check_line(raw, number, where)
            if spec is None:
                bad_lines.setdefault(number, []).extend(line_problems)
                continue
            job_id = spec["id"]
            if job_id in seen:
                bad_lines.setdefault(number, []).append(
                    f"{where}: duplicate job id {job_id!r} (first on line {seen[job_id]})")
                continue
            flow_ref = spec["flow"]
            if spec.get("navigation") == "legacy" and not flow_ref.startswith("legacy:"):
                flow_ref = f"legacy:{flow_ref}"
            fallback = spec.get("fallback")
            line_problems = []
            if flow_ref.startswith("legacy:"):
                flow_key = flow_ref
                if flow_ref[len("legacy:"):] not in legacy.names():
                    line_problems.append(f"{where}: no legacy flow named {flow_ref[7:]!r} "
                                         f"(registered: {', '.join(legacy.names())})")
            else:
                flow_key = str((base / flow_ref).resolve()) if not os.path.isabs(flow_ref) else flow_ref
                if flow_key not in flows and flow_key not in flow_errors:
                    try:
                        flow = load_flow(flow_key, extra_types=strategies.extra_types())
                        unrunnable = strategies.problems(flow)
                        if unrunnable:
                            flow_errors[flow_key] = "; ".join(unrunnable)
                        else:
                            flows[flow_key] = flow
                    except FlowError as exc:
                        flow_errors[flow_key] = str(exc)
                if flow_key in flow_errors and not fallback:
                    line_problems.append(f"{where}: flow {flow_ref} is invalid and the job names no fallback: "
                                         f"{flow_errors[flow_key]}")
            if fallback and fallback not in legacy.names():
                line_problems.append(f"{where}: fallback {fallback!r} is not a registered legacy flow "
                                     f"(registered: {', '.join(legacy.names())})")
            if line_problems:
                bad_lines.setdefault(number, []).extend(line_problems)
                continue
            seen[job_id] = number
            jobs.append(Job(job_id, number, flow_key, spec.get("credential"), dict(spec.get("vars", {})),
                            int(spec.get("retries", DEFAULT_RETRIES)), float(spec.get("timeout", DEFAULT_TIMEOUT_S)),
                            fallback))
    for number in sorted(bad_lines):
        problems.extend(bad_lines[number])
    if problems and not skip_invalid:
        raise BatchInputError(f"{source}: {len(bad_lines)} invalid line(s); nothing was run\n"
                              + "\n".join(f"  - {p}" for p in problems))
    if not jobs:
        detail = ("\n" + "\n".join(f"  - {p}" for p in problems)) if problems else ""
        raise BatchInputError(f"{source}: no valid jobs in the batch{detail}")
    return Batch(source, tuple(jobs), flows, flow_errors, tuple(problems))


__all__ = ["Job", "Batch", "load_batch", "MAX_BATCH_BYTES", "MAX_LINE_BYTES", "MAX_LINE_DEPTH", "KNOWN_FIELDS"]
