"""The results store as the read-only commands open it: the same check, exit code and hint for all of them.

``results``, ``trace``, ``monitor`` and ``run --resume`` read a store that
a run created; a state directory without one (the wrong ``--state-dir`` or
``DROVER_STATE_DIR``, a typo, a fresh machine) or a file that is not a
store is :class:`~engine.records.statedir.StoreUnavailable`: bad input,
exit 2, with the path, where the state directory came from and what to do.
None of them creates a store where there was none.
"""
from __future__ import annotations

from engine.config import LoadedSettings
from engine.errors import ResultsStoreError
from engine.records import statedir
from engine.records.statedir import StoreUnavailable
from engine.records.store import ResultsStore

_ORIGIN = {"command line": "--state-dir", "default": "the default"}


def state_origin(loaded: LoadedSettings) -> str:
    """Where ``state_dir`` came from, as an operator would say it (``--state-dir``, ``DROVER_STATE_DIR`` ...)."""
    origin = loaded.origins.get("state_dir", "default")
    return _ORIGIN.get(origin, origin)


def readable_store(loaded: LoadedSettings) -> str:
    """The store's path, checked; :class:`StoreUnavailable` otherwise."""
    return statedir.require_store(loaded.settings.state_dir, origin=state_origin(loaded))


def open_store(loaded: LoadedSettings) -> ResultsStore:
    """The results store of ``loaded``'s state directory; :class:`StoreUnavailable` when there is none to read."""
    path = readable_store(loaded)
    try:
        return ResultsStore(path)
    except ResultsStoreError as exc:  # a file with a SQLite header that SQLite still cannot open
        raise StoreUnavailable(path, f"SQLite cannot open the file ({exc.__cause__ or exc})", state_origin(loaded)) from exc


__all__ = ["state_origin", "readable_store", "open_store"]
