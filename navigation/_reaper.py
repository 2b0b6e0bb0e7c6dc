"""Watchdog that owns one Chromium process tree and every directory it needs, and cleans up after it.

Why a separate process: when the Python process that launched a browser
is killed with SIGKILL it runs no cleanup at all, and Chromium (in its own
session) would live on as an orphan with its temporary profile on disk.
This tiny process sits between the two.  Its stdin is a pipe whose write
end only the launching process holds, so the pipe reaches EOF the moment
that process dies *or* asks for shutdown by closing it.  Either way the
reaper terminates Chromium's whole process group, waits until the group
is empty, removes the directories it created and exits.  Chromium itself
gets ``PR_SET_PDEATHSIG=SIGKILL`` so that even a SIGKILL of the reaper
cannot leave the browser running.

Why the reaper, not the launcher, creates the directories: a directory
made by the launcher exists for a moment before anyone watches it, and a
worker killed in that moment leaks it.  The reaper makes them after its
watch on the pipe is already in place (the pipe exists before the reaper
runs), inside the ``try`` whose ``finally`` removes them.

The directories: a temporary profile (``--temp-profile PREFIX``, made with
``mkdtemp`` in ``$TMPDIR``) or the caller's persistent one (``--profile
DIR``, kept), and always a private ``$TMPDIR`` for Chromium.  Chromium puts
its own temporary directories there — ``org.chromium.Chromium.XXXXXX``
holding the profile's ``SingletonSocket`` is made on every start and is
not removed at shutdown — so they go away with the browser.  With a
temporary profile the profile itself is that ``$TMPDIR`` (one directory,
when its path is short enough for Chromium's singleton socket, which must
fit 108 bytes); otherwise, and with a persistent profile, it is a separate
``drover-tmp-XXXXXXXX`` in ``$TMPDIR`` — or in ``/tmp`` when ``$TMPDIR``
itself is too long for the socket (Chromium would abort at start).

Why the owner says ``stop`` instead of just closing the pipe: the two ends
of the pipe must mean different things.  An orderly close (``stop``) gets
SIGTERM and up to ``TERM_GRACE`` seconds, because Chromium flushes a
persistent credential profile (cookies, local storage) on SIGTERM.  The
owner's death (EOF with no ``stop`` before it: a SIGKILLed worker, or one
killed by its PDEATHSIG when the supervisor died) gets SIGKILL for the
whole group at once: nobody is left to use the profile, and a browser that
outlives its owner by the grace period is an orphan the fault campaign
counts (``workers_die_with_supervisor``).  The owner keeps the pipe open
until the reaper has exited, so an owner killed *during* an orderly close
still cuts the grace short.  Alternatives considered: comparing
``getppid()`` on EOF races with the kernel, which closes the dead owner's
files before it reparents its children (EOF can arrive while the old
parent pid is still reported), so it would need a wait on every close; a
signal from the owner needs the owner alive and adds a second channel.
The one line is written with ``os.write`` (atomic below ``PIPE_BUF``); a
reaper that has already exited (Chromium crashed) makes that write fail
with ``BrokenPipeError``, which the launcher treats as "already done".

Protocol (stdlib only, started as a script so it needs no installed package):

    python _reaper.py --temp-profile PREFIX | --profile DIR  -- CHROMIUM ARGS...

The reaper adds ``--user-data-dir=`` to Chromium's arguments.  stdout
receives ``dirs {"profile": ..., "tmp": ...}`` (JSON) once the directories
exist, ``pid <chromium pid>`` once Chromium is started (or ``error
<reason>`` when it cannot be), and a last line ``exit <code>`` when it is
gone.  stdin carries one line, ``stop``, for an orderly shutdown; EOF
without it means the owner died.  Chromium's stderr goes to the reaper's
stderr (the launcher points that at a log file or /dev/null).

Test hook: ``DROVER_TEST_PAUSE_AT=reaper-dirs:FILE`` makes the reaper write
the profile path to ``FILE`` once its directories exist and wait there (at
most 30 s, less if the owner goes away) so a test can kill the owner at
exactly that point.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE = 3.0
GROUP_WAIT = 3.0
TMP_PREFIX = "drover-tmp-"
PAUSE_ENV = "DROVER_TEST_PAUSE_AT"
PAUSE_LIMIT = 30.0
# Chromium's ProcessSingleton binds $TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket; sun_path holds 108
# bytes with the NUL.
_SOCKET_SUFFIX = "/org.chromium.Chromium.XXXXXX/SingletonSocket"
_MAX_SOCKET_PATH = 107
STOP_LINE = b"stop\n"  # the owner's orderly-shutdown request (navigation.launcher writes it)
STOP = "stop"
DIED = "died"
USAGE = "usage: _reaper.py --temp-profile PREFIX | --profile DIR -- CHROMIUM ARGS...\n"


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


def _socket_fits(tmpdir: str) -> bool:
    """Whether Chromium's singleton socket under ``tmpdir`` fits ``sun_path`` (Chromium aborts if not)."""
    return len(os.fsencode(tmpdir)) + len(_SOCKET_SUFFIX) <= _MAX_SOCKET_PATH


def _short_tmp_base() -> str:
    """``$TMPDIR`` when a ``drover-tmp-XXXXXXXX`` in it is short enough for the socket, else ``/tmp``."""
    base = tempfile.gettempdir()
    return base if _socket_fits(os.path.join(base, TMP_PREFIX + "x" * 8)) else "/tmp"


def _say(line: str) -> bool:
    """One protocol line to the owner; False when the owner is gone (nobody left to tell)."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        return False
    return True


def _owner_event(stdin_fd: int, timeout: float | None) -> str | None:
    """What the owner said within ``timeout`` seconds: ``STOP`` (orderly shutdown), ``DIED`` (EOF with no
    ``stop``: the owner is dead) or None (nothing, or bytes that are not ``stop``)."""
    ready, _, _ = select.select([stdin_fd], [], [], timeout)
    if not ready:
        return None
    data = os.read(stdin_fd, 4096)
    if not data:
        return DIED
    return STOP if STOP_LINE in data else None


def _pause_for_tests(point: str, profile: str, stdin_fd: int) -> str | None:
    """The ``DROVER_TEST_PAUSE_AT`` hook (see the module docstring); a no-op unless it names ``point``.
    What the owner said while we waited (its death, or ``stop``), else None."""
    spec = os.environ.get(PAUSE_ENV, "")
    name, _, marker = spec.partition(":")
    if name != point or not marker:
        return None
    with open(marker + ".part", "w", encoding="utf-8") as fh:
        fh.write(profile)
    os.replace(marker + ".part", marker)  # the test never reads a half-written path
    deadline = time.monotonic() + PAUSE_LIMIT
    event = None
    while event is None and (left := deadline - time.monotonic()) > 0:
        event = _owner_event(stdin_fd, left)
    return event


def _parse(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """(mode, value, chromium command) from ``--temp-profile P|--profile D -- CMD...``."""
    if len(argv) < 4 or argv[0] not in ("--temp-profile", "--profile") or argv[2] != "--":
        return None
    return argv[0], argv[1], argv[3:]


def main(argv: list[str]) -> int:
    parsed = _parse(argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    mode, value, cmd = parsed
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pipe, not signals, tells us to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _become_subreaper()
    stdin_fd = sys.stdin.fileno()
    owned: list[str] = []  # every directory we made, removed in the finally below
    code = -1
    try:
        if mode == "--temp-profile":
            profile = tempfile.mkdtemp(prefix=value)
            owned.append(profile)
        else:
            profile = value
        if mode == "--temp-profile" and _socket_fits(profile):
            chromium_tmp = profile
        else:
            chromium_tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=_short_tmp_base())
            owned.append(chromium_tmp)
        if not _say("dirs " + json.dumps({"profile": profile, "tmp": chromium_tmp})):
            return 0
        said = _pause_for_tests("reaper-dirs", profile, stdin_fd)
        if said is not None or _owner_event(stdin_fd, 0) is not None:
            return 0  # the owner died or said stop before the browser started: nothing to start
        code = _run_browser([cmd[0], f"--user-data-dir={profile}", *cmd[1:]], chromium_tmp, stdin_fd)
    finally:
        for path in owned:
            shutil.rmtree(path, onerror=_report_rmtree_error)
    _say(f"exit {code}")
    return 0


def _run_browser(cmd: list[str], chromium_tmp: str, stdin_fd: int) -> int:
    """Start Chromium, watch it and the owner, and tear the whole group down; Chromium's exit code."""
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    env["TMPDIR"] = chromium_tmp
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        _say(f"error cannot start {cmd[0]}: {exc.strerror or exc}")
        return -1
    pgid = proc.pid
    _say(f"pid {proc.pid}")
    pidfd = os.pidfd_open(proc.pid)
    try:
        event = None
        while event is None:
            ready, _, _ = select.select([stdin_fd, pidfd], [], [])
            if pidfd in ready:
                break  # Chromium exited (crash or Browser.close)
            event = _owner_event(stdin_fd, 0)
        if proc.poll() is None:
            if event == DIED:
                _signal_group(pgid, signal.SIGKILL)  # nobody left to flush a profile for: no grace
            else:
                _signal_group(pgid, signal.SIGTERM)
                if not _graceful_exit(proc, pidfd, stdin_fd):
                    _signal_group(pgid, signal.SIGKILL)
            proc.wait()
        # Renderers and helpers may outlive the browser process for a moment.
        if not _wait_group_gone(pgid, 0.5):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, GROUP_WAIT)
    finally:
        os.close(pidfd)
    return proc.returncode if proc.returncode is not None else -1


def _graceful_exit(proc: subprocess.Popen, pidfd: int, stdin_fd: int) -> bool:
    """Wait up to ``TERM_GRACE`` s for Chromium to exit after SIGTERM; False when it did not, or when the owner
    died meanwhile (EOF on stdin: the owner keeps it open through an orderly close)."""
    deadline = time.monotonic() + TERM_GRACE
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([pidfd, stdin_fd], [], [], left)
        if pidfd in ready:
            return True
        if stdin_fd in ready and _owner_event(stdin_fd, 0) == DIED:
            return False
    return proc.poll() is not None


def _report_rmtree_error(func: object, path: str, exc_info: object) -> None:
    sys.stderr.write(f"drover reaper: could not remove {path}: {exc_info}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
