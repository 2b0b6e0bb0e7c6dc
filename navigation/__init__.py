"""Driving Chromium: launcher, synchronous CDP client, browser lifecycle, Recorder flows.

The few names a program that drives browsers with Drover's parts needs::

    from navigation import launch, CDPConnection, load_flow, FlowRunner, build_registry

    browser = launch()                                  # headless, DevTools on 127.0.0.1
    conn = CDPConnection(browser.ws_url)
    result = FlowRunner(build_registry()).run(load_flow("flow.json"), conn, artifacts_dir="out")

Imported lazily (PEP 562), so importing one part does not load the rest.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "launch": "navigation.launcher",
    "LaunchSettings": "navigation.launcher",
    "find_chromium": "navigation.launcher",
    "CDPConnection": "navigation.cdp",
    "BrowserLifecycle": "navigation.lifecycle",
    "LifecycleSettings": "navigation.lifecycle",
    "FlowRunner": "navigation.runner",
    "FlowResult": "navigation.runner",
    "load_flow": "navigation.flow",
    "Flow": "navigation.flow",
    "default_registry": "navigation.steps",
    "build_registry": "navigation.steps",
    "CredentialStore": "navigation.credentials",
    "NavigationError": "navigation.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'navigation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
