"""Lease rules on a fake clock: one holder per resource, epochs only rise, expiry and FIFO waiting."""
from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.leases import LeaseLost, LeaseTable


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_holder_at_a_time_and_each_grant_has_a_higher_epoch():
    clock = Clock()
    table = LeaseTable(epoch_floor=7, ttl=10, clock=clock)
    a = table.acquire("cred:alice", "w0")
    assert a is not None and a.epoch == 7
    assert table.acquire("cred:alice", "w1") is None  # queued behind w0
    assert table.acquire("cred:alice", "w0").epoch == 7  # the holder asking again keeps its grant
    assert table.release("cred:alice", "w0", 7)
    b = table.acquire("cred:alice", "w1")
    assert b is not None and b.epoch > a.epoch
    assert not table.release("cred:alice", "w0", 7)  # not theirs any more


def test_an_expired_lease_is_reclaimed_with_a_new_epoch_and_its_holder_cannot_renew():
    clock = Clock()
    table = LeaseTable(ttl=5, clock=clock)
    g = table.acquire("slot:0", "w0")
    clock.t += 4
    table.renew("slot:0", "w0", g.epoch)  # in time
    clock.t += 5.5  # paused (SIGSTOP) past the ttl
    reclaimed = table.sweep()
    assert [(r.resource, r.holder, r.old_epoch) for r in reclaimed] == [("slot:0", "w0", g.epoch)]
    assert reclaimed[0].new_epoch > g.epoch and table.fence("slot:0") == reclaimed[0].new_epoch
    with pytest.raises(LeaseLost) as err:
        table.renew("slot:0", "w0", g.epoch)
    assert err.value.resource == "slot:0" and err.value.epoch == g.epoch
    assert pickle.loads(pickle.dumps(err.value)).epoch == g.epoch  # crosses to the actor intact
    new = table.acquire("slot:0", "w0-replacement")
    assert new.epoch > reclaimed[0].new_epoch
    assert not table.valid("slot:0", "w0", g.epoch) and table.valid("slot:0", "w0-replacement", new.epoch)


def test_waiting_is_first_come_first_served_and_a_waiter_that_stops_asking_drops_out():
    clock = Clock()
    table = LeaseTable(ttl=5, clock=clock)
    held = table.acquire("cred:bob", "w0")
    assert table.acquire("cred:bob", "w1") is None
    clock.t += 1
    assert table.acquire("cred:bob", "w2") is None
    table.release("cred:bob", "w0", held.epoch)
    assert table.acquire("cred:bob", "w2") is None  # w1 asked first
    assert table.acquire("cred:bob", "w1") is not None
    table.release("cred:bob", "w1", table.holders()["cred:bob"][1])
    clock.t += 6  # w2 died while waiting: it stops asking, then drops out
    assert table.acquire("cred:bob", "w3") is not None


def test_reclaiming_a_dead_holder_takes_everything_it_held():
    table = LeaseTable(clock=Clock())
    table.acquire("slot:1", "w1")
    table.acquire("cred:alice", "w1")
    table.acquire("slot:2", "w2")
    out = table.reclaim_holder("w1")
    assert sorted(r.resource for r in out) == ["cred:alice", "slot:1"]
    assert set(table.holders()) == {"slot:2"}


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(50, 400))
def test_no_double_ownership_and_epochs_only_rise_under_random_schedules(seed, steps):
    rng = random.Random(seed)
    clock = Clock()
    table = LeaseTable(ttl=3, clock=clock)
    holders = [f"w{i}" for i in range(5)]
    resources = ["slot:0", "cred:a", "cred:b"]
    mine: dict[tuple[str, str], int] = {}
    last_epoch: dict[str, int] = {}
    for _ in range(steps):
        h, r = rng.choice(holders), rng.choice(resources)
        op = rng.random()
        clock.t += rng.choice([0.0, 0.1, 0.5, 1.0, 4.0])
        if op < 0.5:
            g = table.acquire(r, h)
            if g is not None:
                assert g.epoch >= last_epoch.get(r, 0)
                last_epoch[r] = g.epoch
                mine[(h, r)] = g.epoch
        elif op < 0.8 and (h, r) in mine:
            try:
                table.renew(r, h, mine[(h, r)])
            except LeaseLost:
                del mine[(h, r)]
        elif (h, r) in mine:
            table.release(r, h, mine.pop((h, r)))
        # the invariant: at most one valid holder per resource
        for res in resources:
            valid = [x for x in holders if (x, res) in mine and table.valid(res, x, mine[(x, res)])]
            assert len(valid) <= 1, (seed, res, valid)
