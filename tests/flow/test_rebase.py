"""--base-url: only the origins of navigate, asserted and target URLs change; everything else is kept."""
from __future__ import annotations

import pytest

from navigation.flow import parse_flow
from navigation.flow.rebase import parse_base_url, rebase_recording, rebase_url

BASE = "http://127.0.0.1:8123"


def test_origins_are_replaced_and_paths_queries_fragments_kept() -> None:
    base = parse_base_url(BASE)
    assert rebase_url("https://shop.example/login?next=/cart#top", base) == f"{BASE}/login?next=/cart#top"
    assert rebase_url("https://shop.example", base) == f"{BASE}/"
    assert rebase_url("${BASE_URL}/form.html", base) == "${BASE_URL}/form.html"
    for untouched in ("about:blank", "data:text/html,x", "/relative.html"):
        assert rebase_url(untouched, base) == untouched
    assert rebase_url("https://shop.example/a", parse_base_url(BASE + "/app/")) == f"{BASE}/app/a"


def test_a_recording_is_rebased_in_every_url_field_and_nowhere_else() -> None:
    recording = {"title": "t", "recorderVersion": "9", "steps": [
        {"type": "navigate", "url": "https://shop.example/", "assertedEvents": [
            {"type": "navigation", "url": "https://shop.example/", "title": "Shop"}]},
        {"type": "click", "selectors": [["a[href='https://shop.example/x']"]], "offsetX": 1, "offsetY": 1,
         "assertedEvents": [{"type": "navigation", "url": "https://shop.example/x"}]},
        {"type": "click", "target": "https://shop.example/popup", "selectors": [["#b"]], "offsetX": 1, "offsetY": 1},
        {"type": "waitForExpression", "expression": "location.href === 'https://shop.example/x'"},
    ]}
    rebased, count = rebase_recording(recording, BASE)
    assert count == 4
    assert rebased["steps"][0]["url"] == f"{BASE}/" and rebased["steps"][0]["assertedEvents"][0]["url"] == f"{BASE}/"
    assert rebased["steps"][1]["assertedEvents"][0]["url"] == f"{BASE}/x"
    assert rebased["steps"][1]["selectors"] == recording["steps"][1]["selectors"]  # selectors are not URLs
    assert rebased["steps"][2]["target"] == f"{BASE}/popup"
    assert rebased["steps"][3] == recording["steps"][3] and rebased["recorderVersion"] == "9"
    assert recording["steps"][0]["url"] == "https://shop.example/"  # the input is not changed
    parse_flow(rebased, source="rebased.json")


@pytest.mark.parametrize("bad", ["ftp://host", "127.0.0.1:8000", "http://", "http://h/?q=1"])
def test_a_bad_base_url_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--base-url"):
        parse_base_url(bad)
