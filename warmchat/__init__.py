"""WarmChat: emotion-aware, two-person talking-head conversations from two portraits."""

from warmchat.animate import AnimateResult, animate
from warmchat.config import WarmChatConfig
from warmchat.errors import InputError, WarmChatError
from warmchat.pipeline import generate
from warmchat.schema import GenerateResult, Turn

__all__ = [
    "AnimateResult",
    "GenerateResult",
    "InputError",
    "Turn",
    "WarmChatConfig",
    "WarmChatError",
    "animate",
    "generate",
]
__version__ = "0.1.0"
