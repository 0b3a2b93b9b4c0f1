"""Recorded lines: a script line that brings its own recording (``A [happy] <audio: takes/hello.m4a>: Hello!``).

The recording replaces the voice for that turn. It is read only from a folder the caller grants (the CLI: the
script's own folder); without one, or for a path that leaves it, the line is refused, so a script typed into the
public app can never make the server read its files. The audio is decoded by ffmpeg (`animate.decode_audio`: WAV,
MP3, M4A, FLAC, OGG, WebM; no audio stream, silent or over-long files are refused), and levelled like the voices.

A recording has no phoneme timings, only its stretches of speech and pause (so the listener reacts at its pauses):
the speaker's mouth comes from the learned audio-to-mouth model reading the recording itself
(`motion.speaker.line_mouth`). Transcript timings carried onto the audio by DTW were measured worse
for the jaw on real speech (held-out real clips, docs/motion.md: r 0.41 against the phonetic model's 0.73), and the
conversation's phoneme route drives the jaw from the timings, so no alignment is made.
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import numpy as np

from warmchat.errors import InputError
from warmchat.schema import Utterance
from warmchat.speech.audio import PAUSE, SPOKEN, frame_rms_db, normalize_loudness, soft_limit

PAUSE_DB = 35.0  # 10 ms frames this far below the recording's loudest are silence (as for the chat's recordings)
MIN_SPAN_S = 0.06  # shorter stretches (a click, a stop consonant's closure) join the one before

NO_FOLDER = (
    "recorded lines are only read from the folder given by audio_dir= (CLI: the script's folder, with render "
    "--script); the web app and batch manifests read none. Remove the <audio: ...> part to have the voice speak it"
)


def resolve_recording(ref: str, audio_dir: str | Path | None, where: str) -> Path:
    """The recording a script line names, inside `audio_dir`.

    Args:
        ref: the path as the script writes it, relative to `audio_dir`.
        audio_dir: the folder recordings may be read from; None = none may be read.
        where: names the line in errors, e.g. "script line 3".
    Raises:
        InputError (field "script"): no folder granted, a path that leaves it (``..``, absolute, a symlink out),
            a missing file or one that is not an audio format WarmChat reads.
    """
    from warmchat.animate import check_audio_path

    if audio_dir is None:
        raise InputError(f"{where} refers to an audio file; {NO_FOLDER}", "script")
    if not ref.strip():
        raise InputError(f"{where}: <audio: ...> names no file; write e.g. <audio: takes/hello.wav>", "script")
    rel = Path(ref.strip())
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        raise InputError(
            f"{where}: the audio file {ref.strip()!r} must be inside the script's folder; give a path relative to "
            "it without '..'",
            "script",
        )
    base = Path(audio_dir).resolve()
    path = (base / rel).resolve()  # follows symlinks: one pointing out of the folder is refused below
    if not path.is_relative_to(base):
        raise InputError(f"{where}: the audio file {ref.strip()!r} leads out of the script's folder", "script")
    try:
        return check_audio_path(path)
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).removeprefix('audio: ')}", "script") from None


def check_recording(path: Path, max_s: float, where: str) -> None:
    """Refuse a file with no audio stream or longer than `max_s`, from its header (before any work is done)."""
    from warmchat.animate import probe_duration

    try:
        seconds = probe_duration(path)
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).removeprefix('audio: ')}", "script") from None
    if seconds > max_s:
        raise InputError(
            f"{where}: {path.name} is {seconds:.0f} s long; a conversation may last {max_s:g} s", "script"
        )


def load_recording(path: Path, text: str, target_dbfs: float, max_s: float) -> Utterance:
    """The recording as a turn's utterance: mono float32, levelled to the voices' speech level, as long as recorded.

    Args:
        path: a file from `resolve_recording`.
        text: the line's text (captions, tree); the mouth never reads it.
        target_dbfs: the voiced-part level the voices are normalised to (`SpeechConfig.target_dbfs`).
        max_s: the longest recording accepted (the conversation's `limits.speech_s`).
    Raises:
        InputError: no audio stream, silent, too short or too long (`animate.decode_audio`).
    """
    from warmchat.animate import SAMPLE_RATE, decode_audio, read_span

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "line.wav"
        try:
            decode_audio(path, wav, max_s)
        except InputError as exc:
            raise InputError(f"the recording {str(exc).removeprefix('audio: ')}", "script") from None
        with wave.open(str(wav), "rb") as w:
            n = w.getnframes()
        audio = read_span(wav, n, 0, n)  # (S,) float32 at SAMPLE_RATE
    # Levelled like the voices (voiced-part RMS), so a quiet or hot recording sits at the others' loudness.
    level = soft_limit(normalize_loudness(audio, SAMPLE_RATE, target_dbfs)).astype(np.float32)
    return Utterance(level, SAMPLE_RATE, text, "recording", phonemes=speech_and_pauses(level, SAMPLE_RATE))


def speech_and_pauses(audio: np.ndarray, sr: int) -> list[tuple[str, float, float]]:
    """The recording's timings: alternating (`SPOKEN` | `PAUSE`, start_s, end_s) stretches, contiguous from 0 to its
    end. The listener's reactions and the speaker's phrase-end blinks come at its pauses, as for a voiced line."""
    db = frame_rms_db(audio, sr)  # (S // (sr / 100),) per 10 ms
    voiced = db > db.max() - PAUSE_DB
    duration = len(audio) / sr
    spans: list[tuple[str, float, float]] = []
    start = 0
    for i in range(1, len(voiced) + 1):
        if i == len(voiced) or voiced[i] != voiced[start]:
            label, a, b = SPOKEN if voiced[start] else PAUSE, start * 0.01, duration if i == len(voiced) else i * 0.01
            if spans and (b - a < MIN_SPAN_S or spans[-1][0] == label):
                spans[-1] = (spans[-1][0], spans[-1][1], b)
            else:
                spans.append((label, a, b))
            start = i
    return [(p, round(a, 5), round(b, 5)) for p, a, b in spans]
