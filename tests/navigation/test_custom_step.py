"""customStep: a no-op with one warning when nothing handles it, a rejection with strict, real handlers by name."""
from __future__ import annotations

import logging

import pytest

from navigation.errors import FlowValidationError
from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import StepOutcome, default_registry

pytestmark = pytest.mark.chromium

STEPS = [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "customStep", "name": "doMagic", "parameters": {"title": "magic"}},
    {"type": "waitForExpression", "expression": "document.readyState === 'complete'"},
]


def flow_of(steps, registry):
    return parse_flow({"title": "custom", "steps": steps}, source="flows/custom.json",
                      extra_types=registry.extra_types())


def skipped_warnings(caplog):
    return [r for r in caplog.records if getattr(r, "event", None) == "custom_step_skipped"]


def test_without_a_handler_it_is_a_no_op_with_one_warning_naming_it(conn, site, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    registry = default_registry()
    runner = FlowRunner(registry)
    flow = flow_of(STEPS, registry)
    for _ in range(2):
        result = runner.run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
        assert result.ok, result.error
        assert [s.type for s in result.steps] == ["navigate", "customStep", "waitForExpression"]
    warnings = skipped_warnings(caplog)
    assert len(warnings) == 1, [w.__dict__ for w in warnings]
    message = warnings[0].getMessage()
    assert message.startswith("flows/custom.json: customStep skipped: step 1 (customStep 'doMagic')"), message
    assert registry.problems(flow) == []


def test_strict_rejects_it_naming_the_step(conn, tmp_path):
    registry = default_registry()
    flow = flow_of(STEPS, registry)
    with pytest.raises(FlowValidationError) as info:
        FlowRunner(registry, strict=True).run(flow, conn, artifacts_dir=tmp_path)
    assert "flows/custom.json" in str(info.value) and "step 1 (customStep 'doMagic')" in str(info.value)
    assert "--strict" in str(info.value)
    from navigation.steps import build_registry

    strict = build_registry(strict=True)
    assert len(strict.problems(flow)) == 1 and "'doMagic'" in strict.problems(flow)[0]


def test_a_handler_registered_by_name_runs_with_the_steps_parameters(conn, site, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    seen = []

    def do_magic(step, ctx):
        seen.append(dict(step.parameters))
        ctx.page.evaluate(f"document.title = {step.parameters['title']!r}", await_promise=False)
        return StepOutcome(detail={"done": True})

    from navigation.steps import build_registry

    registry = build_registry(strict=True)
    registry.register_custom("doMagic", do_magic)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_custom("doMagic", lambda step, ctx: None)
    flow = flow_of(STEPS + [{"type": "waitForExpression", "expression": "document.title === 'magic'"}], registry)
    assert registry.problems(flow) == []
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    assert seen == [{"title": "magic"}] and skipped_warnings(caplog) == []
