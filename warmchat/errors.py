"""Error types that carry what was wrong with a user's input and which input it was."""

from __future__ import annotations

import os
import re

SECRET_VARIABLES = ("OPENAI_API_KEY", "WARMCHAT_TTS_API_KEY")


class WarmChatError(Exception):
    """Base class for errors a user can act on."""


class InputError(WarmChatError, ValueError):
    """Bad user input. `field` names the input (e.g. "portrait_a", "script", "topic") so a UI can point at it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class BackendUnavailable(WarmChatError, RuntimeError):
    """An optional backend cannot run here; the message says how to enable it."""


def scrub_secrets(text: str, *keys: str) -> str:
    """`text` without the given keys, the operator's keys from the environment, or anything shaped like a key.

    Servers echo keys in their error messages (in full or masked like 'sk-ab***yz'); such text may be shown to a
    visitor only after this.
    """
    for key in (*keys, *(os.environ.get(v, "") for v in SECRET_VARIABLES)):
        if key and len(key) >= 4:
            text = text.replace(key, "[key]")
    return re.sub(r"\b(?:sk|key)-[A-Za-z0-9_*\-]{3,}", "[key]", text)
