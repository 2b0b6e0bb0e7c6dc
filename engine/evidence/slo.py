"""SLO budgets: k6-style threshold expressions in a file, evaluated per window and for the whole run.

Why a file of expressions and not code: the operator owns the budgets
(``p(95) < 800`` on ``flow:checkout``) and changes them without a
release; the soak evaluates the same :class:`SLOSpec` against every
window's metrics and against the run's aggregate.  The file is JSON or
TOML (chosen by its suffix)::

    {"window": "1h",
     "thresholds": {
       "flow:checkout": ["p(95) < 800", {"threshold": "p(99) < 1500", "abortOnFail": true}],
       "phase:click":   ["p(95) < 300", "avg < 200"],
       "error_rate":    ["rate < 0.01"],
       "throughput":    ["value > 2.0"],
       "unowned_uses":  ["count == 0"]},
     "waivers": [{"criterion": "throughput_vs_legacy", "reason": "2-core CI box; accepted until the 8-core run"}],
     "readiness": {"max_queue_wait": "10m", "min_legacy_ratio": 5},
     "alerts": {"supervisor_memory": {"threshold": 2048}}}

Grammar of one expression: ``AGG OP NUMBER`` where ``AGG`` is ``p(N)``
(0 < N <= 100), ``avg``, ``min``, ``max``, ``med``, ``count``, ``rate``,
``value`` or the metric's own name (``error_rate < 0.01``), and ``OP`` is
one of ``< <= > >= == !=``.  Which aggregates a metric takes is in
:data:`METRIC_AGGREGATES`; a latency metric (``flow:NAME``,
``phase:STEP-TYPE``, ``label:PHASE-LABEL``, milliseconds) takes the percentile family.

Three outcomes, not two: a threshold on a flow or phase that has no
samples in a window is ``no data`` — neither a pass (a misspelt flow name
would then pass forever) nor a fail (a window where that flow simply did
not run is not a breach).

Parsing happens once, at the edge (:func:`load_slo`); errors name the
file, the place in it and the expression::

    slo.json: thresholds["flow:x"][1]: cannot parse "p95 < 8": unknown aggregate 'p95' ...

The ``alerts`` section is validated by :mod:`engine.soak.alerts`
(``AlertConfig.from_spec``), which owns the alert rules; it is kept here
read-only so one file configures both.  ``waivers`` and ``readiness``
belong to ``python -m engine readiness``: a waiver must name one of the
criteria in :mod:`engine.evidence.criteria` (a misspelt waiver would otherwise
waive nothing, silently), and ``readiness`` overrides their limits
(:class:`~engine.evidence.criteria.ReadinessLimits`).
"""
from __future__ import annotations

import json
import math
import operator
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from engine.evidence.criteria import CATEGORIES, CRITERION_NAMES, LIMIT_KEYS, ReadinessLimits
from engine.errors import ConfigError
from engine.records.metrics import Histogram

DEFAULT_WINDOW_S = 3600.0

OPERATORS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType({
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne})

AGGREGATES: tuple[str, ...] = ("p", "avg", "min", "max", "med", "count", "rate", "value")
LATENCY_AGGREGATES: tuple[str, ...] = ("p", "avg", "min", "max", "med", "count")
LATENCY_PREFIXES: tuple[str, ...] = ("flow:", "phase:", "label:")  # label: a flow's own phase labels

# Scalar metrics of the window dict and the aggregates each one takes ("value" also stands for the name itself).
METRIC_AGGREGATES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "error_rate": ("rate", "value"),
    "throughput": ("rate", "value"),
    "throughput_per_worker": ("value", "min", "max", "avg"),  # value = min over workers: the slowest one
    "unowned_uses": ("count", "value"),
    "invalid_transitions": ("count", "value"),
    "duplicates": ("count", "value"),
    "worker_restarts": ("count", "value"),
    "supervisor_rss_mb": ("value",),
})
SCALAR_METRICS: tuple[str, ...] = tuple(METRIC_AGGREGATES)
STANDARD_LATENCY_STATS: tuple[str, ...] = ("n", "p50", "p95", "p99", "max", "avg")

_TOP_LEVEL_KEYS = ("window", "thresholds", "waivers", "readiness", "alerts", "description")
_THRESHOLD_KEYS = ("threshold", "abortOnFail")

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_EXPRESSION = re.compile(
    rf"\s*(?:p\(\s*(?P<pct>{_NUMBER})\s*\)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
    rf"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<bound>{_NUMBER})\s*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_HELP = "expected a number with a unit (ms, s, m, h, d), e.g. 90s, 10m, 24h, 1h30m"


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``10m``, ``24h``, ``1h30m`` (units d/h/m/s/ms, largest first, each once).

    Why no bare numbers: ``--duration 24`` is ambiguous (hours? seconds?),
    and a soak that runs 24 s instead of 24 h is a wasted night.
    """
    if not isinstance(text, str):
        raise ConfigError(f"cannot parse duration {text!r}: {_DURATION_HELP}")
    s = text.strip()
    pos, total, last_rank = 0, 0.0, -1
    order = list(_DURATION_UNITS)
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            hint = "; add a unit" if re.fullmatch(r"\d+(?:\.\d+)?", s) else ""
            raise ConfigError(f'cannot parse duration "{text}": {_DURATION_HELP}{hint}')
        rank = order.index(m.group(2))
        if rank <= last_rank:
            raise ConfigError(f'cannot parse duration "{text}": units must go from largest to smallest, '
                              f"each once ({_DURATION_HELP})")
        last_rank = rank
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ConfigError(f'cannot parse duration "{text}": {_DURATION_HELP}')
    if not math.isfinite(total):
        raise ConfigError(f'duration "{text}" is too long')
    if total <= 0:
        raise ConfigError(f'duration "{text}" must be longer than zero')
    return total


def _format_number(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True, slots=True)
class Expression:
    """One parsed ``AGG OP NUMBER``; ``aggregate`` is normalised (the metric's own name becomes ``value``)."""

    aggregate: str
    op: str
    bound: float
    percentile: float | None = None
    text: str = ""

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)

    @property
    def stat_key(self) -> str:
        """The key of this aggregate in a latency stats dict (``p95``, ``p99.9``, ``avg`` ...)."""
        if self.aggregate == "p":
            assert self.percentile is not None
            return f"p{_format_number(self.percentile)}"
        return {"med": "p50", "count": "n"}.get(self.aggregate, self.aggregate)

    def __str__(self) -> str:
        if self.text:
            return self.text
        agg = f"p({_format_number(self.percentile or 0.0)})" if self.aggregate == "p" else self.aggregate
        return f"{agg} {self.op} {_format_number(self.bound)}"


def _parse(text: str, metric: str | None) -> tuple[Expression | None, str]:
    """(expression, "") or (None, why): no exceptions, so the caller decides how to name the place."""
    m = _EXPRESSION.fullmatch(text)
    if m is None:
        return None, "expected AGG OP NUMBER, e.g. p(95) < 800, avg < 200, rate < 0.01, count == 0"
    op, bound = m.group("op"), float(m.group("bound"))
    if not math.isfinite(bound):
        return None, "the bound must be a finite number"
    if m.group("pct") is not None:
        pct = float(m.group("pct"))
        if not (0 < pct <= 100) or not math.isfinite(pct):
            return None, f"percentile must be in (0, 100], got {m.group('pct')}"
        return Expression("p", op, bound, pct, text.strip()), ""
    name = m.group("name")
    if name in AGGREGATES and name != "p":
        return Expression(name, op, bound, None, text.strip()), ""
    if metric is not None and name == metric:
        return Expression("value", op, bound, None, text.strip()), ""
    expected = "p(N), " + ", ".join(a for a in AGGREGATES if a != "p")
    if metric in METRIC_AGGREGATES:
        expected += f" or {metric}"
    return None, f"unknown aggregate {name!r} (expected {expected})"


def parse_expression(text: str, metric: str | None = None) -> Expression:
    """Parse one expression (syntax only; :func:`check_metric` says whether it fits a metric)."""
    if not isinstance(text, str):
        raise ConfigError(f"cannot parse {text!r}: an expression must be a string")
    expr, why = _parse(text, metric)
    if expr is None:
        raise ConfigError(f'cannot parse "{text}": {why}')
    return expr


def metric_kind(metric: str) -> str | None:
    """``latency`` for flow:/phase:/label: metrics, ``scalar`` for the known window figures, None if unknown."""
    if any(metric.startswith(p) and len(metric) > len(p) for p in LATENCY_PREFIXES):
        return "latency"
    if metric in METRIC_AGGREGATES:
        return "scalar"
    return None


def check_metric(metric: str, expr: Expression) -> str:
    """Why ``expr`` does not apply to ``metric`` ("" when it does)."""
    kind = metric_kind(metric)
    if kind is None:
        known = ", ".join(("flow:NAME", "phase:STEP-TYPE", "label:PHASE-LABEL") + SCALAR_METRICS)
        return f"unknown metric {metric!r} (known: {known})"
    allowed = LATENCY_AGGREGATES if kind == "latency" else METRIC_AGGREGATES[metric]
    if expr.aggregate not in allowed:
        shown = ", ".join("p(N)" if a == "p" else a for a in allowed)
        return f"{metric} takes {shown}, not {expr.aggregate}"
    return ""


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

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "expr": self.expr, "value": self.value, "ok": self.ok,
                "status": self.status, "abort_on_fail": self.abort_on_fail, "window": self.window}


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


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read SLO file: {exc.strerror}") from exc
    if not raw.strip():
        raise ConfigError(f"{path}: the SLO file is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from exc


def _json(text: str, src: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{src}: line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}") from exc
    except ValueError as exc:  # a duplicate key, from the hook
        raise ConfigError(f"{src}: {exc}") from exc


def _toml(text: str, src: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from exc


def _read(path: Path) -> Any:
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json(text, str(path))
    if suffix == ".toml":
        return _toml(text, str(path))
    raise ConfigError(f"{path}: an SLO file must end in .json or .toml")


def _parse_window(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: window must be a duration like \"1h\" or seconds, got {value!r}")
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: window: {exc}") from exc
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: window must be > 0 seconds, got {value!r}")
    return float(value)


def _parse_thresholds(data: Any, src: str) -> tuple[Threshold, ...]:
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: thresholds must be an object of metric -> list of expressions")
    out = []
    for metric, entries in data.items():
        rel = f'thresholds["{metric}"]'
        place = f"{src}: {rel}"
        if not isinstance(entries, list):
            raise ConfigError(f"{place}: must be a list of expressions, e.g. [\"p(95) < 800\"]")
        if metric_kind(metric) is None:
            known = ", ".join(("flow:NAME", "phase:STEP-TYPE", "label:PHASE-LABEL") + SCALAR_METRICS)
            raise ConfigError(f"{place}: unknown metric {metric!r} (known: {known})")
        for i, entry in enumerate(entries):
            where = f"{place}[{i}]"
            rel_where = f"{rel}[{i}]"
            abort = False
            if isinstance(entry, dict):
                unknown = sorted(set(entry) - set(_THRESHOLD_KEYS))
                if unknown:
                    raise ConfigError(f"{where}: unknown key(s) {unknown} (allowed: {list(_THRESHOLD_KEYS)})")
                if "threshold" not in entry:
                    raise ConfigError(f"{where}: an object entry needs \"threshold\"")
                abort = entry.get("abortOnFail", False)
                if not isinstance(abort, bool):
                    raise ConfigError(f"{where}: abortOnFail must be true or false, got {abort!r}")
                entry = entry["threshold"]
            if not isinstance(entry, str):
                raise ConfigError(f"{where}: an expression must be a string or an object with \"threshold\", "
                                  f"got {entry!r}")
            expr, why = _parse(entry, metric)
            if expr is None:
                raise ConfigError(f'{where}: cannot parse "{entry}": {why}')
            why = check_metric(metric, expr)
            if why:
                raise ConfigError(f'{where}: "{entry}": {why}')
            out.append(Threshold(metric, expr, abort, rel_where))
    return tuple(out)


def _parse_waivers(data: Any, src: str) -> tuple[Waiver, ...]:
    if not isinstance(data, list):
        raise ConfigError(f"{src}: waivers must be a list of {{\"criterion\": ..., \"reason\": ...}}")
    out = []
    for i, w in enumerate(data):
        where = f"{src}: waivers[{i}]"
        if not isinstance(w, dict) or set(w) - {"criterion", "reason"}:
            raise ConfigError(f"{where}: a waiver is {{\"criterion\": NAME, \"reason\": WHY}} and nothing else")
        for key in ("criterion", "reason"):
            if not isinstance(w.get(key), str) or not w[key].strip():
                raise ConfigError(f"{where}: {key} must be a non-empty string (a waiver without a reason "
                                  "is not an accepted risk)")
        name = w["criterion"].strip()
        if name not in CRITERION_NAMES:
            raise ConfigError(f"{where}: unknown criterion {name!r} (known: {', '.join(CRITERION_NAMES)})")
        if any(x.criterion == name for x in out):
            raise ConfigError(f"{where}: criterion {name!r} is waived twice")
        out.append(Waiver(name, w["reason"].strip()))
    return tuple(out)


def _fraction(value: Any, where: str, *, top: float, closed: bool) -> float:
    """A number in [0, top) or [0, top]: a fraction (0.05 = 5%), refused as a percentage by mistake (5)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if not (0 <= value <= top if closed else 0 <= value < top):
        bracket = "]" if closed else ")"
        raise ConfigError(f"{where}: must be a fraction in [0, {_format_number(float(top))}{bracket} "
                          f"(0.05 = 5%), got {value!r}")
    return float(value)


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: must be a number > 0, got {value!r}")
    return float(value)


def _parse_readiness(data: Any, src: str) -> ReadinessLimits:
    """The ``readiness`` section: overrides of the default limits, every key checked for its type and range."""
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: readiness must be an object of limit -> value (keys: {list(LIMIT_KEYS)})")
    unknown = sorted(set(data) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigError(f"{src}: readiness: unknown key(s) {unknown} (allowed: {list(LIMIT_KEYS)})")
    at = {key: f"{src}: readiness.{key}" for key in LIMIT_KEYS}
    limits: dict[str, Any] = {}
    if "max_queue_wait" in data:
        value = data["max_queue_wait"]
        if isinstance(value, str):
            try:
                limits["max_queue_wait_s"] = parse_duration(value)
            except ConfigError as exc:
                raise ConfigError(f"{at['max_queue_wait']}: {exc}") from exc
        else:  # seconds, as ``window`` takes them
            limits["max_queue_wait_s"] = _positive(value, at["max_queue_wait"])
    if "max_regression" in data:
        limits["max_regression"] = _fraction(data["max_regression"], at["max_regression"], top=1, closed=False)
    if "max_last_quarter_error_rate" in data:
        limits["max_last_quarter_error_rate"] = _fraction(data["max_last_quarter_error_rate"],
                                                          at["max_last_quarter_error_rate"], top=1, closed=True)
    if "duration_tolerance" in data:
        limits["duration_tolerance"] = _fraction(data["duration_tolerance"], at["duration_tolerance"], top=1,
                                                 closed=False)
    for key in ("max_memory_growth_mb", "min_legacy_ratio"):
        if key in data:
            limits[key] = _positive(data[key], at[key])
    if "max_worker_restarts" in data:
        value = data["max_worker_restarts"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{at['max_worker_restarts']}: must be a whole number >= 0, got {value!r}")
        limits["max_worker_restarts"] = value
    if "critical_categories" in data:
        value = data["critical_categories"]
        where = at["critical_categories"]
        # Empty is refused: a criterion that cannot fail is not a check; waive critical_failures instead.
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: must be a non-empty list of failure categories (known: "
                              f"{', '.join(CATEGORIES)}); to accept the risk, waive critical_failures")
        for i, cat in enumerate(value):
            if cat not in CATEGORIES:
                raise ConfigError(f"{where}[{i}]: unknown failure category {cat!r} (known: {', '.join(CATEGORIES)})")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: a category is listed twice")
        limits["critical_categories"] = tuple(value)
    return ReadinessLimits(**limits)


def load_slo(path: str | os.PathLike[str]) -> SLOSpec:
    """Read and validate an SLO file (JSON or TOML); every error names the file and the place in it."""
    return _spec(_read(Path(path)), str(path))


def load_slo_text(text: str, source: str) -> SLOSpec:
    """Validate an SLO file's text whatever its name: JSON first, then TOML.

    Why: the soak keeps a byte copy of the operator's file as ``slo.json``
    in the run directory, so a TOML original sits there under a ``.json``
    name.  When the text is neither, the error is the JSON one if the text
    looks like JSON (starts with ``{``), else the TOML one.
    """
    if not text.strip():
        raise ConfigError(f"{source}: the SLO file is empty")
    try:
        data = _json(text, source)
    except ConfigError as json_error:
        if text.lstrip().startswith("{"):
            raise
        try:
            data = _toml(text, source)
        except ConfigError as toml_error:
            raise ConfigError(f"{toml_error} (and not JSON either)") from json_error
    return _spec(data, source)


def _spec(data: Any, src: str) -> SLOSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: the top level must be an object")
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {unknown} (allowed: {list(_TOP_LEVEL_KEYS)})")
    window_s = _parse_window(data["window"], src) if "window" in data else DEFAULT_WINDOW_S
    thresholds = _parse_thresholds(data.get("thresholds", {}), src)
    waivers = _parse_waivers(data.get("waivers", []), src)
    readiness = _parse_readiness(data["readiness"], src) if "readiness" in data else ReadinessLimits()
    alerts = data.get("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError(f"{src}: alerts must be an object of rule name -> overrides")
    return SLOSpec(src, window_s, thresholds, waivers, MappingProxyType(alerts), readiness)


__all__ = ["SLOSpec", "Threshold", "ThresholdResult", "Expression", "Waiver", "load_slo", "load_slo_text",
           "parse_expression",
           "parse_duration", "check_metric", "metric_kind", "metric_value", "OPERATORS", "AGGREGATES",
           "METRIC_AGGREGATES", "SCALAR_METRICS", "STANDARD_LATENCY_STATS", "DEFAULT_WINDOW_S"]
