"""JUnit XML of a run: one ``<testcase>`` per job, so a CI server shows each job as a test.

Layout (the common Jenkins / GitLab / GitHub reading of JUnit)::

    <testsuites name="drover" tests= failures= skipped= time=>
      <testsuite name="drover run RUN_ID" ...>          one testcase per job, in batch order
        <properties> run_id, run_dir, status, report </properties>
        <testcase classname="FLOW" name="JOB_ID" time="SECONDS">
          <failure type="CATEGORY" message="[CATEGORY] STEP: ERROR">  category, failing step, attempts,
                                                                       artifact paths, the trace command
        </testcase>
        <testcase ...><skipped message="no final outcome ..."/></testcase>   a job the run did not finish
      </testsuite>
      <testsuite name="drover SLO RUN_ID">              only with an SLO file: one testcase per threshold
    </testsuites>

A failed job is a ``failure`` (the flow ran and did not pass), never an
``error``: errors are kept for JUnit's meaning, the harness breaking.
Error texts come from the results store, where secrets are already masked.
"""
from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET

from engine.evidence.run import RunEvidence, breach_text
from engine.records import rundir

MESSAGE_CHARS = 300
_ARTIFACTS_TAIL = re.compile(r"\s*\[artifacts: [^\]]*\]\s*$")  # listed in the failure's text instead


def _seconds(ms: float | None) -> str:
    return f"{(ms or 0.0) / 1000:.3f}"


def _job_cases(suite: ET.Element, ev: RunEvidence) -> tuple[int, int, float]:
    failures = skipped = 0
    total_ms = 0.0
    for job in ev.jobs:
        total_ms += job.duration_ms or 0.0
        case = ET.SubElement(suite, "testcase", classname=job.flow, name=job.job_id, time=_seconds(job.duration_ms))
        if job.outcome == "failed":
            failures += 1
            step = f" {job.step}:" if job.step else ""
            message = f"[{job.category}]{step} {_ARTIFACTS_TAIL.sub('', job.error or '') or 'failed'}"
            lines = [f"category: {job.category}", f"step: {job.step or '-'}", f"attempts: {job.attempts}",
                     f"worker: {job.worker or '-'}", f"error: {job.error or '-'}"]
            lines += ["artifacts:"] + [f"  {a}" for a in job.artifacts] if job.artifacts else ["artifacts: none"]
            if job.correlation_id:
                lines.append(f"trace: python -m engine trace {job.correlation_id}")
            failure = ET.SubElement(case, "failure", type=job.category or "navigation",
                                    message=message[:MESSAGE_CHARS])
            failure.text = "\n".join(lines)
        elif job.outcome != "passed":
            skipped += 1
            ET.SubElement(case, "skipped", message="no final outcome: the run ended before this job "
                                                   "(resume it with run --resume RUN_ID)")
    return failures, skipped, total_ms


def _slo_cases(suite: ET.Element, ev: RunEvidence) -> int:
    agg = ev.summary.aggregate
    failures = 0
    for r in (agg.slo if agg is not None and agg.slo else ()):
        case = ET.SubElement(suite, "testcase", classname=f"slo.{r.metric}", name=f"{r.metric} {r.expr}", time="0")
        if r.ok is not True:
            failures += 1
            ET.SubElement(case, "failure", type="slo", message=breach_text(r)[:MESSAGE_CHARS]).text = breach_text(r)
    return failures


def render_junit(ev: RunEvidence) -> bytes:
    s = ev.summary
    root = ET.Element("testsuites", name="drover")
    stamp = s.started_at or 0.0
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
    suite = ET.SubElement(root, "testsuite", name=f"drover run {s.run_id}", timestamp=when)
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", s.run_id), ("run_dir", str(ev.run_dir)), ("status", s.status),
                        ("mode", s.mode), ("workers", s.workers),
                        ("report", str(ev.run_dir / rundir.REPORT))):
        ET.SubElement(props, "property", name=name, value="" if value is None else str(value))
    failures, skipped, total_ms = _job_cases(suite, ev)
    suite.set("tests", str(len(ev.jobs)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suite.set("time", f"{(s.elapsed_s or total_ms / 1000):.3f}")
    tests, all_failures = len(ev.jobs), failures
    if s.verdict is not None:
        slo_suite = ET.SubElement(root, "testsuite", name=f"drover SLO {s.run_id}", timestamp=when)
        slo_failures = _slo_cases(slo_suite, ev)
        n = len(slo_suite.findall("testcase"))
        slo_suite.set("tests", str(n))
        slo_suite.set("failures", str(slo_failures))
        slo_suite.set("errors", "0")
        slo_suite.set("skipped", "0")
        slo_suite.set("time", "0")
        tests += n
        all_failures += slo_failures
    root.set("tests", str(tests))
    root.set("failures", str(all_failures))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    root.set("time", suite.get("time", "0"))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str | os.PathLike[str], ev: RunEvidence) -> None:
    """``OSError`` when the file cannot be written (the caller names the option)."""
    rundir.write_atomic(path, render_junit(ev))


__all__ = ["render_junit", "write_junit"]
