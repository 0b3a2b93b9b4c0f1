"""Text hygiene for lines: cleaning model output into one spoken line, length bounds, echo and loop detection."""

from __future__ import annotations

import re
import unicodedata

MAX_RAW_CHARS = 20_000  # model output beyond this is never looked at (a hostile server may send megabytes)

_STAGE = re.compile(r"\([^)]*\)|\*[^*]*\*|\[[^\]]*\]")
_PREFIX = re.compile(r"^\s*(?:[A-Z][a-zA-Z]{0,20}|Person [AB]|[AB])\s*:\s*")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


def clean_generated(text: str, names: dict[str, str], max_words: int, max_chars: int | None = None) -> str:
    """Make raw model output one short spoken line: no speaker prefixes, stage directions, quotes or later turns.

    Args:
        text: what the model wrote.
        names: "A"/"B" -> display name, to find where the model starts writing the other person's line.
        max_words: the line is cut at the last sentence end within this many words.
        max_chars: and never longer than this many characters (None: no bound beyond `max_words`).
    Returns:
        At most two sentences, ending in . ! or ?; "" when nothing usable is left.
    """
    text = text[:MAX_RAW_CHARS].strip()
    # Stop at the point the model starts writing the other person's line.
    for name in list(names.values()) + ["A", "B", "Person A", "Person B", "User", "Assistant"]:
        m = re.search(r"\n\s*" + re.escape(name) + r"\s*:", text)
        if m:
            text = text[: m.start()]
    text = text.split("\n")[0]  # one line: whatever follows is the next speaker or narration
    text = _PREFIX.sub("", text)
    text = _STAGE.sub("", text)
    text = _EMOJI.sub("", text)
    text = text.replace("\n", " ").strip().strip('"“”').strip()
    text = re.sub(r"\s+([,.!?])", r"\1", re.sub(r"\s+", " ", text))
    # Leave room for the full stop added below.
    text = fit_line(text, max_words, None if max_chars is None else max(max_chars - 1, 1))
    # Cut at the last sentence end; a line that never ends a sentence gets a full stop.
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    if ends:
        text = text[: ends[min(len(ends), 2) - 1]]  # at most two sentences: turns stay short and spoken
    elif text:
        text = text.rstrip(",;:- ") + "."
    return text.strip()


def fit_line(text: str, max_words: int, max_chars: int | None = None) -> str:
    """`text` cut to at most `max_words` words and `max_chars` characters (at a space where there is one)."""
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
    if max_chars is not None and len(text) > max_chars:
        cut = text[: max_chars + 1]
        space = cut.rfind(" ")
        text = cut[:space] if space > 0 else cut[:max_chars]
    return text.strip()


def non_latin(text: str) -> str:
    """The first run of letters from a script other than Latin (e.g. '你好', 'Привет'); "" when there is none.

    The voices speak English only: such letters would be skipped or mispronounced.
    """
    start = next((i for i, ch in enumerate(text) if ch.isalpha() and not _is_latin(ch)), None)
    if start is None:
        return ""
    end = start
    while end < len(text) and (text[end].isspace() or not _is_latin(text[end]) or _is_mark(text[end])):
        end += 1
    return text[start:end].strip()[:40]


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")  # vowel signs and accents of many scripts


def _is_latin(ch: str) -> bool:
    return not ch.isalpha() or ch.isascii() or "LATIN" in unicodedata.name(ch, "")


def words(text: str) -> list[str]:
    """Lower-case words of `text`, for comparing lines."""
    return re.findall(r"[a-z0-9']+", text.lower())


def too_similar(a: str, b: str) -> bool:
    """True when most words of the shorter line are in the other: an echo of an earlier line."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return False
    return len(wa & wb) / min(len(wa), len(wb)) > 0.8


def repetitive(text: str) -> bool:
    """A word three times in a row, or a three-word phrase said twice: a small model stuck in a loop."""
    w = words(text)
    if any(w[i] == w[i + 1] == w[i + 2] for i in range(len(w) - 2)):
        return True
    grams = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    return len(grams) != len(set(grams))


def ngrams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    """The set of n-word runs of `text`."""
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
