"""The named expression controls (an ARKit-like subset): the one list every stage refers to by name."""

from __future__ import annotations

import numpy as np

CONTROLS: tuple[str, ...] = (
    "jawOpen",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmile_L",
    "mouthSmile_R",
    "mouthFrown_L",
    "mouthFrown_R",
    "mouthStretch_L",
    "mouthStretch_R",
    "mouthPress",
    "browInnerUp",
    "browDown_L",
    "browDown_R",
    "browOuterUp_L",
    "browOuterUp_R",
    "eyeBlink_L",
    "eyeBlink_R",
    "eyeWide_L",
    "eyeWide_R",
    "eyeSquint_L",
    "eyeSquint_R",
    "cheekRaise",
    "noseSneer",
    "gazeX",
    "gazeY",
)
K = len(CONTROLS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(CONTROLS)}
# Gaze is signed; every other control is an activation in [0, 1].
SIGNED = frozenset({"gazeX", "gazeY"})

POSE_AXES: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "scale")
POSE_INDEX: dict[str, int] = {name: i for i, name in enumerate(POSE_AXES)}


def zeros(frames: int) -> np.ndarray:
    """(T, K) expression track at rest."""
    return np.zeros((frames, K), dtype=np.float32)


def rest_pose(frames: int) -> np.ndarray:
    """(T, 6) head pose at rest: no rotation or translation, scale 1."""
    pose = np.zeros((frames, len(POSE_AXES)), dtype=np.float32)
    pose[:, POSE_INDEX["scale"]] = 1.0
    return pose


def clip_expression(expr: np.ndarray) -> np.ndarray:
    """Clamp an (..., K) expression array to each control's valid range."""
    lo = np.array([-1.0 if c in SIGNED else 0.0 for c in CONTROLS], dtype=np.float32)
    return np.clip(expr, lo, 1.0).astype(np.float32)
