"""Property tests: whatever the input, parsing ends in a Flow or a FlowError, never anything else."""
from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navigation.errors import FlowError
from navigation.flow import STEP_TYPES, parse_flow, records
from navigation.flow._load import decode_flow_json
from tests.flow.conftest import DATA

_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
JSONISH = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=25)
ODD = st.recursive(_SCALARS | st.binary(max_size=5) | st.frozensets(st.integers(), max_size=3),
                   lambda inner: st.lists(inner, max_size=4) | st.tuples(inner)
                   | st.dictionaries(st.integers() | st.text(max_size=5), inner, max_size=4), max_leaves=15)

FIELDS = ["selectors", "selector", "value", "key", "offsetX", "offsetY", "rx", "ry", "button", "deviceType",
          "duration", "timeout", "target", "frame", "assertedEvents", "phase", "url", "width", "height",
          "deviceScaleFactor", "isMobile", "hasTouch", "isLandscape", "x", "y", "operator", "count", "visible",
          "properties", "attributes", "expression", "download", "upload", "latency", "name", "parameters",
          "clip", "fullPage", "path", "context", "condition", "conditions", "shiftKey"]
SELECTORS = st.lists(st.one_of(st.text(max_size=12), st.lists(st.text(max_size=12), max_size=3),
                               st.sampled_from(["aria/", "xpath//a", "pierce/#x", "text/Go", "#id"])), max_size=4)
SMALL_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5)
FIELD_VALUE = st.one_of(SMALL_JSON, SELECTORS, st.fixed_dictionaries({"secret": st.text(max_size=8)}),
                        st.floats(min_value=-2, max_value=2), st.sampled_from(["primary", "left", ">=", "mouse"]))
STEP = st.builds(lambda step_type, fields: {**fields, "type": step_type},
                 st.sampled_from(sorted(STEP_TYPES) + ["keydown", "viewport", "submit", "swipe"]) | st.text(max_size=8),
                 st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUE, max_size=6))
FLOWISH = st.fixed_dictionaries({"steps": st.lists(STEP, max_size=6) | JSONISH},
                                optional={"title": JSONISH, "timeout": JSONISH, "selectorAttribute": JSONISH,
                                          "sections": JSONISH})

# Real steps from the fixtures, then mutated: most flows stay valid, so the deep paths get exercised.
POOL = [step for name in ("recorder_all_types", "drover_steps", "old_spellings", "hand_written", "bench_30_steps")
        for step in json.loads((DATA / f"{name}.json").read_text())["steps"]]


@st.composite
def mutated_step(draw: st.DrawFn) -> dict[str, object]:
    step = dict(draw(st.sampled_from(POOL)))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop" and step:
            del step[draw(st.sampled_from(sorted(step)))]
        elif action == "replace" and step:
            step[draw(st.sampled_from(sorted(step)))] = draw(FIELD_VALUE)
        else:
            step[draw(st.sampled_from(FIELDS) | st.text(max_size=6))] = draw(FIELD_VALUE)
    return step


RECORDINGS = st.fixed_dictionaries({"title": st.text(max_size=10),
                                    "steps": st.lists(mutated_step(), min_size=1, max_size=8)},
                                   optional={"timeout": st.integers(min_value=-5, max_value=400_000)})


def _parse_or_flow_error(data: object) -> None:
    try:
        flow = parse_flow(data, source="prop.json", extra_types=("swipe",))
    except FlowError as exc:
        assert str(exc).startswith("prop.json: ")
        return
    assert isinstance(flow, records.Flow)
    assert all(isinstance(step, records.Step) for step in flow.steps)
    assert [step.index for step in flow.steps] == list(range(len(flow.steps)))
    assert all(math.isfinite(step.timeout) for step in flow.steps)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(JSONISH)
def test_arbitrary_json_gives_a_flow_or_a_flow_error(data: object) -> None:
    _parse_or_flow_error(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(FLOWISH)
def test_flow_shaped_noise_gives_a_flow_or_a_flow_error(data: object) -> None:
    _parse_or_flow_error(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDINGS)
def test_mutated_recordings_give_a_flow_or_a_flow_error(data: object) -> None:
    _parse_or_flow_error(data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"title": st.text(max_size=5), "steps": st.lists(ODD, max_size=4)}) | ODD)
def test_non_json_python_objects_give_a_flow_or_a_flow_error(data: object) -> None:
    _parse_or_flow_error(data)


@settings(max_examples=200)
@given(st.binary(max_size=200) | JSONISH.map(lambda d: json.dumps(d).encode()))
def test_arbitrary_bytes_decode_to_data_or_a_flow_error(raw: bytes) -> None:
    try:
        data = decode_flow_json(raw, "prop.json")
    except FlowError as exc:
        assert str(exc).startswith("prop.json: ")
        return
    _parse_or_flow_error(data)
