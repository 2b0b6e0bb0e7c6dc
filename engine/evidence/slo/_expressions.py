"""SLO expressions: the k6-style grammar (``p(95) < 800``), durations, and which metric takes which aggregate."""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from engine.errors import ConfigError

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


def format_number(x: float) -> str:
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
            return f"p{format_number(self.percentile)}"
        return {"med": "p50", "count": "n"}.get(self.aggregate, self.aggregate)

    def __str__(self) -> str:
        if self.text:
            return self.text
        agg = f"p({format_number(self.percentile or 0.0)})" if self.aggregate == "p" else self.aggregate
        return f"{agg} {self.op} {format_number(self.bound)}"


def parse_text(text: str, metric: str | None) -> tuple[Expression | None, str]:
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
    expr, why = parse_text(text, metric)
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


__all__ = ["OPERATORS", "AGGREGATES", "LATENCY_AGGREGATES", "LATENCY_PREFIXES", "METRIC_AGGREGATES",
           "SCALAR_METRICS", "STANDARD_LATENCY_STATS", "parse_duration", "format_number", "Expression",
           "parse_text", "parse_expression", "metric_kind", "check_metric"]
