"""Saved baselines and the noise-aware regression gate.

The rule (``evaluate``): the gate fails when the current mean throughput is
more than ``threshold`` (5%) below the reference mean **and** the drop is
larger than the run-to-run noise, the largest range (max - min) of per-run
throughput among the run sets compared.

The reference is the saved baseline — unless the bench could re-run the
baseline's configuration in the same invocation (the current configuration
differs from it, e.g. by a deliberate slowdown: the repeats then alternate
the two).  Then the reference is those re-runs: an A/B measured under the
same machine load, which a shared machine's drift does not move; the saved
baseline still names the configuration, and how far the re-runs land from
it is reported as machine drift.  With one run per set there is no noise
estimate: the 5% rule alone decides, and the verdict says so.

Noise in an A/B is measured on the pairs: run *i* of the baseline
configuration and run *i* of the current one ran back to back, so the
machine's drift moves both, and the noise is the spread of the per-pair
differences — the one-sided 95% margin of their mean (Student's t).
Measured on this 2-core VM, throughput drifts by 5-10% over ten minutes of
load; a range over unpaired runs counts that drift as noise and hid a 9%
slowdown whose every pair showed it.  Against the saved baseline there is
nothing to pair with, and the range stays the (cautious) noise.

A baseline file records the machine it was measured on; comparing on a
machine whose fingerprint differs warns loudly (it does not fail by itself:
the numbers just mean little).

The gate's answer is a :class:`GateResult` (passed or not, with the
figures), not a "verdict": that word is the readiness Go / No-Go of a
soak (:class:`engine.records.rundir.Verdict`), a different thing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench._fingerprint import differences
from engine.records.rundir import write_atomic

KIND = "drover-bench-baseline"
FORMAT = 1
THRESHOLD = 0.05


class BaselineError(Exception):
    """A baseline file that cannot be used (missing, not JSON, another kind or version)."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """The regression gate on one comparison: passed or not, the drop, the noise it was judged against, and why."""

    passed: bool
    drop: float                 # fraction below the baseline mean (negative: faster)
    noise: float                # jobs/s
    baseline_mean: float
    current_mean: float
    control_mean: float | None
    lines: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())


# Student's t, one-sided 95%, by degrees of freedom (1.645 beyond the table).
_T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
        1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725)


def paired_margin(differences: list[float]) -> float:
    """How far the mean of paired differences may sit from 0 by chance (one-sided 95%): t * sd / sqrt(n)."""
    n = len(differences)
    if n < 2:
        return 0.0
    m = sum(differences) / n
    sd = (sum((d - m) ** 2 for d in differences) / (n - 1)) ** 0.5
    t = _T95[n - 2] if n - 2 < len(_T95) else 1.645
    return t * sd / n ** 0.5


def evaluate(baseline: list[float], current: list[float], control: list[float] | None = None, *,
             threshold: float = THRESHOLD) -> GateResult:
    """The gate on per-run throughputs (jobs/s); ``control``: same-invocation re-runs of the baseline config."""
    if not baseline or not current:
        raise ValueError("the gate needs at least one baseline run and one current run")
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    spread = lambda v: (max(v) - min(v)) if len(v) >= 2 else 0.0  # noqa: E731
    saved, cur = mean(baseline), mean(current)
    control_mean = mean(control) if control else None
    reference = control if control else baseline
    what = "baseline configuration re-run now" if control else "saved baseline"
    ref = mean(reference)
    paired = control is not None and len(control) == len(current) >= 2
    if paired:
        noise = paired_margin([c - x for c, x in zip(control, current)])
        how = f"one-sided 95% margin of {len(current)} back-to-back pairs"
    else:
        noise = max(spread(current), spread(reference))
        how = "largest range over repeats"
    drop = (ref - cur) / ref if ref > 0 else 0.0
    below = drop > threshold
    passed = not (below and (ref - cur) > noise)
    out = [f"{what} {ref:.3f} jobs/s ({len(reference)} run(s)), now {cur:.3f} jobs/s ({len(current)} run(s)): "
           f"{-100 * drop:+.1f}%; run-to-run noise {noise:.3f} jobs/s ({how})"]
    warnings = []
    if len(current) < 2 and len(reference) < 2:
        warnings.append("no noise estimate (one run per set): the 5% rule alone decides; use --repeat 3")
    if control_mean is not None:
        drift = (control_mean - saved) / saved if saved > 0 else 0.0
        out.insert(0, f"saved baseline {saved:.3f} jobs/s; the baseline configuration re-run alongside: "
                      f"{control_mean:.3f} jobs/s ({100 * drift:+.1f}%: machine drift); current vs the saved "
                      f"baseline: {100 * (cur - saved) / saved:+.1f}%")
        if abs(drift) > threshold:
            warnings.append(f"the baseline configuration runs {100 * drift:+.1f}% off the saved baseline on this "
                            f"machine now (load or environment changed); the gate compares with the re-runs")
    if passed and below:
        out.append(f"PASS: {100 * drop:.1f}% below the {what}, but the drop ({ref - cur:.3f} jobs/s) is within the "
                   f"run-to-run noise ({noise:.3f} jobs/s): not a measurable regression")
    elif passed:
        out.append(f"PASS: within {100 * threshold:.0f}% of the {what}" if drop > 0
                   else f"PASS: not slower than the {what}")
    else:
        out.append(f"FAIL: throughput regressed {100 * drop:.1f}% against the {what} (limit "
                   f"{100 * threshold:.0f}%), and the drop ({ref - cur:.3f} jobs/s) exceeds the run-to-run noise "
                   f"({noise:.3f} jobs/s)")
    return GateResult(passed, drop, noise, saved, cur, control_mean, tuple(out), tuple(warnings))


def baseline_document(summary: dict[str, Any], fingerprint: dict[str, Any], batch_version: int) -> dict[str, Any]:
    return {"kind": KIND, "format": FORMAT, "batch_version": batch_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fingerprint": fingerprint,
            "config": summary["config"], "summary": summary}


def save(path: str | Path, document: dict[str, Any]) -> None:
    """Atomically (a half-written baseline would fail every later gate)."""
    write_atomic(path, orjson.dumps(document, option=orjson.OPT_INDENT_2))


def load(path: str | Path, batch_version: int) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read: {exc.strerror}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise BaselineError(f"baseline {path}: not a Drover bench baseline (save one with --save-baseline)")
    if doc.get("format") != FORMAT:
        raise BaselineError(f"baseline {path}: format {doc.get('format')!r}, this bench reads format {FORMAT}")
    if doc.get("batch_version") != batch_version:
        raise BaselineError(f"baseline {path}: measured batch version {doc.get('batch_version')!r}, the bench's "
                            f"batch is now version {batch_version}: save a new baseline")
    try:
        values = doc["summary"]["throughput"]["values"]
        if not values or not all(isinstance(v, (int, float)) for v in values):
            raise TypeError("no per-run throughput values")
        doc["config"]["workers"], doc["config"]["jobs"], doc["config"]["flows"]
    except (KeyError, TypeError) as exc:
        raise BaselineError(f"baseline {path}: incomplete ({exc})") from exc
    return doc


def machine_warnings(doc: dict[str, Any], now: dict[str, Any]) -> list[str]:
    diffs = differences(doc.get("fingerprint") or {}, now)
    if not diffs:
        return []
    return ["!" * 72, "BASELINE FROM A DIFFERENT MACHINE - throughput figures are not comparable:",
            *[f"  {d}" for d in diffs], "!" * 72]


def load_warning(doc: dict[str, Any], summary: dict[str, Any], cores: int) -> str | None:
    """A warning when the machine's load average differs a lot between the baseline and now (shared hosts)."""
    try:
        then = max(doc["summary"]["load_avg"]["values"])
        now = max(summary["load_avg"]["values"])
    except (KeyError, TypeError, ValueError):
        return None
    if abs(now - then) <= max(0.5 * cores, 0.25 * max(now, then)):
        return None
    return (f"the machine's load differs from when the baseline was saved (peak 1-min load average {then:.1f} "
            f"then, {now:.1f} now, {cores} cores): other work on this host moves throughput")


# Until bench/__init__.py imports GateResult (then this alias goes: one word, one meaning).

__all__ = ["GateResult", "evaluate", "paired_margin", "BaselineError", "baseline_document", "save", "load",
           "machine_warnings", "load_warning", "THRESHOLD", "KIND", "FORMAT"]
