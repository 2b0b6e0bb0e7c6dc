"""``python -m bench concurrency``: the latency-bound batch in every shape the engine supports, figures per shape."""
from __future__ import annotations

import orjson

from bench._concurrency import LATENCY_FLOW, shapes, write_batch
from navigation.steps.registry import substitute
from tests.bench.test_bench_cli import bench, real_chromium


def test_the_shapes_of_one_concurrency():
    assert [s.label for s in shapes(8)] == ["8 x 1", "1 x 8", "4 x 2", "auto"]
    assert [(s.workers, s.sessions) for s in shapes(3, auto=False)] == [(3, 1), (1, 3)]
    waits = [s for s in LATENCY_FLOW["steps"] if s["type"] == "navigate" and "/slow?" in s["url"]]
    assert len(waits) == 2  # two latency-bound navigations around the form


def test_every_job_waits_on_a_url_of_its_own(tmp_path):
    # Pages sharing a context share its HTTP cache, whose lock serialises concurrent GETs of one URL:
    # with one /slow URL for all, 8 page-isolated sessions of one browser waited each other into timeouts.
    batch = write_batch(tmp_path, "http://127.0.0.1:1", jobs=3, delay_ms=250)
    urls = []
    for line in batch.read_text().splitlines():
        variables = orjson.loads(line)["vars"]
        urls.append([substitute(s["url"], variables) for s in LATENCY_FLOW["steps"] if "/slow?" in s.get("url", "")])
    assert all(u.startswith("http://127.0.0.1:1/slow?ms=250&") for job in urls for u in job)
    assert len({u for job in urls for u in job}) == 3  # one per job (a job's two waits may share one)


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


def test_a_chromium_that_is_not_there_is_refused_before_anything_runs(tmp_path):
    r = bench("concurrency", "-W", "2", "--jobs", "2", "--chromium", str(tmp_path / "no-such-chrome"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"browser.binary = '{tmp_path / 'no-such-chrome'}' is not an executable file" in r.stdout + r.stderr
    assert "round 1" not in r.stdout + r.stderr


@real_chromium
def test_two_browsers_side_by_side_get_a_table_each(tmp_path):
    """``--chromium`` twice: every shape on each browser in the same rounds, each table against its own W x 1."""
    out = tmp_path / "conc.json"
    r = bench("concurrency", "-W", "2", "--jobs", "2", "--delay-ms", "100", "--no-auto", "--json", str(out),
              "--chromium", "chromium", "--chromium", "chromium-headless-shell")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = orjson.loads(out.read_bytes())["rows"]
    assert {(row["shape"], row["browser"]) for row in rows} == {
        (shape, browser) for shape in ("2 x 1", "1 x 2") for browser in ("chromium", "chromium-headless-shell")}
    assert all(row["failed"] == 0 for row in rows), rows
    assert "on chromium:" in r.stdout and "on chromium-headless-shell:" in r.stdout
