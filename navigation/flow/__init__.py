"""Chrome DevTools Recorder flows as typed, validated records.

``load_flow(path)`` reads a Recorder JSON export (plus Drover's own
``clip``, ``longPress`` and ``screenshot`` steps and ``{"secret": NAME}``
values) and returns a frozen :class:`Flow`; anything wrong raises one
:class:`~navigation.errors.FlowError` that names the file, the step index,
the type and the field.  Step record classes live in
:mod:`navigation.flow.records`; the older spellings that are mapped are
listed in :mod:`navigation.flow.aliases`.
"""
from navigation.flow import aliases, records
from navigation.flow._load import MAX_FLOW_BYTES, load_flow, nesting_depth
from navigation.flow._parse import parse_flow
from navigation.flow._selectors import parse_selector
from navigation.flow.records import (
    DEFAULT_TIMEOUT_MS, STEP_TYPES, Flow, SecretRef, Selector, SelectorAlternative, SelectorKind, Step,
)

__all__ = [
    "load_flow", "parse_flow", "parse_selector", "Flow", "Step", "Selector", "SelectorAlternative",
    "SelectorKind", "SecretRef", "STEP_TYPES", "DEFAULT_TIMEOUT_MS", "MAX_FLOW_BYTES", "records",
    "aliases", "nesting_depth",
]
