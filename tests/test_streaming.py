"""Turn-by-turn generation: each turn is reported when written, its video is playable when rendered, and a
conversation stopped part-way keeps the turns already done."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
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


FIVE = SCRIPT + "\nB [surprised]: A big one? It is only seven.\nA [happy]: Seven is late enough for me."


def test_pipelined_video_has_exactly_the_frames_of_a_sequential_single_pass(tmp_path, monkeypatch):
    """Turns made in a thread ahead of the renderer, A and B rendered at once: the frames sent to the encoder are
    bit for bit those of one sequential pass (whole-conversation motion, one face after the other)."""
    from warmchat import compose, face, motion, speech, timeline, tree
    from warmchat.render import make_renderer

    sent = []
    write = compose.VideoWriter.write
    monkeypatch.setattr(
        compose.VideoWriter, "write", lambda self, frame: (sent.append(frame.copy()), write(self, frame))
    )
    cfg = _config()
    portraits = (EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg")
    events = list(iter_generate(*portraits, emotion_a="happy", script=FIVE, out=tmp_path / "c.mp4", config=cfg))
    turns = [e.turn for e in events if isinstance(e, TurnWritten)]

    utterances = speech.voice_turns(turns, speech.voices_for(cfg.speech), cfg.seed, cfg.speech)
    clock = timeline.build_timeline(turns, utterances, cfg.speech.sample_rate, cfg.compose.fps)
    itt = tree.build_tree("", "happy", "neutral", turns, cfg.tree)
    itt.set_times(clock)
    curves = itt.emotion_curves(clock)
    rngs = np.random.default_rng(cfg.seed).spawn(2)
    frames = {}
    for i, p in enumerate("AB"):
        track = motion.build_motion(
            p, clock, utterances, curves[p], cfg.motion, motion.draw_person_motion(rngs[i], cfg.motion)
        )
        rig = face.build_rig(portraits[i], p, cfg.face)
        frames[p] = make_renderer(rig, "cpu").render_batch(track.expression, track.pose)
    captioner = compose.Captioner(2 * cfg.face.size, turns, {"A": "Alex", "B": "Sam"})  # the default names
    assert len(sent) == clock.n_frames
    for f in range(clock.n_frames):
        seg = clock.segment_at(f / clock.fps)
        expected = compose.compose_frame(frames["A"][f], frames["B"][f], captioner.strip(seg and seg.turn_index))
        assert np.array_equal(sent[f], expected), f"frame {f} differs"


def test_turns_are_made_at_most_two_ahead_of_the_video(tmp_path, monkeypatch):
    """Memory stays bounded: the thread making turns waits for the renderer instead of running ahead."""
    from warmchat import pipeline

    made = []
    build = pipeline.motion.build_motion
    monkeypatch.setattr(
        pipeline.motion,
        "build_motion",
        lambda p, *a, **k: (made.append(p) if p == "A" else None, build(p, *a, **k))[1],
    )
    for event in iter_generate(
        EXAMPLES / "astronaut.png",
        EXAMPLES / "grace_hopper.jpg",
        script=FIVE,
        out=tmp_path / "c.mp4",
        config=_config(),
    ):
        if isinstance(event, SegmentRendered):
            time.sleep(0.5)  # a slow consumer: the producer must not race to the end meanwhile
            assert len(made) <= event.index + 3, (event.index, len(made))
    assert len(made) == 5


def test_lines_stream_as_they_are_written_before_they_are_voiced(tmp_path):
    """A streaming dialogue server: each line's words reach `on_text` as they arrive, ending with the line itself."""
    from openai_server import LINES, ChatServer

    server = ChatServer(api_key=None, slow_s=0.0).start()
    try:
        cfg = _config()
        cfg.dialogue.backend, cfg.dialogue.llm_base_url, cfg.dialogue.api_key = "openai", server.base_url, "local"
        cfg.dialogue.llm_model = "slow"
        drafts: list[tuple[str, str]] = []
        events = list(iter_generate(
            EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", topic="coffee", turns=2,
            out=tmp_path / "c.mp4", config=cfg, on_text=lambda who, text: drafts.append((who, text)),
        ))  # fmt: skip
    finally:
        server.stop()
    written = [e.turn for e in events if isinstance(e, TurnWritten)]
    assert [t.speaker for t in written] == ["A", "B"]
    for turn in written:  # several growing drafts per line, the last one the line as kept
        mine = [text for who, text in drafts if who == turn.speaker]
        assert len(mine) > 3 and mine[-1] == turn.text and turn.text in LINES
        assert all(b.startswith(a) for a, b in itertools.pairwise(mine))
