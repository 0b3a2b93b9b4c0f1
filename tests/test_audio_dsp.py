"""Our own mel filterbank, YIN and pitch shift against librosa's (which they replace on the hot path), and start-up.

The conversation pipeline no longer imports librosa (2-3 s of start-up on a small CPU); these tests check that the
replacements compute what librosa computed on real synthesised speech, so the trained motion models and the
voices hear and sound the same, and that a rendered conversation leaves the heavy modules unimported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, TWO_TURNS

from warmchat.motion import features
from warmchat.speech.audio import pitch_shift, resample

librosa = pytest.importorskip("librosa")

SENTENCE = "Guess what? I finally booked that cabin by the lake for the weekend, and it even has a little boat."


@pytest.fixture(scope="module")
def piper_speech() -> tuple[np.ndarray, int]:
    """(S,) float32 Piper speech (no pitch shift) and its rate."""
    from warmchat.speech.offline import piper_sentence

    speech = piper_sentence(SENTENCE, 1.0, 0.0, np.random.default_rng(0))
    return speech.audio, speech.sample_rate


def _voiced_yin(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F,) our YIN F0 at 16 kHz, as the features compute it, and (F,) True in frames loud enough to be voiced."""
    padded = np.pad(y, features.YIN_FRAME // 2)
    f0 = features._yin(padded, features.YIN_FRAME, features.HOP)
    frames = np.lib.stride_tricks.sliding_window_view(padded, features.YIN_FRAME)[:: features.HOP][: len(f0)]
    db = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    return f0, db > np.percentile(db, 95) - 25.0


def test_mel_filters_match_librosa():
    ref = librosa.filters.mel(
        sr=features.FEATURE_SR, n_fft=features.N_FFT, n_mels=features.N_MELS, fmin=50.0, fmax=7600.0
    )
    ours = features._mel_filters()
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_yin_matches_librosa_on_speech(piper_speech):
    audio, sr = piper_speech
    y = resample(audio, sr, features.FEATURE_SR)
    padded = np.pad(y, features.YIN_FRAME // 2)
    ours = features._yin(padded, features.YIN_FRAME, features.HOP)
    ref = librosa.yin(
        padded,
        fmin=features.F0_RANGE[0],
        fmax=features.F0_RANGE[1],
        sr=features.FEATURE_SR,
        frame_length=features.YIN_FRAME,
        hop_length=features.HOP,
        center=False,
    )
    assert ours.shape == ref.shape and len(ours) > 200
    assert (np.abs(ours / ref - 1) <= 0.005).mean() >= 0.99
    _, voiced = _voiced_yin(y)
    assert voiced.sum() > 100 and (np.abs(ours / ref - 1)[voiced] <= 0.005).mean() >= 0.99


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_matches_librosa_and_moves_f0(piper_speech, semitones):
    audio, sr = piper_speech
    ours = pitch_shift(audio, sr, semitones, n_fft=1024, hop=256)
    ref = librosa.effects.pitch_shift(audio, sr=sr, n_steps=semitones, n_fft=1024, hop_length=256)
    assert ours.dtype == np.float32 and ours.shape == audio.shape == ref.shape
    snr_db = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ours - ref).astype(np.float64) ** 2))
    assert snr_db > 40.0, f"SNR against librosa {snr_db:.1f} dB, max abs error {np.abs(ours - ref).max():.2e}"

    # F0 measured by librosa's YIN with a 128 ms window reaching down to 50 Hz: Piper's ~93 Hz lowered by 3 semitones
    # sits near the features' 70 Hz floor, where octave errors would blur the measurement.
    def f0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = resample(x, sr, 16000)
        hz = librosa.yin(y, fmin=50.0, fmax=250.0, sr=16000, frame_length=2048, hop_length=160)
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, 1024), 2048)[::160][: len(hz)]
        db = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
        return hz, db > np.percentile(db, 95) - 20.0

    (before, voiced_before), (after, voiced_after) = f0(audio), f0(ours)
    both = voiced_before & voiced_after
    moved = np.median(12 * np.log2(after[both] / before[both]))
    assert both.sum() > 100 and abs(moved - semitones) < 0.15, f"F0 moved {moved:.2f} semitones, asked {semitones}"


def test_pitch_shift_of_nothing_is_nothing():
    assert pitch_shift(np.zeros(0, np.float32), 22050, 2.0).shape == (0,)
    with pytest.raises(ValueError, match="multiple of hop"):
        pitch_shift(np.zeros(4096, np.float32), 22050, 2.0, n_fft=1000, hop=256)


def test_rendering_a_conversation_imports_no_heavy_audio_or_diffusion_modules(tmp_path):
    """A fresh process renders two turns (one in the pitch-shifted Piper voice, one whose emotion the text classifier
    labels) and reports what got imported: none of these is needed, and each cost seconds of start-up."""
    script = TWO_TURNS + "A: That sounds hard, tell me what happened.\n"  # no label: the MiniLM classifier runs
    code = f"""
import json, sys
import warmchat.speech.offline as offline
from warmchat import WarmChatConfig, generate

shifts = []
shift = offline.pitch_shift
offline.pitch_shift = lambda *args, **kw: shifts.append(1) or shift(*args, **kw)
cfg = WarmChatConfig(seed=0)
cfg.face.size = 256
cfg.speech.cache = False  # synthesise, so the pitch shift and the speech analysis run
generate({str(EXAMPLES / "astronaut.png")!r}, {str(EXAMPLES / "grace_hopper.jpg")!r}, emotion_a="happy",
         script={script!r}, out={str(tmp_path / "chat.mp4")!r}, config=cfg)
heavy = [m for m in ("librosa", "scipy.signal", "diffusers", "transformers") if m in sys.modules]
print(json.dumps({{"heavy": heavy, "pitch_shifts": len(shifts)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["pitch_shifts"] > 0, "the Piper turn was not pitch-shifted: the test no longer covers that path"
    assert report["heavy"] == [], f"imported while rendering a conversation: {report['heavy']}"
    assert (tmp_path / "chat.mp4").stat().st_size > 0
