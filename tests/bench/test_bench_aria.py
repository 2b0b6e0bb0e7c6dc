"""Cost of one ``aria/`` lookup through Chromium's accessibility tree, next to a CSS lookup.

One lookup = one ``waitForElement`` runtime call for an element that is
there: for ``aria/`` that is ``Accessibility.queryAXTree`` + ``DOM.resolveNode``
+ the runtime call (navigation.aria); for CSS one in-page call.
Run: python -m pytest tests/bench/test_bench_aria.py --benchmark-enable
"""
from __future__ import annotations

import pytest

from navigation.cdp import CDPConnection
from navigation.page import Page

pytestmark = pytest.mark.chromium

SPEC = {"operator": ">=", "count": 1, "visible": True, "properties": None, "attributes": None}


@pytest.fixture(scope="module")
def conformance_page(browser, site):
    with CDPConnection.connect(browser.ws_url) as conn:
        page = Page.setup(conn.new_page("about:blank"))
        page.send("Page.navigate", {"url": site.url("/conformance.html")})
        page.wait_for_load(10)
        yield page
        page.session.close()


def _lookup(page: Page, kind: str, value: str) -> dict:
    return page.find("waitForElement", [], [{"index": 0, "chain": [{"kind": kind, "value": value}]}], 2000, SPEC)


@pytest.mark.parametrize("kind, value", [
    ("aria", 'Click me[role="button"]'), ("aria", "Select"), ("css", "#click-btn"),
])
def test_bench_selector_lookup(benchmark, conformance_page, kind, value):
    hit = benchmark.pedantic(_lookup, args=(conformance_page, kind, value), rounds=40, warmup_rounds=3)
    assert hit == {"index": 0, "count": 1}
