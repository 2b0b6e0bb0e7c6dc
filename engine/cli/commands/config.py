"""Show every effective setting and where its value came from, and every DROVER_* variable.

Discovery: --config, DROVER_CONFIG, ./drover.toml, the user config
directory; a broken or empty file is an error naming it.  A value's
source is the command line, its environment variable (DROVER_STATE_DIR,
DROVER_CREDENTIALS), the file, or the default.  Secrets are never shown:
for DROVER_SECRET_<NAME> only how many are set.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import fields

from engine.config import ENVIRONMENT, Settings, load_settings
from engine.cli.console import Console
from navigation.endpoints import redact_url, split_endpoints

NAME = "config"
HELP = "print the effective settings and their sources, and the DROVER_* variables"

SECRET_PREFIX = "DROVER_SECRET_"
LOG_PREFIX = "DROVER_LOG_"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="settings file (TOML)")


def environment_lines(env: os._Environ[str] | dict[str, str]) -> list[str]:
    """One line per variable of :data:`ENVIRONMENT`: its value (never a secret's), or "not set"."""
    out = []
    for name, what in ENVIRONMENT.items():
        if name.startswith(SECRET_PREFIX):
            n = sum(1 for k in env if k.startswith(SECRET_PREFIX) and len(k) > len(SECRET_PREFIX))
            shown = f"{n} set (values never shown)" if n else "not set"
        elif name.startswith(LOG_PREFIX):
            set_ = sorted(k for k in env if k.startswith(LOG_PREFIX) and env[k])
            shown = ", ".join(f"{k}={env[k]!r}" for k in set_) or "not set"
        elif name == "DROVER_CDP_ENDPOINTS" and env.get(name):  # an endpoint may carry credentials
            shown = repr(" ".join(redact_url(url) for url in split_endpoints(env[name])))
        else:
            shown = repr(env[name]) if env.get(name) else "not set"
        out.append(f"{name:<20} = {shown:<28} # {what}")
    return out


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config)
    console.result(f"# settings from: {loaded.source}")
    for f in fields(Settings):
        value = getattr(loaded.settings, f.name)
        if f.name == "browser_endpoints":
            value = tuple(redact_url(url) for url in value)
        shown = f"{value!r}" + (f"  (auto: {loaded.settings.effective_workers})" if f.name == "workers" and not value
                                else "")
        console.result(f"{f.name:<20} = {shown:<28} # {loaded.origins[f.name]}")
    console.result("# environment (DROVER_*)")
    for line in environment_lines(os.environ):
        console.result(line)
    return 0
