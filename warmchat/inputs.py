"""Validation of one conversation request, shared by the CLI, the Python API and the app: all of it before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmchat import dialogue, speech
from warmchat.config import WarmChatConfig
from warmchat.emotions import normalize_emotion
from warmchat.errors import InputError

MIN_SIZE = 64  # pixels per face; below this a face has no room for a mouth
MAX_NAME_CHARS = 40


@dataclass
class Request:
    """A checked request: normalised values the stages can trust."""

    portrait_a: str | Path | np.ndarray
    portrait_b: str | Path | np.ndarray
    emotion_a: str
    emotion_b: str
    topic: str
    turns: int  # lines to generate (ignored with a script)
    script: str | None  # the user's dialogue text, or None to generate one
    out: Path  # the .mp4 to write (its folder exists)
    names: dict[str, str]  # "A"/"B" -> display name


def check_inputs(
    portrait_a: str | Path | np.ndarray,
    portrait_b: str | Path | np.ndarray,
    *,
    emotion_a: str,
    emotion_b: str,
    topic: str,
    turns: int | None,
    script: str | None,
    out: str | Path,
    names: dict[str, str] | None,
    config: WarmChatConfig,
) -> Request:
    """Check every input and setting; returns the normalised request.

    Raises:
        InputError: naming the input (`field`: "portrait_a", "size", "script", "out", ...) and how to fix it.
    """
    _check_settings(config)
    portraits = [_check_portrait(p, who) for p, who in ((portrait_a, "A"), (portrait_b, "B"))]
    emotions = []
    for name, value in (("emotion_a", emotion_a), ("emotion_b", emotion_b)):
        try:
            emotions.append(normalize_emotion(value))
        except ValueError as exc:
            raise InputError(f"{name}: {exc}", name) from exc
    if script is not None and not isinstance(script, str):
        # Text only: a path here would let a caller (or a visitor) make the server read its files.
        raise InputError("script: pass the dialogue's text, not a path (the CLI reads a file with --script)", "script")
    script = script if script and script.strip() else None
    if script is None and config.dialogue.backend == "script":
        raise InputError("the script dialogue backend needs a script: write one line per turn, 'A: text'", "script")
    turns = config.dialogue.turns if turns is None else turns
    if script is None:
        dialogue.check_turns(turns)
        if turns > config.limits.script_lines:
            raise InputError(f"turns: at most {config.limits.script_lines} turns here, got {turns}", "turns")
    topic = dialogue.check_topic(topic) if (script is None or (topic or "").strip()) else "(a conversation)"
    speech.check_voices(config.speech)
    return Request(
        portrait_a=portraits[0],
        portrait_b=portraits[1],
        emotion_a=emotions[0],
        emotion_b=emotions[1],
        topic=topic,
        turns=turns,
        script=script,
        out=_check_out(out),
        names=_check_names(names),
    )


def _check_settings(cfg: WarmChatConfig) -> None:
    limits = cfg.limits
    size = cfg.face.size
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= limits.max_size or size % 8:
        raise InputError(
            f"size: the face size must be a multiple of 8 from {MIN_SIZE} to {limits.max_size} pixels, got {size!r}",
            "size",
        )
    fps = cfg.compose.fps
    if not isinstance(fps, int) or isinstance(fps, bool) or not 1 <= fps <= limits.max_fps:
        raise InputError(f"fps: must be a whole number from 1 to {limits.max_fps}, got {fps!r}", "fps")
    seed = cfg.seed
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise InputError(f"seed: must be a whole number from 0 to {2**32 - 1}, got {seed!r}", "seed")


def _check_portrait(source, who: str):
    """Files must exist and be files; the face stage decodes and checks what is inside."""
    if isinstance(source, np.ndarray):
        return source
    field = f"portrait_{who.lower()}"
    if source is None or not str(source).strip():
        raise InputError(f"Portrait {who} is missing: give a photo of a person's face.", field)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"Portrait {who}: file not found: {path}", field)
    return path


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"out: the output must be an .mp4 file, got {str(out)!r}", "out")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"out: cannot create the folder {str(folder)!r} ({exc.strerror})", "out") from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"out: the folder {str(folder)!r} is not writable", "out")
    if out.is_dir():
        raise InputError(f"out: {str(out)!r} is a folder; give a file name ending in .mp4", "out")
    return out


def _check_names(names: dict[str, str] | None) -> dict[str, str]:
    given = {"A": "Alex", "B": "Sam", **(names or {})}
    checked = {}
    for who in ("A", "B"):
        name = " ".join(str(given[who] or "").split()) or who
        if len(name) > MAX_NAME_CHARS:
            field = f"name_{who.lower()}"
            raise InputError(f"{field}: keep names under {MAX_NAME_CHARS} characters", field)
        checked[who] = name
    return checked
