"""Motion: per person, per frame expression controls and head pose (docs/motion.md).

    speaker : own lines -> visemes with coarticulation, loudness-driven jaw, accent brows, phrase-end blinks
    listener: LEED reaction clips at the other person's phrase ends, chosen and scaled by the tree's emotion
    head    : CRHMG, conditioned on role, arousal and voice level
    both    : the emotion's FACS prototype expression and spontaneous blinks at the rate of real faces

Speaker and listener parts are blended by an eased speaking weight over `MotionConfig.transition_s`, so nothing pops
when the turn passes.
"""

from __future__ import annotations

import numpy as np

from warmchat.config import MotionConfig
from warmchat.controls import INDEX, K, clip_expression
from warmchat.emotions import EMOTIONS, VALENCE_AROUSAL
from warmchat.motion.expressions import emotion_expression
from warmchat.motion.head import PersonMotion, blink_track, head_pose
from warmchat.motion.head import draw_person_motion as _draw
from warmchat.motion.listener import load_leed, plan_reactions, reaction_tracks
from warmchat.motion.speaker import has_phonemes, line_mouth, phrase_end_times, segment_frames, speaking_weight
from warmchat.schema import MotionTrack, Speaker, Timeline, Utterance

__all__ = ["PersonMotion", "build_motion", "draw_person_motion"]

AROUSAL = np.array([VALENCE_AROUSAL[e][1] for e in EMOTIONS], np.float32)
PHRASE_BLINK_PROB = 0.6  # chance of a blink at each of the speaker's phrase ends
REACTION_FADE_S = 0.5  # how long a listener's reaction takes to fade when the listener starts speaking
HEAD_ROLE_S = 0.8  # the role condition of the head model ramps over this long
VOICE_JAW = 0.45  # jawOpen that counts as a fully open, loud voice for the head model's condition


def draw_person_motion(rng: np.random.Generator, config: MotionConfig) -> PersonMotion:
    """One person's random motion parameters, drawn once per conversation from the seed."""
    leed = load_leed()
    rate = config.blink_rate_per_min or leed.blink_rate_per_min
    return _draw(rng, rate, leed.blink_duration_s, config.head_variety)


def _line_tracks(person: Speaker, timeline: Timeline, utterances, emotion_curve, params: PersonMotion) -> dict:
    """{turn index: (first frame, (n, K) controls)} of this person's lines, computed once each and cached."""
    cache = params.lines
    lipsync = None
    for seg in timeline.segments:
        if seg.speaker != person or seg.turn_index in cache:
            continue
        utt = utterances[seg.turn_index]
        if not has_phonemes(utt) and lipsync is None:
            from warmchat.motion.lipsync import load_lipsync

            lipsync = load_lipsync()
        f0, f1 = segment_frames(seg, timeline.fps)
        emotion = emotion_curve[f0 : max(f1, f0 + 1)].mean(axis=0)
        cache[seg.turn_index] = line_mouth(seg, utt, timeline, emotion, lipsync)
    return cache


def _blink_events(person: Speaker, timeline: Timeline, utterances, params: PersonMotion) -> np.ndarray:
    """Seconds at which the speaker blinks at the end of a phrase (seeded per turn)."""
    events = []
    for seg in timeline.segments:
        if seg.speaker != person:
            continue
        ends = phrase_end_times(utterances[seg.turn_index])
        draws = np.random.default_rng([params.seed, seg.turn_index, 1]).random(len(ends))
        events += [seg.start + t + 0.05 for t, u in zip(ends, draws, strict=True) if u < PHRASE_BLINK_PROB]
    return np.array(sorted(events))


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

    Frame f depends only on the seed and on the conversation up to f (the turn being spoken at f and those
    before), so a conversation can be rendered turn by turn and gives exactly the frames of a single pass.

    Args:
        emotion_curve: (T, 8) this person's cumulative emotion per frame, from the tree.
        params: this person's motion state (`draw_person_motion`); holds caches, so keep one per person and
            conversation.
    """
    fps = timeline.fps
    end = timeline.n_frames if end_frame is None else end_frame
    speaking = speaking_weight(person, timeline, config.transition_s)[:end]  # 1 while speaking, eased between

    # Speaker: this person's own lines, each computed once from its own audio and timings.
    own = np.zeros((end, K), np.float32)
    for a, track in _line_tracks(person, timeline, utterances, emotion_curve, params).values():
        lo, hi = max(a, 0), min(a + len(track), end)
        if hi > lo:
            own[lo:hi] += track[lo - a : hi - a]

    # Listener: reactions at the other person's phrase ends, faded out while this person speaks.
    leed = load_leed()
    reactions = plan_reactions(person, timeline, utterances, emotion_curve, params.seed, leed)
    react_expr, react_head = reaction_tracks(reactions, start_frame, end)
    # Reactions still running when this person starts to speak fade over 0.5 s: a nod cut short in 200 ms would pop.
    fade = speaking_weight(person, timeline, config.transition_s, rise_s=REACTION_FADE_S)[start_frame:end]
    listening = (1.0 - fade)[:, None]

    t = np.arange(start_frame, end) / fps
    events = _blink_events(person, timeline, utterances, params)
    expression = (
        emotion_expression(emotion_curve[start_frame:end])
        + own[start_frame:end]
        + react_expr * listening
        + blink_track(params, events, t)
    )

    # Head: CRHMG conditioned on role, arousal and voice level (scaled by head_sway), plus the reactions' gestures.
    voice = np.clip(own[:, INDEX["jawOpen"]] / VOICE_JAW, 0, 1) * speaking
    arousal = (emotion_curve[:end] * AROUSAL).sum(axis=1)  # not a BLAS product: rows must not affect each other
    # The head model learnt roles from real clips, where they change over about a second: give it that pace.
    role = speaking_weight(person, timeline, config.transition_s, HEAD_ROLE_S, HEAD_ROLE_S)[:end]
    cond = np.stack([role, arousal, voice], 1).astype(np.float32)
    pose = head_pose(params, cond, fps, start_frame, end, config.head_sway)
    pose[:, :3] += react_head * listening
    return MotionTrack(expression=clip_expression(expression), pose=pose.astype(np.float32), fps=fps)
