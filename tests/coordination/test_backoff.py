"""Backoff profiles: bounded, reproducible from a seed, each jitter kind within its range, cohorts apart."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.backoff import JITTER_KINDS, Backoff, BackoffProfile, cohort_seed

profiles = st.builds(
    lambda base, factor, attempts, jitter: BackoffProfile(base=base, cap=base * factor, max_attempts=attempts,
                                                          jitter=jitter),
    base=st.floats(min_value=1e-4, max_value=2.0, allow_nan=False),
    factor=st.floats(min_value=1.0, max_value=1000.0, allow_nan=False),
    attempts=st.integers(min_value=1, max_value=40),
    jitter=st.sampled_from(JITTER_KINDS),
)
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(profile=profiles, seed=seeds)
def test_schedule_is_bounded(profile: BackoffProfile, seed: int) -> None:
    delays = Backoff(profile, seed=seed).schedule()
    assert len(delays) == profile.max_attempts - 1  # max_attempts counts the first try
    assert all(0.0 <= d <= profile.cap for d in delays)
    assert sum(delays) <= profile.worst_case_total * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(profile=profiles, seed=seeds)
def test_each_jitter_kind_stays_in_its_range(profile: BackoffProfile, seed: int) -> None:
    prev = profile.base
    for attempt, delay in enumerate(Backoff(profile, seed=seed)):
        ceiling = min(profile.cap, profile.base * 2**attempt)
        if profile.jitter == "none":
            assert delay == ceiling
        elif profile.jitter == "full":
            assert 0.0 <= delay <= ceiling
        elif profile.jitter == "equal":
            assert ceiling / 2 <= delay <= ceiling
        else:  # decorrelated: uniform(base, 3 * previous), capped
            assert min(profile.base, profile.cap) <= delay <= min(profile.cap, prev * 3)
            prev = delay


@pytest.mark.parametrize("jitter", JITTER_KINDS)
def test_same_seed_same_schedule_other_seed_other_schedule(jitter: str) -> None:
    profile = BackoffProfile(base=0.01, cap=2.0, max_attempts=12, jitter=jitter)
    first = Backoff(profile, seed=42).schedule()
    assert Backoff(profile, seed=42).schedule() == first
    if jitter != "none":
        assert Backoff(profile, seed=43).schedule() != first


def test_cohort_streams_differ_and_are_stable() -> None:
    seeds = {cohort_seed(7, f"worker-{i}") for i in range(64)}
    assert len(seeds) == 64
    assert cohort_seed(7, "worker-1") == cohort_seed(7, "worker-1")
    assert cohort_seed(7, "a") != cohort_seed(8, "a")
    assert cohort_seed(7, 1) == cohort_seed(7, "1")  # the cohort is identified by its text
    profile = BackoffProfile(base=0.05, cap=5.0, max_attempts=8, jitter="full")
    a = Backoff(profile, seed=cohort_seed(7, "a")).schedule()
    b = Backoff(profile, seed=cohort_seed(7, "b")).schedule()
    assert a != b  # two cohorts hit by one outage do not retry in lock-step


def test_exhausted_backoff_returns_none_until_reset() -> None:
    backoff = Backoff(BackoffProfile(base=0.1, cap=1.0, max_attempts=3, jitter="none"), seed=1)
    assert [backoff.next_delay(), backoff.next_delay()] == [0.1, 0.2]
    assert backoff.next_delay() is None
    assert backoff.next_delay() is None
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == 0.1


def test_single_attempt_profile_never_waits() -> None:
    assert Backoff(BackoffProfile(max_attempts=1), seed=0).schedule() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0.0},
        {"base": -1.0},
        {"base": 2.0, "cap": 1.0},
        {"max_attempts": 0},
        {"max_attempts": 1001},
        {"jitter": "gaussian"},
    ],
)
def test_invalid_profiles_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BackoffProfile(**kwargs)
