"""Motion: lips that follow the words, listeners who react at the speaker's pauses with the right feeling, heads that
move like the real tracks, smooth role switches, and exactly the same frames whether rendered at once or turn by
turn."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from warmchat import motion
from warmchat.config import MotionConfig, TreeConfig
from warmchat.controls import INDEX
from warmchat.emotions import EMOTIONS
from warmchat.motion import crhmg, features
from warmchat.motion.head import HeadState
from warmchat.motion.listener import load_leed, plan_reactions
from warmchat.motion.speaker import (
    CLOSING_JAW,
    EDGE_S,
    LEAD_S,
    STEP_S,
    VISEMES,
    coarticulate,
    phrase_end_times,
    viseme_class,
)
from warmchat.motion.stats import head_stats, load_real_clips, pooled_stats, role_segments
from warmchat.schema import Turn
from warmchat.speech import PAUSE, voice_turn
from warmchat.timeline import TimelineBuilder
from warmchat.tree import InteractiveTalkingTree

TURNS = [
    Turn("A", "Hello there! It is so good to see you again, my friend.", "happy", 0.9),
    Turn("B", "I missed you too, but I have some bad news about my old job.", "sad", 0.9),
    Turn("A", "Oh no. Please tell me what happened; maybe we can fix it.", "surprised", 0.8),
]
VOICES = {"A": "hibari", "B": "piper-joe"}


@dataclass
class Conversation:
    turns: list
    utterances: list
    timelines: list  # the clock after each turn (the last one finished with its tail)
    curves: list  # per timeline: {"A": (T, 8), "B": (T, 8)}

    @property
    def clock(self):
        return self.timelines[-1]


def _conversation(turns: list[Turn], priors=("happy", "neutral")) -> Conversation:
    utts = [voice_turn(t, i, VOICES[t.speaker]) for i, t in enumerate(turns)]
    builder = TimelineBuilder(24000, 25)
    tree = InteractiveTalkingTree("catching up", *priors, TreeConfig())
    timelines, curves = [], []
    for i, (turn, utt) in enumerate(zip(turns, utts, strict=True)):
        builder.add(turn, utt)
        tree.add_turn(turn)
        clock = builder.finish() if i == len(turns) - 1 else builder.timeline()
        tree.set_times(clock)
        timelines.append(clock)
        curves.append(tree.emotion_curves(clock))
    return Conversation(turns, utts, timelines, curves)


def _params(seed: int = 0, config: MotionConfig | None = None) -> dict:
    rngs = np.random.default_rng(seed).spawn(2)
    return {p: motion.draw_person_motion(rngs[i], config or MotionConfig()) for i, p in enumerate("AB")}


@pytest.fixture(scope="module")
def talk() -> Conversation:
    return _conversation(TURNS)


@pytest.fixture(scope="module")
def tracks(talk) -> dict:
    params = _params()
    return {
        p: motion.build_motion(p, talk.clock, talk.utterances, talk.curves[-1][p], MotionConfig(), params[p])
        for p in "AB"
    }


def _frames_of(talk, turn: int, classes: set[str]) -> list[int]:
    """Frames where the mouth shapes these phonemes: LEAD_S before they sound (anticipatory coarticulation)."""
    seg, fps = talk.clock.segments[turn], talk.clock.fps
    return [
        int(round(seg.start * fps)) + int(round(((a + b) / 2 - LEAD_S) * fps))
        for ph, a, b in talk.utterances[turn].phonemes
        if viseme_class(ph) in classes and b - a >= 0.04
    ]


def test_turn_by_turn_gives_exactly_the_frames_of_one_pass(talk, tracks):
    params = _params()
    done, parts = 0, {"A": [], "B": []}
    for i, clock in enumerate(talk.timelines):
        last = i == len(talk.timelines) - 1
        end = clock.n_frames if last else min(int(np.ceil(clock.segments[i].end * clock.fps)), clock.n_frames)
        for p in "AB":
            part = motion.build_motion(
                p, clock, talk.utterances, talk.curves[i][p], MotionConfig(), params[p], done, end
            )
            parts[p].append(part)
        done = end
    for p in "AB":
        np.testing.assert_array_equal(np.concatenate([m.expression for m in parts[p]]), tracks[p].expression)
        np.testing.assert_array_equal(np.concatenate([m.pose for m in parts[p]]), tracks[p].pose)


def test_lips_close_for_p_b_m_and_in_silence(talk, tracks):
    jaw = tracks["A"].expression[:, INDEX["jawOpen"]]
    closures = _frames_of(talk, 0, {"bilabial"}) + _frames_of(talk, 2, {"bilabial"})
    assert len(closures) >= 3
    assert jaw[closures].max() <= 0.02
    assert tracks["A"].expression[closures, INDEX["mouthFunnel"]].max() <= 0.02
    # Silence: before the first line, in B's turn, and in A's own pauses of 0.2 s or more.
    clock, fps = talk.clock, talk.clock.fps
    silent = list(range(0, int(clock.segments[0].start * fps) - 3))
    silent += list(range(int(clock.segments[1].start * fps) + 3, int(clock.segments[1].end * fps) - 3))
    for turn in (0, 2):
        seg = clock.segments[turn]
        silent += [
            int(round((seg.start + (a + b) / 2 - LEAD_S) * fps))
            for ph, a, b in talk.utterances[turn].phonemes
            if ph == PAUSE and b - a >= 0.2 and 0 < a < seg.end - seg.start - 0.2
        ]
    assert jaw[silent].max() <= 0.03
    spoken = jaw[int(clock.segments[0].start * fps) : int(clock.segments[0].end * fps)]
    assert spoken.max() > 0.25 and np.percentile(spoken, 75) > 0.1  # and it does open while talking


def _coarticulate_all_pairs(phonemes, duration, n_frames, fps):
    """The dominance model over every (time step, phoneme) pair at once: the reference for `coarticulate`."""
    segs = [(PAUSE, -EDGE_S, 0.0), *phonemes, (PAUSE, duration, duration + EDGE_S)]
    classes = [VISEMES[viseme_class(p)] for p, _, _ in segs]
    centers = np.array([(a + b) / 2 for _, a, b in segs])
    halves = np.array([max((b - a) / 2, 0.01) for _, a, b in segs])
    targets = np.array([v.target for v in classes], np.float32)
    dom = np.array([v.dominance for v in classes], np.float32)
    rates = np.array([v.rate for v in classes], np.float32)
    t = np.arange(-0.5 / fps, n_frames / fps + 0.5 / fps, STEP_S)
    dist = np.maximum(np.abs(t[:, None] - centers[None]) - halves[None], 0.0)  # (T100, S)
    weight = np.exp(-rates[None] * dist)[:, :, None] * dom[None]  # (T100, S, 6)
    fine = (weight * targets[None]).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-6)
    frame_of = np.clip(np.round(t * fps).astype(int), 0, n_frames - 1)
    count = np.bincount(frame_of, minlength=n_frames)
    out = np.stack([np.bincount(frame_of, weights=fine[:, j], minlength=n_frames) for j in range(6)], 1)
    out /= np.maximum(count, 1)[:, None]
    for (_, a, b), v in zip(segs, classes, strict=True):
        if v is VISEMES["bilabial"] and 0 <= (a + b) / 2 < duration:
            f = min(int(round((a + b) / 2 * fps)), n_frames - 1)
            out[max(f - 1, 0) : f + 2, 0] = np.minimum(out[max(f - 1, 0) : f + 2, 0], CLOSING_JAW)
            out[f, 0] = out[f, 1] = 0.0
            out[f, 5] = max(out[f, 5], 0.35)
    return out.astype(np.float32)


def _joined_line(utterances, repeat: int) -> tuple[list, float]:
    """One long line's (phonemes, duration): the real lines' timings one after another, 0.3 s pauses between."""
    phonemes, t = [], 0.0
    for utt in [u for _ in range(repeat) for u in utterances]:
        if phonemes:
            phonemes.append((PAUSE, t, t + 0.3))
            t += 0.3
        phonemes += [(p, t + a, t + b) for p, a, b in utt.phonemes]
        t += utt.duration
    return phonemes, t


@pytest.mark.parametrize("fps", [25, 30])
def test_windowed_coarticulation_equals_the_all_pairs_model(talk, fps):
    lines = [(u.phonemes, u.duration) for u in talk.utterances] + [_joined_line(talk.utterances, 3)]  # 3 s .. 35 s
    for phonemes, duration in lines:
        n = int(round(duration * fps))
        np.testing.assert_allclose(
            coarticulate(phonemes, duration, n, fps), _coarticulate_all_pairs(phonemes, duration, n, fps), atol=1e-6
        )


def _synthetic_line(words: int, seed: int = 0) -> tuple[list, float]:
    """(phonemes, duration) of a made-up line: words of 2-5 phonemes of 50-150 ms, a pause every 8 words."""
    rng = np.random.default_rng(seed)
    inventory = ["p", "a", "t", "ɪ", "m", "oʊ", "s", "ə", "k", "u", "w", "ɛ", "n", "f", "ɹ", "i", "tʃ", "æ"]
    phonemes, t = [], 0.0
    for w in range(words):
        for _ in range(rng.integers(2, 6)):
            d = float(rng.uniform(0.05, 0.15))
            phonemes.append((inventory[rng.integers(len(inventory))], t, t + d))
            t += d
        if w % 8 == 7:
            phonemes.append((PAUSE, t, t + 0.25))
            t += 0.25
    return phonemes, t


def test_coarticulation_of_a_very_long_line_takes_bounded_memory_and_time():
    phonemes, duration = _synthetic_line(2000)  # ~12 minutes of speech in one line
    n = int(round(duration * 25))
    tracemalloc.start()
    start = time.perf_counter()
    mouth = coarticulate(phonemes, duration, n, 25)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert mouth.shape == (n, 6) and np.isfinite(mouth).all()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"  # all pairs at once would take ~35 GB
    assert seconds < 20
    # Still the model: its first minute is what the same minute gives as a line of its own.
    head = [p for p in phonemes if p[2] <= 60.0]
    cut = head[-1][2]
    alone = coarticulate(head, cut, int(cut * 25), 25)
    k = int((cut - 3.0) * 25)  # the last 3 s see what follows
    np.testing.assert_allclose(mouth[:k], alone[:k], atol=1e-6)


def test_audio_features_in_blocks_are_those_of_the_whole_line(talk, monkeypatch):
    utt = talk.utterances[1]
    whole = features.frame_features(utt.audio, utt.sample_rate, 25, int(utt.duration * 25))
    monkeypatch.setattr(features, "ANALYSIS_BLOCK", 37)  # many blocks, none a multiple of anything
    blocks = features.frame_features(utt.audio, utt.sample_rate, 25, int(utt.duration * 25))
    for name in ("mel", "energy_db", "f0"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))
    assert (whole.f0 > 0).mean() > 0.3  # a voice with pitch, so F0 was compared where it matters


def test_rounded_and_spread_vowels_shape_the_lips(talk, tracks):
    e = tracks["A"].expression
    rounded = _frames_of(talk, 0, {"close_round", "w"}) + _frames_of(talk, 2, {"close_round", "w"})
    spread = _frames_of(talk, 0, {"front"}) + _frames_of(talk, 2, {"front"})
    assert e[rounded, INDEX["mouthPucker"]].mean() > e[spread, INDEX["mouthPucker"]].mean() + 0.2
    assert e[spread, INDEX["mouthStretch_L"]].mean() > e[rounded, INDEX["mouthStretch_L"]].mean() + 0.1


def test_mouth_is_smooth_but_keeps_its_syllables(talk, tracks):
    seg = talk.clock.segments[0]
    jaw = tracks["A"].expression[int(seg.start * 25) : int(seg.end * 25), INDEX["jawOpen"]]
    d = np.diff(jaw)
    reversals = np.sum(np.sign(d[1:]) * np.sign(d[:-1]) < 0) / (len(jaw) / 25)
    assert 2.0 <= reversals <= 9.0  # opening and closing at about the syllable rate, no frame-to-frame flicker


def test_sad_speaker_opens_less_and_frowns_happy_one_smiles(talk):
    clock, params = talk.clock, _params()
    by = {}
    for emotion in ("sad", "happy"):
        curve = np.zeros((clock.n_frames, len(EMOTIONS)), np.float32)
        curve[:, EMOTIONS.index(emotion)] = 1.0
        params = _params()
        by[emotion] = motion.build_motion("A", clock, talk.utterances, curve, MotionConfig(), params["A"]).expression
    seg = clock.segments[0]
    sl = slice(int(seg.start * 25), int(seg.end * 25))
    assert by["sad"][sl, INDEX["jawOpen"]].mean() < 0.8 * by["happy"][sl, INDEX["jawOpen"]].mean()
    assert by["sad"][sl, INDEX["mouthFrown_L"]].mean() > 0.3
    assert by["happy"][sl, INDEX["mouthSmile_L"]].mean() > 0.5


def test_backchannels_come_at_the_speakers_phrase_ends(talk):
    clock = talk.clock
    leed = load_leed()
    reactions = plan_reactions("B", clock, talk.utterances, talk.curves[-1]["B"], 0, leed)
    assert len(reactions) >= 2
    ends = []
    for seg in clock.segments:
        if seg.speaker == "A":
            ends += [seg.start + t for t in phrase_end_times(talk.utterances[seg.turn_index])]
    for r in reactions:
        assert min(abs(r.start / clock.fps - e - 0.15) for e in ends) <= 0.05  # right after a pause begins


def test_listener_reactions_follow_the_listeners_feeling(talk):
    """A happy listener smiles and nods back; a stronger feeling gives a stronger reaction."""
    clock = talk.clock
    seg = clock.segments[0]
    sl = slice(int(seg.start * 25), int(seg.end * 25) + 20)
    smiles = {}
    for strength in (0.35, 1.0):
        curve = np.zeros((clock.n_frames, len(EMOTIONS)), np.float32)
        curve[:, EMOTIONS.index("happy")] = strength
        curve[:, EMOTIONS.index("neutral")] = 1 - strength
        track = motion.build_motion("B", clock, talk.utterances, curve, MotionConfig(head_sway=0), _params()["B"])
        smiles[strength] = track.expression[sl, INDEX["mouthSmile_L"]]
        if strength == 1.0:
            assert np.ptp(np.degrees(track.pose[sl, 1])) > 1.5  # LEED's nods, with CRHMG switched off
    assert smiles[1.0].max() > smiles[0.35].max() + 0.2


def test_blinks_at_a_real_rate_and_length():
    turns = [
        Turn("A" if i % 2 == 0 else "B", "Well, that is one way to look at it, I suppose.", "neutral")
        for i in range(8)
    ]
    talk = _conversation(turns)
    params = _params(3)
    minutes = talk.clock.duration / 60
    for p in "AB":
        track = motion.build_motion(p, talk.clock, talk.utterances, talk.curves[-1][p], MotionConfig(), params[p])
        closed = track.expression[:, INDEX["eyeBlink_L"]] > 0.5
        starts = np.flatnonzero(closed[1:] & ~closed[:-1])
        rate = len(starts) / minutes
        assert 10 <= rate <= 28, rate
        lengths = [np.argmin(closed[s + 1 :]) / 25 for s in starts if not closed[s + 1 :].all()]
        assert 0.04 <= np.median(lengths) <= 0.3


def test_role_switch_blends_without_pops(talk, tracks):
    fps = talk.clock.fps
    # Head: a pop is a sudden change of velocity; at a turn boundary it is no larger than at any other moment (the
    # track's own 99th percentile). A head may start to move when the turn passes; it must not jump.
    steps = {p: np.degrees(np.abs(np.diff(tracks[p].pose[:, :3], n=2, axis=0))) for p in "AB"}
    for seg in talk.clock.segments:
        for t in (seg.start, seg.end):
            f = int(round(t * fps))
            near = slice(f - 4, f + 5)  # the 200 ms blend and a frame either side
            for p in "AB":
                e = tracks[p].expression
                # The jaw may close a final /b/ at 0.15 a frame (speech); a pop would snap by 0.3 or more.
                limits = {"jawOpen": 0.2, "browInnerUp": 0.12, "browDown_L": 0.12, "mouthSmile_L": 0.12}
                for name, limit in limits.items():
                    assert np.abs(np.diff(e[near, INDEX[name]])).max() < limit, (p, name, t)
                assert (steps[p][near].max(axis=0) <= np.percentile(steps[p], 99, axis=0) + 0.1).all(), (p, t)
    w = motion.speaking_weight("A", talk.clock, MotionConfig().transition_s)
    ramp = np.flatnonzero((w > 0.01) & (w < 0.99))
    first = ramp[ramp < talk.clock.segments[0].start * fps + 10]
    assert 0.15 <= (len(first) + 1) / fps <= 0.3


def test_head_motion_is_like_the_real_tracks():
    clips = load_real_clips()
    real = {role: pooled_stats(role_segments(clips, role)) for role in (True, False)}
    gen = {}
    for role in (True, False):
        cond = np.zeros((1500, 3), np.float32)
        cond[:, 0] = float(role)
        cond[:, 2] = 0.5 * role * (1 + np.sin(np.arange(1500) / 25 * 2 * np.pi * 0.7))
        gen[role] = pooled_stats([crhmg.generate_head(HeadState(seed=s), cond, 1500, 1500) for s in range(3)])
    for axis in ("yaw", "pitch", "roll"):
        both_real = np.mean([real[r][axis]["jerk_deg_s3"] for r in real])
        both_gen = np.mean([gen[r][axis]["jerk_deg_s3"] for r in gen])
        assert both_gen <= both_real, axis
    speak_v = sum(gen[True][a]["velocity_deg_s"] for a in ("yaw", "pitch", "roll"))
    listen_v = sum(gen[False][a]["velocity_deg_s"] for a in ("yaw", "pitch", "roll"))
    assert speak_v > listen_v  # speakers move more, as in the real data


def test_head_motion_runs_ten_minutes_without_seams_or_drift():
    n = 25 * 600
    cond = np.zeros((n, 3), np.float32)
    cond[:, 0] = (np.arange(n) // 250) % 2  # turns of 10 s
    pose = crhmg.generate_head(HeadState(seed=7), cond, n, n)
    deg = np.degrees(pose[:, :3])
    minutes = deg.reshape(10, -1, 3)
    assert np.abs(minutes.mean(axis=1)).max() < 3.0  # no drift away from the portrait's pose
    spread = minutes.std(axis=1)
    assert (spread.max(axis=0) / spread.min(axis=0)).max() < 2.5  # neither dying out nor growing
    speed = np.abs(np.diff(deg, axis=0)).sum(axis=1)
    seams = np.arange(crhmg.HOP, n - 1, crhmg.HOP)
    assert speed[seams].mean() < 1.5 * speed.mean()  # window joins are as smooth as the rest
    other = crhmg.generate_head(HeadState(seed=8), cond, n, n)
    assert np.corrcoef(pose[:, 0], other[:, 0])[0, 1] < 0.5  # another seed: another motion
    assert 0.6 < head_stats(other)["yaw"]["amplitude_deg"] / head_stats(pose)["yaw"]["amplitude_deg"] < 1.6


def test_leed_has_reactions_for_every_emotion():
    leed = load_leed()
    for emotion in EMOTIONS:
        clips = leed.clips[emotion]
        assert len(clips) >= 3
        assert all(c.controls.any() or c.head.any() for c in clips)
    assert any("track" in c.source for clips in leed.clips.values() for c in clips)  # some come from real faces
    assert 10 <= leed.blink_rate_per_min <= 25


def test_head_motion_made_turn_by_turn_is_the_one_pass_motion_and_resumes_its_filters():
    """Streaming asks for the head pose of a growing conversation every turn: each call must give exactly the
    frames one pass gives, and the calibration filters restart from the frames already final (a turn's cost must
    not grow with the conversation)."""
    rng = np.random.default_rng(3)
    n = 2000
    cond = np.stack([(np.arange(n) // 180) % 2, rng.uniform(-1, 1, n), rng.uniform(0, 1, n)], 1).astype(np.float32)
    whole = crhmg.generate_head(HeadState(seed=5), cond, n, n)
    state = HeadState(seed=5)
    for end in (170, 333, 900, 1421, n):
        part = crhmg.generate_head(state, cond, end, end)
        assert np.array_equal(part, whole[:end])
        assert state.calibrated.frames > end - 2 * crhmg.WINDOW  # resumed close to the newest frame next time
