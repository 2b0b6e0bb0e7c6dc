"""The four JSON log streams of a run, and ``trace`` over them.

``operational``, ``performance``, ``domain`` and ``audit`` each go to
``<run_dir>/<stream>.jsonl`` (:func:`engine.records.rundir.stream_path`), one JSON object per line, written by
python-json-logger (orjson backend).  Every record carries ``ts``,
``stream``, ``run_id``, ``correlation_id``, ``worker`` and ``session``
(from the bound correlation context when the caller did not pass them).

Why one ``os.write`` on an ``O_APPEND`` descriptor per record: the
supervisor and every forked worker append to the same files; on Linux an
appending write of one record lands whole, so the streams interleave by
record, never inside one.

Telemetry never blocks or fails a job: a write that fails (disk full, a
broken sink) is counted per stream in :attr:`StreamSink.lost` and the job
goes on.  The counts are reported in the run summary under the
``telemetry`` category.
"""
from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter

from coordination.telemetry_context import CONTEXT_FIELDS, STREAMS, current
from engine.records import rundir

_RESERVED = ("message", "ts", "level", "stream", "logger")
# The fields every record carries (``taskName``: what Python 3.12+ adds to each record); the rest are the
# record's own, which ``trace`` and the report's drilldown show as ``key=value``.
STANDARD_FIELDS: frozenset[str] = frozenset(_RESERVED + CONTEXT_FIELDS + ("taskName",))


class _ContextFilter(logging.Filter):
    """Copies the bound correlation context onto records that do not carry it already."""

    def __init__(self, stream: str) -> None:
        super().__init__()
        self.stream = stream

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ctx.get(name))
        record.stream = self.stream
        record.ts = record.created
        return True


class StreamSink(logging.Handler):
    """Appends one JSON line per record; failures are counted, never raised into the caller."""

    def __init__(self, path: str, stream: str) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.stream = stream
        self.lost = 0
        self.last_error: str | None = None
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            # A sink that cannot even be opened loses every record (counted in emit); the run goes on.
            self.last_error = f"cannot open {path}: {errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
        self.setFormatter(OrjsonFormatter(
            "%(ts)s %(levelname)s %(stream)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"}))
        self.addFilter(_ContextFilter(stream))

    def emit(self, record: logging.LogRecord) -> None:
        if self._fd is None:
            self.lost += 1
            return
        try:
            data = (self.format(record) + "\n").encode()
            written = os.write(self._fd, data)
            if written < len(data):
                # The disk filled (or a size limit hit) mid-record: what landed is a torn line.
                self.lost += 1
                self.last_error = f"short write: {written} of {len(data)} bytes"
        except OSError as exc:
            # Disk full, I/O error, a sink that went away: count it and let the job go on.
            self.lost += 1
            self.last_error = f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
        except (TypeError, ValueError) as exc:
            # A record whose extra fields cannot be serialised: also a loss, not a crash.
            self.lost += 1
            self.last_error = f"unserialisable record: {exc}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()


@dataclass(slots=True)
class Telemetry:
    """The installed sinks of this process; :meth:`lost` reads their loss counters."""

    run_dir: Path
    sinks: dict[str, StreamSink] = field(default_factory=dict)
    previous: dict[str, tuple[int, bool]] = field(default_factory=dict)  # stream -> (level, propagate)

    def lost(self) -> dict[str, int]:
        return {name: sink.lost for name, sink in self.sinks.items()}

    def close(self) -> None:
        """Detach the sinks and give the loggers back the level and propagation they had."""
        for stream, sink in self.sinks.items():
            logger = logging.getLogger(f"drover.{stream}")
            logger.removeHandler(sink)
            sink.close()
            if stream in self.previous:
                logger.setLevel(self.previous[stream][0])
                logger.propagate = self.previous[stream][1]
        self.sinks.clear()
        self.previous.clear()


def install(run_dir: str | os.PathLike[str], *, overrides: dict[str, str] | None = None) -> Telemetry:
    """Attach the four stream sinks (``overrides`` maps a stream to another path, e.g. for drills)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    telemetry = Telemetry(run_dir)
    for stream in STREAMS:
        path = (overrides or {}).get(stream) or os.environ.get(f"DROVER_LOG_{stream.upper()}") \
            or str(rundir.stream_path(run_dir, stream))
        sink = StreamSink(path, stream)
        logger = logging.getLogger(f"drover.{stream}")
        telemetry.previous[stream] = (logger.level, logger.propagate)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for old in [h for h in logger.handlers if isinstance(h, StreamSink)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(sink)
        telemetry.sinks[stream] = sink
    return telemetry


def _local_sinks() -> dict[str, StreamSink]:
    out = {}
    for stream in STREAMS:
        for h in logging.getLogger(f"drover.{stream}").handlers:
            if isinstance(h, StreamSink):
                out[stream] = h
    return out


def local_losses() -> dict[str, int]:
    """Records this process failed to write, per stream (a forked worker reports these)."""
    return {stream: sink.lost for stream, sink in _local_sinks().items()}


def reset_local_losses() -> None:
    """Start counting from zero (a forked child inherits its parent's counts)."""
    for sink in _local_sinks().values():
        sink.lost = 0


def read_stream(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of one stream file; a torn or garbled line is reported as such, not skipped silently."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield {"ts": 0.0, "stream": Path(path).stem, "level": "ERROR",
                       "message": f"unreadable record at {path}:{number}"}
                continue
            if isinstance(rec, dict):
                yield rec


def trace(run_dir: str | os.PathLike[str], ident: str, streams: Iterable[str] = STREAMS) -> list[dict[str, Any]]:
    """Every record whose run id, correlation id (prefix) or job matches ``ident``, time-ordered."""
    run_dir = Path(run_dir)
    out = []
    for stream in streams:
        path = rundir.stream_path(run_dir, stream)
        if not path.exists():
            continue
        for rec in read_stream(path):
            cid = str(rec.get("correlation_id") or "")
            if rec.get("run_id") == ident or cid == ident or cid.startswith(ident + "/") \
                    or f"/{ident}/" in f"/{cid}/" or rec.get("job_id") == ident:
                out.append(rec)
    out.sort(key=lambda r: (float(r.get("ts") or 0.0), str(r.get("stream"))))
    return out


__all__ = ["StreamSink", "Telemetry", "install", "read_stream", "trace", "local_losses", "reset_local_losses",
           "STANDARD_FIELDS"]
