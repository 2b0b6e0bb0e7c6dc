"""Drover's own steps (clip, longPress, screenshot), secret references and phases."""
from __future__ import annotations

import pytest

from navigation.errors import FlowValidationError
from navigation.flow import SecretRef, load_flow, parse_flow, records
from tests.flow.conftest import DATA


@pytest.fixture(scope="module")
def flow() -> records.Flow:
    return load_flow(DATA / "drover_steps.json")


def _problems(steps: list[dict[str, object]]) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": steps}, source="mem.json")
    return info.value.problems


def test_phases_and_timing_keys(flow: records.Flow) -> None:
    assert flow.phases == ("Login", "Act", "Logout")
    assert flow.steps[0].phase == "Login" and flow.steps[8].phase is None
    assert flow.steps[5].timing_key == "5:clip"


def test_secret_refs_in_change_keys_and_clip(flow: records.Flow) -> None:
    change, down, up, clip = flow.steps[2], flow.steps[3], flow.steps[4], flow.steps[5]
    assert isinstance(change, records.ChangeStep) and change.value == SecretRef("alice_user")
    assert isinstance(down, records.KeyDownStep) and down.key == SecretRef("alice_pin")
    assert isinstance(up, records.KeyUpStep) and up.key == SecretRef("alice_pin")
    assert isinstance(clip, records.ClipStep) and clip.value == SecretRef("alice_password")
    assert flow.secret_names == {"alice_user", "alice_pin", "alice_password"}


def test_secret_ref_shows_only_its_name() -> None:
    ref = SecretRef("alice_password")
    assert repr(ref) == "SecretRef('alice_password')"
    assert str(ref) == "<secret alice_password>"


def test_clip_literal_value_is_hidden_from_repr(flow: records.Flow) -> None:
    clip = flow.steps[6]
    assert isinstance(clip, records.ClipStep)
    assert clip.value == "hello from drover" and clip.frame == (0,)
    assert "hello from drover" not in repr(clip)


def test_long_press_offsets_fractions_and_default_duration(flow: records.Flow) -> None:
    held, fractional = flow.steps[7], flow.steps[8]
    assert isinstance(held, records.LongPressStep)
    assert (held.offset_x, held.offset_y, held.duration, held.button) == (40, 60, 1500, "primary")
    assert isinstance(fractional, records.LongPressStep)
    assert fractional.duration == 1000
    assert fractional.point_in(400, 200) == (100, 150)


def test_click_with_rx_ry(flow: records.Flow) -> None:
    click = flow.steps[1]
    assert isinstance(click, records.ClickStep)
    assert (click.rx, click.ry) == (0.5, 0.31) and click.point_in(1000, 100) == (500, 31)


def test_screenshot_regions(flow: records.Flow) -> None:
    page, element, region, full = flow.steps[9:13]
    assert isinstance(page, records.ScreenshotStep) and page.name == "after-login.png"
    assert page.selectors == () and page.clip is None and not page.full_page
    assert isinstance(element, records.ScreenshotStep) and element.name == "shots/game.png"
    assert element.selectors[0].text == "#game"
    assert isinstance(region, records.ScreenshotStep) and region.clip == records.Rect(0, 10, 320, 200)
    assert region.name == "011-screenshot.png"
    assert isinstance(full, records.ScreenshotStep) and full.full_page


@pytest.mark.parametrize("step, expected", [
    ({"type": "screenshot", "name": "../escape.png"}, '"name" must be a relative path'),
    ({"type": "screenshot", "name": "/abs.png"}, '"name" must be a relative path'),
    ({"type": "screenshot", "name": "shot.jpg"}, '"name" must be a relative path'),
    ({"type": "screenshot", "fullPage": True, "selectors": [["#a"]]},
     'give at most one of "selectors", "clip", "fullPage"'),
    ({"type": "screenshot", "clip": {"x": 0, "y": 0, "width": 0, "height": 5}}, '"clip.width" must be between 1'),
    ({"type": "screenshot", "clip": {"x": 0, "y": 0, "width": 5, "height": 5, "z": 1}}, '"clip.z" is not a field'),
    ({"type": "clip"}, '"value" is required'),
    ({"type": "clip", "value": {"secret": "bad name"}}, "secret name must be"),
    ({"type": "clip", "value": {"secret": "ok", "extra": 1}}, 'must be a string or {"secret": NAME}'),
    ({"type": "longPress", "selectors": [["#a"]], "duration": -5}, '"duration" must be between 0 and 600000'),
    ({"type": "longPress", "selectors": [["#a"]], "offsetX": 1}, '"offsetX" and "offsetY" go together'),
    ({"type": "click", "selectors": [["#a"]], "rx": 0.5}, '"rx" and "ry" go together'),
    ({"type": "click", "selectors": [["#a"]], "rx": 0.5, "ry": 0.5, "offsetX": 1, "offsetY": 1}, "not both"),
    ({"type": "click", "selectors": [["#a"]], "ry": -0.1, "rx": 0}, '"ry" must be between 0 and 1'),
    ({"type": "click", "selectors": [["#a"]], "phase": ""}, '"phase" must not be empty'),
])
def test_drover_step_problems_name_step_type_and_field(step: dict[str, object], expected: str) -> None:
    problems = _problems([step])
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"step 0 ({step['type']}): ")
    assert expected in problems[0]
