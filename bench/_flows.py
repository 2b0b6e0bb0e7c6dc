"""The fixed benchmark batch: the demo's two fixture-site flows, written as Recorder JSON into a work folder.

The flows themselves are the demo's (:mod:`engine.cli.demo_flows`, one
source; bench may import engine, not the reverse).  A baseline is only
comparable while the batch it measured stays the same, and the demo may
change for the demo's sake; so the bench pins a fingerprint of the flows
(:data:`BATCH_FINGERPRINT`, a sha256 of their canonical JSON) next to
:data:`BATCH_VERSION`, the number it stamps into every baseline.  When the
demo's flows (or the fixture-site layout they read) change, importing the
bench fails with :class:`BatchChanged` until someone bumps the version
and pins the new fingerprint — after which the gate refuses old baselines
("save a new baseline") instead of comparing two different batches.

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

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.cli.demo_flows import CANVAS_FLOW, CREDENTIAL_SCOPE, FORM_FLOW, SECRET_NAME, SECRET_VALUE

BATCH_VERSION = 1
BATCH_FINGERPRINT = "6b125d4e4a35734c58412c17789bf257b718f92456866d88e4818582fcb279ab"  # the flows of version 1
FLOW_NAMES = ("form", "canvas")

FLOWS: dict[str, dict[str, Any]] = {"form": FORM_FLOW, "canvas": CANVAS_FLOW}
TITLES: dict[str, str] = {key: flow["title"] for key, flow in FLOWS.items()}


class BatchChanged(Exception):
    """The flows differ from the ones :data:`BATCH_VERSION` measured: the version must be bumped, not reused."""


def fingerprint(flows: dict[str, dict[str, Any]]) -> str:
    """sha256 of the flows' canonical JSON (sorted keys): equal exactly when the batch runs the same steps."""
    return hashlib.sha256(orjson.dumps(flows, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_fingerprint(flows: dict[str, dict[str, Any]], expected: str = BATCH_FINGERPRINT) -> None:
    """Raise :class:`BatchChanged` unless ``flows`` are the ones the current batch version pinned."""
    found = fingerprint(flows)
    if found != expected:
        raise BatchChanged(
            f"the demo's flows (engine/cli/demo_flows.py) are not the ones bench batch version {BATCH_VERSION} "
            f"measured (fingerprint {found}, pinned {expected}): in bench/_flows.py set BATCH_VERSION = "
            f"{BATCH_VERSION + 1} and BATCH_FINGERPRINT = {found!r}, then save new baselines")


check_fingerprint(FLOWS)  # at import: no bench run, baseline or comparison on a batch that silently changed


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


__all__ = ["BATCH_VERSION", "BATCH_FINGERPRINT", "BatchChanged", "check_fingerprint", "fingerprint", "FLOW_NAMES",
           "FLOWS", "TITLES", "FORM_FLOW", "CANVAS_FLOW", "CREDENTIAL_SCOPE", "SECRET_NAME", "SECRET_VALUE",
           "BatchFiles", "job_flows", "with_delay", "write_batch", "write_credentials"]
