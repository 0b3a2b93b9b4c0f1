"""Head-motion statistics, and the real head-pose tracks (with role labels) they are compared against.

Shared by CRHMG training (`warmchat.tools.train_crhmg`), its calibration, the tests and `benchmarks/bench_motion.py`,
so "like the real data" means the same numbers everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmchat.controls import INDEX
from warmchat.motion.tracks import load_tracks
from warmchat.paths import checkpoint

AXES = ("yaw", "pitch", "roll")
SMOOTH_FRAMES = 1.0  # Gaussian sigma (frames at 25 fps) that removes the tracker's frame-to-frame jitter
AMPLITUDE_WINDOW_S = 5.0  # amplitude = standard deviation within windows of this length, averaged


@dataclass
class RealClip:
    """One real clip's head motion at the model's rate, with what the person was doing."""

    name: str
    pose: np.ndarray  # (T, 6) relative to the clip's median: yaw, pitch, roll (rad), tx, ty, scale - 1
    cond: np.ndarray  # (T, 3) speaking 0..1, arousal -1..1, voice level 0..1
    controls: np.ndarray  # (T, K) fitted rig controls
    ear: np.ndarray  # (T,) mean eye aspect ratio


def _resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    t_in = np.arange(len(x)) / fps_in
    t_out = np.arange(int(len(x) * fps_out / fps_in)) / fps_out
    flat = x.reshape(len(x), -1)
    return np.stack([np.interp(t_out, t_in, flat[:, j]) for j in range(flat.shape[1])], 1).reshape(
        (len(t_out), *x.shape[1:])
    )


def _rolling(x: np.ndarray, n: int, fn) -> np.ndarray:
    half = n // 2
    padded = np.pad(x, half, mode="edge")
    return np.array([fn(padded[i : i + n]) for i in range(len(x))])


def speaking_label(mouth_open: np.ndarray, fps: float) -> np.ndarray:
    """(T,) 0..1: how much the lips are moving like speech (rolling 1 s spread of the lip gap)."""
    spread = _rolling(mouth_open, int(fps), np.std)
    x = np.clip((spread - 0.008) / 0.012, 0, 1)
    return x * x * (3 - 2 * x)


def load_real_clips(directory: Path | None = None, fps: float = 25.0) -> list[RealClip]:
    """The committed real tracks, resampled to `fps`, smoothed, centred, and labelled with conditions.

    Conditions are read from the face itself because the clips' soundtracks are mostly music: speaking = the lips
    move like speech; voice level = how far the mouth is open while speaking; arousal = how much the upper face
    is activated (eyes widened, brows raised), ranked across all clips into -1..1.
    """
    from scipy.ndimage import gaussian_filter1d

    directory = Path(directory) if directory else checkpoint("motion_tracks")
    clips, activity = [], []
    for path in sorted(directory.glob("*.npz")):
        tr = load_tracks(path)
        pose = gaussian_filter1d(_resample(tr.pose.astype(np.float64), tr.fps, fps), SMOOTH_FRAMES, axis=0)
        pose[:, :5] -= np.median(pose[:, :5], axis=0)
        pose[:, 5] = pose[:, 5] / np.median(pose[:, 5]) - 1.0
        controls = _resample(tr.controls, tr.fps, fps)
        mouth = gaussian_filter1d(_resample(tr.mouth_open, tr.fps, fps), 1.0)
        speaking = speaking_label(mouth, fps)
        voice = np.clip(mouth / 0.08, 0, 1) * speaking
        upper = controls[:, [INDEX["eyeWide_L"], INDEX["eyeWide_R"], INDEX["browInnerUp"]]].mean(axis=1)
        act = _rolling(upper, int(2 * fps), np.mean)
        activity.append(act)
        cond = np.stack([speaking, np.zeros_like(speaking), voice], 1)
        ear = _resample(tr.ear.mean(axis=1), tr.fps, fps)
        clips.append(RealClip(path.stem, pose.astype(np.float32), cond.astype(np.float32), controls, ear))
    lo, hi = np.percentile(np.concatenate(activity), [5, 95])
    for clip, act in zip(clips, activity, strict=True):
        clip.cond[:, 1] = np.clip(2 * (act - lo) / max(hi - lo, 1e-6) - 1, -1, 1)
    return clips


def head_stats(pose: np.ndarray, fps: float = 25.0) -> dict[str, dict[str, float]]:
    """Per rotation axis, in degrees: amplitude (std within 5 s windows, averaged), mean |velocity| (deg/s) and
    mean |jerk| (deg/s^3)."""
    deg = np.degrees(np.asarray(pose, np.float64)[:, :3])
    n = max(int(AMPLITUDE_WINDOW_S * fps), 2)
    starts = range(0, max(len(deg) - n, 0) + 1, max(n // 2, 1))
    amp = np.mean([deg[s : s + n].std(axis=0) for s in starts], axis=0)
    vel = np.abs(np.diff(deg, axis=0)).mean(axis=0) * fps
    jerk = np.abs(np.diff(deg, 3, axis=0)).mean(axis=0) * fps**3
    return {
        a: {"amplitude_deg": float(amp[i]), "velocity_deg_s": float(vel[i]), "jerk_deg_s3": float(jerk[i])}
        for i, a in enumerate(AXES)
    }


def pooled_stats(poses: list[np.ndarray], fps: float = 25.0) -> dict[str, dict[str, float]]:
    """`head_stats` averaged over sequences, each weighted by its length."""
    weights = np.array([len(p) for p in poses], float)
    per = [head_stats(p, fps) for p in poses]
    return {a: {k: float(np.average([s[a][k] for s in per], weights=weights)) for k in per[0][a]} for a in AXES}


def role_segments(clips: list[RealClip], speaking: bool, min_frames: int = 50) -> list[np.ndarray]:
    """The stretches of real pose where the person was speaking (or not), at least `min_frames` long."""
    out = []
    for clip in clips:
        flag = (clip.cond[:, 0] > 0.5) == speaking
        edges = np.flatnonzero(np.diff(np.r_[0, flag.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= min_frames:
                out.append(clip.pose[a:b])
    return out
