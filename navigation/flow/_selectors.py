"""Selector strings -> :class:`Selector` records.

Why its own module: the prefix rules (``aria/``, ``xpath/``, ``text/``,
``pierce/``, else CSS) are used by the flow parser and by whoever resolves
selectors in the page; one definition keeps them from drifting apart.
"""
from __future__ import annotations

from navigation.flow.records import Selector, SelectorKind

_PREFIXED: tuple[tuple[str, SelectorKind], ...] = tuple(
    (f"{kind.value}/", kind) for kind in SelectorKind if kind is not SelectorKind.CSS
)


def parse_selector(text: str) -> Selector:
    """Split one recorded selector string into kind and value; anything unprefixed is CSS.

    The value may be empty (``"aria/"``); the flow parser reports that as a
    problem with the step's location, so this function does not raise.
    """
    for prefix, kind in _PREFIXED:
        if text.startswith(prefix):
            return Selector(kind, text[len(prefix):], text)
    return Selector(SelectorKind.CSS, text, text)


__all__ = ["parse_selector"]
