"""Audio-to-mouth on real speech: the evaluation protocol, the derived real tracks, the shipped model, lip timing."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat.motion import lipsync
from warmchat.motion.lipsync import TALKING_TRACKS, lagged_correlation, load_talking_track, predict_mouth
from warmchat.motion.speaker import LEAD_S, MOUTH, timed_mouth
from warmchat.speech import PAUSE

needs_tracks = pytest.mark.skipif(not any(TALKING_TRACKS.glob("*.npz")), reason="needs checkpoints/talking_tracks/")


def test_protocol_finds_the_lag_and_its_sign():
    rng = np.random.default_rng(0)
    real = np.convolve(rng.normal(size=200), np.ones(5) / 5, mode="same")
    late = np.r_[np.zeros(2), real[:-2]]  # trails the real mouth by 2 frames
    r, lag = lagged_correlation(late, real)
    assert lag == 2 and r > 0.99
    r, lag = lagged_correlation(np.r_[real[3:], np.zeros(3)], real)  # leads by 3
    assert lag == -3 and r > 0.99
    assert lagged_correlation(np.r_[np.zeros(6), real[:-6]], real)[0] < 0.9  # beyond +-3 frames is not searched


@needs_tracks
def test_real_tracks_hold_every_clip_with_its_own_speaker():
    tracks = [load_talking_track(p) for p in sorted(TALKING_TRACKS.glob("*.npz"))]
    assert len(tracks) == 19 and len({t.speaker for t in tracks}) == 19
    for t in tracks:
        n = len(t.gap)
        assert t.fps == 25 and t.mel.shape == (n, 40) and t.controls.shape == (n, len(lipsync.TRACK_CONTROLS))
        assert 0 <= np.percentile(t.gap, 5) < 0.02 < np.percentile(t.gap, 95) < 0.15  # closes and opens
        assert 0.2 < np.median(t.width) < 0.6 and t.found.mean() > 0.7


@needs_tracks
def test_folds_never_split_a_speaker():
    from warmchat.tools.train_lipsync import folds

    tracks = [load_talking_track(p) for p in sorted(TALKING_TRACKS.glob("*.npz"))]
    groups = folds(tracks, 5)
    speakers = [s for g in groups for s in g]
    assert len(speakers) == len(set(speakers)) == 19 and all(groups)


@needs_tracks
def test_shipped_model_follows_a_real_mouth_and_shuts_in_silence():
    model = lipsync.load_lipsync()
    track = load_talking_track(TALKING_TRACKS / "lipnet_grid_lbbc2a.npz")  # 1 s of silence, then a sentence
    mouth = predict_mouth(model, track.features, enc=track.enc)
    jaw = mouth[:, 0]
    assert mouth.shape == (len(track.gap), len(lipsync.TRACK_CONTROLS))
    assert lagged_correlation(jaw, track.gap)[0] > 0.5
    quiet = track.energy_db < track.energy_db.max() - 40
    assert quiet.any() and (jaw[quiet] == 0.0).mean() > 0.8 and jaw[quiet].max() < 0.1
    loud = track.energy_db > track.energy_db.max() - 10
    assert jaw[loud].mean() > 0.1 and (jaw[~quiet] < 0.05).any()  # opens on loud speech, closes inside it too


needs_whisper = pytest.mark.skipif(not lipsync.phonetic_available(), reason="needs faster-whisper + its model")


@needs_tracks
@needs_whisper
def test_phonetic_model_follows_an_unseen_speaker_where_the_loudness_peer_does_not():
    """Trained without the clip's speaker (settings by inner cross-validation): its jaw follows the real lips."""
    from warmchat.tools.train_lipsync import phonetic_items, train_phonetic

    tracks = [load_talking_track(p) for p in sorted(TALKING_TRACKS.glob("*.npz"))]
    held = next(t for t in tracks if t.name == "lipnet_grid_swiz3n")
    train = [t for t in tracks if t.speaker != held.speaker]
    model = train_phonetic(phonetic_items(train), train)
    assert model.weights.shape[1] == len(lipsync.TRACK_CONTROLS)
    jaw = predict_mouth(model, held.features, enc=held.enc)[:, 0]
    ours, lag = lagged_correlation(jaw, held.gap)
    loudness, _ = lagged_correlation(np.sqrt(10 ** (held.energy_db / 10)), held.gap)  # the RMS-envelope peer
    assert ours > 0.6 and ours > loudness + 0.2 and abs(lag) <= 2
    closed = held.gap < 0.15 * np.percentile(held.gap, 95)
    assert (jaw[closed] < 0.07).mean() > 0.5  # shut where the real lips are


@needs_whisper
def test_encoder_windows_of_long_audio_join_without_a_gap():
    """Audio longer than the encoder's 30 s goes in overlapping windows: every frame comes from one of them."""
    import ctranslate2

    from warmchat.speech.transcribe import load_whisper

    rng = np.random.default_rng(0)
    sr = lipsync.WHISPER_SR
    t = np.arange(45 * sr) / sr
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)).astype(np.float32)
    audio += rng.normal(0, 0.01, audio.shape).astype(np.float32)
    enc = lipsync.whisper_encoding(audio)
    assert abs(len(enc) - 45 * lipsync.ENC_RATE) <= 1 and enc.shape[1] == 384 and np.isfinite(enc).all()
    assert not (enc == 0).all(axis=1).any()

    whisper = load_whisper()
    mel = whisper.feature_extractor(audio)

    def window(start: int) -> np.ndarray:
        x = np.zeros((1, mel.shape[0], lipsync.WINDOW), np.float32)
        part = mel[:, start : start + lipsync.WINDOW]
        x[0, :, : part.shape[1]] = part
        return np.asarray(whisper.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True))[0]

    last_start = 2 * len(enc) - lipsync.WINDOW  # the last window ends with the audio
    np.testing.assert_allclose(enc[:1000], window(0)[:1000], atol=1e-5)  # the first 20 s: the first window's
    np.testing.assert_allclose(enc[-500:], window(last_start)[-500:], atol=1e-5)  # the last 10 s: the last one's
    frames = lipsync.encoder_inputs(audio, sr, 45 * 25, 25.0)
    assert frames.shape == (45 * 25, lipsync.ENC_DIM) and np.isfinite(frames).all()


@needs_whisper
def test_the_default_model_reads_the_audio_itself():
    from warmchat.motion.features import frame_features

    model = lipsync.load_lipsync()
    assert isinstance(model, lipsync.PhoneticMouth)
    sr, fps = 16000, 25
    t = np.arange(2 * sr) / sr
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * (t > 0.8)).astype(np.float32)  # silence, then a loud hum
    feats = frame_features(audio, sr, fps, 2 * fps)
    with pytest.raises(ValueError, match="audio"):
        predict_mouth(model, feats)
    mouth = predict_mouth(model, feats, audio, sr, fps)
    assert mouth.shape == (2 * fps, len(lipsync.TRACK_CONTROLS)) and (mouth[:15, 0] == 0.0).all()


def test_phoneme_mouth_runs_lead_s_ahead_of_the_sound():
    from warmchat.motion.features import silent_features

    fps = 25
    phonemes = [(PAUSE, 0.0, 0.4), ("m", 0.4, 0.48), ("ɑ", 0.48, 0.8), (PAUSE, 0.8, 1.2)]
    feats = silent_features(40)
    feats.energy_db[:] = -20.0  # loud throughout: the jaw is the visemes' alone
    mouth = timed_mouth(phonemes, 1.2, feats, 0, fps)
    jaw = mouth[:, MOUTH.index("jawOpen")]
    closure = int(round((0.44 - LEAD_S) * fps))
    assert jaw[closure] == 0.0 and jaw[int(round(0.44 * fps))] > 0.05  # shut before the /m/ sounds
    assert np.argmax(jaw) < int(round(0.64 * fps))  # the vowel peaks before its own centre


@needs_whisper
def test_a_line_without_timings_moves_the_lips_in_time_with_its_sound():
    """A conversation line from a TTS that gives no phonemes: the phonetic model reads the timeline's audio, and its
    jaw follows the phoneme-timed jaw of the same speech without a lag (the audio chunk lines up with the frames)."""
    from dataclasses import replace

    from warmchat.emotions import EMOTIONS
    from warmchat.motion.speaker import MOUTH_IDX, line_mouth
    from warmchat.schema import Turn
    from warmchat.speech import voice_turn
    from warmchat.timeline import build_timeline

    turns = [
        Turn("A", "Hello there.", "neutral", 0.5),
        Turn("B", "Bob and Mary moved to Boston last May.", "neutral", 0.5),
    ]
    utts = [voice_turn(t, i, "hibari", seed=i) for i, t in enumerate(turns)]
    timeline = build_timeline(turns, utts)
    seg = timeline.segments[1]
    emotion = np.eye(len(EMOTIONS))[EMOTIONS.index("neutral")]
    a, timed = line_mouth(seg, utts[1], timeline, emotion)
    b, learned = line_mouth(seg, replace(utts[1], phonemes=[]), timeline, emotion, lipsync.load_lipsync())
    assert a == b and learned.shape == timed.shape
    jaw_timed, jaw_learned = timed[:, MOUTH_IDX[0]], learned[:, MOUTH_IDX[0]]
    r, lag = lagged_correlation(jaw_learned, jaw_timed)
    assert r > 0.5 and abs(lag) <= 1
    assert jaw_learned[-2:].max() == 0.0 and jaw_learned.max() > 0.15  # shut in the silence after, opens on speech
