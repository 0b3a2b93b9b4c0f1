"""Turn-by-turn generation: each turn is reported when written, its video is playable when rendered, and a
conversation stopped part-way keeps the turns already done."""

from __future__ import annotations

import itertools
import json

from conftest import EXAMPLES, decode_video, probe

from warmchat import WarmChatConfig
from warmchat.pipeline import Finished, SegmentRendered, TurnWritten, iter_generate, output_paths

SCRIPT = "A [happy]: Good morning!\nB [neutral]: Morning. Coffee?\nA [happy]: Yes please, a big one."


def _config() -> WarmChatConfig:
    cfg = WarmChatConfig(seed=1)
    cfg.face.size = 128
    return cfg


def test_turns_arrive_before_their_video_and_segments_play(tmp_path):
    events, probes = [], []
    for event in iter_generate(
        EXAMPLES / "astronaut.png",
        EXAMPLES / "grace_hopper.jpg",
        script=SCRIPT,
        out=tmp_path / "c.mp4",
        config=_config(),
    ):
        events.append(event)
        if isinstance(event, SegmentRendered):  # a streaming consumer plays it now
            probes.append(probe(event.path))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["TurnWritten", "SegmentRendered"] * 3 + ["Finished"]
    segments = [e for e in events if isinstance(e, SegmentRendered)]
    assert segments[0].start_s == 0 and all(a.end_s == b.start_s for a, b in itertools.pairwise(segments))
    for info in probes:
        assert "Video: h264" in info and "Audio: aac" in info
    result = events[-1].result
    assert abs(segments[-1].end_s - result.duration_s) < 1e-6
    assert not (tmp_path / "c.parts").exists()  # per-turn pieces are cleaned up once the whole video exists


def test_stopping_after_the_first_turn_keeps_it(tmp_path):
    out = tmp_path / "c.mp4"
    events = iter_generate(
        EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=SCRIPT, out=out, config=_config()
    )
    for event in events:
        if isinstance(event, SegmentRendered):
            first = event
            break
    events.close()  # what a cancelled request does
    assert isinstance(first, SegmentRendered)
    frames = decode_video(out, 256, 128 + 96)
    assert abs(len(frames) - round(first.end_s * 25)) <= 1
    tree = json.loads(output_paths(out)["tree_json"].read_text())
    assert [n["text"] for n in tree["nodes"][1:]] == ["Good morning!"]
    assert output_paths(out)["timeline_png"].is_file()
    assert not any(isinstance(e, (TurnWritten, Finished)) for e in events)  # the generator is closed
