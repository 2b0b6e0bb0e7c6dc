"""The one place that turns :class:`~engine.config.Settings` into the objects that run jobs.

Every execution path — a forked worker, the legacy sequential rollback
path, the soak's rollback drill — gets its browser lifecycle, retry
profile, step registry, flow runner and :class:`JobExecutor` from here, so
a new setting is wired once and reaches all of them (a test proves it).
The legacy job loop is here too, for ``run --mode legacy`` and the drill.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from coordination.backoff import BackoffProfile
from coordination.telemetry_context import bind
from engine.config import Settings
from engine.execution.executor import Coordination, JobExecutor, JobReport, NoCoordination
from engine.records.batch import Batch
from engine.records.store import ResultsStore
from navigation.credentials import CredentialStore
from navigation.launcher import LaunchSettings
from navigation.legacy import REGISTRY
from navigation.lifecycle import BrowserLifecycle, LifecycleSettings
from navigation.remote import RemoteBrowserLifecycle
from navigation.runner import FlowRunner
from navigation.steps import build_registry
from navigation.steps.builtin import MAX_EXTRACTED_BYTES, ExtractStrategy

# Retries are bounded by each job's own ``retries``; the profile only shapes the delays between them.
RETRY_ATTEMPTS_CAP = 21


def retry_profile(s: Settings) -> BackoffProfile:
    return BackoffProfile(base=s.retry_base, cap=s.retry_cap, max_attempts=RETRY_ATTEMPTS_CAP, jitter=s.retry_jitter)


def lifecycle_settings(s: Settings) -> LifecycleSettings:
    """``[browser] binary``, ``extra_args`` and ``headless`` reach every browser a worker starts (validated in
    :mod:`engine.config`; a binary that is not there fails the launch, naming it)."""
    return LifecycleSettings(launch=LaunchSettings(binary=s.browser_binary or None, extra_args=s.browser_extra_args,
                                                   headless=s.browser_headless),
                             recycle_after_jobs=s.recycle_after_jobs,
                             max_rss_bytes=s.max_browser_rss_mb * 1024 * 1024)


def open_lifecycle(s: Settings, *, cohort: str, seed: int, before_send: Callable[[], None] | None = None,
                   index: int = 0) -> BrowserLifecycle:
    """Worker ``index``'s browser: launched, or with ``[browser] endpoints`` a remote one — endpoint
    ``index % N`` first, the others as its fallbacks (:class:`~navigation.remote.RemoteBrowserLifecycle`)."""
    if s.browser_endpoints:
        return RemoteBrowserLifecycle(s.browser_endpoints, lifecycle_settings(s), home=index, state_dir=s.state_dir,
                                      cohort=cohort, seed=seed, before_send=before_send)
    return BrowserLifecycle(lifecycle_settings(s), cohort=cohort, seed=seed, before_send=before_send)


@dataclass(frozen=True, slots=True)
class ExecutorPlace:
    """Where an executor runs: the run it belongs to and the files it writes."""

    run_id: str
    run_dir: Path
    state_dir: str
    batch: Batch
    seed: int


def build_executor(s: Settings, place: ExecutorPlace, *, store: ResultsStore, lifecycle: BrowserLifecycle,
                   credentials: CredentialStore, coordination: Coordination, worker_name: str,
                   profile_owner: str | None = None) -> JobExecutor:
    """The :class:`JobExecutor` of every path, from the settings."""
    registry = build_registry()
    if s.extract_max_bytes != MAX_EXTRACTED_BYTES:  # [engine] extract_max_bytes: in front of the default one
        registry.register(ExtractStrategy(max_bytes=s.extract_max_bytes), first=True)
    return JobExecutor(
        run_id=place.run_id, run_dir=place.run_dir, state_dir=place.state_dir, batch=place.batch, store=store,
        lifecycle=lifecycle, runner=FlowRunner(registry, resolve_secret=credentials.resolve,
                                               failure_screenshots=bool(s.failure_screenshots)),
        legacy=REGISTRY, credentials=credentials, coordination=coordination, worker_name=worker_name,
        retry_profile=retry_profile(s), seed=place.seed, isolation=s.job_isolation, profile_owner=profile_owner)


@contextlib.contextmanager
def sequential_executor(settings: Settings, run_id: str, run_dir: Path, batch: Batch, seed: int,
                        credentials_path: str | None, store: ResultsStore) -> Iterator[JobExecutor]:
    """The legacy path's executor: this process, one browser, no shared-memory table.

    Shared by ``--mode legacy`` and the soak's rollback drill, so the drill
    switches to exactly the path an operator would roll back to.  Its
    writes are fenced by a generation of their own.
    """
    credentials = CredentialStore.load(credentials_path or None)
    generation = store.begin_generation(run_id, ["legacy"])  # fences off every earlier lifetime of the run
    with open_lifecycle(settings, cohort="legacy", seed=seed) as lifecycle:
        yield build_executor(settings, ExecutorPlace(run_id, run_dir, settings.state_dir, batch, seed),
                             store=store, lifecycle=lifecycle, credentials=credentials,
                             coordination=NoCoordination(generation.epoch_floor), worker_name="legacy")


def run_sequentially(executor: JobExecutor, batch: Batch, next_job: Callable[[], str | None],
                     on_report: Callable[[JobReport, float], None],
                     should_stop: Callable[[], bool] = lambda: False) -> None:
    """The legacy job loop: one job at a time, in this process, until ``next_job`` runs dry or a stop."""
    while not should_stop():
        job_id = next_job()
        if job_id is None:
            return
        t0 = time.monotonic()
        with bind(worker="legacy", session="s0"):
            report = executor.run(batch.job(job_id))
        on_report(report, time.monotonic() - t0)


__all__ = ["RETRY_ATTEMPTS_CAP", "ExecutorPlace", "build_executor", "sequential_executor", "run_sequentially",
           "retry_profile", "lifecycle_settings", "open_lifecycle"]
