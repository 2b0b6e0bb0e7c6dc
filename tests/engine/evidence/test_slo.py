"""SLO files: k6-style expressions, errors that point at the place, three outcomes per threshold."""
from __future__ import annotations

import json
import math
import operator
from pathlib import Path

import os

import pytest
from hypothesis import given, settings, strategies as st

from engine.errors import ConfigError
from engine.records.metrics import Histogram
from engine.evidence.slo import (AGGREGATES, DEFAULT_WINDOW_S, METRIC_AGGREGATES, OPERATORS, SLOSpec, load_slo,
                        parse_duration, parse_expression)

ISSUE_EXAMPLE = {
    "window": "1h",
    "thresholds": {
        "flow:checkout": ["p(95) < 800", {"threshold": "p(99) < 1500", "abortOnFail": True}],
        "phase:click": ["p(95) < 300", "avg < 200"],
        "error_rate": ["rate < 0.01"],
        "throughput": ["value > 2.0"],
        "unowned_uses": ["count == 0"]},
    "waivers": [{"criterion": "throughput_vs_legacy",
                 "reason": "2-core CI box; measured 3.1x, accepted until the 8-core run"}]}


def window(**overrides) -> dict:
    """The shared window-metrics shape the soak loop produces."""
    w = {"index": 0, "start": 1795571265.2, "end": 1795574865.2,
         "jobs": {"passed": 120, "failed": 3}, "error_rate": 0.024, "throughput": 1.2,
         "throughput_per_worker": {"w0": 0.6, "w1": 0.6},
         "latency": {"flow:checkout": {"n": 60, "p50": 410.0, "p95": 780.0, "p99": 900.0, "max": 950.0, "avg": 430.0},
                     "phase:click": {"n": 300, "p50": 90.0, "p95": 310.0, "p99": 400.0, "max": 420.0, "avg": 120.0}},
         "resources": {"w0": {"browser_rss_mb": 310.0, "fds": 42, "children": 7}},
         "supervisor_rss_mb": 61.0, "unowned_uses": 0, "invalid_transitions": 0, "duplicates": 0,
         "worker_restarts": 0, "idle_workers_s": 0.0, "queued": 0}
    w.update(overrides)
    return w


def write(tmp_path: Path, data, name: str = "slo.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def statuses(spec: SLOSpec, w: dict) -> dict[tuple[str, str], str]:
    return {(r.metric, r.expr): r.status for r in spec.evaluate(w)}


# -- loading ------------------------------------------------------------------------------------------


def test_the_issue_example_loads_and_each_threshold_is_judged_against_a_window(tmp_path):
    spec = load_slo(write(tmp_path, ISSUE_EXAMPLE))
    assert spec.window_s == 3600.0
    assert [t.metric for t in spec.thresholds] == ["flow:checkout", "flow:checkout", "phase:click", "phase:click",
                                                    "error_rate", "throughput", "unowned_uses"]
    assert [t.abort_on_fail for t in spec.thresholds][:2] == [False, True]
    assert spec.waiver("throughput_vs_legacy").reason.startswith("2-core CI box")
    assert spec.waiver("p95") is None
    assert statuses(spec, window()) == {
        ("flow:checkout", "p(95) < 800"): "pass", ("flow:checkout", "p(99) < 1500"): "pass",
        ("phase:click", "p(95) < 300"): "fail", ("phase:click", "avg < 200"): "pass",
        ("error_rate", "rate < 0.01"): "fail", ("throughput", "value > 2.0"): "fail",
        ("unowned_uses", "count == 0"): "pass"}
    [click95] = [r for r in spec.evaluate(window(index=4)) if r.expr == "p(95) < 300"]
    assert (click95.value, click95.ok, click95.window) == (310.0, False, 4)
    assert click95.to_dict()["status"] == "fail"


def test_the_metric_name_itself_is_an_aggregate_exactly_as_the_issue_writes_it(tmp_path):
    spec = load_slo(write(tmp_path, {"thresholds": {"error_rate": ["error_rate < 0.01"],
                                                    "throughput": ["throughput > 2.0"],
                                                    "unowned_uses": ["unowned_uses == 0"]}}))
    assert spec.window_s == DEFAULT_WINDOW_S
    got = statuses(spec, window(error_rate=0.005, throughput=2.5))
    assert set(got.values()) == {"pass"}
    assert statuses(spec, window(unowned_uses=1))[("unowned_uses", "unowned_uses == 0")] == "fail"


def test_toml_files_hold_the_same_budgets(tmp_path):
    path = write(tmp_path, """
window = "10m"
[thresholds]
"flow:checkout" = ["p(95) < 800", {threshold = "p(99) < 1500", abortOnFail = true}]
error_rate = ["rate < 0.05"]
[[waivers]]
criterion = "rollback_drill"
reason = "drill scheduled for the staging window"
[alerts.supervisor_memory]
threshold = 2048
""", "slo.toml")
    spec = load_slo(path)
    assert spec.window_s == 600.0
    assert [(t.metric, str(t.expression), t.abort_on_fail) for t in spec.thresholds] == [
        ("flow:checkout", "p(95) < 800", False), ("flow:checkout", "p(99) < 1500", True),
        ("error_rate", "rate < 0.05", False)]
    assert spec.waivers[0].criterion == "rollback_drill"
    assert spec.alerts["supervisor_memory"] == {"threshold": 2048}


@pytest.mark.parametrize("data, message", [
    ({"thresholds": {"flow:x": ["p(95) < 800", "p95 < 8"]}},
     'slo.json: thresholds["flow:x"][1]: cannot parse "p95 < 8": unknown aggregate \'p95\''),
    ({"thresholds": {"flow:x": [{"threshold": "p(0) < 8"}]}},
     'thresholds["flow:x"][0]: cannot parse "p(0) < 8": percentile must be in (0, 100]'),
    ({"thresholds": {"flow:x": ["p(95) =< 8"]}}, 'thresholds["flow:x"][0]: cannot parse "p(95) =< 8": expected AGG'),
    ({"thresholds": {"latency": ["p(95) < 8"]}}, "thresholds[\"latency\"]: unknown metric 'latency'"),
    ({"thresholds": {"flow:": ["p(95) < 8"]}}, "unknown metric 'flow:'"),
    ({"thresholds": {"error_rate": ["p(95) < 8"]}}, 'thresholds["error_rate"][0]: "p(95) < 8": error_rate takes'),
    ({"thresholds": {"phase:click": ["rate < 0.1"]}}, "phase:click takes p(N), avg, min, max, med, count, not rate"),
    ({"thresholds": {"phase:click": ["phase < 1"]}}, "unknown aggregate 'phase'"),
    ({"thresholds": {"flow:x": "p(95) < 8"}}, 'thresholds["flow:x"]: must be a list'),
    ({"thresholds": {"flow:x": [{"threshold": "p(95) < 8", "abortOnFail": "yes"}]}}, "abortOnFail must be true or"),
    ({"thresholds": {"flow:x": [{"threshold": "p(95) < 8", "abort": True}]}}, "unknown key(s) ['abort']"),
    ({"thresholds": {"flow:x": [{"abortOnFail": True}]}}, 'needs "threshold"'),
    ({"thresholds": {"flow:x": [800]}}, "an expression must be a string"),
    ({"threshold": {}}, "unknown key(s) ['threshold']"),
    ({"window": "1 hour"}, 'slo.json: window: cannot parse duration "1 hour"'),
    ({"window": 0}, "window must be > 0 seconds"),
    ({"waivers": [{"criterion": "p95_budget"}]}, "waivers[0]: reason must be a non-empty string"),
    ({"waivers": [{"criterion": "duration", "reason": "x"}, {"criterion": "duration", "reason": "y"}]}, "waived twice"),
    ({"alerts": []}, "alerts must be an object"),
    ([], "the top level must be an object"),
])
def test_bad_files_are_refused_with_the_file_the_place_and_the_expression(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_slo(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and type(info.value).category == "input"


@pytest.mark.timeout(30)
def test_unreadable_files_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="missing.json: cannot read SLO file: no such file"):
        load_slo(tmp_path / "missing.json")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"cannot read SLO file: is a FIFO \(named pipe\), not an SLO file"):
        load_slo(fifo)  # would block until a writer came, if it were opened
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not an SLO file"):
        load_slo(tmp_path / "folder.json")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(2 * 1_048_576)
    with pytest.raises(ConfigError, match="is 2.0 MB, over the 1.0 MB limit for an SLO file"):
        load_slo(huge)
    with pytest.raises(ConfigError, match="the SLO file is empty"):
        load_slo(write(tmp_path, "  \n"))
    with pytest.raises(ConfigError, match=r"line 2 column 2: not valid JSON"):
        load_slo(write(tmp_path, '{"thresholds": {}\n,,}'))
    with pytest.raises(ConfigError, match="duplicate key 'flow:x'"):
        load_slo(write(tmp_path, '{"thresholds": {"flow:x": ["avg < 1"], "flow:x": ["avg < 2"]}}'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_slo(write(tmp_path, "window = ", "slo.toml"))
    with pytest.raises(ConfigError, match="must end in .json or .toml"):
        load_slo(write(tmp_path, "{}", "slo.yaml"))


# -- evaluation -----------------------------------------------------------------------------------


def test_a_flow_or_phase_without_samples_is_no_data_not_a_pass_and_not_a_fail(tmp_path):
    spec = load_slo(write(tmp_path, {"thresholds": {"flow:checkout": ["p(95) < 800"], "phase:scroll": ["avg < 5"],
                                                    "error_rate": ["rate < 0.01"]}}))
    w = window(jobs={"passed": 0, "failed": 0}, error_rate=0.0)
    w["latency"]["flow:checkout"] = {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "avg": None}
    results = spec.evaluate(w)
    assert [(r.status, r.value, r.ok) for r in results] == [("no data", None, None)] * 3


def test_rates_over_a_partial_last_window_are_no_data(tmp_path):
    spec = load_slo(write(tmp_path, {"thresholds": {"throughput": ["value > 2.0"],
                                                    "throughput_per_worker": ["min > 1.0"],
                                                    "error_rate": ["rate < 0.5"]}}))
    w = window(throughput=0.4, throughput_per_worker={"w0": 0.4}, jobs={"passed": 1, "failed": 0}, error_rate=0.0)
    assert [r.status for r in spec.evaluate(w)] == ["fail", "fail", "pass"]
    w["partial"] = True  # the soak's final seconds: one job over 2.5 s says nothing about the rate
    assert [r.status for r in spec.evaluate(w)] == ["no data", "no data", "pass"]


def test_aggregates_read_the_right_figure_and_other_percentiles_come_from_a_histogram(tmp_path):
    h = Histogram.of(float(v) for v in range(1, 1001))
    spec = load_slo(write(tmp_path, {"thresholds": {
        "flow:checkout": ["med < 411", "max <= 950", "count >= 60", "avg != 430"],
        "phase:click": ["p(90) < 905", "p(99.9) < 1100", "min > 0.5", "avg < 501", "count == 1000"],
        "throughput_per_worker": ["value >= 0.5", "max < 0.6", "avg > 0.1"]}}))
    w = window(throughput_per_worker={"w0": 0.5, "w1": 0.7})
    w["latency"]["phase:click"] = {"n": 1000, "p50": 500.0, "p95": 950.0, "p99": 990.0, "avg": 500.5,
                                   "max": 1000.0, "histogram": h.to_dict()}
    got = {(r.metric, r.expr): (r.value, r.status) for r in spec.evaluate(w)}
    assert got[("flow:checkout", "med < 411")] == (410.0, "pass")
    assert got[("flow:checkout", "max <= 950")] == (950.0, "pass")
    assert got[("flow:checkout", "count >= 60")] == (60.0, "pass")
    assert got[("flow:checkout", "avg != 430")] == (430.0, "fail")
    assert 890 <= got[("phase:click", "p(90) < 905")][0] <= 905
    assert got[("phase:click", "p(99.9) < 1100")] == (1000.0, "pass")
    assert got[("phase:click", "min > 0.5")] == (1.0, "pass")
    assert got[("phase:click", "count == 1000")] == (1000.0, "pass")
    assert got[("throughput_per_worker", "value >= 0.5")] == (0.5, "pass")  # the slowest worker
    assert got[("throughput_per_worker", "max < 0.6")] == (0.7, "fail")
    assert spec.percentiles() == (90.0, 99.9)
    assert spec.required_stats() == ("min", "p90", "p99.9")


def test_a_percentile_the_window_does_not_carry_is_a_loud_error_not_a_silent_pass(tmp_path):
    spec = load_slo(write(tmp_path, {"thresholds": {"flow:checkout": ["p(90) < 800"]}}))
    with pytest.raises(ValueError, match=r"latency\['flow:checkout'\] has no 'p90' and no 'histogram'"):
        spec.evaluate(window())
    with pytest.raises(ValueError, match="has no 'duplicates'"):
        load_slo(write(tmp_path, {"thresholds": {"duplicates": ["count == 0"]}})).evaluate(
            {k: v for k, v in window().items() if k != "duplicates"})


def test_the_whole_run_aggregate_is_evaluated_like_a_window(tmp_path):
    spec = load_slo(write(tmp_path, ISSUE_EXAMPLE))
    aggregate = window(index="run", error_rate=0.004, throughput=2.4)
    results = spec.evaluate(aggregate)
    assert {r.window for r in results} == {"run"}
    assert [r.metric for r in results if not r.ok] == ["phase:click"]


# -- the expression parser, as properties ------------------------------------------------------------

NAMED = [a for a in AGGREGATES if a != "p"]
numbers = st.one_of(st.integers(-10**9, 10**9).map(float),
                    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False))
spaces = st.sampled_from(["", " ", "  ", "\t"])


@given(agg=st.one_of(st.sampled_from(NAMED), st.floats(0, 100, exclude_min=True)),
       op=st.sampled_from(list(OPERATORS)), bound=numbers, s=st.tuples(spaces, spaces, spaces, spaces))
def test_every_well_formed_expression_parses_back_to_what_was_written(agg, op, bound, s):
    head = agg if isinstance(agg, str) else f"p({agg!r})"
    text = f"{s[0]}{head}{s[1]}{op}{s[2]}{bound!r}{s[3]}"
    expr = parse_expression(text)
    assert expr.op == op and expr.bound == bound
    if isinstance(agg, str):
        assert expr.aggregate == agg and expr.percentile is None
    else:
        assert expr.aggregate == "p" and expr.percentile == agg
    assert str(expr) == text.strip()
    # and it means what the operator means
    for v in (bound - 1, bound, bound + 1):
        assert expr.holds(v) == {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
                                 "==": operator.eq, "!=": operator.ne}[op](v, bound)


@given(st.text(max_size=40))
def test_any_text_either_parses_or_is_refused_with_a_config_error_naming_it(text):
    try:
        expr = parse_expression(text)
    except ConfigError as exc:
        assert f'cannot parse "{text}"' in str(exc)
    else:
        assert expr.op in OPERATORS and math.isfinite(expr.bound)
        assert expr.aggregate in AGGREGATES
        assert expr.percentile is None or 0 < expr.percentile <= 100


@settings(max_examples=50)  # a small input space: 50 examples cover it on a loaded machine
@given(metric=st.sampled_from(sorted(METRIC_AGGREGATES)), op=st.sampled_from(list(OPERATORS)), bound=numbers)
def test_a_scalar_metrics_own_name_is_its_value(metric, op, bound):
    expr = parse_expression(f"{metric} {op} {bound!r}", metric)
    assert expr.aggregate == "value"
    with pytest.raises(ConfigError, match="unknown aggregate"):
        parse_expression(f"{metric} {op} {bound!r}", "flow:other")


@settings(max_examples=50)  # a small input space: 50 examples cover it on a loaded machine
@given(st.floats(max_value=0.0) | st.floats(min_value=100.0, exclude_min=True, allow_infinity=False))
def test_percentiles_outside_0_to_100_are_refused(p):
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_expression(f"p({p!r}) < 1")


# -- durations --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("24h", 86400), ("1h30m", 5400),
                                           ("2d", 172800), ("1.5h", 5400), ("250ms", 0.25), (" 1m30s ", 90),
                                           ("1h0m5s", 3605)])
def test_durations_read_as_an_operator_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [("24", "add a unit"), ("", "cannot parse duration"),
                                           ("1 h", "cannot parse duration"), ("1x", "cannot parse duration"),
                                           ("30m1h", "largest to smallest"), ("1h1h", "largest to smallest"),
                                           ("0s", "longer than zero"), ("-5m", "cannot parse duration"),
                                           ("h", "cannot parse duration")])
def test_bad_durations_are_refused_clearly(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_duration(text)


@settings(max_examples=50)  # a small input space: 50 examples cover it on a loaded machine
@given(st.lists(st.integers(0, 10**4), min_size=5, max_size=5).filter(any),
       st.lists(st.booleans(), min_size=5, max_size=5).filter(any))
def test_any_combination_of_units_adds_up(amounts, present):
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001)]
    parts = [(n, u, f) for n, (u, f), keep in zip(amounts, units, present) if keep]
    text = "".join(f"{n}{u}" for n, u, _ in parts)
    total = sum(n * f for n, _, f in parts)
    if total > 0:
        assert parse_duration(text) == pytest.approx(total)
    else:
        with pytest.raises(ConfigError, match="longer than zero"):
            parse_duration(text)
