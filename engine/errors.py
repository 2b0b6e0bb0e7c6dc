"""Engine errors.

::

    DroverError (coordination.errors)
    └── EngineError                  persistence
        ├── ConfigError              input        a config file that does not parse or holds bad values
        ├── BatchInputError          input        bad batch lines (names file and line numbers)
        ├── ResultsStoreError        persistence  SQLite results store failures
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


class TelemetryError(EngineError):
    category = "telemetry"


__all__ = ["EngineError", "ConfigError", "BatchInputError", "ResultsStoreError", "TelemetryError"]
