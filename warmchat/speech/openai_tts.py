"""OpenAI-compatible text-to-speech (`/v1/audio/speech`): a voice per person, the emotion said in the instructions."""

from __future__ import annotations

import io
import logging
import struct

import numpy as np

from warmchat.config import SpeechConfig
from warmchat.errors import BackendUnavailable
from warmchat.server_url import OPENAI_DEFAULT_URL, check_server_url, openai_client, server_detail

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


def needs_key(cfg: SpeechConfig) -> bool:
    """True when `cfg` has no API key but needs one: api.openai.com does; a server of one's own may not."""
    return not cfg.openai_api_key and (cfg.openai_base_url or OPENAI_DEFAULT_URL).rstrip("/") == OPENAI_DEFAULT_URL


def server_url(cfg: SpeechConfig) -> str:
    """The TTS server's base URL: the configured one, checked (`check_server_url`), or api.openai.com."""
    return check_server_url(cfg.openai_base_url) if cfg.openai_base_url else OPENAI_DEFAULT_URL


def make_client(cfg: SpeechConfig):
    """A new client for one request; it reads nothing from the environment (`warmchat.server_url.openai_client`)."""
    return openai_client(cfg.openai_api_key, server_url(cfg), cfg.openai_timeout_s, max_retries=1)


def missing_key() -> BackendUnavailable:
    return BackendUnavailable(
        "the openai TTS backend needs an API key: set WARMCHAT_TTS_API_KEY or OPENAI_API_KEY "
        "(and WARMCHAT_TTS_BASE_URL / OPENAI_BASE_URL for a compatible server), or use --tts offline"
    )


def speak(text: str, voice: str, emotion: str, intensity: float, cfg: SpeechConfig) -> tuple[np.ndarray, int]:
    """One request to the TTS endpoint; returns float32 mono audio and its sample rate.

    The client is made for this request and closed after it, so no key outlives the request in a process-wide cache.
    Errors name the problem with the key scrubbed, and chain no client exception that could carry it.

    Raises:
        InputError: the configured server URL is not allowed (`check_server_url`).
        BackendUnavailable: no API key for api.openai.com, or the server refused or failed the request.
    """
    import openai

    if needs_key(cfg):
        raise missing_key()
    extra = {}
    if cfg.openai_model.startswith("tts-1"):  # the older models take no instructions, only a speed
        from warmchat.speech.prosody import prosody

        extra["speed"] = prosody(emotion, intensity).rate
    else:
        extra["instructions"] = instructions(emotion, intensity)
    url = server_url(cfg)
    try:
        with make_client(cfg) as client:
            response = client.audio.speech.create(
                model=cfg.openai_model, voice=voice, input=text, response_format="wav", **extra
            )
            data = response.read()
        error = None
    except openai.APIError as exc:
        error = _explain(exc, voice, url, cfg.openai_api_key)
    if error is not None:
        raise error  # outside the handler: no __cause__ or __context__ carries the client's error along
    if not isinstance(data, bytes | bytearray):
        raise BackendUnavailable("the TTS server did not return a WAV file (is it OpenAI-compatible?)")
    return decode_wav(bytes(data))


def _explain(exc: Exception, voice: str, url: str, key: str) -> BackendUnavailable:
    """The client's error as a BackendUnavailable saying what went wrong, with keys scrubbed."""
    import openai

    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return BackendUnavailable(
            f"the TTS server rejected the API key (HTTP {exc.status_code}); check WARMCHAT_TTS_API_KEY"
        )
    if isinstance(exc, openai.APIStatusError):
        return BackendUnavailable(
            f"the TTS server answered HTTP {exc.status_code} for voice {voice[:40]!r}: {server_detail(exc, key)}"
        )
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return BackendUnavailable(f"cannot reach the TTS server ({url})")
    return BackendUnavailable(f"the TTS server at {url} failed: {server_detail(exc, key)}")


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
            if len(fmt) < 16:
                raise BackendUnavailable("the WAV from the TTS server has a broken format chunk")
            tag, channels, sr, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag not in (1, 0xFFFE) or bits != 16 or not channels or not sr:
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
