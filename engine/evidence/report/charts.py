"""The report's plotted sections: latency over time, per-phase percentiles, throughput and errors, resources."""
from __future__ import annotations

import re
from typing import Iterable

from engine.evidence.report.data import MAX_FLOW_CHARTS, MAX_PHASES, Evidence, rate, rates, slo_defs, stat
from engine.evidence.report.fmt import esc, natural, num, section
from engine.evidence.report.svg import PALETTE, PCT_COLORS, Ref, Series, bar_chart, line_chart, reduction_note
from engine.records import rundir
from engine.records.rundir import SoakSummary


_SLO_PCT = re.compile(r"p\(\s*(\d+(?:\.\d+)?)\s*\)\s*(<=|<)\s*(-?\d+(?:\.\d+)?)")
_SLO_UPPER = re.compile(r"(<=|<)\s*(-?\d+(?:\.\d+)?)")


def x_axis(summary: SoakSummary) -> tuple[list[float], str, float | None]:
    """Each window's x (its midpoint in elapsed time), the axis label with its unit, and the axis extent.

    Windows without timestamps are placed by ``window_s``; without that
    either, by their index (and the axis says so).
    """
    windows = summary.windows
    origin = summary.started_at if summary.started_at is not None else next(
        (w.start for w in windows if w.start is not None), None)
    timed = [(w.start, w.end) for w in windows if w.start is not None and w.end is not None]
    if origin is not None and len(timed) == len(windows):
        mids = [(a + b) / 2 - origin for a, b in timed]
        span = max([b - origin for _, b in timed] + [(summary.ended_at or origin) - origin])
    elif summary.window_s:
        mids = [(i + 0.5) * summary.window_s for i in range(len(windows))]
        span = len(windows) * summary.window_s
    else:
        return [float(i) for i in range(len(windows))], "window", float(max(1, len(windows) - 1))
    if span <= 180:
        div, label = 1.0, "elapsed (s)"
    elif span <= 3 * 3600:
        div, label = 60.0, "elapsed (min)"
    else:
        div, label = 3600.0, "elapsed (h)"
    return [m / div for m in mids], label, span / div


def latency_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return section("latency-over-time", "Latency over time", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = x_axis(s)
    flows = sorted({k for w in s.windows for k in w.latency if k.startswith("flow:")}, key=natural)
    if not flows:
        return section("latency-over-time", "Latency over time", '<p class="empty">no flow latency recorded</p>')
    note = ""
    if len(flows) > MAX_FLOW_CHARTS:
        agg = s.aggregate.latency if s.aggregate else {}
        flows = sorted(flows, key=lambda f: -(getattr(agg.get(f), "p95", None) or 0.0))[:MAX_FLOW_CHARTS]
        note = (f'<p class="note">{MAX_FLOW_CHARTS} slowest flows (aggregate p95) of '
                f'{len({k for w in s.windows for k in w.latency if k.startswith("flow:")})}; all are in '
                f'{rundir.SUMMARY}</p>')
        flows.sort(key=natural)
    slos = slo_defs(ev)
    charts = []
    for i, flow in enumerate(flows):
        series = [Series(p, PCT_COLORS[p], [(x, stat(w, flow, p)) for x, w in zip(xs, s.windows)],
                         width=2.2 if p == "p99" else 1.8) for p in ("p50", "p95", "p99")]
        refs = []
        for metric, expr in slos:
            m = _SLO_PCT.search(expr)
            if metric == flow and m and float(m.group(1)) in (50.0, 95.0, 99.0):
                refs.append(Ref(float(m.group(3)), f"SLO p({m.group(1).rstrip('0').rstrip('.')}) "
                                                   f"{m.group(2)} {m.group(3)} ms",
                                PCT_COLORS.get(f"p{int(float(m.group(1)))}", "#c0392b")))
        n = sum(int(stat(w, flow, "n") or 0) for w in s.windows)
        charts.append(line_chart(f"latency-flow-{i}", flow[5:], series, x_label=x_label, y_label="latency (ms)",
                                 x_max=x_max, refs=refs, y_fmt_unit="ms", subtitle=f"{n:,} jobs"))
    body = note + reduction_note(len(s.windows), "".join(charts)) + f'<div class="grid">{"".join(charts)}</div>'
    return section("latency-over-time", "Latency over time", body,
                   "p50 / p95 / p99 job latency per flow, one point per window; dashed lines are SLO budgets.")


def phase_section(ev: Evidence) -> str:
    agg = ev.summary.aggregate
    phases = {k: v for k, v in (agg.latency if agg else {}).items() if k.startswith("phase:")}
    if not phases:
        return section("phase-percentiles", "Per-phase percentiles",
                       '<p class="empty">no phase latency recorded</p>')
    names = sorted(phases, key=lambda k: (-(phases[k].p95 or 0.0), k))
    note = ""
    if len(names) > MAX_PHASES:
        note = f'<p class="note">{MAX_PHASES} slowest phases of {len(names)}</p>'
        names = names[:MAX_PHASES]
    groups = [(k[6:], {p: getattr(phases[k], p) for p in ("p50", "p95", "p99")}) for k in names]
    chart = bar_chart("phase-percentiles-chart", "Whole run, slowest phase first", groups,
                      keys=("p50", "p95", "p99"), colors=PCT_COLORS, unit="latency (ms)")
    return section("phase-percentiles", "Per-phase percentiles", note + chart,
                   "Step latency by navigation phase (step type) over the whole run.")


def flow_section(ev: Evidence) -> str:
    """A plain run's per-flow percentiles: one group of p50/p95/p99 bars per flow, and their numbers."""
    agg = ev.summary.aggregate
    flows = {k: v for k, v in (agg.latency if agg else {}).items() if k.startswith("flow:")}
    if not flows:
        return section("flow-percentiles", "Per-flow percentiles", '<p class="empty">no flow latency recorded</p>')
    names = sorted(flows, key=lambda k: (-(flows[k].p95 or 0.0), k))
    note = ""
    if len(names) > MAX_FLOW_CHARTS:
        note = f'<p class="note">{MAX_FLOW_CHARTS} slowest flows of {len(names)}; all are in {rundir.SUMMARY}</p>'
        names = names[:MAX_FLOW_CHARTS]
    groups = [(k[5:], {p: getattr(flows[k], p) for p in ("p50", "p95", "p99")}) for k in names]
    chart = bar_chart("flow-percentiles-chart", "Job latency per flow, slowest first", groups,
                      keys=("p50", "p95", "p99"), colors=PCT_COLORS, unit="latency (ms)")
    rows = "".join(
        f'<tr><td>{esc(k[5:], 80)}</td><td class="num">{num(flows[k].n)}</td>'
        + "".join(f'<td class="num">{num(getattr(flows[k], p), "ms")}</td>' for p in ("p50", "p95", "p99", "max"))
        + "</tr>" for k in names)
    table = ('<table id="flow-percentiles-table"><thead><tr><th>Flow</th><th class="num">Jobs</th>'
             '<th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">max</th></tr>'
             f'</thead><tbody>{rows}</tbody></table>')
    return section("flow-percentiles", "Per-flow percentiles", note + chart + table,
                   "Job latency (every attempt and the waits between them) per flow over the whole run.")


def _worker_series(names: Iterable[str], values: dict[str, list[float | None]], xs: list[float]) -> list[Series]:
    return [Series(n, PALETTE[i % len(PALETTE)], list(zip(xs, values[n])))
            for i, n in enumerate(sorted(names, key=natural))]


def throughput_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return section("throughput", "Throughput and errors", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = x_axis(s)
    workers = {k for w in s.windows for k in rates(w)}
    per = {n: [rates(w).get(n) for w in s.windows] for n in workers}
    series = _worker_series(workers, per, xs)
    series.append(Series("all workers", "#333333", [(x, rate(w)) for x, w in zip(xs, s.windows)], "6 4", 2.2))
    tp = line_chart("throughput-per-worker", "Throughput per worker", series, x_label=x_label,
                    y_label="throughput (jobs/s)", x_max=x_max, y_fmt_unit="jobs/s")
    refs = [Ref(5.0, "readiness 5% (default)", "#efb118"), Ref(10.0, "critical 10% (default)", "#e0403a")]
    for metric, expr in slo_defs(ev):
        m = _SLO_UPPER.search(expr)
        if (metric == "error_rate" or expr.strip().startswith("error_rate")) and m:
            refs.append(Ref(float(m.group(2)) * 100, f"SLO {m.group(1)} {float(m.group(2)) * 100:g}%", "#a463f2"))
    er = line_chart("error-rate", "Error rate", [
        Series("error rate", "#e0403a", [(x, None if w.error_rate is None else w.error_rate * 100)
                                         for x, w in zip(xs, s.windows)])],
        x_label=x_label, y_label="failed jobs (%)", x_max=x_max, refs=refs, y_fmt_unit="%")
    return section("throughput", "Throughput and errors",
                   reduction_note(len(s.windows), tp + er) + f'<div class="grid">{tp}{er}</div>')


def resource_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return section("resources", "Resource trends", '<p class="empty">no windows recorded</p>')
    xs, x_label, x_max = x_axis(s)
    workers = {k for w in s.windows for k in w.resources}
    charts = []
    # USS (memory unique to the browser's processes) when the soak recorded it: summed RSS counts shared pages
    # once per process, so it overstates and blurs a leak.
    uss = any(getattr(w.resources.get(n), "browser_uss_mb", None) is not None for w in s.windows for n in workers)
    memory = (("browser_uss_mb", "Browser memory (USS) per worker", "USS (MB)") if uss
              else ("browser_rss_mb", "Browser RSS per worker", "RSS (MB)"))
    for key, title, unit in (memory,
                             ("fds", "Open file descriptors per worker", "file descriptors"),
                             ("children", "Browser child processes per worker", "processes")):
        vals = {n: [getattr(w.resources.get(n), key, None) for w in s.windows] for n in workers}
        charts.append(line_chart(f"resource-{key.replace('_', '-')}", title, _worker_series(workers, vals, xs),
                                 x_label=x_label, y_label=unit, x_max=x_max, y_fmt_unit=unit))
    sup = [w.supervisor_rss_mb for w in s.windows]
    known = [v for v in sup if v is not None]
    growth = f"growth {known[-1] - known[0]:+.1f} MB over the run (readiness limit 100 MB)" if len(known) > 1 else ""
    charts.append(line_chart("resource-supervisor-rss", "Supervisor RSS",
                             [Series("supervisor", "#333333", list(zip(xs, sup)))],
                             x_label=x_label, y_label="RSS (MB)", x_max=x_max, y_fmt_unit="MB",
                             subtitle=esc(growth)))
    return section("resources", "Resource trends",
                   reduction_note(len(s.windows), "".join(charts)) + f'<div class="grid">{"".join(charts)}</div>',
                   "Per window, for leak detection: a line that keeps rising is a leak.")


__all__ = ["x_axis", "latency_section", "flow_section", "phase_section", "throughput_section", "resource_section"]
