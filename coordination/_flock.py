"""A cross-process mutex on a lock file, and the fork hygiene every held descriptor needs.

Why ``flock`` on a file beside the segment, and not a multiprocessing lock:
a ``multiprocessing.Lock`` cannot be attached by name from a process that
was not forked from its creator, and a SIGKILLed holder leaves it locked
forever.  An ``flock`` belongs to an open file description, so the kernel
drops it the moment the holder dies, and any process that can open the
path can contend for it (forked, spawned, or started by hand).

Two traps come with it, and both are handled here:

* ``fork`` duplicates descriptors, and a child's copy *shares* the parent's
  lock.  A child that goes on to take the lock "again" through the
  inherited descriptor would succeed while the parent holds it, and a
  child that outlives a killed parent would keep the parent's lock alive.
  So every registered holder of descriptors closes its inherited copies in
  the child (closing a duplicate never releases the parent's lock) and
  opens its own on first use.
* Threads of one process share a descriptor, so an in-process
  :class:`threading.Lock` guards it too (re-created in a forked child, in
  case another thread held it at the moment of the fork).
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import weakref
from typing import Protocol

from coordination.errors import LockTimeout


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_fork_aware: "weakref.WeakSet[_ForkAware]" = weakref.WeakSet()


def _run_fork_hooks() -> None:
    for obj in list(_fork_aware):
        obj._after_fork_in_child()


os.register_at_fork(after_in_child=_run_fork_hooks)


def register_fork_aware(obj: _ForkAware) -> None:
    """Have ``obj._after_fork_in_child()`` run in every child forked after this call."""
    _fork_aware.add(obj)


def try_flock(fd: int) -> bool:
    """One non-blocking exclusive flock attempt: False on contention, raises on any other failure."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def close_quietly_after_fork(fd: int | None) -> None:
    """Close an inherited descriptor in a forked child; EBADF means someone closed it already."""
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise


class FlockMutex:
    """An exclusive, timed, crash-safe lock on ``path`` for short critical sections.

    Waiting polls a non-blocking ``flock`` with a delay that grows from
    50 µs to 2 ms: the sections this guards last microseconds, so a waiter
    rarely sleeps more than once, and every wait is bounded by ``timeout``.
    """

    __slots__ = ("path", "_fd", "_tlock", "__weakref__")

    MIN_DELAY = 5e-5
    MAX_DELAY = 2e-3

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._tlock = threading.Lock()
        register_fork_aware(self)

    def _after_fork_in_child(self) -> None:
        close_quietly_after_fork(self._fd)
        self._fd = None
        self._tlock = threading.Lock()

    def _descriptor(self) -> int:
        fd = self._fd
        if fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd = fd
        return fd

    def acquire(self, timeout: float) -> None:
        """Take the lock or raise :class:`LockTimeout` after ``timeout`` seconds."""
        if not self._tlock.acquire(timeout=max(timeout, 0.0)):
            raise LockTimeout(f"lock {self.path} busy in this process", scope=self.path, timeout=timeout)
        try:
            fd = self._descriptor()
            if try_flock(fd):
                return
            start = time.monotonic()
            deadline = start + timeout
            delay = self.MIN_DELAY
            max_polls = int(timeout / self.MIN_DELAY) + 2
            for _ in range(max_polls):
                now = time.monotonic()
                if now >= deadline:
                    break
                time.sleep(min(delay, deadline - now))
                if try_flock(fd):
                    return
                delay = min(delay * 2, self.MAX_DELAY)
            raise LockTimeout(
                f"lock {self.path} not acquired in {timeout:.3f}s",
                scope=self.path,
                timeout=timeout,
                waited=time.monotonic() - start,
            )
        except BaseException:
            self._tlock.release()
            raise

    def release(self) -> None:
        fd = self._fd
        if fd is None:
            raise RuntimeError(f"release of {self.path} that this process never locked")
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._tlock.release()

    def close(self) -> None:
        """Drop the descriptor (and with it any lock this process still holds)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


__all__ = ["FlockMutex", "register_fork_aware", "try_flock", "close_quietly_after_fork"]
