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
        │   └── SegmentInUse         persistence   (a live process already runs in that directory)
        └── LockTimeout              timeout       (credential or table lock not acquired in time;
                                                    also a builtin TimeoutError)

The coordination errors carry their facts as attributes (slot, states,
owner, epoch, scope, waited ...) so that the supervisor and the failure
matrix never parse a message.  Every attribute defaults to ``None`` so an
error still builds from a bare message.

Two rules hold for every error in every package, because the root makes
them:

- A timeout error (category ``timeout``) also subclasses the builtin
  :class:`TimeoutError`, as filelock's ``Timeout`` does, so code that knows
  nothing of Drover (``except TimeoutError``, ``concurrent.futures``) still
  recognises it; a class that says ``timeout`` without it is refused when
  it is defined.  (This makes it an :class:`OSError` too: an ``except
  OSError`` around a Drover call catches it.)
- An error survives pickling with its fields and message intact
  (:meth:`DroverError.__reduce__`): errors cross process boundaries — a
  forked worker's, a multiprocessing pool's, a Ray actor's — and the
  default pickling rebuilds an exception by calling its class with
  ``args``, which fails for a constructor that takes other arguments than
  the message it formats (``CDPResponseError(method, code, message)``).

``DroverError`` lives here because coordination is the lowest layer:
navigation and engine import it from here, never the other way round.
"""
from __future__ import annotations

from typing import Any

CATEGORIES: tuple[str, ...] = (
    "cdp",
    "auth",
    "navigation",
    "persistence",
    "telemetry",
    "timeout",
    "input",
)


def _restore(cls: type[DroverError], args: tuple[Any, ...], state: dict[str, Any]) -> DroverError:
    """Unpickle: an instance of ``cls`` with the original ``args`` and attributes, its ``__init__`` not run.

    Not run because subclasses' constructors differ and some format their
    message from their fields: calling one again with the formatted message
    would fail or format it twice.  The state is what the sender's
    instance had, so the copy equals it field for field.
    """
    err = cls.__new__(cls, *args)
    err.args = args  # OSError.__new__ leaves args to __init__ when a subclass defines one
    err.__dict__.update(state)
    return err


class DroverError(Exception):
    """Root of all Drover errors; ``category`` is one of :data:`CATEGORIES`."""

    category: str = "navigation"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.category not in CATEGORIES:
            raise TypeError(f"{cls.__name__}.category={cls.category!r} is not one of {CATEGORIES}")
        if cls.category == "timeout" and not issubclass(cls, TimeoutError):
            raise TypeError(f"{cls.__name__} has category 'timeout' and must also subclass the builtin TimeoutError")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as class + ``args`` + attributes, so every subclass keeps its fields across a process boundary."""
        return _restore, (type(self), self.args, dict(vars(self)))


class CoordinationError(DroverError):
    """Shared coordination state refused an operation."""

    category = "persistence"


class InvalidTransition(CoordinationError):
    """A slot transition was asked for by the wrong owner, with a stale epoch, or from an impossible state.

    ``reason`` is one of ``"stale_epoch"``, ``"wrong_owner"``, ``"bad_state"``;
    ``owner`` is the slot's owner at the time, ``caller`` the worker that
    asked, ``epoch`` the epoch it presented and ``current_epoch`` the slot's.
    """

    def __init__(
        self,
        message: str = "invalid transition",
        *,
        slot: int | None = None,
        from_state: object = None,
        to_state: object = None,
        owner: int | None = None,
        caller: int | None = None,
        epoch: int | None = None,
        current_epoch: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.slot = slot
        self.from_state = from_state
        self.to_state = to_state
        self.owner = owner
        self.caller = caller
        self.epoch = epoch
        self.current_epoch = current_epoch
        self.reason = reason


class UnownedUse(CoordinationError):
    """A session was used by a worker that does not hold it at the current epoch."""

    def __init__(
        self,
        message: str = "unowned session use",
        *,
        slot: int | None = None,
        worker: int | None = None,
        epoch: int | None = None,
        owner: int | None = None,
        current_epoch: int | None = None,
        state: object = None,
    ) -> None:
        super().__init__(message)
        self.slot = slot
        self.worker = worker
        self.epoch = epoch
        self.owner = owner
        self.current_epoch = current_epoch
        self.state = state


class TableFull(CoordinationError):
    """No free slot is left in the ownership table."""


class SegmentError(CoordinationError):
    """A shared-memory segment could not be created, attached or cleaned."""


class SegmentInUse(SegmentError):
    """The directory's segment belongs to a process that is still alive, so it is not stale."""


class LockTimeout(CoordinationError, TimeoutError):
    """A credential lock (or the ownership table's lock) was not acquired within its timeout.

    ``holder`` is whatever is known about who held it (a holder record or
    ``None``), so the timeout can be blamed without another lookup.
    """

    category = "timeout"

    def __init__(
        self,
        message: str = "lock not acquired in time",
        *,
        scope: str | None = None,
        timeout: float | None = None,
        waited: float | None = None,
        holder: object = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.timeout = timeout
        self.waited = waited
        self.holder = holder


__all__ = [
    "CATEGORIES",
    "DroverError",
    "CoordinationError",
    "InvalidTransition",
    "UnownedUse",
    "TableFull",
    "SegmentError",
    "SegmentInUse",
    "LockTimeout",
]
