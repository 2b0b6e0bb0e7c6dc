"""Step types handled by a registered strategy validate through ``extra_types``."""
from __future__ import annotations

import pytest

from navigation.errors import FlowValidationError
from navigation.flow import parse_flow, records

SWIPE = {"type": "swipe", "selectors": [["#carousel"]], "direction": "left", "timeout": 900, "phase": "Act"}


def test_unknown_type_fails_naming_index_type_and_known_types() -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": [{"type": "navigate", "url": "u"}, SWIPE]}, source="f.json")
    (problem,) = info.value.problems
    assert problem.startswith('step 1 (swipe): unknown step type "swipe"; known types: change, click, clip,')


def test_extra_type_becomes_a_custom_type_step() -> None:
    flow = parse_flow({"title": "t", "steps": [SWIPE]}, source="f.json", extra_types=("swipe",))
    step = flow.steps[0]
    assert isinstance(step, records.CustomTypeStep)
    assert (step.type, step.timeout, step.phase, step.target) == ("swipe", 900, "Act", "main")
    assert step.timing_key == "0:swipe"
    assert dict(step.fields) == {"selectors": (("#carousel",),), "direction": "left"}
    assert flow.unknown_fields == ()


def test_extra_types_are_listed_as_known() -> None:
    with pytest.raises(FlowValidationError, match=r"known types: .*swipe"):
        parse_flow({"title": "t", "steps": [{"type": "pinch"}]}, source="f.json", extra_types=["swipe"])


def test_common_fields_of_a_custom_type_are_still_checked() -> None:
    with pytest.raises(FlowValidationError, match=r'step 0 \(swipe\): "timeout" must be between 1 and 300000'):
        parse_flow({"title": "t", "steps": [{**SWIPE, "timeout": 0}]}, source="f.json", extra_types={"swipe"})


def test_a_builtin_type_in_extra_types_is_still_parsed_as_builtin() -> None:
    flow = parse_flow({"title": "t", "steps": [{"type": "close"}]}, source="f.json", extra_types={"close", "swipe"})
    assert isinstance(flow.steps[0], records.CloseStep)


def test_extra_types_must_be_a_collection_of_names() -> None:
    with pytest.raises(TypeError, match="not one string"):
        parse_flow({"title": "t", "steps": []}, source="f.json", extra_types="swipe")
