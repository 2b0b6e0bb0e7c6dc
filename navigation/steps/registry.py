"""The step-strategy chain: an ordered registry of who runs which step.

Why a chain and not a ``match`` on the step type: new actions (a site's
custom widget, a canvas control) must be addable without touching the
runner, and a more specific strategy must be able to sit in front of a
general one for the same step type (``accepts`` decides).  The runner
knows no step type by name; it asks the registry.

Validation goes through the same registry, so a step that nothing can run
— an unknown type, or a ``customStep`` no strategy accepts — is named
before any job starts, never discovered mid-batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

from navigation.errors import FlowError
from navigation.flow.records import Flow, SecretRef, Step, STEP_TYPES, Value
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


class StrategyRegistry:
    """An ordered chain; the first strategy that handles and accepts a step runs it."""

    def __init__(self, strategies: Iterable[StepStrategy] = ()) -> None:
        self._chain: list[StepStrategy] = []
        for s in strategies:
            self.register(s)

    def register(self, strategy: StepStrategy, *, first: bool = False) -> None:
        if not strategy.handles:
            raise ValueError(f"strategy {strategy.name or type(strategy).__name__} handles no step type")
        if first:
            self._chain.insert(0, strategy)
        else:
            self._chain.append(strategy)

    @property
    def chain(self) -> tuple[StepStrategy, ...]:
        return tuple(self._chain)

    def handled_types(self) -> frozenset[str]:
        return frozenset(t for s in self._chain for t in s.handles)

    def extra_types(self) -> frozenset[str]:
        """Step types beyond the built-in schema that some strategy handles (for the parser)."""
        return self.handled_types() - STEP_TYPES

    def strategy_for(self, step: Step) -> StepStrategy | None:
        for strategy in self._chain:
            if step.type in strategy.handles and strategy.accepts(step):
                return strategy
        return None

    def problems(self, flow: Flow) -> list[str]:
        """Every step that no strategy will run, or that its strategy rejects."""
        out = []
        for step in flow.steps:
            strategy = self.strategy_for(step)
            if strategy is None:
                what = f" {getattr(step, 'name', '')!r}" if step.type == "customStep" else ""
                out.append(f"step {step.index} ({step.type}{what}): no step strategy handles it "
                           f"(registered: {', '.join(sorted(self.handled_types()))})")
                continue
            out.extend(f"step {step.index} ({step.type}): {p}" for p in strategy.problems(step))
        return out


__all__ = ["substitute", "MissingVariable", "StepOutcome", "StepContext", "StepStrategy", "StrategyRegistry"]
