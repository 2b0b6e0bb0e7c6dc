"""Driving Chromium: launcher, synchronous CDP client, browser lifecycle, recorder flows."""
__all__: list[str] = []
