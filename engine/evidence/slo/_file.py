"""Reading an SLO file (JSON or TOML): every section validated once, errors that name the file and the place."""
from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coordination.inputfiles import InputFileProblem, read_regular
from engine.errors import ConfigError
from engine.evidence.criteria import CATEGORIES, CRITERION_NAMES, LIMIT_KEYS, ReadinessLimits
from engine.evidence.slo._evaluate import DEFAULT_WINDOW_S, SLOSpec, Threshold, Waiver
from engine.evidence.slo._expressions import SCALAR_METRICS, check_metric, format_number, metric_kind, parse_duration, \
    parse_text

MAX_SLO_BYTES = 1_048_576
"""An SLO file is a few hundred bytes; a megabyte is certainly not one."""
_TOP_LEVEL_KEYS = ("window", "thresholds", "waivers", "readiness", "alerts", "description")
_THRESHOLD_KEYS = ("threshold", "abortOnFail")

def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _read_text(path: Path) -> str:
    try:
        raw = read_regular(path, "an SLO file", MAX_SLO_BYTES)
    except InputFileProblem as problem:
        raise ConfigError(f"{path}: cannot read SLO file: {problem.reason}") from None
    if not raw.strip():
        raise ConfigError(f"{path}: the SLO file is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from exc


def _json(text: str, src: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{src}: line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}") from exc
    except ValueError as exc:  # a duplicate key, from the hook
        raise ConfigError(f"{src}: {exc}") from exc


def _toml(text: str, src: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from exc


def _read(path: Path) -> Any:
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json(text, str(path))
    if suffix == ".toml":
        return _toml(text, str(path))
    raise ConfigError(f"{path}: an SLO file must end in .json or .toml")


def _parse_window(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: window must be a duration like \"1h\" or seconds, got {value!r}")
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: window: {exc}") from exc
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}: window must be > 0 seconds, got {value!r}")
    return float(value)


def _parse_thresholds(data: Any, src: str) -> tuple[Threshold, ...]:
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: thresholds must be an object of metric -> list of expressions")
    out = []
    for metric, entries in data.items():
        rel = f'thresholds["{metric}"]'
        place = f"{src}: {rel}"
        if not isinstance(entries, list):
            raise ConfigError(f"{place}: must be a list of expressions, e.g. [\"p(95) < 800\"]")
        if metric_kind(metric) is None:
            known = ", ".join(("flow:NAME", "phase:STEP-TYPE", "label:PHASE-LABEL") + SCALAR_METRICS)
            raise ConfigError(f"{place}: unknown metric {metric!r} (known: {known})")
        for i, entry in enumerate(entries):
            where = f"{place}[{i}]"
            rel_where = f"{rel}[{i}]"
            abort = False
            if isinstance(entry, dict):
                unknown = sorted(set(entry) - set(_THRESHOLD_KEYS))
                if unknown:
                    raise ConfigError(f"{where}: unknown key(s) {unknown} (allowed: {list(_THRESHOLD_KEYS)})")
                if "threshold" not in entry:
                    raise ConfigError(f"{where}: an object entry needs \"threshold\"")
                abort = entry.get("abortOnFail", False)
                if not isinstance(abort, bool):
                    raise ConfigError(f"{where}: abortOnFail must be true or false, got {abort!r}")
                entry = entry["threshold"]
            if not isinstance(entry, str):
                raise ConfigError(f"{where}: an expression must be a string or an object with \"threshold\", "
                                  f"got {entry!r}")
            expr, why = parse_text(entry, metric)
            if expr is None:
                raise ConfigError(f'{where}: cannot parse "{entry}": {why}')
            why = check_metric(metric, expr)
            if why:
                raise ConfigError(f'{where}: "{entry}": {why}')
            out.append(Threshold(metric, expr, abort, rel_where))
    return tuple(out)


def _parse_waivers(data: Any, src: str) -> tuple[Waiver, ...]:
    if not isinstance(data, list):
        raise ConfigError(f"{src}: waivers must be a list of {{\"criterion\": ..., \"reason\": ...}}")
    out = []
    for i, w in enumerate(data):
        where = f"{src}: waivers[{i}]"
        if not isinstance(w, dict) or set(w) - {"criterion", "reason"}:
            raise ConfigError(f"{where}: a waiver is {{\"criterion\": NAME, \"reason\": WHY}} and nothing else")
        for key in ("criterion", "reason"):
            if not isinstance(w.get(key), str) or not w[key].strip():
                raise ConfigError(f"{where}: {key} must be a non-empty string (a waiver without a reason "
                                  "is not an accepted risk)")
        name = w["criterion"].strip()
        if name not in CRITERION_NAMES:
            raise ConfigError(f"{where}: unknown criterion {name!r} (known: {', '.join(CRITERION_NAMES)})")
        if any(x.criterion == name for x in out):
            raise ConfigError(f"{where}: criterion {name!r} is waived twice")
        out.append(Waiver(name, w["reason"].strip()))
    return tuple(out)


def _fraction(value: Any, where: str, *, top: float, closed: bool) -> float:
    """A number in [0, top) or [0, top]: a fraction (0.05 = 5%), refused as a percentage by mistake (5)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if not (0 <= value <= top if closed else 0 <= value < top):
        bracket = "]" if closed else ")"
        raise ConfigError(f"{where}: must be a fraction in [0, {format_number(float(top))}{bracket} "
                          f"(0.05 = 5%), got {value!r}")
    return float(value)


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: must be a number > 0, got {value!r}")
    return float(value)


def _parse_readiness(data: Any, src: str) -> ReadinessLimits:
    """The ``readiness`` section: overrides of the default limits, every key checked for its type and range."""
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: readiness must be an object of limit -> value (keys: {list(LIMIT_KEYS)})")
    unknown = sorted(set(data) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigError(f"{src}: readiness: unknown key(s) {unknown} (allowed: {list(LIMIT_KEYS)})")
    at = {key: f"{src}: readiness.{key}" for key in LIMIT_KEYS}
    limits: dict[str, Any] = {}
    if "max_queue_wait" in data:
        value = data["max_queue_wait"]
        if isinstance(value, str):
            try:
                limits["max_queue_wait_s"] = parse_duration(value)
            except ConfigError as exc:
                raise ConfigError(f"{at['max_queue_wait']}: {exc}") from exc
        else:  # seconds, as ``window`` takes them
            limits["max_queue_wait_s"] = _positive(value, at["max_queue_wait"])
    if "max_regression" in data:
        limits["max_regression"] = _fraction(data["max_regression"], at["max_regression"], top=1, closed=False)
    if "max_last_quarter_error_rate" in data:
        limits["max_last_quarter_error_rate"] = _fraction(data["max_last_quarter_error_rate"],
                                                          at["max_last_quarter_error_rate"], top=1, closed=True)
    if "duration_tolerance" in data:
        limits["duration_tolerance"] = _fraction(data["duration_tolerance"], at["duration_tolerance"], top=1,
                                                 closed=False)
    for key in ("max_memory_growth_mb", "min_legacy_ratio"):
        if key in data:
            limits[key] = _positive(data[key], at[key])
    if "max_worker_restarts" in data:
        value = data["max_worker_restarts"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{at['max_worker_restarts']}: must be a whole number >= 0, got {value!r}")
        limits["max_worker_restarts"] = value
    if "critical_categories" in data:
        value = data["critical_categories"]
        where = at["critical_categories"]
        # Empty is refused: a criterion that cannot fail is not a check; waive critical_failures instead.
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: must be a non-empty list of failure categories (known: "
                              f"{', '.join(CATEGORIES)}); to accept the risk, waive critical_failures")
        for i, cat in enumerate(value):
            if cat not in CATEGORIES:
                raise ConfigError(f"{where}[{i}]: unknown failure category {cat!r} (known: {', '.join(CATEGORIES)})")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: a category is listed twice")
        limits["critical_categories"] = tuple(value)
    return ReadinessLimits(**limits)


def load_slo(path: str | os.PathLike[str]) -> SLOSpec:
    """Read and validate an SLO file (JSON or TOML); every error names the file and the place in it."""
    return _spec(_read(Path(path)), str(path))


def load_slo_text(text: str, source: str) -> SLOSpec:
    """Validate an SLO file's text whatever its name: JSON first, then TOML.

    Why: the soak keeps a copy of the operator's file in the run directory
    (:data:`engine.records.rundir.SLO_COPY`, a ``.json`` name), and a copy
    from an older soak may be a TOML original's bytes.  When the text is neither, the error is the JSON one if the text
    looks like JSON (starts with ``{``), else the TOML one.
    """
    if not text.strip():
        raise ConfigError(f"{source}: the SLO file is empty")
    try:
        data = _json(text, source)
    except ConfigError as json_error:
        if text.lstrip().startswith("{"):
            raise
        try:
            data = _toml(text, source)
        except ConfigError as toml_error:
            raise ConfigError(f"{toml_error} (and not JSON either)") from json_error
    return _spec(data, source)


def _spec(data: Any, src: str) -> SLOSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: the top level must be an object")
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {unknown} (allowed: {list(_TOP_LEVEL_KEYS)})")
    window_s = _parse_window(data["window"], src) if "window" in data else DEFAULT_WINDOW_S
    thresholds = _parse_thresholds(data.get("thresholds", {}), src)
    waivers = _parse_waivers(data.get("waivers", []), src)
    readiness = _parse_readiness(data["readiness"], src) if "readiness" in data else ReadinessLimits()
    alerts = data.get("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError(f"{src}: alerts must be an object of rule name -> overrides")
    return SLOSpec(src, window_s, thresholds, waivers, MappingProxyType(alerts), readiness)


__all__ = ["load_slo", "load_slo_text"]
