"""A small, real OpenAI-compatible server for the tests, over HTTP on 127.0.0.1: POST /v1/chat/completions and
POST /v1/audio/speech.

The request's model name picks how it answers:
- ``smollm2``: the bundled SmolLM2-135M-Instruct writes the reply from the chat messages. With a ``json_schema``
  response_format it decodes under the schema, as vLLM and llama.cpp do: the model writes the "text" string freely,
  then the "emotion" is the schema enum value the model scores most likely, and "intensity" that value's share of
  the probability among the enum values.
- ``malformed-once``: the first request of each turn gets prose with broken JSON, the repair request a valid reply.
- ``always-prose``: never JSON, always a plain spoken sentence.
- ``sloppy``: JSON in a code fence with an aliased emotion name and an out-of-range intensity.
- ``echo-once``: from the second turn on, first repeats the opening line, then a valid reply.
- ``leaky-once``: first echoes its system prompt as the line (a model obeying an injected topic), then a valid reply.
- ``no-structured``: rejects any response_format with HTTP 400 (as `transformers serve` does), else answers JSON.
- ``slow``: sleeps for ``slow_s`` seconds before answering.
- ``echo-key``: HTTP 400 whose error message repeats the request's API key in full (a careless server).
- ``huge``: a reply far over any line limit: long words, thousands of them, thousands of characters.

/v1/audio/speech answers with a short WAV tone (a sine, 0.5 s at 24 kHz); the voice ``echo-key`` gets the HTTP 400
that repeats the key.

Requests need ``Authorization: Bearer <api_key>`` (any key when ``api_key`` is None, as local servers do); a wrong
key gets HTTP 401 echoing a masked key, as api.openai.com does. Every request body is recorded in ``requests`` (chat
only) and every request's headers in ``headers`` (both endpoints), so tests can see what was sent.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

# Scripted valid replies: a different line for each turn (the client rejects a repeated line), a fixed emotion.
LINES = (
    "I keep thinking about it, and honestly it sounds like a plan.",
    "Then let us pack the car tonight and leave early.",
    "Good idea, I will bring the map and some snacks.",
)
SLOPPY = ("Wait, you got the tickets already?", "No way, front row seats too?", "How did you even manage that?")
PROSE = "Honestly, I am so happy we are finally going camping this weekend!"


class ChatServer:
    """Start with `start()`; `base_url` is what an OpenAI client needs."""

    def __init__(self, api_key: str | None, slow_s: float = 3.0):
        self.api_key = api_key
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []  # every request's headers, lower-case names
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ChatServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ----- answers ---------------------------------------------------------------------------------------------
    def answer(self, body: dict, key: str = "") -> tuple[int, dict]:
        """(HTTP status, JSON body) for one chat-completions request made with API key `key`."""
        model = body.get("model", "")
        repair = len(body["messages"]) > 2  # the client appended the bad reply and a repair request
        n = len(json.loads(body["messages"][1]["content"]).get("recent_lines", []))  # turns so far
        valid = json.dumps({"text": LINES[n % len(LINES)], "emotion": "surprised", "intensity": 0.35})
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
        if model == "smollm2":
            content = smollm2_reply(body["messages"], schema, int(body.get("seed") or 0), body.get("max_tokens") or 64)
        elif model == "malformed-once":
            content = valid if repair else 'Sure! {"text": "We should go hiking", emotion: happy'
        elif model == "always-prose":
            content = PROSE
        elif model == "sloppy":
            sloppy = {"text": SLOPPY[n % len(SLOPPY)], "emotion": "Surprise", "intensity": 1.7}
            content = f"```json\n{json.dumps(sloppy)}\n```"
        elif model == "echo-once":
            echo = json.dumps({"text": LINES[0], "emotion": "happy", "intensity": 0.5})
            content = echo if n > 0 and not repair else valid
        elif model == "leaky-once":
            leak = {"text": body["messages"][0]["content"], "emotion": "neutral", "intensity": 0.5}
            content = valid if repair else json.dumps(leak)
        elif model == "no-structured":
            if "response_format" in body:
                return 400, _error("response_format is not supported by this server", "invalid_request_error")
            content = "Here you go: " + valid
        elif model == "slow":
            time.sleep(self.slow_s)
            content = valid
        elif model == "echo-key":
            return 400, _error(f"invalid key {key} for this model", "invalid_request_error")
        elif model == "huge":
            content = json.dumps(
                {"text": f"I {n} " + "absolutely-" * 5 + " so" * 3000 + "!" * 5000, "emotion": "happy"}
            )
        else:
            return 404, _error(f"The model `{model}` does not exist", "invalid_request_error")
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                route = self.path.rstrip("/")
                if route not in ("/v1/chat/completions", "/v1/audio/speech"):
                    return self._send(404, _error(f"no route {self.path}", "invalid_request_error"))
                given = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if server.api_key is not None and given != server.api_key:
                    masked = given[:3] + "*" * max(len(given) - 7, 0) + given[-4:]
                    return self._send(401, _error(f"Incorrect API key provided: {masked}.", "invalid_api_key"))
                if route == "/v1/audio/speech":
                    if body.get("voice") == "echo-key":
                        return self._send(400, _error(f"invalid key {given} for this voice", "invalid_request_error"))
                    return self._send_bytes(200, tone_wav(), "audio/wav")
                with server._lock:
                    server.requests.append(body)
                status, reply = server.answer(body, given)
                if status == 200 and body.get("stream"):
                    return self._stream(reply)
                return self._send(status, reply)

            def _stream(self, reply: dict) -> None:
                """The reply as server-sent events, a few characters per chunk, as OpenAI's `stream: true` sends."""
                content = reply["choices"][0]["message"]["content"]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {k: reply[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
                pieces = [content[i : i + 7] for i in range(0, len(content), 7)]
                for i, piece in enumerate(pieces):
                    delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    chunk = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                end = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

            def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up: nothing to answer

            def log_message(self, *args):  # keep pytest output clean
                pass

        return Handler


def tone_wav(seconds: float = 0.5, sample_rate: int = 24000) -> bytes:
    """A 16-bit mono PCM WAV of a 220 Hz sine."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(pcm))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + (struct.pack("<I", len(pcm)) + pcm)
    )


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


def smollm2_reply(messages: list[dict], schema: dict | None, seed: int, max_tokens: int) -> str:
    """SmolLM2's reply to chat `messages`; decoded as {text, emotion, intensity} when a schema is given."""
    from warmchat.dialogue import load_local_llm
    from warmchat.dialogue.local import sample_text

    tok, lm = load_local_llm("")
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if schema is None:
        return sample_text(tok, lm, prompt, seed, max_tokens, temperature=0.7, stop="\n")[0]
    prefix = prompt + '{"text": "'
    text = sample_text(tok, lm, prefix, seed, min(max_tokens, 40), temperature=0.7, stop='"')[0]
    text = text.split('"')[0].strip()
    options = schema["properties"]["emotion"]["enum"]
    before = prefix + text + '", "emotion": "'
    scores = _choose(tok, lm, before, options)
    share = np.exp(scores - scores.max())
    share /= share.sum()
    best = int(np.argmax(scores))
    return json.dumps({"text": text, "emotion": options[best], "intensity": round(float(share[best]), 2)})


def _choose(tok, lm, context: str, options: list[str]) -> np.ndarray:
    """(len(options),) log-probability of each option (closed by a quote) after `context`.

    The shared context runs through the model once; each option then continues from a copy of its KV cache.
    """
    import copy

    import torch

    seqs = [tok(context + option + '"')["input_ids"] for option in options]
    shared = min(len(seqs[0]), *(len(s) for s in seqs)) - 1
    for seq in seqs[1:]:  # the tokens all options agree on (a quote may merge with an option's first letters)
        shared = next((i for i in range(shared) if seq[i] != seqs[0][i]), shared)
    with torch.no_grad():
        head = lm(torch.tensor([seqs[0][:shared]]), use_cache=True, logits_to_keep=1)
        scores = []
        for seq in seqs:
            rest = torch.tensor([seq[shared:]])
            tail = lm(rest, past_key_values=copy.deepcopy(head.past_key_values), use_cache=True)
            logits = torch.cat([head.logits[:, -1:], tail.logits[:, :-1]], dim=1)[0].log_softmax(-1)  # (R, V)
            scores.append(float(logits[torch.arange(rest.shape[1]), rest[0]].sum()))
    return np.array(scores)
