"""Interactive Talking Tree: cumulative emotion behaves as documented, siblings are real, JSON round-trips."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from warmchat.emotions import EMOTIONS, VALENCE_AROUSAL
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


@settings(max_examples=40, deadline=None)
@given(
    st.lists(turn_st, min_size=1, max_size=10),
    st.lists(st.tuples(st.integers(0, 9), turn_st), max_size=3),
    st.sampled_from(EMOTIONS),
    st.sampled_from(EMOTIONS),
)
def test_same_inputs_give_the_same_result_and_json_round_trips(turns, regens, prior_a, prior_b):
    def make():
        tree = build_tree("topic", prior_a, prior_b, turns)
        for index, turn in regens:
            path = tree.active_path()
            tree.regenerate(path[index % len(path)].id, turn)
        return tree

    first, second = make(), make()
    assert first.to_dict() == second.to_dict()
    loaded = InteractiveTalkingTree.from_dict(json.loads(json.dumps(first.to_dict())))
    assert loaded.to_dict() == first.to_dict()


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(EMOTIONS[1:]), st.floats(0.1, 1.0))
def test_contagion_is_weaker_than_own_emotion_for_any_emotion(emotion, intensity):
    k = EMOTIONS.index(emotion)
    tree = build_tree("t", "neutral", "neutral", [Turn("A", "hi", "neutral", 0.5), Turn("B", "x", emotion, intensity)])
    first, last = (n.id for n in tree.active_path())
    caught = tree.cumulative_emotion("A", last)[k] - tree.cumulative_emotion("A", first)[k]
    assert 0 < caught < tree.cumulative_emotion("B", last)[k]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 5), st.sampled_from(EMOTIONS[1:]))
def test_each_later_turn_makes_an_old_one_matter_less(k, emotion):
    index = EMOTIONS.index(emotion)

    def mass(n_after):
        turns = [Turn("A", "x", emotion, 1.0)] + [Turn("A", "y", "neutral", 1.0)] * n_after
        tree = build_tree("t", "neutral", "neutral", turns)
        return tree.cumulative_emotion("A", tree.active_path()[-1].id)[index]

    assert mass(k) > mass(k + 1)


def test_worked_example_from_the_docs():
    """docs/dialogue.md walks through these numbers by hand; keep them true."""
    tree = build_tree(
        "weekend plans",
        "happy",
        "neutral",
        [
            Turn("A", "I booked the cabin for Saturday!", "happy", 0.9),
            Turn("B", "Really? Which one?", "surprised", 0.7),
        ],
    )
    node = tree.active_path()[-1].id
    e_a, e_b = tree.cumulative_emotion("A", node), tree.cumulative_emotion("B", node)
    np.testing.assert_allclose(e_a[[0, 1, 4]], [0.355 / 1.85, 1.18 / 1.85, 0.315 / 1.85])
    np.testing.assert_allclose(e_b[[0, 1, 4]], [1.127 / 2.07, 0.243 / 2.07, 0.7 / 2.07])
    va = tree.to_dict()["valence_arousal"][str(node)]["A"]
    np.testing.assert_allclose(va, [0.544, 0.464], atol=6e-4)
    regen = tree.regenerate(node, Turn("B", "Ugh, a cabin? I hate the cold.", "angry", 0.8))
    np.testing.assert_allclose(
        tree.cumulative_emotion("B", regen)[[0, 1, 3, 4]], np.array([1.117, 0.243, 0.8, 0.21]) / 2.37
    )


def test_valence_arousal_curves_follow_the_arc():
    tree = build_tree("t", "neutral", "neutral", [Turn("A", "yay", "happy", 1.0), Turn("A", "oh no", "sad", 1.0)])
    clock = Timeline(
        audio=np.zeros(24000 * 4, np.float32),
        sample_rate=24000,
        fps=25,
        segments=[Segment(0, "A", 0.2, 1.6), Segment(1, "A", 2.0, 3.6)],
    )
    va = tree.valence_arousal_curves(clock)["A"]
    assert va.shape == (100, 2) and np.all(np.abs(va) <= 1)
    assert va[0, 0] == 0  # neutral before anything is said
    assert va[45, 0] > 0.3  # after the happy line: positive valence ...
    assert va[99, 0] < va[45, 0]  # ... pulled down by the sad one
    assert max(abs(v) for pair in VALENCE_AROUSAL.values() for v in pair) <= 1


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(turn_st, st.floats(0.15, 0.6), st.floats(0.05, 3.0)), min_size=1, max_size=8),
    st.sampled_from([5, 24, 25, 30]),
)
def test_curves_grown_turn_by_turn_equal_the_whole_clock_bit_for_bit(turns, fps):
    """The pipeline's per-turn update costs only the new frames and gives exactly `emotion_curves`."""
    from warmchat.tree import EmotionCurves

    tree = InteractiveTalkingTree("t", "happy", "sad")
    grown = EmotionCurves(tree)
    segments, t = [], 0.4
    for i, (turn, gap, length) in enumerate(turns):
        tree.add_turn(turn)
        start = t + (gap if i else 0.0)
        segments.append(Segment(i, turn.speaker, start, start + length))
        t = start + length
        n_frames = int(np.ceil(t * fps))
        clock = Timeline(np.zeros(round(n_frames * 24000 / fps), np.float32), 24000, fps, list(segments))
        got, whole = grown.update(clock), tree.emotion_curves(clock)
        want = _curves_by_masks(tree, n_frames, fps, [(s.start, s.end) for s in segments])
        for person in "AB":
            assert got[person].shape == want[person].shape
            np.testing.assert_array_equal(got[person], want[person])
            np.testing.assert_array_equal(whole[person], want[person])


def _curves_by_masks(tree: InteractiveTalkingTree, n_frames: int, fps: int, spans: list) -> dict:
    """The documented curve, computed the plain way: every turn paints all frames from its start on, in order."""
    path, t, curves = tree.active_path(), np.arange(n_frames) / fps, {}
    for person in "AB":
        values = [tree.cumulative_emotion(person, None)] + [tree.cumulative_emotion(person, n.id) for n in path]
        out = np.repeat(values[0][None], n_frames, axis=0)
        for i, (start, end) in enumerate(spans):
            x = np.clip((t - start) / max(end - start, 1e-3), 0.0, 1.0)
            ease = (x * x * (3 - 2 * x))[:, None]
            out[t >= start] = (values[i] + (values[i + 1] - values[i]) * ease)[t >= start]
        curves[person] = out
    return curves
