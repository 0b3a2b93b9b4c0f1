"""A fixed, automatic rubric for generated conversations (benchmarks/bench_dialogue.py prints it per backend).

Per line:
- on topic: cosine similarity of the line's MiniLM sentence embedding to the topic's >= `ON_TOPIC_THRESHOLD`, a
  threshold calibrated on hand-labelled lines (`data/dialogue_on_topic.tsv`, `calibrate_threshold`).
- repeat: most of its words are in an earlier line of the conversation (`hygiene.too_similar`), or it shares a
  four-word run with one.
- name confusion: the speaker says their own name, or a common first name that is neither person's.
- answers the previous line: it is closer (cosine) to the line it follows than to the line at the same place in the
  other conversation on the same topic (another seed), and it is not an echo of it. The topic is the same on both
  sides, so only the link to what was just said counts; chance is 50%.
- emotion agrees: the backend's emotion label equals the offline text classifier's label of the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warmchat.dialogue.hygiene import too_similar, words

# Calibrated by `calibrate_threshold` on data/dialogue_on_topic.tsv (README, docs/dialogue.md).
ON_TOPIC_THRESHOLD = 0.246
ON_TOPIC_LABELS = Path(__file__).resolve().parents[2] / "data" / "dialogue_on_topic.tsv"

# Common English first names: a line using one that is neither person's name has lost track of who is who.
FIRST_NAMES = frozenset(
    "alex sam maya leo nora omar priya tom lucy ben grace jack emma liam olivia noah ava ethan mia james sophia "
    "john mary david sarah michael anna chris kate daniel laura mark lisa paul amy peter jane ryan julia adam "
    "ella max zoe luke chloe jake lily ian ruth dan eva tim nina jo".split()
)


@dataclass
class Conversation:
    """One generated conversation, as the rubric sees it."""

    topic: str
    names: dict[str, str]  # "A"/"B" -> display name
    seed: int
    speakers: list[str] = field(default_factory=list)  # "A"/"B" per line
    lines: list[str] = field(default_factory=list)
    emotions: list[str] = field(default_factory=list)  # the backend's label per line
    seconds: list[float] = field(default_factory=list)  # wall time per line
    first_text_s: float | None = None  # time to the first streamed text of line 1


def name_confusion(line: str, speaker: str, listener: str) -> bool:
    """The speaker says their own name, or a common first name that is neither person's."""
    said = set(words(line))
    if speaker.lower() in said:
        return True
    return bool((said & FIRST_NAMES) - {listener.lower()})


def repeats(line: str, earlier: list[str]) -> bool:
    """Most words of `line` are in an earlier line, or it shares a four-word run with one."""
    grams = _grams(line)
    return any(too_similar(line, e) or grams & _grams(e) for e in earlier)


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def calibrate_threshold(similarities: np.ndarray, on_topic: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): the cut between two neighbouring similarities that best separates the
    hand labels (maximum of (true-positive rate + true-negative rate) / 2; ties: the middle such cut)."""
    s = np.sort(np.unique(similarities))
    cuts = (s[:-1] + s[1:]) / 2 if len(s) > 1 else s
    pos, neg = on_topic.astype(bool), ~on_topic.astype(bool)

    def balanced(t: float) -> float:
        return 0.5 * ((similarities[pos] >= t).mean() + (similarities[neg] < t).mean())

    scores = np.array([balanced(t) for t in cuts])
    best = np.flatnonzero(scores == scores.max())
    return float(cuts[best[len(best) // 2]]), float(scores.max())


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays of L2-normalised embeddings."""
    return np.einsum("nd,nd->n", a, b)


def score(conversations: list[Conversation], threshold: float = ON_TOPIC_THRESHOLD) -> dict:
    """The rubric over `conversations` (each topic ideally under two seeds): rates in 0..1 and seconds per line."""
    from warmchat import text_emotion

    lines = [line for c in conversations for line in c.lines]
    if not lines:
        return {"lines": 0}
    emb = text_emotion.embed(lines)  # (N, 384)
    topics = text_emotion.embed([c.topic for c in conversations])  # (C, 384)
    labels = [e for e, _ in text_emotion.label_emotions(lines)]
    rows: dict[tuple[int, int], int] = {}
    i = 0
    for ci, c in enumerate(conversations):
        for li in range(len(c.lines)):
            rows[ci, li] = i
            i += 1
    on_topic, repeat, confused, agree, answers, answer_total = [], [], [], [], 0, 0
    for ci, c in enumerate(conversations):
        twin = next(
            (k for k, o in enumerate(conversations) if k != ci and o.topic == c.topic and o.seed != c.seed), None
        )
        for li, line in enumerate(c.lines):
            e = emb[rows[ci, li]]
            on_topic.append(float(e @ topics[ci]) >= threshold)
            repeat.append(repeats(line, c.lines[:li]))
            speaker = c.names[c.speakers[li]]
            listener = c.names["B" if c.speakers[li] == "A" else "A"]
            confused.append(name_confusion(line, speaker, listener))
            agree.append(c.emotions[li] == labels[rows[ci, li]])
            if li > 0 and twin is not None and li - 1 < len(conversations[twin].lines):
                answer_total += 1
                own = float(e @ emb[rows[ci, li - 1]])
                other = float(e @ emb[rows[twin, li - 1]])
                answers += own > other and not too_similar(line, c.lines[li - 1])
    seconds = [s for c in conversations for s in c.seconds]
    firsts = [c.first_text_s for c in conversations if c.first_text_s is not None]
    return {
        "conversations": len(conversations),
        "lines": len(lines),
        "on_topic": round(float(np.mean(on_topic)), 3),
        "repeat": round(float(np.mean(repeat)), 3),
        "name_confusion": round(float(np.mean(confused)), 3),
        "answers_previous": round(answers / max(answer_total, 1), 3),
        "emotion_agrees": round(float(np.mean(agree)), 3),
        "s_per_turn": round(float(np.mean(seconds)), 2) if seconds else None,
        "first_text_s": round(float(np.median(firsts)), 2) if firsts else None,
        "words_per_line": round(float(np.mean([len(line.split()) for line in lines])), 1),
    }


def read_on_topic_labels(path: Path = ON_TOPIC_LABELS) -> tuple[list[bool], list[str], list[str]]:
    """(on topic?, topics, lines) from the hand-labelled TSV: `1|0<TAB>topic<TAB>line`; '#' lines are comments."""
    labels, topics, lines = [], [], []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            label, topic, line = raw.split("\t", 2)
            labels.append(label.strip() == "1")
            topics.append(topic.strip())
            lines.append(line.strip())
    return labels, topics, lines
