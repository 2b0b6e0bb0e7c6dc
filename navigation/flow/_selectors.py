"""Selector strings -> :class:`Selector` records.

Why its own module: the prefix rules (``aria/``, ``xpath/``, ``text/``,
``pierce/``, else CSS) are used by the flow parser and by whoever resolves
selectors in the page; one definition keeps them from drifting apart.
The ``aria/`` value syntax is here too (:func:`parse_aria`), so a bad one
is a validation problem, not a surprise mid-run.
"""
from __future__ import annotations

import re

from navigation.flow.records import Selector, SelectorKind

_PREFIXED: tuple[tuple[str, SelectorKind], ...] = tuple(
    (f"{kind.value}/", kind) for kind in SelectorKind if kind is not SelectorKind.CSS
)
# [attribute="value"] or [attribute='value'], as the reference replayer's ARIA handler reads them.
_ARIA_ATTRIBUTE = re.compile(r"""\[\s*(?P<attribute>\w+)\s*=\s*(?P<quote>["'])(?P<value>\\.|.*?(?=(?P=quote)))(?P=quote)\s*\]""")
_ARIA_ATTRIBUTES = ("name", "role")


def parse_selector(text: str) -> Selector:
    """Split one recorded selector string into kind and value; anything unprefixed is CSS.

    The value may be empty (``"aria/"``); the flow parser reports that as a
    problem with the step's location, so this function does not raise.
    """
    for prefix, kind in _PREFIXED:
        if text.startswith(prefix):
            return Selector(kind, text[len(prefix):], text)
    return Selector(SelectorKind.CSS, text, text)


def parse_aria(value: str) -> tuple[str | None, str | None]:
    """``Name[role="button"]`` -> ``("Name", "button")``: the accessible name and role to look for.

    ``[name="..."]`` sets the name explicitly (``[name=""][role="img"]``: an
    image with no name); text outside the brackets is the name otherwise.
    ``None`` means "any".  An attribute other than ``name`` or ``role`` is a
    ``ValueError``.
    """
    found: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        attribute = match.group("attribute")
        if attribute not in _ARIA_ATTRIBUTES:
            raise ValueError(f'unknown aria attribute "{attribute}" (only name and role can be given)')
        found[attribute] = match.group("value")
        return ""

    rest = _ARIA_ATTRIBUTE.sub(take, value)
    name = found.get("name")
    if name is None and rest:
        name = rest
    return name, found.get("role")


__all__ = ["parse_selector", "parse_aria"]
