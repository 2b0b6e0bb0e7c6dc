"""Settings and where they come from.

Discovery order (first that exists wins): ``--config FILE``, the
``DROVER_CONFIG`` variable, ``./drover.toml``, then
``$XDG_CONFIG_HOME/drover/drover.toml`` (``~/.config/drover/drover.toml``).
A candidate that exists counts only if it parses and every value is valid:
an empty or broken file is an error naming the file — never a silent fall
back to the defaults.  Each effective value remembers its source, which
``python -m engine config`` prints.

Precedence of one value: the command line, then its environment variable
(:data:`ENV_SETTINGS`: ``DROVER_STATE_DIR``, ``DROVER_CREDENTIALS``,
``DROVER_CDP_ENDPOINTS``, ``DROVER_CHROMIUM``; an empty variable counts as unset), then the file, then the default.  Every
``DROVER_*`` variable Drover reads is in :data:`ENVIRONMENT` with what it
does (``config`` lists each and whether it is set).

TOML layout (every key optional)::

    [engine]
    workers = 4              # default: from CPU count and free memory
    state_dir = "drover-state"
    mode = "parallel"        # or "legacy": the sequential rollback path
    heartbeat_timeout = 30.0 # s without a heartbeat before a worker is killed
    drain_grace = 30.0       # s in-flight jobs get after SIGTERM/SIGINT
    job_isolation = "context"  # "context": a fresh browser context per job; "page": a new page only;
                               # "reset": one warm page, reset between jobs to a fresh context's state
    recycle_after_jobs = 200
    max_browser_rss_mb = 0   # 0: no memory-based recycling
    seed = 0                 # jitter streams; 0 = from the run id
    lock_timeout = 60.0
    credentials = ""         # credential store file
    failure_screenshots = 1  # 0: no screenshot of a failing step (flows that draw secrets on a canvas)
    backend = "local"        # "local": forked workers; "ray": Ray actors on a cluster (pip install drover[ray])
    ray_address = ""         # the Ray cluster to join ("auto", "HOST:6379"); empty: start a local Ray instance
    lease_ttl = 10.0         # s a cluster lease lasts without a renewal (backend = "ray")
    ray_queue_depth = 2      # jobs the driver keeps sent to each Ray actor: the next one waits on the actor
                             # and starts as the last ends (1: sent when the last one's report is back)
    extract_max_bytes = 65536  # cap on one job's extracted data (extract steps), as JSON
    sessions_per_worker = 1  # concurrent jobs per worker on its one browser (1..32; each its own websocket,
                             # context and ownership slot), or "auto": sized to the host's headroom
                             # ([autoscale]); backend "ray" supports 1 only

    [browser]
    binary = ""              # the browser: a path or a command on PATH, e.g. "chromium-headless-shell" (the
                             # lighter headless shell: README, "Which Chromium"); empty: chromium, google-chrome ...
    extra_args = []          # more Chromium flags, e.g. ["--lang=de-DE"]; DevTools stays on 127.0.0.1
    headless = true          # false: a visible window (watching a flow run); needs $DISPLAY or $WAYLAND_DISPLAY
    endpoints = []           # remote browsers instead of launching: "http://host:9222",
                             # "ws://host:9222/devtools/browser/ID"; worker i uses endpoint i % N

    [autoscale]              # sessions_per_worker = "auto"
    max_sessions = 8         # per worker (1..32); the run's concurrency is one session per worker .. this
    cpu_target = 0.95        # host CPU busy share above which concurrency steps down
    memory_floor_mb = 512    # free memory below which it does
    interval = 1.0           # s between two looks at the host

    [retry]
    base = 0.5
    cap = 10.0
    jitter = "full"
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import psutil

from engine.errors import ConfigError
from navigation.endpoints import endpoint_problem, redact_url, split_endpoints

MODES = ("parallel", "legacy")
BACKENDS = ("local", "ray")
ISOLATIONS = ("context", "page", "reset")
BROWSER_BUDGET_BYTES = 350 * 1024 * 1024
MAX_EXTRACT_BYTES = 4 * 1024 * 1024  # a job's data travels in one store row (and one Ray message on a cluster)

# setting -> the environment variable that sets it (between the command line and the file)
ENV_SETTINGS: Mapping[str, str] = MappingProxyType({"state_dir": "DROVER_STATE_DIR",
                                                    "credentials": "DROVER_CREDENTIALS",
                                                    "browser_endpoints": "DROVER_CDP_ENDPOINTS",
                                                    "browser_binary": "DROVER_CHROMIUM"})
# Every DROVER_* variable an operator may set, and what it does (``python -m engine config`` lists them).
ENVIRONMENT: Mapping[str, str] = MappingProxyType({
    "DROVER_CONFIG": "the settings file (after --config, before ./drover.toml)",
    "DROVER_STATE_DIR": "engine.state_dir for every command (after --state-dir, before the file)",
    "DROVER_CREDENTIALS": "engine.credentials: the credential store file (after --credentials, before the file)",
    "DROVER_CDP_ENDPOINTS": "browser.endpoints: remote browsers, comma or whitespace separated (after "
                            "--cdp-endpoint, before the file)",
    "DROVER_CHROMIUM": "browser.binary: the Chromium binary (after the command line, before the file; else "
                       "chromium, chromium-browser, google-chrome ... on PATH)",
    "DROVER_SECRET_<NAME>": "a secret for {\"secret\": \"NAME\"} steps (overrides the credential store's)",
    "DROVER_LOG_<STREAM>": "another path for a run's OPERATIONAL / PERFORMANCE / DOMAIN / AUDIT stream",
})
# Flags of browser.extra_args that Drover owns: DevTools on loopback with a port per browser, its own profiles.
_OWNED_FLAGS = {"--remote-debugging-port": "Drover gives every browser its own port (port 0, read back)",
                "--remote-debugging-pipe": "Drover talks to DevTools over its loopback port",
                "--user-data-dir": "Drover keeps a profile per browser and per credential"}


def default_workers() -> int:
    """Two workers per core, capped by free memory (a browser with its renderers needs ~350 MB)."""
    cores = os.cpu_count() or 1
    by_memory = max(1, int(psutil.virtual_memory().available // BROWSER_BUDGET_BYTES))
    return max(1, min(2 * cores, by_memory, 16))


@dataclass(frozen=True, slots=True)
class Settings:
    workers: int = 0
    state_dir: str = "drover-state"
    mode: str = "parallel"
    heartbeat_timeout: float = 30.0
    drain_grace: float = 30.0
    job_isolation: str = "context"
    recycle_after_jobs: int = 200
    max_browser_rss_mb: int = 0
    seed: int = 0
    lock_timeout: float = 60.0
    credentials: str = ""
    retry_base: float = 0.5
    retry_cap: float = 10.0
    retry_jitter: str = "full"
    failure_screenshots: int = 1
    backend: str = "local"
    ray_address: str = ""
    lease_ttl: float = 10.0
    ray_queue_depth: int = 2
    extract_max_bytes: int = 64 * 1024
    sessions_per_worker: int | str = 1
    autoscale_max_sessions: int = 8
    autoscale_cpu_target: float = 0.95
    autoscale_memory_floor_mb: int = 512
    autoscale_interval: float = 1.0
    browser_binary: str = ""
    browser_extra_args: tuple[str, ...] = ()
    browser_headless: bool = True
    browser_endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        k = self.sessions_per_worker
        if isinstance(k, str) and k.strip().isdigit():  # "4" from the command line
            object.__setattr__(self, "sessions_per_worker", int(k))
        problems = validate(self)
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def effective_workers(self) -> int:
        return self.workers or default_workers()

    @property
    def sessions_auto(self) -> bool:
        """Whether the run sizes its concurrency to the host (``sessions_per_worker = "auto"``)."""
        return self.sessions_per_worker == AUTO

    @property
    def session_slots(self) -> int:
        """Session threads (and ownership slots) per worker: K, or the autoscale maximum under "auto"."""
        k = self.sessions_per_worker
        return self.autoscale_max_sessions if k == AUTO else int(k)


def loggable(s: Settings) -> dict[str, Any]:
    """The settings as a dict fit for a log record: endpoint URLs redacted (they may carry credentials)."""
    out = asdict(s)
    out["browser_endpoints"] = [redact_url(url) for url in s.browser_endpoints]
    return out


def validate(s: Settings) -> list[str]:
    p = []
    if not 0 <= s.workers <= 64:
        p.append(f"engine.workers must be 0 (auto) .. 64, got {s.workers}")
    if s.mode not in MODES:
        p.append(f"engine.mode must be one of {MODES}, got {s.mode!r}")
    if s.job_isolation not in ISOLATIONS:
        p.append(f"engine.job_isolation must be one of {ISOLATIONS}, got {s.job_isolation!r}")
    for name in ("heartbeat_timeout", "drain_grace", "lock_timeout", "retry_base", "retry_cap"):
        if getattr(s, name) <= 0:
            p.append(f"{name} must be > 0")
    if s.retry_cap < s.retry_base:
        p.append("retry.cap must be >= retry.base")
    if s.retry_jitter not in ("none", "full", "equal", "decorrelated"):
        p.append(f"retry.jitter must be none/full/equal/decorrelated, got {s.retry_jitter!r}")
    if s.recycle_after_jobs < 0 or s.max_browser_rss_mb < 0:
        p.append("recycle settings must be >= 0")
    if not s.state_dir:
        p.append("engine.state_dir must not be empty")
    if s.backend not in BACKENDS:
        p.append(f"engine.backend must be one of {BACKENDS}, got {s.backend!r}")
    if s.failure_screenshots not in (0, 1):
        p.append(f"engine.failure_screenshots must be 0 or 1, got {s.failure_screenshots}")
    if s.lease_ttl <= 0:
        p.append("engine.lease_ttl must be > 0")
    d = s.ray_queue_depth
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_QUEUE_DEPTH:
        p.append(f"engine.ray_queue_depth must be an integer 1 .. {MAX_QUEUE_DEPTH}, got {d!r}")
    if not 2 <= s.extract_max_bytes <= MAX_EXTRACT_BYTES:
        p.append(f"engine.extract_max_bytes must be 2 .. {MAX_EXTRACT_BYTES} (4 MiB), got {s.extract_max_bytes}")
    p += _session_problems(s)
    p += _browser_problems(s)
    return p


MAX_SESSIONS = 32
MAX_QUEUE_DEPTH = 4
AUTO = "auto"


def _session_problems(s: Settings) -> list[str]:
    k = s.sessions_per_worker
    p = []
    if k != AUTO and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SESSIONS):
        p.append(f"engine.sessions_per_worker must be an integer 1 .. {MAX_SESSIONS} or \"auto\", got {k!r}")
    elif k != 1 and s.backend == "ray":
        p.append(f"engine.sessions_per_worker = {k!r}: the ray backend runs one session per actor (use 1, "
                 "or backend = \"local\")")
    m = s.autoscale_max_sessions
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_SESSIONS:
        p.append(f"autoscale.max_sessions must be 1 .. {MAX_SESSIONS}, got {m!r}")
    if not 0 < s.autoscale_cpu_target <= 1:
        p.append(f"autoscale.cpu_target must be in (0, 1], got {s.autoscale_cpu_target}")
    if s.autoscale_memory_floor_mb < 0:
        p.append(f"autoscale.memory_floor_mb must be >= 0, got {s.autoscale_memory_floor_mb}")
    if not 0.1 <= s.autoscale_interval <= 60:
        p.append(f"autoscale.interval must be 0.1 .. 60 s, got {s.autoscale_interval}")
    return p


def _browser_problems(s: Settings) -> list[str]:
    p = []
    if not isinstance(s.browser_binary, str):
        p.append(f"browser.binary must be a path or a command name, got {s.browser_binary!r}")
    if not isinstance(s.browser_extra_args, tuple) or not all(isinstance(a, str) for a in s.browser_extra_args):
        return [f"browser.extra_args must be a list of strings, got {s.browser_extra_args!r}"]
    for i, arg in enumerate(s.browser_extra_args):
        name, _, value = arg.partition("=")
        where = f"browser.extra_args[{i}] {arg!r}"
        if not arg.startswith("--") or len(name) < 3:
            p.append(f"{where}: a Chromium flag starts with --")
        elif name == "--remote-debugging-address" and value != "127.0.0.1":
            p.append(f"{where}: DevTools is bound to 127.0.0.1 only (anyone who can reach it controls the browser)")
        elif name in _OWNED_FLAGS:
            p.append(f"{where}: not settable: {_OWNED_FLAGS[name]}")
        elif name == "--headless":
            p.append(f"{where}: set browser.headless instead")
    if not isinstance(s.browser_headless, bool):
        p.append(f"browser.headless must be true or false, got {s.browser_headless!r}")
    if not isinstance(s.browser_endpoints, tuple):
        p.append("browser.endpoints must be a list of URLs")
    else:
        p += [f"browser.endpoints[{i}]: {why}" for i, url in enumerate(s.browser_endpoints)
              if (why := endpoint_problem(url)) is not None]  # redacted: an endpoint may carry credentials
    return p


_TOML_KEYS: dict[tuple[str, str], str] = {
    **{("engine", f.name): f.name for f in fields(Settings) if not f.name.startswith(("retry_", "browser_", "autoscale_"))},
    **{("autoscale", f.name[len("autoscale_"):]): f.name for f in fields(Settings) if f.name.startswith("autoscale_")},
    ("retry", "base"): "retry_base", ("retry", "cap"): "retry_cap", ("retry", "jitter"): "retry_jitter",
    ("browser", "extra_args"): "browser_extra_args", ("browser", "headless"): "browser_headless",
    ("browser", "endpoints"): "browser_endpoints", ("browser", "binary"): "browser_binary",
}
_TOML_NAMES = {name: f"[{section}] {key}" for (section, key), name in _TOML_KEYS.items()}


def toml_name(setting: str) -> str:
    """``[engine] state_dir``: where a setting lives in the file."""
    return _TOML_NAMES[setting]


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    settings: Settings
    source: str  # the file used, or "defaults"
    origins: Mapping[str, str] = field(default_factory=dict)  # field -> where its value came from


def candidates(explicit: str | None, env: Mapping[str, str] | None = None, cwd: str | None = None) -> list[tuple[str, str]]:
    """(how it was found, path) in discovery order."""
    env = os.environ if env is None else env
    out = []
    if explicit:
        out.append(("--config", explicit))
    if env.get("DROVER_CONFIG"):
        out.append(("DROVER_CONFIG", env["DROVER_CONFIG"]))
    out.append(("./drover.toml", os.path.join(cwd or os.getcwd(), "drover.toml")))
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    out.append(("user config dir", os.path.join(base, "drover", "drover.toml")))
    return out


def _parse(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from exc
    if not raw.strip():
        raise ConfigError(f"config {path}: the file is empty (delete it or give it settings)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    problems = []
    for section, table in data.items():
        if not isinstance(table, dict):
            problems.append(f"top-level key {section!r} (settings live in [engine], [browser], [autoscale] and [retry])")
            continue
        for key, value in table.items():
            name = _TOML_KEYS.get((section, key))
            if name is None:
                problems.append(f"unknown setting [{section}] {key}")
                continue
            expected = Settings.__dataclass_fields__[name].type
            ok = {"int": isinstance(value, int) and not isinstance(value, bool),
                  "int | str": isinstance(value, (int, str)) and not isinstance(value, bool),
                  "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "str": isinstance(value, str), "bool": isinstance(value, bool),
                  "tuple[str, ...]": isinstance(value, list) and all(isinstance(v, str) for v in value),
                  }[str(expected)]
            if not ok:
                shown = {"tuple[str, ...]": "a list of strings", "int | str": "an integer or \"auto\""}.get(
                    str(expected), expected)
                problems.append(f"[{section}] {key} must be {shown}, got {type(value).__name__}")
                continue
            values[name] = float(value) if expected == "float" else (tuple(value) if isinstance(value, list)
                                                                      else value)
    if not values and not problems:
        problems.append("no settings in it")
    if problems:
        raise ConfigError(f"config {path}: " + "; ".join(problems))
    return values


def load_settings(explicit: str | None = None, *, overrides: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None, cwd: str | None = None) -> LoadedSettings:
    """Find, parse and validate the settings: command-line ``overrides`` win over the environment
    (:data:`ENV_SETTINGS`), which wins over the file."""
    values: dict[str, Any] = {}
    source = "defaults"
    for how, path in candidates(explicit, env, cwd):
        if how in ("--config", "DROVER_CONFIG") and not os.path.exists(path):
            raise ConfigError(f"config {path} (from {how}) does not exist")
        if os.path.lexists(path):  # a dangling symlink is a broken candidate: reported by _parse, not skipped
            values = _parse(path)
            source = f"{path} ({how})"
            break
    origins = {f.name: "default" for f in fields(Settings)}
    for name in values:
        origins[name] = source
    environ = os.environ if env is None else env
    for name, variable in ENV_SETTINGS.items():
        if environ.get(variable):
            values[name] = (split_endpoints(environ[variable]) if name == "browser_endpoints"
                            else environ[variable])
            origins[name] = f"{variable} (environment)"
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
            origins[name] = "command line"
    try:
        settings = Settings(**values)
    except ConfigError as exc:
        raise ConfigError(f"settings from {source}: {exc}") from exc
    return LoadedSettings(settings, source, origins)


__all__ = ["Settings", "LoadedSettings", "load_settings", "candidates", "default_workers", "toml_name", "MODES",
           "BACKENDS", "ENV_SETTINGS", "ENVIRONMENT", "loggable"]
