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
    mouth = predict_mouth(model, track.features)
    jaw = mouth[:, 0]
    assert mouth.shape == (len(track.gap), len(lipsync.TRACK_CONTROLS))
    assert lagged_correlation(jaw, track.gap)[0] > 0.5
    quiet = track.energy_db < track.energy_db.max() - 40
    assert quiet.any() and jaw[quiet].max() == 0.0
    loud = track.energy_db > track.energy_db.max() - 10
    assert jaw[loud].mean() > 0.1 and (jaw[~quiet] < 0.05).any()  # opens on loud speech, closes inside it too


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
