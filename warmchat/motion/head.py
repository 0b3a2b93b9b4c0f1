"""Head motion, blinks and listener nods: seeded, smooth and bounded."""

from __future__ import annotations

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.motion.speaker import frame_energy
from warmchat.schema import Speaker, Timeline

# Amplitude (radians / face heights) of slow head sway per axis: yaw, pitch, roll, tx, ty, scale.
SWAY = np.array([0.05, 0.035, 0.025, 0.012, 0.008, 0.01])


def _smooth_noise(n: int, fps: int, rng: np.random.Generator, n_components: int = 4) -> np.ndarray:
    """(T,) sum of random sinusoids between 0.08 and 0.6 Hz, unit RMS: smooth, never drifting."""
    t = np.arange(n) / fps
    freqs = rng.uniform(0.08, 0.6, n_components)
    phases = rng.uniform(0, 2 * np.pi, n_components)
    amps = rng.uniform(0.5, 1.0, n_components) / freqs**0.5  # slower components move further, as heads do
    x = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)
    return x / (np.sqrt(np.mean(x**2)) + 1e-9)


def head_motion(n: int, fps: int, speaking: np.ndarray, rng: np.random.Generator, sway: float = 1.0) -> np.ndarray:
    """(T, 6) head pose; speakers move more than listeners."""
    pose = np.zeros((n, 6))
    gain = (0.6 + 0.8 * speaking) * sway
    for axis in range(6):
        pose[:, axis] = SWAY[axis] * _smooth_noise(n, fps, rng) * gain
    pose[:, 5] += 1.0
    return pose


def blink_track(n: int, fps: int, rate_per_min: float, rng: np.random.Generator) -> np.ndarray:
    """(T, K) blink controls: Poisson-timed blinks, each a fast close and slower open (~0.25 s)."""
    out = np.zeros((n, K), dtype=np.float32)
    t = rng.exponential(60.0 / rate_per_min) * 0.5
    duration = n / fps
    while t < duration:
        length = rng.uniform(0.2, 0.3)
        f0 = int(t * fps)
        frames = max(int(length * fps), 3)
        x = np.linspace(0, 1, frames)
        shape = np.where(x < 0.35, x / 0.35, 1 - (x - 0.35) / 0.65)  # close fast, open slower
        f1 = min(f0 + frames, n)
        for ctrl in ("eyeBlink_L", "eyeBlink_R"):
            out[f0:f1, INDEX[ctrl]] = np.maximum(out[f0:f1, INDEX[ctrl]], shape[: f1 - f0])
        t += max(rng.exponential(60.0 / rate_per_min), 0.6)
    return out


def listener_nods(person: Speaker, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
    """(T,) pitch offsets (radians): small nods while the other person speaks, at their pauses and line ends."""
    n, fps = timeline.n_frames, timeline.fps
    pitch = np.zeros(n)
    db = frame_energy(timeline.audio, timeline.sample_rate, fps, n)
    nod_len = int(0.7 * fps)
    shape = np.sin(np.linspace(0, np.pi, nod_len)) ** 2 * 0.07
    for seg in timeline.segments:
        if seg.speaker == person:
            continue
        f0, f1 = int(seg.start * fps), min(int(seg.end * fps), n)
        quiet = db[f0:f1] < np.percentile(db[f0:f1], 95) - 25 if f1 > f0 else np.zeros(0, bool)
        # Pause starts (quiet after sound) inside the line, plus the line's end.
        starts = [f0 + i for i in range(1, len(quiet)) if quiet[i] and not quiet[i - 1]] + [f1]
        last = -nod_len
        for s in starts:
            if s - last < nod_len or rng.random() > 0.7:
                continue
            e = min(s + nod_len, n)
            pitch[s:e] += shape[: e - s] * rng.uniform(0.6, 1.2)
            last = s
    return pitch
