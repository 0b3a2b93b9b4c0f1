"""What every dialogue backend shares: the request for the next line, the backend interface, offline emotion labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from warmchat import text_emotion
from warmchat.emotions import dominant
from warmchat.schema import Speaker, Turn
from warmchat.text_emotion import ClassifierName


@dataclass
class TurnRequest:
    """What a backend needs to write the next line."""

    topic: str
    names: dict[str, str]  # "A"/"B" -> display name
    speaker: Speaker  # who speaks now
    history: list[Turn]  # the conversation so far, oldest first
    feelings: dict[str, np.ndarray]  # "A"/"B" -> (8,) cumulative emotion from the tree, before this line
    index: int  # 0-based turn number
    total: int  # turns planned
    seed: int
    # Called with the line written so far as tokens arrive (local engines, and the openai backend's stream), so a UI
    # can show the first turn before it is finished; a rejected attempt starts over with shorter text.
    on_text: Callable[[str], None] | None = None


class DialogueBackend(Protocol):
    name: str
    length: int | None  # a fixed number of turns (a script), or None: as many as asked

    def next_turn(self, request: TurnRequest) -> Turn: ...


def emotion_from_text(text: str, feeling: np.ndarray, nudge: float, classifier: ClassifierName) -> tuple[str, float]:
    """(emotion, intensity) of a generated line: the offline classifier's distribution, nudged by the tree.

    p = (1 - nudge) * p_text + nudge * E_speaker, so a clear line keeps its own label while an ambiguous one leans
    towards how the speaker currently feels. Intensity comes from the text alone.
    """
    p_text = text_emotion.emotion_distributions([text], classifier)[0]
    p = (1.0 - nudge) * p_text + nudge * np.asarray(feeling)
    return dominant(p), text_emotion.intensity_of(text, p_text)
