"""JSON data -> a validated :class:`Flow`, with every problem named.

Why it collects instead of failing fast: a user fixing a recording wants
the whole list at once (``step 3 (click): "selectors" must be a non-empty
list``, ``step 7 (longPress): "rx" must be between 0 and 1, got 1.5``),
not one error per run.  Whatever the input, the only exceptions that leave
:func:`parse_flow` are :class:`FlowError` subclasses (and ``TypeError`` for
a programming mistake in ``extra_types``).

Bounds: every list, string and nesting level has a limit, so a hostile or
broken file costs bounded time and memory.  Error messages never echo a
field's value except for short enumerations (``button``, ``operator``) and
numbers: values may be credentials typed in clear.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType

from coordination.telemetry_context import stream_logger
from navigation.errors import FlowFileError, FlowValidationError
from navigation.flow import aliases
from navigation.flow._selectors import parse_aria, parse_selector
from navigation.flow.records import (
    BUTTONS, DEFAULT_TIMEOUT_MS, DEVICE_TYPES, EMPTY_MAPPING, SECRET_NAME, STEP_RECORDS, STEP_TYPES,
    WAIT_OPERATORS, AliasUse, AssertedEvent, CustomTypeStep, Flow, Rect, SecretRef,
    SelectorAlternative, SelectorKind, Step, UnknownField, Value,
)

_log = stream_logger("domain", __name__)

MAX_STEPS = 10_000
MAX_PROBLEMS = 200
MAX_DEPTH = 64
"""Deepest JSON nesting accepted anywhere in a flow (a real one needs about 6)."""
MAX_TIMEOUT_MS = 300_000.0
"""Wider than the reference replayer's 30 s, because batch steps (logins) may legitimately wait longer."""
MAX_TEXT = 100_000
MAX_SELECTOR_TEXT = 10_000
MAX_ALTERNATIVES = 64
MAX_CHAIN = 32
MAX_FRAME_DEPTH = 32
MAX_EVENTS = 16
MAX_NAME = 256
MAX_KEY = 64
MAX_COORD = 1_000_000.0
MAX_REPORTED_FIELDS = 100

_SAFE_ARTIFACT = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_FRAME_TYPES = frozenset({"click", "doubleClick", "hover", "change", "scroll", "waitForElement",
                          "waitForExpression", "customStep", "clip", "longPress", "screenshot", "extract"})
EXTRACT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
"""An extracted value's name: it becomes a JSON key and a CSV column (``data.NAME``), so a plain word."""
_MISSING = object()


def kind_of(value: object) -> str:
    """The JSON name of a value's type, for messages that must not show the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return f"non-JSON {type(value).__name__}"


def label(text: str, limit: int = 64) -> str:
    """``text`` made safe for a one-line message: plain if it is a simple name, else quoted and cut."""
    if len(text) <= limit and re.fullmatch(r"[A-Za-z0-9_.:-]+", text):
        return text
    escaped = text[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{escaped}{"..." if len(text) > limit else ""}"'


def quoted(text: str, limit: int = 64) -> str:
    """``text`` in double quotes, escaped and cut, for naming a user's word in a message."""
    shown = label(text, limit)
    return shown if shown.startswith('"') else f'"{shown}"'


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return _cut(repr(value), 32)


class _NotJSON(Exception):
    """A value that is not plain JSON data (or nests too deep); internal, becomes a problem."""


def freeze(value: object, depth: int = 0) -> object:
    """A read-only copy of JSON data (objects -> mapping proxies, lists -> tuples), bounded in depth."""
    if depth > MAX_DEPTH:
        raise _NotJSON(f"nests deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _NotJSON("holds a number that is not finite")
        return value
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise _NotJSON("has an object key that is not a string")
        return MappingProxyType({key: freeze(item, depth + 1) for key, item in value.items()})
    raise _NotJSON(f"holds a {type(value).__name__}, which is not JSON data")


class _Problems:
    """The flow's problem list, capped so a broken 10 MB file yields a readable report."""

    __slots__ = ("items", "more")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)
        else:
            self.more += 1

    def __len__(self) -> int:
        return len(self.items) + self.more

    def as_list(self) -> list[str]:
        tail = [f"... and {self.more} more problem(s) not shown"] if self.more else []
        return self.items + tail


class _Fields:
    """Typed reads of one JSON object's fields; each bad field becomes a located problem.

    Every getter returns a usable default after a problem, so parsing goes
    on and the whole flow's problems are collected in one pass.  ``seen``
    is what was read: whatever else the object holds is an unknown field.
    """

    __slots__ = ("raw", "where", "prefix", "problems", "seen", "count")

    def __init__(self, raw: Mapping[str, object], where: str, problems: _Problems, prefix: str = "") -> None:
        self.raw = raw
        self.where = where
        self.prefix = prefix
        self.problems = problems
        self.seen: set[str] = set()
        self.count = 0

    def problem(self, text: str) -> None:
        self.count += 1
        self.problems.add(f"{self.where}: {text}")

    def fail(self, key: str, text: str) -> None:
        self.problem(f'"{self.prefix}{key}" {text}')

    def get(self, key: str, required: bool, what: str) -> object:
        self.seen.add(key)
        value = self.raw.get(key)
        if value is None:  # JSON null means "not given", as for an absent field
            if required:
                self.fail(key, f"is required ({what})")
            return _MISSING
        return value

    def number(self, key: str, *, lo: float, hi: float, default: float | None = None,
               required: bool = False, integer: bool = False, unit: str = "") -> float | None:
        what = "a whole number" if integer else "a number"
        value = self.get(key, required, what + unit)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be {what}{unit}, got {kind_of(value)}")
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, "must be a finite number")
            return default
        if not lo <= value <= hi:
            self.fail(key, f"must be between {_num(lo)} and {_num(hi)}{unit}, got {_num(value)}")
            return default
        if integer:
            if value != int(value):
                self.fail(key, f"must be a whole number, got {_num(value)}")
                return default
            return int(value)
        return float(value)

    def string(self, key: str, *, default: str | None = None, required: bool = False,
               max_len: int = MAX_TEXT, allow_empty: bool = False) -> str | None:
        value = self.get(key, required, "a string")
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {kind_of(value)}")
            return default
        if not value and not allow_empty:
            self.fail(key, "must not be empty")
            return default
        if len(value) > max_len:
            self.fail(key, f"is {len(value)} characters long; the limit is {max_len}")
            return default
        return value

    def boolean(self, key: str, *, default: bool | None = None, required: bool = False) -> bool | None:
        value = self.get(key, required, "true or false")
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {kind_of(value)}")
            return default
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(key, False, "")
        if value is _MISSING:
            return default
        if not isinstance(value, str) or value not in options:
            shown = quoted(value, 32) if isinstance(value, str) else kind_of(value)
            self.fail(key, f"must be one of {', '.join(options)}; got {shown}")
            return default
        return value

    def value(self, key: str, *, max_len: int = MAX_TEXT, allow_empty: bool = True) -> Value:
        """A literal string or ``{"secret": "NAME"}``; never echoed, since it may be a credential."""
        raw = self.get(key, True, 'a string or {"secret": NAME}')
        if raw is _MISSING:
            return ""
        if isinstance(raw, str):
            if not raw and not allow_empty:
                self.fail(key, "must not be empty")
            elif len(raw) > max_len:
                self.fail(key, f"is {len(raw)} characters long; the limit is {max_len}")
            return raw
        if isinstance(raw, Mapping) and set(raw) == {"secret"}:
            name = raw["secret"]
            if isinstance(name, str) and SECRET_NAME.fullmatch(name):
                return SecretRef(name)
            self.fail(key, "secret name must be 1-64 letters, digits or _, not starting with a digit")
            return ""
        self.fail(key, f'must be a string or {{"secret": NAME}}, got {kind_of(raw)}')
        return ""

    def json(self, key: str, *, objects_only: bool = False) -> object:
        raw = self.get(key, False, "")
        if raw is _MISSING:
            return None
        if objects_only and not isinstance(raw, Mapping):
            self.fail(key, f"must be an object, got {kind_of(raw)}")
            return None
        try:
            return freeze(raw)
        except _NotJSON as exc:
            self.fail(key, str(exc))
            return None

    def unread(self) -> list[str]:
        """Keys present (non-null) but not read by the parser: the unknown fields."""
        return [key for key, value in self.raw.items() if key not in self.seen and value is not None]


def _selectors(f: _Fields, *, required: bool) -> tuple[SelectorAlternative, ...]:
    raw = f.get("selectors", required, "a non-empty list")
    if raw is _MISSING:
        return ()
    if not isinstance(raw, (list, tuple)) or not raw:
        f.fail("selectors", "must be a non-empty list")
        return ()
    if len(raw) > MAX_ALTERNATIVES:
        f.fail("selectors", f"has {len(raw)} alternatives; the limit is {MAX_ALTERNATIVES}")
        return ()
    alternatives = []
    for i, entry in enumerate(raw):
        parts = [entry] if isinstance(entry, str) else entry
        if not isinstance(parts, (list, tuple)) or not parts:
            f.fail(f"selectors[{i}]", "must be a selector string or a non-empty list of them")
            continue
        if len(parts) > MAX_CHAIN:
            f.fail(f"selectors[{i}]", f"chains {len(parts)} selectors; the limit is {MAX_CHAIN}")
            continue
        chain = []
        for j, part in enumerate(parts):
            where = f"selectors[{i}]" if isinstance(entry, str) else f"selectors[{i}][{j}]"
            if not isinstance(part, str):
                f.fail(where, f"must be a selector string, got {kind_of(part)}")
                continue
            if len(part) > MAX_SELECTOR_TEXT:
                f.fail(where, f"is {len(part)} characters long; the limit is {MAX_SELECTOR_TEXT}")
                continue
            selector = parse_selector(part)
            if not selector.value.strip():
                shown = f'has nothing after its "{selector.kind.value}/" prefix' if part.strip() else "is empty"
                f.fail(where, shown)
                continue
            if selector.kind is SelectorKind.ARIA:
                try:
                    parse_aria(selector.value)
                except ValueError as exc:
                    f.fail(where, str(exc))
                    continue
            chain.append(selector)
        if len(chain) == len(parts):
            alternatives.append(SelectorAlternative(i, tuple(chain)))
    return tuple(alternatives)


def _frame(f: _Fields) -> tuple[int, ...]:
    raw = f.get("frame", False, "")
    if raw is _MISSING:
        return ()
    if (not isinstance(raw, (list, tuple)) or len(raw) > MAX_FRAME_DEPTH
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 100_000 for i in raw)):
        f.fail("frame", f"must be a list of at most {MAX_FRAME_DEPTH} child-frame indexes (whole numbers >= 0)")
        return ()
    return tuple(raw)


def _asserted_events(f: _Fields, unknown: list[str]) -> tuple[AssertedEvent, ...]:
    raw = f.get("assertedEvents", False, "")
    if raw is _MISSING:
        return ()
    if not isinstance(raw, (list, tuple)) or len(raw) > MAX_EVENTS:
        f.fail("assertedEvents", f"must be a list of at most {MAX_EVENTS} events")
        return ()
    events = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            f.fail(f"assertedEvents[{i}]", f"must be an object, got {kind_of(entry)}")
            continue
        sub = _Fields(entry, f.where, f.problems, prefix=f"assertedEvents[{i}].")
        event_type = sub.string("type", required=True, max_len=MAX_NAME)
        if event_type is not None and event_type != "navigation":
            sub.fail("type", f'must be "navigation" (the only asserted event), got {quoted(event_type, 32)}')
        url = sub.string("url", allow_empty=True)
        title = sub.string("title", allow_empty=True)
        unknown.extend(f"assertedEvents[{i}].{key}" for key in sub.unread() if isinstance(key, str))
        f.count += sub.count
        if event_type == "navigation":
            events.append(AssertedEvent("navigation", url, title))
    return tuple(events)


# ---------------------------------------------------------------- per-type fields
# Each reads the fields its type defines and returns them as record keyword
# arguments; the common fields are read before.  ``index`` is for defaults.

def _pointer(f: _Fields, *, duration_default: float | None, duration_hi: float) -> dict[str, object]:
    fields: dict[str, object] = {"selectors": _selectors(f, required=True)}
    for key, attr in (("offsetX", "offset_x"), ("offsetY", "offset_y")):
        fields[attr] = f.number(key, lo=-MAX_COORD, hi=MAX_COORD, unit=" (px)")
    for key in ("rx", "ry"):
        fields[key] = f.number(key, lo=0.0, hi=1.0, unit=" (a fraction of the element's box)")
    given = {key for key in ("offsetX", "offsetY", "rx", "ry") if f.raw.get(key) is not None}
    if len(given & {"offsetX", "offsetY"}) == 1:
        f.problem('"offsetX" and "offsetY" go together: give both or neither (neither = the centre)')
    if len(given & {"rx", "ry"}) == 1:
        f.problem('"rx" and "ry" go together: give both or neither (neither = the centre)')
    if given & {"offsetX", "offsetY"} and given & {"rx", "ry"}:
        f.problem('give either "offsetX"/"offsetY" (px) or "rx"/"ry" (fractions), not both')
    fields["button"] = f.choice("button", BUTTONS, "primary")
    fields["device_type"] = f.choice("deviceType", DEVICE_TYPES, "mouse")
    fields["duration"] = f.number("duration", lo=0, hi=duration_hi, default=duration_default, unit=" (ms)")
    return fields


def _click(f: _Fields, index: int) -> dict[str, object]:
    return _pointer(f, duration_default=None, duration_hi=60_000)


def _long_press(f: _Fields, index: int) -> dict[str, object]:
    return _pointer(f, duration_default=1000.0, duration_hi=600_000)


def _hover(f: _Fields, index: int) -> dict[str, object]:
    return {"selectors": _selectors(f, required=True)}


def _change(f: _Fields, index: int) -> dict[str, object]:
    return {"selectors": _selectors(f, required=True), "value": f.value("value")}


def _key(f: _Fields, index: int) -> dict[str, object]:
    return {"key": f.value("key", max_len=MAX_KEY, allow_empty=False)}


def _scroll(f: _Fields, index: int) -> dict[str, object]:
    return {"selectors": _selectors(f, required=False),
            "x": f.number("x", lo=-MAX_COORD * 10, hi=MAX_COORD * 10, default=0.0, unit=" (px)"),
            "y": f.number("y", lo=-MAX_COORD * 10, hi=MAX_COORD * 10, default=0.0, unit=" (px)")}


def _wait_for_element(f: _Fields, index: int) -> dict[str, object]:
    fields: dict[str, object] = {
        "selectors": _selectors(f, required=True),
        "operator": f.choice("operator", WAIT_OPERATORS, ">="),
        "count": f.number("count", lo=0, hi=1_000_000, default=1, integer=True),
        "visible": f.boolean("visible", default=True),
        "properties": f.json("properties", objects_only=True),
        "attributes": f.json("attributes", objects_only=True),
    }
    attributes = fields["attributes"]
    if isinstance(attributes, Mapping) and not all(isinstance(v, str) for v in attributes.values()):
        f.fail("attributes", "must map attribute names to strings")
    return fields


def _wait_for_expression(f: _Fields, index: int) -> dict[str, object]:
    return {"expression": f.string("expression", required=True, default="")}


def _navigate(f: _Fields, index: int) -> dict[str, object]:
    return {"url": f.string("url", required=True, default="")}


def _set_viewport(f: _Fields, index: int) -> dict[str, object]:
    return {
        # 0 means "no override" for that dimension, as in the reference replayer (and CDP)
        "width": f.number("width", lo=0, hi=100_000, required=True, integer=True, default=0,
                          unit=" (px)"),
        "height": f.number("height", lo=0, hi=100_000, required=True, integer=True, default=0,
                           unit=" (px)"),
        "device_scale_factor": f.number("deviceScaleFactor", lo=0, hi=10, required=True, default=1.0),
        "is_mobile": f.boolean("isMobile", required=True, default=False),
        "has_touch": f.boolean("hasTouch", required=True, default=False),
        "is_landscape": f.boolean("isLandscape", required=True, default=False),
    }


def _network(f: _Fields, index: int) -> dict[str, object]:
    unit = " (bytes/s, -1 = unthrottled)"
    return {"download": f.number("download", lo=-1, hi=1e12, required=True, default=-1.0, unit=unit),
            "upload": f.number("upload", lo=-1, hi=1e12, required=True, default=-1.0, unit=unit),
            "latency": f.number("latency", lo=0, hi=1e7, required=True, default=0.0, unit=" (ms)")}


def _close(f: _Fields, index: int) -> dict[str, object]:
    return {}


def _custom_step(f: _Fields, index: int) -> dict[str, object]:
    return {"name": f.string("name", required=True, default="", max_len=MAX_NAME),
            "parameters": f.json("parameters")}


def _clip(f: _Fields, index: int) -> dict[str, object]:
    return {"selectors": _selectors(f, required=False), "value": f.value("value")}


def _rect(f: _Fields) -> Rect | None:
    raw = f.get("clip", False, "")
    if raw is _MISSING:
        return None
    if not isinstance(raw, Mapping):
        f.fail("clip", f"must be an object with x, y, width, height, got {kind_of(raw)}")
        return None
    sub = _Fields(raw, f.where, f.problems, prefix="clip.")
    x = sub.number("x", lo=-MAX_COORD * 10, hi=MAX_COORD * 10, required=True, unit=" (px)")
    y = sub.number("y", lo=-MAX_COORD * 10, hi=MAX_COORD * 10, required=True, unit=" (px)")
    width = sub.number("width", lo=1, hi=MAX_COORD, required=True, unit=" (px)")
    height = sub.number("height", lo=1, hi=MAX_COORD, required=True, unit=" (px)")
    for key in sub.unread():
        sub.fail(str(key), "is not a field of a clip rectangle (x, y, width, height)")
    f.count += sub.count
    if None in (x, y, width, height):
        return None
    return Rect(x, y, width, height)  # type: ignore[arg-type]


def _screenshot(f: _Fields, index: int) -> dict[str, object]:
    name = f.string("name", default=f"{index:03d}-screenshot.png", max_len=MAX_NAME)
    if name is not None and (not _SAFE_ARTIFACT.fullmatch(name) or ".." in name.split("/")
                             or not name.endswith(".png")):
        f.fail("name", "must be a relative path of letters, digits, '.', '_', '-' and '/' ending in .png")
    fields = {"name": name, "selectors": _selectors(f, required=False), "clip": _rect(f),
              "full_page": f.boolean("fullPage", default=False)}
    regions = [key for key in ("selectors", "clip", "fullPage") if f.raw.get(key) not in (None, False)]
    if len(regions) > 1:
        f.problem(f'give at most one of "selectors", "clip", "fullPage"; got {", ".join(regions)}')
    return fields


def _extract(f: _Fields, index: int) -> dict[str, object]:
    """``name`` and ``expression``; any other field is an error here, not kept drift: a misspelt field of a
    step that writes results (``"expresion"``) must not silently store nothing."""
    name = f.string("name", required=True, default="", max_len=MAX_NAME)
    if name and not EXTRACT_NAME.fullmatch(name):
        f.fail("name", "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or '_' "
                       "(it names a JSON field and a CSV column)")
    expression = f.string("expression", required=True, default="")
    for key in f.unread():
        f.seen.add(key)
        f.problem(f"{quoted(key, 32)} is not a field of an extract step (name, expression, frame, target, "
                  "timeout, phase, assertedEvents)")
    return {"name": name, "expression": expression}


_TYPE_FIELDS: Mapping[str, Callable[[_Fields, int], dict[str, object]]] = MappingProxyType({
    "setViewport": _set_viewport, "navigate": _navigate, "click": _click, "doubleClick": _click,
    "hover": _hover, "change": _change, "keyDown": _key, "keyUp": _key, "scroll": _scroll,
    "waitForElement": _wait_for_element, "waitForExpression": _wait_for_expression,
    "emulateNetworkConditions": _network, "close": _close, "customStep": _custom_step,
    "clip": _clip, "longPress": _long_press, "screenshot": _screenshot, "extract": _extract,
})
if set(_TYPE_FIELDS) != STEP_TYPES:
    raise RuntimeError(f"field readers and step records disagree: {sorted(set(_TYPE_FIELDS) ^ STEP_TYPES)}")


class _FlowBuilder:
    """State of one :func:`parse_flow` call: problems, drift, and the steps built so far."""

    def __init__(self, source: str, extra_types: frozenset[str]) -> None:
        self.source = source
        self.extra_types = extra_types
        self.problems = _Problems()
        self.unknown: list[UnknownField] = []
        self.aliases: list[AliasUse] = []
        self.types_listed = False

    def known_types(self) -> str:
        return ", ".join(sorted(STEP_TYPES | self.extra_types))

    def step(self, raw: object, index: int, flow_timeout: float) -> Step | None:
        if not isinstance(raw, Mapping):
            self.problems.add(f"step {index}: must be an object, got {kind_of(raw)}")
            return None
        if not all(isinstance(key, str) for key in raw):
            self.problems.add(f"step {index}: field names must be strings")
            return None
        step_type = raw.get("type")
        if step_type is None:
            self.problems.add(f'step {index}: "type" is required (a string)')
            return None
        if not isinstance(step_type, str):
            self.problems.add(f'step {index}: "type" must be a string, got {kind_of(step_type)}')
            return None
        where = f"step {index} ({label(step_type)})"
        if step_type not in STEP_TYPES and step_type in self.extra_types:
            return self._custom_type(raw, index, step_type, where, flow_timeout)
        data = dict(raw)
        try:
            used = aliases.normalize_step(data, index)
        except aliases.AliasConflict as exc:
            self.problems.add(f"{where}: {exc}")
            return None
        current = data["type"]
        if current not in STEP_TYPES:
            hint = aliases.RETIRED_STEP_TYPES.get(step_type)
            if self.types_listed:  # the whole list once per file, not once per unknown step
                known = "known types: as listed above"
            else:
                known = f"known types: {self.known_types()} (a registered step strategy can add more)"
                self.types_listed = True
            self.problems.add(f"{where}: unknown step type {quoted(step_type)}; "
                              + (f"{hint}; " if hint else "") + known)
            return None
        self.aliases.extend(used)
        f = _Fields(data, where, self.problems)
        f.seen.add("type")
        unknown_nested: list[str] = []
        common = self._common(f, index, str(current), flow_timeout, unknown_nested)
        fields = _TYPE_FIELDS[str(current)](f, index)
        extra = self._extra(f, index, str(current), unknown_nested)
        if f.count:
            return None
        return STEP_RECORDS[str(current)](**common, **fields, extra=extra)

    def _common(self, f: _Fields, index: int, step_type: str, flow_timeout: float,
                unknown_nested: list[str]) -> dict[str, object]:
        timeout = f.number("timeout", lo=1, hi=MAX_TIMEOUT_MS, unit=" (ms)")
        common: dict[str, object] = {
            "index": index,
            "type": step_type,
            "timeout": timeout if timeout is not None else flow_timeout,
            "target": f.string("target", default="main"),
            "phase": f.string("phase", max_len=MAX_NAME),
            "asserted_events": _asserted_events(f, unknown_nested),
        }
        if step_type in _FRAME_TYPES:
            common["frame"] = _frame(f)
        return common

    def _extra(self, f: _Fields, index: int, step_type: str, nested: list[str]) -> Mapping[str, object]:
        extra: dict[str, object] = {}
        for key in f.unread():
            try:
                extra[key] = freeze(f.raw[key])
            except _NotJSON as exc:
                f.fail(key, str(exc))
                continue
            self.unknown.append(UnknownField(index, step_type, key))
        self.unknown.extend(UnknownField(index, step_type, key) for key in nested)
        return MappingProxyType(extra) if extra else EMPTY_MAPPING

    def _custom_type(self, raw: Mapping[str, object], index: int, step_type: str, where: str,
                     flow_timeout: float) -> Step | None:
        f = _Fields(raw, where, self.problems)
        f.seen.add("type")
        timeout = f.number("timeout", lo=1, hi=MAX_TIMEOUT_MS, unit=" (ms)")
        target = f.string("target", default="main")
        phase = f.string("phase", max_len=MAX_NAME)
        fields: dict[str, object] = {}
        for key in f.unread():
            try:
                fields[key] = freeze(raw[key])
            except _NotJSON as exc:
                f.fail(key, str(exc))
        if f.count:
            return None
        return CustomTypeStep(index=index, type=step_type, phase=phase, target=str(target),
                              timeout=timeout if timeout is not None else flow_timeout,
                              fields=MappingProxyType(fields))


def _extra_types(extra_types: Collection[str]) -> frozenset[str]:
    if isinstance(extra_types, str):
        raise TypeError("extra_types must be a collection of step type names, not one string")
    names = frozenset(extra_types)
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise TypeError(f"extra_types must hold non-empty strings, got {bad[:3]!r}")
    return names


def parse_flow(data: object, *, source: str, extra_types: Collection[str] = ()) -> Flow:
    """Validate decoded recorder JSON and build a :class:`Flow`.

    ``source`` names the flow in every message (usually its path).
    ``extra_types`` are step types a registered step strategy handles;
    such steps become :class:`CustomTypeStep`.  Raises
    :class:`FlowFileError` when ``data`` is not a flow at all and
    :class:`FlowValidationError` with every problem otherwise.  Unknown
    fields and applied aliases are kept on the flow and logged once.
    """
    builder = _FlowBuilder(source, _extra_types(extra_types))
    if not isinstance(data, Mapping):
        raise FlowFileError(f"{source}: the top level must be a JSON object (a recorder flow), got {kind_of(data)}")
    steps = data.get("steps")
    if steps is None:
        hints = [hint for key, hint in aliases.RETIRED_FLOW_FIELDS.items() if key in data]
        raise FlowFileError(f'{source}: "steps" is missing; a recorder flow looks like '
                            f'{{"title": ..., "steps": [...]}}' + "".join(f"; {h}" for h in hints))
    if not isinstance(steps, (list, tuple)):
        raise FlowFileError(f'{source}: "steps" must be a list, got {kind_of(steps)}')
    if len(steps) > MAX_STEPS:
        raise FlowFileError(f'{source}: "steps" has {len(steps)} entries; the limit is {MAX_STEPS}')
    problems = builder.problems
    if not all(isinstance(key, str) for key in data):
        problems.add("flow: field names must be strings")
    top = _Fields({k: v for k, v in data.items() if isinstance(k, str)}, "flow", problems)
    title = top.string("title", required=True, default="", max_len=1024, allow_empty=True)
    flow_timeout = top.number("timeout", lo=1, hi=MAX_TIMEOUT_MS, default=DEFAULT_TIMEOUT_MS, unit=" (ms)")
    selector_attribute = top.string("selectorAttribute", max_len=MAX_NAME)
    top.seen.add("steps")
    if not steps:
        problems.add('flow: "steps" is empty; there is nothing to run')
    timeout = flow_timeout if flow_timeout is not None else DEFAULT_TIMEOUT_MS
    built = [builder.step(raw, index, timeout) for index, raw in enumerate(steps)]
    flow_extra: dict[str, object] = {}
    for key in top.unread():
        try:
            flow_extra[key] = freeze(data[key])
        except _NotJSON as exc:
            top.fail(key, str(exc))
    flow_unknown = [UnknownField(None, None, key) for key in flow_extra]
    if len(problems):
        raise FlowValidationError(source, problems.as_list())
    flow = Flow(
        source=source, title=str(title), timeout=timeout, selector_attribute=selector_attribute,
        steps=tuple(step for step in built if step is not None),
        extra=MappingProxyType(flow_extra) if flow_extra else EMPTY_MAPPING,
        unknown_fields=(*flow_unknown, *builder.unknown), aliases_applied=tuple(builder.aliases),
    )
    _report_drift(flow)
    return flow


def _report_drift(flow: Flow) -> None:
    """One warning per kind of drift per parsed flow, naming the file: field names and counts, never values."""
    unknown, old = flow.drift_summary
    if flow.unknown_fields:
        _log.warning("%s: flow has unknown fields (kept, not acted on): %s", flow.source, unknown, extra={
            "flow_source": flow.source,
            "unknown_fields": [_cut(str(u)) for u in flow.unknown_fields[:MAX_REPORTED_FIELDS]],
            "unknown_field_count": len(flow.unknown_fields),
        })
    if flow.aliases_applied:
        _log.warning("%s: flow uses older spellings (mapped), count per spelling: %s", flow.source, old, extra={
            "flow_source": flow.source,
            "aliases": [_cut(str(a)) for a in flow.aliases_applied[:MAX_REPORTED_FIELDS]],
            "alias_count": len(flow.aliases_applied),
        })


__all__ = ["parse_flow", "freeze", "kind_of", "label", "quoted", "MAX_STEPS", "MAX_DEPTH", "MAX_TIMEOUT_MS",
           "EXTRACT_NAME"]
