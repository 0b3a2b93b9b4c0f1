"""WarmChat: emotion-aware, two-person talking-head conversations from two portraits."""

from warmchat.animate import AnimateResult, animate
from warmchat.batch import BatchResult, batch
from warmchat.chat import Chat, ChatTurn
from warmchat.config import WarmChatConfig
from warmchat.errors import InputError, WarmChatError
from warmchat.pipeline import generate
from warmchat.regenerate import regenerate
from warmchat.schema import GenerateResult, Turn

__all__ = [
    "AnimateResult",
    "BatchResult",
    "Chat",
    "ChatTurn",
    "GenerateResult",
    "InputError",
    "Turn",
    "WarmChatConfig",
    "WarmChatError",
    "animate",
    "batch",
    "generate",
    "regenerate",
]
__version__ = "0.1.0"
