"""Drover's batch engine: run batches of Recorder flows on many browsers, record and judge the results.

The few names a program embedding Drover needs (the CLI, ``python -m
engine``, is built from the same ones)::

    from engine import Settings, RunRequest, prepare, execute, ResultsStore

    req = RunRequest("batch.jsonl", Settings(workers=4, state_dir="drover-state"))
    summary = execute(req, prepare(req))       # a RunSummary
    with ResultsStore(summary_store_path) as store:
        rows = store.export_rows(summary.run_id)

Imported lazily (PEP 562), so ``import engine`` stays cheap for the CLI.
The layout by concern is described in ARCHITECTURE.md.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Settings": "engine.config",
    "load_settings": "engine.config",
    "RunRequest": "engine.execution.runs",
    "PreparedRun": "engine.execution.runs",
    "prepare": "engine.execution.runs",
    "execute": "engine.execution.runs",
    "RunSummary": "engine.execution.summary",
    "ResultsStore": "engine.records.store",
    "load_batch": "engine.records.batch",
    "EngineError": "engine.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
