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


class TimelineBuilder:
    """Places turns on one clock as they arrive: lead-in, a pause before each reply, then a tail at `finish()`.

    The audio is padded to whole video frames so audio and video end together. Appending a turn never changes
    the samples already placed, so frames rendered from an earlier state stay valid. Audio goes into one buffer
    that grows geometrically and each `timeline()` is a view of it, so a turn costs the same however long the
    conversation already is.
    """

    def __init__(self, sample_rate: int = 24000, fps: int = 25):
        self.sample_rate, self.fps = sample_rate, fps
        self._audio = np.zeros(max(int(LEAD_IN_S * sample_rate), 1), np.float32)  # zeros past `_samples`
        self._samples = int(LEAD_IN_S * sample_rate)
        self._shared = 0  # samples (incl. padding) visible through timelines already handed out: never rewritten
        self.segments: list[Segment] = []

    def add(self, turn: Turn, utterance: Utterance) -> Segment:
        """Append one voiced turn; returns where it sits on the clock."""
        if self.segments:
            self._append(np.zeros(int(turn_gap(turn.emotion, turn.intensity) * self.sample_rate), np.float32))
        audio = resample(utterance.audio, utterance.sample_rate, self.sample_rate)
        start = self._samples / self.sample_rate
        self._append(audio)
        seg = Segment(
            turn_index=len(self.segments), speaker=turn.speaker, start=start, end=self._samples / self.sample_rate
        )
        self.segments.append(seg)
        return seg

    def finish(self) -> Timeline:
        """The whole conversation, with the tail of silence after the last line."""
        self._append(np.zeros(int(TAIL_S * self.sample_rate), np.float32))
        return self.timeline()

    def timeline(self) -> Timeline:
        """The conversation so far, padded to whole frames (a view: later turns never change it)."""
        samples_per_frame = self.sample_rate / self.fps
        n_frames = int(np.ceil(self._samples / samples_per_frame))
        padded = round(n_frames * samples_per_frame)
        self._reserve(padded)
        self._shared = max(self._shared, padded)
        return Timeline(
            audio=self._audio[:padded], sample_rate=self.sample_rate, fps=self.fps, segments=list(self.segments)
        )

    def _append(self, audio: np.ndarray) -> None:
        end = self._samples + len(audio)
        # Writing over the zero padding of a timeline already handed out would change it: move to a new buffer.
        self._reserve(end, fresh=self._samples < self._shared and audio.any())
        self._audio[self._samples : end] = audio
        self._samples = end

    def _reserve(self, n: int, fresh: bool = False) -> None:
        if n <= len(self._audio) and not fresh:
            return
        grown = np.zeros(max(n, 2 * len(self._audio)), np.float32)
        grown[: self._samples] = self._audio[: self._samples]
        self._audio = grown
        self._shared = 0


def segment_end_frame(clock: Timeline, segment: Segment, last: bool) -> int:
    """The frame a turn's video ends at (exclusive): the frame after its speech ends; the last turn takes the tail.

    Turn videos share frame boundaries, so frames [0, end of turn k) never change when later turns arrive.
    """
    if last:
        return clock.n_frames
    return min(int(np.ceil(segment.end * clock.fps)), clock.n_frames)


def truncate(clock: Timeline, frames: int) -> Timeline:
    """The conversation clock cut after `frames` video frames (a partial result): only turns that end in it."""
    samples = round(frames * clock.sample_rate / clock.fps)
    kept = [s for s in clock.segments if s.end <= frames / clock.fps + 1e-6]
    return Timeline(audio=clock.audio[:samples], sample_rate=clock.sample_rate, fps=clock.fps, segments=kept)


def build_timeline(
    turns: list[Turn], utterances: list[Utterance], sample_rate: int = 24000, fps: int = 25
) -> Timeline:
    """Concatenate the turns' audio with pauses; returns the mixed track and each turn's segment (seconds)."""
    builder = TimelineBuilder(sample_rate, fps)
    for turn, utt in zip(turns, utterances, strict=True):
        builder.add(turn, utt)
    return builder.finish()
