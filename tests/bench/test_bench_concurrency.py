"""``python -m bench concurrency``: the latency-bound batch in every shape the engine supports, figures per shape."""
from __future__ import annotations

import orjson

from bench._concurrency import LATENCY_FLOW, shapes
from tests.bench.test_bench_cli import bench, real_chromium


def test_the_shapes_of_one_concurrency():
    assert [s.label for s in shapes(8)] == ["8 x 1", "1 x 8", "4 x 2", "auto"]
    assert [(s.workers, s.sessions) for s in shapes(3, auto=False)] == [(3, 1), (1, 3)]
    waits = [s for s in LATENCY_FLOW["steps"] if s["type"] == "navigate" and "/slow?" in s["url"]]
    assert len(waits) == 2  # two latency-bound navigations around the form


@real_chromium
def test_concurrency_smoke_reports_each_shape_with_its_memory(tmp_path):
    out = tmp_path / "conc.json"
    r = bench("concurrency", "-W", "2", "--jobs", "4", "--delay-ms", "200", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["shape"]: row for row in orjson.loads(out.read_bytes())["rows"]}
    assert set(rows) == {"2 x 1", "1 x 2", "auto"}, rows
    assert "auto: " in r.stdout and "the best fixed shape's throughput" in r.stdout
    for row in rows.values():
        assert row["failed"] == 0 and row["mean_jobs_per_s"] > 0
        assert row["p95_ms"] >= 2 * 200  # two waits of 200 ms at least
        assert 0 < row["peak_pss_mb"] <= row["peak_rss_mb"]
    assert "PSS MB" in r.stdout
