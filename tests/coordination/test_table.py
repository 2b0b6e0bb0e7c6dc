"""The ownership state machine: legal moves, every kind of illegal move rejected and counted, fencing."""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from coordination import ContentionTelemetry, OwnershipTable, SlotState, reclaim_dead
from coordination import _layout as L
from coordination._table import OWNER_MOVES
from coordination.errors import InvalidTransition, TableFull, UnownedUse

from . import _procs


@pytest.fixture
def table(run_dir: Path):
    with OwnershipTable.create(run_dir, 4) as t:
        yield t


@pytest.fixture
def counted(run_dir: Path, table: OwnershipTable):
    """The table with this process bound to contention row 0."""
    with ContentionTelemetry.create(run_dir, 2) as tele:
        table.bind_counters(tele.writer(0))
        yield table, tele


def _invalid_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "invalid transition"]


def test_full_lifecycle_moves_epochs_and_fences_the_old_token(table: OwnershipTable) -> None:
    s = table.claim(1, session_id="target-1")
    assert (s.state, s.owner_worker, s.epoch, s.session_id) == (SlotState.CLAIMED, 1, 1, "target-1")
    table.check_owner(s.index, 1, s.epoch)
    a = table.activate(s.index, 1, s.epoch, session_id="target-1b")
    assert (a.state, a.epoch, a.session_id) == (SlotState.ACTIVE, s.epoch, "target-1b")
    r = table.begin_release(s.index, 1, s.epoch)
    assert r.state is SlotState.RELEASING
    table.check_owner(s.index, 1, s.epoch)  # the owner may still close its browser
    f = table.finish_release(s.index, 1, s.epoch)
    assert (f.state, f.owner_worker, f.epoch) == (SlotState.FREE, None, s.epoch + 1)
    assert table.read(s.index) == f
    with pytest.raises(UnownedUse):
        table.check_owner(s.index, 1, s.epoch)  # released: the old token is dead
    again = table.claim(1, slot=s.index)
    assert again.epoch == s.epoch + 2  # epochs only rise
    assert table.totals().invalid_transitions == 0


def test_claim_spreads_workers_and_reports_table_full(table: OwnershipTable) -> None:
    slots = {table.claim(w).index for w in range(4)}
    assert slots == {0, 1, 2, 3}
    with pytest.raises(TableFull):
        table.claim(9)
    assert table.totals().invalid_transitions == 0  # contention is not a protocol error


def test_wrong_owner_is_rejected_counted_and_logged(counted, coordination_logs) -> None:
    table, tele = counted
    s = table.claim(1)
    with pytest.raises(InvalidTransition) as info:
        table.activate(s.index, 2, s.epoch)  # worker 2 presents worker 1's token
    err = info.value
    assert (err.reason, err.slot, err.from_state, err.to_state) == ("wrong_owner", s.index, SlotState.CLAIMED,
                                                                    SlotState.ACTIVE)
    assert (err.owner, err.caller, err.epoch, err.current_epoch) == (1, 2, s.epoch, s.epoch)
    assert type(err).category == "persistence"
    assert table.read(s.index).state is SlotState.CLAIMED  # nothing changed
    assert table.totals().invalid_transitions == 1
    assert tele.snapshot().worker(0).invalid_transitions == 1
    [event] = _invalid_events(coordination_logs)
    assert event.name.startswith("drover.operational.") and event.levelno == logging.ERROR
    assert (event.slot, event.from_state, event.to_state, event.owner_worker, event.caller_worker,
            event.presented_epoch, event.reason) == (s.index, "CLAIMED", "ACTIVE", 1, 2, s.epoch, "wrong_owner")


def test_stale_epoch_is_rejected_and_counted(counted, coordination_logs) -> None:
    table, tele = counted
    old = table.claim(1, slot=0)
    table.begin_release(0, 1, old.epoch)
    table.finish_release(0, 1, old.epoch)
    new = table.claim(1, slot=0)  # same worker, same slot, new epoch
    with pytest.raises(InvalidTransition) as info:
        table.activate(0, 1, old.epoch)  # a late call with the previous token
    assert (info.value.reason, info.value.epoch, info.value.current_epoch) == ("stale_epoch", old.epoch, new.epoch)
    assert table.totals().invalid_transitions == 1
    assert tele.snapshot().worker(0).invalid_transitions == 1
    assert [e.reason for e in _invalid_events(coordination_logs)] == ["stale_epoch"]


@pytest.mark.parametrize(
    "moves, bad",
    [
        (["activate"], "activate"),  # ACTIVE -> ACTIVE
        (["activate"], "finish_release"),  # ACTIVE -> FREE skips RELEASING
        ([], "finish_release"),  # CLAIMED -> FREE
        (["activate", "begin_release"], "activate"),  # RELEASING -> ACTIVE
        (["activate", "begin_release"], "begin_release"),  # RELEASING -> RELEASING
    ],
)
def test_impossible_state_is_rejected_and_counted(counted, moves: list[str], bad: str) -> None:
    table, tele = counted
    s = table.claim(1)
    for move in moves:
        getattr(table, move)(s.index, 1, s.epoch)
    before = table.read(s.index)
    with pytest.raises(InvalidTransition) as info:
        getattr(table, bad)(s.index, 1, s.epoch)
    assert info.value.reason == "bad_state"
    assert info.value.from_state is before.state
    assert table.read(s.index) == before
    assert table.totals().invalid_transitions == 1
    assert tele.snapshot().worker(0).invalid_transitions == 1


def test_claiming_a_taken_slot_is_an_impossible_state(table: OwnershipTable) -> None:
    s = table.claim(1)
    with pytest.raises(InvalidTransition) as info:
        table.claim(2, slot=s.index)
    assert (info.value.reason, info.value.owner, info.value.caller) == ("bad_state", 1, 2)
    assert table.totals().invalid_transitions == 1


def test_unowned_use_is_refused_and_counted(counted, coordination_logs) -> None:
    table, tele = counted
    s = table.claim(1)
    table.activate(s.index, 1, s.epoch)
    for worker, epoch in ((2, s.epoch), (1, s.epoch - 1), (1, s.epoch + 1)):
        with pytest.raises(UnownedUse) as info:
            table.check_owner(s.index, worker, epoch)
        assert (info.value.slot, info.value.worker, info.value.epoch, info.value.owner) == (s.index, worker, epoch, 1)
    table.check_owner(s.index, 1, s.epoch)
    assert table.totals().unowned_uses == 3
    assert tele.snapshot().aggregate.unowned_uses == 3
    assert len([r for r in coordination_logs.records if r.getMessage() == "unowned session use"]) == 3


def test_quarantine_fences_the_owner_until_a_reclaim(table: OwnershipTable) -> None:
    s = table.claim(1)
    table.activate(s.index, 1, s.epoch)
    q = table.quarantine(s.index, 1, s.epoch, reason="renderer crashed")
    assert (q.state, q.epoch) == (SlotState.QUARANTINED, s.epoch + 1)
    with pytest.raises(UnownedUse):
        table.check_owner(s.index, 1, s.epoch)
    with pytest.raises(InvalidTransition, match="stale_epoch"):
        table.begin_release(s.index, 1, s.epoch)
    with pytest.raises(TableFull):
        [table.claim(w) for w in range(4)]  # the quarantined slot is not handed out
    freed = table.reclaim(s.index, reason="browser disposed")
    assert (freed.state, freed.epoch) == (SlotState.FREE, s.epoch + 2)


def test_supervisor_reclaim_guards(table: OwnershipTable) -> None:
    s = table.claim(1)
    with pytest.raises(InvalidTransition) as info:
        table.reclaim(s.index, expected_epoch=s.epoch - 1, reason="test")
    assert info.value.reason == "stale_epoch"
    forced = table.force_quarantine(s.index, expected_epoch=s.epoch, reason="hung")
    assert forced.state is SlotState.QUARANTINED
    table.reclaim(s.index, reason="test")
    with pytest.raises(InvalidTransition) as info:
        table.reclaim(s.index, reason="test")  # FREE -> FREE
    assert info.value.reason == "bad_state"
    assert table.totals().invalid_transitions == 2


def test_writer_killed_mid_write_gets_its_slot_fenced(table: OwnershipTable, coordination_logs) -> None:
    s = table.claim(1)
    table.activate(s.index, 1, s.epoch)
    # What a SIGKILL between the two halves of a write leaves behind: an odd seqlock counter.
    struct.pack_into("<Q", table._buf, L.slot_offset(s.index), 41)
    seen = table.read(s.index)  # the lock-free read gives up on the odd counter and settles it under the lock
    assert (seen.state, seen.epoch) == (SlotState.QUARANTINED, s.epoch + 1)
    with pytest.raises(UnownedUse):
        table.check_owner(s.index, 1, s.epoch)
    assert any(r.getMessage() == "torn slot quarantined" for r in coordination_logs.records)
    struct.pack_into("<Q", table._buf, L.slot_offset(2), 7)  # and one nobody has touched since
    [got] = reclaim_dead(table)
    assert (got.slot, got.dead_pid) == (2, 0)
    assert table.read(2).state is SlotState.FREE


def test_session_id_longer_than_the_slot_is_refused(table: OwnershipTable) -> None:
    with pytest.raises(ValueError, match="session id"):
        table.claim(1, session_id="x" * (L.SESSION_ID_BYTES + 1))


def test_transitions_from_many_processes_never_share_an_epoch(run_dir: Path, table: OwnershipTable,
                                                             fork_ctx) -> None:
    """Six processes cycle through four slots; every (slot, epoch) is claimed exactly once."""
    pipes, procs = [], []
    for w in range(6):
        recv, send = fork_ctx.Pipe(duplex=False)
        p = fork_ctx.Process(target=_procs.cycle_slots, args=(str(run_dir), w, 150, send))
        p.start()
        pipes.append(recv)
        procs.append(p)
    claims = [c for recv in pipes for c in recv.recv()]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(claims) == 6 * 150
    assert len(set(claims)) == len(claims)
    assert all(s.state is SlotState.FREE for s in table.snapshot())
    assert table.totals() == type(table.totals())(0, 0)


def test_lock_free_reads_never_mix_two_versions(run_dir: Path, table: OwnershipTable, fork_ctx) -> None:
    """Another process rewrites slot 0 flat out; every lock-free read is one version of it, never a blend."""
    started = fork_ctx.Event()
    p = fork_ctx.Process(target=_procs.churn_slot, args=(str(run_dir), 1.0, started))
    p.start()
    assert started.wait(30)
    reads = 0
    for _ in range(1_000_000):  # bounded; ends when the writer does
        if p.exitcode is not None:
            break
        s = table.read(0)
        if s.state is SlotState.FREE:
            assert (s.owner_worker, s.owner_pid, s.session_id) == (None, 0, "")
        elif s.state in (SlotState.ACTIVE, SlotState.RELEASING):
            assert s.owner_worker == 1 and s.session_id == f"e{s.epoch}"
        else:
            assert s.state is SlotState.CLAIMED and s.owner_worker == 1
        reads += 1
    p.join(30)
    assert p.exitcode == 0 and reads > 100
    assert table.totals().invalid_transitions == 0


class TableMachine(RuleBasedStateMachine):
    """Random moves by three workers on two slots, checked against a model of the transition table."""

    def __init__(self) -> None:
        super().__init__()
        self.table: OwnershipTable | None = None

    @initialize()
    def setup(self) -> None:
        self.table = OwnershipTable.create(self.run_dir, 2)
        self.model = {i: (SlotState.FREE, None, 0) for i in range(2)}  # state, owner, epoch
        self.tokens: dict[tuple[int, int], list[int]] = {}
        self.invalid = 0

    def teardown(self) -> None:
        if self.table is not None:
            self.table.__exit__(None, None, None)

    @rule(worker=st.integers(0, 2), slot=st.integers(0, 1))
    def claim(self, worker: int, slot: int) -> None:
        state, _owner, epoch = self.model[slot]
        if state is SlotState.FREE:
            got = self.table.claim(worker, slot=slot)
            assert got.epoch == epoch + 1
            self.model[slot] = (SlotState.CLAIMED, worker, got.epoch)
            self.tokens.setdefault((slot, worker), []).append(got.epoch)
        else:
            with pytest.raises(InvalidTransition):
                self.table.claim(worker, slot=slot)
            self.invalid += 1

    @rule(worker=st.integers(0, 2), slot=st.integers(0, 1), stale=st.booleans(),
          move=st.sampled_from(["activate", "begin_release", "finish_release", "quarantine"]))
    def owner_move(self, worker: int, slot: int, stale: bool, move: str) -> None:
        state, owner, epoch = self.model[slot]
        presented = epoch - 1 if stale else epoch
        target = {"activate": SlotState.ACTIVE, "begin_release": SlotState.RELEASING,
                  "finish_release": SlotState.FREE, "quarantine": SlotState.QUARANTINED}[move]
        kwargs = {"reason": "test"} if move == "quarantine" else {}
        if presented != epoch:
            expected = "stale_epoch"
        elif owner != worker:
            expected = "wrong_owner"
        elif state not in OWNER_MOVES[target]:
            expected = "bad_state"
        else:
            expected = None
        if expected is None:
            got = getattr(self.table, move)(slot, worker, presented, **kwargs)
            bumped = epoch + 1 if target in (SlotState.FREE, SlotState.QUARANTINED) else epoch
            assert (got.state, got.epoch) == (target, bumped)
            self.model[slot] = (target, None if target is SlotState.FREE else owner, bumped)
        else:
            with pytest.raises(InvalidTransition) as info:
                getattr(self.table, move)(slot, worker, presented, **kwargs)
            assert info.value.reason == expected
            self.invalid += 1

    @rule(slot=st.integers(0, 1))
    def reclaim(self, slot: int) -> None:
        state, _owner, epoch = self.model[slot]
        if state is SlotState.FREE:
            with pytest.raises(InvalidTransition):
                self.table.reclaim(slot, reason="test")
            self.invalid += 1
        else:
            assert self.table.reclaim(slot, expected_epoch=epoch, reason="test").epoch == epoch + 1
            self.model[slot] = (SlotState.FREE, None, epoch + 1)

    @invariant()
    def table_matches_model(self) -> None:
        if self.table is None:
            return
        for i, (state, owner, epoch) in self.model.items():
            s = self.table.read(i)
            assert (s.state, s.epoch) == (state, epoch)
            if state in (SlotState.CLAIMED, SlotState.ACTIVE, SlotState.RELEASING):
                assert s.owner_worker == owner
        assert self.table.totals().invalid_transitions == self.invalid


def test_state_machine_matches_its_model(tmp_path: Path) -> None:
    counter = iter(range(10**6))

    class Bound(TableMachine):
        def __init__(self) -> None:
            super().__init__()
            self.run_dir = tmp_path / f"m{next(counter)}"

    Bound.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
    Bound.TestCase().runTest()
