"""Navigation's errors as the code raises them: timeouts are builtin TimeoutErrors, every error pickles whole.

The errors here come from the real client and the real parser (a fake CDP
endpoint on 127.0.0.1 plays the browser), so the fields checked are the
ones a worker would send back to its supervisor.
"""
from __future__ import annotations

import pickle
import time

import pytest

from navigation.cdp import CDPConnection
from navigation.errors import CDPResponseError, CDPTimeout, FlowValidationError, StepError, StepTimeout
from navigation.flow import parse_flow
from tests.fakecdp import FakeCDPServer


def _round_trip(err: BaseException) -> BaseException:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err) and copy.args == err.args
    return copy


def test_a_command_timeout_is_a_builtin_timeout_error_and_pickles():
    with FakeCDPServer(lambda peer, msg: None) as server, CDPConnection.connect(server.url) as conn:  # never answers
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            conn.send("Never.answered", timeout=0.1)
        assert time.monotonic() - started < 5
    assert type(info.value) is CDPTimeout and type(info.value).category == "timeout"
    assert "Never.answered" in str(_round_trip(info.value))


def test_a_cdp_error_answer_pickles_with_method_code_message_and_data():
    def handler(peer, msg):
        peer.send_json({"id": msg["id"], "error": {"code": -32000, "message": "Cannot navigate", "data": "bad url"}})

    with FakeCDPServer(handler) as server, CDPConnection.connect(server.url) as conn:
        with pytest.raises(CDPResponseError) as info:
            conn.send("Page.navigate", {"url": "nope"}, timeout=5)
    copy = _round_trip(info.value)
    assert (copy.method, copy.code, copy.cdp_message, copy.data) == ("Page.navigate", -32000, "Cannot navigate",
                                                                     "bad url")


def test_a_flow_validation_error_pickles_with_its_source_and_every_problem():
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": [{"type": "nope"}, {"type": "click"}]}, source="flows/x.json")
    copy = _round_trip(info.value)
    assert copy.source == "flows/x.json" and copy.problems == info.value.problems and len(copy.problems) >= 2


def test_a_step_timeout_is_a_builtin_timeout_error_and_keeps_its_step():
    err = StepTimeout("no element within 500 ms", index=4, step_type="click", artifacts=("a/step-04.png",))
    assert isinstance(err, TimeoutError) and isinstance(err, StepError)
    copy = _round_trip(err)
    assert (copy.index, copy.step_type, copy.artifacts) == (4, "click", ("a/step-04.png",))
    assert str(copy) == "step 4 (click): no element within 500 ms [artifacts: a/step-04.png]"
