"""Engine errors.

::

    DroverError (coordination.errors)
    └── EngineError                  persistence
        ├── ConfigError              input        a config file that does not parse or holds bad values
        ├── BatchInputError          input        bad batch lines (names file and line numbers)
        ├── ResultsStoreError        persistence  SQLite results store failures
        ├── ReportError              persistence  the evidence package could not be written
        │   └── ReportInputError     input        no readable summary.json in the run directory
        ├── ReadinessError           persistence  the readiness verdict or a baseline could not be written
        │   └── ReadinessInputError  input        an unreadable run directory, summary or baseline
        └── TelemetryError           telemetry    a log sink failed (counted, never fatal to a job)
"""
from __future__ import annotations

from coordination.errors import DroverError


class EngineError(DroverError):
    category = "persistence"


class ConfigError(EngineError):
    category = "input"


class BatchInputError(EngineError):
    category = "input"


class ResultsStoreError(EngineError):
    category = "persistence"


class ReportError(EngineError):
    """The evidence (report.html, drilldown) could not be written."""

    category = "persistence"


class ReportInputError(ReportError):
    """The run directory holds no readable ``summary.json``."""

    category = "input"


class ReadinessError(EngineError):
    """The verdict or the baseline could not be written."""

    category = "persistence"


class ReadinessInputError(ReadinessError):
    """A run directory, summary or baseline that cannot be read or is not what it claims to be."""

    category = "input"


class TelemetryError(EngineError):
    category = "telemetry"


__all__ = ["EngineError", "ConfigError", "BatchInputError", "ResultsStoreError", "ReportError", "ReportInputError",
           "ReadinessError", "ReadinessInputError", "TelemetryError"]
