"""The root of every error Drover raises, and coordination's own errors.

Every package keeps its errors in one module and roots them in
:class:`DroverError`.  Each class carries its failure *category* as a class
attribute, so callers classify a failure with ``type(err).category`` and
never by reading the message.  The categories are the seven the results
store and the failure matrix know::

    DroverError                      (category: set by subclasses)
    └── CoordinationError            persistence
        ├── InvalidTransition        persistence   (wrong owner, stale epoch, bad state)
        ├── UnownedUse               persistence   (a send by someone who is not the owner)
        ├── TableFull                persistence
        ├── SegmentError             persistence   (create/attach of shared memory)
        └── LockTimeout              timeout       (credential lock not acquired in time)

``DroverError`` lives here because coordination is the lowest layer:
navigation and engine import it from here, never the other way round.
"""
from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "cdp",
    "auth",
    "navigation",
    "persistence",
    "telemetry",
    "timeout",
    "input",
)


class DroverError(Exception):
    """Root of all Drover errors; ``category`` is one of :data:`CATEGORIES`."""

    category: str = "navigation"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.category not in CATEGORIES:
            raise TypeError(f"{cls.__name__}.category={cls.category!r} is not one of {CATEGORIES}")


class CoordinationError(DroverError):
    """Shared coordination state refused an operation."""

    category = "persistence"


class InvalidTransition(CoordinationError):
    """A slot transition was asked for by the wrong owner, with a stale epoch, or from an impossible state."""


class UnownedUse(CoordinationError):
    """A session was used by a worker that does not hold it at the current epoch."""


class TableFull(CoordinationError):
    """No free slot is left in the ownership table."""


class SegmentError(CoordinationError):
    """A shared-memory segment could not be created, attached or cleaned."""


class LockTimeout(CoordinationError):
    """A credential lock was not acquired within its timeout."""

    category = "timeout"


__all__ = [
    "CATEGORIES",
    "DroverError",
    "CoordinationError",
    "InvalidTransition",
    "UnownedUse",
    "TableFull",
    "SegmentError",
    "LockTimeout",
]
