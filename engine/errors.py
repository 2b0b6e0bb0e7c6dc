"""Engine errors.

::

    DroverError (coordination.errors)
    └── EngineError                  persistence
        ├── ConfigError              input        a config file that does not parse or holds bad values
        ├── BatchInputError          input        bad batch lines (names file and line numbers)
        ├── ResultsStoreError        persistence  SQLite results store failures
        │   └── StaleLease           persistence  a write with an epoch below its fence (refused, counted)
        ├── StateBusy                input        another run or soak holds the state directory
        ├── RunDirError              input        a run-directory file unreadable, not JSON, or a wrong value (also a ValueError)
        ├── ReportError              persistence  the evidence package could not be written
        │   └── ReportInputError     input        no readable soak summary in the run directory
        ├── ReadinessError           persistence  the readiness verdict or a baseline could not be written
        │   └── ReadinessInputError  input        an unreadable run directory, summary or baseline
        ├── TelemetryError           telemetry    a log sink failed (counted, never fatal to a job)
        └── WorkerWrittenOff         cdp          a Ray actor refused a queued job: an earlier one raised
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


class StaleLease(ResultsStoreError):
    """A write whose lease epoch is below the fence of its resource: its writer was written off.

    The fencing token check of the results store: a worker that outlived
    its supervisor (or whose slot was reclaimed) can no longer record
    anything.  Keeps its facts as attributes; it survives pickling through
    :meth:`DroverError.__reduce__`, like every Drover error.
    """

    def __init__(self, *, job_id: str, attempt: int, resource: str, epoch: int, fence: int | None,
                 write: str, reason: str = "epoch below fence") -> None:
        self.job_id, self.attempt, self.resource = job_id, attempt, resource
        self.epoch, self.fence, self.write, self.reason = epoch, fence, write, reason
        super().__init__(f"stale {write} of {job_id!r} attempt {attempt} refused: {reason} "
                         f"({resource} epoch {epoch}, fence {fence})")


class StateBusy(EngineError):
    """Another run or soak holds the state directory's lock."""

    category = "input"


class RunDirError(EngineError, ValueError):
    """A run-directory file that cannot be read, is not JSON, or holds a value of the wrong type.

    ``path`` is the file (or the directory), ``field`` the place in it in
    dotted form (``windows[3].jobs.passed``, ``line 7``; empty for the whole
    file), ``problem`` what is wrong there.  A ``ValueError`` too: bad input.
    """

    category = "input"

    def __init__(self, path: str, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")
        self.path = path
        self.field = field
        self.problem = problem


class ReportError(EngineError):
    """The evidence (the report page, the drilldown) could not be written."""

    category = "persistence"


class ReportInputError(ReportError):
    """The run directory holds no readable soak summary."""

    category = "input"


class ReadinessError(EngineError):
    """The verdict or the baseline could not be written."""

    category = "persistence"


class ReadinessInputError(ReadinessError):
    """A run directory, summary or baseline that cannot be read or is not what it claims to be."""

    category = "input"


class TelemetryError(EngineError):
    category = "telemetry"


class ClusterUnavailable(EngineError):
    """Ray is not installed, or the cluster at the given address cannot be joined."""

    category = "input"


class WorkerWrittenOff(EngineError):
    """A cluster worker whose job raised refuses the jobs queued behind it (the driver re-queues them)."""

    category = "cdp"


__all__ = ["EngineError", "ConfigError", "BatchInputError", "ResultsStoreError", "StaleLease", "StateBusy", "RunDirError",
           "ReportError", "ReportInputError",
           "ReadinessError", "ReadinessInputError", "TelemetryError", "ClusterUnavailable",
           "WorkerWrittenOff"]
