"""Which machine a figure was measured on: CPU model, cores, memory, Python, Chromium."""
from __future__ import annotations

import os
import platform
import re
import subprocess

import psutil

from navigation.errors import ChromiumNotFound
from navigation.launcher import find_chromium

COMPARED = ("cpu_model", "cores", "memory_gb", "python", "chromium", "system")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back below
    return platform.processor() or platform.machine()


def chromium_version() -> str:
    try:
        binary = find_chromium()
    except ChromiumNotFound:
        return "not found"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    found = re.search(r"\d+\.\d+[.\d]*", out)
    return found.group(0) if found else out.strip()[:60]


def fingerprint() -> dict[str, str | int | float]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "chromium": chromium_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "host": platform.node(),
    }


def differences(saved: dict, now: dict) -> list[str]:
    """Human-readable list of what differs between two fingerprints (host names are not compared)."""
    return [f"{k}: baseline {saved.get(k)!r}, now {now.get(k)!r}" for k in COMPARED if saved.get(k) != now.get(k)]


__all__ = ["fingerprint", "differences", "COMPARED"]
