"""``soak --metrics FILE``: the file is rewritten at every window while the soak runs, not only at its end."""
from __future__ import annotations

import time

import pytest

from engine.cli.exit_codes import EXIT_OK
from tests.engine.execution.test_run import LIGHT_FLOW, start_engine, write_batch


def _read(path) -> tuple[str, float, float, float] | None:
    """(status, windows closed, jobs passed, written at) from the file as a scraper parses it; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [info] = families["drover_run_info"].samples
    passed = next(s.value for s in families["drover_jobs"].samples if s.labels == {"outcome": "passed"})
    return (info.labels["status"], families["drover_soak_windows"].samples[0].value, passed,
            families["drover_metrics_written_timestamp_seconds"].samples[0].value)


@pytest.mark.slow
@pytest.mark.chromium
def test_the_metrics_file_is_rewritten_at_every_window_while_the_soak_runs(tmp_path, site):
    batch = write_batch(tmp_path, site, 2, LIGHT_FLOW, retries=0)
    metrics = tmp_path / "soak.prom"
    proc = start_engine("soak", str(batch), "--duration", "7s", "--window", "2s", "--workers", "1",
                        "--state-dir", str(tmp_path / "state"), "--metrics", str(metrics))
    seen: list[tuple[str, float, float, float]] = []
    deadline = time.monotonic() + 240  # bounded: the soak itself takes about 7 s after its browser is up
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            figures = _read(metrics)
            if figures is not None and (not seen or figures != seen[-1]):
                seen.append(figures)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == EXIT_OK, err
    running = [f for f in seen if f[0] == "running"]
    # at least two windows were written while the soak ran, each later one with more windows and a later stamp
    assert len(running) >= 2, seen
    assert [f[1] for f in running] == sorted({f[1] for f in running}) and running[0][1] >= 1, seen
    assert all(b[3] > a[3] for a, b in zip(running, running[1:])), seen
    final = _read(metrics)
    assert final is not None and final[0] == "completed" and final[1] >= running[-1][1] >= 2, (final, seen)
    assert final[2] >= running[-1][2] and final[2] > 0
