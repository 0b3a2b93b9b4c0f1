"""Script parsing and offline emotion labels: what users write, and errors that point at the bad line."""

from __future__ import annotations

import pytest

from warmchat.dialogue import clean_generated, label_emotion, parse_script
from warmchat.errors import InputError


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
def test_offline_labels(text, emotion):
    assert label_emotion(text)[0] == emotion


def test_clean_generated_strips_prefixes_stage_directions_and_later_turns():
    raw = 'Alex: (smiles) "Sounds great, let us go hiking on Saturday! Maybe Sunday too"\nSam: sure'
    assert clean_generated(raw, {"A": "Alex", "B": "Sam"}, 28) == "Sounds great, let us go hiking on Saturday!"
