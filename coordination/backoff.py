"""Jittered, bounded backoff whose randomness is data, not a code path.

Why: when a shared outage hits every worker at once, fixed or identically
seeded delays make them all retry in lock-step (a retry storm).  Each
*cohort* of workers therefore draws its jitter from its own seeded stream
(:func:`cohort_seed`), so schedules are reproducible from their seed and
still spread apart across cohorts.

Jitter kinds follow the well-known AWS analysis ("Exponential Backoff and
Jitter"): with ``t = min(cap, base * 2**attempt)``

* ``none``          -> ``t``
* ``full``          -> ``uniform(0, t)``
* ``equal``         -> ``t/2 + uniform(0, t/2)``
* ``decorrelated``  -> ``min(cap, uniform(base, previous * 3))``
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterator

JITTER_KINDS = ("none", "full", "equal", "decorrelated")


@dataclass(frozen=True, slots=True)
class BackoffProfile:
    """How long to wait between attempts; all times in seconds."""

    base: float = 0.1
    cap: float = 5.0
    max_attempts: int = 6
    jitter: str = "full"

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base):
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")
        if not 1 <= self.max_attempts <= 1000:
            raise ValueError(f"backoff max_attempts must be 1..1000, got {self.max_attempts}")
        if self.jitter not in JITTER_KINDS:
            raise ValueError(f"backoff jitter must be one of {JITTER_KINDS}, got {self.jitter!r}")

    @property
    def worst_case_total(self) -> float:
        """Upper bound of the summed delays over all attempts (the bound a caller can plan on)."""
        return sum(min(self.cap, self.base * 2 ** i) if self.jitter != "decorrelated" else self.cap
                   for i in range(self.max_attempts - 1))


def cohort_seed(seed: int, cohort: str | int) -> int:
    """An independent, reproducible seed for one cohort derived from a run seed."""
    digest = hashlib.blake2b(f"{seed}:{cohort}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Backoff:
    """The delays before retry 1, 2, ... of one operation; ``None`` once attempts run out.

    ``max_attempts`` counts the first try, so a profile with ``max_attempts=4``
    yields three delays.
    """

    __slots__ = ("profile", "attempt", "_rng", "_prev")

    def __init__(self, profile: BackoffProfile, seed: int | None = None) -> None:
        self.profile = profile
        self._rng = random.Random(seed)
        self.attempt = 0
        self._prev = profile.base

    def next_delay(self) -> float | None:
        p = self.profile
        if self.attempt >= p.max_attempts - 1:
            return None
        ceiling = min(p.cap, p.base * (2 ** self.attempt))
        if p.jitter == "none":
            delay = ceiling
        elif p.jitter == "full":
            delay = self._rng.uniform(0.0, ceiling)
        elif p.jitter == "equal":
            delay = ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
        else:
            delay = min(p.cap, self._rng.uniform(p.base, self._prev * 3))
            self._prev = delay
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start a fresh sequence of attempts (the random stream carries on)."""
        self.attempt = 0
        self._prev = self.profile.base

    def __iter__(self) -> Iterator[float]:
        while (delay := self.next_delay()) is not None:
            yield delay

    def schedule(self) -> list[float]:
        """All remaining delays (consumes this backoff)."""
        return list(self)


__all__ = ["JITTER_KINDS", "BackoffProfile", "Backoff", "cohort_seed"]
