"""OpenAI-compatible text-to-speech (`/v1/audio/speech`): a voice per person, the emotion said in the instructions."""

from __future__ import annotations

import functools
import io
import logging
import struct

import numpy as np

from warmchat.config import SpeechConfig
from warmchat.errors import BackendUnavailable

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 4000  # the API takes up to 4096 characters per request
# Built-in OpenAI voices and the register of each, used to pick the offline voice whose timings are carried over.
OPENAI_VOICES = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "nova": "female",
    "onyx": "male",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
}
# How each emotion should sound; the model follows these in its delivery (rate, pitch, energy, pauses).
DELIVERY = {
    "neutral": "Speak in a calm, even, conversational tone at a natural pace.",
    "happy": "Sound happy and warm, with a smile in the voice: slightly quicker, brighter and a little higher.",
    "sad": "Sound sad and subdued: slow, soft and a little lower, with longer pauses between phrases.",
    "angry": "Sound angry and tense: faster, louder and clipped, with hard emphasis and short pauses.",
    "surprised": "Sound genuinely surprised: higher pitch, lively rising intonation, a bit faster.",
    "fearful": "Sound anxious and fearful: quick, breathy, slightly higher and a little unsteady.",
    "disgusted": "Sound disgusted: slower, with a low, drawn-out, distasteful delivery.",
    "contempt": "Sound contemptuous and dismissive: slow, flat, slightly lower, with a cool sneer.",
}


def instructions(emotion: str, intensity: float) -> str:
    """Delivery instructions for `emotion` at `intensity` (0..1)."""
    degree = "slightly" if intensity < 0.4 else "clearly" if intensity < 0.8 else "strongly"
    return f"{DELIVERY.get(emotion, DELIVERY['neutral'])} The emotion should come through {degree}."


def missing_key() -> BackendUnavailable:
    return BackendUnavailable(
        "the openai TTS backend needs an API key: set WARMCHAT_TTS_API_KEY or OPENAI_API_KEY "
        "(and WARMCHAT_TTS_BASE_URL / OPENAI_BASE_URL for a compatible server), or use --tts offline"
    )


@functools.cache
def _client(api_key: str, base_url: str, timeout_s: float):
    from openai import OpenAI

    return OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=1)


def speak(text: str, voice: str, emotion: str, intensity: float, cfg: SpeechConfig) -> tuple[np.ndarray, int]:
    """One request to the TTS endpoint; returns float32 mono audio and its sample rate.

    Raises:
        BackendUnavailable: no API key, or the server refused or failed the request (the message says why).
    """
    import openai

    if not cfg.openai_api_key:
        raise missing_key()
    client = _client(cfg.openai_api_key, cfg.openai_base_url, cfg.openai_timeout_s)
    extra = {}
    if cfg.openai_model.startswith("tts-1"):  # the older models take no instructions, only a speed
        from warmchat.speech.prosody import prosody

        extra["speed"] = prosody(emotion, intensity).rate
    else:
        extra["instructions"] = instructions(emotion, intensity)
    try:
        response = client.audio.speech.create(
            model=cfg.openai_model, voice=voice, input=text, response_format="wav", **extra
        )
        data = response.read()
    except openai.AuthenticationError as exc:
        raise BackendUnavailable("the TTS server rejected the API key (HTTP 401); check WARMCHAT_TTS_API_KEY") from exc
    except openai.APIStatusError as exc:
        raise BackendUnavailable(f"the TTS server answered HTTP {exc.status_code} for voice {voice!r}") from exc
    except openai.APIConnectionError as exc:
        raise BackendUnavailable(f"cannot reach the TTS server ({cfg.openai_base_url or 'api.openai.com'})") from exc
    return decode_wav(data)


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """PCM WAV bytes -> (float32 mono audio, sample rate).

    Streamed WAVs from TTS servers often carry placeholder sizes (0 or 0xFFFFFFFF) in their headers, which
    strict readers refuse; this reads the format chunk and takes everything after the data header.
    """
    f = io.BytesIO(data)
    header = f.read(12)
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise BackendUnavailable("the TTS server did not return a WAV file (is it OpenAI-compatible?)")
    channels = sr = bits = None
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise BackendUnavailable("the WAV from the TTS server has no audio data")
        cid, size = head[:4], struct.unpack("<I", head[4:])[0]
        if cid == b"fmt ":
            fmt = f.read(size)
            tag, channels, sr, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag not in (1, 0xFFFE) or bits != 16:
                raise BackendUnavailable(f"unsupported WAV encoding from the TTS server (format {tag}, {bits} bit)")
        elif cid == b"data":
            if sr is None:
                raise BackendUnavailable("the WAV from the TTS server has no format chunk before its data")
            raw = f.read()
            raw = raw[: len(raw) // (2 * channels) * 2 * channels]
            pcm = np.frombuffer(raw, "<i2").reshape(-1, channels).mean(axis=1)
            return (pcm / 32768.0).astype(np.float32), int(sr)
        else:
            f.read(size + (size & 1))
