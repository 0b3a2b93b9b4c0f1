"""WarmChat: emotion-aware, two-person talking-head conversations from two portraits."""

from warmchat.config import WarmChatConfig
from warmchat.errors import InputError, WarmChatError
from warmchat.pipeline import generate
from warmchat.schema import GenerateResult, Turn

__all__ = ["GenerateResult", "InputError", "Turn", "WarmChatConfig", "WarmChatError", "generate"]
__version__ = "0.1.0"
