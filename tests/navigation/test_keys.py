"""Key names as puppeteer's US layout has them: values and codes, modifier state kept across steps."""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.keys import KEYS, MOD_META, MOD_SHIFT
from navigation.runner import FlowRunner
from navigation.steps import default_registry


def test_every_code_name_of_the_layout_is_a_key():
    names = ([f"Key{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"] + [f"Digit{d}" for d in range(10)]
             + [f"Numpad{d}" for d in range(10)] + [f"F{n}" for n in range(1, 25)]
             + [f"{m}{side}" for m in ("Shift", "Control", "Alt", "Meta") for side in ("Left", "Right")]
             + ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "NumpadEnter", "NumpadAdd", "NumpadDecimal",
                "Space", "Minus", "Equal", "BracketLeft", "Backquote", "Quote", "Slash", "Backslash"])
    for name in names:
        assert KEYS[name].code == name, name
    for kd in KEYS.values():  # every code a key sends is itself a name
        assert not kd.code or kd.code in KEYS, kd


def test_code_names_follow_shift_and_value_names_do_not():
    from navigation.keys import KEYS  # noqa: F811 (the definitions with their shifted forms)

    assert KEYS["KeyA"].shown(False) == ("a", 65, "a") and KEYS["KeyA"].shown(True) == ("A", 65, "A")
    assert KEYS["Digit1"].shown(True) == ("!", 49, "!")
    assert KEYS["a"].shown(True) == ("a", 65, "a")  # a key value is that value, as in the reference
    assert KEYS["Numpad1"].shown(False) == ("End", 35, "") and KEYS["Numpad1"].shown(True) == ("1", 97, "1")


def test_modifier_state_is_kept_and_comes_from_the_key_value():
    from navigation.keys import KeyboardState, key_def, press

    kb = KeyboardState()
    assert press(kb, "ShiftRight", "down")["modifiers"] == MOD_SHIFT
    down = press(kb, "KeyA", "down")
    assert (down["type"], down["key"], down["text"], down["modifiers"]) == ("keyDown", "A", "A", MOD_SHIFT)
    assert press(kb, "KeyA", "down").get("autoRepeat") is True  # still held: a repeat, as in the reference
    press(kb, "KeyA", "up")
    assert press(kb, "Shift", "up")["modifiers"] == 0 and kb.modifiers == 0
    meta = press(kb, "MetaRight", "down")
    assert meta["type"] == "rawKeyDown" and meta["location"] == 2 and kb.modifiers == MOD_META
    assert "text" not in press(kb, "KeyB", "down")  # a shortcut types nothing
    with pytest.raises(KeyError):
        key_def("NoSuchKey")


def test_an_unknown_key_name_is_named_by_validation():
    flow = parse_flow({"title": "t", "steps": [{"type": "keyDown", "key": "ShiftLeftt"}]}, source="k.json")
    problems = default_registry().problems(flow)
    assert len(problems) == 1 and "'ShiftLeftt'" in problems[0] and problems[0].startswith("step 0 (keyDown)")


def keys(*names, kind=None):
    out = []
    for name in names:
        if kind is None:
            out += [{"type": "keyDown", "key": name}, {"type": "keyUp", "key": name}]
        else:
            out.append({"type": kind, "key": name})
    return out


@pytest.mark.chromium
def test_code_names_type_like_the_us_layout_on_a_real_page(conn, site, tmp_path):
    steps = [
        {"type": "navigate", "url": "${BASE_URL}/conformance.html"},
        {"type": "click", "selectors": [["#text-input"]]},
        *keys("ShiftLeft", kind="keyDown"), *keys("KeyA"), *keys("ShiftLeft", kind="keyUp"),
        *keys("Digit1"),
        *keys("ShiftRight", kind="keyDown"), *keys("Digit1", "Numpad1", "a"), *keys("ShiftRight", kind="keyUp"),
        *keys("Numpad1", "MetaRight", "Space", "KeyZ", "Slash", "Backspace", "NumpadDecimal"),
        {"type": "waitForExpression", "expression": "document.querySelector('#text-input').value === 'A1!1a z'",
         "timeout": 1000},
    ]
    flow = parse_flow({"title": "keys", "steps": steps}, source="keys.json")
    result = FlowRunner(default_registry()).run(flow, conn, artifacts_dir=tmp_path,
                                                variables={"BASE_URL": site.base_url})
    assert result.ok, result.error


@pytest.mark.chromium
def test_key_events_the_page_sees(conn, site, tmp_path):
    from navigation.steps import StepOutcome, StepStrategy

    seen: list[str] = []

    class Capture(StepStrategy):
        name = "capture"
        handles = frozenset({"captureEvents"})

        def run(self, step, ctx):
            seen.extend(ctx.page.evaluate("window.droverEvents()", await_promise=False))
            return StepOutcome()

    registry = default_registry()
    registry.register(Capture())
    steps = [
        {"type": "navigate", "url": "${BASE_URL}/conformance.html"},
        {"type": "waitForExpression", "expression": "(window.droverClearEvents(), true)"},
        {"type": "click", "selectors": [["#text-input"]]},
        *keys("ShiftRight", kind="keyDown"), *keys("KeyA", "Numpad1"), *keys("ShiftRight", kind="keyUp"),
        *keys("Numpad1", "MetaRight", "ArrowUp"),
        {"type": "captureEvents"},
    ]
    flow = parse_flow({"title": "keys", "steps": steps}, source="keys.json", extra_types=registry.extra_types())
    result = FlowRunner(registry).run(flow, conn, artifacts_dir=tmp_path, variables={"BASE_URL": site.base_url})
    assert result.ok, result.error
    keyed = [e.split(" ", 1)[1] for e in seen if e.split(" ")[1] in ("keydown", "keyup", "input")]
    assert keyed == [
        "keydown #text-input key=Shift code=ShiftRight shift=1",
        "keydown #text-input key=A code=KeyA shift=1",
        "input #text-input value=A",
        "keyup #text-input key=A code=KeyA shift=1",
        "keydown #text-input key=1 code=Numpad1 shift=1",
        "input #text-input value=A1",
        "keyup #text-input key=1 code=Numpad1 shift=1",
        "keyup #text-input key=Shift code=ShiftRight",
        "keydown #text-input key=End code=Numpad1",
        "keyup #text-input key=End code=Numpad1",
        "keydown #text-input key=Meta code=MetaRight meta=1",
        "keyup #text-input key=Meta code=MetaRight",
        "keydown #text-input key=ArrowUp code=ArrowUp",
        "keyup #text-input key=ArrowUp code=ArrowUp",
    ], seen
