"""Step plugins, and the one place a step registry is built.

Why one builder: the run path, every forked worker, ``replay``,
``validate`` and ``soak`` must see the same strategies and ``customStep``
handlers, or a flow that validates could fail in a worker (or the
reverse).  So every path calls :func:`build_registry`, which adds to the
built-in strategies

* the installed distributions' entry points: group ``drover.steps``
  (step strategies and ``customStep`` handlers by name) and group
  ``drover.legacy_flows`` (legacy flows by name), and
* the modules given with ``--plugin MODULE`` (:func:`activate`).

:func:`activate` imports the ``--plugin`` modules in the supervisor, before
any worker is forked, and remembers them (with ``--strict``) for the rest
of the process; forked workers inherit both, so their registry is the
supervisor's.  (A backend that does not fork — Ray actors — must call
:func:`activate` itself.)

What a plugin provides:

* an entry point in ``drover.steps`` named ``NAME`` pointing at a
  :class:`~navigation.steps.registry.StepStrategy` subclass or instance
  (put in front of the built-ins, so it may refine a built-in type), or at
  any other callable, which becomes the ``customStep`` handler for steps
  named ``NAME``: ``handler(step, ctx) -> StepOutcome | None``;
* an entry point in ``drover.legacy_flows`` named ``NAME`` pointing at a
  legacy flow function (``fn(ctx: LegacyContext) -> None``);
* a ``--plugin`` module, which defines ``register_steps(registry)`` and/or
  ``register_legacy_flows(legacy_registry)``.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Iterable

from navigation.errors import PluginError
from navigation.steps.builtin import BUILTIN_STRATEGIES
from navigation.steps.registry import StepStrategy, StrategyRegistry

log = logging.getLogger(__name__)

STEPS_GROUP = "drover.steps"
LEGACY_GROUP = "drover.legacy_flows"


@dataclass(slots=True)
class _Active:
    modules: list[ModuleType] = field(default_factory=list)
    strict: bool = False
    legacy_done: set[str] = field(default_factory=set)


_ACTIVE = _Active()


def import_plugin(name: str) -> ModuleType:
    """Import one ``--plugin`` module; a failure is a :class:`PluginError` naming it."""
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name:
        raise PluginError(f"--plugin {name!r}: give a module name (package.module), not a path")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PluginError(f"--plugin {name}: cannot import it ({exc})") from exc
    except Exception as exc:
        raise PluginError(f"--plugin {name}: importing it raised {type(exc).__name__}: {exc}") from exc


def activate(modules: Iterable[str] = (), *, strict: bool = False) -> list[ModuleType]:
    """Import the ``--plugin`` modules and make them (and ``strict``) the process's defaults.

    Called once by the CLI before anything is built or forked; later
    :func:`build_registry` calls — here and in forked workers — include
    them.  Returns the modules, in order.
    """
    loaded = [import_plugin(name) for name in modules]
    for module in loaded:
        if not hasattr(module, "register_steps") and not hasattr(module, "register_legacy_flows"):
            raise PluginError(f"--plugin {module.__name__}: defines neither register_steps(registry) nor "
                              "register_legacy_flows(legacy)")
        if module not in _ACTIVE.modules:
            _ACTIVE.modules.append(module)
    _ACTIVE.strict = bool(strict)
    if loaded:
        log.info("step plugins active", extra={"plugins": [m.__name__ for m in _ACTIVE.modules],
                                               "strict": _ACTIVE.strict})
    return loaded


def active_plugins() -> tuple[str, ...]:
    """The names of the ``--plugin`` modules active in this process."""
    return tuple(m.__name__ for m in _ACTIVE.modules)


def active_strict() -> bool:
    """The ``strict`` flag given to :func:`activate` (a backend that does not fork passes it on)."""
    return _ACTIVE.strict


def build_registry(plugins: Iterable[str | ModuleType] = (), *, strict: bool | None = None,
                   entry_points: bool = True) -> StrategyRegistry:
    """Built-in strategies + entry-point plugins + active ``--plugin`` modules + ``plugins``.

    ``strict`` defaults to the value given to :func:`activate`.  Legacy
    flows from plugins go into :data:`navigation.legacy.REGISTRY` (once per
    process).
    """
    registry = StrategyRegistry((cls() for cls in BUILTIN_STRATEGIES),
                                strict=_ACTIVE.strict if strict is None else strict)
    if entry_points:
        for ep in _entry_points(STEPS_GROUP):
            _install_entry_point(registry, ep)
        for ep in _entry_points(LEGACY_GROUP):
            _install_legacy(ep.name, _load(ep), f"entry point {ep.name} = {ep.value} ({LEGACY_GROUP})")
    modules = list(_ACTIVE.modules)
    for plugin in plugins:
        module = import_plugin(plugin) if isinstance(plugin, str) else plugin
        if module not in modules:
            modules.append(module)
    for module in modules:
        _install_module(registry, module)
    return registry


# -- internals ------------------------------------------------------------------

def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: (ep.name, ep.value))


def _load(ep: metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(f"entry point {ep.name} = {ep.value} ({ep.group}): cannot load it "
                          f"({type(exc).__name__}: {exc})") from exc


def _install_entry_point(registry: StrategyRegistry, ep: metadata.EntryPoint) -> None:
    obj = _load(ep)
    where = f"entry point {ep.name} = {ep.value} ({STEPS_GROUP})"
    if isinstance(obj, ModuleType):
        _install_module(registry, obj)
    elif isinstance(obj, type) and issubclass(obj, StepStrategy):
        _register_strategy(registry, obj(), where)
    elif isinstance(obj, StepStrategy):
        _register_strategy(registry, obj, where)
    elif callable(obj):
        try:
            registry.register_custom(ep.name, obj)
        except ValueError as exc:
            raise PluginError(f"{where}: {exc}") from exc
    else:
        raise PluginError(f"{where}: is a {type(obj).__name__}, not a step strategy, a customStep handler "
                          "or a module")


def _register_strategy(registry: StrategyRegistry, strategy: StepStrategy, where: str) -> None:
    try:
        registry.register(strategy, first=True)
    except ValueError as exc:
        raise PluginError(f"{where}: {exc}") from exc


def _install_module(registry: StrategyRegistry, module: ModuleType) -> None:
    register_steps = getattr(module, "register_steps", None)
    if register_steps is not None:
        try:
            register_steps(registry)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {module.__name__}: register_steps failed ({exc})") from exc
    register_legacy = getattr(module, "register_legacy_flows", None)
    if register_legacy is not None and module.__name__ not in _ACTIVE.legacy_done:
        from navigation.legacy import REGISTRY  # the legacy layer sits above the steps package

        _ACTIVE.legacy_done.add(module.__name__)
        try:
            register_legacy(REGISTRY)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {module.__name__}: register_legacy_flows failed ({exc})") from exc


def _install_legacy(name: str, fn: Any, where: str) -> None:
    from navigation.legacy import REGISTRY

    key = f"{LEGACY_GROUP}:{name}"
    if key in _ACTIVE.legacy_done:
        return
    if not callable(fn):
        raise PluginError(f"{where}: is a {type(fn).__name__}, not a legacy flow function")
    try:
        REGISTRY.register(name, fn)
    except ValueError as exc:
        raise PluginError(f"{where}: {exc}") from exc
    _ACTIVE.legacy_done.add(key)


__all__ = ["STEPS_GROUP", "LEGACY_GROUP", "activate", "active_plugins", "active_strict", "build_registry",
           "import_plugin"]
