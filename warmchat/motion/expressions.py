"""Emotion -> facial expression prototypes (FACS-inspired) shared by speaking and listening faces."""

from __future__ import annotations

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.emotions import EMOTIONS

# Action-unit prototypes (Ekman & Friesen's FACS descriptions) expressed in our controls, at full intensity.
PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmile_L": 0.75, "mouthSmile_R": 0.75, "cheekRaise": 0.6, "eyeSquint_L": 0.35, "eyeSquint_R": 0.35},
    "sad": {
        "browInnerUp": 0.7,
        "mouthFrown_L": 0.6,
        "mouthFrown_R": 0.6,
        "gazeY": 0.35,
        "eyeSquint_L": 0.15,
        "eyeSquint_R": 0.15,
    },
    "angry": {
        "browDown_L": 0.8,
        "browDown_R": 0.8,
        "mouthPress": 0.5,
        "eyeSquint_L": 0.4,
        "eyeSquint_R": 0.4,
        "noseSneer": 0.3,
    },
    "surprised": {"browInnerUp": 0.8, "browOuterUp_L": 0.8, "browOuterUp_R": 0.8, "eyeWide_L": 0.8, "eyeWide_R": 0.8},
    "fearful": {
        "browInnerUp": 0.8,
        "browOuterUp_L": 0.4,
        "browOuterUp_R": 0.4,
        "eyeWide_L": 0.7,
        "eyeWide_R": 0.7,
        "mouthStretch_L": 0.45,
        "mouthStretch_R": 0.45,
    },
    "disgusted": {
        "noseSneer": 0.8,
        "browDown_L": 0.45,
        "browDown_R": 0.45,
        "mouthFrown_L": 0.35,
        "mouthFrown_R": 0.35,
        "eyeSquint_L": 0.3,
        "eyeSquint_R": 0.3,
    },
    "contempt": {"mouthSmile_L": 0.45, "mouthPress": 0.2, "eyeSquint_L": 0.15},  # one-sided lip corner (AU14)
}

PROTOTYPE_MATRIX = np.zeros((len(EMOTIONS), K), dtype=np.float32)  # (8, K)
for _e, _controls in PROTOTYPES.items():
    for _name, _value in _controls.items():
        PROTOTYPE_MATRIX[EMOTIONS.index(_e), INDEX[_name]] = _value


def emotion_expression(curve: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """(T, K) expression for a (T, 8) emotion distribution: the probability-weighted mix of prototypes.

    An elementwise sum rather than a matrix product: BLAS may round differently for different numbers of rows,
    and a frame's expression must not depend on how many frames are computed with it (turn-by-turn rendering).
    """
    curve = np.asarray(curve, dtype=np.float32)
    return (curve[:, :, None] * PROTOTYPE_MATRIX[None]).sum(axis=1) * gain
