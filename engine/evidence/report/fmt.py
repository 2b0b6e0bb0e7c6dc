"""Text for the report: every string from the data escaped and cut, numbers and times in a few fixed forms.

Why one place: the data comes from files a halted soak, an older soak or
a user's flow names wrote, so every string goes through :func:`esc`
(HTML-escaped, bounded length) and every number through :func:`num`
(a missing one is "no data", never ``nan``).
"""
from __future__ import annotations

import html
import json
import re
import time
from typing import Any

from engine.records.rundir import as_number


MAX_TEXT = 300
NA = '<span class="na">no data</span>'


def esc(text: Any, limit: int = MAX_TEXT) -> str:
    """HTML-escaped text, cut to ``limit`` characters (every string from the data goes through here)."""
    s = "" if text is None else str(text)
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return html.escape(s, quote=True)


def utc(ts: float | None) -> str:
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def utc_short(ts: float | None) -> str:
    """Month-day and minute: enough to place a window in a run (the full time is in its title)."""
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return (f'<span title="{utc(ts)}">' + time.strftime("%m-%d %H:%M", time.gmtime(ts)) + "Z</span>")


def clock(ts: float | None) -> str:
    if ts is None or not (0 <= ts < 253402300800):
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def num(v: float | None, unit: str = "", digits: int = 3, *, unit_class: str = "") -> str:
    if v is None:
        return NA
    if abs(v) >= 10 ** digits:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.{digits}g}"
    if not unit:
        return text
    return f'{text}&nbsp;<span class="{unit_class}">{unit}</span>' if unit_class else f"{text}&nbsp;{unit}"


def pct(v: float | None) -> str:
    return NA if v is None else f"{v * 100:.2f}%"


def any_value(v: Any) -> str:
    """A value whose shape varies (a criterion's value or limit, an alert's threshold) as text."""
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return num(as_number(v), digits=4)
    if isinstance(v, str):
        return esc(v)
    return esc(json.dumps(v, default=str, allow_nan=True), 200)


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{esc(text, 60)}</span>'


def ok_badge(ok: bool | None, *, waived: bool = False) -> str:
    if waived:
        return badge("waived", "warn")
    if ok is None:
        return badge("no data", "muted")
    return badge("pass", "ok") if ok else badge("fail", "bad")


def natural(name: str) -> tuple[str, int, str]:
    """Sort key that puts ``w2`` before ``w10``."""
    m = re.fullmatch(r"(.*?)(\d+)", name)
    return (m.group(1), int(m.group(2)), "") if m else (name, -1, name)


def section(sec_id: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{sec_id}"><h2>{esc(title)}</h2>{intro_html}{body}</section>'


__all__ = ["MAX_TEXT", "NA", "esc", "utc", "utc_short", "clock", "duration", "num", "pct", "any_value", "badge",
           "ok_badge", "natural", "section"]
