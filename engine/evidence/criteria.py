"""The readiness criteria: their names, what each one means, and the default limits.

Why a leaf module (nothing from ``engine`` imported): the names are the
waiver keys of the SLO file, so :mod:`engine.evidence.slo` validates waivers
against :data:`CRITERION_NAMES` while parsing, and :mod:`engine.evidence.readiness`
measures them; neither may depend on the other for that list.

The defaults come from the seed system's burn-in analysis (DESIGN.md,
"Soak, SLOs, readiness"); an SLO file overrides them under ``readiness``::

    {"readiness": {"max_queue_wait": "10m", "max_regression": 0.05, "min_legacy_ratio": 5,
                   "critical_categories": ["cdp", "auth", "persistence"]}}
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from coordination.errors import CATEGORIES


@dataclass(frozen=True, slots=True)
class CriterionDef:
    """One readiness criterion: its waiver key and a one-line description for tables and JSON."""

    name: str
    description: str


CRITERIA: tuple[CriterionDef, ...] = (
    CriterionDef("unowned_use", "no session used by a process that did not own it, no invalid ownership transition"),
    CriterionDef("no_deadlock", "every started job ended, none ran past its timeout, none waited too long queued"),
    CriterionDef("throughput_regression", "parallel throughput within the allowed regression of the baseline run"),
    CriterionDef("p95_budget", "every p(95) latency threshold on a flow or phase holds over the whole run"),
    CriterionDef("critical_failures", "no failure category marked critical has an unresolved job"),
    CriterionDef("rollback_drill", "the switch to the legacy sequential path and back lost and duplicated nothing"),
    CriterionDef("duration", "the soak completed without a halt, within the tolerance of its target duration"),
    CriterionDef("error_rate_last_quarter", "error rate of the jobs that ended in the last quarter of the run"),
    CriterionDef("supervisor_memory", "supervisor memory growth from the first sample after start-up to the peak"),
    CriterionDef("throughput_vs_legacy", "parallel throughput as a multiple of the legacy sequential path"),
    CriterionDef("worker_restarts", "workers the supervisor had to replace during the run"),
    CriterionDef("no_duplicates", "no job got two final outcomes, in the soak or in the rollback drill"),
    CriterionDef("slo_budgets", "every SLO threshold evaluated on the whole run holds"),
)
CRITERION_NAMES: tuple[str, ...] = tuple(c.name for c in CRITERIA)
DESCRIPTIONS: Mapping[str, str] = MappingProxyType({c.name: c.description for c in CRITERIA})


@dataclass(frozen=True, slots=True)
class ReadinessLimits:
    """The limits the criteria are judged against; the SLO file's ``readiness`` section overrides each one.

    ``max_queue_wait_s`` is written ``max_queue_wait`` (a duration) in the
    file; the fractions are fractions, not percentages (0.05 = 5%).
    """

    max_queue_wait_s: float = 600.0
    max_regression: float = 0.05
    max_last_quarter_error_rate: float = 0.05
    max_memory_growth_mb: float = 100.0
    min_legacy_ratio: float = 5.0
    max_worker_restarts: int = 3
    duration_tolerance: float = 0.05
    critical_categories: tuple[str, ...] = CATEGORIES


# The file keys of the ``readiness`` section, in the order the docs list them.
LIMIT_KEYS: tuple[str, ...] = ("max_queue_wait", "max_regression", "max_last_quarter_error_rate",
                               "max_memory_growth_mb", "min_legacy_ratio", "max_worker_restarts",
                               "duration_tolerance", "critical_categories")

__all__ = ["CriterionDef", "CRITERIA", "CRITERION_NAMES", "DESCRIPTIONS", "ReadinessLimits", "LIMIT_KEYS",
           "CATEGORIES"]
