"""Motion: per person, per frame expression controls and head pose."""

from __future__ import annotations

import numpy as np

from warmchat.config import MotionConfig
from warmchat.controls import clip_expression
from warmchat.motion.expressions import emotion_expression
from warmchat.motion.head import PersonMotion, blink_track, draw_person_motion, head_motion, listener_nods
from warmchat.motion.speaker import speaking_weight, speech_mouth
from warmchat.schema import MotionTrack, Speaker, Timeline, Utterance

__all__ = ["PersonMotion", "build_motion", "draw_person_motion"]


def build_motion(
    person: Speaker,
    timeline: Timeline,
    utterances: list[Utterance],
    emotion_curve: np.ndarray,
    config: MotionConfig,
    params: PersonMotion,
    start_frame: int = 0,
    end_frame: int | None = None,
) -> MotionTrack:
    """Motion of one person for frames [start_frame, end_frame) of the conversation so far.

    Frames already final (those before the end of the last voiced turn) never change when later turns are
    added, so a conversation can be rendered turn by turn.

    Args:
        emotion_curve: (T, 8) this person's cumulative emotion per frame, from the tree.
        params: this person's random motion parameters (`draw_person_motion`, seeded).
    """
    end = timeline.n_frames if end_frame is None else end_frame
    window = slice(start_frame, end)
    t = np.arange(start_frame, end) / timeline.fps
    speaking = speaking_weight(person, timeline, config.transition_s)[window]  # 1 while speaking, eased between
    mouth = speech_mouth(person, timeline, utterances, emotion_curve)[window]  # zero outside own speech
    expression = emotion_expression(emotion_curve[window]) + mouth + blink_track(params, t)
    pose = head_motion(params, t, speaking, config.head_sway)
    pose[:, 1] += listener_nods(person, timeline, params)[window]  # pitch: nods at the other person's pauses
    return MotionTrack(expression=clip_expression(expression), pose=pose.astype(np.float32), fps=timeline.fps)
