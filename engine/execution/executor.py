"""Run one job to its final outcome: attempts, retries, fallback, recording.

Used by both paths: a forked worker (with shared-memory ownership and
credential locks plugged in through :class:`Coordination`) and the legacy
sequential rollback path (with the no-op :class:`NoCoordination`).  The
job logic is the same on both, which is what makes the rollback drill
meaningful.

Ordering invariant: the final outcome is committed to SQLite *inside* the
credential lock and session ownership, so both are released only after
the outcome is durable; it is committed in the same transaction as the
attempt's end, under the attempt's lease (a stale lease is refused by the
store and stops the caller: see :class:`~engine.errors.StaleLease`).
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from coordination.backoff import Backoff, BackoffProfile, cohort_seed
from coordination.errors import DroverError
from coordination.telemetry_context import bind, current, stream_logger
from engine.records.batch import Batch, Job
from engine.errors import StaleLease
from engine.records.store import DuplicateOutcome, Lease, ResultsStore
from navigation.cdp import CDPConnection
from navigation.credentials import CredentialStore
from navigation.errors import NavigationError
from navigation.legacy import LegacyRegistry
from navigation.lifecycle import BrowserLifecycle
from navigation.page import Page, WarmPage
from navigation.runner import FlowResult, FlowRunner

domain = stream_logger("domain", __name__)
perf = stream_logger("performance", __name__)
ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)

RETRYABLE = frozenset({"cdp", "timeout", "navigation", "persistence", "telemetry"})


class Coordination:
    """Hooks the executor calls around an attempt (no-ops here; the worker plugs in the real ones).

    ``session()`` yields the :class:`Lease` every store write of the
    attempt carries.  Here (the legacy path: one process, no table) it is
    the resource ``legacy`` at the epoch of this supervisor lifetime (the
    generation floor the caller got from the store), so even the rollback
    path's writes are fenced against an earlier lifetime of the run.
    """

    def __init__(self, epoch: int = 0, resource: str = "legacy") -> None:
        self.lease = Lease(resource, epoch)

    def credential(self, scope: str | None) -> ContextManager[float]:
        return contextlib.nullcontext(0.0)

    def session(self) -> ContextManager[Lease]:
        return contextlib.nullcontext(self.lease)


NoCoordination = Coordination


@dataclass(slots=True)
class JobReport:
    """What the executor tells its caller about one finished job."""

    job_id: str
    outcome: str
    attempts: int
    category: str | None
    duration_ms: float
    flow: str
    retries: int = 0
    duplicate: bool = False
    steps: list[tuple[str, str, str | None, float]] = field(default_factory=list)  # (key, type, phase, ms)


def profile_dir(state_dir: str, scope: str, worker: str) -> str:
    """The persistent browser profile of one credential scope on one worker (profile isolation).

    Why per worker too: Chromium refuses a profile that another browser
    still has open, and a worker keeps its browser between jobs.  The
    credential lock already makes each credential single-user; its cookies
    and storage never cross into another credential's profile.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", scope.replace("/", "__"))
    return os.path.join(state_dir, "profiles", safe, re.sub(r"[^A-Za-z0-9_.-]", "_", worker))


class JobExecutor:
    def __init__(self, *, run_id: str, run_dir: Path, state_dir: str, batch: Batch, store: ResultsStore,
                 lifecycle: BrowserLifecycle, runner: FlowRunner, legacy: LegacyRegistry,
                 credentials: CredentialStore, coordination: Coordination, worker_name: str,
                 retry_profile: BackoffProfile, seed: int, isolation: str = "context",
                 sleep: Callable[[float], None] = time.sleep, profile_owner: str | None = None) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.state_dir = state_dir
        self.batch = batch
        self.store = store
        self.lifecycle = lifecycle
        self.runner = runner
        self.legacy = legacy
        self.credentials = credentials
        self.coordination = coordination
        self.worker_name = worker_name
        self.retry_profile = retry_profile
        self.seed = cohort_seed(seed, worker_name)
        self.isolation = isolation
        self.sleep = sleep
        # whose credential profiles these are: the worker name, or on a cluster node and worker
        self.profile_owner = profile_owner or worker_name
        self._warm: WarmPage | None = None    # reset isolation: the warm page of the long-lived context
        self._spare: WarmPage | None = None   # context isolation: the first job's context, opened by warm()

    def flow_name(self, job: Job) -> str:
        """A stable name for per-flow figures: the flow's title, or ``legacy:NAME``."""
        if job.legacy is not None:
            return job.flow_key
        flow = self.batch.flows.get(job.flow_key)
        return flow.title if flow is not None else os.path.basename(job.flow_key)

    def run(self, job: Job) -> JobReport:
        started = time.monotonic()
        backoff = Backoff(self.retry_profile, cohort_seed(self.seed, job.id))
        allowed = 1 + job.retries
        retries = 0
        for n in range(allowed):
            attempt = self.store.next_attempt(self.run_id, job.id)
            cid = f"{self.run_id}/{job.id}/a{attempt}"
            with bind(correlation_id=cid, job_id=job.id):
                final_try = n == allowed - 1
                report = self._attempt(job, attempt, final_try, started)
            if report is not None:
                report.retries = retries
                return report
            retries += 1
            delay = backoff.next_delay() or 0.0
            ops.info("job retry scheduled", extra={"event": "retry", "job_id": job.id, "attempt": attempt,
                                                   "delay_s": round(delay, 3), **current()})
            self.sleep(delay)
        raise AssertionError("unreachable: the last attempt always reports")

    # -- one attempt -------------------------------------------------------------

    def _prepare_browser(self, job: Job) -> None:
        """Open the job's profile before taking its credential lock (a restart can take a second).

        Safe without the lock: each profile belongs to one credential on one
        worker, so no other browser can have it open.  Nothing is sent over
        CDP here, so the session guard is not involved either.
        """
        profile = profile_dir(self.state_dir, job.credential, self.profile_owner) if job.credential else None
        try:
            self.lifecycle.ensure_profile(profile)
        except NavigationError as exc:
            ops.warning("browser not ready before the attempt; the attempt will retry it",
                        extra={"event": "prepare_failed", "error": str(exc), **current()})

    def _attempt(self, job: Job, attempt: int, final_try: bool, job_started: float) -> JobReport | None:
        self._prepare_browser(job)
        with self.coordination.credential(job.credential) as lock_wait, self.coordination.session() as lease:
            self.store.start_attempt(self.run_id, job.id, attempt, self.worker_name, lease=lease)
            domain.info("attempt started", extra={"event": "attempt_started", "job_id": job.id, "attempt": attempt,
                                                  "flow": job.flow_key, "epoch": lease.epoch, **current()})
            t0 = time.monotonic()
            conn0 = self.lifecycle.connection
            sent0 = conn0.stats.commands if conn0 is not None else 0
            result = self._run_flow(job, attempt)
            ms = (time.monotonic() - t0) * 1000
            # CDP commands the attempt sent (isolation included); unknown when the connection was replaced
            conn1 = self.lifecycle.connection
            commands = conn1.stats.commands - sent0 if conn1 is not None and conn1 is conn0 else None
            retry = not result.ok and not final_try and (result.error_category or "navigation") in RETRYABLE
            outcome = "passed" if result.ok else ("retry" if retry else "failed")
            total_ms = (time.monotonic() - job_started) * 1000
            duplicate = False
            try:
                # The attempt's end and (unless it retries) the job's final outcome: one transaction.
                self.store.finish_attempt(
                    self.run_id, job.id, attempt, lease, outcome=outcome, final=not retry, worker=self.worker_name,
                    category=result.error_category, error=result.error, duration_ms=ms, job_duration_ms=total_ms,
                    matched=result.matched_selectors,
                    steps=[{"key": s.timing_key, "type": s.type, "phase": s.phase, "ms": round(s.duration_ms, 3),
                            "ok": s.ok, "matched": s.matched_selector} for s in result.steps],
                    artifacts=list(result.artifacts), data=dict(result.data) or None)
            except DuplicateOutcome as exc:
                duplicate = True
                domain.error("duplicate outcome refused", extra={"event": "duplicate_outcome", "job_id": job.id,
                                                                  "error": str(exc), **current()})
            except StaleLease as exc:
                audit.error("stale write refused by the store", extra={
                    "event": "stale_write_refused", "job_id": job.id, "attempt": attempt,
                    "resource": exc.resource, "epoch": exc.epoch, "fence": exc.fence, **current()})
                raise
            perf.info("attempt timing", extra={"event": "attempt_timing", "job_id": job.id, "attempt": attempt,
                                               "flow": result.title, "duration_ms": round(ms, 3),
                                               "lock_wait_ms": round(lock_wait * 1000, 3), "ok": result.ok,
                                               "cdp_commands": commands,
                                               **current()})
            if retry:
                domain.warning("attempt failed, will retry", extra={
                    "event": "attempt_failed", "job_id": job.id, "attempt": attempt,
                    "error_category": result.error_category, "error": result.error, **current()})
                return None
            domain.info("job finished", extra={"event": "job_finished", "job_id": job.id, "outcome": outcome,
                                               "attempts": attempt, "error_category": result.error_category,
                                               "duration_ms": round(total_ms, 3), **current()})
            return JobReport(job.id, outcome, attempt, result.error_category, total_ms, self.flow_name(job),
                             duplicate=duplicate,
                             steps=[(s.timing_key, s.type, s.phase, s.duration_ms) for s in result.steps])

    def _run_flow(self, job: Job, attempt: int) -> FlowResult:
        result = self._run_flow_once(job, attempt)
        if not result.ok and result.error_category == "cdp":
            self._recover(result.error or "cdp failure")
        return result

    def _run_flow_once(self, job: Job, attempt: int) -> FlowResult:
        artifacts = self.run_dir / "artifacts" / job.id / f"a{attempt}"
        variables = dict(job.vars)
        try:
            if job.credential is not None:
                # the credential's own persistent profile: its default context keeps the session
                conn = self.lifecycle.ensure_profile(profile_dir(self.state_dir, job.credential, self.profile_owner))
            else:
                conn = self.lifecycle.ensure_profile(None)
            legacy = job.legacy is not None or job.flow_key not in self.batch.flows
            # a remote browser gives a credential job a context of its own, cookies restored and saved back
            with self._isolated(conn, job.credential is None, legacy) as (context_id, page), \
                    self.lifecycle.credential_context(conn, job.credential) as credential_context:
                context_id = context_id or credential_context
                if job.legacy is not None:
                    return self.legacy.run(job.legacy, conn, artifacts_dir=artifacts, variables=variables,
                                           resolve_secret=self.credentials.resolve, timeout=job.timeout,
                                           browser_context_id=context_id)
                flow = self.batch.flows.get(job.flow_key)
                if flow is None:
                    reason = self.batch.flow_errors.get(job.flow_key, "flow not loaded")
                    domain.warning("recorder flow invalid: using the job's legacy fallback", extra={
                        "event": "fallback", "job_id": job.id, "fallback": job.fallback, "reason": reason,
                        **current()})
                    assert job.fallback is not None  # batch validation guarantees it
                    return self.legacy.run(job.fallback, conn, artifacts_dir=artifacts, variables=variables,
                                           resolve_secret=self.credentials.resolve, timeout=job.timeout,
                                           browser_context_id=context_id)
                return self.runner.run(flow, conn, artifacts_dir=artifacts, variables=variables,
                                       browser_context_id=context_id, page=page)
        except DroverError as exc:
            return FlowResult(job.flow_key, job.flow_key, False, 0.0, (), error=str(exc),
                              error_category=type(exc).category)
        finally:
            self._after_job()

    @contextlib.contextmanager
    def _isolated(self, conn: CDPConnection, anonymous: bool, legacy: bool) -> Iterator[tuple[str | None, Page | None]]:
        """The job's browser context and, when one is ready, its page (``None``: the runner opens one).

        ``context``: a fresh context per anonymous job (the one :meth:`warm` opened ahead, if any).
        ``reset``: the warm page of a long-lived context, reset after the job to a fresh context's
        state (:class:`~navigation.page.WarmPage`); what it cannot reset, or a legacy flow (whose
        pages it does not see), costs a fresh context instead.  ``page`` and credential jobs: none.
        """
        if not anonymous or self.isolation == "page":
            yield None, None
            return
        if self.isolation == "reset" and not legacy:
            warm = self._warm_page(conn)
            try:
                yield warm.context_id, warm.page
            finally:
                self._reset(warm)
            return
        fresh, self._spare = self._spare, None
        if fresh is None or fresh.connection is not conn:
            fresh = WarmPage.open(conn)  # the context and its page: disposing it closes all its pages at once
        try:
            yield fresh.context_id, (None if legacy else fresh.page)
        finally:
            if not conn.closed:
                fresh.dispose()
                self._drop_events(conn, fresh.page)

    def _drop_events(self, conn: CDPConnection, main: Page) -> None:
        """Events of a disposed context's sessions can never be read; on a connection that serves job after
        job they would only fill its buffer."""
        pages = self.runner.last_pages
        popups = pages.popups() if pages is not None and pages.main is main else []
        for page in (main, *popups):
            conn.pop_events(session_id=page.session.session_id)

    def warm(self) -> None:
        """Warm start: the browser and the first job's context and page, before the first job is asked for.

        Under the session lease like any attempt (every CDP command passes the ownership guard); a
        failure is logged and left to the first attempt, which starts the browser as it always did.
        """
        try:
            with self.coordination.session():
                conn = self.lifecycle.ensure_profile(None)
                if self.isolation == "reset":
                    self._warm_page(conn)
                elif self.isolation == "context":
                    self._spare = WarmPage.open(conn)
        except NavigationError as exc:
            ops.warning("warm start failed; the first job starts the browser", extra={
                "event": "warm_start_failed", "error": str(exc), **current()})

    def cool(self) -> None:
        """Give back what :meth:`warm` and ``reset`` isolation keep open between jobs (a context and its page,
        a renderer in Chromium): the session is parked and may not run a job for a while."""
        kept = [w for w in (self._warm, self._spare) if w is not None and not w.connection.closed]
        self._warm = self._spare = None
        if not kept:
            return
        with self.coordination.session():  # CDP commands pass the ownership guard, as in any attempt
            for warm in kept:
                self._dispose(warm)

    def _warm_page(self, conn: CDPConnection) -> WarmPage:
        warm = self._warm
        if warm is None or warm.connection is not conn or conn.closed:
            warm = self._warm = WarmPage.open(conn)
        return warm

    def _reset(self, warm: WarmPage) -> None:
        if warm.connection.closed:
            self._warm = None
            return
        try:
            why = warm.reset(self.runner.last_pages if self.runner.last_pages is not None
                             and self.runner.last_pages.main is warm.page else None)
        except NavigationError as exc:
            why = f"reset failed: {exc}"
        if why is None:
            return
        ops.info("warm page replaced by a fresh context", extra={"event": "isolation_fallback", "reason": why,
                                                                 **current()})
        self._warm = None
        self._dispose(warm)

    @staticmethod
    def _dispose(warm: WarmPage) -> None:
        try:
            warm.dispose()
        except NavigationError as exc:
            ops.warning("browser context not disposed", extra={"event": "dispose_failed", "error": str(exc),
                                                               **current()})

    def _recover(self, reason: str) -> None:
        try:
            self.lifecycle.reconnect(reason)
        except NavigationError as exc:
            ops.error("browser recovery failed; the next attempt will try again",
                      extra={"event": "recover_failed", "error": str(exc), **current()})

    def _after_job(self) -> None:
        try:
            self.lifecycle.job_finished()
        except NavigationError as exc:
            ops.error("browser recycle failed", extra={"event": "recycle_failed", "error": str(exc), **current()})


__all__ = ["Coordination", "NoCoordination", "JobExecutor", "JobReport", "RETRYABLE", "profile_dir"]
