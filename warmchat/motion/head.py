"""Head motion, blinks and listener nods: seeded, smooth, bounded, and computable for any frame range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.motion.speaker import frame_energy
from warmchat.schema import Speaker, Timeline

# Amplitude (radians / face heights) of slow head sway per axis: yaw, pitch, roll, tx, ty, scale.
SWAY = np.array([0.05, 0.035, 0.025, 0.012, 0.008, 0.01])
N_COMPONENTS = 4  # sinusoids per axis
HORIZON_S = 4 * 3600.0  # blinks are drawn this far ahead: longer than any conversation


@dataclass
class PersonMotion:
    """One person's random motion parameters, drawn once from the seed.

    Every frame's motion is a pure function of these and the timeline, so a conversation can be rendered turn
    by turn (streaming) and still give exactly the frames a single pass would.
    """

    freqs: np.ndarray  # (6, C) Hz, head sway sinusoids per pose axis
    phases: np.ndarray  # (6, C) radians
    amps: np.ndarray  # (6, C) relative amplitudes
    blink_starts: np.ndarray  # (N,) seconds
    blink_lengths: np.ndarray  # (N,) seconds
    nod_seed: int


def draw_person_motion(rng: np.random.Generator, blink_rate_per_min: float) -> PersonMotion:
    freqs = rng.uniform(0.08, 0.6, (6, N_COMPONENTS))
    phases = rng.uniform(0, 2 * np.pi, (6, N_COMPONENTS))
    amps = rng.uniform(0.5, 1.0, (6, N_COMPONENTS)) / freqs**0.5  # slower components move further, as heads do
    mean_gap = 60.0 / blink_rate_per_min
    n = int(HORIZON_S / mean_gap * 1.5) + 10
    gaps = np.maximum(rng.exponential(mean_gap, n), 0.6)  # no two blinks closer than 0.6 s
    starts = np.cumsum(gaps) - gaps[0] * 0.5
    return PersonMotion(
        freqs=freqs,
        phases=phases,
        amps=amps,
        blink_starts=starts,
        blink_lengths=rng.uniform(0.2, 0.3, n),
        nod_seed=int(rng.integers(2**31)),
    )


def head_motion(params: PersonMotion, t: np.ndarray, speaking: np.ndarray, sway: float = 1.0) -> np.ndarray:
    """(T, 6) head pose at times `t` (seconds); speakers move more than listeners."""
    wave = params.amps[:, :, None] * np.sin(2 * np.pi * params.freqs[:, :, None] * t + params.phases[:, :, None])
    unit = wave.sum(axis=1) / np.sqrt((params.amps**2).sum(axis=1) / 2)[:, None]  # (6, T) unit RMS
    pose = (SWAY[:, None] * unit * (0.6 + 0.8 * speaking) * sway).T
    pose[:, 5] += 1.0
    return pose


def blink_track(params: PersonMotion, t: np.ndarray) -> np.ndarray:
    """(T, K) blink controls at times `t`: each blink a fast close and a slower open (~0.25 s)."""
    out = np.zeros((len(t), K), dtype=np.float32)
    if len(t) == 0:
        return out
    first = np.searchsorted(params.blink_starts + params.blink_lengths, t[0])
    last = np.searchsorted(params.blink_starts, t[-1], side="right")
    value = np.zeros(len(t))
    for start, length in zip(params.blink_starts[first:last], params.blink_lengths[first:last], strict=True):
        x = (t - start) / length
        shape = np.where(x < 0.35, x / 0.35, 1 - (x - 0.35) / 0.65)  # close fast, open slower
        value = np.maximum(value, np.where((x >= 0) & (x <= 1), shape, 0.0))
    out[:, INDEX["eyeBlink_L"]] = out[:, INDEX["eyeBlink_R"]] = value
    return out


def listener_nods(person: Speaker, timeline: Timeline, params: PersonMotion) -> np.ndarray:
    """(T,) pitch offsets (radians): small nods while the other person speaks, at their pauses and line ends."""
    n, fps = timeline.n_frames, timeline.fps
    pitch = np.zeros(n)
    db = frame_energy(timeline.audio, timeline.sample_rate, fps, n)
    nod_len = int(0.7 * fps)
    shape = np.sin(np.linspace(0, np.pi, nod_len)) ** 2 * 0.07
    for seg in timeline.segments:
        if seg.speaker == person:
            continue
        rng = np.random.default_rng([params.nod_seed, seg.turn_index])  # the same nods however far we render
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
