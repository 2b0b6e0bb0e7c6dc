"""Fixtures for coordination tests, and the guarantee that no test leaves a segment in /dev/shm.

Segment names derive from the directory they belong to, so after each test
every directory under its ``tmp_path`` is mapped to the names it could have
used; any of them still present is unlinked (so one failure does not leak
into the next run) and fails the test.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

import pytest

from coordination import _layout as L
from coordination._segment import SHM_DIR, _unlink_by_name, segment_name


def _candidate_names(root: Path) -> set[str]:
    names = set()
    for dirpath, _dirs, _files in os.walk(root):
        for kind in (L.KIND_OWNERSHIP, L.KIND_CONTENTION):
            names.add(segment_name(dirpath, kind))
    return names


@pytest.fixture(autouse=True)
def no_segment_left(tmp_path: Path):
    yield
    left = sorted(n for n in _candidate_names(tmp_path) if (SHM_DIR / n).exists())
    for name in left:
        _unlink_by_name(name)
    assert not left, f"shared-memory segments left in {SHM_DIR}: {left}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture
def fork_ctx() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("fork")


@pytest.fixture
def coordination_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the four drover streams at INFO and above."""
    caplog.set_level(logging.INFO, logger="drover")
    return caplog
