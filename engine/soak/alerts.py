"""Alerts: rules over window metrics, severities, and the sinks an operator watches.

Why rules are data: the default critical triggers (from the design) are
parameters, not code paths, so an SLO file can move a limit, lower a
severity or switch a rule off under ``"alerts"`` without a release::

    "alerts": {"supervisor_memory": {"threshold": 2048},
               "worker_restarts":   {"severity": "warn"},
               "deadlock":          {"threshold": 300},
               "duplicate_outcomes": {"enabled": false},
               "slo_breach":        {"severity": "critical"},
               "slow_fleet": {"metric": "throughput", "op": "<", "threshold": 0.5, "severity": "warn",
                              "windows": 2, "message": "throughput {value} jobs/s below {bound}"}}

A rule fires when its condition holds on the current window (for
``windows`` consecutive windows, ``while`` a guard also holds), or, with
``"over": "run"``, when the metric summed over every window so far
crosses the bound (it fires once).  Every SLO breach is an alert too:
``warn`` (overridable as ``slo_breach``), ``critical`` when the threshold
has ``abortOnFail``.  A critical alert means the soak halts and writes a
diagnostic file (:meth:`AlertManager.write_diagnostic`).

Sinks, so a breach is operator-visible within one evaluation: a line on
stderr (through a ``write_line`` callable, so the CLI's Console keeps the
terminal), ``alerts.jsonl`` in the run directory, and an optional webhook.
The webhook POSTs only to the one http(s) URL the operator configured —
redirects are not followed, nothing else is contacted — with a short
timeout, bounded retries and a circuit breaker, so a dead receiver costs
the soak seconds, not hours; its failures are counted and logged, never
raised into the soak (the URL's path and query, which often hold a token,
never reach the logs).
"""
from __future__ import annotations

import collections
import http.client
import os
import re
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import orjson

from coordination.telemetry_context import STREAMS, stream_logger
from engine.errors import ConfigError, EngineError
from engine.evidence.slo import OPERATORS, SCALAR_METRICS, SLOSpec, ThresholdResult, metric_value

ops = stream_logger("operational", __name__)

SEVERITIES: tuple[str, ...] = ("info", "warn", "critical")
RULE_METRICS: tuple[str, ...] = SCALAR_METRICS + ("idle_workers_s", "queued")
SCOPES: tuple[str, ...] = ("window", "run")
MESSAGE_FIELDS: tuple[str, ...] = ("rule", "severity", "metric", "value", "op", "bound", "threshold", "window",
                                   "windows") + RULE_METRICS
SLO_BREACH = "slo_breach"
SLO_NO_DATA = "slo_no_data"
_OVERRIDE_KEYS = ("enabled", "severity", "metric", "op", "threshold", "windows", "over", "while", "message")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_KEEP_RECENT = 100


def severity_rank(severity: str) -> int:
    """0 for info .. 2 for critical (so severities compare)."""
    return SEVERITIES.index(severity)


def _fmt(value: Any) -> str:
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
        return f"{self.metric} {self.op} {_fmt(float(self.bound))}"


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
        """The condition as written in ``alerts.jsonl`` (``error_rate > 0.1 for 3 consecutive windows``)."""
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
            fields[m] = _fmt(min(v.values()) if v else None) if isinstance(v, dict) else _fmt(v)
        fields.update(rule=self.name, severity=self.severity, metric=self.condition.metric, value=_fmt(value),
                      op=self.condition.op, bound=_fmt(float(self.condition.bound)), threshold=self.threshold,
                      window=_fmt(window.get("index")), windows=str(self.windows))
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
class Alert:
    """One raised alert, as written to every sink."""

    ts: float
    severity: str
    rule: str
    metric: str
    value: float | None
    threshold: str
    window: int | str | None
    message: str
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "severity": self.severity, "rule": self.rule, "metric": self.metric,
                "value": self.value, "threshold": self.threshold, "window": self.window,
                "message": self.message, "run_id": self.run_id}

    def line(self) -> str:
        where = "whole run" if self.window == "run" else f"window {self.window}"
        return f"ALERT {self.severity} [{self.rule}] {where}: {self.message}"


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


# -- sinks -----------------------------------------------------------------------------------------------


class AlertSink(Protocol):
    """Where alerts go.  ``emit`` must not raise: a broken sink counts its failures and the soak goes on."""

    failures: int

    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class StderrSink:
    """One line per alert through ``write_line`` (the CLI passes its Console, which owns the terminal)."""

    def __init__(self, write_line: Callable[[str], None]) -> None:
        self.write_line = write_line
        self.failures = 0

    def emit(self, alert: Alert) -> None:
        try:
            self.write_line(alert.line())
        except (OSError, ValueError) as exc:  # a closed or broken stderr (cron's pipe went away)
            self.failures += 1
            ops.warning("alert line not written", extra={"event": "alert_sink_failed", "sink": "stderr",
                                                         "error": str(exc)})

    def close(self) -> None:
        return None


class JsonlSink:
    """``alerts.jsonl`` in the run directory: one JSON object per alert, appended whole with one write."""

    def __init__(self, run_dir: str | os.PathLike[str], filename: str = "alerts.jsonl") -> None:
        self.path = Path(run_dir) / filename
        self.failures = 0
        self._fd: int | None = None

    def emit(self, alert: Alert) -> None:
        data = orjson.dumps(alert.to_dict()) + b"\n"
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            written = os.write(self._fd, data)
            if written < len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
        except OSError as exc:  # disk full, run dir gone: counted and logged, the soak goes on
            self.failures += 1
            ops.error("alert record not written", extra={"event": "alert_sink_failed", "sink": str(self.path),
                                                         "error": str(exc)})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the soak talks only to the URL the operator configured."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class WebhookSink:
    """POSTs each alert as JSON to one http(s) URL.  Never raises into the soak.

    Worst case per alert: ``(1 + retries) * timeout`` plus the backoff
    sleeps; after ``breaker_after`` alerts in a row could not be delivered
    the sink stops trying for ``cooldown_s`` (those alerts are counted as
    ``skipped`` failures), so a dead receiver cannot stall the soak loop.
    4xx answers (except 408/429) are not retried: the request is wrong,
    repeating it will not help.  Proxies follow the usual ``*_proxy``
    environment variables.
    """

    def __init__(self, url: str, *, timeout: float = 3.0, retries: int = 2, backoff_s: float = 0.5,
                 breaker_after: int = 3, cooldown_s: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL must be http:// or https:// with a host, got {_scheme_only(url)}")
        if timeout <= 0 or retries < 0 or backoff_s < 0 or breaker_after < 1 or cooldown_s < 0:
            raise ConfigError("webhook needs timeout > 0, retries >= 0, backoff >= 0, breaker_after >= 1")
        self.url = url
        self.target = _redacted(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker_after = breaker_after
        self.cooldown_s = cooldown_s
        self._sleep = sleep
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirects)
        self.delivered = 0
        self.failures = 0
        self.skipped = 0
        self.requests = 0
        self.last_error: str | None = None
        self._failed_in_a_row = 0
        self._open_until = 0.0

    def emit(self, alert: Alert) -> None:
        if self._failed_in_a_row >= self.breaker_after and self._clock() < self._open_until:
            self.failures += 1
            self.skipped += 1
            return
        body = orjson.dumps(alert.to_dict())
        tries = 0
        for n in range(1 + self.retries):
            tries += 1
            retryable, error = self._post(body)
            if error is None:
                self.delivered += 1
                self._failed_in_a_row = 0
                return
            self.last_error = error
            if not retryable:
                break
            if n < self.retries:
                self._sleep(self.backoff_s * (2 ** n))
        self.failures += 1
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= self.breaker_after:
            self._open_until = self._clock() + self.cooldown_s
        ops.warning("alert webhook delivery failed", extra={
            "event": "alert_webhook_failed", "target": self.target, "error": self.last_error, "tries": tries,
            "rule": alert.rule, "failures": self.failures,
            "paused_s": self.cooldown_s if self._failed_in_a_row >= self.breaker_after else 0.0})

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """(retryable, error); error None on a 2xx answer."""
        self.requests += 1
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "drover-alerts/1"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read(65536)
            return False, None
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code >= 500 or exc.code in (408, 429), f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:  # refused, DNS, TLS
            return True, f"{type(exc.reason).__name__}: {exc.reason}"
        except (http.client.HTTPException, OSError) as exc:  # timeouts, resets, garbled answers
            return True, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        return None


def _scheme_only(url: object) -> str:
    """What to say about a rejected URL without echoing a token that may sit in it."""
    if not isinstance(url, str):
        return repr(url)
    scheme = urllib.parse.urlsplit(url).scheme
    return f"a {scheme}: URL" if scheme else "a URL without a scheme"


# -- the manager ---------------------------------------------------------------------------------------


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
                                   f"SLO breached {where}: {r.metric} {r.expr} (measured {_fmt(r.value)})"))
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
            "alert": self._critical[0].to_dict() if self._critical else None,
            "critical_alerts": [a.to_dict() for a in self._critical],
            "recent_alerts": [a.to_dict() for a in self.recent],
            "slo": [r.to_dict() for r in self.last_results],
            "windows": list(windows),
            "sink_failures": self.sink_failures,
            **(extra or {})}
        if errors is not None:
            context["recent_errors"] = list(errors)
        return write_diagnostic(run_dir, self.halt_reason or "halted without a critical alert", context)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


# -- diagnostics -----------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (Mapping, MappingProxyType)):
        return dict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, (tuple, list)):
        return list(obj)
    return str(obj)  # Paths, enums, exceptions: their text is what a reader needs


def recent_errors(run_dir: str | os.PathLike[str], limit: int = 20,
                  tail_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """The last ``limit`` WARNING/ERROR records across the run's four streams, oldest first.

    Reads only the tail of each file, so a diagnostic after 24 hours is as
    cheap as after one minute.
    """
    found: list[dict[str, Any]] = []
    for stream in STREAMS:
        path = Path(run_dir) / f"{stream}.jsonl"
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                start = max(0, size - tail_bytes)
                fh.seek(start)
                chunk = fh.read()
        except FileNotFoundError:
            continue
        except OSError as exc:  # say so in the diagnostic rather than lose the whole file over one stream
            found.append({"ts": time.time(), "stream": stream, "level": "ERROR",
                          "message": f"stream not readable: {exc}"})
            continue
        lines = chunk.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first line is cut in the middle
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn line; read_stream reports those, a diagnostic does not need to
            if isinstance(rec, dict) and rec.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                found.append(rec)
    found.sort(key=lambda r: float(r.get("ts") or 0.0))
    return found[-limit:]


def write_diagnostic(run_dir: str | os.PathLike[str], reason: str, context: Mapping[str, Any]) -> Path:
    """Write ``diagnostic-<UTC time>.json`` in ``run_dir`` atomically and return its path.

    ``context`` is copied in as is (the halting alert, last windows, ...);
    ``recent_errors`` is read from the run's streams when not given.  A
    diagnostic that cannot be written is an :class:`EngineError` — the
    soak is stopping because something is wrong, the operator must hear it.
    """
    run_dir = Path(run_dir)
    ts = time.time()
    payload = {"ts": ts, "reason": reason, **context}
    if "recent_errors" not in payload:
        payload["recent_errors"] = recent_errors(run_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
    path = run_dir / f"diagnostic-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = run_dir / f"diagnostic-{stamp}-{n}.json"
    tmp = path.with_name(path.name + ".tmp")
    try:
        data = orjson.dumps(payload, default=_json_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        ops.error("diagnostic not written", extra={"event": "diagnostic_failed", "path": str(path),
                                                   "error": str(exc)})
        raise EngineError(f"cannot write diagnostic {path}: {exc.strerror or exc}") from exc
    ops.error("diagnostic written", extra={"event": "diagnostic", "path": str(path), "reason": reason})
    return path


__all__ = ["SEVERITIES", "RULE_METRICS", "MESSAGE_FIELDS", "DEFAULT_RULES", "SLO_BREACH", "SLO_NO_DATA",
           "Condition", "AlertRule", "Alert", "AlertConfig", "AlertSink", "StderrSink", "JsonlSink",
           "WebhookSink", "AlertManager", "write_diagnostic", "recent_errors", "severity_rank"]
