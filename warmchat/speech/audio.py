"""Signal helpers for synthesised speech: timed phoneme lists, silence trimming, loudness, limiting, resampling."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAUSE = "_"  # phoneme label for silence: punctuation, sentence gaps, leading/trailing breath
SPOKEN = "spn"  # a stretch of recorded speech whose phonemes are unknown (a recording's timings are only its pauses)
# First characters of IPA vowels (both engines' phonemes are IPA; diphthongs like "aɪ" start with a vowel).
VOWELS = frozenset("aeiouyæɑɒɔəɛɜɪʊʌɚᵻɐɨøœɯɤ")


def is_vowel(phoneme: str) -> bool:
    """True for vowel phonemes (IPA), including diphthongs and r-coloured vowels."""
    return phoneme[:1] in VOWELS


@dataclass
class Speech:
    """Audio with timings, as passed between the engine, trimming and joining steps."""

    audio: np.ndarray  # (S,) float32 mono
    sample_rate: int
    phonemes: list[tuple[str, float, float]] = field(default_factory=list)  # (phoneme, start_s, end_s)
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start_s, end_s)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def frame_rms_db(audio: np.ndarray, sr: int, frame_s: float = 0.01) -> np.ndarray:
    """(F,) RMS level in dBFS per `frame_s` frame."""
    n = max(int(frame_s * sr), 1)
    f = len(audio) // n
    if f == 0:
        return np.full(1, -120.0)
    rms = np.sqrt(np.mean(audio[: f * n].astype(np.float64).reshape(f, n) ** 2, axis=1))
    return 20 * np.log10(rms + 1e-9)


def _shift(items: list[tuple[str, float, float]], offset: float, end: float) -> list[tuple[str, float, float]]:
    """Move spans by `offset` seconds, clip them to [0, end] and drop the ones left empty."""
    out = []
    for label, a, b in items:
        a, b = min(max(a + offset, 0.0), end), min(max(b + offset, 0.0), end)
        if b > a:
            out.append((label, a, b))
    return out


def trim(speech: Speech, threshold_db: float = -40.0, keep_s: float = 0.03) -> Speech:
    """Cut leading/trailing silence (frames `threshold_db` below the loudest), keeping `keep_s`; timings follow."""
    sr, audio = speech.sample_rate, speech.audio
    db = frame_rms_db(audio, sr)
    loud = np.flatnonzero(db > db.max() + threshold_db)
    if audio.size == 0 or loud.size == 0:
        return speech
    hop = max(int(0.01 * sr), 1)
    start = max(int(loud[0]) * hop - int(keep_s * sr), 0)
    stop = min((int(loud[-1]) + 1) * hop + int(keep_s * sr), len(audio))
    end = (stop - start) / sr
    return Speech(
        audio[start:stop],
        sr,
        _close(_shift(speech.phonemes, -start / sr, end), end),
        _shift(speech.words, -start / sr, end),
    )


def _close(phonemes: list[tuple[str, float, float]], end: float) -> list[tuple[str, float, float]]:
    """Make spans contiguous from 0 to `end`: a gap becomes a pause; neighbouring pauses merge."""
    out: list[tuple[str, float, float]] = []
    t = 0.0
    for label, a, b in phonemes:
        if a > t + 1e-6:
            out.append((PAUSE, t, a))
        out.append((label, max(a, t), b))
        t = b
    if end > t + 1e-6:
        out.append((PAUSE, t, end))
    merged: list[tuple[str, float, float]] = []
    for label, a, b in out:
        if merged and label == PAUSE and merged[-1][0] == PAUSE:
            merged[-1] = (PAUSE, merged[-1][1], b)
        else:
            merged.append((label, a, b))
    return merged


def join(parts: list[Speech], pause_s: float) -> Speech:
    """Concatenate sentences with `pause_s` of silence between them; timings move onto one clock."""
    sr = parts[0].sample_rate
    gap = np.zeros(int(round(pause_s * sr)), np.float32)
    audio, phonemes, words, t = [], [], [], 0.0
    for i, part in enumerate(parts):
        if i:
            audio.append(gap)
            t += len(gap) / sr
        audio.append(part.audio.astype(np.float32))
        phonemes += [(p, a + t, b + t) for p, a, b in part.phonemes]
        words += [(w, a + t, b + t) for w, a, b in part.words]
        t += len(part.audio) / sr
    out = np.concatenate(audio)
    return Speech(out, sr, _close(phonemes, len(out) / sr), words)


def voiced_rms(audio: np.ndarray, sr: int) -> float:
    """RMS over the speech-bearing frames (within 20 dB of the loudest), so pauses do not lower the level."""
    db = frame_rms_db(audio, sr, 0.02)
    loud = db[db > db.max() - 20]
    return float(10 ** (np.log10(np.mean(10 ** (loud / 10))) / 2)) if loud.size else 0.0


def normalize_loudness(audio: np.ndarray, sr: int, target_dbfs: float = -20.0) -> np.ndarray:
    """Scale so the voiced part has RMS `target_dbfs`: different voices and engines sound equally loud."""
    level = voiced_rms(audio, sr)
    if level < 1e-6:
        return audio
    return audio * np.float32(10 ** (target_dbfs / 20) / level)


def soft_limit(audio: np.ndarray, knee: float = 0.8) -> np.ndarray:
    """Leave samples below `knee` untouched and bend louder ones smoothly under 1.0 (no hard clipping)."""
    mag = np.abs(audio)
    over = mag > knee
    out = audio.copy()
    out[over] = np.sign(audio[over]) * (knee + (1 - knee) * np.tanh((mag[over] - knee) / (1 - knee)))
    return out.astype(np.float32)


def resample(audio: np.ndarray, sr_in: float, sr_out: int) -> np.ndarray:
    """High-quality resampling (soxr, a librosa dependency); rates may be fractional."""
    if sr_in == sr_out:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio, sr_in, sr_out).astype(np.float32)


def mean_f0(audio: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 500.0) -> float:
    """Mean pitch in Hz: geometric mean of pYIN's F0 over the frames it finds voiced (NaN if none)."""
    import librosa

    y = resample(audio, sr, 16000)  # pYIN cost grows with the rate; 16 kHz keeps every speech F0
    f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=16000, frame_length=1024, hop_length=160)
    return float(np.exp(np.mean(np.log(f0[voiced])))) if voiced.any() else float("nan")


def _hann(n: int) -> np.ndarray:
    """(n,) periodic Hann window: overlapping copies at a hop of n / 4 sum to a constant."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _time_stretch(audio: np.ndarray, rate: float, n_fft: int, hop: int) -> np.ndarray:
    """`audio` played `rate` times faster at the same pitch (phase vocoder), ~len(audio) / rate samples, float32.

    A centred STFT (Hann, zero padding), its frames resampled in time with linear magnitude interpolation and
    phases advanced by each bin's measured frequency, then an overlap-add inverse STFT normalised by the summed
    squared window, as librosa.effects.time_stretch does (float32 spectra, so the result matches it closely).
    """
    window = _hann(n_fft)
    padded = np.pad(audio.astype(np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (F, n_fft), frame k centred at k * hop
    spec = np.fft.rfft(frames * window, axis=1).astype(np.complex64)  # (F, n_fft // 2 + 1)
    n_frames = len(spec)

    # Phase vocoder: output frame t reads input position t * rate.
    steps = np.arange(0, n_frames, rate)
    spec = np.concatenate([spec, np.zeros((2, spec.shape[1]), spec.dtype)])  # reading frame k + 1 past the end
    mags, phases = np.abs(spec), np.angle(spec)
    expected = hop * 2 * np.pi * np.arange(spec.shape[1]) / n_fft  # (K,) radians a bin advances per hop
    out = np.empty((len(steps), spec.shape[1]), np.complex64)
    phase = phases[0].copy()  # float32, accumulated as librosa does
    for t, step in enumerate(steps):
        k, frac = int(step), step % 1.0
        mag = (1 - frac) * mags[k] + frac * mags[k + 1]
        out[t] = mag * (np.cos(phase) + 1j * np.sin(phase))
        deviation = phases[k + 1] - phases[k] - expected
        phase += expected + deviation - 2 * np.pi * np.round(deviation / (2 * np.pi))

    # Inverse STFT of the frames the output needs, overlap-added hop by hop (n_fft is a multiple of hop).
    length = int(round(len(audio) / rate))
    used = min(len(out), int(np.ceil((length + 2 * (n_fft // 2)) / hop)))
    pieces = n_fft // hop
    wave = (np.fft.irfft(out[:used], n_fft, axis=1) * window).reshape(used, pieces, hop)
    total = np.zeros((used + pieces - 1, hop))
    weight = np.zeros((used + pieces - 1, hop))
    for j in range(pieces):
        total[j : j + used] += wave[:, j]
        weight[j : j + used] += (window**2).reshape(pieces, hop)[j]
    total, weight = total.reshape(-1)[n_fft // 2 :], weight.reshape(-1)[n_fft // 2 :]
    y = np.zeros(length)
    m = min(length, len(total))
    nonzero = weight[:m] > np.finfo(np.float32).tiny
    y[:m][nonzero] = total[:m][nonzero] / weight[:m][nonzero]
    return y.astype(np.float32)


def pitch_shift(audio: np.ndarray, sr: int, semitones: float, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """(S,) float32 `audio` with its pitch moved by `semitones`, same length and timing.

    Time-stretches by the frequency ratio (phase vocoder), then resamples back to the original duration (soxr HQ),
    which moves every frequency by that ratio: the same steps as librosa.effects.pitch_shift (whose import costs
    1-2 s of start-up), so voices shifted by either sound the same.
    """
    if n_fft % hop:
        raise ValueError(f"pitch_shift: n_fft={n_fft} must be a multiple of hop={hop}")
    if len(audio) == 0:
        return np.zeros(0, np.float32)
    rate = 2.0 ** (-semitones / 12)
    shifted = resample(_time_stretch(audio, rate, n_fft, hop), sr / rate, sr)
    out = np.zeros(len(audio), np.float32)
    out[: min(len(out), len(shifted))] = shifted[: len(out)]
    return out
