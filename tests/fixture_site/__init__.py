"""Tests of the bundled fixture site (navigation.fixture_site): HTTP side and in Chromium."""
