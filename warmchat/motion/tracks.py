"""Motion tracks measured from real face videos: what `warmchat.tools.extract_motion` writes and the library reads.

The library (CRHMG statistics, the lip-sync check) and the tools share these, so they live here, not in the tools.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from warmchat.controls import CONTROLS, INDEX, K
from warmchat.motion.features import FrameFeatures
from warmchat.paths import CHECKPOINTS

TRACKS_DIR = CHECKPOINTS / "motion_tracks"  # the committed real tracks (checkpoints/README.md)


@dataclass
class MotionTracks:
    """Per-frame motion of one face video (all arrays have T rows)."""

    fps: float
    pose: np.ndarray  # (T, 6) yaw, pitch, roll (rad), tx, ty (face heights), scale; relative to `reference`
    controls: np.ndarray  # (T, K) fitted rig controls, controls.CONTROLS order
    ear: np.ndarray  # (T, 2) eye aspect ratio of the subject's right and left eye
    mouth_open: np.ndarray  # (T,) inner-lip gap, fraction of face height
    found: np.ndarray  # (T,) bool: the tracker saw a face (other frames are interpolated)
    mel: np.ndarray  # (T, N_MELS) log-mel power of the soundtrack around each frame
    energy_db: np.ndarray  # (T,) dBFS
    f0: np.ndarray  # (T,) Hz, 0 unvoiced
    has_audio: bool
    reference: int  # index of the neutral frame the pose and controls are measured from
    reference_angles: np.ndarray  # (3,) yaw, pitch, roll (degrees) of the reference frame against the camera

    def __len__(self) -> int:
        return len(self.pose)

    @property
    def features(self) -> FrameFeatures:
        return FrameFeatures(self.mel, self.energy_db, self.f0)

    def save(self, path: Path) -> None:
        """Compressed .npz, float arrays as float16, with the control names (see `save_fields`)."""
        save_fields(self, path, control_names=np.array(CONTROLS))


def save_fields(track, path: str | Path, **extra: np.ndarray) -> None:
    """A track dataclass's fields (and `extra` arrays) as a compressed .npz; float arrays as float16 (measured
    tracks are far less precise than that)."""
    arrays = {}
    for f in fields(track):
        value = getattr(track, f.name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = value.astype(np.float16)
        arrays[f.name] = np.asarray(value)
    np.savez_compressed(path, **arrays, **extra)


def load_tracks(path: str | Path) -> MotionTracks:
    """Read tracks written by `MotionTracks.save`, with controls mapped by name onto the current control list."""
    with np.load(path) as data:
        values = {f.name: data[f.name] for f in fields(MotionTracks)}
        names = [str(n) for n in data["control_names"]]
    controls = np.zeros((len(values["pose"]), K), np.float32)
    for j, name in enumerate(names):
        if name in INDEX:
            controls[:, INDEX[name]] = values["controls"][:, j]
    values["controls"] = controls
    for key, value in values.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            values[key] = value.astype(np.float32)
    values["fps"] = float(values["fps"])
    values["has_audio"] = bool(values["has_audio"])
    values["reference"] = int(values["reference"])
    values["found"] = values["found"].astype(bool)
    return MotionTracks(**values)
