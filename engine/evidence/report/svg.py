"""SVG drawing for the report: line charts, grouped bars, pass/fail strips, the drilldown's stream lanes.

Why drawn here and not by a plotting library: the report may load
nothing (it is read offline and archived next to the run), and the
plots are a handful of polylines.  Every plot is bounded: a series longer
than its share of :data:`~engine.evidence.report.data.MAX_POINTS_PER_CHART`
is downsampled into buckets (mean line, min-max band).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from coordination.telemetry_context import STREAMS
from engine.evidence.report.data import MAX_POINTS_PER_CHART, MAX_STRIP_CELLS
from engine.evidence.report.fmt import NA, esc
from engine.records.rundir import as_number


PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
           "#9c6b4e", "#9498a0")
PCT_COLORS = {"p50": "#4269d0", "p95": "#efb118", "p99": "#e0403a"}
STREAM_COLORS = {"operational": "#4269d0", "performance": "#3ca951", "domain": "#a463f2", "audit": "#9c6b4e"}

_W, _H = 600, 250
_ML, _MR, _MT, _MB = 58, 16, 14, 40


@dataclass(slots=True)
class Series:
    name: str
    color: str
    points: list[tuple[float, float | None]]
    dash: str | None = None
    width: float = 2.0


@dataclass(slots=True)
class Ref:
    """A horizontal reference line (an SLO budget, a limit)."""

    value: float
    label: str
    color: str = "#c0392b"


def _nice_step(span: float, n: int) -> float:
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice_step(hi - lo, n)
    start = math.floor(lo / step + 1e-9) * step
    out, t = [], start
    while t < hi - 1e-9 * step:
        out.append(t)
        t += step
    out.append(t)
    return [round(x, 10) for x in out]


def _decimals(step: float) -> int:
    """The fewest decimals that show every multiple of ``step`` exactly (0.25 -> 2, 2.5 -> 1, 200 -> 0)."""
    for d in range(7):
        scaled = step * 10 ** d
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return d
    return 6


def tick_label(v: float, step: float) -> str:
    if step >= 1000 and v != 0:  # the whole axis in thousands: 2.5k 5k 7.5k 10k
        return f"{v / 1000:g}k"
    return f"{v:.{_decimals(step)}f}"


Bucket = tuple[float, "float | None", "float | None", "float | None"]


def downsample(points: list[tuple[float, float | None]], limit: int) -> list[Bucket]:
    """At most ``limit`` buckets of consecutive points: ``(x, mean, low, high)``; no value in a bucket is a gap.

    The mean draws the line and low..high a band around it, so one bad
    window among thousands still shows (as the band's edge) without
    turning a noisy series into a solid block.
    """
    if len(points) <= limit:
        return [(x, y, y, y) for x, y in points]
    out: list[Bucket] = []
    size = len(points) / limit
    for b in range(limit):
        chunk = points[int(b * size):int((b + 1) * size)]
        if not chunk:
            continue
        vals = [y for _, y in chunk if y is not None]
        x = (chunk[0][0] + chunk[-1][0]) / 2
        out.append((x, sum(vals) / len(vals), min(vals), max(vals)) if vals else (x, None, None, None))
    return out


def _segments(points: list[tuple[float, Any]]) -> list[list[tuple[float, Any]]]:
    segs: list[list[tuple[float, Any]]] = [[]]
    for x, y in points:
        if y is None:
            if segs[-1]:
                segs.append([])
        else:
            segs[-1].append((x, y))
    return [s for s in segs if s]


def legend(items: Iterable[tuple[str, str, str | None]]) -> str:
    keys = []
    for name, color, dash in items:
        style = f"border-top:3px {'dashed' if dash else 'solid'} {color}"
        keys.append(f'<span class="key"><i style="{style}"></i>{esc(name, 80)}</span>')
    return f'<div class="legend">{"".join(keys)}</div>'


def line_chart(chart_id: str, title: str, series: list[Series], *, x_label: str, y_label: str,
               x_max: float | None = None, refs: Sequence[Ref] = (), y_fmt_unit: str = "",
               subtitle: str = "") -> str:
    """A figure with an SVG line chart (axes, ticks, grid, legend); gaps where a value is missing."""
    series = [s for s in series if any(y is not None for _, y in s.points)]
    head = (f'<figcaption><span class="title">{esc(title, 160)}</span>'
            + (f'<span class="sub">{subtitle}</span>' if subtitle else "") + "</figcaption>")
    if not series:
        return f'<figure class="chart" id="{chart_id}">{head}<p class="empty">no data</p></figure>'
    longest = max(len(s.points) for s in series)
    bands = len(series) <= 3  # an envelope per series stays readable for a few series only
    budget = max(30, MAX_POINTS_PER_CHART // (len(series) * (3 if bands else 1)))
    buckets = {id(s): downsample(s.points, budget) for s in series}
    reduced = longest > budget
    x_unit = x_label[x_label.find("(") + 1:x_label.find(")")] if "(" in x_label else ""
    xs = [b[0] for bs in buckets.values() for b in bs]
    ys = [v for bs in buckets.values() for b in bs for v in ((b[2], b[3]) if bands else (b[1],)) if v is not None]
    x_lo, x_hi = 0.0, max(x_max or 0.0, max(xs), 1e-9)
    y_hi_data = max(ys) if ys else 1.0
    y_lo = min(0.0, min(ys))
    shown_refs, off_scale = [], []
    for r in refs:
        (shown_refs if r.value <= max(2 * y_hi_data, 1e-9) else off_scale).append(r)
    y_hi = max([y_hi_data, *[r.value for r in shown_refs]]) * 1.05 or 1.0
    yt = ticks(y_lo, y_hi)
    xt = ticks(x_lo, x_hi, 6)
    y_lo, y_hi = yt[0], yt[-1]
    x_hi = max(x_hi, xt[-1]) if xt[-1] <= x_hi * 1.15 else x_hi
    xt = [t for t in xt if t <= x_hi + 1e-9]
    pw, ph = _W - _ML - _MR, _H - _MT - _MB

    def sx(x: float) -> float:
        return _ML + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return _MT + ph - (y - y_lo) / (y_hi - y_lo) * ph

    out = [f'<svg class="plot line" id="{chart_id}-svg" viewBox="0 0 {_W} {_H}" role="img" '
           f'aria-label="{esc(title, 160)}" preserveAspectRatio="xMidYMid meet">']
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    for t in yt:
        y = sy(t)
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{_ML - 6}" y="{y + 3.5:.1f}" text-anchor="end">'
                   f'{tick_label(t, ystep)}</text>')
    for t in xt:
        x = sx(t)
        out.append(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{_MT + ph}" y2="{_MT + ph + 4}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{_MT + ph + 16}" text-anchor="middle">'
                   f'{tick_label(t, xstep)}</text>')
    out.append(f'<line class="axis" x1="{_ML}" x2="{_W - _MR}" y1="{_MT + ph}" y2="{_MT + ph}"/>'
               f'<line class="axis" x1="{_ML}" x2="{_ML}" y1="{_MT}" y2="{_MT + ph}"/>'
               f'<text class="axis-label" x="{_ML + pw / 2:.1f}" y="{_H - 6}" text-anchor="middle">'
               f'{esc(x_label)}</text>'
               f'<text class="axis-label" transform="translate(14 {_MT + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{esc(y_label)}</text>')
    for r in shown_refs:
        y = sy(r.value)
        out.append(f'<line class="ref" x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="{r.color}"/>'
                   f'<text class="ref-label" x="{_W - _MR - 4}" y="{y - 4:.1f}" text-anchor="end" '
                   f'fill="{r.color}">{esc(r.label, 60)}</text>')
    if reduced and bands:
        for s in series:
            for seg in _segments([(b[0], None if b[2] is None else (b[2], b[3])) for b in buckets[id(s)]]):
                upper = " ".join(f"{sx(x):.1f},{sy(hi):.1f}" for x, (_, hi) in seg)
                lower = " ".join(f"{sx(x):.1f},{sy(lo):.1f}" for x, (lo, _) in reversed(seg))
                out.append(f'<polygon class="band" points="{upper} {lower}" fill="{s.color}"/>')
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        line = [(b[0], b[1]) for b in buckets[id(s)]]
        n = sum(1 for _, y in line if y is not None)
        for seg in _segments(line):
            pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in seg)
            out.append(f'<polyline class="series" data-series="{esc(s.name, 80)}" points="{pts}" '
                       f'stroke="{s.color}" stroke-width="{s.width}"{dash}/>')
            if n <= 60 or len(seg) == 1:
                for x, y in seg:
                    out.append(f'<circle class="marker" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="{s.color}">'
                               f'<title>{esc(s.name, 80)}: {y:.4g} {esc(y_fmt_unit)} at {x:.4g} '
                               f'{esc(x_unit)}</title></circle>')
    out.append("</svg>")
    legend_html = legend([(s.name, s.color, s.dash) for s in series]
                         + [(f"{r.label}", r.color, "4 3") for r in shown_refs])
    extra = (f'<p class="note">off the scale: {esc(", ".join(r.label for r in off_scale))}</p>' if off_scale else "")
    if reduced:
        figure_attrs = f' data-windows-per-point="{math.ceil(longest / budget)}"'
    else:
        figure_attrs = ""
    return f'<figure class="chart" id="{chart_id}"{figure_attrs}>{head}{legend_html}{"".join(out)}{extra}</figure>'


def reduction_note(n_windows: int, charts: str) -> str:
    """Said once per section: what a point means when a plot has fewer points than the run has windows."""
    if "data-windows-per-point" not in charts:
        return ""
    return (f'<p class="note">{n_windows:,} windows: where a plot has fewer points than that, each point is the '
            'mean of consecutive windows and the shaded band (on plots of up to three lines) spans their lowest to '
            'highest value.</p>')


def bar_chart(chart_id: str, title: str, groups: list[tuple[str, dict[str, float | None]]], *,
              keys: Sequence[str], colors: dict[str, str], unit: str) -> str:
    """Horizontal grouped bars (one group per label, one bar per key) with value labels."""
    head = f'<figcaption><span class="title">{esc(title, 160)}</span></figcaption>'
    vals = [v for _, g in groups for v in g.values() if v is not None]
    if not groups or not vals:
        return f'<figure class="chart wide" id="{chart_id}">{head}<p class="empty">no data</p></figure>'
    bar_h, gap = 9, 12
    label_w = min(230, 14 + 6.6 * max(len(name[:32]) for name, _ in groups))
    w = 980
    top, bottom = 10, 40
    group_h = bar_h * len(keys) + gap
    h = top + bottom + group_h * len(groups)
    tks = ticks(0.0, max(vals) * 1.08)
    step = tks[1] - tks[0] if len(tks) > 1 else 1.0
    x0, x1 = label_w, w - 70
    hi = tks[-1]

    def sx(v: float) -> float:
        return x0 + v / hi * (x1 - x0)

    out = [f'<svg class="plot bars" id="{chart_id}-svg" viewBox="0 0 {w} {h}" role="img" '
           f'aria-label="{esc(title, 160)}">']
    for t in tks:
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - bottom}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{tick_label(t, step)}</text>')
    out.append(f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{h - 6}" text-anchor="middle">'
               f'{esc(unit)}</text>')
    for gi, (name, g) in enumerate(groups):
        y = top + gi * group_h + gap / 2
        out.append(f'<text class="cat" x="{x0 - 8}" y="{y + bar_h * len(keys) / 2 + 4:.1f}" text-anchor="end">'
                   f'<title>{esc(name)}</title>{esc(name, 32)}</text>')
        for ki, k in enumerate(keys):
            v = g.get(k)
            by = y + ki * bar_h
            if v is None:
                out.append(f'<text class="val" x="{x0 + 4}" y="{by + bar_h - 1:.1f}">{k}: no data</text>')
                continue
            width = max(0.5, sx(v) - x0)
            out.append(f'<rect class="bar" data-key="{k}" x="{x0}" y="{by:.1f}" width="{width:.1f}" '
                       f'height="{bar_h - 1}" fill="{colors[k]}"><title>{esc(name, 80)} {k}: '
                       f'{v:.4g} {esc(unit)}</title></rect>'
                       f'<text class="val" x="{x0 + width + 4:.1f}" y="{by + bar_h - 1.5:.1f}">{v:.4g}</text>')
    out.append(f'<line class="axis" x1="{x0}" x2="{x0}" y1="{top}" y2="{h - bottom}"/></svg>')
    legend_html = legend([(k, colors[k], None) for k in keys])
    return f'<figure class="chart wide" id="{chart_id}">{head}{legend_html}{"".join(out)}</figure>'


def strip(cells: list[bool | None], title: str) -> str:
    """Per-window pass/fail/no-data cells (buckets when there are many windows: a fail anywhere shows)."""
    if not cells:
        return NA
    n = len(cells)
    buckets = min(n, MAX_STRIP_CELLS)
    size = n / buckets
    w = max(3.0, min(14.0, 240 / buckets))
    out = [f'<svg class="strip" viewBox="0 0 {buckets * w:.0f} 14" width="{buckets * w:.0f}" height="14" '
           f'role="img" aria-label="{esc(title)}">']
    for b in range(buckets):
        lo, hi = int(b * size), max(int(b * size) + 1, int((b + 1) * size))
        chunk = cells[lo:hi]
        state = "fail" if False in chunk else ("pass" if True in chunk else "nodata")
        span = f"window {lo}" if hi - lo == 1 else f"windows {lo}–{hi - 1}"
        out.append(f'<rect class="cell {state}" x="{b * w:.1f}" y="0" width="{w - 1:.1f}" height="14">'
                   f'<title>{span}: {state.replace("nodata", "no data")}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def timeline(records: Sequence[dict[str, Any]]) -> str:
    """Four lanes (one per stream), a dot per record at its time since the first one."""
    tss = [as_number(r.get("ts")) for r in records]
    known = [t for t in tss if t is not None]
    if not known:
        return ""
    t0, span_ms = min(known), max(1.0, (max(known) - min(known)) * 1000)
    w, lane_h, left, right, top = 980, 26, 110, 20, 8
    h = top + lane_h * len(STREAMS) + 34
    tks = ticks(0.0, span_ms, 8)
    step = tks[1] - tks[0] if len(tks) > 1 else 1.0
    hi = tks[-1]

    def sx(ms: float) -> float:
        return left + ms / hi * (w - left - right)

    out = [f'<svg class="plot timeline" id="drilldown-timeline" viewBox="0 0 {w} {h}" role="img" '
           'aria-label="drilldown timeline">']
    for i, st in enumerate(STREAMS):
        y = top + i * lane_h
        out.append(f'<rect class="lane" x="{left}" y="{y}" width="{w - left - right}" height="{lane_h - 4}"/>'
                   f'<text class="cat" x="{left - 8}" y="{y + lane_h / 2 + 2}" text-anchor="end">{st}</text>')
    for t in tks:
        x = sx(t)
        out.append(f'<text class="tick" x="{x:.1f}" y="{h - 20}" text-anchor="middle">{tick_label(t, step)}</text>')
    out.append(f'<text class="axis-label" x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle">'
               'time since the first record (ms)</text>')
    lanes = {st: i for i, st in enumerate(STREAMS)}
    for r, t in list(zip(records, tss))[:2000]:
        if t is None:
            continue
        lane = lanes.get(str(r.get("stream")))
        if lane is None:
            continue
        level = str(r.get("level") or "").upper()
        color = "#e0403a" if level in ("ERROR", "CRITICAL") else ("#efb118" if level == "WARNING"
                                                                  else STREAM_COLORS[STREAMS[lane]])
        y = top + lane * lane_h + (lane_h - 4) / 2
        out.append(f'<circle class="event" cx="{sx((t - t0) * 1000):.1f}" cy="{y:.1f}" r="4.5" fill="{color}">'
                   f'<title>+{(t - t0) * 1000:.1f} ms {esc(r.get("message"), 120)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


__all__ = ["PALETTE", "PCT_COLORS", "STREAM_COLORS", "Series", "Ref", "ticks", "tick_label", "downsample",
           "legend", "line_chart", "reduction_note", "bar_chart", "strip", "timeline"]
