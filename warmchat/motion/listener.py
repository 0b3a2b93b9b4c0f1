"""Listener motion: LEED, the Listener Emotion-Expression Dictionary, and backchannels timed to the speaker.

`checkpoints/leed.json` (built by `python -m warmchat.tools.build_leed`, documented in docs/motion.md) maps each of
the 8 emotions to reaction clips: timed curves of expression controls and head rotation at 25 fps, from FACS
action-unit prototypes and from real reactions found in the extracted tracks. While the other person speaks, a
listener reacts at the speaker's phrase ends (pauses of 120 ms or more, and the end of the line), where people
nod, smile or frown back, not at random moments. Each reaction's emotion is drawn from the listener's cumulative
emotion (the tree), its clip is drawn from that emotion's entries, and its strength scales with how strongly the
listener feels that emotion. All draws come from (the person's seed, the turn), so a turn's reactions never change
when later turns are added.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.emotions import EMOTIONS
from warmchat.loading import load_once
from warmchat.motion.speaker import phrase_end_times
from warmchat.paths import checkpoint
from warmchat.schema import Speaker, Timeline, Utterance

log = logging.getLogger(__name__)

REACT_PROB = 0.75  # chance of a backchannel at a phrase end inside a line (the line's end always gets one)
MIN_GAP_S = 1.2  # reactions at least this far apart
LEAD_S = 0.15  # reactions start a little after the pause begins: a response, not an anticipation


@dataclass
class ReactionClip:
    name: str
    emotion: str
    source: str  # "FACS prototype ..." or "track dN.npz frames a-b"
    controls: np.ndarray  # (T, K) at 25 fps
    head: np.ndarray  # (T, 3) yaw, pitch, roll offsets (rad)


@dataclass
class LEED:
    fps: int
    clips: dict[str, list[ReactionClip]]  # emotion -> clips
    blink_rate_per_min: float  # measured on the real tracks
    blink_duration_s: tuple[float, float]  # (median, spread as a log-normal sigma)


@load_once
def load_leed(path: str | None = None) -> LEED:
    """The dictionary from `checkpoints/leed.json` (or `path`)."""
    source = Path(path) if path else checkpoint("leed.json")
    if not source.is_file():
        raise FileNotFoundError(f"LEED not found at {source}; build it with `python -m warmchat.tools.build_leed`")
    data = json.loads(source.read_text())
    clips: dict[str, list[ReactionClip]] = {}
    for emotion, entries in data["emotions"].items():
        for e in entries:
            n = int(e["frames"])
            controls = np.zeros((n, K), np.float32)
            for name, values in e["controls"].items():
                controls[:, INDEX[name]] = values
            head = np.zeros((n, 3), np.float32)
            for j, axis in enumerate(("yaw", "pitch", "roll")):
                if axis in e["head"]:
                    head[:, j] = np.radians(e["head"][axis])
            clips.setdefault(emotion, []).append(ReactionClip(e["name"], emotion, e["source"], controls, head))
    missing = [e for e in EMOTIONS if len(clips.get(e, [])) < 3]
    if missing:
        raise ValueError(f"{source}: emotions with fewer than 3 reaction clips: {missing}; rebuild it")
    blink = data["blink"]
    log.info("loaded LEED (%d clips) from %s", sum(len(v) for v in clips.values()), source)
    return LEED(int(data["fps"]), clips, float(blink["rate_per_min"]), tuple(blink["duration_s"]))


@dataclass
class Reaction:
    start: int  # frame
    clip: ReactionClip
    gain: float


def plan_reactions(
    listener: Speaker,
    timeline: Timeline,
    utterances: list[Utterance],
    emotion_curve: np.ndarray,
    seed: int,
    leed: LEED,
) -> list[Reaction]:
    """Backchannels of `listener` at the other person's phrase ends, over the whole timeline so far."""
    fps = timeline.fps
    out: list[Reaction] = []
    for seg in timeline.segments:
        if seg.speaker == listener:
            continue
        rng = np.random.default_rng([seed, seg.turn_index])
        utt = utterances[seg.turn_index]
        ends = phrase_end_times(utt)
        last = -np.inf
        for k, t_end in enumerate(ends):
            t = seg.start + t_end + LEAD_S
            final = k == len(ends) - 1
            draw = rng.random(3)  # drawn for every phrase end, so one choice never shifts the others
            if t - last < MIN_GAP_S or (not final and draw[0] > REACT_PROB):
                continue
            f = int(round(t * fps))
            feel = emotion_curve[min(f, len(emotion_curve) - 1)].astype(np.float64)
            feel = feel / feel.sum()
            emotion = EMOTIONS[int(np.searchsorted(np.cumsum(feel), draw[1] * 0.999999))]
            choices = leed.clips[emotion]
            clip = choices[int(draw[2] * len(choices))]
            # Strength: how much of the listener's feeling this emotion is, lifted for the line's closing reaction.
            gain = float(np.clip(0.45 + 0.9 * feel[EMOTIONS.index(emotion)], 0.4, 1.2)) * (1.0 if final else 0.8)
            out.append(Reaction(f, clip, gain))
            last = t
    return out


def reaction_tracks(reactions: list[Reaction], start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """(end - start, K) expression and (end - start, 3) head rotation of the reactions within [start, end)."""
    expr = np.zeros((end - start, K), np.float32)
    head = np.zeros((end - start, 3), np.float32)
    for r in reactions:
        a, b = max(r.start, start), min(r.start + len(r.clip.controls), end)
        if b <= a:
            continue
        expr[a - start : b - start] += r.gain * r.clip.controls[a - r.start : b - r.start]
        head[a - start : b - start] += r.gain * r.clip.head[a - r.start : b - r.start]
    return expr, head
