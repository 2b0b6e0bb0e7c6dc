"""The diagnostic file a critical alert leaves behind, and the recent errors it quotes from the streams."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import orjson

from coordination.telemetry_context import STREAMS, stream_logger
from engine.errors import EngineError
from engine.records import rundir
from engine.records.rundir import Diagnostic

ops = stream_logger("operational", "engine.soak.alerts")


def recent_errors(run_dir: str | os.PathLike[str], limit: int = 20,
                  tail_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """The last ``limit`` WARNING/ERROR records across the run's four streams, oldest first.

    Reads only the tail of each file, so a diagnostic after 24 hours is as
    cheap as after one minute.
    """
    found: list[dict[str, Any]] = []
    for stream in STREAMS:
        path = rundir.stream_path(run_dir, stream)
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
    """Write a diagnostic file in ``run_dir`` (named by the UTC time, never over an earlier one) and return its path.

    ``context`` is copied in as is (the halting alert, last windows, ...);
    ``recent_errors`` is read from the run's streams when not given.  A
    diagnostic that cannot be written is an :class:`EngineError` — the
    soak is stopping because something is wrong, the operator must hear it.
    """
    context = dict(context)
    if "recent_errors" not in context:
        context["recent_errors"] = recent_errors(run_dir)
    try:
        path = rundir.write_diagnostic(run_dir, Diagnostic(time.time(), reason, context))
    except OSError as exc:
        ops.error("diagnostic not written", extra={"event": "diagnostic_failed", "run_dir": str(run_dir),
                                                   "error": str(exc)})
        raise EngineError(f"cannot write diagnostic in {run_dir}: {exc.strerror or exc}") from exc
    ops.error("diagnostic written", extra={"event": "diagnostic", "path": str(path), "reason": reason})
    return path


__all__ = ["recent_errors", "write_diagnostic"]
