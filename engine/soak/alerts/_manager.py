"""The alert manager: rules and SLO thresholds judged per window and for the run, every alert to every sink."""
from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from coordination.telemetry_context import stream_logger
from engine.errors import ConfigError
from engine.evidence.slo import SLOSpec, ThresholdResult
from engine.records.rundir import Alert
from engine.soak.alerts._diagnostics import write_diagnostic
from engine.soak.alerts._rules import DEFAULT_RULES, SEVERITIES, SLO_BREACH, SLO_NO_DATA, AlertConfig, AlertRule, fmt
from engine.soak.alerts._sinks import AlertSink

ops = stream_logger("operational", "engine.soak.alerts")

_KEEP_RECENT = 100


class AlertManager:
    """Evaluates rules and SLO thresholds per window and hands every alert to every sink.

    Memory stays bounded however long the soak: only counts, the
    critical alerts (the first hundred) and the last hundred alerts are
    kept; run-scope totals are one number per rule.
    """

    def __init__(self, sinks: Iterable[AlertSink], rules: Iterable[AlertRule] = DEFAULT_RULES, *,
                 slo: SLOSpec | None = None, slo_breach_severity: str = "warn", run_id: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        if slo_breach_severity not in SEVERITIES:
            raise ConfigError(f"slo_breach severity must be one of {SEVERITIES}, got {slo_breach_severity!r}")
        self.sinks = list(sinks)
        self.rules = tuple(rules)
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"alert rule names must be unique, got {names}")
        self.slo = slo
        self.slo_breach_severity = slo_breach_severity
        self.run_id = run_id
        self._clock = clock
        self.counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        self.recent: collections.deque[Alert] = collections.deque(maxlen=_KEEP_RECENT)
        self._critical: list[Alert] = []
        self.breaches = 0
        self.last_results: tuple[ThresholdResult, ...] = ()
        self._closed_totals: dict[str, float] = {}   # run-scope sums over the windows before the current one
        self._current: dict[str, float] = {}         # the current window's latest figure
        self._latched: set[str] = set()
        self._last_index: int | None = None

    @classmethod
    def from_spec(cls, spec: SLOSpec | None, sinks: Iterable[AlertSink], *, run_id: str = "") -> "AlertManager":
        config = AlertConfig.from_spec(spec)
        return cls(sinks, config.rules, slo=spec, slo_breach_severity=config.slo_breach_severity, run_id=run_id)

    # -- evaluation ----------------------------------------------------------------

    def evaluate(self, window: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> list[Alert]:
        """Alerts for one window; ``history`` is the closed windows before it, oldest first (may be bounded).

        The soak may call this for the still-open window every tick (so a
        deadlock or a memory limit is seen within a tick, not at the end of
        an hour-long window) and once more when it closes: run totals take
        each window index once, with its latest figure.
        """
        alerts = []
        index = window.get("index")
        # A window seen again (a soak may evaluate the open window every tick, then once closed) replaces its
        # own contribution to run totals; a new window closes the previous one; an older one is ignored.
        if not isinstance(index, int) or self._last_index is None or index > self._last_index:
            step = "new"
            self._last_index = index if isinstance(index, int) else self._last_index
        else:
            step = "again" if index == self._last_index else "old"
        for rule in self.rules:
            if rule.over == "run":
                value = self._run_total(rule, window, step)
                if value is None or rule.name in self._latched:
                    continue
                self._latched.add(rule.name)
            else:
                value = rule.predicate(window, history)
                if value is None:
                    continue
            alerts.append(self._alert(rule.severity, rule.name, rule.condition.metric, value, rule.threshold,
                                      index, rule.render(value, window)))
        for alert in alerts:  # before the SLOs: a window the SLOs cannot read must not swallow a critical
            self._emit(alert)
        if self.slo is not None:
            self.last_results = tuple(self.slo.evaluate(window))
            breaches = self._slo_alerts(self.last_results, index, whole_run=False)
            for alert in breaches:
                self._emit(alert)
            alerts.extend(breaches)
        return alerts

    def evaluate_run(self, aggregate: Mapping[str, Any]) -> list[Alert]:
        """The SLO thresholds over the whole run; a threshold with no data in the whole run is a warning.

        Why warn on no data here (and not per window): a flow that did not
        run in one window is normal, one that never ran means the threshold
        names a flow or phase the batch does not have — a budget that could
        never fail.
        """
        if self.slo is None:
            return []
        results = tuple(self.slo.evaluate({**aggregate, "index": "run"}))
        self.last_results = results
        alerts = self._slo_alerts(results, "run", whole_run=True)
        for r in results:
            if r.ok is None:
                alerts.append(self._alert("warn", SLO_NO_DATA, r.metric, None, r.expr, "run",
                                          f"no samples for {r.metric} in the whole run: {r.expr} was never "
                                          "checked (is the flow or phase name right?)"))
        for alert in alerts:
            self._emit(alert)
        return alerts

    def _run_total(self, rule: AlertRule, window: Mapping[str, Any], step: str) -> float | None:
        if step != "old":
            value = rule.condition.value(window)
            if step == "new":
                self._closed_totals[rule.name] = (self._closed_totals.get(rule.name, 0.0)
                                                  + self._current.get(rule.name, 0.0))
            self._current[rule.name] = value or 0.0
        total = self._closed_totals.get(rule.name, 0.0) + self._current.get(rule.name, 0.0)
        if rule.guard is not None and not rule.guard.holds(rule.guard.value(window)):
            return None
        return total if rule.condition.holds(total) else None

    def _slo_alerts(self, results: Sequence[ThresholdResult], index: Any, *, whole_run: bool) -> list[Alert]:
        out = []
        where = "over the whole run" if whole_run else f"in window {index}"
        for r in results:
            if r.ok is not False:
                continue
            self.breaches += 1
            severity = "critical" if r.abort_on_fail else self.slo_breach_severity
            out.append(self._alert(severity, SLO_BREACH, r.metric, r.value, r.expr, index,
                                   f"SLO breached {where}: {r.metric} {r.expr} (measured {fmt(r.value)})"))
        return out

    def _alert(self, severity: str, rule: str, metric: str, value: float | None, threshold: str, window: Any,
               message: str) -> Alert:
        return Alert(self._clock(), severity, rule, metric, value, threshold, window, message, self.run_id)

    def _emit(self, alert: Alert) -> None:
        self.counts[alert.severity] += 1
        self.recent.append(alert)
        if alert.severity == "critical" and len(self._critical) < _KEEP_RECENT:
            self._critical.append(alert)
        level = {"info": 20, "warn": 30, "critical": 40}[alert.severity]
        ops.log(level, "alert raised", extra={
            "event": "alert", "severity": alert.severity, "rule": alert.rule, "metric": alert.metric,
            "value": alert.value, "threshold": alert.threshold, "window": alert.window,
            "alert_text": alert.message})
        for sink in self.sinks:
            sink.emit(alert)

    # -- state ---------------------------------------------------------------------

    @property
    def critical(self) -> tuple[Alert, ...]:
        """Critical alerts so far (the first hundred); non-empty means the soak must halt."""
        return tuple(self._critical)

    @property
    def halt_reason(self) -> str | None:
        """Why the soak must halt (the first critical alert), or None."""
        if not self._critical:
            return None
        first = self._critical[0]
        return f"{first.rule}: {first.message}"

    @property
    def breached(self) -> bool:
        """Any SLO breach so far (the soak's exit code is then non-zero)."""
        return self.breaches > 0

    @property
    def sink_failures(self) -> dict[str, int]:
        return {type(s).__name__: s.failures for s in self.sinks}

    def write_diagnostic(self, run_dir: str | os.PathLike[str], *, windows: Sequence[Mapping[str, Any]] = (),
                         errors: Sequence[Mapping[str, Any]] | None = None,
                         extra: Mapping[str, Any] | None = None) -> Path:
        """The diagnostic file for a halt: the halting alert, the other criticals, last windows, recent errors."""
        context: dict[str, Any] = {
            "run_id": self.run_id,
            "alert": self._critical[0].to_json() if self._critical else None,
            "critical_alerts": [a.to_json() for a in self._critical],
            "recent_alerts": [a.to_json() for a in self.recent],
            "slo": [r.record().to_json() for r in self.last_results],
            "windows": list(windows),
            "sink_failures": self.sink_failures,
            **(extra or {})}
        if errors is not None:
            context["recent_errors"] = list(errors)
        return write_diagnostic(run_dir, self.halt_reason or "halted without a critical alert", context)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


__all__ = ["AlertManager"]
