"""Alignment for speech without timings: carry a reference voice's exact timings onto the audio by DTW.

The offline voice speaks the same text, so its phoneme and word timings are exact. Both signals become
per-utterance-normalised MFCC (+ delta) frames; dynamic time warping finds the monotonic frame-to-frame path
of least spectral distance, and every reference boundary is moved along that path. Normalising each utterance's
cepstra removes most of the speaker and channel difference (a female reference aligns a male recording).
"""

from __future__ import annotations

import numpy as np

from warmchat.speech.audio import Speech, resample

FEATURE_SR = 16000  # analysis rate: speech detail lives below 8 kHz
HOP_S = 0.01  # 10 ms analysis frames
N_MFCC = 13  # 13 beat 10, 16, 20 and 30 on cross-voice boundary error (docs/speech.md)


def features(audio: np.ndarray, sr: int) -> np.ndarray:
    """(D, F) per-utterance mean/variance-normalised MFCC and deltas, one frame per `HOP_S`."""
    import librosa

    y = resample(audio, sr, FEATURE_SR)
    hop = int(HOP_S * FEATURE_SR)
    mfcc = librosa.feature.mfcc(y=y, sr=FEATURE_SR, n_mfcc=N_MFCC, n_fft=512, hop_length=hop, n_mels=40)
    feats = np.vstack([mfcc, librosa.feature.delta(mfcc, width=5)])
    return (feats - feats.mean(axis=1, keepdims=True)) / (feats.std(axis=1, keepdims=True) + 1e-6)


def warp_map(reference: Speech, audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """The DTW path as monotonic (reference seconds, target seconds) pairs."""
    import librosa

    ref, tgt = features(reference.audio, reference.sample_rate), features(audio, sr)
    _, path = librosa.sequence.dtw(X=ref, Y=tgt, metric="euclidean")
    path = path[::-1].astype(np.float64) * HOP_S  # (N, 2) seconds, start to end
    return path[:, 0], path[:, 1]


def align(audio: np.ndarray, sr: int, reference: Speech) -> Speech:
    """Timings for `audio` (the same text as `reference`, any voice): the reference's, moved along the DTW path.

    Returns:
        Speech holding `audio` with phoneme and word spans on its own clock, contiguous and monotonic.
    """
    ref_t, tgt_t = warp_map(reference, audio, sr)
    duration = len(audio) / sr
    # Many target frames can pair with one reference instant (a stretched sound): take their middle.
    uniq, first = np.unique(ref_t, return_index=True)
    last = np.r_[first[1:], len(ref_t)] - 1
    mid = (tgt_t[first] + tgt_t[last]) / 2

    def move(t: float) -> float:
        if t >= reference.duration - 1e-9:
            return duration
        return float(np.clip(np.interp(t, uniq, mid), 0.0, duration))

    phonemes = []
    for label, a, b in reference.phonemes:
        a2, b2 = move(a), move(b)
        if phonemes:
            a2 = phonemes[-1][2]  # contiguous: each starts where the last ended
        if b2 > a2:
            phonemes.append((label, a2, b2))
        elif phonemes:
            phonemes[-1] = (phonemes[-1][0], phonemes[-1][1], max(phonemes[-1][2], b2))
    if phonemes:
        phonemes[0] = (phonemes[0][0], 0.0, phonemes[0][2])
        phonemes[-1] = (phonemes[-1][0], phonemes[-1][1], duration)
    words = [(w, move(a), move(b)) for w, a, b in reference.words]
    return Speech(audio.astype(np.float32), sr, phonemes, [(w, a, b) for w, a, b in words if b > a])
