"""The 8 MEAD emotion categories, their valence/arousal coordinates and helpers for emotion vectors."""

from __future__ import annotations

import numpy as np

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt")
N_EMOTIONS = len(EMOTIONS)

# Circumplex coordinates (valence, arousal) in [-1, 1], after Russell (1980) and common MEAD usage.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.4),
    "angry": (-0.6, 0.8),
    "surprised": (0.2, 0.85),
    "fearful": (-0.65, 0.7),
    "disgusted": (-0.7, 0.3),
    "contempt": (-0.5, 0.1),
}

# Plot colours, one per emotion, chosen to be distinguishable and evocative.
EMOTION_COLORS: dict[str, str] = {
    "neutral": "#9e9e9e",
    "happy": "#f4b400",
    "sad": "#4285f4",
    "angry": "#db4437",
    "surprised": "#ab47bc",
    "fearful": "#00897b",
    "disgusted": "#7cb342",
    "contempt": "#8d6e63",
}

_ALIASES = {
    "surprise": "surprised",
    "fear": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    "disgust": "disgusted",
    "anger": "angry",
    "mad": "angry",
    "joy": "happy",
    "joyful": "happy",
    "sadness": "sad",
    "calm": "neutral",
}


def normalize_emotion(name: str) -> str:
    """Map a user-given emotion name (any case, common synonyms) to one of `EMOTIONS`.

    Raises:
        ValueError: naming the bad value and the accepted ones.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}; use one of: {', '.join(EMOTIONS)}")
    return key


def one_hot(name: str) -> np.ndarray:
    """(8,) probability vector with all mass on `name`."""
    vec = np.zeros(N_EMOTIONS, dtype=np.float64)
    vec[EMOTIONS.index(normalize_emotion(name))] = 1.0
    return vec


def soft_label(name: str, intensity: float = 1.0) -> np.ndarray:
    """(8,) distribution: `intensity` of the mass on `name`, the rest on neutral."""
    intensity = float(np.clip(intensity, 0.0, 1.0))
    vec = one_hot(name) * intensity
    vec[0] += 1.0 - intensity
    return vec


def dominant(p: np.ndarray) -> str:
    """Name of the most probable emotion in an (8,) vector."""
    return EMOTIONS[int(np.argmax(p))]


def valence_arousal(p: np.ndarray) -> np.ndarray:
    """Expected (valence, arousal) of an (..., 8) distribution; returns (..., 2)."""
    va = np.array([VALENCE_AROUSAL[e] for e in EMOTIONS])  # (8, 2)
    return np.asarray(p, dtype=np.float64) @ va
