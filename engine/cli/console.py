"""The one place that writes to the terminal.

Library code logs; only CLI commands talk to the operator, and only
through a :class:`Console`, so output can be captured in tests, kept quiet
for cron and routed to stderr for errors.
"""
from __future__ import annotations

import sys
from typing import TextIO


class Console:
    """Operator-facing output: ``out`` for results, ``err`` for problems and progress."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet

    @property
    def interactive(self) -> bool:
        return bool(getattr(self.err, "isatty", lambda: False)())

    def line(self, text: str = "") -> None:
        """A normal output line (suppressed when quiet)."""
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def result(self, text: str) -> None:
        """Output that is the command's answer: printed even when quiet."""
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(f"error: {text}\n")
        self.err.flush()

    def warn(self, text: str) -> None:
        self.err.write(f"warning: {text}\n")
        self.err.flush()

    def status(self, text: str) -> None:
        """A transient status line: redrawn in place on a TTY, a plain line otherwise."""
        if self.quiet:
            return
        if self.interactive:
            self.err.write("\r\x1b[2K" + text)
        else:
            self.err.write(text + "\n")
        self.err.flush()

    def end_status(self) -> None:
        if self.interactive and not self.quiet:
            self.err.write("\n")
            self.err.flush()


__all__ = ["Console"]
