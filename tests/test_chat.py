"""Chat with a portrait: the visitor's typed or recorded lines, the avatar listening and answering, the files."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, decode_video, probe
from openai_server import LINES, ChatServer
from test_app import SHOTS, browser  # noqa: F401  (headless Chromium, for the browser test)
from test_app import server as app  # noqa: F401  (the app, started once for this module)

from warmchat import Chat, InputError, WarmChatConfig, speech
from warmchat.compose import CAPTION_H, ffmpeg_exe, write_wav
from warmchat.motion.listener import load_leed, plan_reactions
from warmchat.speech.audio import PAUSE
from warmchat.speech.transcribe import transcribe
from warmchat.tree import InteractiveTalkingTree

SIZE = 128  # small faces: these tests are about the conversation, not the picture


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def server():
    srv = ChatServer(api_key=None, slow_s=0.0).start()  # "slow" with no wait: LINES[...] at once, no model
    yield srv
    srv.stop()


def _config(server: ChatServer) -> WarmChatConfig:
    cfg = WarmChatConfig()
    cfg.face.size, cfg.render.renderer = SIZE, "cpu"
    cfg.dialogue.backend, cfg.dialogue.llm_base_url, cfg.dialogue.api_key = "openai", server.base_url, "local"
    cfg.dialogue.llm_model = "slow"
    return cfg


@pytest.fixture(scope="module")
def chat(server, tmp_path_factory):
    """A chat with two typed lines, answered."""
    chat = Chat(EXAMPLES / "mona_lisa.jpg", name="Lisa", emotion="happy", visitor_name="Sam", config=_config(server),
                workdir=tmp_path_factory.mktemp("chat"))  # fmt: skip
    streamed: list[str] = []
    turns = [chat.reply("Hello Lisa! What a wonderful smile you have."),
             chat.reply("Shall we go for a walk?", on_text=streamed.append)]  # fmt: skip
    chat.streamed = streamed  # the second answer's words as they arrived
    yield chat, turns
    chat.close()


def test_transcribes_a_voiced_sentence():
    sentence = "The weather was lovely, so we walked along the river to the old bridge."
    utt = speech.synthesize(sentence, "piper-joe")
    heard = transcribe(utt.audio, utt.sample_rate)
    expected, got = _words(sentence), set(_words(heard.text))
    assert sum(w in got for w in expected) >= 0.8 * len(expected), heard.text
    assert heard.words and heard.words[-1][2] <= utt.duration + 0.5  # word times on the recording's clock


def test_two_typed_lines_are_answered_with_the_conversation_in_mind(chat, server):
    chat, turns = chat
    assert [t.number for t in turns] == [1, 2]
    assert [(t.speaker, t.text) for t in chat.turns] == [
        ("B", "Hello Lisa! What a wonderful smile you have."), ("A", LINES[1]),
        ("B", "Shall we go for a walk?"), ("A", LINES[0]),
    ]  # fmt: skip
    assert turns[1].answer.text == LINES[0] and turns[0].visitor.emotion in ("happy", "surprised")
    # The answer's words arrived as they were written (the server streams), growing to the whole line.
    assert len(chat.streamed) > 3 and chat.streamed[-1] == LINES[0]
    assert all(b.startswith(a) for a, b in zip(chat.streamed, chat.streamed[1:], strict=False))
    # The second answer was asked with the whole conversation and both people's feelings from the tree.
    scene = next(r for r in reversed(server.requests) if "Shall we go" in str(r))
    assert "wonderful smile" in str(scene) and "Sam" in str(scene) and "feelings_now" in str(scene)
    tree = InteractiveTalkingTree.load(chat.save().tree_json)
    assert [n.speaker for n in tree.active_path()] == ["B", "A", "B", "A"]
    assert turns[0].end_s <= turns[1].start_s < turns[1].end_s


def test_each_exchange_is_a_single_face_video_with_both_voices(chat):
    chat, turns = chat
    for turn in turns:
        info = probe(turn.video)
        assert f"{SIZE}x{SIZE + CAPTION_H}" in info and "aac" in info
        frames = decode_video(turn.video, SIZE, SIZE + CAPTION_H)
        assert abs(len(frames) / 25 - (turn.end_s - turn.start_s)) < 0.1
    # The visitor's line plays (their voice), then the answer: sound in both halves of the first exchange.
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(turns[0].video), "-f", "s16le", "-ac", "1", "-ar",
                          "16000", "-"], capture_output=True, check=True).stdout  # fmt: skip
    audio = np.frombuffer(raw, np.int16).astype(np.float32) / 32768
    seg_visitor, seg_answer = chat.clock.segments[0], chat.clock.segments[1]
    for seg in (seg_visitor, seg_answer):
        part = audio[int(seg.start * 16000) : int(seg.end * 16000)]
        assert np.sqrt(np.mean(part**2)) > 0.02


def test_the_avatar_listens_while_the_visitor_speaks(chat):
    """Closed mouth and reactions (nods, smiles) at the visitor's phrase ends; lips move when it answers."""
    from warmchat import motion

    chat, _ = chat
    clock = chat.clock
    curves = chat.tree.emotion_curves(clock)
    rng = np.random.default_rng(chat.config.seed).spawn(2)[0]
    track = motion.build_motion("A", clock, chat.utterances, curves["A"], chat.config.motion,
                                motion.draw_person_motion(rng, chat.config.motion))  # fmt: skip
    from warmchat.controls import INDEX

    jaw = track.expression[:, INDEX["jawOpen"]]
    visitor, answer = clock.segments[0], clock.segments[1]
    assert (
        jaw[round(answer.start * 25) : round(answer.end * 25)].max()
        > 3 * jaw[round(visitor.start * 25) : round(visitor.end * 25)].max() + 0.05
    )
    reactions = plan_reactions("A", clock, chat.utterances, curves["A"], chat.params.seed, load_leed())
    assert any(visitor.start * 25 < r.start < (visitor.end + 0.5) * 25 for r in reactions)


def test_save_writes_the_whole_chat(chat):
    chat, turns = chat
    files = chat.save()
    frames = decode_video(files.video, SIZE, SIZE + CAPTION_H)
    assert abs(len(frames) / 25 - turns[-1].end_s) < 0.1
    cues = files.srt.read_text().strip().split("\n\n")
    assert len(cues) == 4 and "Sam: Shall we go for a walk?" in cues[2] and cues[3].endswith(LINES[0])
    assert files.timeline_png.stat().st_size > 10_000


def test_a_recorded_line_is_transcribed_played_and_nodded_at(server, tmp_path):
    """A recording with pauses in it: its words become the line, its sound plays, the avatar reacts at a pause."""
    parts = [speech.synthesize(s, "piper-joe") for s in ("I finally finished my painting today.",
             "It took me almost three whole months.", "Now it hangs in the hall.")]  # fmt: skip
    rate = parts[0].sample_rate
    gap = np.zeros(int(0.7 * rate))
    recording = np.concatenate([np.zeros(rate // 4), parts[0].audio, gap, parts[1].audio, gap, parts[2].audio])
    wav = tmp_path / "line.wav"
    write_wav(wav, recording.astype(np.float32), rate)
    chat = Chat(EXAMPLES / "girl_with_a_pearl_earring.jpg", name="Griet", config=_config(server), workdir=tmp_path)
    turn = chat.reply(audio=wav)
    assert turn.heard and sum(w in _words(turn.heard) for w in ("painting", "three", "months")) >= 2
    assert chat.turns[0].text == turn.heard and chat.utterances[0].voice == "recording"
    pauses = [(a, b) for p, a, b in chat.utterances[0].phonemes if p == PAUSE and b - a > 0.5]
    assert len(pauses) == 2  # the pauses between the sentences
    seg = chat.clock.segments[0]
    assert abs(pauses[0][0] - parts[0].duration) < 0.15  # where the first sentence ends (the lead-in is trimmed)
    curves = chat.tree.emotion_curves(chat.clock)
    reactions = plan_reactions("A", chat.clock, chat.utterances, curves["A"], chat.params.seed, load_leed())
    starts = [r.start / 25 - seg.start for r in reactions]
    assert any(a < s < a + 0.4 for a, _ in pauses for s in starts), (pauses, starts)
    chat.close()


def test_regenerating_an_answer_keeps_the_discarded_take_and_what_came_before(server, tmp_path):
    chat = Chat(EXAMPLES / "astronaut.png", name="Eileen", config=_config(server), workdir=tmp_path)
    chat.reply("Tell me about your trip to space.")
    chat.reply("Were you scared at the launch?")
    listening = chat._exchanges[0].segments[0]
    kept = listening.read_bytes()
    with pytest.raises(InputError, match="Visitor's own"):
        chat.regenerate(1)
    turn = chat.regenerate(2)
    assert turn.number == 1 and len(chat.turns) == 2 and chat.turns[0].text == "Tell me about your trip to space."
    assert turn.segments[0] == listening and listening.read_bytes() == kept  # rendered once, reused
    assert turn.video.is_file()
    tree = InteractiveTalkingTree.load(chat.save().tree_json)
    second = tree.active_path()[1]
    (old,) = tree.siblings(second.id)
    assert old.children  # the discarded take keeps the lines that followed it
    assert "Were you scared" in tree.nodes[old.children[0]].text
    chat.close()


def test_a_failed_answer_leaves_the_chat_as_it_was(server, tmp_path):
    chat = Chat(EXAMPLES / "astronaut.png", name="Eileen", config=_config(server), workdir=tmp_path)
    chat.reply("Hello there.")
    real = chat.backend.next_turn

    def broken(request):
        raise RuntimeError("the model server went away")

    chat.backend.next_turn = broken
    with pytest.raises(RuntimeError, match="went away"):
        chat.reply("Are you still there?")
    assert len(chat.turns) == 2 and len(chat.tree.active_path()) == 2
    chat.backend.next_turn = real
    turn = chat.reply("Are you still there?")
    assert turn.number == 2 and [t.speaker for t in chat.turns] == ["B", "A", "B", "A"]
    with pytest.raises(InputError, match="type a line or record one"):
        chat.reply()
    chat.close()


# ----- the app's Chat tab ------------------------------------------------------------------------------------------
def _chat_inputs(llm: ChatServer, text: str) -> list:
    from gradio_client import handle_file

    return [handle_file(str(EXAMPLES / "mona_lisa.jpg")), "Lisa", "happy", "hibari", "Sam", text, None, 256, 0,
            "openai", "slow", llm.base_url, ""]  # fmt: skip


def test_chat_endpoints_answer_regenerate_and_keep_sessions_apart(app, server):  # noqa: F811
    from gradio_client import Client

    alice, bob = Client(app, verbose=False), Client(app, verbose=False)
    first = alice.predict(*_chat_inputs(server, "Hello Lisa! What a wonderful smile."), api_name="/chat_reply")
    other = bob.predict(*_chat_inputs(server, "Good evening."), api_name="/chat_reply")
    second = alice.predict(*_chat_inputs(server, "Shall we go for a walk?"), api_name="/chat_reply")
    latest, full, transcript, png, files, status = second[:6]
    assert "**4. Lisa**" in transcript and "wonderful smile" in transcript and LINES[0] in transcript
    assert "Good evening" not in transcript and "**2. Lisa**" in other[2] and "**3." not in other[2]
    assert "answered in" in status and first[0] != latest
    assert {Path(f).suffix for f in files} == {".mp4", ".srt", ".json", ".png"} and Path(png).is_file()
    assert Path(full).stat().st_size > Path(latest).stat().st_size > 10_000
    regenerated = alice.predict(2, api_name="/chat_regenerate")
    assert "**2. Lisa**" in regenerated[2] and "**3." not in regenerated[2]
    tree = json.loads(Path(next(f for f in regenerated[4] if f.endswith(".json"))).read_text())
    assert len(tree["nodes"][1]["children"]) == 2  # the visitor's first line has two answers: a discarded take
    with pytest.raises(Exception, match="Sam's own"):
        alice.predict(1, api_name="/chat_regenerate")


@pytest.mark.browser
def test_type_two_lines_and_watch_both_answers(app, browser, server):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat_portrait input[type=file]").set_input_files(str(EXAMPLES / "mona_lisa.jpg"))
    page.wait_for_function("document.querySelector('#chat_preview img') !== null", timeout=60_000)
    page.get_by_text("Chat settings").click()
    page.get_by_label("OpenAI-compatible LLM").check()
    page.get_by_label("LLM model (OpenAI-compatible)").fill("slow")
    page.get_by_label("Your OpenAI-compatible server URL (empty = the operator's)").fill(server.base_url)
    for line, answer in (("Hello Lisa, how are you?", LINES[1]), ("Do you like the museum?", LINES[0])):
        page.locator("#chat_text textarea").fill(line)
        page.locator("#chat_send").click()
        page.wait_for_function(f"document.querySelector('#chat_transcript')?.innerText.includes({answer!r})",
                               timeout=120_000)  # fmt: skip
        page.wait_for_function(
            "(() => { const v = document.querySelector('#chat_video video'); return v?.src && v.duration > 0; })()",
            timeout=60_000,
        )
    text = page.locator("#chat_transcript").inner_text()
    assert "Hello Lisa" in text and LINES[1] in text and "museum" in text and LINES[0] in text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)
    page.close()
