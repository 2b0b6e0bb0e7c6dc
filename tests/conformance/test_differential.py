"""Drover against the reference replayer (``@puppeteer/replay``) on every recording in ``recordings/``.

Skipped, with the reason, where node or the harness's npm packages are
not installed (``bash .ci/bootstrap`` installs them when npm is there).
The table of every recording is printed (``-s`` shows it, and it is part
of the failure message).
"""
from __future__ import annotations

import pytest

from tests.conformance import harness
from tests.conformance.harness import Outcome

BASE = "http://127.0.0.1:1234"


def test_every_recording_uses_only_recorder_steps_and_the_fixture_site():
    recorder_types = {"setViewport", "navigate", "click", "doubleClick", "hover", "change", "keyDown", "keyUp",
                      "scroll", "waitForElement", "waitForExpression", "emulateNetworkConditions", "close",
                      "customStep"}
    names = harness.recording_names()
    assert len(names) >= 40
    for name in names:
        flow = harness.materialize(name, BASE)
        assert {s["type"] for s in flow["steps"]} <= recorder_types, name
        urls = [s["url"] for s in flow["steps"] if s["type"] == "navigate"]
        assert urls and all(u.startswith(BASE + "/") for u in urls), name
    assert set(harness.expectations()) <= set(names)


def _state(**fields):
    return {"url": f"{BASE}/p.html", "title": "t", "events": ["p load /p.html"], "controls": {}, "marks": {},
            "scrolls": {}, "frames": [], "scroll": [0, 0], "viewport": {}, "online": True, "focused": None, **fields}


def test_the_comparison_can_fail_and_normalises_only_what_is_timing():
    same = harness.compare("r", Outcome("r", True, state=_state()), Outcome("r", True, state=_state()), BASE)
    assert same.ok and same.kind == "same"
    other = harness.compare("r", Outcome("r", True, state=_state(controls={"#a": "x"})),
                            Outcome("r", True, state=_state(controls={"#a": "y"})), BASE)
    assert not other.ok and "controls" in other.diffs[0]
    failed = harness.compare("r", Outcome("r", False, "boom"), Outcome("r", True, state=_state()), BASE)
    assert not failed.ok
    # scroll entries: compared per target, apart from the input events, runs collapsed to their last entry
    mine = _state(events=["p load /p.html", "p keydown #t key=a code=KeyA", "p scroll #t top=1 left=0",
                          "p scroll #t top=9 left=0", "p keyup #t key=a code=KeyA"])
    theirs = _state(events=["p load /p.html", "p keydown #t key=a code=KeyA", "p keyup #t key=a code=KeyA",
                            "p scroll #t top=9 left=0"])
    assert harness.compare("r", Outcome("r", True, state=mine), Outcome("r", True, state=theirs), BASE).ok
    moved = _state(events=["p load /p.html", "p scroll #t top=5 left=0"])
    assert not harness.compare("r", Outcome("r", True, state=moved), Outcome("r", True, state=theirs), BASE).ok


def test_a_documented_quirk_needs_drovers_expected_state_and_a_different_reference():
    expected = {"quirk": "q", "drover": {"controls": {"#a": "end"}}}
    good = harness.compare("r", Outcome("r", True, state=_state(controls={"#a": "end"})),
                           Outcome("r", True, state=_state(controls={"#a": "start"})), BASE, expected)
    assert good.ok and good.kind == "quirk"
    wrong = harness.compare("r", Outcome("r", True, state=_state(controls={"#a": "start"})),
                            Outcome("r", True, state=_state(controls={"#a": "start"})), BASE, expected)
    assert not wrong.ok
    gone = harness.compare("r", Outcome("r", True, state=_state(controls={"#a": "end"})),
                           Outcome("r", True, state=_state(controls={"#a": "end"})), BASE, expected)
    assert not gone.ok and gone.kind == "quirk not shown"


@pytest.mark.chromium
@pytest.mark.timeout(900)
def test_drover_matches_the_reference_replayer_on_every_recording(site):
    reason = harness.reference_unavailable()
    if reason is not None:
        pytest.skip(f"reference replayer not available: {reason}")
    verdicts = harness.run_all(site=site)
    table = harness.table(verdicts)
    print("\n" + table)
    assert [v.name for v in verdicts] == harness.recording_names()
    assert all(v.ok for v in verdicts), "\n" + table
