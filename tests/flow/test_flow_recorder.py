"""A realistic Recorder export parses into the right typed records, with the replayer's defaults."""
from __future__ import annotations

import dataclasses

import pytest

from navigation.flow import DEFAULT_TIMEOUT_MS, STEP_TYPES, SelectorKind, load_flow, parse_flow, records
from tests.flow.conftest import DATA


@pytest.fixture(scope="module")
def flow() -> records.Flow:
    return load_flow(DATA / "recorder_all_types.json")


def test_flow_level_fields(flow: records.Flow) -> None:
    assert flow.source.endswith("recorder_all_types.json")
    assert flow.title == "Coffee checkout"
    assert flow.timeout == 7000
    assert flow.selector_attribute == "data-testid"
    assert flow.unknown_fields == () and flow.aliases_applied == ()


def test_every_recorder_step_type_is_covered(flow: records.Flow) -> None:
    assert {s.type for s in flow.steps} == set(records.RECORDER_STEP_TYPES)
    assert len(records.RECORDER_STEP_TYPES) == 14
    assert STEP_TYPES == set(records.RECORDER_STEP_TYPES) | {"clip", "longPress", "screenshot", "extract"}
    for step in flow.steps:
        assert type(step) is records.STEP_RECORDS[step.type]


def test_set_viewport_and_network(flow: records.Flow) -> None:
    viewport, network = flow.steps[0], flow.steps[1]
    assert isinstance(viewport, records.SetViewportStep)
    assert (viewport.width, viewport.height, viewport.device_scale_factor) == (1280, 720, 1.0)
    assert not (viewport.is_mobile or viewport.has_touch or viewport.is_landscape)
    assert isinstance(network, records.EmulateNetworkConditionsStep)
    assert (network.download, network.upload, network.latency) == (180000, 84375, 562.5)
    assert not network.offline


def test_navigate_with_asserted_navigation(flow: records.Flow) -> None:
    nav = flow.steps[2]
    assert isinstance(nav, records.NavigateStep)
    assert nav.url == "https://coffee-cart.example/"
    assert nav.asserted_events == (records.AssertedEvent("navigation", "https://coffee-cart.example/", "Coffee cart"),)


def test_click_selectors_keep_kind_value_and_original_text(flow: records.Flow) -> None:
    click = flow.steps[3]
    assert isinstance(click, records.ClickStep)
    kinds = [alt.chain[0].kind for alt in click.selectors]
    assert kinds == [SelectorKind.ARIA, SelectorKind.CSS, SelectorKind.XPATH, SelectorKind.PIERCE, SelectorKind.TEXT]
    values = [alt.chain[0].value for alt in click.selectors]
    assert values == ["Espresso $10.00", "[data-testid=Espresso]", '//*[@data-testid="Espresso"]',
                      "[data-testid=Espresso]", "Espresso"]
    assert [alt.index for alt in click.selectors] == [0, 1, 2, 3, 4]
    assert click.selectors[2].text == 'xpath///*[@data-testid="Espresso"]'
    assert (click.offset_x, click.offset_y, click.rx, click.ry) == (120, 85.5, None, None)
    assert (click.button, click.device_type, click.duration) == ("primary", "mouse", None)
    assert click.target == "main" and click.frame == ()


def test_shadow_chain_frame_and_pointer_options(flow: records.Flow) -> None:
    click = flow.steps[16]
    assert isinstance(click, records.ClickStep)
    chain = click.selectors[0]
    assert [p.value for p in chain.chain] == ["my-app", "pay-form", "button.pay"]
    assert chain.text == "my-app >>> pay-form >>> button.pay"
    assert click.frame == (1, 0)
    assert (click.button, click.device_type, click.duration) == ("secondary", "mouse", 80)
    assert click.offset_x is None and click.point_in(200, 40) == (100, 20)  # no offsets: the centre


def test_double_click_hover_change_keys(flow: records.Flow) -> None:
    double, hover, _, change, down, up = flow.steps[4:10]
    assert isinstance(double, records.DoubleClickStep) and double.point_in(99, 99) == (31, 12)
    assert isinstance(hover, records.HoverStep) and hover.selectors[0].chain[0].kind is SelectorKind.ARIA
    assert isinstance(change, records.ChangeStep) and change.value == "Alice"
    assert isinstance(down, records.KeyDownStep) and down.key == "Tab"
    assert isinstance(up, records.KeyUpStep) and up.key == "Tab"


def test_scroll_page_and_element(flow: records.Flow) -> None:
    page, element = flow.steps[10], flow.steps[11]
    assert isinstance(page, records.ScrollStep) and page.selectors == () and (page.x, page.y) == (0, 480)
    assert isinstance(element, records.ScrollStep) and element.selectors[0].text == "#menu"


def test_wait_for_element_fields_and_defaults(flow: records.Flow) -> None:
    exact, hidden = flow.steps[12], flow.steps[13]
    assert isinstance(exact, records.WaitForElementStep)
    assert (exact.operator, exact.count, exact.visible) == ("==", 1, True)
    assert dict(exact.properties or {}) == {"textContent": "1"}
    assert dict(exact.attributes or {}) == {"data-state": "ready"}
    assert isinstance(hidden, records.WaitForElementStep)
    assert (hidden.operator, hidden.count, hidden.visible) == (">=", 1, False)
    assert hidden.properties is None and hidden.attributes is None


def test_wait_for_expression_custom_step_and_close(flow: records.Flow) -> None:
    expr, custom, close = flow.steps[14], flow.steps[15], flow.steps[17]
    assert isinstance(expr, records.WaitForExpressionStep)
    assert expr.expression.startswith("new Promise") and expr.frame == (0,)
    assert isinstance(custom, records.CustomStep) and custom.name == "lighthouse"
    assert custom.parameters["categories"] == ("performance",)  # type: ignore[index]
    assert isinstance(close, records.CloseStep) and close.target == "https://coffee-cart.example/receipt"


def test_timeouts_step_overrides_flow_which_overrides_default(flow: records.Flow) -> None:
    assert flow.steps[14].timeout == 10000
    assert flow.steps[0].timeout == 7000
    bare = parse_flow({"title": "t", "steps": [{"type": "close"}]}, source="mem")
    assert bare.timeout == DEFAULT_TIMEOUT_MS and bare.steps[0].timeout == DEFAULT_TIMEOUT_MS


def test_timing_key_and_records_are_frozen(flow: records.Flow) -> None:
    assert [s.timing_key for s in flow.steps[:3]] == ["0:setViewport", "1:emulateNetworkConditions", "2:navigate"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.steps[0].timeout = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        flow.steps[15].parameters["mode"] = "x"  # type: ignore[attr-defined,index]


def test_null_optional_fields_mean_absent() -> None:
    flow = parse_flow({"title": "t", "timeout": None, "steps": [
        {"type": "click", "selectors": [["#a"]], "offsetX": None, "offsetY": None, "target": None}]}, source="mem")
    click = flow.steps[0]
    assert isinstance(click, records.ClickStep)
    assert click.offset_x is None and click.target == "main" and flow.timeout == DEFAULT_TIMEOUT_MS
