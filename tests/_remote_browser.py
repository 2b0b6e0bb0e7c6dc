"""A Chromium the *test* starts and owns — not Drover's launcher — standing in for a remote browser.

Why: the remote-browser tests must prove that Drover connects to a browser
by URL and never kills it, so the browser has to be somebody else's: its
own process (started with ``subprocess`` here), its own fixed port on
127.0.0.1, its own profile.  The test kills it (only it, by pid) to play a
crash, and starts a new one on the same port.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get("DROVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def version(port: int, timeout: float = 1.0) -> dict | None:
    """``/json/version`` on the port, or None when nothing answers."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/json/version", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


class ExternalChromium:
    """One Chromium process on a fixed port; :meth:`kill` and :meth:`start` again to play a restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.killed_by_test: list[int] = []
        self._profile: str | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ExternalChromium":
        self._profile = tempfile.mkdtemp(prefix="ext-chromium-")  # its profile and, below it, its own TMPDIR:
        tmp = os.path.join(self._profile, "tmp")                    # a SIGKILL leaves Chromium's temp folders
        os.mkdir(tmp)
        profile = os.path.join(self._profile, "profile")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={self.port}",
             f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": tmp}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if version(self.port) is not None:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"test chromium on port {self.port} did not serve DevTools within {timeout}s")

    def ws_url(self) -> str:
        info = version(self.port)
        assert info is not None, "test chromium is not answering"
        return info["webSocketDebuggerUrl"]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL this test's own browser (its process group: the renderers go too), reap it, drop its profile."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                self.killed_by_test.append(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group is this browser's own
                except ProcessLookupError:
                    pass  # exited between poll and kill
            proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while version(self.port, timeout=0.2) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # the port is free again before a restart on it
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def __enter__(self) -> "ExternalChromium":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


__all__ = ["ExternalChromium", "free_port", "version"]
