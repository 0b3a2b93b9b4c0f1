"""Emotion -> prosody: how fast, how high, how wide a pitch range, how loud, how long the pauses.

Directions follow the vocal-affect literature (Scherer 2003; Juslin & Laukka 2003): high-arousal emotions
(happy, angry, surprised, fearful) are faster, higher and, except fear, louder; sad is slow, low, soft and flat
with long pauses; disgust and contempt are slow, low and flat. docs/speech.md has the table and measurements.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prosody:
    rate: float = 1.0  # speaking-rate multiplier (1 = the voice's own pace)
    semitones: float = 0.0  # mean pitch shift
    f0_range: float = 1.0  # pitch-contour range around its mean (hibari only; Piper has no F0 control)
    gain_db: float = 0.0  # loudness relative to the normalised speech level
    pause_s: float = 0.3  # silence between sentences of one turn


# At intensity 1; `prosody()` scales each towards neutral for weaker emotion.
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 0.0, 1.00, 0.0, 0.30),
    "happy": Prosody(1.07, 1.5, 1.25, 2.0, 0.25),
    "sad": Prosody(0.84, -1.5, 0.70, -5.0, 0.55),
    "angry": Prosody(1.10, 2.0, 1.20, 4.0, 0.20),
    "surprised": Prosody(1.05, 3.0, 1.40, 2.0, 0.25),
    "fearful": Prosody(1.10, 2.0, 0.90, -2.0, 0.30),
    "disgusted": Prosody(0.92, -1.5, 0.85, -1.0, 0.40),
    "contempt": Prosody(0.93, -1.5, 0.80, -2.0, 0.40),
}


def prosody(emotion: str, intensity: float) -> Prosody:
    """The prosody for `emotion` at `intensity` in [0, 1]: 0 is neutral, 1 the table's values."""
    k = min(max(float(intensity), 0.0), 1.0)
    p, n = PROSODY.get(emotion, PROSODY["neutral"]), PROSODY["neutral"]
    return Prosody(
        rate=n.rate + (p.rate - n.rate) * k,
        semitones=p.semitones * k,
        f0_range=n.f0_range + (p.f0_range - n.f0_range) * k,
        gain_db=p.gain_db * k,
        pause_s=n.pause_s + (p.pause_s - n.pause_s) * k,
    )
