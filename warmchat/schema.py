"""Small typed dataclasses passed between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Speaker = Literal["A", "B"]


def other(speaker: Speaker) -> Speaker:
    """The conversation partner of `speaker`."""
    return "B" if speaker == "A" else "A"


@dataclass
class Turn:
    """One line of the conversation."""

    speaker: Speaker
    text: str
    emotion: str  # one of emotions.EMOTIONS
    intensity: float = 0.7  # 0..1
    emotion_given: bool = True  # False when a classifier chose the emotion
    audio: str | None = None  # a recorded line: its file as the script names it (relative to the granted folder)


@dataclass
class Utterance:
    """Synthesised speech for one turn."""

    audio: np.ndarray  # (S,) float32 mono in [-1, 1]
    sample_rate: int
    text: str
    voice: str
    phonemes: list[tuple[str, float, float]] = field(default_factory=list)  # (phoneme, start_s, end_s)
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start_s, end_s)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class Segment:
    """Where one turn sits on the conversation clock."""

    turn_index: int
    speaker: Speaker
    start: float  # seconds
    end: float  # seconds


@dataclass
class Timeline:
    """The conversation on one clock: mixed audio and who speaks when."""

    audio: np.ndarray  # (S,) float32 mono, the whole conversation
    sample_rate: int
    fps: int
    segments: list[Segment]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))

    def segment_at(self, t: float) -> Segment | None:
        """The segment whose speech spans time `t` (seconds), if any."""
        for seg in self.segments:
            if seg.start <= t < seg.end:
                return seg
        return None


@dataclass
class MotionTrack:
    """Per-frame motion of one face."""

    expression: np.ndarray  # (T, K) controls.CONTROLS
    pose: np.ndarray  # (T, 6) yaw, pitch, roll (rad), tx, ty (units of face height, forehead to chin), scale
    fps: int

    def __len__(self) -> int:
        return len(self.expression)


@dataclass
class GenerateResult:
    """What one conversation render produced."""

    video: Path  # MP4, H.264 + AAC
    timeline_png: Path  # emotion-timeline plot
    tree_json: Path  # the Interactive Talking Tree
    srt: Path  # subtitles
    turns: list[Turn]
    duration_s: float
    n_frames: int
    fps: int
    renderer: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    partial: bool = False  # True when the render stopped early: the files hold the turns finished before that
    note: str = ""  # why a partial result stopped early
