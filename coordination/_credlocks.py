"""Credential locks: one lock per credential scope, first come first served, safe against dead holders.

Why not a plain :class:`filelock.FileLock`: ``flock`` gives mutual exclusion
and frees the lock when its holder dies, but it is not fair; under load a
worker can lose the race again and again while others cycle through.  So
each scope has a ticket queue in front of the lock, and only the waiter at
the head of the queue may take it.

Layout of one scope (``<directory>/credlocks/<slug>.<hash>/``)::

    scope         the scope string, for humans
    queue.lock    flock serialising ticket numbering (held for microseconds)
    counter       next ticket number, u64 little-endian
    tickets/      one file per waiter, named by its zero-padded ticket number
    mutex.lock    the lock proper: filelock's native flock (interoperates with
                  ``filelock.FileLock(mutex.lock)`` held by any other tool)
    holder.json   who holds it: worker, pid, process start time, epoch, ...
                  (rewritten in place; empty while nobody holds the lock)

Protocol (and why each step is safe):

1. *Take a ticket* under ``queue.lock``: number ``n`` from ``counter``, a
   file created as ``tickets/.t<n>``, **flocked by the waiter**, then renamed
   to ``tickets/<n>``.  A ticket is therefore never visible unlocked while
   its owner lives.  Numbering and rename happen under one lock, so ticket
   order is arrival order.
2. *Wait* until the smallest ticket is ours.  Meanwhile probe the head:
   if its flock can be taken, its owner is gone (a live owner keeps it
   locked until after it unlinked the file), so remove it and move on.
   Dead waiters are skipped this way, and so is a dead holder -- the
   kernel dropped its flocks when it died.
3. *At the head*, take the flock on ``mutex.lock`` (free at once in the
   normal case; a dying holder may keep it a few microseconds longer),
   read ``holder.json`` (not empty means the previous holder died holding
   the lock: recorded as ``recovered_from``) and write ours.
4. *Release*: empty ``holder.json``, unlock the mutex, unlink the ticket,
   close the ticket descriptor -- in that order, so the next waiter never
   sees a stale holder nor a free head ticket before the mutex is free.

Cost: the counter, holder and mutex files stay open per process (closed
in forked children), so an uncontended cycle touches the directory only
to create, rename, list and unlink its ticket.

The epoch of a hold is its ticket number: unique, and rising in the order
holders are served.  Fairness: a waiter's position only improves (tickets
ahead of it are only ever removed), every holder keeps the lock for a
finite time, so a waiter is served after at most the holds queued before
it -- no starvation.  A process that forks while holding a lock does not
pass it on: the child closes its inherited descriptors (closing a copy
never releases the parent's flock), so a dead parent's lock is not kept
alive by a surviving child.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import orjson
from filelock import lock_descriptor, unlock_descriptor

from coordination._flock import FlockMutex, close_quietly_after_fork, register_fork_aware, try_flock
from coordination._process import current_identity
from coordination.errors import CoordinationError, LockTimeout
from coordination.telemetry_context import stream_logger

if TYPE_CHECKING:
    from coordination._contention import WorkerCounters

_audit = stream_logger("audit", __name__)
_ops = stream_logger("operational", __name__)

_COUNTER = struct.Struct("<Q")
_TICKET_DIGITS = 20
_TMP_PREFIX = ".t"
_SWEEP_EVERY = 64  # tickets between clean-ups of temp files left by processes killed mid-numbering
POLL_MIN = 2e-4
POLL_MAX = 5e-3
QUEUE_LOCK_TIMEOUT = 5.0
_MAX_SCOPE = 1024


def scope_dirname(scope: str) -> str:
    """A safe, unique directory name for a scope: a readable slug plus a hash of the exact string.

    The slug keeps only ``[A-Za-z0-9_-]``, so no separator, dot-dot or
    leading dot can reach the file system; the hash keeps distinct scopes
    distinct even when their slugs coincide (``a/b`` and ``a:b``).
    """
    if not isinstance(scope, str) or not scope or len(scope) > _MAX_SCOPE or "\0" in scope:
        raise ValueError(f"credential scope must be a non-empty string of at most {_MAX_SCOPE} chars without NUL")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", scope).strip("-")[:48] or "scope"
    digest = hashlib.blake2b(scope.encode("utf-8"), digest_size=8).hexdigest()
    return f"{slug}.{digest}"


@dataclass(frozen=True, slots=True)
class HolderRecord:
    """Who holds (or, for ``recovered_from``, died holding) a credential lock."""

    scope: str
    worker: int
    pid: int
    start_time: float
    epoch: int
    acquired_at: float


class _Scope:
    """One scope's files, as used by one process.

    Paths are plain strings and the counter, holder and mutex files stay
    open: this is a hot path, and pathlib and open/close cost more than
    the work itself.
    """

    __slots__ = ("scope", "root", "tickets", "mutex_path", "holder_path", "counter_path", "queue_lock",
                 "_counter_fd", "_holder_fd", "_mutex_fd", "_fd_lock", "__weakref__")

    def __init__(self, base: Path, scope: str) -> None:
        self.scope = scope
        root = base / scope_dirname(scope)
        (root / "tickets").mkdir(parents=True, exist_ok=True)
        label = root / "scope"
        if not label.exists():
            label.write_text(scope, encoding="utf-8")
        self.root = str(root)
        self.tickets = str(root / "tickets")
        self.mutex_path = str(root / "mutex.lock")
        self.holder_path = str(root / "holder.json")
        self.counter_path = str(root / "counter")
        self.queue_lock = FlockMutex(root / "queue.lock")
        self._counter_fd: int | None = None
        self._holder_fd: int | None = None
        self._mutex_fd: int | None = None
        self._fd_lock = threading.Lock()
        register_fork_aware(self)

    def _after_fork_in_child(self) -> None:
        # Closing the child's copies never releases a lock the parent holds through them.
        for fd in (self._counter_fd, self._holder_fd, self._mutex_fd):
            close_quietly_after_fork(fd)
        self._counter_fd = self._holder_fd = self._mutex_fd = None
        self._fd_lock = threading.Lock()

    def _open(self, attr: str, path: str) -> int:
        fd = getattr(self, attr)
        if fd is None:
            with self._fd_lock:
                fd = getattr(self, attr)
                if fd is None:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    setattr(self, attr, fd)
        return fd

    def close(self) -> None:
        for attr in ("_counter_fd", "_holder_fd", "_mutex_fd"):
            fd = getattr(self, attr)
            setattr(self, attr, None)
            if fd is not None:
                os.close(fd)
        self.queue_lock.close()

    def ticket_path(self, n: int) -> str:
        return f"{self.tickets}/{n:0{_TICKET_DIGITS}d}"

    # -- the line -------------------------------------------------------------
    def take_ticket(self, ident: bytes) -> tuple[int, int]:
        """Number, create, flock and publish a ticket; returns (ticket, its locked descriptor)."""
        self.queue_lock.acquire(QUEUE_LOCK_TIMEOUT)
        try:
            cfd = self._open("_counter_fd", self.counter_path)
            raw = os.pread(cfd, _COUNTER.size, 0)
            n = (_COUNTER.unpack(raw)[0] if len(raw) == _COUNTER.size else 0) + 1
            os.pwrite(cfd, _COUNTER.pack(n), 0)
            if n % _SWEEP_EVERY == 0:
                self._sweep_temp_files()
            tmp = f"{self.tickets}/{_TMP_PREFIX}{n}"
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                # Only a process killed while it was numbering n (under this lock) could have left it.
                os.unlink(tmp)
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if not try_flock(fd):
                    raise CoordinationError(f"fresh ticket file {tmp} is locked by someone else")
                os.write(fd, ident)
                os.rename(tmp, self.ticket_path(n))
            except BaseException:
                os.close(fd)
                _unlink_if_present(tmp)
                raise
            return n, fd
        finally:
            self.queue_lock.release()

    def _sweep_temp_files(self) -> None:
        # Called with queue.lock held: a temp ticket only exists inside that lock, so any found now is dead.
        for name in os.listdir(self.tickets)[:10_000]:
            if name.startswith(_TMP_PREFIX):
                _unlink_if_present(f"{self.tickets}/{name}")

    def queue(self) -> list[int]:
        """Tickets in line, in order (dead ones not yet skipped included)."""
        return sorted(int(n) for n in os.listdir(self.tickets) if not n.startswith("."))

    def head(self) -> int | None:
        names = [n for n in os.listdir(self.tickets) if not n.startswith(".")]
        return int(min(names)) if names else None

    def probe_gone(self, ticket: int) -> bool:
        """True if ``ticket`` no longer blocks the queue (released, or its owner died; a dead one is removed)."""
        path = self.ticket_path(ticket)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            if not try_flock(fd):
                return False  # its owner is alive and waiting or holding
            if os.fstat(fd).st_nlink == 0:
                return True  # released normally between our open and our flock
            try:
                info = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
            except orjson.JSONDecodeError:
                info = {}  # killed before it wrote its identity
            _unlink_if_present(path)
            _audit.warning("dead credential waiter skipped",
                           extra={"scope": self.scope, "ticket": ticket, "dead_pid": info.get("pid"),
                                  "dead_worker": info.get("worker")})
            return True
        finally:
            os.close(fd)

    # -- the lock and its record ----------------------------------------------
    def try_mutex(self) -> bool:
        return lock_descriptor(self._open("_mutex_fd", self.mutex_path), blocking=False)

    def unlock_mutex(self) -> None:
        unlock_descriptor(self._mutex_fd)

    def read_holder(self) -> HolderRecord | None:
        """The record in ``holder.json``; ``None`` when empty (free)."""
        fd = self._open("_holder_fd", self.holder_path)
        raw = b""
        for _ in range(3):  # a reader racing the holder's in-place write may see a mix: read again
            raw = os.pread(fd, 65536, 0)
            if not raw:
                return None
            try:
                return HolderRecord(**orjson.loads(raw))
            except (orjson.JSONDecodeError, TypeError):
                continue
        _ops.warning("unreadable credential holder record",
                     extra={"scope": self.scope, "path": self.holder_path, "record": raw[:200].decode("utf-8",
                                                                                                      "replace")})
        return None

    def write_holder(self, record: HolderRecord) -> None:
        """Only the holder writes (mutex held); others read it for diagnostics and recovery."""
        data = orjson.dumps(record, option=orjson.OPT_SERIALIZE_DATACLASS)
        fd = self._open("_holder_fd", self.holder_path)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def clear_holder(self) -> None:
        os.ftruncate(self._open("_holder_fd", self.holder_path), 0)


def _unlink_if_present(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class CredentialHold:
    """A held credential lock.  ``release()`` (or leaving the ``with`` block) gives it to the next waiter."""

    __slots__ = ("scope", "epoch", "waited", "acquired_at", "recovered_from", "_sc", "_ticket_fd", "_released",
                 "__weakref__")

    def __init__(self, sc: _Scope, epoch: int, ticket_fd: int, waited: float,
                 recovered_from: HolderRecord | None) -> None:
        self.scope = sc.scope
        self.epoch = epoch
        self.waited = waited
        self.acquired_at = time.time()
        self.recovered_from = recovered_from
        self._sc = sc
        self._ticket_fd: int | None = ticket_fd
        self._released = False
        register_fork_aware(self)

    def _after_fork_in_child(self) -> None:
        # The child must not keep the parent's place in line alive (the scope closes the mutex copy).
        close_quietly_after_fork(self._ticket_fd)
        self._ticket_fd = None
        self._released = True

    @property
    def held(self) -> bool:
        return not self._released

    def release(self) -> None:
        if self._released:
            raise CoordinationError(f"credential lock {self.scope} epoch {self.epoch} released twice")
        self._released = True
        sc = self._sc
        try:
            sc.clear_holder()
            sc.unlock_mutex()
        finally:
            try:
                os.unlink(sc.ticket_path(self.epoch))
            except FileNotFoundError:
                # Someone judged this holder dead while it lived: the queue was broken; say so loudly.
                _ops.error("credential ticket vanished while held", extra={"scope": self.scope, "epoch": self.epoch})
            finally:
                os.close(self._ticket_fd)
                self._ticket_fd = None

    def __enter__(self) -> "CredentialHold":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._released:
            self.release()


class CredentialLocks:
    """The credential locks of one run directory, as used by one worker process."""

    __slots__ = ("base", "worker", "counters", "poll_max", "_scopes", "_tlock")

    def __init__(self, directory: str | os.PathLike[str], *, worker: int,
                 counters: "WorkerCounters | None" = None, poll_max: float = POLL_MAX) -> None:
        self.base = Path(directory) / "credlocks"
        self.base.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.counters = counters
        self.poll_max = max(POLL_MIN, poll_max)
        self._scopes: dict[str, _Scope] = {}
        self._tlock = threading.Lock()

    def _scope(self, scope: str) -> _Scope:
        sc = self._scopes.get(scope)
        if sc is None:
            with self._tlock:
                sc = self._scopes.get(scope)
                if sc is None:
                    sc = _Scope(self.base, scope)
                    self._scopes[scope] = sc
        return sc

    def acquire(self, scope: str, timeout: float,
                *, on_queued: Callable[[int], None] | None = None) -> CredentialHold:
        """Wait in line for ``scope`` and take it, or raise :class:`LockTimeout` after ``timeout`` seconds.

        ``on_queued(ticket)`` runs once the ticket is in the queue (tests and
        telemetry use it to know a waiter is in line).
        """
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        start = time.monotonic()
        sc = self._scope(scope)
        me = current_identity()
        ident = orjson.dumps({"worker": self.worker, "pid": me.pid, "start_time": me.start_time})
        ticket, tfd = sc.take_ticket(ident)
        try:
            if on_queued is not None:
                on_queued(ticket)
            self._wait_turn(sc, ticket, start, timeout)
        except BaseException:
            try:
                _unlink_if_present(sc.ticket_path(ticket))
            finally:
                os.close(tfd)
            raise
        try:
            previous = sc.read_holder()
            sc.write_holder(HolderRecord(scope, self.worker, me.pid, me.start_time, ticket, time.time()))
        except BaseException:
            sc.unlock_mutex()
            _unlink_if_present(sc.ticket_path(ticket))
            os.close(tfd)
            raise
        waited = time.monotonic() - start
        if previous is not None:
            _audit.warning("credential lock recovered from dead holder",
                           extra={"scope": scope, "epoch": ticket, "dead_pid": previous.pid,
                                  "dead_worker": previous.worker, "dead_epoch": previous.epoch})
        if self.counters is not None:
            self.counters.record_lock_wait(waited)
        return CredentialHold(sc, ticket, tfd, waited, previous)

    def _wait_turn(self, sc: _Scope, ticket: int, start: float, timeout: float) -> None:
        """Block until ``ticket`` is at the head and the mutex is ours (bounded by ``timeout``)."""
        deadline = start + timeout
        poll = POLL_MIN
        max_rounds = int(timeout / POLL_MIN) + 1_000
        for _ in range(max_rounds):
            head = sc.head()
            if head == ticket:
                if sc.try_mutex():
                    return
                # else a dying predecessor still holds it for a moment
            elif head is None or head > ticket:
                raise CoordinationError(f"credential ticket {ticket} of {sc.scope} vanished from its queue")
            elif sc.probe_gone(head):
                continue  # the line moved: look again at once
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(min(poll, deadline - now))
            poll = min(poll * 1.5, self.poll_max)
        raise self._timed_out(sc, ticket, start, timeout)

    def _timed_out(self, sc: _Scope, ticket: int, start: float, timeout: float) -> LockTimeout:
        if self.counters is not None:
            self.counters.add_lock_timeout()
        waited = time.monotonic() - start
        holder = sc.read_holder()
        ahead = sum(1 for t in sc.queue() if t < ticket)
        _ops.error("credential lock timeout",
                   extra={"scope": sc.scope, "ticket": ticket, "ahead": ahead, "waited": waited,
                          "holder_pid": holder.pid if holder else None,
                          "holder_worker": holder.worker if holder else None})
        return LockTimeout(
            f"credential lock {sc.scope!r} not acquired in {timeout:.3f}s ({ahead} ahead of ticket {ticket})",
            scope=sc.scope, timeout=timeout, waited=waited, holder=holder,
        )

    def close(self) -> None:
        """Close this process's descriptors (never while holding one of these locks)."""
        with self._tlock:
            for sc in self._scopes.values():
                sc.close()
            self._scopes.clear()

    def holder(self, scope: str) -> HolderRecord | None:
        """The recorded holder of ``scope`` (``None`` when free)."""
        return self._scope(scope).read_holder()

    def queue(self, scope: str) -> list[int]:
        """Tickets currently in line for ``scope`` (the head holds or is about to)."""
        return self._scope(scope).queue()

    def sweep_dead(self, scope: str) -> int:
        """Remove the tickets of dead waiters anywhere in ``scope``'s line (waiters skip them anyway
        when they reach the head; a supervisor calls this to leave a clean directory)."""
        sc = self._scope(scope)
        return sum(1 for t in sc.queue() if sc.probe_gone(t))


__all__ = ["CredentialLocks", "CredentialHold", "HolderRecord", "scope_dirname"]
