"""What a run hands to CI and monitoring, each at a path the operator chose (not in the run directory).

* :mod:`~engine.evidence.outputs.junit` — JUnit XML, one testcase per job (``run --junit FILE``);
* :mod:`~engine.evidence.outputs.metrics` — Prometheus / OpenMetrics text (``--metrics FILE``);
* :mod:`~engine.evidence.outputs.k6` — a k6-style JSON summary (``run --summary-export FILE``).

Each is built from the run's evidence (:class:`engine.evidence.run.RunEvidence`: the results store's
figures) and written with the run directory's one atomic write, so a CI step or a scraper reading the
file sees the old one or the new one, never half of one.  :func:`check_writable` is called before the
run starts: a path whose directory does not exist is bad input, refused before any job runs.
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConfigError


def check_writable(path: str, option: str) -> Path:
    """``path``'s directory exists and is writable, and ``path`` is not a directory; else :class:`ConfigError`."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ConfigError(f"{option} {path}: is a directory (give a file name)")
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: the directory {parent} is not writable")
    return p


__all__ = ["check_writable"]
