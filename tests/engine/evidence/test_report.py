"""The evidence package: the report and the drilldown from a soak's run directory.

Sample run directories are built in ``tmp_path`` (:mod:`tests.engine.evidence.sample_runs`).
The last test opens the report in headless Chromium through our own CDP
client and keeps a screenshot next to it.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from coordination.telemetry_context import STREAMS, bind, stream_logger
from engine.cli.commands import report as report_cmd
from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_INPUT, EXIT_OK
from engine.evidence.report import (
    DRILLDOWN_FILE,
    MAX_POINTS_PER_CHART,
    REPORT_FILE,
    ReportInputError,
    build_evidence,
    downsample,
)
from engine.records.streams import install, read_stream
from tests.engine.evidence.sample_runs import (DATA, FAILURES, FLOWS, PHASES, RUN_ID, T0, alerts, make_run, points,
                                               read_page, render_in_chromium, summary)


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    return make_run(tmp_path, with_alerts=alerts(), failures=FAILURES)


# -- the report ------------------------------------------------------------------------------------


def test_full_report_has_every_plot_and_table(full_run):
    path = build_evidence(full_run)
    assert path == full_run / REPORT_FILE
    text, page = read_page(full_run)
    for ident in ("run-header", "verdict", "kpis", "latency-over-time", "phase-percentiles-chart-svg",
                  "throughput-per-worker-svg", "error-rate-svg", "slo-status-table", "failure-matrix",
                  "resource-browser-rss-mb-svg", "resource-fds-svg", "resource-children-svg",
                  "resource-supervisor-rss-svg", "windows-table", "alerts-list", "drilldown-timeline",
                  "drilldown-records", "readiness-criteria", "accepted-risks"):
        page.by_id(ident)
    # one latency chart per flow, each with p50/p95/p99 lines of one point per window
    lat = [a for a in page.all("svg", "plot") if a["id"].startswith("latency-flow-")]
    assert len(lat) == len(FLOWS)
    series = [a for a in page.all("polyline", "series")]
    assert {a["data-series"] for a in series} >= {"p50", "p95", "p99", "w0", "w1", "all workers", "supervisor"}
    assert all(len(points(a)) == 6 for a in series if a["data-series"] in ("p50", "p95", "p99"))
    # the checkout SLO budget is drawn as a reference line on its chart
    assert "SLO p(95) &lt; 800 ms" in text
    # per-phase bars: three per phase
    assert len(page.all("rect", "bar")) == 3 * len(PHASES)
    # failure matrix: a row per category, the unresolved one first, trace hints for the examples
    matrix = text[text.index('id="failure-matrix"'):text.index("</table>", text.index('id="failure-matrix"'))]
    assert matrix.index("<b>auth</b>") < matrix.index("<b>navigation</b>")
    assert f"python -m engine trace {RUN_ID}/j0002/a1</code>" in matrix
    assert "+1 more in failure_matrix.json" in matrix
    assert "browser restart ×1" in matrix and "quarantine ×3" in matrix and "2 job(s) never passed" in matrix
    assert "<code>AuthError</code> wrong password" in matrix
    assert "at audit.jsonl:4711" in matrix and "trace audit.jsonl" not in matrix  # a location, not a chain
    # the all-clear categories are listed too, after every category that failed
    assert matrix.index("<b>telemetry</b>") < matrix.index(">persistence<") < matrix.index(">timeout<")
    # verdict and accepted risks
    assert "NO-GO" in page.plain and "legacy baseline measured on the old host" in page.plain
    assert page.plain.count("waived") >= 1
    # alerts, in time order
    alert_rows = text[text.index('id="alerts-list"'):].split("</table>")[0]
    assert alert_rows.index("worker w1 restarted") < alert_rows.index("p(95) &lt; 800 breached")
    assert "2 critical" not in page.plain and "1 critical" in page.plain
    assert "100.0%" in page.plain  # duration vs target


def test_the_soaks_own_verdict_shows_its_reasons(tmp_path):
    doc = summary(2, verdict={"go": False, "reasons": ["halted: error rate > 10% for 3 windows", "SLO breached"]})
    doc.update(status="interrupted", cycles=17)
    run_dir = make_run(tmp_path, doc=doc, streams=False)
    build_evidence(run_dir)
    text, page = read_page(run_dir)
    assert "NO-GO" in page.plain and "Why no-go" in page.plain
    assert "halted: error rate &gt; 10% for 3 windows" in text and "SLO breached" in page.plain
    assert "python -m engine readiness" in page.plain  # where the full criteria come from
    assert "Batch cycles 17" in page.plain and 'class="badge warn">interrupted<' in text


def test_slo_status_counts_pass_fail_and_no_data_per_window(tmp_path):
    doc = summary(4)
    doc["windows"][1]["slo"][0].update(value=850.0, ok=False)
    doc["windows"][2]["slo"] = [s for s in doc["windows"][2]["slo"] if s["metric"] != "flow:checkout"]
    doc["windows"][3]["slo"][0].update(value=None, ok=None)
    run_dir = make_run(tmp_path, doc=doc, streams=False)
    build_evidence(run_dir)
    text, page = read_page(run_dir)
    table = text[text.index('id="slo-status-table"'):text.index("</table>", text.index('id="slo-status-table"'))]
    checkout = table.split("<tr")[2]  # header row, then the first SLO
    assert "flow:checkout" in checkout
    assert re.findall(r'<td class="num">(\d+)</td>', checkout) == ["1", "1", "2"]  # pass, fail, no data
    cells = re.findall(r'class="cell (\w+)"', checkout)
    assert cells == ["pass", "fail", "nodata", "nodata"]
    page.by_id("slo-per-window")


def test_drilldown_follows_a_failure_example_across_the_four_streams(full_run):
    build_evidence(full_run)
    doc = json.loads((full_run / DRILLDOWN_FILE).read_text())
    # the unresolved auth row comes first, but the streams never logged its examples: the next row's is taken
    assert doc["correlation_id"] == f"{RUN_ID}/j0002/a1"
    assert "'navigation'" in doc["reason"]
    assert doc["trace"] == f"python -m engine trace {RUN_ID}/j0002/a1"


def test_drilldown_takes_the_failed_attempt_when_the_matrix_names_it(tmp_path):
    run_dir = make_run(tmp_path, failures=[FAILURES[0]])
    build_evidence(run_dir)
    doc = json.loads((run_dir / DRILLDOWN_FILE).read_text())
    assert doc["correlation_id"] == f"{RUN_ID}/j0002/a1"
    assert doc["reason"] == "failed attempt, category 'navigation' (7 failures in the matrix)"
    assert {r["stream"] for r in doc["records"]} == set(STREAMS)
    assert all(r["correlation_id"].startswith(f"{RUN_ID}/j0002/a1") for r in doc["records"])
    assert [r["ts"] for r in doc["records"]] == sorted(r["ts"] for r in doc["records"])
    assert doc["streams"]["performance"] == 4  # three steps and the attempt timing
    _, page = read_page(run_dir)
    assert len(page.all("circle", "event")) == len(doc["records"])
    assert "HTTP 500 on /flaky" in page.plain


def test_drilldown_falls_back_to_the_first_attempt_without_failures(tmp_path):
    run_dir = make_run(tmp_path, failures=[])
    build_evidence(run_dir)
    doc = json.loads((run_dir / DRILLDOWN_FILE).read_text())
    assert doc["correlation_id"] == f"{RUN_ID}/j0001/a1"
    assert doc["reason"] == "first attempt recorded in the streams (no failures)"
    _, page = read_page(run_dir)
    assert "no failures recorded" in page.plain


def test_an_existing_drilldown_is_shown_not_replaced(full_run):
    mine = {"correlation_id": f"{RUN_ID}/j0003/a1", "reason": "picked by the soak",
            "records": [{"ts": T0, "stream": "domain", "level": "INFO", "message": "attempt started"}]}
    (full_run / DRILLDOWN_FILE).write_text(json.dumps(mine))
    build_evidence(full_run)
    assert json.loads((full_run / DRILLDOWN_FILE).read_text()) == mine
    _, page = read_page(full_run)
    assert "picked by the soak" in page.plain


def test_every_string_from_the_data_is_escaped(tmp_path):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    doc = summary(3, flows=(evil, "ok"), phases=(evil,), workers=(evil, "w1"))
    doc.update(run_id=evil, status=evil, halt_reason=evil, mode=evil)
    doc["verdict"] = {"go": True, "criteria": [{"name": evil, "value": evil, "limit": {"k": evil}, "ok": True,
                                                "waived": True, "reason": evil}], "accepted_risks": [evil]}
    doc["windows"][0]["slo"].append({"metric": evil, "expr": evil, "value": 1, "ok": True})
    fail = [{"category": evil, "count": 1, "first_seen": T0, "last_seen": T0, "examples": [evil],
             "root_cause": evil, "containment": [evil], "resolved": False}]
    alert = [{"ts": T0, "severity": evil, "rule": evil, "metric": evil, "value": evil, "threshold": evil,
              "window": evil, "message": evil}]
    run_dir = make_run(tmp_path, doc=doc, with_alerts=alert, failures=fail, streams=False)
    ops = stream_logger("domain", "tests.report")
    telemetry = install(run_dir)
    try:
        with bind(run_id=evil, correlation_id=f"{evil}/j1/a1", worker=evil):
            ops.info(evil, extra={"event": evil})
    finally:
        telemetry.close()
    (run_dir / DRILLDOWN_FILE).write_text(json.dumps({"correlation_id": evil, "reason": evil,
                                                      "records": list(read_stream(run_dir / "domain.jsonl"))}))
    build_evidence(run_dir)
    text, page = read_page(run_dir)
    assert not page.all("script") and not page.all("img")
    assert not [a for _, a in page.elements for k in a if k.startswith("on")]
    assert "&lt;script&gt;" in text
    assert evil[:30] in page.plain  # shown as text


def test_no_external_resources_and_a_strict_content_policy(full_run):
    build_evidence(full_run)
    text, page = read_page(full_run)
    assert not page.all("script") and not page.all("link") and not page.all("img")
    assert not re.search(r"(?i)\b(src|href)\s*=\s*\"(?!#)", text)
    assert not re.search(r"(?i)url\(|@import|https?://", text.replace("http://www.w3.org/2000/svg", ""))
    [csp] = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp["content"]


def test_zero_windows_and_nothing_else_recorded(tmp_path):
    doc = {"run_id": RUN_ID, "started_at": T0, "ended_at": None, "target_duration_s": 7200, "window_s": 3600,
           "workers": 2, "mode": "parallel", "status": "aborted", "halt_reason": "browser would not start",
           "windows": [], "aggregate": None, "verdict": None}
    run_dir = make_run(tmp_path, doc=doc, streams=False, slo=False)
    build_evidence(run_dir)
    text, page = read_page(run_dir)
    assert not (run_dir / DRILLDOWN_FILE).exists()
    plain = page.plain
    assert "no windows recorded" in plain and "aggregate figures not recorded" in plain
    assert "not evaluated" in plain and "browser would not start" in plain
    assert page.by_id("failure-matrix")[1].get("class") == "empty" and "Failure matrix not recorded" in plain
    assert "Alerts not recorded" in plain and "Correlation drilldown not recorded" in plain
    assert plain.count("not recorded") >= 10  # each missing file is named
    assert not page.all("polyline")


def test_one_window_draws_markers_a_single_point_line_cannot_show(tmp_path):
    run_dir = make_run(tmp_path, doc=summary(1), streams=False)
    build_evidence(run_dir)
    _, page = read_page(run_dir)
    lines = page.all("polyline", "series")
    assert lines and all(len(points(a)) == 1 for a in lines)
    assert len(page.all("circle", "marker")) >= len(lines)


def test_nan_none_and_wrong_types_show_as_no_data_and_gaps(tmp_path):
    doc = summary(5)
    doc["windows"][2]["latency"]["flow:checkout"].update(p50=float("nan"), p95=None, p99="slow")
    doc["windows"][1]["throughput"] = float("inf")
    doc["windows"][3]["resources"]["w0"]["browser_rss_mb"] = None
    doc["aggregate"]["error_rate"] = float("nan")
    doc["windows"][4]["jobs"] = "lots"
    doc["started_at"] = "yesterday"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(doc))  # json.dumps writes NaN / Infinity literals
    assert "NaN" in (run_dir / "summary.json").read_text()
    build_evidence(run_dir)
    text, page = read_page(run_dir)
    shown = page.plain.replace(str(run_dir), "RUN_DIR")
    assert not re.search(r"(?i)\b(nan|inf|infinity)\b", shown), re.findall(r"(?i).{40}\b(?:nan|inf)\b.{10}", shown)
    checkout = [a for a in page.all("polyline", "series") if a["data-series"] == "p95"][:2]
    # flow:checkout is the first chart: its p95 line is cut in two around the missing window
    at = text.index('id="latency-flow-0-svg"')
    first_chart = text[at:text.index("</svg>", at)]
    assert first_chart.count('data-series="p95"') == 2, checkout
    assert "no data" in page.plain


def test_thousands_of_windows_stay_small(tmp_path):
    workers = tuple(f"w{i}" for i in range(8))
    doc = summary(3000, window_s=30.0, flows=tuple(f"flow-{i}" for i in range(30)),
                  phases=PHASES + ("scroll", "hover", "doubleClick"), workers=workers)
    many_failures = [dict(FAILURES[i % 3], category=f"cat{i}") for i in range(300)]
    run_dir = make_run(tmp_path, doc=doc, with_alerts=alerts(5000), failures=many_failures)
    build_evidence(run_dir)
    size = (run_dir / REPORT_FILE).stat().st_size
    assert size < 5 * 1024 * 1024, size
    text, page = read_page(run_dir)
    for svg_id in ("throughput-per-worker-svg", "resource-browser-rss-mb-svg", "latency-flow-0-svg"):
        chart = text[text.index(f'id="{svg_id}"'):text.index("</svg>", text.index(f'id="{svg_id}"'))]
        n = sum(len(p.split()) for p in re.findall(r'points="([^"]*)"', chart))
        assert 0 < n <= MAX_POINTS_PER_CHART + 20, (svg_id, n)
    assert len([a for a in page.all("svg", "plot") if a["id"].startswith("latency-flow-")]) == 24
    assert "300 of 5,000 alerts shown" in page.plain
    assert "200 of 300 rows shown" in page.plain
    assert "with the highest error rate of 3,000" in page.plain
    assert "3,000 windows: where a plot has fewer points than that, each point is the mean" in page.plain
    assert page.plain.count("3,000 windows: where") == 3  # once per section with plots over time
    assert page.all("polygon", "band")  # latency: the min-max envelope around the mean


def test_downsample_keeps_the_spikes_in_the_band_and_the_order():
    pts = [(float(i), 100.0) for i in range(10000)]
    pts[4321] = (4321.0, 9999.0)
    pts[777] = (777.0, 1.0)
    out = downsample(pts, 400)
    assert len(out) == 400
    assert max(hi for _, _, _, hi in out) == 9999.0 and min(lo for _, _, lo, _ in out) == 1.0
    assert all(lo <= mean <= hi for _, mean, lo, hi in out)
    assert [x for x, *_ in out] == sorted(x for x, *_ in out)
    assert downsample(pts[:50], 400) == [(x, y, y, y) for x, y in pts[:50]]
    gap = [(float(i), None) for i in range(1000)]
    assert all(b[1:] == (None, None, None) for b in downsample(gap, 100))


def test_the_documented_sample_run_builds(tmp_path):
    run_dir = tmp_path / "soak_run"
    shutil.copytree(DATA / "soak_run", run_dir)
    build_evidence(run_dir)
    _, page = read_page(run_dir)
    assert "GO" in page.plain and "r20261125-102745-7f3a" in page.plain
    assert len(page.all("rect", "bar")) == 9  # three phases
    assert not (run_dir / DRILLDOWN_FILE).exists()  # no streams in the sample: nothing to drill into


def test_unreadable_alert_lines_are_named_not_hidden(full_run):
    with open(full_run / "alerts.jsonl", "a") as fh:
        fh.write('{"ts": 1, "severity": "crit\n[1, 2]\n')
    build_evidence(full_run)
    _, page = read_page(full_run)
    assert "alerts.jsonl line 5: not JSON (skipped)" in page.plain
    assert "alerts.jsonl line 6: not an object (skipped)" in page.plain


def test_build_without_summary_is_an_input_error(tmp_path):
    with pytest.raises(ReportInputError, match="no summary.json"):
        build_evidence(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ReportInputError, match=r"not JSON \(line 1"):
        build_evidence(tmp_path)
    (tmp_path / "summary.json").write_text("[]")
    with pytest.raises(ReportInputError, match="expected a JSON object"):
        build_evidence(tmp_path)


# -- the command -----------------------------------------------------------------------------------


def command(run_dir: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = report_cmd.run(argparse.Namespace(run_dir=str(run_dir)), Console(out, err))
    return code, out.getvalue(), err.getvalue()


def test_command_rebuilds_and_prints_the_path(full_run):
    code, out, err = command(full_run)
    assert (code, err) == (EXIT_OK, "")
    assert out == f"{full_run / REPORT_FILE}\n"
    first = (full_run / REPORT_FILE).stat().st_mtime_ns
    (full_run / "alerts.jsonl").write_text("")
    assert command(full_run)[0] == EXIT_OK
    assert (full_run / REPORT_FILE).stat().st_mtime_ns >= first
    assert "no alerts raised" in read_page(full_run)[1].plain


def test_command_without_summary_exits_2_with_a_clear_message(tmp_path):
    code, out, err = command(tmp_path)
    assert (code, out) == (EXIT_INPUT, "")
    assert err.startswith(f"error: {tmp_path}: no summary.json here")
    code, _, err = command(tmp_path / "nope")
    assert code == EXIT_INPUT and "no such directory" in err
    (tmp_path / "summary.json").write_text("{")
    code, _, err = command(tmp_path)
    assert code == EXIT_INPUT and "not JSON" in err


def test_command_module_has_the_subcommand_shape():
    parser = argparse.ArgumentParser()
    report_cmd.add_arguments(parser)
    assert parser.parse_args(["some/dir"]).run_dir == "some/dir"
    assert report_cmd.NAME == "report" and report_cmd.HELP


def test_through_the_cli_dispatcher(full_run, tmp_path, monkeypatch):
    from engine.cli import main as cli

    if "report" not in cli.COMMANDS:  # until engine/cli.py lists it
        monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + ("report",))
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["report", str(full_run)], Console(out, err)) == EXIT_OK
    assert out.getvalue() == f"{full_run / REPORT_FILE}\n" and err.getvalue() == ""
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["report", str(tmp_path)], Console(out, err)) == EXIT_INPUT
    assert "no summary.json" in err.getvalue() and out.getvalue() == ""


@pytest.mark.chromium
@pytest.mark.slow
def test_report_renders_in_chromium_and_leaves_a_screenshot(full_run, browser):
    build_evidence(full_run)
    url = (full_run / REPORT_FILE).resolve().as_uri()
    shown = render_in_chromium(browser, full_run / REPORT_FILE)
    got = shown.got
    # every plot has a size, every line has points and extent, the bars and the timeline are drawn
    assert len(got["plots"]) >= 10, got
    for plot in got["plots"]:
        assert plot["size"][0] > 100 and plot["size"][1] > 50, plot
        assert all(n > 0 for n in plot["polylines"]), plot
    lines = [p for p in got["plots"] if p["polylines"]]
    assert len(lines) >= 9 and all(all(s > 0 for s in p["lineSizes"]) for p in lines)
    assert {p["id"]: p["bars"] for p in got["plots"]}["phase-percentiles-chart-svg"] == 3 * len(PHASES)
    assert {p["id"]: p["events"] for p in got["plots"]}["drilldown-timeline"] > 10
    assert got["matrix"]["rows"] == len(FAILURES) and min(got["matrix"]["size"]) > 50
    assert not got["overflow"], "the page scrolls sideways at 1280 px"
    # nothing went wrong on the page, and it asked the network for nothing but itself
    assert shown.problems == ([], [], []), shown.problems
    assert shown.requests <= {url}, shown.requests
    # the whole page as an artifact next to the report
    png = shown.png
    (full_run / "report.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == 1280 and height > 2000
