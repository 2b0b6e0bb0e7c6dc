"""Run one validated flow on one browser and say exactly what happened, step by step.

The runner knows no step type: it asks the strategy registry who runs each
step, times it, asserts its ``assertedEvents``, and on failure writes a
screenshot and the page's DOM into the job's artifact folder and names
them in the error.  Secrets used by the flow are masked in every string
the runner produces (errors, DOM snapshots, results) by the credential
store's :class:`~navigation.credentials.Redactor`, and hidden on the page
itself while the failure screenshot is taken (:mod:`navigation.redaction`).
A page that draws secrets on a canvas cannot be masked: for such flows,
``FlowRunner(failure_screenshots=False)`` writes only the DOM snapshot.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from coordination.telemetry_context import current, stream_logger
from navigation.cdp import CDPConnection
from navigation.credentials import MASK, Redactor
from navigation.errors import (
    AssertionFailed, CDPConnectionLost, CDPTimeout, CredentialError, FlowValidationError, NavigationError,
    StepError,
)
from navigation.flow.records import Flow, SecretRef, Step
from navigation.page import NavigationWatch, Page, Pages
from navigation.redaction import capture_png
from navigation.steps.builtin import default_registry
from navigation.steps.registry import StepContext, StepOutcome, StrategyRegistry, substitute

perf_log = stream_logger("performance", __name__)
_MAX_WARNED = 10_000  # distinct (flow, step) warnings one runner remembers
domain_log = stream_logger("domain", __name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    index: int
    type: str
    phase: str | None
    timing_key: str
    duration_ms: float
    ok: bool
    matched_index: int | None = None
    matched_selector: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FlowResult:
    source: str
    title: str
    ok: bool
    duration_ms: float
    steps: tuple[StepResult, ...]
    error: str | None = None
    error_category: str | None = None
    failed_step: int | None = None
    artifacts: tuple[str, ...] = ()
    # What the flow's ``extract`` steps kept (name -> JSON value), masked with every secret the flow used.
    data: Mapping[str, object] = field(default_factory=dict)

    @property
    def phase_ms(self) -> dict[str, float]:
        """Total time per ``phase`` label (steps without a label are not counted here)."""
        out: dict[str, float] = {}
        for s in self.steps:
            if s.phase is not None:
                out[s.phase] = out.get(s.phase, 0.0) + s.duration_ms
        return out

    @property
    def matched_selectors(self) -> dict[str, str]:
        return {s.timing_key: s.matched_selector for s in self.steps if s.matched_selector is not None}


def _no_secrets(ref: SecretRef) -> str:
    raise CredentialError(f"flow asks for secret {ref.name!r} but no credential store was given")


@dataclass(slots=True)
class Masker:
    """The secret values one run has used so far, masked by the credential store's :class:`Redactor`.

    Why not the store's own redactor: a run masks what it *used* (resolved
    secrets, in every form the redactor knows), which is also what the
    screenshot redaction hides on the page (``forms``).
    """

    values: set[str] = field(default_factory=set, repr=False)
    _redactor: Redactor | None = field(default=None, repr=False)

    def add(self, value: str) -> None:
        if value and value not in self.values:
            self.values.add(value)
            self._redactor = None

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(self.values)
        return self._redactor

    def forms(self) -> tuple[str, ...]:
        """Every form of every used value, longest first (for masking on the page)."""
        return self.redactor.forms

    def __call__(self, text: str) -> str:
        return self.redactor.mask(text)


class FlowRunner:
    """Runs flows with a strategy registry; one instance can serve many jobs in sequence."""

    def __init__(self, registry: StrategyRegistry | None = None, *,
                 resolve_secret: Callable[[SecretRef], str] = _no_secrets,
                 on_step: Callable[[StepResult], None] | None = None,
                 failure_screenshots: bool = True, strict: bool | None = None) -> None:
        """``failure_screenshots=False``: a failed step writes only its (masked) DOM snapshot, no PNG —
        for flows that draw secrets on a canvas, where no redaction can reach them.
        ``strict``: a ``customStep`` with no handler is rejected instead of skipped (default: the
        registry's setting)."""
        self.registry = registry or default_registry()
        self.resolve_secret = resolve_secret
        self.on_step = on_step
        self.failure_screenshots = failure_screenshots
        self.strict = self.registry.strict if strict is None else strict
        self._warned: set[tuple[str, int]] = set()
        self.last_pages: Pages | None = None  # the pages of the last run (its caller resets a page it owns)

    def check(self, flow: Flow) -> None:
        """Refuse a flow with a step nobody can run, before touching the browser.

        A ``customStep`` with no handler is a no-op, as in the reference
        replayer: one warning names it (once per flow step and runner),
        unless ``strict``, where it is a problem like any other.
        """
        problems = self.registry.problems(flow, strict=self.strict)
        if problems:
            raise FlowValidationError(flow.source, problems)
        for step in self.registry.unhandled_custom(flow):
            key = (flow.source, step.index)
            if key in self._warned or len(self._warned) >= _MAX_WARNED:
                continue
            self._warned.add(key)
            domain_log.warning("%s: customStep skipped: %s", flow.source, self.registry.custom_step_notice(step), extra={
                "event": "custom_step_skipped", "flow_source": flow.source, "step": step.timing_key,
                "custom_step": step.name, "detail": f"{flow.source}: {self.registry.custom_step_notice(step)}",
                **current()})

    def run(self, flow: Flow, connection: CDPConnection, *, artifacts_dir: str | Path,
            variables: Mapping[str, str] | None = None, browser_context_id: str | None = None,
            page: Page | None = None) -> FlowResult:
        """Run ``flow`` on a new page, or on ``page`` when the caller owns one (a warm page of ``reset``
        isolation, or a page opened ahead of the job): then the caller, not the run, closes or resets
        the run's pages (:attr:`last_pages`)."""
        self.check(flow)
        artifacts = Path(artifacts_dir)
        masker = Masker()
        started = time.monotonic()
        results: list[StepResult] = []
        pages = (Pages.open(connection, browser_context_id=browser_context_id) if page is None
                 else Pages.around(page, browser_context_id=browser_context_id))
        self.last_pages = pages
        failure: tuple[Step, NavigationError] | None = None
        extracted: dict[str, object] = {}
        try:
            for step in flow.steps:
                t0 = time.monotonic()
                outcome: StepOutcome | None = None
                try:
                    outcome = self._run_step(step, flow, pages, artifacts, variables or {}, masker, extracted)
                except NavigationError as exc:
                    failure = (step, exc)
                result = self._step_result(step, flow, outcome, (time.monotonic() - t0) * 1000,
                                           failure, masker)
                results.append(result)
                if self.on_step is not None:
                    self.on_step(result)
                if failure is not None:
                    break
            written: tuple[str, ...] = ()
            if failure is not None and not isinstance(failure[1], CDPConnectionLost):
                written = self._failure_artifacts(pages, failure[0], artifacts, masker, self.failure_screenshots)
        finally:
            if page is None and not connection.closed:
                pages.close_all(settle_cookies=failure is None)
        duration = (time.monotonic() - started) * 1000
        data = masker.redactor.mask_data(extracted) if extracted else {}
        if failure is None:
            return FlowResult(flow.source, flow.title, True, duration, tuple(results), data=data)
        step, exc = failure
        message = masker(str(exc))
        if getattr(exc, "index", None) is None:
            message = f"step {step.index} ({step.type}): {message}"
        if written:
            message += f" [artifacts: {', '.join(written)}]"
        domain_log.warning("%s: step failed", flow.source, extra={
            "event": "step_failed", "step": step.timing_key, "error_category": type(exc).category,
            "error": message, "flow": flow.title, "flow_source": flow.source, **current()})
        return FlowResult(flow.source, flow.title, False, duration, tuple(results), error=message,
                          error_category=type(exc).category, failed_step=step.index, artifacts=written, data=data)

    # -- internals -----------------------------------------------------------

    def _run_step(self, step: Step, flow: Flow, pages: Pages, artifacts: Path,
                  variables: Mapping[str, str], masker: Masker, extracted: dict[str, object]) -> StepOutcome:
        strategy = self.registry.strategy_for(step)
        if strategy is None:  # check() ran, but a registry may have changed since
            raise StepError("no step strategy handles this step", index=step.index, step_type=step.type)
        deadline = time.monotonic() + step.timeout / 1000
        page = pages.get(substitute(step.target, variables), step.timeout / 1000)
        ctx = StepContext(pages=pages, page=page, artifacts_dir=artifacts, variables=variables,
                          resolve_secret=self.resolve_secret, remember_secret=masker.add, deadline=deadline,
                          secret_forms=masker.forms, extracted=extracted)
        navigation_asserted = [e for e in step.asserted_events if e.type == "navigation"]
        watch = NavigationWatch(page, step.frame) if navigation_asserted else None
        outcome = strategy.run(step, ctx)
        if watch is not None:
            where = f" in frame [{','.join(map(str, step.frame))}]" if step.frame else ""
            try:
                href, title = watch.wait(max(0.05, ctx.remaining_ms / 1000),
                                         started=outcome.navigated and not step.frame)
            except CDPTimeout as exc:
                raise AssertionFailed(f"expected a navigation{where}, none happened in time") from exc
            for event in navigation_asserted:
                if event.url is not None and href != ctx.text(event.url):
                    raise AssertionFailed(f"navigated{where} to {href!r}, expected {ctx.text(event.url)!r}")
                if event.title is not None and title != event.title:
                    raise AssertionFailed(f"page title{where} is {title!r}, expected {event.title!r}")
        return outcome

    @staticmethod
    def _step_result(step: Step, flow: Flow, outcome: StepOutcome | None, duration_ms: float,
                     failure: tuple[Step, NavigationError] | None, masker: Masker) -> StepResult:
        matched_index = outcome.matched_index if outcome is not None else None
        matched = None
        if matched_index is not None:
            alts = getattr(step, "selectors", ())
            matched = next((a.text for a in alts if a.index == matched_index), None)
        error = masker(str(failure[1])) if failure is not None and failure[0] is step else None
        perf_log.info("step timing", extra={
            "event": "step_timing", "step": step.timing_key, "phase": step.phase, "flow": flow.title,
            "duration_ms": round(duration_ms, 3), "ok": error is None, **current()})
        return StepResult(step.index, step.type, step.phase, step.timing_key, duration_ms, error is None,
                          matched_index, matched, error)

    @staticmethod
    def _failure_artifacts(pages: Pages, step: Step, artifacts: Path, masker: Masker,
                           screenshot: bool) -> tuple[str, ...]:
        """Screenshot (secrets hidden) and DOM (secrets masked) of the step's page; best effort, never
        hides the step's error.  A refused or failed screenshot does not cost the DOM snapshot."""
        written: list[str] = []
        artifacts.mkdir(parents=True, exist_ok=True)
        base = artifacts / f"step-{step.index:02d}-{step.type}-failure"
        try:
            page = pages.get(step.target, 1.0)
        except NavigationError as exc:
            domain_log.warning("failure artifacts incomplete", extra={
                "event": "artifacts_failed", "step": step.timing_key, "error": masker(str(exc)), **current()})
            return ()
        if screenshot:
            try:
                base.with_suffix(".png").write_bytes(capture_png(page, masker.forms(), timeout=10))
                written.append(str(base.with_suffix(".png")))
            except (NavigationError, OSError) as exc:
                domain_log.warning("failure screenshot not written", extra={
                    "event": "artifacts_failed", "step": step.timing_key, "error": masker(str(exc)),
                    **current()})
        try:
            dom = page.evaluate("document.documentElement.outerHTML", await_promise=False, timeout=10)
            base.with_suffix(".html").write_text(masker(str(dom)), encoding="utf-8")
            written.append(str(base.with_suffix(".html")))
        except (NavigationError, OSError) as exc:
            domain_log.warning("failure artifacts incomplete", extra={
                "event": "artifacts_failed", "step": step.timing_key, "error": masker(str(exc)), **current()})
        return tuple(written)


__all__ = ["FlowRunner", "FlowResult", "StepResult", "Masker", "MASK"]
