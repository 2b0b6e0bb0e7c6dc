"""Fixtures shared by the navigation tests."""
from __future__ import annotations

import pytest

from navigation.cdp import CDPConnection


@pytest.fixture()
def conn(browser):
    """A fresh CDP connection to the session's shared Chromium, closed after the test."""
    c = CDPConnection.connect(browser.ws_url)
    yield c
    c.close()
