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
terminal), the run directory's alerts file (:data:`engine.records.rundir.ALERTS`),
and an optional webhook.
The webhook POSTs only to the one http(s) URL the operator configured —
redirects are not followed, nothing else is contacted — with a short
timeout, bounded retries and a circuit breaker, so a dead receiver costs
the soak seconds, not hours; its failures are counted and logged, never
raised into the soak (the URL's path and query, which often hold a token,
never reach the logs).

Layout: ``_rules`` (conditions, rules, defaults, the SLO file's
overrides), ``_sinks`` (stderr, the alerts file, the webhook),
``_manager`` (:class:`AlertManager`), ``_diagnostics`` (the halt's
diagnostic file).  An alert itself is :class:`engine.records.rundir.Alert`,
the record of the alerts file.
"""
from __future__ import annotations

from engine.records.rundir import Alert
from engine.soak.alerts._diagnostics import recent_errors, write_diagnostic
from engine.soak.alerts._manager import AlertManager
from engine.soak.alerts._rules import (DEFAULT_RULES, MESSAGE_FIELDS, RULE_METRICS, SEVERITIES, SLO_BREACH,
                                       SLO_NO_DATA, AlertConfig, AlertRule, Condition, severity_rank)
from engine.soak.alerts._sinks import AlertSink, JsonlSink, StderrSink, WebhookSink, alert_line

__all__ = ["SEVERITIES", "RULE_METRICS", "MESSAGE_FIELDS", "DEFAULT_RULES", "SLO_BREACH", "SLO_NO_DATA",
           "Condition", "AlertRule", "Alert", "AlertConfig", "AlertSink", "StderrSink", "JsonlSink",
           "WebhookSink", "AlertManager", "write_diagnostic", "recent_errors", "severity_rank", "alert_line"]
