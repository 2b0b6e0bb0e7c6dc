"""``python -m engine run FOLDER|GLOB|*.json``: each recording once as a job; ``--base-url`` rewrites origins."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDED_AT = "https://shop.example"


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def outcomes(state: Path) -> dict[str, str]:
    with sqlite3.connect(state / "results.sqlite") as db:
        return dict(db.execute("SELECT job_id, outcome FROM outcomes").fetchall())


def recording(path: str, title: str, origin: str) -> dict:
    return {"title": title, "steps": [
        {"type": "setViewport", "width": 800, "height": 600, "deviceScaleFactor": 1, "isMobile": False,
         "hasTouch": False, "isLandscape": False},
        {"type": "navigate", "url": f"{origin}{path}",
         "assertedEvents": [{"type": "navigation", "url": f"{origin}{path}", "title": title}]},
    ]}


@pytest.mark.chromium
@pytest.mark.slow
def test_a_folder_of_recordings_runs_each_once_with_its_origin_rewritten(tmp_path, site):
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, path, title in (("form", "/form.html", "Drover form"), ("echo", "/echo.html", "Drover echo")):
        (folder / f"{name}.json").write_text(json.dumps(recording(path, title, RECORDED_AT)))
    (folder / "notes.txt").write_text("not a recording")
    state = tmp_path / "state"
    done = engine("run", str(folder), "--base-url", site.base_url, "--workers", "1", "--state-dir", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes(state) == {"echo": "passed", "form": "passed"}
    assert f"origins rewritten to {site.base_url} (4 URL(s))" in done.stdout
    assert json.loads((folder / "form.json").read_text())["steps"][1]["url"].startswith(RECORDED_AT)  # untouched

    # a glob of recordings that already point at the site, no --base-url
    (folder / "direct.json").write_text(json.dumps(recording("/frames.html", "Drover frames", site.base_url)))
    state = tmp_path / "state-glob"
    done = engine("run", str(folder / "d*.json"), "--workers", "1", "--state-dir", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes(state) == {"direct": "passed"}


def test_bad_recordings_input_is_refused_and_leaves_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    state = tmp_path / "state"
    done = engine("run", str(empty), "--state-dir", str(state))
    assert done.returncode == 2 and "no recordings (*.json) found" in done.stderr, done.stderr
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "a.json").write_text(json.dumps(recording("/form.html", "Drover form", RECORDED_AT)))
    done = engine("run", str(flows), "--base-url", "ftp://nope", "--state-dir", str(state))
    assert done.returncode == 2 and "--base-url must be an http" in done.stderr, done.stderr
    (flows / "b.json").write_text('{"title": "broken", "steps": [')
    done = engine("run", str(flows), "--base-url", "http://127.0.0.1:9", "--state-dir", str(state))
    assert done.returncode == 2 and str(flows / "b.json") in done.stderr, done.stderr
    assert not state.exists()  # a rejected batch leaves no state directory
    batch = tmp_path / "batch.jsonl"
    batch.write_text("")
    done = engine("run", str(batch), "--base-url", "http://127.0.0.1:9", "--state-dir", str(state))
    assert done.returncode == 2 and "JSON Lines batch" in done.stderr, done.stderr
