"""Script parsing and offline emotion labels: what users write, and errors that point at the bad line."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat.config import DialogueConfig, LimitsConfig
from warmchat.dialogue import (
    LocalBackend,
    TurnRequest,
    clean_generated,
    emotion_from_text,
    generate_dialogue,
    make_backend,
    parse_script,
)
from warmchat.dialogue.hygiene import fit_line
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


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("A [sad 0.4.4]: hi", "script line 1: intensity '0.4.4' is not a number between 0 and 1"),
        ("A: fine\nB [sad .]: hi", "script line 2: intensity '.' is not a number between 0 and 1"),
        ("A [sad -0.2]: hi", "script line 1: intensity '-0.2' is not a number between 0 and 1"),
        ("A [sad 1.5]: hi", "script line 1: intensity '1.5' is not a number between 0 and 1"),
        ("A [sad nan]: hi", "script line 1: intensity 'nan' is not a number between 0 and 1"),
        ("A: Hello!\nB: 你好", "script line 2: only English text can be voiced (Latin letters); got '你好'"),
        ("A: Привет, как дела?", "script line 1: only English text can be voiced (Latin letters); got 'Привет'"),
        ("A: Hello 世界 friend", "got '世界'"),
        ("A: 🙂🙂", "script line 1: the line has no words to say"),
    ],
)
def test_malformed_and_foreign_lines_are_clear_input_errors(script, needle):
    with pytest.raises(InputError) as info:
        parse_script(script)
    assert needle in str(info.value)
    assert info.value.field == "script"
    assert info.value.__cause__ is None  # one clear error, no traceback of a ValueError behind it


def test_accents_and_a_trimmed_intensity_are_fine():
    turns = parse_script("A [happy .5]: Café au lait, naïve señor!\nB [sad, 1]: Oh.\nA [angry 0]: Hm.")
    assert [t.intensity for t in turns] == [0.5, 1.0, 0.0]
    assert turns[0].text == "Café au lait, naïve señor!"


def test_per_line_and_per_script_limits_name_the_line():
    limits = LimitsConfig(line_words=80, line_chars=600, script_lines=12)
    long_line = " ".join(["word"] * 1000)
    with pytest.raises(InputError) as info:
        parse_script(f"A: hi\nB: hello\nA: {long_line}", limits=limits)
    assert str(info.value) == (
        "script line 3 has 1000 words; the limit is 80 words per line — split it into several lines"
    )
    with pytest.raises(InputError, match="script line 2 has 700 characters; the limit is 600 characters per line"):
        parse_script("A: hi\nB: " + "x" * 700, limits=limits)
    with pytest.raises(InputError, match=r"^the script has 200 lines; the limit is 12 — "):
        parse_script("\n".join(f"{'AB'[i % 2]}: line {i}" for i in range(200)), limits=limits)
    with pytest.raises(InputError, match="characters long; the limit is"):
        parse_script("# " + "x" * 100_000 + "\nA: hi", limits=limits)
    assert len(parse_script("\n".join(f"{'AB'[i % 2]}: line {i}" for i in range(12)), limits=limits)) == 12
    # The script backend takes the same limits.
    cfg = DialogueConfig(backend="script")
    with pytest.raises(InputError, match="the limit is 3"):
        make_backend(cfg, "A: a\nB: b\nA: c\nB: d", LimitsConfig(script_lines=3))
    with pytest.raises(InputError, match="the limit is 3"):
        generate_dialogue(
            "", "neutral", "neutral", cfg, script="A: a\nB: b\nA: c\nB: d", limits=LimitsConfig(script_lines=3)
        )


def test_a_script_is_text_never_a_path(tmp_path):
    path = tmp_path / "script.txt"
    path.write_text("A: Hello there.\nB: Hi!")
    with pytest.raises(InputError, match="script line 1: expected 'A: text'"):
        parse_script(str(path))  # a file name is just a bad line, never opened
    with pytest.raises(TypeError, match="script's text"):
        make_backend(DialogueConfig(backend="script"), path)


def test_generated_lines_are_cut_to_words_and_characters():
    raw = "Wow" + "o" * 5000 + "! " + "really " * 3000
    line = clean_generated(raw, {"A": "Alex", "B": "Sam"}, 28, max_chars=60)
    assert len(line) <= 60 and line.endswith(".")
    line = clean_generated("one two three four five six seven", {}, 4, max_chars=400)
    assert line == "one two three four."
    assert fit_line("aaa bbb ccc", 10, 6) == "aaa"
    assert fit_line("x" * 50, 10, 7) == "x" * 7
