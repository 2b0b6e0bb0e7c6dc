"""The report page: its skeleton and CSS (package files ``page.html`` and ``report.css``), header, KPIs, navigation.

Why templates as package data: Python gathers the data and draws; the
markup around it and the CSS are files a designer can read and change
without touching the code (the page still loads nothing from anywhere:
the CSS is inlined, and the Content-Security-Policy says so).
"""
from __future__ import annotations

import functools
import importlib.resources
import string
import time
from pathlib import Path

from engine.evidence.report import charts, tables
from engine.evidence.report.data import Evidence, rate, rates
from engine.evidence.report.fmt import NA, badge, duration, esc, num, pct, utc
from engine.records import rundir


@functools.cache
def _package_text(name: str) -> str:
    return importlib.resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def page_template() -> string.Template:
    """``page.html``: ``${title}``, ``${css}`` and ``${body}`` to fill in."""
    return string.Template(_package_text("page.html").removesuffix("\n"))


def stylesheet() -> str:
    return _package_text("report.css")


def header(ev: Evidence) -> str:
    s = ev.summary
    status = s.status or "unknown"
    kind = {"completed": "ok", "halted": "bad", "aborted": "bad", "interrupted": "warn"}.get(status, "muted")
    actual = (s.ended_at - s.started_at) if s.started_at is not None and s.ended_at is not None else None
    run = ev.kind == rundir.RUN_KIND
    judged = "SLO verdict" if run else "readiness verdict"
    if s.verdict is None or s.verdict.go is None:
        hint = "no SLO file: <code>run --slo FILE</code>" if run else \
            "run <code>python -m engine readiness RUN_DIR</code>"
        verdict = f'<div class="verdict none"><span class="big">not evaluated</span><span>{hint}</span></div>'
    elif s.verdict.go:
        verdict = f'<div class="verdict go" id="verdict"><span class="big">GO</span><span>{judged}</span></div>'
    else:
        verdict = (f'<div class="verdict nogo" id="verdict"><span class="big">NO-GO</span>'
                   f'<span>{judged}</span></div>')
    if actual is not None and s.target_duration_s:
        ratio = actual / s.target_duration_s
        bar_kind = "ok" if abs(ratio - 1) <= 0.05 else ("warn" if ratio > 1 else "bad")
        progress = (f'<div class="progress {bar_kind}" title="{ratio * 100:.1f}% of target">'
                    f'<i style="width:{min(100.0, ratio * 100):.1f}%"></i></div>'
                    f'<span>{duration(actual)} of {duration(s.target_duration_s)} target '
                    f'({ratio * 100:.1f}%)</span>')
    elif actual is None:
        progress = f'<span>duration not recorded (target {duration(s.target_duration_s)})</span>'
    else:
        progress = f'<span>{duration(actual)} (no target recorded)</span>'
    halt = (f'<p class="callout bad"><b>Halted:</b> {esc(s.halt_reason, 1000)}</p>' if s.halt_reason else "")
    meta = [("Started", utc(s.started_at)), ("Ended", utc(s.ended_at)),
            ("Mode", esc(s.mode or "—")), ("Workers", esc(s.workers if s.workers is not None else "—"))]
    if run:
        progress = f'<span>{duration(ev.run.elapsed_s if ev.run else actual)}</span>'
        if ev.run is not None and ev.run.batch is not None:
            meta.append(("Batch", esc(Path(ev.run.batch.path or "—").name, 80)))
        if ev.run is not None and ev.run.resumed:
            meta.append(("Resumed", "yes"))
    else:
        meta += [("Window", duration(s.window_s)), ("Windows", str(len(s.windows)))]
    if s.cycles is not None:
        meta.append(("Batch cycles", f"{s.cycles:,}"))
    meta_html = "".join(f'<div><dt>{k}</dt><dd>{v}</dd></div>' for k, v in meta)
    return (f'<header id="run-header"><div class="head-main"><div class="eyebrow">Drover {"run" if run else "soak"} evidence</div>'
            f'<h1><span class="run-id">{esc(s.run_id, 120)}</span> {badge(status, kind)}</h1>'
            f'<div class="duration">{progress}</div><dl class="meta">{meta_html}</dl>{halt}</div>{verdict}</header>')


def kpis(ev: Evidence) -> str:
    agg = ev.summary.aggregate
    cards = []

    def card(label: str, value: str, sub: str = "", kind: str = "") -> None:
        cards.append(f'<div class="kpi {kind}"><div class="label">{label}</div><div class="value">{value}</div>'
                     f'<div class="sub">{sub}</div></div>')

    if agg is None:
        return '<div class="kpis"><p class="empty">aggregate figures not recorded</p></div>'
    total = (agg.passed or 0) + (agg.failed or 0)
    card("Jobs", f"{total:,}", f"{agg.passed or 0:,} passed · {agg.failed or 0:,} failed")
    card("Error rate", pct(agg.error_rate), "whole run",
         "bad" if (agg.error_rate or 0) > 0.05 else ("warn" if (agg.error_rate or 0) > 0.01 else ""))
    per = [v for v in rates(agg).values() if v is not None]
    card("Throughput", num(rate(agg), "jobs/s", unit_class="unit"),
         f"{len(per)} worker{'s' if len(per) != 1 else ''} · {num(sum(per) / len(per), 'jobs/s')} each"
         if per else "per worker: no data")
    flows = [(k, v.p95) for k, v in agg.latency.items() if k.startswith("flow:") and v.p95 is not None]
    if flows:
        name, p95 = max(flows, key=lambda kv: kv[1])
        card("Slowest flow p95", num(p95, "ms", unit_class="unit"), esc(name[5:], 40))
    else:
        card("Slowest flow p95", NA)
    if ev.kind == rundir.RUN_KIND:
        jobs = ev.run.jobs if ev.run is not None else None
        if jobs is None:
            card("Attempts", "—", "not recorded")
        else:
            card("Attempts", num(jobs.attempts), f"{num(jobs.retries)} retries · {num(jobs.pending)} pending",
                 "warn" if jobs.pending else "")
    elif ev.alerts is None:
        card("Alerts", "—", "not recorded")
    else:
        by = {sev: sum(1 for a in ev.alerts if a.severity == sev) for sev in ("critical", "warn", "info")}
        card("Alerts", f"{len(ev.alerts):,}", f"{by['critical']} critical · {by['warn']} warn · {by['info']} info",
             "bad" if by["critical"] else ("warn" if by["warn"] else ""))
    safety = [("unowned uses", agg.unowned_uses), ("duplicates", agg.duplicates),
              ("invalid transitions", agg.invalid_transitions)]
    bad = any(v for _, v in safety)
    card("Safety", "clean" if not bad and all(v is not None for _, v in safety) else ("breach" if bad else "—"),
         " · ".join(f"{num(v)} {n}" for n, v in safety), "bad" if bad else "")
    if ev.kind == rundir.RUN_KIND and ev.run is not None:
        sub = f"{num(ev.run.lost_attempts)} lost attempts · {num(ev.run.reclaimed_slots)} reclaimed slots"
    else:
        sub = f"idle {num(agg.idle_workers_s, 's')} · queued {num(agg.queued)}"
    card("Worker restarts", num(agg.worker_restarts), sub, "warn" if (agg.worker_restarts or 0) > 3 else "")
    return f'<div class="kpis" id="kpis">{"".join(cards)}</div>'


_NAV = (("readiness", "Verdict"), ("latency-over-time", "Latency"), ("phase-percentiles", "Phases"),
        ("throughput", "Throughput"), ("slo-status", "SLOs"), ("failures", "Failures"), ("resources", "Resources"),
        ("windows", "Windows"), ("alerts", "Alerts"), ("drilldown", "Drilldown"), ("files", "Files"))


# A plain run's page: the soak's sections that apply to one batch (no windows, alerts or resources over time).
_RUN_NAV = (("readiness", "Verdict"), ("flow-percentiles", "Flows"), ("phase-percentiles", "Phases"),
            ("slo-status", "SLOs"), ("failures", "Failures"), ("drilldown", "Drilldown"), ("files", "Files"))


def render_html(ev: Evidence) -> str:
    """The whole dashboard as one HTML document (no external resources of any kind)."""
    run = ev.kind == rundir.RUN_KIND
    nav = "<nav>" + "".join(f'<a href="#{i}">{t}</a>' for i, t in (_RUN_NAV if run else _NAV)) + "</nav>"
    footer = f'<footer>generated {utc(time.time())} by <code>python -m engine report</code></footer>'
    if run:
        body = [header(ev), nav, kpis(ev), tables.verdict_section(ev), charts.flow_section(ev),
                charts.phase_section(ev), tables.slo_section(ev), tables.failure_section(ev),
                tables.drilldown_section(ev), tables.files_section(ev), footer]
    else:
        body = [
            header(ev), nav, kpis(ev), tables.verdict_section(ev), charts.latency_section(ev),
            charts.phase_section(ev), charts.throughput_section(ev), tables.slo_section(ev),
            tables.failure_section(ev), charts.resource_section(ev), tables.windows_section(ev),
            tables.alerts_section(ev), tables.drilldown_section(ev), tables.files_section(ev), footer,
        ]
    what = "Run" if run else "Soak"
    return page_template().substitute(title=f"{what} {esc(ev.summary.run_id, 120)} — Drover evidence",
                                      css=stylesheet(), body="\n".join(body))


__all__ = ["render_html", "page_template", "stylesheet", "header", "kpis"]
