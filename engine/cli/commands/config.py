"""Show every effective setting and where its value came from.

Discovery: --config, DROVER_CONFIG, ./drover.toml, the user config
directory; a broken or empty file is an error naming it.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from engine.config import Settings, load_settings
from engine.cli.console import Console

NAME = "config"
HELP = "print the effective settings and their sources"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="settings file (TOML)")


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = load_settings(args.config)
    console.result(f"# settings from: {loaded.source}")
    for f in fields(Settings):
        value = getattr(loaded.settings, f.name)
        shown = f"{value!r}" + (f"  (auto: {loaded.settings.effective_workers})" if f.name == "workers" and not value
                                else "")
        console.result(f"{f.name:<20} = {shown:<28} # {loaded.origins[f.name]}")
    return 0
