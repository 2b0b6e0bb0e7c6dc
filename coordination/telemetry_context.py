"""Correlation context and the names of the four log streams.

Why here: every layer logs, and every record must carry ``run_id``,
``correlation_id``, ``worker`` and ``session``.  The values live in a
:mod:`contextvars` context that any layer can bind; the engine installs the
handlers and a filter that copies the context onto each record.  Library
code only ever does::

    log = stream_logger("audit", __name__)
    log.info("lock acquired", extra={"scope": "site/alice", "epoch": 7})

and never decides where the record goes.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Iterator

STREAMS: tuple[str, ...] = ("operational", "performance", "domain", "audit")
CONTEXT_FIELDS: tuple[str, ...] = ("run_id", "correlation_id", "worker", "session")

_context: contextvars.ContextVar[dict[str, object]] = contextvars.ContextVar(
    "drover_correlation", default={}
)


def stream_logger(stream: str, name: str) -> logging.Logger:
    """The logger for ``name`` inside one of the four streams (``drover.<stream>.<name>``)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown log stream {stream!r}; streams are {STREAMS}")
    return logging.getLogger(f"drover.{stream}.{name}")


def current() -> dict[str, object]:
    """The correlation fields bound right now (a copy)."""
    return dict(_context.get())


@contextlib.contextmanager
def bind(**fields: object) -> Iterator[dict[str, object]]:
    """Bind correlation fields for the duration of a block.

    ``correlation_id`` nests: binding ``step="3"`` style suffixes is done by
    passing the full id; :func:`child_id` builds it.
    """
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def child_id(suffix: str) -> str:
    """Extend the bound correlation id by one link (run -> job -> attempt -> step)."""
    parent = _context.get().get("correlation_id")
    return f"{parent}/{suffix}" if parent else suffix


__all__ = ["STREAMS", "CONTEXT_FIELDS", "stream_logger", "current", "bind", "child_id"]
