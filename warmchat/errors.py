"""Error types that carry what was wrong with a user's input and which input it was."""

from __future__ import annotations


class WarmChatError(Exception):
    """Base class for errors a user can act on."""


class InputError(WarmChatError, ValueError):
    """Bad user input. `field` names the input (e.g. "portrait_a", "script", "topic") so a UI can point at it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class BackendUnavailable(WarmChatError, RuntimeError):
    """An optional backend cannot run here; the message says how to enable it."""
