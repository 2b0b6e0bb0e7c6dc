"""The fixture site in its own process, so its CPU never counts as the client's.

``python -c "from bench._site import main; main()"`` starts :class:`~navigation.fixture_site.FixtureSite`,
writes ``url <base url>`` on stdout and serves until its stdin closes.  The
bench process starts it once per command with :class:`SiteProcess`; both
Drover and Playwright then talk to the same server, and the process-tree
CPU figures leave it out (it is the system under test's counterpart, not
the client).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])  # where ``bench`` and ``navigation`` import from


class SiteProcess:
    """Start the fixture site in a child process; ``base_url`` while it runs."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> "SiteProcess":
        path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen([sys.executable, "-c", "from bench._site import main; main()"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                                      env={**os.environ, "PYTHONPATH": path})
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().strip()
        if not line.startswith("url "):
            self.__exit__()
            raise RuntimeError(f"the fixture site did not start (said {line!r})")
        self.base_url = line.split(" ", 1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> None:
    from navigation.fixture_site import FixtureSite

    with FixtureSite() as site:
        sys.stdout.write(f"url {site.base_url}\n")
        sys.stdout.flush()
        sys.stdin.buffer.read()  # until the bench process closes our stdin (or dies)


if __name__ == "__main__":
    main()
