"""A flow file on disk -> decoded JSON -> :func:`parse_flow`, with file-level errors named.

Why the care: ``validate`` and every batch start read user files, and a
bad one must give one clear line (``flows/login.json: malformed JSON at
line 12, column 5: unexpected character``), never a traceback or a hang.
So: the size is checked from ``stat`` *before* reading (a 20 MB file is
refused at once), only regular files are read (a FIFO would block
forever), at most ``max_bytes + 1`` bytes are read even if the file grows,
and nesting depth is checked before the JSON decoder sees the text —
orjson 3.8 crashes the process (SIGSEGV) on about a million nested
brackets, which fit easily in a 10 MB file.
"""
from __future__ import annotations

import os
import re
from collections.abc import Collection
from itertools import accumulate
from pathlib import Path

import orjson

from coordination.inputfiles import InputFileProblem, read_regular
from navigation.errors import FlowFileError
from navigation.flow._parse import MAX_DEPTH, parse_flow
from navigation.flow.records import Flow

MAX_FLOW_BYTES = 10 * 1024 * 1024

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _read_bounded(path: Path, source: str, max_bytes: int) -> bytes:
    try:
        return read_regular(path, "a flow file", max_bytes)
    except InputFileProblem as problem:
        raise FlowFileError(f"{source}: {problem.reason}") from None


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def nesting_depth(data: bytes, limit: int) -> int:
    """How deep JSON text nests outside its strings, measured before any decoder sees it.

    Why before: orjson 3.8 crashes the whole process (SIGSEGV, no
    exception) on some 200,000 nested brackets, which fit in a 1 MiB batch
    line or a 10 MB flow file; so a caller refuses ``nesting_depth(data,
    limit) > limit`` and only then decodes.  One scanner for flow files and
    batch lines (engine's), each with its own limit.

    Never an under-estimate: text that holds at most ``limit`` opening
    brackets cannot nest deeper, and that count is returned without a scan
    (the common case); otherwise it is the exact depth of well-formed JSON
    and an over-estimate for malformed text.  ``data`` is raw UTF-8 bytes:
    a byte-order mark or any multi-byte character is harmless, none of
    their bytes is a bracket, quote or backslash.
    """
    opening = data.count(b"[") + data.count(b"{")
    if opening <= limit:
        return opening
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", data))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def decode_flow_json(data: bytes, source: str) -> object:
    """UTF-8 JSON bytes -> Python data, or a :class:`FlowFileError` naming line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(data, exc.start)
        raise FlowFileError(f"{source}: is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                            f"at line {line}, column {column})") from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark some editors add; it carries no meaning
    if nesting_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise FlowFileError(f"{source}: JSON nests deeper than {MAX_DEPTH} levels; "
                            "a recorder flow needs fewer than 10")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FlowFileError(f"{source}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def load_flow(path: str | os.PathLike[str], *, extra_types: Collection[str] = (),
              max_bytes: int = MAX_FLOW_BYTES) -> Flow:
    """Read, decode and validate one recorder flow file.

    Raises :class:`FlowFileError` for file-level trouble (missing,
    unreadable, a directory, over ``max_bytes``, not UTF-8, malformed
    JSON, not a flow) and :class:`FlowValidationError` listing every schema
    problem; both messages start with the path.
    """
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    source = os.fspath(path)
    data = _read_bounded(Path(source), source, max_bytes)
    return parse_flow(decode_flow_json(data, source), source=source, extra_types=extra_types)


__all__ = ["load_flow", "decode_flow_json", "nesting_depth", "MAX_FLOW_BYTES"]
