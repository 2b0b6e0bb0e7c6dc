"""The fixed benchmark batch: two fixture-site flows, written as Recorder JSON into a work folder.

Why the flows live here and not in ``engine.cli.commands.demo``: a baseline is
only comparable while the batch it measured stays the same, so the bench
owns its flows and stamps :data:`BATCH_VERSION` into every baseline.

``form`` fills and submits a form (fresh browser context per job, no
credential); ``canvas-login`` signs in on a canvas-drawn form with a
secret put on the clipboard, as job credential ``fixture/alice`` (credential
lock + the credential's persistent profile).  Jobs alternate in a fixed
pattern: two form jobs, one canvas job.

The deliberate slowdown (``inject_delay_ms``) is a real change to what the
engine runs: after every step the builder inserts a ``waitForExpression``
step whose expression is a promise resolving after that many ms in the
page, so the delay is spent inside the job, in the browser, through the
normal step chain (and shows up in the step's phase).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from navigation.fixture_site import LOGIN_LAYOUT

BATCH_VERSION = 1
FLOW_NAMES = ("form", "canvas")
CREDENTIAL_SCOPE = "fixture/alice"
SECRET_NAME = "alice_password"
SECRET_VALUE = "correct horse"

FORM_FLOW: dict[str, Any] = {
    "title": "form",
    "steps": [
        {"type": "setViewport", "width": 1024, "height": 768, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        {"type": "navigate", "url": "${BASE_URL}/form.html", "phase": "Open",
         "assertedEvents": [{"type": "navigation", "title": "Drover form"}]},
        {"type": "change", "selectors": [["aria/Name[role=\"textbox\"]"], ["#name"]], "value": "${name}",
         "phase": "Fill"},
        {"type": "change", "selectors": [["#color"]], "value": "blue", "phase": "Fill"},
        {"type": "click", "selectors": [["aria/Send the form"], ["#submit"]], "phase": "Submit",
         "assertedEvents": [{"type": "navigation", "title": "Drover result"}]},
        {"type": "waitForExpression", "phase": "Check",
         "expression": "document.querySelector('#out-name').textContent === '${name}'"},
    ],
}


def _centre(name: str) -> dict[str, float]:
    r = LOGIN_LAYOUT[name]
    return {"offsetX": r["x"] + r["w"] / 2, "offsetY": r["y"] + r["h"] / 2}


def _typed(text: str) -> list[dict[str, Any]]:
    return [s for ch in text for s in ({"type": "keyDown", "key": ch}, {"type": "keyUp", "key": ch})]


CANVAS_FLOW: dict[str, Any] = {
    "title": "canvas-login",
    "steps": [
        {"type": "navigate", "url": "${BASE_URL}/canvas_login.html", "phase": "Open"},
        {"type": "click", "selectors": [["#login"]], **_centre("user"), "phase": "Login"},
        *[{**s, "phase": "Login"} for s in _typed("alice")],
        {"type": "click", "selectors": [["#login"]], **_centre("password"), "phase": "Login"},
        {"type": "clip", "value": {"secret": SECRET_NAME}, "phase": "Login"},
        {"type": "click", "selectors": [["#login"]], **_centre("paste"), "phase": "Login"},
        {"type": "click", "selectors": [["#login"]], **_centre("login"), "phase": "Login"},
        {"type": "waitForElement", "selectors": [["#status[data-state=\"ok\"]"]], "phase": "Check"},
    ],
}

FLOWS: dict[str, dict[str, Any]] = {"form": FORM_FLOW, "canvas": CANVAS_FLOW}
TITLES: dict[str, str] = {key: flow["title"] for key, flow in FLOWS.items()}


def with_delay(flow: dict[str, Any], delay_ms: float) -> dict[str, Any]:
    """The flow with a ``delay_ms`` in-page wait after every step (the deliberate slowdown)."""
    if delay_ms <= 0:
        return flow
    wait = f"new Promise(r => setTimeout(() => r(true), {float(delay_ms):g}))"
    steps: list[dict[str, Any]] = []
    for step in flow["steps"]:
        steps.append(step)
        extra = {"type": "waitForExpression", "expression": wait}
        if step.get("phase"):
            extra["phase"] = step["phase"]
        steps.append(extra)
    return {**flow, "steps": steps}


def job_flows(jobs: int, flows: tuple[str, ...]) -> list[str]:
    """Which flow each job runs: the fixed pattern form, form, canvas (only the chosen flows)."""
    pattern = [f for f in ("form", "form", "canvas") if f in flows] or list(flows)
    return [pattern[i % len(pattern)] for i in range(jobs)]


@dataclass(frozen=True, slots=True)
class BatchFiles:
    batch: Path
    credentials: Path
    flows: dict[str, Path]  # flow key -> file


def write_credentials(folder: Path) -> Path:
    path = folder / "credentials.json"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps({SECRET_NAME: SECRET_VALUE}))
    return path


def write_batch(folder: Path, *, base_url: str, jobs: int, flows: tuple[str, ...], inject_delay_ms: float,
                tag: str) -> BatchFiles:
    """Flow files and a JSON Lines batch of ``jobs`` jobs in ``folder`` (names carry ``tag``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in flows:
        path = folder / f"{key}-{tag}.json"
        path.write_bytes(orjson.dumps(with_delay(FLOWS[key], inject_delay_ms)))
        paths[key] = path
    batch = folder / f"batch-{tag}.jsonl"
    with batch.open("wb") as fh:
        for i, key in enumerate(job_flows(jobs, flows)):
            job: dict[str, Any] = {"id": f"bench-{i:04d}", "flow": paths[key].name, "retries": 1,
                                   "vars": {"BASE_URL": base_url, "name": f"Ada {i}"}}
            if key == "canvas":
                job["credential"] = CREDENTIAL_SCOPE
            fh.write(orjson.dumps(job) + b"\n")
    return BatchFiles(batch, write_credentials(folder), paths)


__all__ = ["BATCH_VERSION", "FLOW_NAMES", "FLOWS", "TITLES", "FORM_FLOW", "CANVAS_FLOW", "CREDENTIAL_SCOPE",
           "SECRET_NAME", "SECRET_VALUE", "BatchFiles", "job_flows", "with_delay", "write_batch",
           "write_credentials"]
