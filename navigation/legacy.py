"""Legacy flows: hand-written Python flows registered by name.

Why they exist: the system Drover replaces ran hand-written flows, and some
sites still need one (or a recorder flow is broken and a job names a
legacy fallback explicitly).  A legacy flow is a function that receives a
:class:`LegacyContext` and raises on failure; the runner wraps its run in
the same :class:`~navigation.runner.FlowResult` as a recorder flow, so
results, timings and the failure artifacts look the same.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import orjson

from navigation.cdp import CDPConnection
from navigation.errors import AssertionFailed, FlowError, NavigationError
from navigation.flow.records import SecretRef
from navigation.page import Page, Pages
from navigation.runner import FlowResult, StepResult, Masker


class UnknownLegacyFlow(FlowError):
    """A job names a legacy flow that is not registered."""


@dataclass(slots=True)
class LegacyContext:
    page: Page
    pages: Pages
    variables: Mapping[str, str]
    resolve_secret: Callable[[SecretRef], str]
    artifacts_dir: Path
    timeout: float

    def navigate(self, url: str) -> None:
        self.page.session.pop_events("Page.loadEventFired")
        self.page.send("Page.navigate", {"url": url})
        self.page.wait_for_load(self.timeout)


LegacyFlow = Callable[[LegacyContext], None]


class LegacyRegistry:
    def __init__(self) -> None:
        self._flows: dict[str, LegacyFlow] = {}

    def register(self, name: str, fn: LegacyFlow | None = None) -> Callable[[LegacyFlow], LegacyFlow] | LegacyFlow:
        """Register ``fn`` as ``name`` (usable as a decorator)."""
        def deco(f: LegacyFlow) -> LegacyFlow:
            if name in self._flows:
                raise ValueError(f"legacy flow {name!r} is already registered")
            self._flows[name] = f
            return f
        return deco(fn) if fn is not None else deco

    def names(self) -> list[str]:
        return sorted(self._flows)

    def get(self, name: str) -> LegacyFlow:
        try:
            return self._flows[name]
        except KeyError:
            raise UnknownLegacyFlow(f"no legacy flow named {name!r} (registered: {', '.join(self.names()) or 'none'})") \
                from None

    def run(self, name: str, connection: CDPConnection, *, artifacts_dir: str | Path,
            variables: Mapping[str, str] | None = None, resolve_secret: Callable[[SecretRef], str] | None = None,
            timeout: float = 60.0, browser_context_id: str | None = None) -> FlowResult:
        fn = self.get(name)
        masker = Masker()

        def resolve(ref: SecretRef) -> str:
            if resolve_secret is None:
                raise FlowError(f"legacy flow {name!r} asks for secret {ref.name!r} but no credential store was given")
            value = resolve_secret(ref)
            masker.add(value)
            return value

        pages = Pages.open(connection, browser_context_id=browser_context_id)
        started = time.monotonic()
        error: NavigationError | None = None
        try:
            fn(LegacyContext(pages.main, pages, variables or {}, resolve, Path(artifacts_dir), timeout))
        except NavigationError as exc:
            error = exc
        finally:
            if not connection.closed:
                pages.close_all(settle_cookies=error is None)
        ms = (time.monotonic() - started) * 1000
        key = f"0:legacy:{name}"
        message = None if error is None else masker(f"legacy flow {name!r}: {error}")
        step = StepResult(0, f"legacy:{name}", None, key, ms, error is None, error=message)
        return FlowResult(f"legacy:{name}", name, error is None, ms, (step,), error=message,
                          error_category=None if error is None else type(error).category,
                          failed_step=None if error is None else 0)


REGISTRY = LegacyRegistry()


@REGISTRY.register("fixture_form")
def fixture_form(ctx: LegacyContext) -> None:
    """The bundled fixture form, the hand-written way: fill ``name``, submit, check the echo."""
    base = ctx.variables.get("BASE_URL", "")
    name = ctx.variables.get("name", "Legacy")
    ctx.navigate(f"{base}/form.html")
    ctx.page.evaluate(f"document.querySelector('#name').value = {_js(name)}", await_promise=False)
    ctx.page.session.pop_events("Page.loadEventFired")
    ctx.page.evaluate("document.querySelector('#form').requestSubmit()", await_promise=False)
    ctx.page.wait_for_load(ctx.timeout)
    echoed = ctx.page.evaluate("document.querySelector('#out-name').textContent", await_promise=False)
    if echoed != name:
        raise AssertionFailed(f"result page echoed {echoed!r}")


def _js(value: str) -> str:
    return orjson.dumps(value).decode()


__all__ = ["LegacyContext", "LegacyFlow", "LegacyRegistry", "REGISTRY", "UnknownLegacyFlow"]
