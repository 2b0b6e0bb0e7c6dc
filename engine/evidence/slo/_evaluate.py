"""Evaluating SLO thresholds on one window's figures (or the whole run's): three outcomes, not two."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from engine.evidence.criteria import ReadinessLimits
from engine.evidence.slo._expressions import STANDARD_LATENCY_STATS, Expression, metric_kind
from engine.records.metrics import Histogram
from engine.records.rundir import SloResult

DEFAULT_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """One threshold checked against one window: ``ok`` is None when the window had no data for it."""

    metric: str
    expr: str
    value: float | None
    ok: bool | None
    abort_on_fail: bool
    window: int | str | None = None

    @property
    def status(self) -> str:
        return "no data" if self.ok is None else ("pass" if self.ok else "fail")

    def record(self) -> SloResult:
        """This result as the run directory keeps it (in each window's and the aggregate's ``slo``)."""
        return SloResult.judged(self.metric, self.expr, self.value, self.ok, self.abort_on_fail, self.window)

    def to_dict(self) -> dict[str, Any]:
        return self.record().to_json()


def _latency_value(stats: Mapping[str, Any], expr: Expression, metric: str, window: Mapping[str, Any]) -> float:
    key = expr.stat_key
    if key in stats and stats[key] is not None:
        return float(stats[key])
    if stats.get("histogram"):
        h = Histogram.from_dict(stats["histogram"])
        if expr.aggregate == "p":
            return h.percentile(expr.percentile or 0.0)
        return {"med": h.percentile(50), "avg": h.mean, "min": h.min, "max": h.max, "count": float(h.count)}[
            expr.aggregate]
    raise ValueError(f"window {window.get('index')!r}: latency[{metric!r}] has no {key!r} and no 'histogram' "
                     f"(needed by {expr}); the soak must report SLOSpec.required_stats()")


def metric_value(window: Mapping[str, Any], metric: str, expr: Expression | None = None) -> float | None:
    """The figure ``expr`` reads from ``window`` (None: no data in this window).

    Why strict on missing keys: a window dict without ``duplicates`` is a
    bug in whoever built it, and reading it as 0 would turn a check into
    one that cannot fail; it raises ``ValueError`` instead.
    """
    kind = metric_kind(metric)
    if kind == "latency":
        assert expr is not None
        stats = (window.get("latency") or {}).get(metric)
        if not stats or not stats.get("n"):
            return None
        return _latency_value(stats, expr, metric, window)
    if kind is None:
        raise ValueError(f"unknown metric {metric!r}")
    if metric in ("throughput", "throughput_per_worker") and window.get("partial") is True:
        return None  # a run's last window may last seconds: a rate over it is noise, not a breach
    if metric == "throughput_per_worker":
        per = window.get("throughput_per_worker")
        if per is None:
            raise ValueError(f"window {window.get('index')!r} has no 'throughput_per_worker'")
        if not per:
            return None
        values = [float(v) for v in per.values()]
        agg = expr.aggregate if expr is not None else "value"
        return {"max": max(values), "avg": sum(values) / len(values)}.get(agg, min(values))
    if metric == "error_rate" and "jobs" in window and not sum((window["jobs"] or {}).values()):
        return None  # no job finished in this window: there is no rate to judge
    if window.get(metric) is None:
        raise ValueError(f"window {window.get('index')!r} has no {metric!r}")
    return float(window[metric])


@dataclass(frozen=True, slots=True)
class Threshold:
    """One budget: a metric, an expression, and whether breaching it aborts the soak."""

    metric: str
    expression: Expression
    abort_on_fail: bool = False
    where: str = ""  # e.g. 'thresholds["flow:x"][1]', for messages

    def evaluate(self, window: Mapping[str, Any]) -> ThresholdResult:
        value = metric_value(window, self.metric, self.expression)
        if value is not None and math.isnan(value):
            value = None
        ok = None if value is None else self.expression.holds(value)
        return ThresholdResult(self.metric, str(self.expression), value, ok, self.abort_on_fail,
                               window.get("index"))


@dataclass(frozen=True, slots=True)
class Waiver:
    """A readiness criterion the operator accepted as a risk, with the reason written down."""

    criterion: str
    reason: str


@dataclass(frozen=True, slots=True)
class SLOSpec:
    """A parsed SLO file: window length, thresholds, waivers, readiness limits, the raw (read-only) alert overrides."""

    source: str = "<defaults>"
    window_s: float = DEFAULT_WINDOW_S
    thresholds: tuple[Threshold, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    alerts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False, compare=False)
    readiness: ReadinessLimits = ReadinessLimits()

    def evaluate(self, window: Mapping[str, Any]) -> list[ThresholdResult]:
        """Every threshold against one window (or the run's aggregate, which has the same shape)."""
        return [t.evaluate(window) for t in self.thresholds]

    def percentiles(self) -> tuple[float, ...]:
        """The percentiles the thresholds use beyond p50/p95/p99, so the soak can report them."""
        wanted = {t.expression.percentile for t in self.thresholds if t.expression.aggregate == "p"}
        return tuple(sorted(p for p in wanted if p is not None and p not in (50.0, 95.0, 99.0)))

    def required_stats(self) -> tuple[str, ...]:
        """Latency stat keys the thresholds read beyond the standard n/p50/p95/p99/max/avg (e.g. ``p90``, ``min``).

        The soak reports these per flow/phase, or puts the window's
        ``histogram`` (``Histogram.to_dict()``) next to them so any of them
        can be computed; otherwise evaluation raises rather than pass blind.
        """
        keys = {t.expression.stat_key for t in self.thresholds if metric_kind(t.metric) == "latency"}
        return tuple(sorted(keys - set(STANDARD_LATENCY_STATS)))

    def waiver(self, criterion: str) -> Waiver | None:
        return next((w for w in self.waivers if w.criterion == criterion), None)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.metric for t in self.thresholds))


__all__ = ["DEFAULT_WINDOW_S", "ThresholdResult", "metric_value", "Threshold", "Waiver", "SLOSpec"]
