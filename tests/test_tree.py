"""Interactive Talking Tree: cumulative emotion behaves as documented, siblings are real, JSON round-trips."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from warmchat.emotions import EMOTIONS
from warmchat.schema import Segment, Timeline, Turn
from warmchat.tree import InteractiveTalkingTree, build_tree

HAPPY = EMOTIONS.index("happy")
ANGRY = EMOTIONS.index("angry")

turn_st = st.builds(
    Turn,
    speaker=st.sampled_from(["A", "B"]),
    text=st.just("line"),
    emotion=st.sampled_from(EMOTIONS),
    intensity=st.floats(0, 1),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(turn_st, min_size=0, max_size=12), st.sampled_from(EMOTIONS), st.sampled_from(EMOTIONS))
def test_cumulative_emotion_is_a_probability_vector(turns, prior_a, prior_b):
    tree = build_tree("topic", prior_a, prior_b, turns)
    for node in [None] + [n.id for n in tree.active_path()]:
        for person in ("A", "B"):
            e = tree.cumulative_emotion(person, node)
            assert e.shape == (8,)
            assert np.all(e >= 0) and abs(e.sum() - 1) < 1e-9


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6))
def test_more_happy_lines_from_a_raise_a_happiness(n):
    fewer = build_tree("t", "neutral", "neutral", [Turn("A", "yay", "happy", 0.9)] * n)
    more = build_tree("t", "neutral", "neutral", [Turn("A", "yay", "happy", 0.9)] * (n + 1))
    e_fewer = fewer.cumulative_emotion("A", fewer.active_path()[-1].id)
    e_more = more.cumulative_emotion("A", more.active_path()[-1].id)
    assert e_more[HAPPY] > e_fewer[HAPPY]


def test_contagion_is_weaker_than_own_emotion():
    tree = build_tree("t", "neutral", "neutral", [Turn("A", "hi", "neutral", 0.5), Turn("B", "grr", "angry", 0.9)])
    last = tree.active_path()[-1].id
    before_a = tree.cumulative_emotion("A", tree.active_path()[0].id)[ANGRY]
    a_angry = tree.cumulative_emotion("A", last)[ANGRY]
    b_angry = tree.cumulative_emotion("B", last)[ANGRY]
    assert a_angry > before_a  # A catches some of B's anger ...
    assert a_angry - before_a < b_angry  # ... but less than B feels it


def test_decay_makes_old_turns_matter_less():
    early = build_tree(
        "t", "neutral", "neutral", [Turn("A", "x", "angry", 1.0)] + [Turn("A", "y", "neutral", 1.0)] * 3
    )
    late = build_tree("t", "neutral", "neutral", [Turn("A", "y", "neutral", 1.0)] * 3 + [Turn("A", "x", "angry", 1.0)])
    e_early = early.cumulative_emotion("A", early.active_path()[-1].id)[ANGRY]
    e_late = late.cumulative_emotion("A", late.active_path()[-1].id)[ANGRY]
    assert e_late > e_early > 0


def test_regenerate_adds_an_active_sibling_and_traversal_follows_it():
    tree = build_tree("t", "neutral", "neutral", [Turn("A", "hello", "neutral"), Turn("B", "ugh", "angry", 1.0)])
    first_take = tree.active_path()[-1].id
    new = tree.regenerate(first_take, Turn("B", "wonderful!", "happy", 1.0))
    assert [n.id for n in tree.active_path()][-1] == new
    assert [s.id for s in tree.siblings(new)] == [first_take]
    e = tree.cumulative_emotion("B", new)
    assert e[HAPPY] > e[ANGRY] > 0  # the inactive take still counts, at reduced weight


def test_json_round_trip_gives_identical_results(tmp_path):
    tree = build_tree(
        "weekend", "happy", "sad", [Turn("A", "a", "happy"), Turn("B", "b", "sad"), Turn("A", "c", "surprised", 0.4)]
    )
    tree.regenerate(tree.active_path()[-1].id, Turn("A", "d", "angry", 0.9))
    tree.save(tmp_path / "t.json")
    loaded = InteractiveTalkingTree.load(tmp_path / "t.json")
    assert loaded.to_dict() == tree.to_dict()
    for node in tree.active_path():
        np.testing.assert_array_equal(loaded.cumulative_emotion("A", node.id), tree.cumulative_emotion("A", node.id))


def test_emotion_curves_move_from_prior_towards_each_turn():
    tree = build_tree("t", "neutral", "neutral", [Turn("A", "yay", "happy", 1.0), Turn("B", "oh", "sad", 1.0)])
    clock = Timeline(
        audio=np.zeros(24000 * 4, np.float32),
        sample_rate=24000,
        fps=25,
        segments=[Segment(0, "A", 0.5, 1.5), Segment(1, "B", 2.0, 3.5)],
    )
    curves = tree.emotion_curves(clock)
    a = curves["A"]
    assert a.shape == (100, 8)
    assert np.allclose(a.sum(axis=1), 1)
    assert a[5, HAPPY] < 0.01 and a[40, HAPPY] > 0.3  # before A speaks vs after A's happy line
    assert np.all(np.diff(a[12:38, HAPPY]) >= -1e-9)  # rises smoothly while the line is spoken
