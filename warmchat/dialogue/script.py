"""The user's inputs to the dialogue stage: a script (``A: text`` / ``B [sad 0.4]: text``, a recorded line
``A [happy] <audio: takes/hello.m4a>: text``), a topic, a turn count."""

from __future__ import annotations

import re
from pathlib import Path

from warmchat import text_emotion
from warmchat.config import DialogueConfig, LimitsConfig
from warmchat.dialogue.base import TurnRequest
from warmchat.dialogue.hygiene import non_latin
from warmchat.emotions import normalize_emotion
from warmchat.errors import InputError
from warmchat.schema import Turn
from warmchat.speech.recorded import check_recording, resolve_recording
from warmchat.text_emotion import ClassifierName

MAX_TOPIC_CHARS = 300
# A generated conversation needs both people to speak; a user's script may have any number of lines up to the limit.
MIN_TURNS, MAX_TURNS = 2, 30
DEFAULT_INTENSITY = 0.7  # a script line with an emotion but no intensity

_LINE = re.compile(
    r"^\s*(?P<who>[AaBb])\s*(?:\[\s*(?P<emo>[A-Za-z]+)\s*,?\s*(?P<inten>[^\]]*?)\s*\])?"
    r"\s*(?:<\s*audio\s*:(?P<audio>[^>]*)>)?\s*:\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")


def parse_script(
    text: str,
    classifier: ClassifierName = "auto",
    limits: LimitsConfig | None = None,
    audio_dir: str | Path | None = None,
) -> list[Turn]:
    """Parse a user-written dialogue: one turn per line, ``A: text`` or ``B [sad]: text`` (or ``B [sad 0.4]: ...``).

    Blank lines and lines starting with ``#`` are skipped. Lines without an emotion are labelled by the offline
    text emotion classifier (all in one batch). A recorded line, ``A [happy] <audio: takes/hello.m4a>: text``, is
    played from that file instead of voiced; its text is still captioned and labelled.

    Args:
        text: the script itself (never a file name: callers read files).
        classifier: the offline emotion classifier for unlabelled lines.
        limits: lines per script, words and characters per line; None = `LimitsConfig()`'s defaults.
        audio_dir: the folder recorded lines may be read from (their paths are relative to it and may not leave
            it); None = a recorded line is refused (a script typed into the app never reads server files).
    Returns:
        One Turn per line, in order.
    Raises:
        InputError (field "script"): naming the first bad line, what is wrong and what it should look like.
    """
    limits = limits or LimitsConfig()
    text = text or ""
    max_chars = limits.script_lines * (limits.line_chars + 64)  # every line full, plus room for comments
    if len(text) > max_chars:
        raise InputError(f"the script is {len(text)} characters long; the limit is {max_chars} — shorten it", "script")
    numbered = [
        (number, raw)
        for number, raw in enumerate(text.splitlines(), start=1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError("the script has no lines; write one turn per line, e.g. 'A: Hello!'", "script")
    if len(numbered) > limits.script_lines:
        raise InputError(
            f"the script has {len(numbered)} lines; the limit is {limits.script_lines} — shorten the conversation "
            "or split it into several videos",
            "script",
        )
    turns: list[Turn] = []
    unlabelled: list[int] = []
    for number, raw in numbered:
        turn = _parse_line(number, raw, limits, audio_dir)
        if not turn.emotion_given:
            unlabelled.append(len(turns))
        turns.append(turn)
    labels = text_emotion.label_emotions([turns[i].text for i in unlabelled], classifier)
    for i, (emotion, intensity) in zip(unlabelled, labels, strict=True):
        turns[i].emotion, turns[i].intensity = emotion, intensity
    return turns


def _parse_line(number: int, raw: str, limits: LimitsConfig, audio_dir: str | Path | None) -> Turn:
    """One script line as a Turn (neutral and `emotion_given=False` when the line names no emotion)."""
    where = f"script line {number}"
    m = _LINE.match(raw)
    if not m:
        raise InputError(
            f"{where}: expected 'A: text', 'B [sad]: text' or 'A <audio: file.wav>: text', got {raw.strip()[:60]!r}",
            "script",
        )
    audio = None
    if m["audio"] is not None:  # checked before the text: this is the line's safety gate
        path = resolve_recording(m["audio"], audio_dir, where)
        check_recording(path, limits.speech_s, where)
        audio = m["audio"].strip()
    line_text = m["text"].strip()
    if foreign := non_latin(line_text):
        raise InputError(f"{where}: only English text can be voiced (Latin letters); got {foreign!r}", "script")
    if not re.search(r"[A-Za-z0-9]", line_text):
        raise InputError(f"{where}: the line has no words to say", "script")
    n_words = len(line_text.split())
    if n_words > limits.line_words:
        raise InputError(
            f"{where} has {n_words} words; the limit is {limits.line_words} words per line — split it into "
            "several lines",
            "script",
        )
    if len(line_text) > limits.line_chars:
        raise InputError(
            f"{where} has {len(line_text)} characters; the limit is {limits.line_chars} characters per line — "
            "split it into several lines",
            "script",
        )
    speaker = m["who"].upper()
    if not m["emo"]:
        return Turn(speaker, line_text, "neutral", 0.5, emotion_given=False, audio=audio)
    try:
        emotion = normalize_emotion(m["emo"])
    except ValueError as exc:
        raise InputError(f"{where}: {exc}", "script") from None
    intensity = DEFAULT_INTENSITY
    if m["inten"]:
        given = m["inten"]
        if not _NUMBER.match(given) or not 0.0 <= float(given) <= 1.0:
            raise InputError(f"{where}: intensity {given[:20]!r} is not a number between 0 and 1", "script")
        intensity = float(given)
    return Turn(speaker, line_text, emotion, intensity, emotion_given=True, audio=audio)


def check_topic(topic: str) -> str:
    """A cleaned topic, or an InputError saying what is wrong."""
    topic = re.sub(r"\s+", " ", topic or "").strip()
    if not topic:
        raise InputError(
            "the topic is empty; give the two people something to talk about, e.g. 'weekend plans'", "topic"
        )
    if len(topic) > MAX_TOPIC_CHARS:
        raise InputError(f"the topic is {len(topic)} characters long; keep it under {MAX_TOPIC_CHARS}", "topic")
    return topic


def check_turns(turns: int) -> int:
    """`turns` when it is a whole number of turns a generated conversation may have, else an InputError."""
    if not isinstance(turns, int) or not MIN_TURNS <= turns <= MAX_TURNS:
        raise InputError(f"turns must be a whole number from {MIN_TURNS} to {MAX_TURNS}, got {turns!r}", "turns")
    return turns


class ScriptBackend:
    """The user's own lines, in order."""

    name = "script"

    def __init__(
        self,
        script: str,
        config: DialogueConfig,
        limits: LimitsConfig | None = None,
        audio_dir: str | Path | None = None,
    ):
        self.turns = parse_script(script, config.emotion_classifier, limits, audio_dir)
        self.length = len(self.turns)

    def next_turn(self, request: TurnRequest) -> Turn:
        return self.turns[request.index]
