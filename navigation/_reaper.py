"""Watchdog that owns one Chromium process tree and cleans up after it.

Why a separate process: when the Python process that launched a browser
is killed with SIGKILL it runs no cleanup at all, and Chromium (in its own
session) would live on as an orphan with its temporary profile on disk.
This tiny process sits between the two.  Its stdin is a pipe whose write
end only the launching process holds, so the pipe reaches EOF the moment
that process dies *or* asks for shutdown by closing it.  Either way the
reaper terminates Chromium's whole process group, waits until the group
is empty, removes the temporary profile and exits.  Chromium itself gets
``PR_SET_PDEATHSIG=SIGKILL`` so that even a SIGKILL of the reaper cannot
leave the browser running.

Protocol (stdlib only, started as a script so it needs no installed package):

    python _reaper.py CLEANUP_DIR|- -- CHROMIUM ARGS...

stdout receives one line ``pid <chromium pid>`` once Chromium is started,
and a last line ``exit <code>`` when it is gone.  Chromium's stderr goes to
the reaper's stderr (the launcher points that at a log file or /dev/null).
"""
from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE = 3.0
GROUP_WAIT = 3.0


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _become_subreaper() -> None:
    """Chromium's helpers reparent to us when the browser dies, so we can reap them (no zombies)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_children() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap_children()
        if not _group_alive(pgid):
            return True
        time.sleep(0.02)
    return not _group_alive(pgid)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: _reaper.py CLEANUP_DIR|- -- CHROMIUM ARGS...\n")
        return 2
    cleanup_dir = None if argv[0] == "-" else argv[0]
    cmd = argv[2:]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pipe, not signals, tells us to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _become_subreaper()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_die_with_parent)
    pgid = proc.pid
    sys.stdout.write(f"pid {proc.pid}\n")
    sys.stdout.flush()

    stdin_fd = sys.stdin.fileno()
    pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            ready, _, _ = select.select([stdin_fd, pidfd], [], [])
            if pidfd in ready:
                break  # Chromium exited (crash or Browser.close)
            if stdin_fd in ready and not os.read(stdin_fd, 4096):
                break  # EOF: owner gone or shutdown requested
        if proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(TERM_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                proc.wait()
        # Renderers and helpers may outlive the browser process for a moment.
        if not _wait_group_gone(pgid, 0.5):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, GROUP_WAIT)
    finally:
        os.close(pidfd)
        if cleanup_dir:
            shutil.rmtree(cleanup_dir, onerror=_report_rmtree_error)
    code = proc.returncode if proc.returncode is not None else -1
    try:
        sys.stdout.write(f"exit {code}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        return 0  # the owner is gone: nobody left to tell
    return 0


def _report_rmtree_error(func: object, path: str, exc_info: object) -> None:
    sys.stderr.write(f"drover reaper: could not remove {path}: {exc_info}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
