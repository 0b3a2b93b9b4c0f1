"""Timeline: place the turns' audio on one clock with natural pauses, at one sample rate."""

from __future__ import annotations

import numpy as np

from warmchat.schema import Segment, Timeline, Turn, Utterance

LEAD_IN_S = 0.4  # silence before the first line: the listener settles, the speaker draws breath
TAIL_S = 0.8  # silence after the last line so the final reaction is seen
# Gap before a turn at full intensity, by the emotion of the line that answers: excited replies come fast, sad ones
# slowly (conversation-analysis turn gaps are ~200 ms typical, longer before dispreferred or low-arousal replies).
GAP_S = {
    "neutral": 0.35,
    "happy": 0.25,
    "sad": 0.6,
    "angry": 0.18,
    "surprised": 0.15,
    "fearful": 0.25,
    "disgusted": 0.35,
    "contempt": 0.45,
}


def turn_gap(emotion: str, intensity: float) -> float:
    """Seconds of silence before a reply: the emotion's gap, scaled towards neutral for weak emotion."""
    k = float(np.clip(intensity, 0.0, 1.0))
    neutral = GAP_S["neutral"]
    return float(np.clip(neutral + (GAP_S.get(emotion, neutral) - neutral) * k, 0.15, 0.6))


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling (soxr, a librosa dependency)."""
    if sr_in == sr_out:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio, sr_in, sr_out).astype(np.float32)


def build_timeline(
    turns: list[Turn], utterances: list[Utterance], sample_rate: int = 24000, fps: int = 25
) -> Timeline:
    """Concatenate the turns' audio with pauses; returns the mixed track and each turn's segment (seconds)."""
    pieces, segments = [np.zeros(int(LEAD_IN_S * sample_rate), np.float32)], []
    t = LEAD_IN_S
    for i, (turn, utt) in enumerate(zip(turns, utterances, strict=True)):
        if i > 0:
            gap = turn_gap(turn.emotion, turn.intensity)
            pieces.append(np.zeros(int(gap * sample_rate), np.float32))
            t += int(gap * sample_rate) / sample_rate
        audio = resample(utt.audio, utt.sample_rate, sample_rate)
        segments.append(Segment(turn_index=i, speaker=turn.speaker, start=t, end=t + len(audio) / sample_rate))
        pieces.append(audio)
        t += len(audio) / sample_rate
    pieces.append(np.zeros(int(TAIL_S * sample_rate), np.float32))
    audio = np.concatenate(pieces)
    # Pad to a whole number of video frames so audio and video end together.
    samples_per_frame = sample_rate / fps
    n_frames = int(np.ceil(len(audio) / samples_per_frame))
    audio = np.pad(audio, (0, int(round(n_frames * samples_per_frame)) - len(audio)))
    return Timeline(audio=audio, sample_rate=sample_rate, fps=fps, segments=segments)
