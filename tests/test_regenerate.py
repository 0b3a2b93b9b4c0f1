"""Regenerate a turn: a new take becomes active, later turns are written again, the tree keeps the discarded take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import decode_video
from openai_server import LINES, ChatServer
from test_app import _people, _settings, server  # noqa: F401  (the app, started once for this module)

from warmchat.compose import CAPTION_H
from warmchat.config import WarmChatConfig
from warmchat.regenerate import rewrite_from, take_rows
from warmchat.schema import Turn
from warmchat.tree import build_tree

THREE = (
    "A [happy]: I love painting portraits in the morning light.\n"
    "B: Which colours do you use for the skin?\n"
    "A [sad]: Mostly blues, since my old studio closed."
)


def _llm_config(llm: ChatServer) -> WarmChatConfig:
    cfg = WarmChatConfig()
    cfg.dialogue.backend, cfg.dialogue.llm_base_url, cfg.dialogue.api_key = "openai", llm.base_url, "local"
    cfg.dialogue.llm_model = "slow"  # answers at once (slow_s=0)
    return cfg


def test_rewrite_from_keeps_the_discarded_take_and_the_turns_before():
    llm = ChatServer(api_key=None, slow_s=0.0).start()
    try:
        turns = [Turn("A", "Hello there, my friend.", "happy", 0.8), Turn("B", "Hi! Long time no see.", "surprised"),
                 Turn("A", "Shall we get a coffee?", "neutral", 0.5)]  # fmt: skip
        tree = build_tree("coffee", "happy", "neutral", turns)
        new = rewrite_from(tree, 2, {"A": "Ann", "B": "Bo"}, _llm_config(llm))
    finally:
        llm.stop()
    path = tree.active_path()
    assert [t.text for t in new] == ["Hello there, my friend.", LINES[1], LINES[2]]
    assert [n.text for n in path] == [t.text for t in new] and path[0].id == 1
    (old,) = tree.siblings(path[1].id)
    assert old.text == "Hi! Long time no see." and tree.nodes[old.children[0]].text == "Shall we get a coffee?"
    # The discarded take still counts in the cumulative emotion (weight 0.3): B's feeling carries its surprise.
    assert tree.cumulative_emotion("B", path[1].id)[4] > 0  # surprised
    assert take_rows(tree, 25, {"A": "Ann", "B": "Bo"}) == []  # never voiced: nothing to draw


def test_regenerate_turn_2_through_the_api(server):  # noqa: F811
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    first = client.predict(*_people(), *_settings(THREE), api_name="/generate")
    assert "Done: 3 turns" in first[6]
    llm = ChatServer(api_key=None, slow_s=0.0).start()
    try:
        settings = _settings(THREE, llm="openai", llm_model="slow", api_base_url=llm.base_url)
        result = client.predict(*_people(), *settings, [handle_file(f) for f in first[5]], 2,
                                api_name="/regenerate")  # fmt: skip
    finally:
        llm.stop()
    _live, video, png, plot, transcript, files, status = result[:7]
    assert "Done: 3 turns" in status
    assert "I love painting portraits" in transcript and LINES[1] in transcript and LINES[2] in transcript
    assert Path(video).stat().st_size > 10_000 and Path(video).read_bytes() != Path(first[1]).read_bytes()
    tree = json.loads(Path(next(f for f in files if f.endswith(".tree.json"))).read_text())
    nodes = {n["id"]: n for n in tree["nodes"]}
    root = nodes[0]
    (turn1,) = [nodes[c] for c in root["children"]]
    assert turn1["text"] == "I love painting portraits in the morning light."
    takes = [nodes[c] for c in turn1["children"]]
    assert len(takes) == 2 and nodes[turn1["active_child"]]["text"] == LINES[1]
    assert any(t["text"] == "Which colours do you use for the skin?" and t["start"] is not None for t in takes)
    assert "discarded take of turn 2" in json.dumps(plot)  # the interactive plot draws the branch
    assert Path(png).stat().st_size > 10_000
    # Frames depend only on the conversation up to them: turn 1 comes out exactly as it was.
    end_1 = int(turn1["end"] * 25)
    before, after = decode_video(Path(first[1]), 512, 256 + CAPTION_H), decode_video(Path(video), 512, 256 + CAPTION_H)
    assert end_1 > 25 and np.array_equal(before[:end_1], after[:end_1])
