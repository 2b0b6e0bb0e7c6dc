"""The report's tables: the verdict, SLO status, the failure matrix, windows, alerts, the drilldown, the files."""
from __future__ import annotations

import json
import re

from coordination.telemetry_context import STREAMS
from engine.evidence.report.data import (MAX_ALERT_ROWS, MAX_DRILLDOWN_ROWS, MAX_EXAMPLES, MAX_FAILURE_ROWS,
                                         MAX_WINDOW_ROWS, Evidence, rate, slo_defs, slo_unit)
from engine.evidence.report.drilldown import trace_hint
from engine.evidence.report.fmt import (NA, any_value, badge, clock, duration, esc, num, ok_badge, pct, section,
                                        utc, utc_short)
from engine.evidence.report.svg import strip, timeline
from engine.records import rundir
from engine.records.rundir import Window
from engine.records.streams import STANDARD_FIELDS


def _run_verdict_section(ev: Evidence) -> str:
    """A plain run's verdict: its SLO file's thresholds over the whole run (exit 4 when one fails)."""
    v = ev.summary.verdict
    if v is None:
        return section("readiness", "SLO verdict", '<p class="empty">not evaluated: the run had no SLO file '
                       '(<code>run --slo FILE</code>)</p>')
    if v.reasons:
        body = '<h3>Why no-go</h3><ul id="verdict-reasons">' + "".join(
            f"<li>{esc(r, 1000)}</li>" for r in v.reasons) + "</ul>"
    else:
        body = '<p class="empty" id="verdict-reasons">every threshold held over the whole run</p>'
    slo = ev.run.slo if ev.run is not None else None
    body += f'<p class="note">SLO file: <code>{esc(slo or "—", 400)}</code></p>'
    return section("readiness", "SLO verdict", body)


def verdict_section(ev: Evidence) -> str:
    if ev.kind == rundir.RUN_KIND:
        return _run_verdict_section(ev)
    v = ev.summary.verdict
    if v is None:
        return section("readiness", "Readiness verdict",
                       '<p class="empty">not evaluated: run <code>python -m engine readiness '
                       f'{esc(ev.run_dir)}</code></p>')
    rows = "".join(
        f'<tr class="{"waived" if c.waived else ("fail" if c.ok is False else "")}"><td>{esc(c.name)}</td>'
        f'<td class="num">{esc(c.measured) if c.measured else any_value(c.value)}</td>'
        f'<td class="num">{any_value(c.limit)}</td>'
        f'<td>{ok_badge(c.ok, waived=c.waived)}</td><td>{esc(c.reason or "", 500)}</td></tr>'
        for c in v.criteria)
    table = (f'<table id="readiness-criteria"><thead><tr><th>Criterion</th><th class="num">Measured</th>'
             f'<th class="num">Limit</th><th>Result</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>'
             if v.criteria else "")
    if v.reasons:
        table += (f'<h3>{"Why no-go" if v.go is False else "Reasons"}</h3><ul id="verdict-reasons">'
                  + "".join(f"<li>{esc(r, 1000)}</li>" for r in v.reasons) + "</ul>")
    elif not v.criteria:
        table += ('<p class="empty" id="verdict-reasons">'
                  + ("no reason against going live recorded" if v.go else "no criteria recorded") + "</p>")
    if not v.criteria:
        table += ('<p class="note">the soak\'s own verdict; the full readiness criteria come from '
                  f'<code>python -m engine readiness {esc(ev.run_dir)}</code></p>')
    risks = []
    for r in v.accepted_risks:
        if r.text is None:
            risks.append(f"<li><b>{esc(r.criterion or '?')}</b>: {esc(r.reason or '', 1000)}</li>")
        else:  # a bare string in an older verdict
            risks.append(f"<li>{esc(r.text, 1000)}</li>")
    risk_html = (f'<h3>Accepted risks</h3><ul id="accepted-risks">{"".join(risks)}</ul>' if risks
                 else '<h3>Accepted risks</h3><p class="empty" id="accepted-risks">none: no criterion waived</p>')
    return section("readiness", "Readiness verdict", table + risk_html)


def slo_section(ev: Evidence) -> str:
    s = ev.summary
    defs = slo_defs(ev)
    if not defs:
        body = '<p class="empty">no SLO evaluated</p>'
        if ev.slo_file is None:
            body += f'<p class="note">{rundir.SLO_COPY}: not recorded</p>'
        return section("slo-status", "SLO status", body)
    agg = {(r.metric, r.expr): r for r in (s.aggregate.slo if s.aggregate else ())}
    per_window = [{(r.metric, r.expr): r for r in w.slo} for w in s.windows]
    if ev.kind == rundir.RUN_KIND:
        return section("slo-status", "SLO status", _run_slo_table(ev, defs),
                       "Each budget evaluated over the whole run.")
    rows = []
    for metric, expr in defs:
        cells: list[bool | None] = []
        for pw in per_window:
            r = pw.get((metric, expr))
            cells.append(None if r is None else r.ok)
        passed, failed = cells.count(True), cells.count(False)
        a = agg.get((metric, expr))
        a_ok = None if a is None else a.ok
        aborts = any(r.abort_on_fail for w in ([s.aggregate] if s.aggregate else []) + list(s.windows)
                     for r in w.slo if (r.metric, r.expr) == (metric, expr))
        rows.append(
            f'<tr class="{"fail" if a_ok is False or failed else ""}"><td><code>{esc(metric)}</code></td>'
            f'<td><code>{esc(expr)}</code>{" " + badge("abort on fail", "warn") if aborts else ""}</td>'
            f'<td class="num">{num(a.value if a else None, slo_unit(metric), 4)}</td><td>{ok_badge(a_ok)}</td>'
            f'<td class="num">{passed}</td><td class="num">{failed}</td><td class="num">{len(cells) - passed - failed}'
            f'</td><td>{strip(cells, f"{metric} {expr} per window")}</td></tr>')
    table = (f'<table id="slo-status-table"><thead><tr><th>Metric</th><th>Budget</th><th class="num">Whole run'
             f'</th><th>Result</th><th class="num">Windows pass</th><th class="num">fail</th>'
             f'<th class="num">no data</th><th>Per window</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    detail = ""
    if 0 < len(s.windows) <= 48:
        head = "".join(f"<th class=\"num\">w{w.index}</th>" for w in s.windows)
        body_rows = []
        for metric, expr in defs:
            tds = []
            for pw in per_window:
                r = pw.get((metric, expr))
                if r is None or (r.value is None and r.ok is None):
                    tds.append('<td class="num nodata">–</td>')
                else:
                    tds.append(f'<td class="num {"pass" if r.ok else ("fail" if r.ok is False else "nodata")}">'
                               f'{num(r.value, digits=4)}</td>')
            body_rows.append(f"<tr><td><code>{esc(metric)}</code> <code>{esc(expr)}</code></td>{''.join(tds)}</tr>")
        detail = (f'<details><summary>Values per window</summary><div class="scroll"><table id="slo-per-window">'
                  f'<thead><tr><th>SLO</th>{head}</tr></thead><tbody>{"".join(body_rows)}</tbody></table></div>'
                  f'</details>')
    slo_file = ""
    if ev.slo_file is not None:
        text = json.dumps(ev.slo_file, indent=2, default=str)
        slo_file = (f'<details><summary>SLO file ({rundir.SLO_COPY})</summary><pre>{esc(text, 20000)}</pre>'
                    '</details>')
    else:
        slo_file = f'<p class="note">{rundir.SLO_COPY}: not recorded</p>'
    return section("slo-status", "SLO status", table + detail + slo_file,
                   "Each budget evaluated per window and over the whole run.")


def _run_slo_table(ev: Evidence, defs: list[tuple[str, str]]) -> str:
    agg = {(r.metric, r.expr): r for r in (ev.summary.aggregate.slo if ev.summary.aggregate else ())}
    rows = []
    for metric, expr in defs:
        a = agg.get((metric, expr))
        ok = None if a is None else a.ok
        rows.append(f'<tr class="{"fail" if ok is not True else ""}"><td><code>{esc(metric)}</code></td>'
                    f'<td><code>{esc(expr)}</code></td>'
                    f'<td class="num">{num(a.value if a else None, slo_unit(metric), 4)}</td>'
                    f'<td>{ok_badge(ok)}</td></tr>')
    return (f'<table id="slo-status-table"><thead><tr><th>Metric</th><th>Budget</th><th class="num">Whole run</th>'
            f'<th>Result</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def failure_section(ev: Evidence) -> str:
    if ev.failures is None:
        return section("failures", "Failure matrix", '<p class="empty" id="failure-matrix">not recorded</p>')
    if not any(r.count for r in ev.failures):
        listed = ", ".join(r.category for r in ev.failures)
        return section("failures", "Failure matrix", '<p class="empty" id="failure-matrix">no failures recorded'
                       + (f" (categories checked: {esc(listed, 200)})" if listed else "") + "</p>")
    rows = []
    for r in ev.failures[:MAX_FAILURE_ROWS]:
        if r.count == 0:
            rows.append(f'<tr class="zero"><td>{esc(r.category, 60)}</td><td class="num">0</td>'
                        '<td colspan="6">none</td></tr>')
            continue
        examples = "".join(_example(x, ev.summary.run_id) for x in r.examples[:MAX_EXAMPLES])
        if len(r.examples) > MAX_EXAMPLES:
            examples += f'<div class="note">+{len(r.examples) - MAX_EXAMPLES} more in {rundir.FAILURE_MATRIX}</div>'
        chips = "".join(f'<span class="chip">{esc(label, 60)}{f" ×{n:,}" if n is not None else ""}</span>'
                        for label, n in r.containment) or NA
        if r.resolved:
            status = badge("resolved", "ok")
        elif r.resolved is False:
            status = badge("unresolved", "bad") + (
                f'<div class="note">{r.unresolved_jobs:,} job(s) never passed</div>' if r.unresolved_jobs else "")
        else:
            status = badge("not job-linked", "muted")
        cause = (f'<code>{esc(r.error_class, 80)}</code> ' if r.error_class else "") + esc(r.root_cause or "—", 600)
        jobs = f'<div class="note">{r.jobs:,} job(s)</div>' if r.jobs else ""
        rows.append(f'<tr class="{"fail" if r.resolved is False else ""}"><td><b>{esc(r.category, 60)}</b></td>'
                    f'<td class="num">{num(r.count)}{jobs}</td><td>{utc(r.first_seen)}</td>'
                    f'<td>{utc(r.last_seen)}</td><td>{cause}</td><td>{chips}</td><td>{status}</td>'
                    f'<td>{examples or NA}</td></tr>')
    more = (f'<p class="note">{MAX_FAILURE_ROWS} of {len(ev.failures)} rows shown</p>'
            if len(ev.failures) > MAX_FAILURE_ROWS else "")
    table = (f'<div class="scroll tall"><table id="failure-matrix"><thead><tr><th>Category</th>'
             f'<th class="num">Count</th><th>First seen</th><th>Last seen</th><th>Root cause</th><th>Containment</th>'
             f'<th>Status</th><th>Examples: expand with</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return section("failures", "Failure matrix", table + more,
                   "Every failure by category; each example expands across the four streams with the command shown.")


def _example(ident: str, run_id: str) -> str:
    """A correlation id as the trace command that expands it; a stream location (a torn record) as itself."""
    if re.search(r"\.jsonl:\d+$", ident):
        return f'<div class="example"><code class="hint">at {esc(ident, 300)}</code></div>'
    return (f'<div class="example" title="{esc(ident, 200)}"><code class="hint">'
            f'{esc(trace_hint(ident, run_id), 400)}</code></div>')


def windows_section(ev: Evidence) -> str:
    s = ev.summary
    if not s.windows:
        return section("windows", "Windows", '<p class="empty">no windows recorded</p>')
    shown = list(s.windows)
    note = ""
    if len(shown) > MAX_WINDOW_ROWS:
        shown = sorted(sorted(shown, key=lambda w: -(w.error_rate or 0.0))[:MAX_WINDOW_ROWS // 2],
                       key=lambda w: w.index)
        note = (f'<p class="note">the {len(shown)} windows with the highest error rate of {len(s.windows):,}; '
                f'every window is in {rundir.SUMMARY}</p>')

    lengths = {None if w.start is None or w.end is None else round(w.end - w.start, 1) for w in s.windows}
    show_length = len(lengths) > 1  # all alike: the header's "Window" says it

    def row(w: Window, label: str) -> str:
        ok = sum(1 for r in w.slo if r.ok is True)
        bad = sum(1 for r in w.slo if r.ok is False)
        slo = f"{ok}/{ok + bad}" if w.slo else "—"
        cls = "fail" if bad or (w.error_rate or 0) > 0.05 or (w.duplicates or 0) or (w.unowned_uses or 0) else ""
        return (f'<tr class="{cls}"><td>{label}</td><td>{utc_short(w.start)}</td>'
                + (f'<td class="num">{duration(None if w.start is None or w.end is None else w.end - w.start)}</td>'
                   if show_length else "") +
                f'<td class="num">{num(w.passed)}</td><td class="num">{num(w.failed)}</td>'
                f'<td class="num">{pct(w.error_rate)}</td><td class="num">{num(rate(w))}</td>'
                f'<td class="num">{num(w.worker_restarts)}</td><td class="num">{num(w.duplicates)}</td>'
                f'<td class="num">{num(w.unowned_uses)}</td><td class="num">{num(w.invalid_transitions)}</td>'
                f'<td class="num">{num(w.idle_workers_s)}</td><td class="num">{num(w.queued)}</td>'
                f'<td class="num">{num(w.supervisor_rss_mb)}</td><td class="num">{slo}</td></tr>')

    rows = [row(w, f"w{w.index}") for w in shown]
    if s.aggregate is not None:
        rows.append(row(s.aggregate, "<b>whole run</b>").replace("<tr class=\"", "<tr class=\"total ", 1))
    table = ('<div class="scroll tall"><table id="windows-table" class="compact"><thead><tr>'
             '<th>Window</th><th>Start</th>'
             + ('<th class="num">Length</th>' if show_length else "") +
             '<th class="num">Passed</th><th class="num">Failed</th>'
             '<th class="num">Error rate</th><th class="num">Jobs/s</th><th class="num">Restarts</th>'
             '<th class="num">Duplicates</th><th class="num">Unowned</th><th class="num">Invalid</th>'
             '<th class="num">Idle s</th><th class="num">Queued</th><th class="num">Sup. MB</th>'
             f'<th class="num">SLO ok</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return section("windows", "Windows", note + table)


def alerts_section(ev: Evidence) -> str:
    if ev.alerts is None:
        return section("alerts", "Alerts", '<p class="empty" id="alerts-list">not recorded</p>')
    if not ev.alerts:
        return section("alerts", "Alerts", '<p class="empty" id="alerts-list">no alerts raised</p>')
    rank = {"critical": 0, "warn": 1, "warning": 1, "info": 2}
    shown = ev.alerts
    note = ""
    if len(shown) > MAX_ALERT_ROWS:
        keep = sorted(range(len(shown)), key=lambda i: (rank.get(shown[i].severity, 3), -i))[:MAX_ALERT_ROWS]
        shown = [shown[i] for i in sorted(keep)]
        note = (f'<p class="note">{MAX_ALERT_ROWS} of {len(ev.alerts):,} alerts shown (the most severe, then the '
                f'latest); all are in {rundir.ALERTS}</p>')
    kinds = {"critical": "bad", "warn": "warn", "warning": "warn", "info": "info"}
    rows = "".join(
        f'<tr class="sev-{esc(a.severity, 20)}"><td>{utc(a.ts)}</td>'
        f'<td>{badge(a.severity, kinds.get(a.severity, "muted"))}'
        f'</td><td>{esc(a.rule or "—")}</td><td><code>{esc(a.metric or "—")}</code></td>'
        f'<td class="num">{any_value(a.value)}</td><td class="num">{any_value(a.threshold)}</td>'
        f'<td class="num">{any_value(a.window)}</td><td>{esc(a.message or "", 600)}</td></tr>' for a in shown)
    table = (f'<div class="scroll tall"><table id="alerts-list"><thead><tr><th>Time</th><th>Severity</th>'
             f'<th>Rule</th><th>Metric</th><th class="num">Value</th><th class="num">Threshold</th>'
             f'<th class="num">Window</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table></div>')
    return section("alerts", "Alerts", note + table)


def drilldown_section(ev: Evidence) -> str:
    d = ev.drilldown
    if d is None:
        why = ("the streams were not recorded" if not any(ev.streams.values())
               else "no correlation id with records was found")
        return section("drilldown", "Correlation drilldown", f'<p class="empty">not recorded: {why}</p>')
    records = list(d.records)
    counts = {st: sum(1 for r in records if r.get("stream") == st) for st in STREAMS}
    hint = trace_hint(d.correlation_id, ev.summary.run_id) if d.correlation_id else ""
    intro = (f'<p><b>Correlation id</b> <code class="cid">{esc(d.correlation_id or "—", 200)}</code> '
             f'— {esc(d.reason or "")}. Expand it yourself with <code class="hint">{esc(hint, 400)}</code>.</p>'
             '<p class="counts">' + " ".join(
                 f'<span class="chip stream-{st}">{st}: {counts[st]}</span>' for st in STREAMS) + "</p>")
    tss = [rundir.as_number(r.get("ts")) for r in records]
    t0 = min([t for t in tss if t is not None], default=None)
    rows = []
    for r, t in list(zip(records, tss))[:MAX_DRILLDOWN_ROWS]:
        st = str(r.get("stream") or "?")
        level = str(r.get("level") or "")
        extra = " ".join(f"{k}={v}" for k, v in r.items() if k not in STANDARD_FIELDS and v is not None)
        rel = f"+{(t - t0) * 1000:,.1f}" if t is not None and t0 is not None else "—"
        rows.append(f'<tr class="lvl-{esc(level.lower(), 12)}"><td class="num">{rel}</td>'
                    f'<td class="nowrap">{clock(t)}</td>'
                    f'<td><span class="chip stream-{esc(st, 20)}">{esc(st, 20)}</span></td><td>{esc(level, 12)}</td>'
                    f'<td>{esc(r.get("worker") or "—", 40)}</td><td>{esc(r.get("message"), 300)}</td>'
                    f'<td class="fields">{esc(extra, 400)}</td></tr>')
    more = (f'<p class="note">{MAX_DRILLDOWN_ROWS} of {len(records):,} records shown; all are in '
            f'{rundir.DRILLDOWN}</p>'
            if len(records) > MAX_DRILLDOWN_ROWS else "")
    table = ('<div class="scroll tall"><table id="drilldown-records"><thead><tr><th class="num">+ms</th>'
             '<th>Time (UTC)</th><th>Stream</th><th>Level</th><th>Worker</th><th>Message</th><th>Fields</th></tr>'
             f'</thead><tbody>{"".join(rows)}</tbody></table></div>')
    return section("drilldown", "Correlation drilldown", intro + timeline(records) + more + table)


def files_section(ev: Evidence) -> str:
    files = [(rundir.SUMMARY, True)]
    if ev.kind != rundir.RUN_KIND:  # a plain run raises no alerts: its SLO verdict is in the summary
        files.append((rundir.ALERTS, ev.alerts is not None))
    files += [(rundir.FAILURE_MATRIX, ev.failures is not None), (rundir.SLO_COPY, ev.slo_file is not None),
              (rundir.DRILLDOWN, (ev.run_dir / rundir.DRILLDOWN).is_file())]
    files += [(rundir.stream_path(ev.run_dir, st).name, ev.streams[st]) for st in STREAMS]
    items = "".join(f'<li>{badge("present", "ok") if ok else badge("not recorded", "muted")} <code>{name}</code>'
                    f'</li>' for name, ok in files)
    notes = ("<h3>Notes on the data</h3><ul>" + "".join(f"<li>{esc(n, 400)}</li>" for n in ev.notes) + "</ul>"
             if ev.notes else "")
    return section("files", "Evidence files", f'<ul class="files">{items}</ul>{notes}'
                   f'<p class="note">rebuild with <code>python -m engine report {esc(ev.run_dir, 400)}</code></p>')


__all__ = ["verdict_section", "slo_section", "failure_section", "windows_section", "alerts_section",
           "drilldown_section", "files_section"]
