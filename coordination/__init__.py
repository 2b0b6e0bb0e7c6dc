"""Single-writer coordination between processes on one machine.

Knows nothing about browsers: ownership of numbered session slots (with
epochs as fencing tokens), credential locks, backoff profiles and the
contention counters that prove the rules held.
"""
from coordination.backoff import Backoff, BackoffProfile, cohort_seed
from coordination.errors import CATEGORIES, DroverError

__all__ = ["Backoff", "BackoffProfile", "cohort_seed", "CATEGORIES", "DroverError"]
