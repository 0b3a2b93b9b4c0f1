"""Script parsing and offline emotion labels: what users write, and errors that point at the bad line."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat.dialogue import LocalBackend, TurnRequest, clean_generated, emotion_from_text, parse_script
from warmchat.emotions import soft_label
from warmchat.errors import InputError
from warmchat.schema import Turn
from warmchat.text_emotion import label_emotion


def test_parses_speakers_emotions_and_intensity():
    turns = parse_script("# comment\nA: Hello, great to see you!\n\nb [sad 0.4]: I lost my keys.\nB [Surprise]: Oh?")
    assert [(t.speaker, t.emotion) for t in turns] == [("A", "happy"), ("B", "sad"), ("B", "surprised")]
    assert turns[1].intensity == pytest.approx(0.4)
    assert turns[1].emotion_given and not turns[0].emotion_given


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("A: fine\nC: who am I?", "line 2"),
        ("A: fine\nB [grumpy]: hmm", "line 2: unknown emotion 'grumpy'"),
        ("A [happy 3]: wow", "line 1: intensity"),
        ("A: ok\n\nB: !!!", "line 3"),
        ("\n# only comments\n", "no lines"),
    ],
)
def test_bad_lines_are_named(script, needle):
    with pytest.raises(InputError) as info:
        parse_script(script)
    assert needle in str(info.value)
    assert info.value.field == "script"


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("I'm so happy, this is wonderful!", "happy"),
        ("I miss her so much, I feel lonely.", "sad"),
        ("This is ridiculous, I hate waiting!", "angry"),
        ("Wow, really? No way!", "surprised"),
        ("I'm scared of what might happen.", "fearful"),
        ("Ew, that is gross.", "disgusted"),
        ("The meeting is at three.", "neutral"),
    ],
)
@pytest.mark.parametrize("method", ["minilm", "lexicon"])
def test_offline_labels(text, emotion, method):
    assert label_emotion(text, method)[0] == emotion


def test_clean_generated_strips_prefixes_stage_directions_and_later_turns():
    raw = 'Alex: (smiles) "Sounds great, let us go hiking on Saturday! Maybe Sunday too"\nSam: sure'
    assert clean_generated(raw, {"A": "Alex", "B": "Sam"}, 28) == "Sounds great, let us go hiking on Saturday!"


def _request(history: list[str], speaker: str = "A") -> TurnRequest:
    turns = [Turn("AB"[i % 2], text, "neutral") for i, text in enumerate(history)]
    feelings = {"A": soft_label("neutral"), "B": soft_label("neutral")}
    return TurnRequest("weekend plans", {"A": "Alex", "B": "Sam"}, speaker, turns, feelings, len(turns), 6, 0)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("Let us go hiking on Saturday.", ""),
        ("Alex smiled and looked away.", "narration"),
        ("Alex, you should come hiking with me.", "the speaker says their own name"),
        ("I think I think I think we should go.", "a loop"),
        ("We could go go go to the lake.", "a loop"),
        ("What shall we do this weekend then?", "an echo of an earlier line"),
        ("Topic: weekend plans, they speak.", "an echo of the prompt"),
        ("Okay then.", "too short"),
    ],
)
def test_local_lines_are_filtered(line, why):
    request = _request(["What shall we do this weekend?"], speaker="A")
    assert LocalBackend.acceptable(line, request) == (why == ""), why


def test_tree_nudge_decides_only_ambiguous_lines():
    happy = soft_label("happy", 1.0)
    assert emotion_from_text("I miss her so much, I cried all night.", happy, 0.25, "minilm")[0] == "sad"
    assert emotion_from_text("The bus leaves at nine.", happy, 0.25, "minilm")[0] == "neutral"
    assert emotion_from_text("The bus leaves at nine.", happy, 0.9, "minilm")[0] == "happy"


def test_script_lines_without_emotion_are_classified_in_one_batch():
    turns = parse_script("A: Ew, the milk is rotten.\nB [happy]: Ha, I'll buy more.\nA: Whoa, you would? No way!")
    assert [t.emotion for t in turns] == ["disgusted", "happy", "surprised"]
    assert [t.emotion_given for t in turns] == [False, True, False]
    assert all(0.3 <= t.intensity <= 1.0 for t in turns)
    assert np.isclose(turns[1].intensity, 0.7)
