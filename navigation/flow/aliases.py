"""The one table of older and alternative spellings Drover accepts in flows.

Why a table: recordings outlive the Recorder version that made them, and
hand-edited flows use shorthands.  Every spelling Drover maps is listed
here, with where it comes from, and every mapping applied to a flow is
reported (``Flow.aliases_applied``, one domain-stream warning per flow).
A mapping is only listed when it keeps the meaning exactly; when an old
spelling would need a guess, it is *not* mapped: it fails validation with
a hint (:data:`RETIRED_STEP_TYPES`, :data:`RETIRED_FLOW_FIELDS`, and the
conflict messages below).  If both the old and the new spelling are given,
that is a validation problem too, never a silent choice.

Aliases apply only to built-in step types; a step whose type a registered
strategy handles (``extra_types``) is passed through untouched.

Each row: id, the old or alternative spelling -> what Drover reads, and
where the spelling is found ("2021" = DevTools Recorder exports of 2021,
before the current schema; "hand" = hand-written flows).

``type-keydown``            ``"type": "keydown"`` -> ``"keyDown"`` (2021)
``type-keyup``              ``"type": "keyup"`` -> ``"keyUp"`` (2021)
``type-viewport``           ``"type": "viewport"`` (width/height only) -> ``"setViewport"``;
                            absent ``deviceScaleFactor`` = 1, ``isMobile``/``hasTouch``/
                            ``isLandscape`` = false (2021)
``selector-single``         ``"selector": S`` -> ``"selectors": [[S]]`` (2021)
``selectors-string``        ``"selectors": S`` (one string) -> ``"selectors": [[S]]`` (hand)
``context``                 ``"context": {"path": P, "target": T}`` -> ``"frame": P``,
                            ``"target": T``; an empty path is the main frame (2021)
``condition``               ``"condition": {"type": "waitForNavigation", "expectedUrl": U}``
                            or ``"condition": "waitForNavigation"`` ->
                            ``"assertedEvents": [{"type": "navigation", "url": U}]`` (2021)
``asserted-events-object``  ``"assertedEvents": {...}`` -> ``"assertedEvents": [{...}]`` (hand)
``network-conditions``      emulateNetworkConditions ``"conditions": {"download", "upload",
                            "latency"}`` -> the same three top-level fields (2021)
``key-modifiers``           keyDown/keyUp ``"altKey"``/``"ctrlKey"``/``"metaKey"``/
                            ``"shiftKey": false`` -> dropped (they said "no modifier");
                            ``true`` is a validation problem, not a guess (2021)
``button-cdp-name``         ``"button": "left"/"middle"/"right"`` ->
                            ``"primary"/"auxiliary"/"secondary"`` (hand, CDP names)
``screenshot-path``         screenshot ``"path"`` -> ``"name"`` (Drover's own step)

Not aliases (already the current schema, so not reported): a selector
alternative given as a plain string instead of a one-element list
(``"selectors": ["#a", "#b"]``), and click ``duration`` (moved between
click attributes upstream, same meaning).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from navigation.flow.records import AliasUse


Rewrite = Callable[[dict[str, object]], str | None]


class AliasConflict(Exception):
    """An old spelling that cannot be mapped without guessing; the message says why.

    Internal to the flow parser, which turns it into a validation problem.
    """


@dataclass(frozen=True, slots=True)
class Alias:
    """One row of the table: ``rewrite`` edits a step (a private copy) and says what it did.

    ``rewrite`` returns ``None`` when the row does not apply, a short
    description of the change when it did, and raises
    :class:`AliasConflict` when the step cannot be mapped safely.
    """

    id: str
    step_types: frozenset[str]
    old: str
    new: str
    origin: str
    rewrite: Rewrite


_SELECTOR_TYPES = frozenset({"click", "doubleClick", "hover", "change", "scroll", "waitForElement",
                             "clip", "longPress", "screenshot"})
_ANY = frozenset({"setViewport", "navigate", "click", "doubleClick", "hover", "change", "keyDown",
                  "keyUp", "scroll", "waitForElement", "waitForExpression",
                  "emulateNetworkConditions", "close", "customStep", "clip", "longPress",
                  "screenshot"})
_MODIFIERS = ("altKey", "ctrlKey", "metaKey", "shiftKey")
_CDP_BUTTONS = MappingProxyType({"left": "primary", "middle": "auxiliary", "right": "secondary"})


def _rename_type(old: str, new: str, fill: Mapping[str, object] = MappingProxyType({})) -> Rewrite:
    def rewrite(step: dict[str, object]) -> str | None:
        if step.get("type") != old:
            return None
        step["type"] = new
        filled = [key for key in fill if step.get(key) is None]
        for key in filled:
            step[key] = fill[key]
        tail = f"; filled {', '.join(f'{k}={fill[k]!r}' for k in filled)}" if filled else ""
        return f'"type": "{old}" -> "{new}"{tail}'
    return rewrite


def _selector_single(step: dict[str, object]) -> str | None:
    if step.get("selector") is None:
        return None
    if step.get("selectors") is not None:
        raise AliasConflict('both "selector" (old spelling) and "selectors" are given; keep only "selectors"')
    selector = step["selector"]
    if not isinstance(selector, str):
        raise AliasConflict('"selector" (old spelling of "selectors") must be a string')
    del step["selector"]
    step["selectors"] = [[selector]]
    return '"selector" -> "selectors"'


def _selectors_string(step: dict[str, object]) -> str | None:
    selectors = step.get("selectors")
    if not isinstance(selectors, str):
        return None
    step["selectors"] = [[selectors]]
    return '"selectors" as one string -> a list of one alternative'


def _context(step: dict[str, object]) -> str | None:
    context = step.get("context")
    if context is None:
        return None
    if not isinstance(context, Mapping) or not set(context) <= {"path", "target"}:
        raise AliasConflict('"context" (old spelling of "frame"/"target") must be an object '
                            'with only "path" and "target"')
    moves = [(old, new) for old, new in (("path", "frame"), ("target", "target")) if context.get(old) is not None]
    for old, new in moves:
        if step.get(new) is not None and step[new] != context[old]:
            raise AliasConflict(f'"context.{old}" (old spelling) and "{new}" disagree; keep only "{new}"')
    del step["context"]
    done = []
    for old, new in moves:
        if new == "frame" and context[old] == []:
            continue  # the main frame: the same as no "frame" at all
        step[new] = context[old]
        done.append(f'"context.{old}" -> "{new}"')
    return ", ".join(done) or '"context" (main frame, main target) dropped'


def _condition(step: dict[str, object]) -> str | None:
    condition = step.get("condition")
    if condition is None:
        return None
    if step.get("assertedEvents") is not None:
        raise AliasConflict('both "condition" (old spelling) and "assertedEvents" are given; '
                            'keep only "assertedEvents"')
    event: dict[str, object] = {"type": "navigation"}
    if condition == "waitForNavigation":
        pass
    elif (isinstance(condition, Mapping) and condition.get("type") == "waitForNavigation"
          and set(condition) <= {"type", "expectedUrl"}):
        if condition.get("expectedUrl") is not None:
            event["url"] = condition["expectedUrl"]
    else:
        raise AliasConflict('"condition" (old spelling of "assertedEvents") must be "waitForNavigation" '
                            'or {"type": "waitForNavigation", "expectedUrl": URL}')
    del step["condition"]
    step["assertedEvents"] = [event]
    return '"condition" -> "assertedEvents" navigation'


def _asserted_events_object(step: dict[str, object]) -> str | None:
    events = step.get("assertedEvents")
    if not isinstance(events, Mapping):
        return None
    step["assertedEvents"] = [events]
    return '"assertedEvents" as one object -> a list of one event'


def _network_conditions(step: dict[str, object]) -> str | None:
    conditions = step.get("conditions")
    if conditions is None:
        return None
    if not isinstance(conditions, Mapping):
        raise AliasConflict('"conditions" (old spelling) must be an object with "download", '
                            '"upload", "latency"')
    moved = [key for key in ("download", "upload", "latency") if key in conditions]
    for key in moved:
        if step.get(key) is not None and step[key] != conditions[key]:
            raise AliasConflict(f'"conditions.{key}" (old spelling) and "{key}" disagree; keep only "{key}"')
    rest = {k: v for k, v in conditions.items() if k not in moved}
    for key in moved:
        step[key] = conditions[key]
    if rest:
        step["conditions"] = rest  # what is left is reported as an unknown field
    else:
        del step["conditions"]
    return f'"conditions.{{{",".join(moved)}}}" -> top-level fields'


def _key_modifiers(step: dict[str, object]) -> str | None:
    present = [m for m in _MODIFIERS if m in step]
    if not present:
        return None
    for flag in present:
        if step[flag] is not False:
            raise AliasConflict(f'"{flag}" (old spelling) is only accepted as false; record the modifier '
                                "as its own keyDown/keyUp steps")
    for flag in present:
        del step[flag]
    return f"dropped {', '.join(present)} = false"


def _button_cdp_name(step: dict[str, object]) -> str | None:
    button = step.get("button")
    if not isinstance(button, str) or button not in _CDP_BUTTONS:
        return None
    step["button"] = _CDP_BUTTONS[button]
    return f'"button": "{button}" -> "{_CDP_BUTTONS[button]}"'


def _screenshot_path(step: dict[str, object]) -> str | None:
    if step.get("path") is None:
        return None
    if step.get("name") is not None:
        raise AliasConflict('both "path" and "name" are given; keep only "name"')
    step["name"] = step.pop("path")
    return '"path" -> "name"'


_OLD_RECORDER = "DevTools Recorder exports of 2021"

ALIASES: tuple[Alias, ...] = (
    Alias("type-keydown", frozenset({"keydown"}), '"type": "keydown"', '"type": "keyDown"',
          _OLD_RECORDER, _rename_type("keydown", "keyDown")),
    Alias("type-keyup", frozenset({"keyup"}), '"type": "keyup"', '"type": "keyUp"',
          _OLD_RECORDER, _rename_type("keyup", "keyUp")),
    Alias("type-viewport", frozenset({"viewport"}), '"type": "viewport"', '"type": "setViewport"',
          _OLD_RECORDER, _rename_type("viewport", "setViewport", MappingProxyType({
              "deviceScaleFactor": 1, "isMobile": False, "hasTouch": False, "isLandscape": False}))),
    Alias("selector-single", _SELECTOR_TYPES, '"selector": S', '"selectors": [[S]]',
          _OLD_RECORDER, _selector_single),
    Alias("selectors-string", _SELECTOR_TYPES, '"selectors": S', '"selectors": [[S]]',
          "hand-written flows", _selectors_string),
    Alias("context", _ANY, '"context": {"path", "target"}', '"frame", "target"',
          _OLD_RECORDER, _context),
    Alias("condition", _ANY, '"condition"', '"assertedEvents"', _OLD_RECORDER, _condition),
    Alias("asserted-events-object", _ANY, '"assertedEvents": {...}', '"assertedEvents": [{...}]',
          "hand-written flows", _asserted_events_object),
    Alias("network-conditions", frozenset({"emulateNetworkConditions"}), '"conditions": {...}',
          '"download", "upload", "latency"', _OLD_RECORDER, _network_conditions),
    Alias("key-modifiers", frozenset({"keyDown", "keyUp"}), '"altKey"/"ctrlKey"/"metaKey"/"shiftKey"',
          "(dropped when false)", _OLD_RECORDER, _key_modifiers),
    Alias("button-cdp-name", frozenset({"click", "doubleClick", "longPress"}),
          '"button": "left"/"middle"/"right"', '"primary"/"auxiliary"/"secondary"',
          "hand-written flows (CDP names)", _button_cdp_name),
    Alias("screenshot-path", frozenset({"screenshot"}), '"path"', '"name"', "Drover's screenshot step",
          _screenshot_path),
)
"""Applied in this order: type renames first, so later rows see the current type."""

RETIRED_STEP_TYPES: Mapping[str, str] = MappingProxyType({
    "submit": 'the 2021 Recorder\'s "submit" step has no exact equivalent: record a click on the '
              'submit control, or keyDown/keyUp of "Enter"',
})
"""Old step types deliberately *not* mapped; the hint is added to the unknown-type problem."""

RETIRED_FLOW_FIELDS: Mapping[str, str] = MappingProxyType({
    "sections": 'this looks like a 2021 DevTools Recorder export ("sections"), which Drover does not '
                "convert: its section URLs and screenshots have no exact modern meaning; re-record "
                "the flow in a current Chrome",
})
"""Old top-level fields deliberately *not* mapped; the hint is added to the "missing steps" error."""


def normalize_step(step: dict[str, object], index: int) -> list[AliasUse]:
    """Apply every matching row to ``step`` in place (a private copy) and list what was applied.

    Raises :class:`AliasConflict` when an old spelling cannot be mapped safely.
    """
    used: list[AliasUse] = []
    for alias in ALIASES:
        if step.get("type") not in alias.step_types:
            continue
        detail = alias.rewrite(step)
        if detail is not None:
            used.append(AliasUse(index, alias.id, detail))
    return used


__all__ = ["Alias", "AliasConflict", "ALIASES", "RETIRED_STEP_TYPES", "RETIRED_FLOW_FIELDS",
           "normalize_step"]
