"""Alert rules as data: conditions over a window's figures, severities, message templates, the SLO file's overrides."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from engine.errors import ConfigError
from engine.evidence.slo import OPERATORS, SCALAR_METRICS, SLOSpec, metric_value

SEVERITIES: tuple[str, ...] = ("info", "warn", "critical")
RULE_METRICS: tuple[str, ...] = SCALAR_METRICS + ("idle_workers_s", "queued")
SCOPES: tuple[str, ...] = ("window", "run")
MESSAGE_FIELDS: tuple[str, ...] = ("rule", "severity", "metric", "value", "op", "bound", "threshold", "window",
                                   "windows") + RULE_METRICS
SLO_BREACH = "slo_breach"
SLO_NO_DATA = "slo_no_data"
_OVERRIDE_KEYS = ("enabled", "severity", "metric", "op", "threshold", "windows", "over", "while", "message")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def severity_rank(severity: str) -> int:
    """0 for info .. 2 for critical (so severities compare)."""
    return SEVERITIES.index(severity)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "?" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Condition:
    """``metric op bound`` over one window's figures (``queued > 0``)."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.metric not in RULE_METRICS:
            raise ConfigError(f"unknown metric {self.metric!r} (known: {', '.join(RULE_METRICS)})")
        if self.op not in OPERATORS:
            raise ConfigError(f"unknown operator {self.op!r} (known: {' '.join(OPERATORS)})")

    def value(self, window: Mapping[str, Any]) -> float | None:
        """The figure in ``window`` (None: no data, e.g. an error rate with no finished job)."""
        if self.metric in SCALAR_METRICS:
            return metric_value(window, self.metric)
        if window.get(self.metric) is None:
            raise ValueError(f"window {window.get('index')!r} has no {self.metric!r}")
        return float(window[self.metric])

    def holds(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {fmt(float(self.bound))}"


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A named condition with a severity and a message template (fields: :data:`MESSAGE_FIELDS`)."""

    name: str
    severity: str
    condition: Condition
    message: str
    windows: int = 1            # consecutive windows the condition must hold
    over: str = "window"        # "run": the metric summed over all windows so far (fires once)
    guard: Condition | None = None  # must hold in the current window too ("while jobs wait")

    def __post_init__(self) -> None:
        problems = []
        if not _RULE_NAME.fullmatch(self.name):
            problems.append(f"rule name {self.name!r} must be lower_case_with_underscores")
        if self.severity not in SEVERITIES:
            problems.append(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if isinstance(self.windows, bool) or not isinstance(self.windows, int) or self.windows < 1:
            problems.append(f"windows must be an integer >= 1, got {self.windows!r}")
        if self.over not in SCOPES:
            problems.append(f"over must be one of {SCOPES}, got {self.over!r}")
        if self.over == "run" and self.windows != 1:
            problems.append("a rule over the whole run cannot also need consecutive windows")
        problems.extend(_template_problems(self.message))
        if problems:
            raise ConfigError(f"alert rule {self.name}: " + "; ".join(problems))

    @property
    def threshold(self) -> str:
        """The condition as written in the alerts file (``error_rate > 0.1 for 3 consecutive windows``)."""
        text = str(self.condition)
        if self.over == "run":
            text += " (run total)"
        if self.windows > 1:
            text += f" for {self.windows} consecutive windows"
        if self.guard is not None:
            text += f" while {self.guard}"
        return text

    def predicate(self, window: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> float | None:
        """The value that makes the rule fire on ``window`` given the recent ``history`` (oldest first), else None.

        Consecutive means consecutive: the streak breaks at a window with no
        data or a gap in the window indices.  Run-scope rules are judged by
        :class:`AlertManager`, which keeps the running totals.
        """
        if self.guard is not None and not self.guard.holds(self.guard.value(window)):
            return None
        value = self.condition.value(window)
        if not self.condition.holds(value):
            return None
        chain_prev = window
        needed = self.windows - 1
        for past in reversed([w for w in history if w.get("index") != window.get("index")
                              or window.get("index") is None]):
            if needed == 0:
                break
            i, j = past.get("index"), chain_prev.get("index")
            if isinstance(i, int) and isinstance(j, int) and i != j - 1:
                return None
            if not self.condition.holds(self.condition.value(past)):
                return None
            chain_prev, needed = past, needed - 1
        return value if needed == 0 else None

    def render(self, value: float | None, window: Mapping[str, Any]) -> str:
        fields = {}
        for m in RULE_METRICS:
            v = window.get(m)
            fields[m] = fmt(min(v.values()) if v else None) if isinstance(v, dict) else fmt(v)
        fields.update(rule=self.name, severity=self.severity, metric=self.condition.metric, value=fmt(value),
                      op=self.condition.op, bound=fmt(float(self.condition.bound)), threshold=self.threshold,
                      window=fmt(window.get("index")), windows=str(self.windows))
        return self.message.format(**fields)


def _template_problems(template: str) -> list[str]:
    if not isinstance(template, str) or not template.strip():
        return ["message must be a non-empty string"]
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"message template {template!r}: {exc}"]
    out = []
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in MESSAGE_FIELDS:
            out.append(f"message template: unknown field {{{name}}} (fields: {', '.join(MESSAGE_FIELDS)})")
        elif spec or conversion:
            out.append(f"message template: write plain {{{name}}} (values come formatted)")
    return out


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("error_rate_sustained", "critical", Condition("error_rate", ">", 0.10),
              "error rate {value} > {bound} for {windows} consecutive windows", windows=3),
    AlertRule("duplicate_outcomes", "critical", Condition("duplicates", ">", 0),
              "{value} duplicate outcome(s) refused in window {window}"),
    AlertRule("supervisor_memory", "critical", Condition("supervisor_rss_mb", ">", 1024),
              "supervisor memory {value} MB past the {bound} MB limit"),
    AlertRule("worker_restarts", "critical", Condition("worker_restarts", ">", 5),
              "{value} worker restarts in this soak (limit {bound})", over="run"),
    AlertRule("deadlock", "critical", Condition("idle_workers_s", ">", 600),
              "all workers idle for {value} s while {queued} job(s) wait (deadlock?)",
              guard=Condition("queued", ">", 0)),
)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """The rules in force and the severity of a plain SLO breach (from the SLO file's ``alerts`` section)."""

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    slo_breach_severity: str = "warn"

    @classmethod
    def from_spec(cls, spec: SLOSpec | None) -> "AlertConfig":
        """Apply the overrides in ``spec.alerts`` to the defaults; errors name the file and the rule."""
        if spec is None or not spec.alerts:
            return cls()
        rules = {r.name: r for r in DEFAULT_RULES}
        slo_severity = "warn"
        for name, override in spec.alerts.items():
            where = f'{spec.source}: alerts["{name}"]'
            if not isinstance(override, Mapping):
                raise ConfigError(f"{where}: must be an object of overrides, e.g. {{\"threshold\": 2048}}")
            if name == SLO_BREACH:
                if set(override) - {"severity"} or override.get("severity") not in SEVERITIES:
                    raise ConfigError(f"{where}: only \"severity\" ({'/'.join(SEVERITIES)}) can be set; "
                                      "abortOnFail thresholds are always critical")
                slo_severity = override["severity"]
                continue
            try:
                rule = _override(rules.get(name), name, override)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            if rule is None:
                rules.pop(name, None)
            else:
                rules[name] = rule
        return cls(tuple(rules.values()), slo_severity)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return float(value)


def _condition(data: Any, key: str) -> Condition:
    if not isinstance(data, Mapping) or set(data) != {"metric", "op", "value"}:
        raise ConfigError(f"{key} must be {{\"metric\": NAME, \"op\": OP, \"value\": NUMBER}}")
    return Condition(data["metric"], data["op"], _number(data["value"], f"{key}.value"))


def _override(base: AlertRule | None, name: str, o: Mapping[str, Any]) -> AlertRule | None:
    """``base`` with the overrides applied; a new rule when ``base`` is None; None when disabled."""
    unknown = sorted(set(o) - set(_OVERRIDE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} (allowed: {list(_OVERRIDE_KEYS)})")
    enabled = o.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"enabled must be true or false, got {enabled!r}")
    if not enabled:
        if base is None:
            raise ConfigError(f"no default rule {name!r} to disable (defaults: "
                              f"{', '.join(r.name for r in DEFAULT_RULES)})")
        return None
    if base is None:
        missing = [k for k in ("metric", "op", "threshold", "severity") if k not in o]
        if missing:
            raise ConfigError(f"a new rule needs {missing} (or name a default rule: "
                              f"{', '.join(r.name for r in DEFAULT_RULES)})")
        # a blank the four required keys fill in (it also checks the rule's name)
        base = AlertRule(name, o["severity"] if o["severity"] in SEVERITIES else "warn",
                         Condition("queued", ">", 0.0), "{metric} = {value} ({threshold})")
    metric, op = o.get("metric", base.condition.metric), o.get("op", base.condition.op)
    for key, value in (("metric", metric), ("op", op)):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
    bound = _number(o["threshold"], "threshold") if "threshold" in o else base.condition.bound
    guard = base.guard
    if "while" in o:
        guard = None if o["while"] is None else _condition(o["while"], "while")
    return AlertRule(name, o.get("severity", base.severity), Condition(metric, op, bound),
                     o.get("message", base.message), windows=o.get("windows", base.windows),
                     over=o.get("over", base.over), guard=guard)


__all__ = ["SEVERITIES", "RULE_METRICS", "SCOPES", "MESSAGE_FIELDS", "SLO_BREACH", "SLO_NO_DATA", "severity_rank",
           "fmt", "Condition", "AlertRule", "DEFAULT_RULES", "AlertConfig"]
