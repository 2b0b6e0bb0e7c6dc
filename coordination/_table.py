r"""The ownership table: which worker owns which browser session, at which epoch.

Why shared memory and an explicit state machine: every CDP command a
worker sends must come from the session's one owner, and the check sits
on the hot path of every send.  A slot lives in shared memory so that
check is a memory read, not a round trip to the supervisor; every write
is a named transition validated under the table's lock, so a bug shows up
as a typed :class:`InvalidTransition` (counted and logged) instead of two
workers driving one browser.

States and who may move a slot (the transition table is data, below)::

    FREE --claim--> CLAIMED --activate--> ACTIVE --begin_release--> RELEASING --finish_release--> FREE
                       \\_____________begin_release________________/^

    CLAIMED | ACTIVE | RELEASING  --quarantine (owner, or supervisor)-->  QUARANTINED
    any state but FREE            --reclaim (supervisor only)--------->  FREE

    The epoch rises on claim, finish_release, quarantine and reclaim.

The epoch is the fencing token.  It rises whenever the set of processes
allowed to use the slot changes (a claim, and every move to FREE or
QUARANTINED), so a token handed out once is never valid again after its
holder lost the slot, and a reclaimed worker that wakes up late is
refused at its next send.

Concurrency: writers hold the table's flock (a file beside the segment),
so there is one writer at a time in the whole machine.  Each slot carries
a seqlock counter that a writer makes odd before and even after it writes,
so readers (``read``, ``check_owner``) need no lock: they take a snapshot
whose counter was even and unchanged across the read.  See
:meth:`OwnershipTable.check_owner` for why that is enough for fencing.
A writer SIGKILLed mid-write leaves the counter odd; the next writer that
meets it fences the slot off (QUARANTINED, new epoch).
"""
from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from coordination import _layout as L
from coordination._process import current_identity, is_alive
from coordination._segment import Segment
from coordination.errors import InvalidTransition, TableFull, UnownedUse
from coordination.telemetry_context import stream_logger

if TYPE_CHECKING:
    from coordination._contention import WorkerCounters
    from coordination._credlocks import CredentialLocks

_ops = stream_logger("operational", __name__)
_audit = stream_logger("audit", __name__)


class SlotState(enum.IntEnum):
    FREE = 0
    CLAIMED = 1
    ACTIVE = 2
    RELEASING = 3
    QUARANTINED = 4


OWNED_STATES = frozenset({SlotState.CLAIMED, SlotState.ACTIVE, SlotState.RELEASING})
_OWNED_VALUES = frozenset(int(s) for s in OWNED_STATES)

# target state -> states an owner (presenting worker id + current epoch) may move from.
OWNER_MOVES: dict[SlotState, frozenset[SlotState]] = {
    SlotState.ACTIVE: frozenset({SlotState.CLAIMED}),
    SlotState.RELEASING: frozenset({SlotState.CLAIMED, SlotState.ACTIVE}),
    SlotState.FREE: frozenset({SlotState.RELEASING}),
    SlotState.QUARANTINED: OWNED_STATES,
}
# target state -> states the supervisor may force a slot out of.
SUPERVISOR_MOVES: dict[SlotState, frozenset[SlotState]] = {
    SlotState.FREE: frozenset(SlotState) - {SlotState.FREE},
    SlotState.QUARANTINED: OWNED_STATES,
}
# Entering these states changes who may use the slot, so the epoch rises.
EPOCH_BUMPS = frozenset({SlotState.CLAIMED, SlotState.FREE, SlotState.QUARANTINED})

REASON_STALE_EPOCH = "stale_epoch"
REASON_WRONG_OWNER = "wrong_owner"
REASON_BAD_STATE = "bad_state"

DEFAULT_LOCK_TIMEOUT = 5.0
_READ_SPINS = 200


@dataclass(frozen=True, slots=True)
class Slot:
    """One slot as read at one instant (a copy: it does not follow later changes)."""

    index: int
    state: SlotState
    epoch: int
    owner_worker: int | None
    owner_pid: int
    owner_start: float
    session_id: str
    claimed_at: float
    updated_at: float

    @property
    def owned(self) -> bool:
        return self.state in OWNED_STATES


@dataclass(frozen=True, slots=True)
class TableTotals:
    """Table-wide counts kept in the segment header (written under the table lock).

    They include every process that used the table, bound to a contention
    row or not.  The rows' ``unowned_uses`` / ``invalid_transitions`` are a
    per-worker breakdown of the *same* events: add one or the other, never both.
    """

    invalid_transitions: int
    unowned_uses: int


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """A slot the dead-owner sweep took back."""

    slot: int
    from_state: SlotState
    dead_worker: int | None
    dead_pid: int
    old_epoch: int
    new_epoch: int


@dataclass(frozen=True, slots=True)
class _Rejection:
    reason: str
    slot: int
    from_state: SlotState
    to_state: SlotState
    owner: int | None
    caller: int | None
    epoch: int | None
    current_epoch: int


def _owner(worker: int) -> int | None:
    return None if worker == L.NO_WORKER else worker


def _decode(raw: tuple, index: int) -> Slot:
    epoch, start, worker, pid, state, claimed, updated, session = raw
    return Slot(
        index=index,
        state=SlotState(state),
        epoch=epoch,
        owner_worker=None if worker == L.NO_WORKER else worker,
        owner_pid=pid,
        owner_start=start,
        session_id=session.rstrip(b"\0").decode("utf-8", "replace"),
        claimed_at=claimed,
        updated_at=updated,
    )


def _encode_session(session_id: str) -> bytes:
    raw = session_id.encode("utf-8")
    if len(raw) > L.SESSION_ID_BYTES:
        raise ValueError(f"session id is {len(raw)} bytes, the table holds at most {L.SESSION_ID_BYTES}")
    return raw


class OwnershipTable:
    """A fixed number of slots in shared memory; create in the supervisor, attach anywhere else."""

    __slots__ = ("_seg", "_buf", "_offsets", "_mutex", "slots", "counters", "lock_timeout")

    def __init__(self, segment: Segment, lock_timeout: float) -> None:
        self._seg = segment
        self._buf = segment.buf
        self._mutex = segment.mutex
        self.slots = segment.count
        self._offsets = tuple(L.slot_offset(i) for i in range(self.slots))
        self.counters: WorkerCounters | None = None
        self.lock_timeout = lock_timeout

    # -- lifecycle -------------------------------------------------------------
    @classmethod
    def create(
        cls, directory: str | os.PathLike[str], slots: int, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        epoch_floor: int = 0,
    ) -> "OwnershipTable":
        """Create the table of ``directory`` with ``slots`` free slots (cleans a crashed run's table first).

        ``epoch_floor``: every slot starts there, so the first claim gets
        ``epoch_floor + 1``.  A caller whose run outlives one table (a
        resume after a crash) passes a floor above every epoch it has
        handed out before, so fencing tokens only ever rise for the run.
        """
        if not 1 <= slots <= 65536:
            raise ValueError(f"slots must be 1..65536, got {slots}")
        if epoch_floor < 0:
            raise ValueError(f"epoch_floor must be >= 0, got {epoch_floor}")
        seg = Segment.create(directory, L.KIND_OWNERSHIP, slots, L.ownership_size(slots))
        table = cls(seg, lock_timeout)
        now = time.time()
        for i in range(slots):
            table._write(i, 0, epoch_floor, 0.0, L.NO_WORKER, 0, SlotState.FREE, 0.0, now, b"")
        return table

    @classmethod
    def attach(
        cls, directory: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> "OwnershipTable":
        return cls(Segment.attach(directory, L.KIND_OWNERSHIP), lock_timeout)

    def close(self) -> None:
        self._buf = None  # type: ignore[assignment]
        self._seg.close()

    def unlink(self) -> None:
        self._seg.unlink()

    def __enter__(self) -> "OwnershipTable":
        return self

    def __exit__(self, *exc: object) -> None:
        """Close; the creating process also unlinks (a forked child that inherited the handle does not)."""
        creator = self._seg.is_creator
        self.close()
        if creator:
            self.unlink()

    @property
    def name(self) -> str:
        return self._seg.name

    @property
    def directory(self) -> Path:
        return self._seg.directory

    def bind_counters(self, counters: "WorkerCounters | None") -> None:
        """Also count this process's unowned uses and invalid transitions in its contention row.

        The table header counts them anyway (see :class:`TableTotals`); the
        row says which worker they came from.
        """
        self.counters = counters

    # -- reads (lock-free) -----------------------------------------------------
    def read(self, slot: int) -> Slot:
        """A consistent copy of one slot, without taking the lock."""
        off = self._offsets[slot]
        buf = self._buf
        seq_s = L.SLOT_SEQ
        body = L.SLOT_BODY
        for _ in range(_READ_SPINS):
            s1 = seq_s.unpack_from(buf, off)[0]
            if s1 & 1:
                continue
            raw = body.unpack_from(buf, off + L.SLOT_BODY_OFFSET)
            if seq_s.unpack_from(buf, off)[0] == s1:
                return _decode(raw, slot)
        with self._locked():
            return _decode(self._read_locked(slot), slot)

    def snapshot(self) -> tuple[Slot, ...]:
        return tuple(self.read(i) for i in range(self.slots))

    def totals(self) -> TableTotals:
        invalid, unowned = L.TABLE_TOTALS.unpack_from(self._buf, L.TABLE_TOTALS_OFFSET)
        return TableTotals(invalid, unowned)

    def check_owner(self, slot: int, worker: int, epoch: int) -> None:
        """Raise :class:`UnownedUse` unless ``worker`` owns ``slot`` at ``epoch`` right now.

        This runs before every CDP send, so it takes no lock: one unpack of
        the slot's leading fields plus a re-read of its seqlock counter.
        Why that is safe for a fencing check:

        * a write is bracketed by the counter going odd and back to even
          (under the table lock, so there is one writer), so an even,
          unchanged counter around the read means the fields come from one
          committed version of the slot, never a mix of two (on x86-64
          loads are not reordered with loads nor stores with stores; on a
          weakly ordered CPU such as arm64 Python gives no barrier, so
          there this rests on the next point alone);
        * the answer of any ownership check is stale the instant it returns,
          with or without a lock; what fencing needs is that once a
          transition that moved the epoch has completed, every later check
          sees the new epoch.  The epoch only rises and the store that
          raised it is visible to every later load, so a reclaimed or
          released worker fails its very next check.

        A read that raced a writer (odd or changed counter) is settled on
        the slow path under the lock before anything is counted.
        """
        off = self._offsets[slot]
        buf = self._buf
        seq, cur_epoch, _start, owner, _pid, state = L.SLOT_CHECK.unpack_from(buf, off)
        if (
            cur_epoch == epoch
            and owner == worker
            and state in _OWNED_VALUES
            and not seq & 1
            and L.SLOT_SEQ.unpack_from(buf, off)[0] == seq
        ):
            return
        self._check_owner_slow(slot, worker, epoch)

    def _check_owner_slow(self, slot: int, worker: int, epoch: int) -> None:
        with self._locked():
            cur = _decode(self._read_locked(slot), slot)
            if cur.epoch == epoch and cur.owner_worker == worker and cur.owned:
                return  # the fast read raced a writer; the settled answer is "owned"
            self._bump_total(unowned=1)
        if self.counters is not None:
            self.counters.add_unowned_use()
        _ops.error(
            "unowned session use",
            extra={
                "slot": slot,
                "caller_worker": worker,
                "presented_epoch": epoch,
                "owner_worker": cur.owner_worker,
                "current_epoch": cur.epoch,
                "slot_state": cur.state.name,
            },
        )
        raise UnownedUse(
            f"worker {worker} used slot {slot} at epoch {epoch}; owner is {cur.owner_worker} "
            f"at epoch {cur.epoch} ({cur.state.name})",
            slot=slot,
            worker=worker,
            epoch=epoch,
            owner=cur.owner_worker,
            current_epoch=cur.epoch,
            state=cur.state,
        )

    # -- owner transitions -----------------------------------------------------
    def claim(self, worker: int, *, session_id: str = "", slot: int | None = None) -> Slot:
        """Take a free slot (``slot=None``: any, starting at ``worker % slots`` to spread workers).

        Raises :class:`TableFull` when no slot is free (normal contention,
        not counted as invalid) and :class:`InvalidTransition` when the
        named ``slot`` is not free.
        """
        if worker < 0:
            raise ValueError(f"worker ids are >= 0, got {worker}")
        session = _encode_session(session_id)
        me = current_identity()
        with self._locked():
            if slot is None:
                index = self._find_free(worker)
                if index is None:
                    raise TableFull(f"all {self.slots} slots are taken")
            else:
                index = slot
            raw = self._read_locked(index)
            cur_epoch, _start, owner, _pid, state = raw[:5]
            if state == SlotState.FREE:
                now = time.time()
                epoch = cur_epoch + 1
                self._write(index, None, epoch, me.start_time, worker, me.pid, SlotState.CLAIMED, now, now, session)
                return Slot(index, SlotState.CLAIMED, epoch, worker, me.pid, me.start_time, session_id, now, now)
            rejection = _Rejection(
                REASON_BAD_STATE, index, SlotState(state), SlotState.CLAIMED, _owner(owner), worker, None, cur_epoch
            )
            self._bump_total(invalid=1)
        raise self._rejected(rejection)

    def activate(self, slot: int, worker: int, epoch: int, *, session_id: str | None = None) -> Slot:
        """CLAIMED -> ACTIVE: the owner's browser session is up (optionally record its id now)."""
        return self._owner_move(slot, worker, epoch, SlotState.ACTIVE, session_id=session_id)

    def begin_release(self, slot: int, worker: int, epoch: int) -> Slot:
        """CLAIMED/ACTIVE -> RELEASING: the owner is shutting its session down."""
        return self._owner_move(slot, worker, epoch, SlotState.RELEASING)

    def finish_release(self, slot: int, worker: int, epoch: int) -> Slot:
        """RELEASING -> FREE with a new epoch: the slot is reusable and the old token is dead."""
        return self._owner_move(slot, worker, epoch, SlotState.FREE)

    def quarantine(self, slot: int, worker: int, epoch: int, *, reason: str) -> Slot:
        """Owner fences its own slot off (e.g. its browser misbehaved); only a reclaim frees it again."""
        result = self._owner_move(slot, worker, epoch, SlotState.QUARANTINED)
        _audit.warning("slot quarantined", extra={"slot": slot, "caller_worker": worker, "reason": reason,
                                                  "new_epoch": result.epoch})
        return result

    # -- supervisor transitions ------------------------------------------------
    def reclaim(self, slot: int, *, expected_epoch: int | None = None, reason: str) -> Slot:
        """Force any non-free slot back to FREE with a new epoch (supervisor only).

        ``expected_epoch`` guards against reclaiming a slot that changed
        hands since the caller looked at it (raises ``stale_epoch``).
        """
        return self._supervisor_move(slot, SlotState.FREE, expected_epoch, reason)

    def force_quarantine(self, slot: int, *, expected_epoch: int | None = None, reason: str) -> Slot:
        """Fence an owned slot off from its owner (supervisor only), with a new epoch."""
        return self._supervisor_move(slot, SlotState.QUARANTINED, expected_epoch, reason)

    def reclaim_if_dead(
        self,
        seen: Slot,
        alive: Callable[[int, float], bool] = is_alive,
        on_reclaim: Callable[[Reclaimed], None] | None = None,
    ) -> Reclaimed | None:
        """Reclaim ``seen`` if it is still exactly as seen (same epoch, same owner) and its owner is dead.

        ``on_reclaim`` runs while the table lock is still held, so whatever
        it records is ordered before any later claim of the slot.
        """
        if not seen.owned or alive(seen.owner_pid, seen.owner_start):
            return None
        with self._locked():
            cur = _decode(self._read_locked(seen.index), seen.index)
            if cur.epoch != seen.epoch or cur.owner_pid != seen.owner_pid or not cur.owned:
                return None  # moved on since the sweep looked: not ours to judge any more
            epoch = cur.epoch + 1
            self._write(cur.index, None, epoch, 0.0, L.NO_WORKER, 0, SlotState.FREE, 0.0, time.time(), b"")
            done = Reclaimed(cur.index, cur.state, cur.owner_worker, cur.owner_pid, cur.epoch, epoch)
            if on_reclaim is not None:
                on_reclaim(done)
        _audit.warning(
            "slot reclaimed from dead owner",
            extra={"slot": cur.index, "from_state": cur.state.name, "owner_worker": cur.owner_worker,
                   "owner_pid": cur.owner_pid, "old_epoch": cur.epoch, "new_epoch": epoch},
        )
        return done

    def _reclaim_torn(self, slot: int, on_reclaim: Callable[[Reclaimed], None] | None) -> Reclaimed | None:
        """Free a slot that :meth:`repair_torn` quarantined (lock taken here, hook run under it)."""
        with self._locked():
            epoch, _start, _owner, _pid, state = self._read_locked(slot)[:5]
            if state != SlotState.QUARANTINED:
                return None
            self._write(slot, None, epoch + 1, 0.0, L.NO_WORKER, 0, SlotState.FREE, 0.0, time.time(), b"")
            done = Reclaimed(slot, SlotState.QUARANTINED, None, 0, epoch, epoch + 1)
            if on_reclaim is not None:
                on_reclaim(done)
        _audit.warning("torn slot reclaimed", extra={"slot": slot, "old_epoch": epoch, "new_epoch": epoch + 1})
        return done

    # -- internals -------------------------------------------------------------
    # Inside the lock a slot travels as the raw SLOT_BODY tuple
    # (epoch, owner_start, owner_worker, owner_pid, state, claimed_at, updated_at, session):
    # building a frozen dataclass costs more than the rest of a transition, so
    # only the returned result is built as a Slot.
    def _owner_move(
        self, slot: int, worker: int, epoch: int, to: SlotState, *, session_id: str | None = None
    ) -> Slot:
        session = None if session_id is None else _encode_session(session_id)
        with self._locked():
            raw = self._read_locked(slot)
            cur_epoch, _start, owner, _pid, state = raw[:5]
            reason = None
            if epoch != cur_epoch:
                reason = REASON_STALE_EPOCH
            elif owner != worker:
                reason = REASON_WRONG_OWNER
            elif state not in OWNER_MOVES[to]:
                reason = REASON_BAD_STATE
            if reason is None:
                return self._apply(slot, raw, to, session)
            self._bump_total(invalid=1)
        raise self._rejected(
            _Rejection(reason, slot, SlotState(state), to, _owner(owner), worker, epoch, cur_epoch)
        )

    def _supervisor_move(self, slot: int, to: SlotState, expected_epoch: int | None, reason: str) -> Slot:
        with self._locked():
            raw = self._read_locked(slot)
            cur = _decode(raw, slot)
            why = None
            if expected_epoch is not None and expected_epoch != cur.epoch:
                why = REASON_STALE_EPOCH
            elif cur.state not in SUPERVISOR_MOVES[to]:
                why = REASON_BAD_STATE
            if why is None:
                result = self._apply(slot, raw, to, None)
            else:
                self._bump_total(invalid=1)
        if why is not None:
            raise self._rejected(
                _Rejection(why, slot, cur.state, to, cur.owner_worker, None, expected_epoch, cur.epoch)
            )
        _audit.warning(
            "slot reclaimed" if to is SlotState.FREE else "slot quarantined",
            extra={"slot": slot, "from_state": cur.state.name, "to_state": to.name, "owner_worker": cur.owner_worker,
                   "owner_pid": cur.owner_pid, "old_epoch": cur.epoch, "new_epoch": result.epoch, "reason": reason},
        )
        return result

    def _apply(self, slot: int, raw: tuple, to: SlotState, session: bytes | None) -> Slot:
        """Write slot ``slot`` (currently ``raw``) moved to ``to`` (lock held, move already validated)."""
        epoch, start, worker, pid, _state, claimed, _updated, cur_session = raw
        now = time.time()
        if to in EPOCH_BUMPS:
            epoch += 1
        if to is SlotState.FREE:
            self._write(slot, None, epoch, 0.0, L.NO_WORKER, 0, to, 0.0, now, b"")
            return Slot(slot, to, epoch, None, 0, 0.0, "", 0.0, now)
        sid = cur_session.rstrip(b"\0") if session is None else session
        self._write(slot, None, epoch, start, worker, pid, to, claimed, now, sid)
        return Slot(slot, to, epoch, _owner(worker), pid, start, sid.decode("utf-8", "replace"), claimed, now)

    def _rejected(self, r: _Rejection) -> InvalidTransition:
        if self.counters is not None:
            self.counters.add_invalid_transition()
        _ops.error(
            "invalid transition",
            extra={"slot": r.slot, "from_state": r.from_state.name, "to_state": r.to_state.name,
                   "owner_worker": r.owner, "caller_worker": r.caller, "presented_epoch": r.epoch,
                   "current_epoch": r.current_epoch, "reason": r.reason},
        )
        return InvalidTransition(
            f"slot {r.slot}: {r.from_state.name} -> {r.to_state.name} refused ({r.reason}); "
            f"owner {r.owner} epoch {r.current_epoch}, asked by {r.caller} with epoch {r.epoch}",
            slot=r.slot, from_state=r.from_state, to_state=r.to_state, owner=r.owner, caller=r.caller,
            epoch=r.epoch, current_epoch=r.current_epoch, reason=r.reason,
        )

    def _locked(self) -> "_TableLock":
        return _TableLock(self)

    def _find_free(self, worker: int) -> int | None:
        """First FREE slot from ``worker % slots`` on (lock held); a torn slot (odd counter) is never picked."""
        buf = self._buf
        n = self.slots
        for k in range(n):
            i = (worker + k) % n
            seq, _epoch, _start, _owner, _pid, state = L.SLOT_CHECK.unpack_from(buf, self._offsets[i])
            if state == SlotState.FREE and not seq & 1:
                return i
        return None

    def repair_torn(self) -> list[int]:
        """Fence off (QUARANTINED, new epoch) every slot a writer died in the middle of writing.

        Only a process killed between the two halves of a seqlock write leaves
        an odd counter behind; its bytes are not trustworthy, so the slot is
        taken out of use until the supervisor reclaims it.
        """
        torn = []
        with self._locked():
            for i in range(self.slots):
                if L.SLOT_SEQ.unpack_from(self._buf, self._offsets[i])[0] & 1:
                    self._read_locked(i)  # repairs it
                    torn.append(i)
        return torn

    def _read_locked(self, slot: int) -> tuple:
        """Raw read with the lock held; an odd counter here means a writer died mid-write, so fence the slot."""
        off = self._offsets[slot]
        seq = L.SLOT_SEQ.unpack_from(self._buf, off)[0]
        raw = L.SLOT_BODY.unpack_from(self._buf, off + L.SLOT_BODY_OFFSET)
        if not seq & 1:
            return raw
        epoch = raw[0] + 1
        now = time.time()
        self._write(slot, seq + 1, epoch, 0.0, L.NO_WORKER, 0, SlotState.QUARANTINED, 0.0, now, b"")
        _audit.error("torn slot quarantined", extra={"slot": slot, "seq": seq, "new_epoch": epoch})
        return (epoch, 0.0, L.NO_WORKER, 0, int(SlotState.QUARANTINED), 0.0, now, b"")

    def _write(
        self, slot: int, seq: int | None, epoch: int, start: float, worker: int, pid: int,
        state: SlotState, claimed: float, updated: float, session: bytes,
    ) -> None:
        """One seqlock-bracketed write (lock held)."""
        off = self._offsets[slot]
        buf = self._buf
        if seq is None:
            seq = L.SLOT_SEQ.unpack_from(buf, off)[0]
        seq |= 1
        L.SLOT_SEQ.pack_into(buf, off, seq)
        L.SLOT_BODY.pack_into(buf, off + L.SLOT_BODY_OFFSET, epoch, start, worker, pid, state, claimed, updated,
                              session)
        L.SLOT_SEQ.pack_into(buf, off, seq + 1)

    def _bump_total(self, *, invalid: int = 0, unowned: int = 0) -> None:
        buf = self._buf
        a, b = L.TABLE_TOTALS.unpack_from(buf, L.TABLE_TOTALS_OFFSET)
        L.TABLE_TOTALS.pack_into(buf, L.TABLE_TOTALS_OFFSET, a + invalid, b + unowned)


class _TableLock:
    """``with table._locked():`` -- the flock around every write, bounded by the table's lock timeout."""

    __slots__ = ("_table",)

    def __init__(self, table: OwnershipTable) -> None:
        self._table = table

    def __enter__(self) -> None:
        self._table._mutex.acquire(self._table.lock_timeout)

    def __exit__(self, *exc: object) -> None:
        self._table._mutex.release()


CLAIM_QUEUE_SCOPE = "coordination/slot-claims"
_CLAIM_POLL_MIN = 2e-4
_CLAIM_POLL_MAX = 5e-3


def claim_in_turn(
    table: OwnershipTable,
    gate: "CredentialLocks",
    worker: int,
    timeout: float,
    *,
    session_id: str = "",
    scope: str = CLAIM_QUEUE_SCOPE,
) -> Slot:
    """Claim a slot first come, first served: wait in a FIFO line, and only the head polls the table.

    Why: a bare ``claim`` retried with backoff is a lottery; with fewer
    slots than workers an unlucky worker can lose it for a long time.  The
    line is a credential lock (same tickets, same dead-waiter skipping), so
    a waiter is served after at most the claims queued before it.  Pass a
    ``gate`` without counters so the line does not count as lock wait; the
    whole wait is recorded as queue wait (and each empty poll as a retry)
    on the table's bound counters.  Raises :class:`LockTimeout` if the
    line did not reach this worker in time, :class:`TableFull` if no slot
    freed up while it was at the head.
    """
    start = time.monotonic()
    deadline = start + timeout
    with gate.acquire(scope, timeout):
        poll = _CLAIM_POLL_MIN
        for _ in range(int(timeout / _CLAIM_POLL_MIN) + 2):
            try:
                got = table.claim(worker, session_id=session_id)
            except TableFull:
                now = time.monotonic()
                if now >= deadline:
                    raise TableFull(f"no slot freed within {timeout:.3f}s") from None
                if table.counters is not None:
                    table.counters.add_retry()
                time.sleep(min(poll, deadline - now))
                poll = min(poll * 1.5, _CLAIM_POLL_MAX)
                continue
            if table.counters is not None:
                table.counters.record_queue_wait(time.monotonic() - start)
            return got
    raise TableFull(f"no slot freed within {timeout:.3f}s")


def reclaim_dead(
    table: OwnershipTable,
    *,
    alive: Callable[[int, float], bool] = is_alive,
    on_reclaim: Callable[[Reclaimed], None] | None = None,
) -> list[Reclaimed]:
    """Supervisor sweep: free every owned slot whose owner process is dead, each with a new epoch.

    Liveness is pid *and* start time, so a pid the kernel already gave to
    another process still counts as dead.  The liveness probes run without
    the lock (they cost tens of µs each); each reclaim then re-checks under
    the lock that the slot is still exactly as seen.  A slot torn by a
    writer killed mid-write is fenced and freed too (reported with
    ``dead_pid == 0``: its bytes cannot say who that was).  Emits one audit
    event per reclaimed slot and returns what it took back; ``on_reclaim``
    sees each one while the table lock is still held (see
    :meth:`OwnershipTable.reclaim_if_dead`).
    """
    out: list[Reclaimed] = []
    for index in table.repair_torn():
        got = table._reclaim_torn(index, on_reclaim)
        if got is not None:
            out.append(got)
    for seen in table.snapshot():
        if seen.owned:
            got = table.reclaim_if_dead(seen, alive, on_reclaim)
            if got is not None:
                out.append(got)
    return out


__all__ = [
    "SlotState",
    "Slot",
    "TableTotals",
    "Reclaimed",
    "OwnershipTable",
    "reclaim_dead",
    "claim_in_turn",
    "CLAIM_QUEUE_SCOPE",
    "OWNED_STATES",
    "OWNER_MOVES",
    "SUPERVISOR_MOVES",
    "EPOCH_BUMPS",
    "REASON_STALE_EPOCH",
    "REASON_WRONG_OWNER",
    "REASON_BAD_STATE",
]
