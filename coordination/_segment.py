"""Named shared-memory segments that belong to a directory, and their clean-up after a crash.

Why a directory: the supervisor and its workers already agree on a run (or
state) directory, so the segment name is derived from its real path and
needs no other channel.  Beside the segment the directory holds

* ``<label>.lock``         the flock that serialises create/attach/unlink
                           (and, for the ownership table, every transition);
* ``<label>.segment.json`` a marker naming the segment and its creator
                           (pid + start time).

A run that crashed leaves both behind.  The next ``create`` in the same
directory finds the marker, proves the creator dead (pid gone, or reused
by another process) and unlinks the old segment; :func:`sweep_stale_segments`
does the same for every Drover segment in ``/dev/shm`` whose creator is
dead, whatever its directory.

The segments are opened here (:class:`PosixShm`, ``/dev/shm/NAME`` and
``mmap``), not with ``multiprocessing.shared_memory.SharedMemory``: on
Python 3.11 that class registers every segment it opens, attach or create,
with the multiprocessing resource tracker, and the first registration
starts the tracker — a Python process of its own for the life of the run
(8 MB PSS on this host, in every run's process tree).  A tracker that
outlives its processes unlinks what is still registered and warns about
"leaked" segments (so a worker started outside the supervisor's tree
would destroy the live table when it exits), and it keeps a *set* of
names, not a count, so processes sharing it see unbalanced unregisters.
This module had to unregister every open to keep it harmless; clean-up
after a crash is its job anyway (marker + sweep), so the tracker is not
started at all.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from coordination import _layout as L
from coordination._flock import FlockMutex
from coordination._process import current_identity, is_alive
from coordination.errors import SegmentError, SegmentInUse
from coordination.telemetry_context import stream_logger

_audit = stream_logger("audit", __name__)
_ops = stream_logger("operational", __name__)

NAME_PREFIX = "drover_"
SHM_DIR = Path("/dev/shm")
_LABELS = {L.KIND_OWNERSHIP: "ownership", L.KIND_CONTENTION: "contention"}
# How long create/attach/unlink wait for the directory's lock; these are rare, short operations.
SETUP_LOCK_TIMEOUT = 10.0


def segment_name(directory: str | os.PathLike[str], kind: bytes) -> str:
    """The segment name for ``kind`` in ``directory`` (short enough for every POSIX shm limit)."""
    real = os.path.realpath(os.fspath(directory))
    digest = hashlib.blake2b(real.encode(), digest_size=8).hexdigest()
    return f"{NAME_PREFIX}{_LABELS[kind][:3]}_{digest}"


@dataclass(frozen=True, slots=True)
class SegmentMarker:
    """What the marker file beside a segment records: enough to prove its creator dead."""

    name: str
    kind: str
    size: int
    creator_pid: int
    creator_start: float
    created_at: float


class PosixShm:
    """A named POSIX shared-memory segment (``/dev/shm/NAME``), mapped read-write into this process.

    What ``SharedMemory`` does on Linux (``shm_open`` is an ``open`` in
    ``/dev/shm``), without its resource tracker: see the module docstring.
    """

    __slots__ = ("name", "size", "buf", "_mmap")

    def __init__(self, name: str, *, create: bool = False, size: int = 0) -> None:
        if create and size <= 0:
            raise ValueError(f"a new shared-memory segment needs a positive size, not {size}")
        path = SHM_DIR / name
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            else:
                size = os.fstat(fd).st_size
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            if create:
                path.unlink(missing_ok=True)  # half-made: not left behind
            raise
        finally:
            os.close(fd)  # the mapping keeps the segment; the descriptor is not needed
        self.name = name
        self.size = size
        self.buf: memoryview | None = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap this process's view (raises ``BufferError`` while slices of ``buf`` are still held)."""
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        self._mmap.close()

    def unlink(self) -> None:
        """Remove the name; mappings that exist stay valid until closed."""
        (SHM_DIR / self.name).unlink()


def _unlink_by_name(name: str) -> bool:
    """Unlink a segment by name; False if it was already gone."""
    try:
        (SHM_DIR / name).unlink()
    except FileNotFoundError:
        return False
    return True


def _read_header(buf: memoryview | bytes) -> tuple[bytes, bytes, int, int, int, float, float]:
    magic, kind, version, _reserved, pid, count, start, created = L.COMMON_HEADER.unpack_from(buf, 0)
    return magic, kind, version, pid, count, start, created


class Segment:
    """One shared-memory segment owned by a directory: create, attach, close, unlink are explicit."""

    __slots__ = ("directory", "kind", "name", "shm", "buf", "mutex", "created_by", "count", "_closed")

    def __init__(
        self, directory: Path, kind: bytes, shm: PosixShm, mutex: FlockMutex, created_by: int | None
    ) -> None:
        self.directory = directory
        self.kind = kind
        self.name = shm.name
        self.shm = shm
        self.buf = shm.buf
        self.mutex = mutex
        self.created_by = created_by
        self.count = _read_header(shm.buf)[4]
        self._closed = False

    # -- paths -----------------------------------------------------------------
    @staticmethod
    def lock_path(directory: Path, kind: bytes) -> Path:
        return directory / f"{_LABELS[kind]}.lock"

    @staticmethod
    def marker_path(directory: Path, kind: bytes) -> Path:
        return directory / f"{_LABELS[kind]}.segment.json"

    # -- lifecycle -------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike[str], kind: bytes, count: int, size: int) -> "Segment":
        """Create the directory's segment, cleaning a crashed run's leftovers first.

        Raises :class:`SegmentInUse` if a live process created the current one.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        name = segment_name(path, kind)
        mutex = FlockMutex(cls.lock_path(path, kind))
        try:
            mutex.acquire(SETUP_LOCK_TIMEOUT)
        except BaseException:
            mutex.close()
            raise
        try:
            cls._clean_stale_marker(path, kind)
            shm = cls._create_fresh(name, size, path)
            me = current_identity()
            try:
                L.COMMON_HEADER.pack_into(
                    shm.buf, 0, L.MAGIC, kind, L.LAYOUT_VERSION, 0, me.pid, count, me.start_time, time.time()
                )
                marker = SegmentMarker(name, _LABELS[kind], size, me.pid, me.start_time, time.time())
                tmp = cls.marker_path(path, kind).with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(orjson.dumps(marker, option=orjson.OPT_SERIALIZE_DATACLASS))
                os.replace(tmp, cls.marker_path(path, kind))
            except BaseException:
                # Half-made: take the segment back out so it cannot outlive this failure.
                shm.close()
                shm.unlink()
                raise
        except BaseException:
            mutex.release()
            mutex.close()
            raise
        mutex.release()
        return cls(path, kind, shm, mutex, me.pid)

    @classmethod
    def attach(cls, directory: str | os.PathLike[str], kind: bytes) -> "Segment":
        """Attach to the directory's existing segment (any process: forked, spawned or unrelated)."""
        path = Path(directory)
        name = segment_name(path, kind)
        if not path.is_dir():
            raise SegmentError(f"no {_LABELS[kind]} segment for {path}: no such directory")
        mutex = FlockMutex(cls.lock_path(path, kind))
        try:
            mutex.acquire(SETUP_LOCK_TIMEOUT)
        except BaseException:
            mutex.close()
            raise
        try:
            shm = PosixShm(name)
        except BaseException as exc:
            mutex.release()
            mutex.close()
            if isinstance(exc, FileNotFoundError):
                raise SegmentError(f"no {_LABELS[kind]} segment for {path} (expected {name})") from exc
            raise
        mutex.release()
        magic, got_kind, version, *_ = _read_header(shm.buf)
        if (magic, got_kind, version) != (L.MAGIC, kind, L.LAYOUT_VERSION):
            shm.close()
            mutex.close()
            raise SegmentError(
                f"segment {name} is not a {_LABELS[kind]} segment of layout {L.LAYOUT_VERSION}: "
                f"magic={magic!r} kind={got_kind!r} version={version}"
            )
        return cls(path, kind, shm, mutex, None)

    def close(self) -> None:
        """Unmap this process's view (the segment itself stays for the others)."""
        if self._closed:
            return
        self._closed = True
        self.buf = None  # type: ignore[assignment]
        self.shm.close()
        self.mutex.close()

    def unlink(self) -> None:
        """Remove the segment and its marker; mappings that still exist stay valid until closed."""
        self.mutex.acquire(SETUP_LOCK_TIMEOUT)
        try:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                _ops.warning("segment already unlinked", extra={"segment": self.name})
            self.marker_path(self.directory, self.kind).unlink(missing_ok=True)
        finally:
            self.mutex.release()

    @property
    def is_creator(self) -> bool:
        """True in the process that created it (not in a forked child that inherited the handle)."""
        return self.created_by == os.getpid()

    # -- stale clean-up -------------------------------------------------------
    @classmethod
    def _clean_stale_marker(cls, path: Path, kind: bytes) -> None:
        marker_file = cls.marker_path(path, kind)
        try:
            raw = marker_file.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = orjson.loads(raw)
            marker = SegmentMarker(**data)
        except (orjson.JSONDecodeError, TypeError) as exc:
            # A marker torn by a crash mid-write: the name is derived, so clean by name.
            _ops.warning("unreadable segment marker", extra={"marker": str(marker_file), "error": str(exc)})
            marker = None
        if marker is not None and is_alive(marker.creator_pid, marker.creator_start):
            raise SegmentInUse(
                f"{_LABELS[kind]} segment {marker.name} in {path} belongs to live pid {marker.creator_pid}"
            )
        name = marker.name if marker is not None else segment_name(path, kind)
        removed = _unlink_by_name(name)
        marker_file.unlink(missing_ok=True)
        _audit.warning(
            "stale segment cleaned",
            extra={
                "segment": name,
                "directory": str(path),
                "creator_pid": marker.creator_pid if marker else None,
                "segment_existed": removed,
            },
        )

    @staticmethod
    def _create_fresh(name: str, size: int, path: Path) -> PosixShm:
        """Create ``name``; a segment there without a marker is an orphan of a crash between the two steps."""
        for _ in range(2):
            try:
                return PosixShm(name, create=True, size=size)
            except FileExistsError:
                orphan = PosixShm(name)
                try:
                    _magic, _kind, _v, pid, _count, start, _created = _read_header(orphan.buf)
                finally:
                    orphan.close()
                if is_alive(pid, start):
                    raise SegmentInUse(f"segment {name} for {path} belongs to live pid {pid}") from None
                orphan.unlink()
                _audit.warning("orphan segment cleaned", extra={"segment": name, "creator_pid": pid})
        raise SegmentError(f"segment {name} for {path} keeps reappearing; another run is racing this one")


@dataclass(frozen=True, slots=True)
class SweptSegment:
    """A segment :func:`sweep_stale_segments` removed."""

    name: str
    kind: str
    creator_pid: int


def sweep_stale_segments(shm_dir: Path = SHM_DIR) -> list[SweptSegment]:
    """Unlink every Drover segment whose creator is dead, whatever directory it belonged to.

    Why: a crashed run's directory may never be reused, and its segment
    would then stay in RAM until reboot.  Reads only the 64-byte header of
    each candidate (a plain read, no tracker traffic); segments whose
    creator is alive (another run on this machine) are left alone.
    """
    swept: list[SweptSegment] = []
    try:
        names = sorted(n for n in os.listdir(shm_dir) if n.startswith(NAME_PREFIX))
    except FileNotFoundError:
        return swept  # no /dev/shm on this platform: nothing this sweep can see
    for name in names[:10_000]:
        try:
            fd = os.open(shm_dir / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # unlinked between listdir and open
        try:
            head = os.pread(fd, L.COMMON_HEADER.size, 0)
        finally:
            os.close(fd)
        if len(head) < L.COMMON_HEADER.size:
            continue  # being created right now (ftruncate not done yet)
        magic, kind, _version, pid, _count, start, _created = _read_header(head)
        if magic != L.MAGIC or is_alive(pid, start):
            continue
        if _unlink_by_name(name):
            label = _LABELS.get(kind, kind.decode("ascii", "replace"))
            swept.append(SweptSegment(name, label, pid))
            _audit.warning("stale segment swept", extra={"segment": name, "creator_pid": pid})
    return swept


__all__ = ["Segment", "SegmentMarker", "SweptSegment", "segment_name", "sweep_stale_segments"]
