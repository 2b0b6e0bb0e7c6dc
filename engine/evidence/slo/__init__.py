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

Layout: ``_expressions`` is the grammar (expressions, durations, which
metric takes which aggregate), ``_evaluate`` judges thresholds on a
window (:class:`SLOSpec`, :class:`ThresholdResult`), ``_file`` reads and
validates the file.
"""
from __future__ import annotations

from engine.evidence.slo._evaluate import DEFAULT_WINDOW_S, SLOSpec, Threshold, ThresholdResult, Waiver, metric_value
from engine.evidence.slo._expressions import (AGGREGATES, METRIC_AGGREGATES, OPERATORS, SCALAR_METRICS,
                                              STANDARD_LATENCY_STATS, Expression, check_metric, metric_kind,
                                              parse_duration, parse_expression)
from engine.evidence.slo._file import load_slo, load_slo_text

__all__ = ["SLOSpec", "Threshold", "ThresholdResult", "Expression", "Waiver", "load_slo", "load_slo_text",
           "parse_expression", "parse_duration", "check_metric", "metric_kind", "metric_value", "OPERATORS",
           "AGGREGATES", "METRIC_AGGREGATES", "SCALAR_METRICS", "STANDARD_LATENCY_STATS", "DEFAULT_WINDOW_S"]
