"""WarmChat: emotion-aware, two-person talking-head conversations from two portraits."""

from warmchat.batch import BatchResult, batch
from warmchat.config import WarmChatConfig
from warmchat.errors import InputError, WarmChatError
from warmchat.pipeline import generate
from warmchat.schema import GenerateResult, Turn

__all__ = [
    "BatchResult",
    "GenerateResult",
    "InputError",
    "Turn",
    "WarmChatConfig",
    "WarmChatError",
    "batch",
    "generate",
]
__version__ = "0.1.0"
