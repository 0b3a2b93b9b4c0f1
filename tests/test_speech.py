"""Offline speech: two distinct voices, emotional pace, timings the motion stage can trust."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat.errors import InputError
from warmchat.schema import Turn
from warmchat.speech import synthesize, voice_turns
from warmchat.timeline import build_timeline

LINE = "We could go hiking by the lake on Saturday morning."


def _median_f0(utt) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(utt.audio, fmin=60, fmax=400, sr=utt.sample_rate, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


def test_two_distinct_voices():
    female, male = synthesize(LINE, "hibari"), synthesize(LINE, "piper-joe")
    for utt in (female, male):
        assert 1.5 < utt.duration < 8
        assert utt.audio.dtype == np.float32 and np.abs(utt.audio).max() <= 1
    assert _median_f0(female) > _median_f0(male) + 40  # clearly different pitch registers


def test_sad_is_slower_than_angry():
    sad = synthesize(LINE, "piper-joe", "sad", 1.0)
    angry = synthesize(LINE, "piper-joe", "angry", 1.0)
    assert sad.duration > 1.05 * angry.duration
    assert np.sqrt(np.mean(sad.audio**2)) < np.sqrt(np.mean(angry.audio**2))


def test_piper_phoneme_timings_cover_the_audio_and_are_monotonic():
    utt = synthesize(LINE, "piper-joe")
    starts = [a for _, a, _ in utt.phonemes]
    assert len(utt.phonemes) > 20
    assert all(b >= a for _, a, b in utt.phonemes)
    assert starts == sorted(starts)
    assert utt.phonemes[-1][2] == pytest.approx(utt.duration, abs=0.25)


def test_empty_line_is_an_error_naming_the_turn():
    with pytest.raises(InputError, match="turn 2"):
        voice_turns([Turn("A", "Hello.", "neutral"), Turn("B", "🙂", "happy")], {"A": "hibari", "B": "piper-joe"})


def test_timeline_places_turns_with_pauses_and_whole_frames():
    turns = [Turn("A", "Hello there.", "happy"), Turn("B", "Oh, hello.", "sad")]
    utts = voice_turns(turns, {"A": "hibari", "B": "piper-joe"})
    clock = build_timeline(turns, utts, 24000, 25)
    a, b = clock.segments
    assert 0.15 <= b.start - a.end <= 0.65
    assert clock.duration > b.end
    assert len(clock.audio) == round(clock.n_frames * 24000 / 25)
