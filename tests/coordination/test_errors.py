"""The root error's rules, tested where they are made: real locks, a real process boundary."""
from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import pytest

from coordination._flock import FlockMutex
from coordination.errors import CoordinationError, DroverError, InvalidTransition, LockTimeout


class Refused(CoordinationError):
    """A subclass whose constructor takes facts, not a message, and formats the message itself:
    the shape that the default exception pickling (``cls(*args)``) cannot rebuild."""

    def __init__(self, slot: int, epoch: int, *, holder: dict | None = None) -> None:
        self.slot, self.epoch, self.holder = slot, epoch, holder
        super().__init__(f"slot {slot} refused at epoch {epoch}")


def test_a_subclass_with_its_own_constructor_pickles_with_its_fields_and_message():
    err = Refused(3, 17, holder={"pid": 42, "worker": 1})
    err.add_note("seen by worker 1")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is Refused and str(copy) == "slot 3 refused at epoch 17"
    assert (copy.slot, copy.epoch, copy.holder) == (3, 17, {"pid": 42, "worker": 1})
    assert copy.args == err.args and copy.__notes__ == ["seen by worker 1"]
    assert type(copy).category == "persistence"


def _raise_in_child(conn, lock_path: str) -> None:
    """In a forked child: hit two real errors and send them to the parent (pickled by the pipe)."""
    try:
        FlockMutex(lock_path).acquire(timeout=0.05)  # the parent holds it
    except LockTimeout as exc:
        conn.send(exc)
    conn.send(Refused(5, 9, holder={"pid": 1}))
    conn.send(InvalidTransition("stale epoch", slot=2, from_state="owned", to_state="free", owner=1, caller=2,
                                epoch=3, current_epoch=4, reason="stale_epoch"))
    conn.close()


def test_errors_raised_in_another_process_arrive_with_their_fields(tmp_path: Path):
    lock_path = str(tmp_path / "scope.lock")
    held = FlockMutex(lock_path)
    held.acquire(timeout=1)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_raise_in_child, args=(child, lock_path))
    proc.start()
    child.close()
    try:
        assert parent.poll(30), "the child sent nothing"
        timeout, refused, invalid = parent.recv(), parent.recv(), parent.recv()  # unpickled here, in the parent
    finally:
        proc.join(30)
        held.release()
    assert proc.exitcode == 0
    assert isinstance(timeout, LockTimeout) and isinstance(timeout, TimeoutError)
    assert timeout.scope == lock_path and timeout.timeout == 0.05 and timeout.waited >= 0.0
    assert str(timeout).startswith(f"lock {lock_path} not acquired in 0.050s")
    assert type(refused) is Refused and (refused.slot, refused.epoch, refused.holder) == (5, 9, {"pid": 1})
    assert str(refused) == "slot 5 refused at epoch 9"
    assert (invalid.slot, invalid.from_state, invalid.to_state, invalid.owner, invalid.caller, invalid.epoch,
            invalid.current_epoch, invalid.reason) == (2, "owned", "free", 1, 2, 3, 4, "stale_epoch")


def test_a_real_lock_timeout_is_caught_as_the_builtin_timeout_error(tmp_path: Path):
    path = tmp_path / "busy.lock"
    holder, waiter = FlockMutex(path), FlockMutex(path)  # two descriptors: flock conflicts even in one process
    holder.acquire(timeout=1)
    try:
        with pytest.raises(TimeoutError) as info:
            waiter.acquire(timeout=0.02)
    finally:
        holder.release()
    assert type(info.value) is LockTimeout and type(info.value).category == "timeout"
    assert info.value.scope == str(path) and info.value.timeout == 0.02


def test_a_timeout_category_without_the_builtin_timeout_error_is_refused_when_defined():
    with pytest.raises(TypeError, match="must also subclass the builtin TimeoutError"):
        type("SlowThing", (DroverError,), {"category": "timeout"})
    assert issubclass(type("SlowThing", (DroverError, TimeoutError), {"category": "timeout"}), TimeoutError)
