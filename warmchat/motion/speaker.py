"""Speaker motion: the talking face's mouth, jaw, brows and phrase-end blinks from its own speech.

Lips from phoneme timings use a dominance model of coarticulation (Cohen & Massaro 1993): every phoneme has a
target mouth shape and a dominance that peaks at its centre and decays exponentially, and the mouth at time t is
the dominance-weighted mean of the targets around it. Strong phonemes (vowels for the jaw, p/b/m for closed lips,
oo/w for rounding) win over weak ones (k, g, h take their neighbours' shape). Closures are then enforced at each
bilabial's centre frame, so averaging never smooths a /p/ away. Jaw opening follows loudness; pitch accents raise
the brows; pauses and line ends bring blinks; the speaker's emotion scales it all (sad: small, low; surprised:
wide). Without phoneme timings (uploaded or server audio) the learned audio-to-mouth model
(`warmchat.motion.lipsync`) gives the mouth from the sound itself.

Every function here reads one turn's own audio and timings only, so a turn's motion never changes when later turns
are added (turn-by-turn rendering gives the frames of a single pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.emotions import EMOTIONS
from warmchat.motion.features import FrameFeatures, frame_features
from warmchat.schema import Segment, Speaker, Timeline, Utterance
from warmchat.speech.audio import PAUSE, SPOKEN

# Mouth controls a viseme sets, in this order.
MOUTH = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthStretch_L", "mouthStretch_R", "mouthPress")
CORNERS = ("mouthSmile_L", "mouthSmile_R")  # lip-corner raise while talking: only the learned route sets it
MOUTH_IDX = np.array([INDEX[c] for c in MOUTH + CORNERS])
STEP_S = 0.01  # coarticulation is computed at 100 Hz, then averaged over each video frame
EDGE_S = 0.25  # silence assumed before and after a line, so the mouth eases in and out of it
# A phoneme's dominance is left out beyond this distance from it, where it is below e^-30 of its peak (the slowest
# decay is 12 /s), far too little to move the weighted mean.
REACH_S = 2.5
BLOCK_STEPS = 1000  # coarticulation steps (10 s) computed at a time
MARGIN_FRAMES = 2  # audio read around a line for its features (80 ms: less than the shortest pause between lines)
# Real lips move before the sound they shape: on the real talking clips the phoneme-timed mouth (as imitated by the
# synthetic-trained audio model) matched the real lip gap best 2-3 frames late at 25 fps (docs/motion.md), so
# visemes and the loudness-driven jaw run this much ahead of the audio (anticipatory coarticulation).
LEAD_S = 0.1
CLOSING_JAW = 0.15  # jawOpen at most on the frames either side of a p, b, m closure


@dataclass(frozen=True)
class Viseme:
    target: tuple[float, float, float, float, float, float]  # MOUTH order
    dominance: tuple[float, float, float, float, float, float]  # per control: how strongly it holds its target
    rate: float  # 1/s: how fast its dominance decays away from its centre (fast = little coarticulation)


def _v(jaw=0.0, funnel=0.0, pucker=0.0, stretch=0.0, press=0.0, dom=(1, 1, 1, 1, 1), rate=18.0) -> Viseme:
    d_jaw, d_fun, d_puck, d_str, d_press = dom
    return Viseme((jaw, funnel, pucker, stretch, stretch, press), (d_jaw, d_fun, d_puck, d_str, d_str, d_press), rate)


# Targets in rig units (jawOpen 1 = 24 degrees of mandible rotation, a shout): speech rarely opens past 0.6.
VISEMES: dict[str, Viseme] = {
    # vowels: the jaw carries them; rounding and spreading by lip shape
    "open": _v(jaw=0.6, dom=(1.0, 0.3, 0.3, 0.4, 0.3), rate=14),  # a ɑ æ ʌ ɒ aɪ aʊ
    "mid": _v(jaw=0.4, dom=(0.9, 0.3, 0.3, 0.4, 0.3), rate=14),  # ə ɛ ɜ ɚ ɐ
    "front": _v(jaw=0.25, stretch=0.35, dom=(0.8, 0.5, 0.5, 0.9, 0.3), rate=14),  # i ɪ e eɪ (spread)
    "round": _v(jaw=0.36, funnel=0.45, pucker=0.25, dom=(0.8, 0.9, 0.9, 0.9, 0.3), rate=14),  # o ɔ oʊ ɔɪ
    "close_round": _v(jaw=0.12, funnel=0.25, pucker=0.6, dom=(0.8, 0.9, 1.0, 0.9, 0.3), rate=14),  # u ʊ uː
    # consonants
    "bilabial": _v(jaw=0.0, press=0.45, dom=(3.0, 3.0, 0.4, 0.5, 3.0), rate=30),  # p b m: lips meet
    "labiodental": _v(jaw=0.06, press=0.25, dom=(2.0, 2.0, 0.4, 0.5, 1.5), rate=28),  # f v: lip to teeth
    "w": _v(jaw=0.05, funnel=0.2, pucker=0.7, dom=(1.0, 1.0, 2.0, 2.0, 0.5), rate=22),
    "postalveolar": _v(jaw=0.1, funnel=0.35, pucker=0.3, dom=(1.0, 1.2, 1.2, 1.0, 0.3), rate=24),  # ʃ ʒ tʃ dʒ
    "r": _v(jaw=0.12, pucker=0.3, dom=(0.6, 0.5, 0.8, 0.6, 0.2), rate=24),
    "alveolar": _v(jaw=0.1, stretch=0.1, dom=(0.8, 0.4, 0.3, 0.4, 0.2), rate=26),  # t d n l s z θ ð ɾ j
    "back": _v(jaw=0.22, dom=(0.3, 0.1, 0.1, 0.1, 0.1), rate=26),  # k g ŋ h ʔ: shaped by their neighbours
    "pause": _v(dom=(1.5, 1.5, 1.5, 1.5, 1.5), rate=12),
}
assert min(v.rate for v in VISEMES.values()) * REACH_S >= 30, "REACH_S too short for the slowest decay"
_CLASSES = [
    ("pause", (PAUSE,)),
    ("bilabial", ("p", "b", "m")),
    ("labiodental", ("f", "v")),
    ("postalveolar", ("ʃ", "ʒ", "tʃ", "dʒ")),
    ("w", ("w", "ʍ")),
    ("r", ("ɹ", "r", "ɻ", "ɚ")),
    ("close_round", ("u", "ʊ", "ɵ", "y")),
    ("round", ("o", "ɔ", "ɒ")),
    ("front", ("i", "ɪ", "e", "ᵻ", "ɨ")),
    ("open", ("a", "ɑ", "æ", "ʌ", "ɐ")),
    ("mid", ("ə", "ɛ", "ɜ", "œ", "ø")),
    ("back", ("k", "g", "ɡ", "ŋ", "h", "ʔ", "x")),
]


def viseme_class(phoneme: str) -> str:
    """The viseme class of an IPA phoneme (possibly several characters, e.g. "oʊ", "tʃ", "iː")."""
    for name, prefixes in _CLASSES:
        if any(phoneme.startswith(p) for p in prefixes):
            return name
    return "alveolar"  # t d n l s z θ ð ɾ j and anything unusual: a small, neutral opening


# How wide each emotion opens the mouth while speaking (sad speakers barely open, surprised ones open wide).
JAW_GAIN = np.array([1.0, 1.05, 0.75, 1.1, 1.2, 0.9, 0.85, 0.8], np.float32)  # EMOTIONS order
BROW_GAIN = np.array([1.0, 1.1, 0.5, 0.6, 1.4, 1.2, 0.7, 0.7], np.float32)  # emphasis on pitch accents
assert len(JAW_GAIN) == len(EMOTIONS) == len(BROW_GAIN)


def speaking_weight(
    person: Speaker, timeline: Timeline, transition_s: float, rise_s: float | None = None, fall_s: float | None = None
) -> np.ndarray:
    """(T,) 1 while `person` speaks, 0 otherwise, with eased ramps of `transition_s` centred on the boundaries.

    Args:
        rise_s: a longer rise (still starting half a transition before the line) for what should change more
            gently as the person starts to speak; the ramp never starts earlier, since frames before a line may
            already be rendered when it arrives.
        fall_s: likewise a longer fall, ending as late as it likes after the line.
    """
    t = np.arange(timeline.n_frames) / timeline.fps
    w = np.zeros_like(t)
    half = transition_s / 2
    for seg in timeline.segments:
        if seg.speaker != person:
            continue
        # Only the frames between the start of the rise and the end of the fall (plus one either side) can be > 0.
        lo = max(int(np.searchsorted(t, seg.start - half)) - 1, 0)
        hi = int(np.searchsorted(t, seg.end - half + (fall_s or transition_s))) + 1
        ts = t[lo:hi]
        rise = np.clip((ts - (seg.start - half)) / (rise_s or transition_s), 0, 1)
        fall = np.clip(((seg.end - half + (fall_s or transition_s)) - ts) / (fall_s or transition_s), 0, 1)
        w[lo:hi] = np.maximum(w[lo:hi], np.minimum(rise, fall))
    return w * w * (3 - 2 * w)


def segment_frames(seg: Segment, fps: int) -> tuple[int, int]:
    """First and one-past-last video frame of a line."""
    return int(round(seg.start * fps)), int(round(seg.end * fps))


def segment_features(seg: Segment, timeline: Timeline) -> tuple[int, FrameFeatures]:
    """(first frame, features) for a line's frames plus MARGIN_FRAMES either side, from its own audio only."""
    f0, f1 = segment_frames(seg, timeline.fps)
    a = max(f0 - MARGIN_FRAMES, 0)
    b = f1 + MARGIN_FRAMES
    spf = timeline.sample_rate / timeline.fps
    # Half a frame before the first frame's centre, so frame i's analysis is centred where it should be.
    s0 = round((a - 0.5) * spf)
    chunk = timeline.audio[max(s0, 0) : round((b + 0.5) * spf)]
    chunk = np.pad(chunk, (max(-s0, 0), max(0, round((b - a + 1) * spf) - len(chunk) - max(-s0, 0))))
    feats = frame_features(chunk, timeline.sample_rate, timeline.fps, b - a + 1)
    # Frame k of `feats` is centred half a frame into the chunk: shift by one to align with video frame a + k.
    return a, FrameFeatures(feats.mel[1:], feats.energy_db[1:], feats.f0[1:])


def coarticulate(phonemes: list[tuple[str, float, float]], duration: float, n_frames: int, fps: int) -> np.ndarray:
    """(n_frames, len(MOUTH)) mouth controls for one line, frame 0 at the line's start.

    Args:
        phonemes: (IPA phoneme, start_s, end_s), contiguous from 0; "_" is a pause.
        duration: seconds of the line.
    """
    segs = [(PAUSE, -EDGE_S, 0.0), *phonemes, (PAUSE, duration, duration + EDGE_S)]
    classes = [VISEMES[viseme_class(p)] for p, _, _ in segs]
    centers = np.array([(a + b) / 2 for _, a, b in segs])
    halves = np.array([max((b - a) / 2, 0.01) for _, a, b in segs])
    targets = np.array([v.target for v in classes], np.float32)  # (S, 6)
    dom = np.array([v.dominance for v in classes], np.float32)  # (S, 6)
    rates = np.array([v.rate for v in classes], np.float32)
    t = np.arange(-0.5 / fps, n_frames / fps + 0.5 / fps, STEP_S)
    fine = np.empty((len(t), len(MOUTH)))  # (T100, 6)
    dom64 = dom.astype(np.float64)
    weighted = dom64 * targets  # (S, 6)
    # In blocks of time, each over the phonemes within REACH_S: memory and time grow linearly with the line.
    for lo in range(0, len(t), BLOCK_STEPS):
        tb = t[lo : lo + BLOCK_STEPS]
        near = np.flatnonzero((centers + halves >= tb[0] - REACH_S) & (centers - halves <= tb[-1] + REACH_S))
        # Dominance is flat over the phoneme itself and decays outside it.
        dist = np.maximum(np.abs(tb[:, None] - centers[near]) - halves[near], 0.0)  # (B, S_near) seconds
        decay = np.exp(-rates[near] * dist)  # (B, S_near)
        fine[lo : lo + len(tb)] = (decay @ weighted[near]) / np.maximum(decay @ dom64[near], 1e-6)
    frame_of = np.clip(np.round(t * fps).astype(int), 0, n_frames - 1)
    count = np.bincount(frame_of, minlength=n_frames)
    out = np.stack([np.bincount(frame_of, weights=fine[:, j], minlength=n_frames) for j in range(6)], 1)
    out /= np.maximum(count, 1)[:, None]
    # Lips meet at every p, b, m: the frame nearest its centre is closed however short it was, and the frames either
    # side are half closed, so the lips travel there over three frames (as real ones do) rather than snap shut.
    for (_, a, b), v in zip(segs, classes, strict=True):
        if v is VISEMES["bilabial"] and 0 <= (a + b) / 2 < duration:
            f = min(int(round((a + b) / 2 * fps)), n_frames - 1)
            out[max(f - 1, 0) : f + 2, 0] = np.minimum(out[max(f - 1, 0) : f + 2, 0], CLOSING_JAW)
            out[f, 0] = 0.0
            out[f, 1] = 0.0
            out[f, 5] = max(out[f, 5], 0.35)
    return out.astype(np.float32)


def timed_mouth(
    phonemes: list[tuple[str, float, float]], duration: float, feats: FrameFeatures, first: int, fps: int
) -> np.ndarray:
    """(len(feats), len(MOUTH)) mouth for one line's frames, visemes and loudness LEAD_S ahead of the sound.

    Args:
        phonemes: the line's timings, seconds from its start; `duration` its length.
        feats: audio features of the frames, frame `first` being the line's start.
    """
    n = len(feats)
    shift = first / fps - LEAD_S  # seconds from frame 0 to the line's (anticipated) start
    moved = [(p, a + shift, b + shift) for p, a, b in phonemes]
    if moved and moved[0][1] > 0:
        moved.insert(0, (PAUSE, 0.0, moved[0][1]))
    mouth = coarticulate(moved, duration + shift, n, fps)
    gain = loudness_gain(feats.energy_db)
    mouth[:, 0] *= np.interp(np.arange(n) + LEAD_S * fps, np.arange(n), gain)
    return mouth


def loudness_gain(energy_db: np.ndarray) -> np.ndarray:
    """(T,) jaw gain from loudness: louder than the line's typical voiced level opens wider, quiet frames close."""
    voiced = energy_db[energy_db > energy_db.max() - 30]
    ref = float(np.median(voiced)) if voiced.size else 0.0
    gain = np.clip(1.0 + (energy_db - ref) / 20.0, 0.6, 1.3)
    gain *= np.clip((energy_db - (ref - 45.0)) / 15.0, 0.0, 1.0)  # fading to closed in silence, without a snap
    return np.convolve(np.pad(gain, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")


def accent_brows(f0: np.ndarray, energy_db: np.ndarray, fps: int) -> np.ndarray:
    """(T,) 0..1 brow raise on pitch accents: F0 peaks 2+ semitones above the line's median on loud syllables."""
    out = np.zeros(len(f0), np.float32)
    voiced = f0 > 0
    if voiced.sum() < 5:
        return out
    st = np.where(voiced, 12 * np.log2(np.maximum(f0, 1) / np.median(f0[voiced])), -99.0)
    loud = energy_db > np.percentile(energy_db[voiced], 50) - 3
    half = max(int(0.15 * fps), 1)
    peaks = [
        i for i in range(len(st)) if st[i] > 2.0 and loud[i] and st[i] == st[max(i - half, 0) : i + half + 1].max()
    ]
    shape_t = np.arange(int(0.6 * fps)) / fps
    shape = np.where(shape_t < 0.2, np.sin(shape_t / 0.2 * np.pi / 2), np.cos((shape_t - 0.2) / 0.4 * np.pi / 2))
    for i in sorted(peaks, key=lambda i: -st[i]):  # strongest accents first, at most one per second
        if np.any(out[max(i - fps, 0) : i + fps] > 0):
            continue
        s = max(i - int(0.2 * fps), 0)
        seg = shape[: len(out) - s] * min((st[i] - 2.0) / 3.0 + 0.4, 1.0)
        out[s : s + len(seg)] = np.maximum(out[s : s + len(seg)], seg)
    return out


def phrase_end_times(utt: Utterance, min_pause_s: float = 0.12) -> list[float]:
    """Seconds into the line where a phrase ends: starts of pauses of at least `min_pause_s`, and the line's end."""
    ends = [a for p, a, b in utt.phonemes if p == PAUSE and b - a >= min_pause_s and a > 0.3]
    return [*ends, utt.duration]


def has_phonemes(utt: Utterance) -> bool:
    """Whether the line has phoneme timings (a recording has only stretches of speech and pause, `SPOKEN`)."""
    return any(p not in (PAUSE, SPOKEN) for p, _, _ in utt.phonemes)


def shape_mouth(body: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """(n, len(MOUTH + CORNERS)) mouth controls scaled by the emotion (8,): sad opens little and spreads less."""
    body = body.copy()
    body[:, 0] *= float(emotion @ JAW_GAIN)
    body[:, 3:5] *= 1.0 - 0.5 * float(emotion[EMOTIONS.index("sad")])  # sad lips hardly spread
    return body


def line_mouth(
    seg: Segment, utt: Utterance, timeline: Timeline, emotion: np.ndarray, lipsync=None
) -> tuple[int, np.ndarray]:
    """(first frame, (n, K) speaker controls) for one line: mouth, jaw and accent brows, eased in and out.

    Args:
        emotion: (8,) the speaker's emotion over the line (mean of the curve).
        lipsync: the audio-to-mouth model (`lipsync.load_lipsync()`), used when `utt` has no phoneme timings
            (`has_phonemes`).
    """
    fps = timeline.fps
    a, feats = segment_features(seg, timeline)
    f0, _ = segment_frames(seg, fps)
    n = len(feats)
    out = np.zeros((n, K), np.float32)
    lead = f0 - a
    if has_phonemes(utt):
        body = timed_mouth(utt.phonemes, utt.duration, feats, lead, fps)
        body = np.concatenate([body, np.zeros((n, len(CORNERS)), np.float32)], 1)
    else:
        from warmchat.motion.lipsync import predict_mouth

        # The phonetic model reads the audio itself: a second of it before the line's first frame, frame k centred
        # where `segment_features` centres its analysis of frame k.
        sr = timeline.sample_rate
        s0 = max(round((a / fps - 1.0) * sr), 0)
        chunk = timeline.audio[s0 : round((a + n + 1) / fps * sr)]
        body = predict_mouth(lipsync, feats, chunk, sr, fps, start_s=(a + 0.5) / fps - s0 / sr)
    out[:, MOUTH_IDX] = shape_mouth(body, emotion)
    brows = accent_brows(feats.f0, feats.energy_db, fps) * float(emotion @ BROW_GAIN)
    out[:, INDEX["browInnerUp"]] += 0.3 * brows
    out[:, INDEX["browOuterUp_L"]] += 0.25 * brows
    out[:, INDEX["browOuterUp_R"]] += 0.25 * brows
    return a, out
