"""Audio features aligned to video frames (log-mel, loudness, pitch), shared by motion extraction and motion models.

One function computes them for the real clips (training) and for synthesised speech (inference), so a model trained
on one sees the same numbers on the other. Each value depends only on the audio near its frame, and callers pass a
fixed stretch of audio (one turn), so the features of frames already rendered never change when the conversation
grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmchat.loading import load_once

FEATURE_SR = 16000  # speech content below 8 kHz is all the mouth follows
HOP = 160  # 10 ms analysis hop at 16 kHz, pooled to the video rate
WIN = 400  # 25 ms analysis window
N_FFT = 512
N_MELS = 40
F0_RANGE = (70.0, 400.0)  # Hz: adult speaking voices
SILENT_DB = -100.0  # level reported where there is no audio at all
YIN_FRAME = 1024  # pitch analysis window (64 ms: two periods of the lowest F0)
ANALYSIS_BLOCK = 3000  # 10 ms analysis frames (30 s) computed at a time


@dataclass
class FrameFeatures:
    """Audio features per video frame."""

    mel: np.ndarray  # (T, N_MELS) float32 natural-log mel power
    energy_db: np.ndarray  # (T,) float32 RMS level in dBFS over the frame's span
    f0: np.ndarray  # (T,) float32 pitch in Hz, 0 where unvoiced

    def __len__(self) -> int:
        return len(self.energy_db)


def silent_features(n_frames: int) -> FrameFeatures:
    """Features of `n_frames` frames of silence."""
    return FrameFeatures(
        mel=np.full((n_frames, N_MELS), np.log(1e-10), np.float32),
        energy_db=np.full(n_frames, SILENT_DB, np.float32),
        f0=np.zeros(n_frames, np.float32),
    )


# Slaney's mel scale (his Auditory Toolbox; librosa's default): linear up to 1 kHz, logarithmic above.
_MEL_BREAK_HZ = 1000.0
_HZ_PER_MEL = 200.0 / 3  # below the break: 1 kHz is 15 mels
_LOG_STEP = np.log(6.4) / 27.0  # above the break: natural-log Hz per mel


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    log_part = _MEL_BREAK_HZ / _HZ_PER_MEL + np.log(np.maximum(hz, _MEL_BREAK_HZ) / _MEL_BREAK_HZ) / _LOG_STEP
    return np.where(hz < _MEL_BREAK_HZ, hz / _HZ_PER_MEL, log_part)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    break_mel = _MEL_BREAK_HZ / _HZ_PER_MEL
    log_part = _MEL_BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mel, break_mel) - break_mel))
    return np.where(mel < break_mel, mel * _HZ_PER_MEL, log_part)


@load_once
def _mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) float32 triangular mel filters, 50 Hz to 7.6 kHz, Slaney area normalisation.

    The same matrix as librosa.filters.mel(sr=FEATURE_SR, n_fft=N_FFT, n_mels=N_MELS, fmin=50, fmax=7600), which
    the motion models were trained with; built here because importing librosa.filters costs ~1 s of start-up.
    """
    bin_hz = np.arange(N_FFT // 2 + 1) * (FEATURE_SR / N_FFT)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(50.0), _hz_to_mel(7600.0), N_MELS + 2))  # band i spans edges[i:i+3]
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz - low) / (centre - low)
    falling = (high - bin_hz) / (high - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (high - low))).astype(np.float32)  # each band's area ~ constant: equal energy


def _yin(y: np.ndarray, frame_length: int, hop: int, threshold: float = 0.1) -> np.ndarray:
    """(F,) YIN F0 in Hz of the frames of `y` (no padding: frame k starts at sample k * hop), FEATURE_SR audio.

    De Cheveigné & Kawahara's YIN as librosa.yin computes it (its models were trained with that): per frame, the
    difference function from an FFT autocorrelation, normalised by its cumulative mean; the period is the first
    trough under `threshold` (the global minimum if none), refined by a parabola through its neighbours. Written
    here because importing librosa's pitch module costs ~1.4 s of start-up.
    """
    min_period = int(np.floor(FEATURE_SR / F0_RANGE[1]))
    max_period = min(int(np.ceil(FEATURE_SR / F0_RANGE[0])), frame_length - 1)
    n = 1 + (len(y) - frame_length) // hop
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop][:n].astype(np.float64)  # (F, W)
    # Autocorrelation r(0..max_period) with zero padding to 2W, so lags do not wrap around.
    spectrum = np.fft.rfft(frames, 2 * frame_length, axis=1)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, 2 * frame_length, axis=1)[:, : max_period + 1]
    # Difference at lag k = 1..max_period: 2 (r(0) - r(k)) minus the energy of the frame's first k samples.
    diff = 2 * (acf[:, :1] - acf[:, 1:]) - np.cumsum(frames[:, :max_period] ** 2, axis=1)  # (F, max_period)
    mean = np.cumsum(diff, axis=1) / np.arange(1, max_period + 1)
    cmnd = diff[:, min_period - 1 :] / (mean[:, min_period - 1 :] + np.finfo(np.float64).tiny)  # lags min..max
    left, mid, right = cmnd[:, :-2], cmnd[:, 1:-1], cmnd[:, 2:]
    trough = np.zeros(cmnd.shape, bool)
    trough[:, 1:-1] = (mid < left) & (mid <= right)
    trough[:, 0] = cmnd[:, 0] < cmnd[:, 1]
    trough[:, -1] = cmnd[:, -1] < cmnd[:, -2]
    deep = trough & (cmnd < threshold)
    pick = np.where(deep.any(axis=1), deep.argmax(axis=1), cmnd.argmin(axis=1))  # (F,) lag index
    # Parabola through the pick and its neighbours; no shift at the ends or where the vertex lies beyond a neighbour.
    rows, inner = np.arange(n), np.clip(pick, 1, cmnd.shape[1] - 2)
    a = cmnd[rows, inner + 1] + cmnd[rows, inner - 1] - 2 * cmnd[rows, inner]
    b = (cmnd[rows, inner + 1] - cmnd[rows, inner - 1]) / 2
    ok = (np.abs(b) < np.abs(a)) & (pick == inner)
    shift = np.divide(-b, a, out=np.zeros(n), where=ok)
    return FEATURE_SR / (min_period + pick + shift)


def _analysis(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 Hz frames of a 16 kHz signal: (F, N_MELS) mel power, (F,) mean square, (F,) F0 (0 unvoiced).

    Computed ANALYSIS_BLOCK frames at a time (each frame reads only its own samples), so a long line needs memory
    for one block, not for all its frames' spectra at once.
    """
    n = len(y) // HOP + 1
    y = y.astype(np.float32)
    padded = np.pad(y, (WIN // 2, WIN // 2 + HOP))
    yin_padded = np.pad(y, YIN_FRAME // 2)  # YIN frame k centred on sample k * HOP too
    window = np.hanning(WIN).astype(np.float32)
    mel = np.empty((n, N_MELS), np.float32)
    mean_sq = np.empty(n)
    f0 = np.zeros(n)
    for k0 in range(0, n, ANALYSIS_BLOCK):
        k1 = min(k0 + ANALYSIS_BLOCK, n)
        idx = np.arange(WIN)[None, :] + HOP * np.arange(k0, k1)[:, None]
        frames = padded[idx]  # (B, WIN), frame k centred on sample k * HOP
        power = np.abs(np.fft.rfft(frames * window, N_FFT, axis=1)) ** 2 / (window**2).sum()
        mel[k0:k1] = power.astype(np.float32) @ _mel_filters().T
        mean_sq[k0:k1] = (frames.astype(np.float64) ** 2).mean(axis=1)
        if len(y) >= YIN_FRAME:
            f0[k0:k1] = _yin(yin_padded[k0 * HOP : (k1 - 1) * HOP + YIN_FRAME], YIN_FRAME, HOP)
    # YIN always answers; keep its F0 only in frames loud enough to be voiced speech.
    db = 10 * np.log10(mean_sq + 1e-12)
    voiced = db > max(np.percentile(db, 95) - 25.0, -60.0)
    return mel, mean_sq, np.where(voiced, f0, 0.0)


def frame_features(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> FrameFeatures:
    """Features of `n_frames` video frames, frame f centred at f / fps seconds into `audio`.

    Args:
        audio: (S,) float mono in [-1, 1]; frames past its end read as silence.
        sample_rate: of `audio`.
    Returns:
        FrameFeatures, each frame pooling the 10 ms analysis frames within half a video frame of its centre.
    """
    if n_frames <= 0:
        return silent_features(0)
    from warmchat.speech.audio import resample

    y = resample(np.asarray(audio, np.float32), sample_rate, FEATURE_SR)
    need = int(np.ceil((n_frames + 1) / fps * FEATURE_SR))
    y = np.pad(y, (0, max(0, need - len(y))))
    mel, mean_sq, f0 = _analysis(y)
    t = np.arange(len(mean_sq)) * HOP / FEATURE_SR
    # Each analysis frame belongs to the video frame whose centre is nearest.
    owner = np.clip(np.round(t * fps).astype(int), 0, None)
    keep = owner < n_frames
    owner, mel, mean_sq, f0 = owner[keep], mel[keep], mean_sq[keep], f0[keep]
    count = np.bincount(owner, minlength=n_frames).astype(np.float64)
    mel_sum = np.zeros((n_frames, N_MELS))
    np.add.at(mel_sum, owner, np.log(mel + 1e-10))
    energy = np.bincount(owner, weights=mean_sq, minlength=n_frames) / np.maximum(count, 1)
    voiced = f0 > 0
    f0_sum = np.bincount(owner, weights=np.where(voiced, np.log(np.maximum(f0, 1.0)), 0.0), minlength=n_frames)
    n_voiced = np.bincount(owner, weights=voiced.astype(float), minlength=n_frames)
    return FrameFeatures(
        mel=(mel_sum / np.maximum(count, 1)[:, None]).astype(np.float32),
        energy_db=(10 * np.log10(energy + 1e-10)).astype(np.float32),
        f0=np.where(n_voiced * 2 >= np.maximum(count, 1), np.exp(f0_sum / np.maximum(n_voiced, 1)), 0.0).astype(
            np.float32
        ),
    )
