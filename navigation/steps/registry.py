"""The step-strategy chain: an ordered registry of who runs which step.

Why a chain and not a ``match`` on the step type: new actions (a site's
custom widget, a canvas control) must be addable without touching the
runner, and a more specific strategy must be able to sit in front of a
general one for the same step type (``accepts`` decides).  The runner
knows no step type by name; it asks the registry.

Validation goes through the same registry, so a step that nothing can run
— an unknown type — is named before any job starts, never discovered
mid-batch.

``customStep`` handlers are registered by name (:meth:`StrategyRegistry.
register_custom`).  A ``customStep`` with no handler is what the reference
replayer makes of it, a no-op, and the runner warns once naming it; a
*strict* registry (``--strict``) rejects it at validation instead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

from navigation.errors import FlowError
from navigation.flow.records import CustomStep, Flow, SecretRef, Step, STEP_TYPES, Value
from navigation.page import Page, Pages


class MissingVariable(FlowError):
    """A ``${NAME}`` in the flow has no value in the job's vars."""


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """Replace every ``${NAME}`` in ``value``; an unknown or unterminated one is an error."""
    if "${" not in value:
        return value
    out, rest = [], value
    while "${" in rest:
        head, _, tail = rest.partition("${")
        name, sep, rest = tail.partition("}")
        if not sep:
            raise MissingVariable(f"unterminated ${{ in {value!r}")
        if name not in variables:
            raise MissingVariable(f"variable ${{{name}}} is not set (known: {sorted(variables)})")
        out += [head, variables[name]]
    out.append(rest)
    return "".join(out)


@dataclass(slots=True)
class StepOutcome:
    """What a strategy reports back: which selector alternative matched, plus free detail."""

    matched_index: int | None = None
    navigated: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StepContext:
    """Everything a strategy may use; built by the runner for each step."""

    pages: Pages
    page: Page
    artifacts_dir: Path
    variables: Mapping[str, str]
    resolve_secret: Callable[[SecretRef], str]
    remember_secret: Callable[[str], None]
    deadline: float
    # Every form of every secret the run has used so far, longest first: what a capture must hide.
    secret_forms: Callable[[], tuple[str, ...]] = tuple
    # The job's extracted data (``extract`` steps), name -> JSON value; one dict per flow run, kept by the runner.
    extracted: dict[str, object] = field(default_factory=dict)

    @property
    def remaining_ms(self) -> float:
        return max(0.0, (self.deadline - time.monotonic()) * 1000)

    def text(self, value: str) -> str:
        """Substitute ``${NAME}`` from the job's variables (unknown names are an error)."""
        return substitute(value, self.variables)

    def value(self, value: Value) -> str:
        """A literal (with variables) or a secret's clear value, registered for masking."""
        if isinstance(value, SecretRef):
            clear = self.resolve_secret(value)
            self.remember_secret(clear)
            return clear
        return self.text(value)


class StepStrategy:
    """Base class: declare ``handles`` (step types); override ``run`` (and maybe ``accepts``)."""

    name: ClassVar[str] = ""
    handles: ClassVar[frozenset[str]] = frozenset()

    def accepts(self, step: Step) -> bool:
        """Finer choice among strategies for the same type (default: every step of the type)."""
        return True

    def problems(self, step: Step) -> list[str]:
        """Static checks beyond the schema, reported by validation before any job runs."""
        return []

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        raise NotImplementedError


CustomHandler = Callable[[CustomStep, StepContext], "StepOutcome | None"]
"""A ``customStep`` handler: called with the step (its ``name`` and ``parameters``) and the context."""


class _CustomSteps(StepStrategy):
    """Runs a ``customStep`` by its registered handler; with none, a no-op (the runner warns)."""

    name = "customStep"
    handles = frozenset({"customStep"})

    def __init__(self, handlers: dict[str, CustomHandler]) -> None:
        self.handlers = handlers

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        assert isinstance(step, CustomStep)
        handler = self.handlers.get(step.name)
        if handler is None:
            return StepOutcome(detail={"skipped": "no handler"})
        outcome = handler(step, ctx)
        return outcome if isinstance(outcome, StepOutcome) else StepOutcome()


class StrategyRegistry:
    """An ordered chain; the first strategy that handles and accepts a step runs it.

    ``customStep`` falls through to the handlers registered by name when no
    strategy in the chain accepts it.  ``strict``: a ``customStep`` with no
    handler is a validation problem instead of a no-op.
    """

    def __init__(self, strategies: Iterable[StepStrategy] = (), *, strict: bool = False) -> None:
        self._chain: list[StepStrategy] = []
        self._custom: dict[str, CustomHandler] = {}
        self._custom_steps = _CustomSteps(self._custom)
        self.strict = strict
        for s in strategies:
            self.register(s)

    def register(self, strategy: StepStrategy, *, first: bool = False) -> None:
        if not strategy.handles:
            raise ValueError(f"strategy {strategy.name or type(strategy).__name__} handles no step type")
        if first:
            self._chain.insert(0, strategy)
        else:
            self._chain.append(strategy)

    def register_custom(self, name: str, handler: CustomHandler) -> None:
        """Run ``customStep`` steps named ``name`` with ``handler``; a name is registered once."""
        if not isinstance(name, str) or not name:
            raise ValueError("a customStep handler needs a non-empty name")
        if not callable(handler):
            raise TypeError(f"customStep handler {name!r} is not callable")
        if name in self._custom and self._custom[name] is not handler:
            raise ValueError(f"a customStep handler named {name!r} is already registered")
        self._custom[name] = handler

    @property
    def chain(self) -> tuple[StepStrategy, ...]:
        return tuple(self._chain)

    @property
    def custom_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._custom))

    def handled_types(self) -> frozenset[str]:
        return frozenset(t for s in self._chain for t in s.handles) | {"customStep"}

    def extra_types(self) -> frozenset[str]:
        """Step types beyond the built-in schema that some strategy handles (for the parser)."""
        return self.handled_types() - STEP_TYPES

    def strategy_for(self, step: Step) -> StepStrategy | None:
        for strategy in self._chain:
            if step.type in strategy.handles and strategy.accepts(step):
                return strategy
        if step.type == "customStep":
            return self._custom_steps
        return None

    def unhandled_custom(self, flow: Flow) -> list[CustomStep]:
        """The flow's ``customStep`` steps that nothing will run (no strategy, no handler by name)."""
        return [step for step in flow.steps
                if isinstance(step, CustomStep) and self.strategy_for(step) is self._custom_steps
                and step.name not in self._custom]

    def custom_step_notice(self, step: CustomStep) -> str:
        """The one line that says a ``customStep`` has no handler (a warning, or a problem when strict)."""
        known = f"registered: {', '.join(self.custom_names)}" if self._custom else "none registered"
        return (f"step {step.index} (customStep {step.name!r}): no handler for this customStep ({known}; "
                "add one with --plugin or the drover.steps entry point)")

    def problems(self, flow: Flow, *, strict: bool | None = None) -> list[str]:
        """Every step that no strategy will run, or that its strategy rejects.

        A ``customStep`` with no handler is a problem only when strict
        (``strict``, else the registry's own setting).
        """
        strict = self.strict if strict is None else strict
        out = []
        unhandled = {step.index for step in self.unhandled_custom(flow)}
        listed = False
        for step in flow.steps:
            strategy = self.strategy_for(step)
            if strategy is None:
                registered = "as listed above" if listed else ", ".join(sorted(self.handled_types()))
                listed = True  # the whole list once, not once per step
                out.append(f"step {step.index} ({step.type}): no step strategy handles it (registered: {registered})")
                continue
            if step.index in unhandled:
                if strict:
                    assert isinstance(step, CustomStep)
                    out.append(self.custom_step_notice(step) + "; --strict rejects it")
                continue
            out.extend(f"step {step.index} ({step.type}): {p}" for p in strategy.problems(step))
        return out


__all__ = ["substitute", "MissingVariable", "StepOutcome", "StepContext", "StepStrategy", "StrategyRegistry",
           "CustomHandler"]
