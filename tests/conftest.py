"""Suite-wide fixtures: one real Chromium per session, the fixture site, and a leak check.

Every temporary profile and every browser the suite starts lives under a
private TMPDIR created here; when the session ends, the suite fails if any
process still references that directory or any ``drover-profile-*``,
``drover-tmp-*`` or ``org.chromium.Chromium.*`` (Chromium's own singleton
folder) is left in it.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

import psutil
import pytest
from hypothesis import HealthCheck, settings

# Property tests run on a shared 2-core machine next to real browsers: time limits there measure the
# machine's load, not the code, so they are off (each test's example count still bounds its time).
settings.register_profile("drover", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("drover")

_SUITE_TMP = tempfile.mkdtemp(prefix="drover-suite-")
os.environ["TMPDIR"] = _SUITE_TMP
tempfile.tempdir = None  # re-read TMPDIR

from navigation.launcher import PROFILE_PREFIX, TMP_PREFIX, BrowserProcess, launch  # noqa: E402

_LEFTOVER_PREFIXES = (PROFILE_PREFIX, TMP_PREFIX, "org.chromium.Chromium.")


def _leftover_processes() -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(_SUITE_TMP in part for part in cmdline):
            found.append(f"pid {proc.info['pid']} {proc.info['name']}")
    return found


def _leftover_profiles() -> list[str]:
    out = []
    for root, dirs, _files in os.walk(_SUITE_TMP):
        for d in dirs:
            if d.startswith(_LEFTOVER_PREFIXES):
                out.append(os.path.join(root, d))
    return out


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_end():
    """Torn down last: fails the run if a browser process or a browser's temporary folder outlived its test."""
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_leftover_processes() or _leftover_profiles()):
        time.sleep(0.2)
    procs, profiles = _leftover_processes(), _leftover_profiles()
    if not procs and not profiles:
        shutil.rmtree(_SUITE_TMP, ignore_errors=True)
    assert not procs, f"browser processes left after the suite: {procs}"
    assert not profiles, f"temporary profiles or browser temp folders left after the suite: {profiles}"


@pytest.fixture(autouse=True)
def drover_loggers_reset():
    """Each test starts with the drover stream loggers as logging made them (no sinks, propagating),
    whatever an earlier test installed in-process: caplog-based tests must not depend on order."""
    yield
    from coordination.telemetry_context import STREAMS

    for stream in STREAMS:
        logger = logging.getLogger(f"drover.{stream}")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def browser() -> BrowserProcess:
    """One real Chromium for tests that do not disturb it."""
    proc = launch()
    yield proc
    proc.close()


@pytest.fixture(scope="session")
def site():
    from navigation.fixture_site import FixtureSite

    with FixtureSite() as s:
        yield s
