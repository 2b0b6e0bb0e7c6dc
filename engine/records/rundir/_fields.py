"""Reading run-directory JSON into records: the error, the two reading modes, typed accessors.

Every record's ``from_json`` reads through :class:`Obj`, which knows the
file and the field path, so a value of the wrong type is reported as
``summary.json: windows[3].jobs.passed: expected a whole number >= 0, got 'x'``
(strict: :class:`RunDirError`) or kept as an :class:`Issue` and read as
None (lenient).  A number that is null, missing or not finite is None in
both modes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.errors import RunDirError

MAX_ISSUES = 200


@dataclass(frozen=True, slots=True)
class Issue:
    """One value read as "no data", or one line or row skipped, in lenient reading."""

    file: str
    at: str
    problem: str
    skipped: bool = False

    def __str__(self) -> str:
        if not self.at:
            return f"{self.file}: {self.problem}"
        return f"{self.file} {self.at}: {self.problem}" if self.at.startswith("line ") \
            else f"{self.file}: {self.at}: {self.problem}"


@dataclass(slots=True)
class Reading:
    """Strict (raise at the first bad value) or lenient (read it as None, keep an :class:`Issue`)."""

    lenient: bool = False
    issues: list[Issue] = field(default_factory=list)

    def bad(self, file: str, at: str, problem: str, *, skipped: bool = False) -> None:
        if not self.lenient:
            raise RunDirError(file, at, problem)
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(Path(file).name, at, problem + (" (skipped)" if skipped else ""), skipped))


def as_number(v: Any) -> float | None:
    """A finite number, else None (``type`` not ``isinstance``: a bool is not a number here)."""
    if type(v) is float:
        return v if math.isfinite(v) else None
    return float(v) if type(v) is int else None


def as_count(v: Any) -> int | None:
    """A whole number >= 0 (``3`` or ``3.0``), else None."""
    f = as_number(v)
    return int(f) if f is not None and f.is_integer() and f >= 0 else None


def kind_of(v: Any) -> str:
    if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 40):
        return repr(v)
    return {dict: "an object", list: "a list", str: "a long string"}.get(type(v), type(v).__name__)


class Obj:
    """One JSON object being read: typed accessors that know the file and the field path."""

    __slots__ = ("raw", "at", "file", "rd")

    def __init__(self, raw: Mapping[str, Any], at: str, file: str, rd: Reading) -> None:
        self.raw, self.at, self.file, self.rd = raw, at, file, rd

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.at}[{key}]"
        return f"{self.at}.{key}" if self.at else key

    def _get(self, key: str, ok: Callable[[Any], bool], expected: str) -> Any:
        v = self.raw.get(key)
        if v is None or (type(v) is float and not math.isfinite(v)):  # NaN, Infinity: no value, whatever the field
            return None
        if ok(v):
            return v
        self.rd.bad(self.file, self.where(key), f"expected {expected}, got {kind_of(v)}")
        return None

    def num(self, key: str) -> float | None:
        v = self._get(key, lambda x: type(x) in (int, float), "a number")
        return None if v is None else as_number(v)

    def whole(self, key: str) -> int | None:
        v = self._get(key, lambda x: type(x) is int or (type(x) is float and x.is_integer()), "a whole number")
        return None if v is None else int(v)

    def count(self, key: str) -> int | None:
        v = self._get(key, lambda x: as_count(x) is not None, "a whole number >= 0")
        return None if v is None else as_count(v)

    def text(self, key: str) -> str | None:
        return self._get(key, lambda x: isinstance(x, str), "a string")

    def flag(self, key: str) -> bool | None:
        return self._get(key, lambda x: isinstance(x, bool), "true or false")

    def scalar(self, key: str) -> str | float | None:
        """A string or a number (the fields whose older spelling was a number: an alert's threshold)."""
        v = self._get(key, lambda x: isinstance(x, str) or type(x) in (int, float), "a string or a number")
        return v if v is None or isinstance(v, str) else as_number(v)

    def window_id(self, key: str) -> int | str | None:
        v = self._get(key, lambda x: isinstance(x, str) or type(x) is int, "a window index or \"run\"")
        return v

    def json(self, key: str) -> Any:
        return self.raw.get(key)

    def obj(self, key: str) -> Obj | None:
        v = self._get(key, lambda x: isinstance(x, dict), "an object")
        return None if v is None else Obj(v, self.where(key), self.file, self.rd)

    def items(self, key: str) -> list[Any] | None:
        return self._get(key, lambda x: isinstance(x, list), "a list")

    def objs(self, key: str, *, keep_bad: bool = False) -> list[Obj] | None:
        """The objects of a list; one that is not an object is skipped (or, ``keep_bad``, read as empty)."""
        raw = self.items(key)
        if raw is None:
            return None
        out = []
        for i, v in enumerate(raw):
            if isinstance(v, dict):
                out.append(Obj(v, f"{self.where(key)}[{i}]", self.file, self.rd))
                continue
            self.rd.bad(self.file, f"{self.where(key)}[{i}]", f"expected an object, got {kind_of(v)}",
                        skipped=not keep_bad)
            if keep_bad:
                out.append(Obj({}, f"{self.where(key)}[{i}]", self.file, self.rd))
        return out

    def texts(self, key: str) -> tuple[str, ...] | None:
        raw = self.items(key)
        if raw is None:
            return None
        out = []
        for i, v in enumerate(raw):
            if isinstance(v, str):
                out.append(v)
            else:
                self.rd.bad(self.file, f"{self.where(key)}[{i}]", f"expected a string, got {kind_of(v)}", skipped=True)
        return tuple(out)

    def mapping(self, key: str, read: Callable[[Obj, str], Any]) -> dict[str, Any]:
        """An object of name -> value, each value read by ``read(self_as_object, name)``."""
        sub = self.obj(key)
        return {} if sub is None else {str(k): read(sub, k) for k in sub.raw}

    def objects(self, key: str) -> dict[str, Obj]:
        """An object of name -> object; a value that is not an object is skipped."""
        sub = self.obj(key)
        out = {}
        for k, v in (sub.raw.items() if sub is not None else ()):
            if isinstance(v, dict):
                out[str(k)] = Obj(v, sub.where(k), self.file, self.rd)
            else:
                self.rd.bad(self.file, sub.where(k), f"expected an object, got {kind_of(v)}", skipped=True)
        return out


def root(data: Any, file: str, reading: Reading | None) -> Obj:
    if not isinstance(data, dict):
        raise RunDirError(file, "", f"expected a JSON object, found {type(data).__name__}")
    return Obj(data, "", file, reading or Reading())


def put(d: dict[str, Any], **kv: Any) -> dict[str, Any]:
    """Add the values that are not None (the optional keys of a record's wire form)."""
    d.update((k, v) for k, v in kv.items() if v is not None)
    return d


class Record:
    """``from_json(data, file=..., reading=...)`` for every record: the root must be a JSON object."""

    __slots__ = ()

    @classmethod
    def from_json(cls, data: Any, *, file: str = "<json>", reading: Reading | None = None) -> Any:
        return cls._read(root(data, file, reading))  # type: ignore[attr-defined]


__all__ = ["RunDirError", "Issue", "Reading", "as_number", "as_count", "kind_of", "Obj", "root", "put", "Record",
           "MAX_ISSUES"]
