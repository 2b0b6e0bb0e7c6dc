"""Point a recording at another origin: ``--base-url`` for recordings made against another host.

Why on the raw JSON, before parsing: the rewritten recording is written
out as a flow file like any other (unknown fields and old spellings kept as
they were), so validation, drift reports and the run see exactly what the
user recorded, with only its origins changed.

What is rewritten: the URL of every ``navigate`` step, the ``url`` of every
``assertedEvents`` entry, and every ``target`` that is a page URL (a popup
the recording switches to).  Only the origin (scheme, host, port) is
replaced; the path, query and fragment stay.  A base URL with a path
(``http://127.0.0.1:8000/app``) is put in front of the recorded path.
URLs with a ``${VAR}``, relative URLs and ``about:``/``data:`` URLs are left
as they are.
"""
from __future__ import annotations

import copy
import urllib.parse
from typing import Any

_REWRITTEN_SCHEMES = ("http", "https")


def parse_base_url(base_url: str) -> urllib.parse.SplitResult:
    """Check a ``--base-url``: an http(s) URL with a host and no query or fragment."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in _REWRITTEN_SCHEMES or not parts.netloc:
        raise ValueError(f"--base-url must be an http:// or https:// URL with a host, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"--base-url must not have a query or fragment, got {base_url!r}")
    return parts


def rebase_url(url: str, base: urllib.parse.SplitResult) -> str:
    """``url`` with its origin replaced by ``base``'s (and ``base``'s path put in front of its path)."""
    if "${" in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _REWRITTEN_SCHEMES or not parts.netloc:
        return url
    prefix = base.path.rstrip("/")
    path = prefix + (parts.path or "/")
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


def rebase_recording(data: Any, base_url: str) -> tuple[Any, int]:
    """A copy of recorder JSON ``data`` pointed at ``base_url``, and how many URLs were rewritten.

    ``data`` that is not a recording (no ``steps`` list) comes back
    unchanged: the flow parser reports what is wrong with it.
    """
    base = parse_base_url(base_url)
    out = copy.deepcopy(data)
    if not isinstance(out, dict) or not isinstance(out.get("steps"), list):
        return out, 0
    count = 0

    def swap(holder: dict, key: str) -> None:
        nonlocal count
        value = holder.get(key)
        if isinstance(value, str):
            new = rebase_url(value, base)
            if new != value:
                holder[key] = new
                count += 1

    for step in out["steps"]:
        if not isinstance(step, dict):
            continue
        if step.get("type") == "navigate":
            swap(step, "url")
        if step.get("target") not in (None, "main"):
            swap(step, "target")
        events = step.get("assertedEvents")
        if isinstance(events, list):
            for event in events:
                if isinstance(event, dict):
                    swap(event, "url")
    return out, count


__all__ = ["parse_base_url", "rebase_url", "rebase_recording"]
