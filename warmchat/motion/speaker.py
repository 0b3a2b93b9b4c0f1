"""Speaker motion: the talking face's mouth and jaw from its own speech audio and phoneme timings."""

from __future__ import annotations

import numpy as np

from warmchat.controls import INDEX, K
from warmchat.emotions import EMOTIONS
from warmchat.schema import Speaker, Timeline, Utterance

# How wide each emotion opens the mouth while speaking (sad speakers barely open, surprised ones open wide).
JAW_GAIN = {
    "neutral": 1.0,
    "happy": 1.05,
    "sad": 0.7,
    "angry": 1.1,
    "surprised": 1.2,
    "fearful": 0.9,
    "disgusted": 0.85,
    "contempt": 0.8,
}
CLOSURES = set("pbm")  # bilabials: lips meet
ROUNDED = set("uʊoɔw")  # lips round
SPREAD = set("iɪeɛæ")  # lips spread


def frame_energy(audio: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    """(T,) loudness per video frame in dB (RMS over a 40 ms window centred on each frame)."""
    half = int(0.02 * sample_rate)
    centers = (np.arange(n_frames) / fps * sample_rate).astype(int)
    padded = np.pad(audio.astype(np.float64) ** 2, (half, half))
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    lo = np.clip(centers, 0, len(audio))
    energy = (csum[lo + 2 * half] - csum[lo]) / (2 * half)
    return 10 * np.log10(energy + 1e-10)


def speaking_weight(person: Speaker, timeline: Timeline, transition_s: float) -> np.ndarray:
    """(T,) 1 while `person` speaks, 0 otherwise, with eased ramps of `transition_s` at the boundaries."""
    t = np.arange(timeline.n_frames) / timeline.fps
    w = np.zeros_like(t)
    half = transition_s / 2
    for seg in timeline.segments:
        if seg.speaker != person:
            continue
        rise = np.clip((t - (seg.start - half)) / transition_s, 0, 1)
        fall = np.clip(((seg.end + half) - t) / transition_s, 0, 1)
        w = np.maximum(w, np.minimum(rise, fall))
    return w * w * (3 - 2 * w)


def speech_mouth(
    person: Speaker, timeline: Timeline, utterances: list[Utterance], emotion_curve: np.ndarray
) -> np.ndarray:
    """(T, K) mouth controls while `person` speaks; zero elsewhere so a listener's lips stay still."""
    n, fps = timeline.n_frames, timeline.fps
    out = np.zeros((n, K), dtype=np.float32)
    db = frame_energy(timeline.audio, timeline.sample_rate, fps, n)
    for seg in timeline.segments:
        if seg.speaker != person:
            continue
        f0, f1 = int(round(seg.start * fps)), min(int(round(seg.end * fps)), n)
        if f1 <= f0:
            continue
        seg_db = db[f0:f1]
        peak = np.percentile(seg_db, 95)
        openness = np.clip((seg_db - (peak - 30.0)) / 30.0, 0.0, 1.0) ** 1.5  # quiet frames -> closed mouth
        emotion = EMOTIONS[int(np.argmax(emotion_curve[f0:f1].mean(axis=0)))]
        jaw = 0.55 * JAW_GAIN[emotion] * openness
        jaw = np.convolve(np.pad(jaw, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")  # no jitter, keep shape
        mouth = out[f0:f1]
        mouth[:, INDEX["jawOpen"]] = jaw
        for ph, a, b in utterances[seg.turn_index].phonemes:
            g0, g1 = f0 + int(round(a * fps)), f0 + max(int(round(b * fps)), int(round(a * fps)) + 1)
            g0, g1 = max(g0, f0), min(g1, f1)
            if g1 <= g0:
                continue
            head = ph[:1]  # IPA phonemes may be several characters ("oʊ", "iː"); the first sets the lip shape
            if head in CLOSURES:  # lips meet for p, b, m even in loud passages
                mouth[g0 - f0 : g1 - f0, INDEX["jawOpen"]] *= 0.15
                mouth[g0 - f0 : g1 - f0, INDEX["mouthPress"]] = 0.4
            elif head in ROUNDED:
                mouth[g0 - f0 : g1 - f0, INDEX["mouthPucker"]] = 0.45
                mouth[g0 - f0 : g1 - f0, INDEX["mouthFunnel"]] = 0.3
            elif head in SPREAD:
                mouth[g0 - f0 : g1 - f0, INDEX["mouthStretch_L"]] = 0.2
                mouth[g0 - f0 : g1 - f0, INDEX["mouthStretch_R"]] = 0.2
        # Brows lift with emphasis: the loudest stretches of the line.
        emphasis = np.clip((seg_db - (peak - 4.0)) / 4.0, 0, 1)
        mouth[:, INDEX["browInnerUp"]] = 0.25 * np.convolve(emphasis, np.ones(5) / 5, mode="same")
    return out
