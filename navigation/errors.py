"""Navigation's errors: CDP, browser lifecycle, flows and steps.

::

    DroverError (coordination.errors)
    └── NavigationError                 navigation
        ├── CDPError                    cdp        base of the wire-level errors
        │   ├── CDPResponseError        cdp        the browser answered a command with an error
        │   ├── CDPConnectionLost       cdp        the websocket closed or broke
        │   ├── CDPTargetClosed         cdp        the command's target detached before answering
        │   ├── CDPTimeout              timeout    no answer within the command's timeout (a TimeoutError)
        │   └── CDPProtocolError        cdp        a frame that is not CDP (garbage, bad JSON)
        ├── BrowserError                cdp        base of launcher/lifecycle errors
        │   ├── ChromiumNotFound        input      no binary at DROVER_CHROMIUM or on PATH
        │   ├── BrowserLaunchError      cdp        started but never served DevTools
        │   └── BrowserUnavailable      cdp        reconnect attempts exhausted
        ├── FlowError                   input      base of flow input errors
        │   ├── FlowFileError           input      missing, unreadable, too large, not JSON
        │   ├── FlowValidationError     input      schema violations; names file, step index, field
        │   └── PluginError             input      a step plugin (--plugin, entry point) cannot be loaded
        ├── StepError                   navigation a step failed at run time (names step index/type)
        │   ├── SelectorNotFound        navigation no selector alternative resolved in time
        │   ├── AssertionFailed         navigation waitFor*/assertedEvents not satisfied
        │   ├── StepTimeout             timeout    a step ran past its timeout (a TimeoutError)
        │   └── ScreenshotRefused       navigation secrets could not be hidden for a capture: none taken
        └── CredentialError             auth       credential store missing, unreadable, too open, name unknown

Messages never contain a secret value: credential errors name the secret,
never its contents.  The timeout errors also subclass the builtin
:class:`TimeoutError`, and every error pickles with its fields (both rules
come from the root, see :mod:`coordination.errors`).
"""
from __future__ import annotations

from coordination.errors import DroverError


class NavigationError(DroverError):
    category = "navigation"


class CDPError(NavigationError):
    category = "cdp"


class CDPResponseError(CDPError):
    """The browser answered a command with ``{"error": {...}}``."""

    def __init__(self, method: str, code: int, message: str, data: object = None) -> None:
        self.method = method
        self.code = code
        self.cdp_message = message
        self.data = data
        super().__init__(f"{method} failed: {message} (code {code})")


class CDPConnectionLost(CDPError):
    """The websocket to the browser closed or broke."""


class CDPTargetClosed(CDPError):
    """The target a command was sent to detached (closed) before answering."""


class CDPTimeout(CDPError, TimeoutError):
    """No answer to a command within its timeout."""

    category = "timeout"


class CDPProtocolError(CDPError):
    """A frame arrived that is not a CDP message."""


class BrowserError(NavigationError):
    category = "cdp"


class ChromiumNotFound(BrowserError):
    category = "input"


class BrowserLaunchError(BrowserError):
    pass


class BrowserUnavailable(BrowserError):
    pass


class FlowError(NavigationError):
    category = "input"


class FlowFileError(FlowError):
    pass


class FlowValidationError(FlowError):
    """One or more schema problems; ``problems`` lists each with its location."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class PluginError(FlowError):
    """A step plugin could not be imported or registered; the message names the module or entry point."""


class StepError(NavigationError):
    """A step failed while running; carries its index, type and artifacts."""

    def __init__(self, message: str, *, index: int | None = None, step_type: str | None = None,
                 artifacts: tuple[str, ...] = ()) -> None:
        self.index = index
        self.step_type = step_type
        self.artifacts = tuple(artifacts)
        where = f"step {index} ({step_type}): " if index is not None else ""
        tail = f" [artifacts: {', '.join(self.artifacts)}]" if self.artifacts else ""
        super().__init__(f"{where}{message}{tail}")


class SelectorNotFound(StepError):
    pass


class AssertionFailed(StepError):
    pass


class StepTimeout(StepError, TimeoutError):
    category = "timeout"


class ScreenshotRefused(StepError):
    """No screenshot was taken: the run's secrets could not be hidden in every frame of the page."""


class CredentialError(NavigationError):
    category = "auth"


__all__ = [
    "NavigationError", "CDPError", "CDPResponseError", "CDPConnectionLost", "CDPTargetClosed", "CDPTimeout",
    "CDPProtocolError", "BrowserError", "ChromiumNotFound", "BrowserLaunchError",
    "BrowserUnavailable", "FlowError", "FlowFileError", "FlowValidationError", "PluginError", "StepError",
    "SelectorNotFound", "AssertionFailed", "StepTimeout", "ScreenshotRefused", "CredentialError",
]
