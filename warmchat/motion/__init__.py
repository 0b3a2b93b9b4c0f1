"""Motion: per person, per frame expression controls and head pose for the whole conversation."""

from __future__ import annotations

import numpy as np

from warmchat.config import MotionConfig
from warmchat.controls import clip_expression
from warmchat.motion.expressions import emotion_expression
from warmchat.motion.head import blink_track, head_motion, listener_nods
from warmchat.motion.speaker import speaking_weight, speech_mouth
from warmchat.schema import MotionTrack, Speaker, Timeline, Utterance


def build_motion(
    person: Speaker,
    timeline: Timeline,
    utterances: list[Utterance],
    emotion_curve: np.ndarray,
    config: MotionConfig,
    rng: np.random.Generator,
) -> MotionTrack:
    """Motion of one person through the whole conversation.

    Args:
        emotion_curve: (T, 8) this person's cumulative emotion per frame, from the tree.
        rng: derived from the user's seed, one per person.
    """
    n = timeline.n_frames
    speaking = speaking_weight(person, timeline, config.transition_s)  # (T,) 1 while speaking, eased between
    mouth = speech_mouth(person, timeline, utterances, emotion_curve)  # (T, K) zero outside own speech
    expression = (
        emotion_expression(emotion_curve) + mouth + blink_track(n, timeline.fps, config.blink_rate_per_min, rng)
    )
    pose = head_motion(n, timeline.fps, speaking, rng, config.head_sway)
    pose[:, 1] += listener_nods(person, timeline, rng)  # pitch: nods at the other person's pauses
    return MotionTrack(expression=clip_expression(expression), pose=pose.astype(np.float32), fps=timeline.fps)
