"""The dialogue rubric: each measure catches what it names, and the on-topic threshold is the calibrated one."""

from __future__ import annotations

import numpy as np

from warmchat import text_emotion
from warmchat.dialogue.rubric import (
    ON_TOPIC_THRESHOLD,
    Conversation,
    calibrate_threshold,
    name_confusion,
    read_on_topic_labels,
    repeats,
    score,
)


def test_name_confusion_catches_own_and_strange_names_only():
    assert name_confusion("Honestly Maya, I think you're right.", "Maya", "Leo")  # says their own name
    assert name_confusion("John told me the bakery opens at six.", "Maya", "Leo")  # someone neither of them
    assert not name_confusion("Leo, you have to try their rye bread.", "Maya", "Leo")
    assert not name_confusion("The bakery opens at six.", "Maya", "Leo")


def test_repeats_catch_echoes_and_shared_phrases():
    earlier = ["I think we should go to the lake on Saturday.", "Sounds good to me."]
    assert repeats("We should go to the lake on Saturday, I think.", earlier)  # an echo
    assert repeats("Maybe, but we should go to the lake early.", earlier)  # "should go to the" again
    assert not repeats("What about the forecast for the weekend?", earlier)


def test_calibration_picks_the_cut_that_separates_the_labels():
    sims = np.array([0.1, 0.2, 0.25, 0.4, 0.5, 0.6])
    threshold, balanced = calibrate_threshold(sims, np.array([0, 0, 0, 1, 1, 1]))
    assert 0.25 < threshold < 0.4 and balanced == 1.0


def test_the_threshold_in_use_is_calibrated_on_the_hand_labelled_lines():
    labels, topics, lines = read_on_topic_labels()
    y = np.array(labels)
    assert len(lines) >= 100 and 0.3 < y.mean() < 0.7  # both kinds well represented
    sims = np.einsum("nd,nd->n", text_emotion.embed(lines), text_emotion.embed(topics))
    best, balanced = calibrate_threshold(sims, y)
    assert abs(best - ON_TOPIC_THRESHOLD) < 0.01
    assert balanced >= 0.8  # the embedding similarity agrees with the hand labels on most lines


def test_score_measures_a_good_and_a_drifting_conversation():
    names = {"A": "Maya", "B": "Leo"}
    good = [
        "Have you tried the new bakery on our street yet?",
        "Yes, their sourdough bread is wonderful, still warm in the morning.",
        "I love their cinnamon buns too, the bakery smells amazing.",
    ]
    drifting = ["Have you tried the new bakery on our street yet?", "My car needs new tyres.", "Tax forms are due."]

    def conv(lines, seed):
        return Conversation("the new bakery on our street", names, seed, ["A", "B", "A"], lines, ["happy"] * 3,
                            [1.0, 2.0, 3.0])  # fmt: skip

    on_good = score([conv(good, 0), conv(good, 1)])
    on_drift = score([conv(drifting, 0), conv(drifting, 1)])
    assert on_good["on_topic"] > on_drift["on_topic"]
    assert on_good["lines"] == 6 and on_good["s_per_turn"] == 2.0 and on_good["name_confusion"] == 0.0
