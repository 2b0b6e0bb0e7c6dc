"""Schema drift: old spellings mapped and reported, unknown fields kept and reported once."""
from __future__ import annotations

import logging

import pytest

from navigation.errors import FlowFileError, FlowValidationError
from navigation.flow import aliases, load_flow, parse_flow, records
from tests.flow.conftest import DATA

DOMAIN_LOGGER = "drover.domain.navigation.flow"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(DOMAIN_LOGGER) and r.levelno == logging.WARNING]


def test_old_spellings_map_to_the_current_schema(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    flow = load_flow(DATA / "old_spellings.json")
    viewport, _, click, change, down, up, network = flow.steps
    assert isinstance(viewport, records.SetViewportStep)
    assert (viewport.width, viewport.height, viewport.device_scale_factor, viewport.is_mobile) == (1024, 768, 1, False)
    assert isinstance(click, records.ClickStep)
    assert click.selectors[0].chain[0] == records.Selector(records.SelectorKind.ARIA, "Sign in", "aria/Sign in")
    assert click.frame == (0,) and click.target == "main"
    assert click.asserted_events == (records.AssertedEvent("navigation", "https://shop.example/login"),)
    assert isinstance(change, records.ChangeStep) and change.frame == () and change.value == "alice"
    assert isinstance(down, records.KeyDownStep) and down.asserted_events[0].url is None
    assert isinstance(up, records.KeyUpStep) and up.key == "Enter"
    assert isinstance(network, records.EmulateNetworkConditionsStep) and network.offline
    used = {(a.index, a.alias) for a in flow.aliases_applied}
    assert {(0, "type-viewport"), (2, "selector-single"), (2, "context"), (2, "condition"),
            (4, "type-keydown"), (4, "key-modifiers"), (5, "type-keyup"), (6, "network-conditions")} <= used
    assert flow.unknown_fields == (records.UnknownField(None, None, "description"),)
    alias_logs = [r for r in _warnings(caplog) if "older spellings" in r.getMessage()]
    assert len(alias_logs) == 1
    assert alias_logs[0].alias_count == len(flow.aliases_applied)  # type: ignore[attr-defined]
    assert alias_logs[0].flow_source.endswith("old_spellings.json")  # type: ignore[attr-defined]


def test_hand_written_shorthands() -> None:
    flow = load_flow(DATA / "hand_written.json")
    nav, click, hover, shot = flow.steps
    assert nav.asserted_events == (records.AssertedEvent("navigation", None, "Shop"),)
    assert isinstance(click, records.ClickStep) and click.button == "secondary"
    assert click.selectors[0].text == "#buy"
    assert isinstance(hover, records.HoverStep)
    assert [a.text for a in hover.selectors] == ["#menu", "aria/Menu"]  # plain strings are the schema, not an alias
    assert isinstance(shot, records.ScreenshotStep) and shot.name == "menu.png"
    assert [a.alias for a in flow.aliases_applied] == [
        "asserted-events-object", "selectors-string", "button-cdp-name", "selectors-string", "screenshot-path"]


def test_unknown_fields_are_kept_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    flow = load_flow(DATA / "unknown_fields.json")
    assert [str(u) for u in flow.unknown_fields] == [
        "flow: recorderVersion", "step 0 (navigate): assertedEvents[0].frameId",
        "step 1 (click): pointerId", "step 1 (click): pressure", "step 2 (keyDown): frame"]
    assert flow.extra == {"recorderVersion": "9.1"}
    click = flow.steps[1]
    assert click.extra["pointerId"] == 7 and click.extra["pressure"]["max"] == 0.5  # type: ignore[index]
    assert flow.steps[2].extra == {"frame": (0,)}  # keyDown has no frame: kept, not honoured
    reports = [r for r in _warnings(caplog) if "unknown fields" in r.getMessage()]
    assert len(reports) == 1
    record = reports[0]
    assert record.unknown_field_count == 5  # type: ignore[attr-defined]
    assert "step 1 (click): pointerId" in record.unknown_fields  # type: ignore[attr-defined]
    assert "9.1" not in str(record.__dict__)  # names only, never values


def test_a_clean_flow_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    load_flow(DATA / "recorder_all_types.json")
    assert _warnings(caplog) == []


@pytest.mark.parametrize("step, expected", [
    ({"type": "click", "selector": "#a", "selectors": [["#b"]]}, 'both "selector" (old spelling) and "selectors"'),
    ({"type": "click", "selector": ["#a"]}, '"selector" (old spelling of "selectors") must be a string'),
    ({"type": "keydown", "key": "a", "shiftKey": True}, '"shiftKey" (old spelling) is only accepted as false'),
    ({"type": "click", "selectors": [["#a"]], "condition": "x"}, '"condition" (old spelling of "assertedEvents")'),
    ({"type": "click", "selectors": [["#a"]], "condition": "waitForNavigation", "assertedEvents": []},
     'both "condition" (old spelling) and "assertedEvents"'),
    ({"type": "click", "selectors": [["#a"]], "context": {"path": [1]}, "frame": [2]},
     '"context.path" (old spelling) and "frame" disagree'),
    ({"type": "emulateNetworkConditions", "conditions": {"download": 1, "upload": 1, "latency": 1}, "latency": 5},
     '"conditions.latency" (old spelling) and "latency" disagree'),
    ({"type": "screenshot", "path": "a.png", "name": "b.png"}, 'both "path" and "name"'),
])
def test_ambiguous_old_spellings_are_problems_not_guesses(step: dict[str, object], expected: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": [step]}, source="mem.json")
    assert len(info.value.problems) == 1 and expected in info.value.problems[0]
    assert info.value.problems[0].startswith(f"step 0 ({step['type']}): ")


def test_retired_spellings_explain_themselves() -> None:
    with pytest.raises(FlowFileError, match=r'sections_2021\.json: "steps" is missing.*"sections"'):
        load_flow(DATA / "sections_2021.json")
    with pytest.raises(FlowValidationError, match=r'step 0 \(submit\): unknown step type "submit"; the 2021'):
        parse_flow({"title": "t", "steps": [{"type": "submit", "selector": "form"}]}, source="mem.json")


def test_alias_table_is_documented_and_ids_are_unique() -> None:
    ids = [a.id for a in aliases.ALIASES]
    assert len(ids) == len(set(ids))
    for alias in aliases.ALIASES:
        assert f"``{alias.id}``" in (aliases.__doc__ or ""), alias.id
        assert alias.step_types, alias.id


def test_a_strategy_type_is_not_rewritten_by_aliases() -> None:
    flow = parse_flow({"title": "t", "steps": [{"type": "keydown", "selector": "#a", "context": {"path": [1]}}]},
                      source="mem.json", extra_types={"keydown"})
    step = flow.steps[0]
    assert isinstance(step, records.CustomTypeStep) and step.type == "keydown"
    assert step.fields["selector"] == "#a" and flow.aliases_applied == ()
