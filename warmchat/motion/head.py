"""Per-person random motion state (drawn once from the seed), blinks, and the head pose from CRHMG."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.motion.crhmg import FPS as MODEL_FPS
from warmchat.motion.crhmg import HeadState, generate_head

HORIZON_S = 4 * 3600.0  # spontaneous blinks are drawn this far ahead: longer than any conversation
BLINK_RANGE_S = (0.12, 0.45)  # drawn durations are kept within what eyes physically do


@dataclass
class PersonMotion:
    """One person's random motion parameters and generated head motion so far.

    Every frame's motion is a pure function of these, the seed and the timeline up to that frame, so a
    conversation rendered turn by turn (streaming) gets exactly the frames a single pass would; the head model's
    finished windows are cached here so each turn only generates new ones.
    """

    blink_starts: np.ndarray  # (N,) seconds: spontaneous blinks
    blink_lengths: np.ndarray  # (N,) seconds
    seed: int  # per-turn draws (reactions, phrase-end blinks) derive from (seed, turn)
    head: HeadState = field(repr=False)  # CRHMG state: noise seed and finished windows
    lines: dict = field(default_factory=dict, repr=False)  # turn index -> (first frame, (n, K) speaker controls)


def draw_person_motion(
    rng: np.random.Generator, blink_rate_per_min: float, blink_duration_s: tuple[float, float], head_variety: float
) -> PersonMotion:
    """Draw one person's motion parameters.

    Args:
        blink_duration_s: (median seconds, log-normal sigma) of blink durations, measured on real faces.
        head_variety: eps of CRHMG's controlled noise, 0..1.
    """
    mean_gap = 60.0 / max(blink_rate_per_min, 1e-3)
    n = int(HORIZON_S / mean_gap * 1.5) + 10
    # Inter-blink intervals of real people are right-skewed with a refractory floor: a shifted exponential.
    gaps = 0.6 + rng.exponential(max(mean_gap - 0.6, 0.1), n)
    starts = np.cumsum(gaps) - gaps[0] * 0.5
    median, sigma = blink_duration_s
    lengths = np.clip(median * np.exp(sigma * 0.5 * rng.standard_normal(n)), *BLINK_RANGE_S)
    seed = int(rng.integers(2**31))
    return PersonMotion(starts, lengths, seed, HeadState(seed=int(rng.integers(2**31)), eps=head_variety))


def blink_curve(starts: np.ndarray, lengths: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T,) lid closure 0..1 at times `t` for blinks (start, length): a fast close and a slower opening."""
    value = np.zeros(len(t))
    if len(t) == 0 or len(starts) == 0:
        return value
    first = np.searchsorted(starts + lengths, t[0])
    last = np.searchsorted(starts, t[-1], side="right")
    for start, length in zip(starts[first:last], lengths[first:last], strict=True):
        # Only the times within the blink (plus one either side) can be > 0: work on those alone.
        lo = max(int(np.searchsorted(t, start)) - 1, 0)
        hi = int(np.searchsorted(t, start + length)) + 1
        x = (t[lo:hi] - start) / length
        shape = np.where(x < 0.35, np.sin(x / 0.35 * np.pi / 2), np.cos((x - 0.35) / 0.65 * np.pi / 2))
        value[lo:hi] = np.maximum(value[lo:hi], np.where((x >= 0) & (x <= 1), shape, 0.0))
    return value


def blink_track(params: PersonMotion, events: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T, K) blink controls at times `t`: spontaneous blinks, some moved to `events` (phrase ends, seconds).

    Each event takes the place of the next spontaneous blink (people blink at phrase ends instead of at random,
    not in addition), so the rate stays that of real faces. Only events before a blink can remove it, so frames
    never depend on anything later than themselves.
    """
    starts, lengths = params.blink_starts, params.blink_lengths
    if len(events):
        keep = np.ones(len(starts), bool)
        for ev in np.sort(events):
            k = np.searchsorted(starts, ev)
            while k < len(starts) and not keep[k]:
                k += 1
            if k < len(starts):
                keep[k] = False
        starts, lengths = starts[keep], lengths[keep]
        starts = np.concatenate([starts, events])
        lengths = np.concatenate([lengths, np.full(len(events), float(np.median(params.blink_lengths)))])
        order = np.argsort(starts)
        starts, lengths = starts[order], lengths[order]
    out = np.zeros((len(t), K), np.float32)
    out[:, INDEX["eyeBlink_L"]] = out[:, INDEX["eyeBlink_R"]] = blink_curve(starts, lengths, t)
    return out


def head_pose(params: PersonMotion, cond: np.ndarray, fps: int, start: int, end: int, sway: float) -> np.ndarray:
    """(end - start, 6) head pose from CRHMG for video frames [start, end).

    Args:
        cond: (>= end, 3) conditions per video frame (speaking, arousal, voice level), final up to `end`.
        sway: scale of the motion (0 = still).
    """
    if fps == MODEL_FPS:
        pose = generate_head(params.head, cond, end, end)
    else:  # the model runs at 25 fps: resample the conditions in and the poses out
        n_model = int(np.ceil(end * MODEL_FPS / fps)) + 1
        t_model = np.arange(n_model) / MODEL_FPS
        t_video = np.arange(end) / fps
        cond_m = np.stack([np.interp(t_model, t_video, cond[:end, j]) for j in range(cond.shape[1])], 1)
        known = int(np.floor((end - 1) / fps * MODEL_FPS)) + 1  # model frames whose conditions are final
        raw = generate_head(params.head, cond_m, known, max(known, n_model))
        pose = np.stack([np.interp(t_video, t_model[: len(raw)], raw[:, j]) for j in range(6)], 1)
    pose = pose[start:end].copy()
    pose[:, :5] *= sway
    pose[:, 5] = 1.0 + (pose[:, 5] - 1.0) * sway
    return pose
