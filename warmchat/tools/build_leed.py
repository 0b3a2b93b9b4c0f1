"""Build LEED, the Listener Emotion-Expression Dictionary (checkpoints/leed.json), and the blink statistics.

    python -m warmchat.tools.build_leed [--tracks checkpoints/motion_tracks] [--out checkpoints/leed.json]

Per emotion, three reaction clips from its FACS action-unit prototype (`motion.expressions.PROTOTYPES`) with the
head gesture that goes with it (nods for happy, a shake for angry, the head lowered for sad, pulled back for
surprised or afraid, ...), and one clip from the real tracks: the stretch of a real clip whose fitted controls
best match the prototype gives the timing of the reaction (its rise and fall) and its head motion. Blink rate and
durations are measured on the real tracks' eye aspect ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from warmchat.controls import INDEX
from warmchat.emotions import EMOTIONS
from warmchat.motion.expressions import PROTOTYPES
from warmchat.motion.stats import RealClip, load_real_clips
from warmchat.motion.tracks import TRACKS_DIR
from warmchat.paths import CHECKPOINTS

log = logging.getLogger(__name__)
FPS = 25
CLIP_S = 2.4  # length of a reaction clip taken from a real track
MAX_REAL_HEAD_DEG = 4.0  # head motion of a real clip is scaled down to at most this per axis

# Head gestures (degrees) per emotion: (pitch, yaw, roll) shapes built by `_gesture`.
GESTURES: dict[str, list[tuple[str, float]]] = {
    "neutral": [("nod", 2.5), ("tilt", 2.0), ("nod", 1.5)],
    "happy": [("nod", 4.0), ("double_nod", 3.0), ("tilt", 3.0)],
    "sad": [("lower", 5.0), ("lower_tilt", 4.0), ("slow_shake", 1.5)],
    "angry": [("shake", 3.0), ("lower", 3.0), ("chin_up", 2.5)],
    "surprised": [("back", 4.0), ("back_tilt", 3.0), ("double_nod", 2.0)],
    "fearful": [("back", 3.0), ("away", 4.0), ("back_tilt", 2.0)],
    "disgusted": [("away", 5.0), ("shake", 2.5), ("back", 2.5)],
    "contempt": [("tilt", 4.0), ("chin_up", 3.0), ("away", 3.0)],
}


def _envelope(n: int, rise: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 over n frames: smoothstep rise over `rise` and fall over `fall` of the length."""
    x = np.arange(n) / max(n - 1, 1)
    up = np.clip(x / rise, 0, 1)
    down = np.clip((1 - x) / fall, 0, 1)
    e = np.minimum(up, down)
    return e * e * (3 - 2 * e)


def _gesture(kind: str, amp: float, n: int) -> dict[str, np.ndarray]:
    """Head rotation curves (degrees) of a listener gesture over n frames."""
    t = np.arange(n) / FPS
    env = _envelope(n, 0.25, 0.35)
    zero = np.zeros(n)
    nod = amp * np.sin(np.clip(t / 0.8, 0, 1) * np.pi) ** 2
    shapes = {
        "nod": (nod, zero, zero),
        "double_nod": (amp * np.sin(np.clip(t / 1.2, 0, 1) * 2 * np.pi) ** 2, zero, zero),
        "tilt": (zero, zero, amp * env),
        "lower": (amp * env, zero, zero),
        "lower_tilt": (amp * env, zero, 0.6 * amp * env),
        "slow_shake": (0.5 * amp * env, amp * np.sin(2 * np.pi * 0.8 * t) * env, zero),
        "shake": (zero, amp * np.sin(2 * np.pi * 1.8 * t) * env, zero),
        "chin_up": (-amp * env, zero, zero),
        "back": (-amp * _envelope(n, 0.12, 0.5), zero, zero),
        "back_tilt": (-amp * env, zero, amp * 0.7 * env),
        "away": (-0.3 * amp * env, amp * env, zero),
    }
    pitch, yaw, roll = shapes[kind]
    return {"pitch": pitch, "yaw": yaw, "roll": roll}


def prototype_clips(emotion: str) -> list[dict]:
    """Three clips from the emotion's FACS prototype: a slow reaction, a gesture, and a brief flash."""
    proto = PROTOTYPES[emotion]
    if emotion == "neutral":  # attentive listening: a slight brow lift and the hint of a smile
        proto = {"browInnerUp": 0.25, "mouthSmile_L": 0.12, "mouthSmile_R": 0.12}
    out = []
    for k, (kind, amp) in enumerate(GESTURES[emotion]):
        seconds, level, rise, fall = [(2.8, 0.55, 0.3, 0.4), (2.2, 0.4, 0.2, 0.4), (1.4, 0.7, 0.15, 0.5)][k]
        n = int(seconds * FPS)
        env = _envelope(n, rise, fall)
        controls = {name: level * value * env for name, value in proto.items()}
        name = ["slow reaction", "gesture", "flash"][k]
        out.append(_entry(f"{emotion}: {name} ({kind})", f"FACS prototype of {emotion} + {kind} gesture", controls,
                          _gesture(kind, amp, n), n))  # fmt: skip
    return out


def _entry(name: str, source: str, controls: dict, head: dict, n: int) -> dict:
    return {
        "name": name,
        "source": source,
        "frames": n,
        "controls": {c: np.round(np.asarray(v, float), 3).tolist() for c, v in controls.items()},
        "head": {a: np.round(np.asarray(v, float), 2).tolist() for a, v in head.items()},
    }


def real_clip(emotion: str, clips: list[RealClip]) -> dict | None:
    """The real reaction that best shows `emotion`: time course and head motion from a track, mapped onto the
    prototype's controls (the fitted controls of real faces are too noisy to use one by one)."""
    proto = PROTOTYPES[emotion] if emotion != "neutral" else {"browInnerUp": 0.3}
    names = list(proto)
    weights = np.array([proto[c] for c in names])
    n = int(CLIP_S * FPS)
    best = None
    for clip in clips:
        if len(clip.controls) < n + 2:
            continue
        score = clip.controls[:, [INDEX[c] for c in names]] @ weights / weights.sum()
        base = np.median(score)
        for s in range(0, len(score) - n, 5):
            seg = score[s : s + n] - base
            # A reaction rises and falls within the window: its peak well above both ends.
            value = seg.max() - max(seg[0], seg[-1], 0.0)
            if best is None or value > best[0]:
                best = (value, clip, s, seg)
    if best is None or best[0] <= 0.05:
        return None
    _, clip, s, seg = best
    activation = np.clip((seg - min(seg[0], seg[-1])) / max(seg.max() - min(seg[0], seg[-1]), 1e-6), 0, 1)
    env = _envelope(n, 0.1, 0.1)
    controls = {c: 0.6 * proto[c] * activation * env for c in names}
    pose = np.degrees(clip.pose[s : s + n, :3] - clip.pose[s, :3]) * 0.6 * env[:, None]
    pose *= np.minimum(1.0, MAX_REAL_HEAD_DEG / np.maximum(np.abs(pose).max(axis=0), 1e-6))  # a reaction, not a turn
    head = {"yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2]}
    return _entry(
        f"{emotion}: real reaction", f"track {clip.name}.npz frames {s}-{s + n} at 25 fps", controls, head, n
    )


def blink_stats(clips: list[RealClip]) -> dict:
    """Blink rate (per minute) and duration (log-normal median, sigma) from eye-aspect-ratio dips in the tracks.

    Clips whose "blinks" come faster than 40 per minute show winks and eye rolls, not blinking, and are left out.
    """
    rates, durations = [], []
    for clip in clips:
        ear = clip.ear
        closed = ear < 0.6 * np.median(ear)
        starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
        minutes = len(ear) / FPS / 60
        if len(starts) / minutes > 40:
            continue
        rates.append(len(starts) / minutes)
        for s in starts:
            e = s
            while e < len(closed) and closed[e]:
                e += 1
            # The threshold catches the closed part; a blink's visible movement is about twice as long.
            durations.append(2 * (e - s) / FPS)
    d = np.log(np.array(durations))
    return {
        "rate_per_min": round(float(np.median(rates)), 1),
        "duration_s": [round(float(np.exp(np.median(d))), 3), round(float(np.std(d)), 3)],
        "measured_on": f"{len(rates)} clips, {len(durations)} blinks",
    }


def build(tracks: Path) -> dict:
    clips = load_real_clips(tracks)
    emotions = {}
    for emotion in EMOTIONS:
        entries = prototype_clips(emotion)
        real = real_clip(emotion, clips)
        if real is not None:
            entries.append(real)
        emotions[emotion] = entries
    return {
        "version": 1,
        "fps": FPS,
        "description": "Listener Emotion-Expression Dictionary: reaction clips per emotion (docs/motion.md)",
        "blink": blink_stats(clips),
        "emotions": emotions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warmchat.tools.build_leed", description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=Path, default=TRACKS_DIR)
    parser.add_argument("--out", type=Path, default=CHECKPOINTS / "leed.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = build(args.tracks)
    args.out.write_text(json.dumps(data, separators=(",", ":")))
    for emotion, entries in data["emotions"].items():
        log.info("%-9s %s", emotion, "; ".join(f"{e['name'].split(': ')[1]} [{e['source']}]" for e in entries))
    log.info("blinks: %s -> %s (%.0f kB)", data["blink"], args.out, args.out.stat().st_size / 1e3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
