"""Typed, immutable records for a parsed recorder flow.

Why records: the schema module turns JSON into these once, at the edge, so
nothing inside Drover (step strategies, the runner, reports) ever reads a
raw dict or re-checks a field.  They are frozen ``slots`` dataclasses: a
flow parsed once can be shared by every job of a batch without anyone
mutating it.

Conventions that hold for every record here:

* Attribute names are snake_case (``offset_x``); the recorder's own
  spelling (``offsetX``) lives only in the parser and in error messages.
* Times are milliseconds (``float``), as in the recorder format.
* ``Step.index`` is the 0-based position in ``steps[]``; error messages and
  ``timing_key`` use the same number.
* ``Step.timeout`` is the *effective* timeout: the step's own, else the
  flow's, else :data:`DEFAULT_TIMEOUT_MS`.
* Unknown fields are kept, read-only, in ``extra`` (never acted on).
* A value that may be a credential is ``str | SecretRef``; a
  :class:`SecretRef` carries only the secret's *name*.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Mapping

DEFAULT_TIMEOUT_MS: float = 5000.0
"""The reference replayer's default when neither step nor flow sets a timeout."""

EMPTY_MAPPING: Mapping[str, object] = MappingProxyType({})

BUTTONS: tuple[str, ...] = ("primary", "auxiliary", "secondary", "back", "forward")
"""Pointer buttons in recorder spelling; the position is the DOM ``MouseEvent.button`` number."""

DEVICE_TYPES: tuple[str, ...] = ("mouse", "pen", "touch")
WAIT_OPERATORS: tuple[str, ...] = (">=", "==", "<=")

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""Valid secret names; they double as environment-variable suffixes (``DROVER_SECRET_<NAME>``)."""


class SelectorKind(enum.StrEnum):
    """How one selector string is resolved; the prefix in the recording picks it."""

    CSS = "css"
    ARIA = "aria"
    XPATH = "xpath"
    TEXT = "text"
    PIERCE = "pierce"


@dataclass(frozen=True, slots=True)
class Selector:
    """One selector: ``kind`` and the ``value`` after its prefix; ``text`` is as recorded."""

    kind: SelectorKind
    value: str
    text: str


@dataclass(frozen=True, slots=True)
class SelectorAlternative:
    """One entry of a step's ``selectors`` list.

    ``chain`` descends: each part after the first is looked up inside the
    previous match (its shadow root when it has one).  ``index`` is the
    position in the recorded list, so a result can say which alternative
    matched and stale recordings stand out.
    """

    index: int
    chain: tuple[Selector, ...]

    @property
    def text(self) -> str:
        """The alternative as recorded: the string itself, or the chain joined by ``" >>> "``."""
        return " >>> ".join(part.text for part in self.chain)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to a credential, ``{"secret": "NAME"}`` in the flow.

    Holds the name only; the value is looked up in the credential store at
    run time.  ``repr``/``str`` show the name and nothing else.
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not SECRET_NAME.fullmatch(self.name):
            raise ValueError("a secret name is 1-64 letters, digits or _, not starting with a digit")

    def __repr__(self) -> str:
        return f"SecretRef({self.name!r})"

    def __str__(self) -> str:
        return f"<secret {self.name}>"


Value = str | SecretRef


@dataclass(frozen=True, slots=True)
class AssertedEvent:
    """An event the step must cause; only ``navigation`` exists (URL/title when recorded)."""

    type: str
    url: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Rect:
    """A page-coordinate rectangle in CSS pixels (screenshot regions)."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """Fields every step has.  Subclasses add what their type needs."""

    STEP_TYPE: ClassVar[str] = ""

    index: int
    type: str
    timeout: float = DEFAULT_TIMEOUT_MS
    target: str = "main"
    frame: tuple[int, ...] = ()
    asserted_events: tuple[AssertedEvent, ...] = ()
    phase: str | None = None
    extra: Mapping[str, object] = field(default_factory=lambda: EMPTY_MAPPING, repr=False, hash=False)

    @property
    def timing_key(self) -> str:
        """Key for this step's timing in results and the performance stream: ``"3:click"``."""
        return f"{self.index}:{self.type}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ElementStep(Step):
    """A step that acts on (or near) an element found by ``selectors``.

    For ``scroll``, ``clip`` and ``screenshot`` the selectors are optional
    and ``selectors == ()`` means "the page".
    """

    selectors: tuple[SelectorAlternative, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PointerStep(ElementStep):
    """Mouse-like input at a point of the element's border box.

    The point is ``offset_x``/``offset_y`` px from the box's top-left, or
    ``rx``/``ry`` fractions (0-1) of its size, or, when neither is given,
    the centre.  ``duration`` is how long the button stays down (ms).
    """

    offset_x: float | None = None
    offset_y: float | None = None
    rx: float | None = None
    ry: float | None = None
    button: str = "primary"
    device_type: str = "mouse"
    duration: float | None = None

    def point_in(self, width: float, height: float) -> tuple[float, float]:
        """The press point relative to a box of ``width`` x ``height`` (its top-left is 0, 0)."""
        if self.offset_x is not None and self.offset_y is not None:
            return self.offset_x, self.offset_y
        if self.rx is not None and self.ry is not None:
            return self.rx * width, self.ry * height
        return width / 2, height / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickStep(PointerStep):
    STEP_TYPE: ClassVar[str] = "click"


@dataclass(frozen=True, slots=True, kw_only=True)
class DoubleClickStep(PointerStep):
    STEP_TYPE: ClassVar[str] = "doubleClick"


@dataclass(frozen=True, slots=True, kw_only=True)
class LongPressStep(PointerStep):
    """Drover's own: hold the button for ``duration`` ms (canvas controls that react to a hold)."""

    STEP_TYPE: ClassVar[str] = "longPress"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoverStep(ElementStep):
    STEP_TYPE: ClassVar[str] = "hover"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeStep(ElementStep):
    STEP_TYPE: ClassVar[str] = "change"

    value: Value = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrollStep(ElementStep):
    """Scroll the page (no selectors) or an element to the absolute ``x``/``y`` (px)."""

    STEP_TYPE: ClassVar[str] = "scroll"

    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitForElementStep(ElementStep):
    """Wait until ``count`` elements match (``operator``); ``visible=False`` inverts it."""

    STEP_TYPE: ClassVar[str] = "waitForElement"

    operator: str = ">="
    count: int = 1
    visible: bool = True
    properties: Mapping[str, object] | None = field(default=None, hash=False)
    attributes: Mapping[str, str] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipStep(ElementStep):
    """Drover's own: put ``value`` on the page's clipboard.

    The value is hidden from ``repr`` even when it is a literal: the design
    masks clip values everywhere, since this is how credentials reach
    canvas apps.
    """

    STEP_TYPE: ClassVar[str] = "clip"

    value: Value = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScreenshotStep(ElementStep):
    """Drover's own: a PNG of the page, the element (selectors), a ``clip`` rect, or the full page.

    ``name`` is a relative path inside the job's artifact folder.
    """

    STEP_TYPE: ClassVar[str] = "screenshot"

    name: str = ""
    clip: Rect | None = None
    full_page: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractStep(Step):
    """Drover's own: evaluate ``expression`` in the page and keep its JSON value as the job's data ``name``.

    The value ends up in the results store (``results --format json``), so
    ``repr`` leaves the expression out: it may quote what the page shows.
    """

    STEP_TYPE: ClassVar[str] = "extract"

    name: str = ""
    expression: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetViewportStep(Step):
    STEP_TYPE: ClassVar[str] = "setViewport"

    width: int = 0
    height: int = 0
    device_scale_factor: float = 1.0
    is_mobile: bool = False
    has_touch: bool = False
    is_landscape: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NavigateStep(Step):
    STEP_TYPE: ClassVar[str] = "navigate"

    url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyStep(Step):
    """A key event; ``key`` is a DOM key name/character or a secret reference."""

    key: Value = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDownStep(KeyStep):
    STEP_TYPE: ClassVar[str] = "keyDown"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyUpStep(KeyStep):
    STEP_TYPE: ClassVar[str] = "keyUp"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitForExpressionStep(Step):
    STEP_TYPE: ClassVar[str] = "waitForExpression"

    expression: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulateNetworkConditionsStep(Step):
    """Throughput in bytes/s (``-1`` = not throttled), latency in ms."""

    STEP_TYPE: ClassVar[str] = "emulateNetworkConditions"

    download: float = -1.0
    upload: float = -1.0
    latency: float = 0.0

    @property
    def offline(self) -> bool:
        """The reference replayer goes offline when both throughputs are 0."""
        return self.download == 0 and self.upload == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseStep(Step):
    STEP_TYPE: ClassVar[str] = "close"


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomStep(Step):
    """The recorder's ``customStep``: a named extension action with JSON ``parameters``."""

    STEP_TYPE: ClassVar[str] = "customStep"

    name: str = ""
    parameters: object = field(default=None, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomTypeStep(Step):
    """A step of a type only a registered step strategy knows (``extra_types``).

    ``fields`` holds every field except the common ones (``type``,
    ``timeout``, ``target``, ``phase``), read-only and unvalidated: the
    strategy owns that type's schema.
    """

    fields: Mapping[str, object] = field(default_factory=lambda: EMPTY_MAPPING, hash=False)


@dataclass(frozen=True, slots=True)
class UnknownField:
    """A field nobody reads, kept for the report; ``index`` is None for flow-level fields."""

    index: int | None
    step_type: str | None
    field: str

    def __str__(self) -> str:
        where = "flow" if self.index is None else f"step {self.index} ({self.step_type})"
        return f"{where}: {self.field}"


@dataclass(frozen=True, slots=True)
class AliasUse:
    """One application of a row of :data:`navigation.flow.aliases.ALIASES`."""

    index: int | None
    alias: str
    detail: str

    def __str__(self) -> str:
        where = "flow" if self.index is None else f"step {self.index}"
        return f"{where}: {self.alias} ({self.detail})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A validated recorder flow.

    ``unknown_fields`` and ``aliases_applied`` are the drift found while
    parsing; both were logged once (domain stream) when the flow was parsed.
    """

    source: str
    title: str
    timeout: float
    selector_attribute: str | None
    steps: tuple[Step, ...]
    extra: Mapping[str, object] = field(default_factory=lambda: EMPTY_MAPPING, repr=False, hash=False)
    unknown_fields: tuple[UnknownField, ...] = ()
    aliases_applied: tuple[AliasUse, ...] = ()

    @property
    def phases(self) -> tuple[str, ...]:
        """Distinct ``phase`` labels in first-use order."""
        return tuple(dict.fromkeys(s.phase for s in self.steps if s.phase is not None))

    @property
    def drift_summary(self) -> tuple[str, str]:
        """(unknown fields, old spellings), each one line counted per field: ``"pointerId: 3, flow.meta: 1"``.

        What ``validate`` prints and the parse warning says: one line per
        file, not one per use, however many steps carry the same drift.
        """
        return (_count_line([("flow." if u.index is None else "") + u.field for u in self.unknown_fields]),
                _count_line([a.alias for a in self.aliases_applied]))

    @property
    def secret_names(self) -> frozenset[str]:
        """Names of every credential the flow refers to (for a pre-flight check of the store)."""
        names: set[str] = set()
        for step in self.steps:
            for attr in ("value", "key"):
                ref = getattr(step, attr, None)
                if isinstance(ref, SecretRef):
                    names.add(ref.name)
        return frozenset(names)


_SUMMARY_NAMES = 50


def _count_line(names: list[str]) -> str:
    counts: dict[str, int] = {}
    for name in names:
        shown = name if len(name) <= 80 else name[:80] + "..."
        counts[shown] = counts.get(shown, 0) + 1
    items = [f"{name}: {n}" for name, n in list(counts.items())[:_SUMMARY_NAMES]]
    more = len(counts) - len(items)
    return ", ".join(items) + (f", and {more} more" if more > 0 else "")


STEP_RECORDS: Mapping[str, type[Step]] = MappingProxyType({
    cls.STEP_TYPE: cls
    for cls in (
        SetViewportStep, NavigateStep, ClickStep, DoubleClickStep, HoverStep, ChangeStep,
        KeyDownStep, KeyUpStep, ScrollStep, WaitForElementStep, WaitForExpressionStep,
        EmulateNetworkConditionsStep, CloseStep, CustomStep, ClipStep, LongPressStep,
        ScreenshotStep, ExtractStep,
    )
})
"""Every built-in step type (14 recorder + 4 Drover) and its record class."""

RECORDER_STEP_TYPES: tuple[str, ...] = tuple(list(STEP_RECORDS)[:14])
DROVER_STEP_TYPES: tuple[str, ...] = tuple(list(STEP_RECORDS)[14:])
STEP_TYPES: frozenset[str] = frozenset(STEP_RECORDS)

__all__ = [
    "DEFAULT_TIMEOUT_MS", "BUTTONS", "DEVICE_TYPES", "WAIT_OPERATORS", "SECRET_NAME", "SelectorKind", "Selector",
    "SelectorAlternative", "SecretRef", "Value", "AssertedEvent", "Rect", "Step", "ElementStep",
    "PointerStep", "ClickStep", "DoubleClickStep", "LongPressStep", "HoverStep", "ChangeStep",
    "ScrollStep", "WaitForElementStep", "ClipStep", "ScreenshotStep", "ExtractStep", "SetViewportStep",
    "NavigateStep", "KeyStep", "KeyDownStep", "KeyUpStep", "WaitForExpressionStep",
    "EmulateNetworkConditionsStep", "CloseStep", "CustomStep", "CustomTypeStep", "UnknownField",
    "AliasUse", "Flow", "STEP_RECORDS", "RECORDER_STEP_TYPES", "DROVER_STEP_TYPES", "STEP_TYPES",
]
