"""One place builds executors: a setting wired in ``engine.execution.assembly`` reaches every path."""
from __future__ import annotations

import json
import os

from engine.config import Settings
from engine.execution import assembly
from engine.execution.runs import RunRequest, execute, prepare
from tests.engine.execution.test_run import LIGHT_FLOW, write_batch


def test_a_setting_wired_in_assembly_reaches_the_forked_worker_and_the_legacy_path(tmp_path, site, monkeypatch):
    seen = tmp_path / "seen"
    seen.mkdir()
    real = assembly.build_executor

    def with_a_fake_setting(s, place, **kw):
        """The one spot: every executor gets a value derived from the settings (here: written down)."""
        executor = real(s, place, **kw)
        record = {"worker": kw["worker_name"], "pid": os.getpid(), "retry_base": executor.retry_profile.base,
                  "isolation": executor.isolation, "fake": f"from-settings-{s.retry_base}"}
        (seen / f"{kw['worker_name']}-{os.getpid()}.json").write_text(json.dumps(record))
        return executor

    monkeypatch.setattr(assembly, "build_executor", with_a_fake_setting)
    batch = write_batch(tmp_path, site, 2, LIGHT_FLOW)
    for mode in ("parallel", "legacy"):
        s = Settings(workers=1, state_dir=str(tmp_path / f"state-{mode}"), mode=mode, retry_base=0.777,
                     job_isolation="page")
        req = RunRequest(str(batch), s)
        summary = execute(req, prepare(req))
        assert summary.outcomes == {"passed": 2, "failed": 0, "pending": 0}
    records = [json.loads(p.read_text()) for p in sorted(seen.iterdir())]
    by_worker = {r["worker"]: r for r in records}
    assert set(by_worker) == {"w0", "legacy"}, records
    assert by_worker["w0"]["pid"] != os.getpid()  # really the forked worker
    assert by_worker["legacy"]["pid"] == os.getpid()  # really the in-process rollback path
    for r in records:
        assert (r["retry_base"], r["isolation"], r["fake"]) == (0.777, "page", "from-settings-0.777")


FAILING_FLOW = {"title": "fails", "steps": [
    {"type": "navigate", "url": "${BASE_URL}/form.html"},
    {"type": "click", "selectors": [["#no-such-element"]], "timeout": 500},
]}


def test_failure_screenshots_off_in_the_settings_leaves_the_dom_and_no_png(tmp_path, site):
    batch = write_batch(tmp_path, site, 1, FAILING_FLOW, retries=0)
    pngs = {}
    for shots in (1, 0):
        s = Settings(workers=1, state_dir=str(tmp_path / f"state-{shots}"), mode="legacy", failure_screenshots=shots)
        req = RunRequest(str(batch), s)
        prepared = prepare(req)
        summary = execute(req, prepared)
        assert summary.outcomes["failed"] == 1
        files = sorted(p.suffix for p in (prepared.run_dir / "artifacts").rglob("*") if p.is_file())
        assert ".html" in files, files
        pngs[shots] = files.count(".png")
    assert pngs == {1: 1, 0: 0}
