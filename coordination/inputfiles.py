"""Opening an operator's input file (batch, flow, SLO file) so that no file can hang or flood a run.

Why one place: a batch, a Recorder flow and an SLO file are all named by
the operator, and each can turn out to be a FIFO (whose ``open`` blocks
until a writer comes), a device, a directory or a file far too large;
a name can also be swapped for one of those between the check and the
open.  The same three moves answer all of them, and they belong in one
function rather than three copies: ``stat`` the name (a clear message
before anything is opened), open with ``O_NONBLOCK`` (a FIFO swapped in
cannot block), and ``fstat`` what was opened (the check holds for the
file read, not for what the name pointed to a moment ago).  Reads are
bounded at the limit plus one byte, so a file that grows while it is read
is refused too.

It sits on the lowest floor because every package reads such files and
imports point down only.  It raises :class:`InputFileProblem`, whose
``reason`` completes a sentence that starts with the file's name; each
caller wraps it in its own error type (``FlowFileError``,
``BatchInputError``, ``ConfigError``) with its own noun.
"""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


class InputFileProblem(Exception):
    """Why an input file cannot be read; ``reason`` follows the file's name ("is a directory")."""

    def __init__(self, reason: str, *, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        """``"missing"``, ``"not-regular"``, ``"too-large"``, ``"unreadable"`` or ``"bad-name"``."""


def file_kind(mode: int) -> str | None:
    """What a non-regular file is (``"a FIFO (named pipe)"``...), or ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")


def size_text(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def _check(info: os.stat_result, noun: str, max_bytes: int) -> None:
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise InputFileProblem(f"is {kind}, not {noun} (it must be a regular file)", kind="not-regular")
    if info.st_size > max_bytes:
        raise InputFileProblem(f"is {size_text(info.st_size)}, over the {size_text(max_bytes)} limit for {noun}",
                               kind="too-large")


def _os_reason(exc: OSError, doing: str) -> InputFileProblem:
    if isinstance(exc, FileNotFoundError):
        return InputFileProblem("no such file", kind="missing")
    if isinstance(exc, PermissionError):
        return InputFileProblem(f"cannot {doing} it (permission denied)", kind="unreadable")
    return InputFileProblem(f"cannot {doing} it ({exc.strerror or type(exc).__name__})", kind="unreadable")


def open_regular(path: str | os.PathLike[str], noun: str, max_bytes: int) -> BinaryIO:
    """``path`` opened for binary reading, after the checks above; the caller closes it.

    ``noun`` names what the file should be ("a flow file"), for the reason.
    """
    try:
        info = os.stat(path)
    except ValueError as exc:  # an embedded NUL, or a name the file system encoding cannot hold
        raise InputFileProblem(f"is not a usable file name ({exc})", kind="bad-name") from None
    except OSError as exc:
        raise _os_reason(exc, "read") from exc
    _check(info, noun, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_reason(exc, "open") from exc
    try:
        _check(os.fstat(fd), noun, max_bytes)
        os.set_blocking(fd, True)  # a regular file: reads never block anyway; fdopen wants the usual mode
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike[str], noun: str, max_bytes: int) -> bytes:
    """The whole file, read through :func:`open_regular`, at most ``max_bytes``."""
    with open_regular(path, noun, max_bytes) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise _os_reason(exc, "read") from exc
    if len(data) > max_bytes:
        raise InputFileProblem(f"grew past the {size_text(max_bytes)} limit for {noun} while being read",
                               kind="too-large")
    return data


__all__ = ["InputFileProblem", "open_regular", "read_regular", "file_kind", "size_text"]
