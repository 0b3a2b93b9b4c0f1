"""The Chat tab: a visitor talks with one portrait, line by line (typed or recorded), and can regenerate an answer.

Each browser session (or `gradio_client.Client`) has its own `warmchat.Chat`, kept here on the server by session
and started afresh when the portrait, names, emotion, voice or settings change. Endpoints: ``chat_reply``,
``chat_regenerate`` and ``chat_reset``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from warmchat import Chat, InputError, WarmChatConfig
from warmchat.chat import AVATAR, ChatLine, ChatTurn
from warmchat.emotions import EMOTIONS
from warmchat.speech import VOICES
from webui.components import LLM_LABELS, settings_to_config
from webui.generate import _explain, _new_output_dir, in_thread, preview_portrait

log = logging.getLogger("warmchat.app")

MAX_CHATS = 16  # chats kept at once; the least recently used one is closed beyond that
CHAT_SIZES = (256, 384, 512)
# The chat endpoints' inputs, in order (a stable API): the avatar, the visitor's line, then the settings.
PERSONA = ("portrait", "name", "emotion", "voice", "visitor_name")
SETTINGS = ("size", "seed", "llm", "llm_model", "api_base_url", "api_key")
EXAMPLES = ("mona_lisa.jpg", "Lisa", "happy"), ("grace_hopper.jpg", "Grace", "neutral"), ("astronaut.png", "Eileen",
                                                                                          "happy")  # fmt: skip


@dataclass
class _Session:
    key: str  # what the chat was made from; a change starts a new chat
    chat: Chat
    lock: threading.Lock


_SESSIONS: OrderedDict[str, _Session] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()


@dataclass
class ChatOutputs:
    latest: gr.Video
    full: gr.Video
    transcript: gr.Markdown
    plot_png: gr.Image
    files: gr.File
    status: gr.Markdown
    text: gr.Textbox
    audio: gr.Audio

    def as_list(self) -> list:
        return [self.latest, self.full, self.transcript, self.plot_png, self.files, self.status, self.text, self.audio]


def _key(values: dict) -> str:
    """Fingerprint of what a chat is made from: the portrait's bytes (an upload's path changes every call)."""
    digest = hashlib.sha256()
    portrait = values.get("portrait")
    if portrait and Path(portrait).is_file():
        digest.update(Path(portrait).read_bytes())
    for name in (*PERSONA[1:], *SETTINGS):
        digest.update(f"|{values.get(name)}".encode())
    return digest.hexdigest()


def _session(session_id: str, values: dict) -> _Session:
    """This visitor's chat, made (or made again) from `values`."""
    key = _key(values)
    with _SESSIONS_LOCK:
        current = _SESSIONS.get(session_id)
        # A chat idle for over an hour has had its folder swept away (`_new_output_dir`): it starts afresh.
        if current is not None and current.key == key and current.chat.workdir.is_dir():
            _SESSIONS.move_to_end(session_id)
            return current
    cfg = settings_to_config({k: values[k] for k in SETTINGS})
    if not values.get("portrait"):
        raise InputError("Portrait is missing: upload a photo of a face or click an example.", "portrait")
    chat = Chat(values["portrait"], name=values["name"] or "Avatar", emotion=values["emotion"] or "neutral",
                voice=values["voice"] or "", visitor_name=(values["visitor_name"] or "").strip() or "Visitor",
                config=cfg, workdir=_new_output_dir())  # fmt: skip
    fresh = _Session(key, chat, threading.Lock())
    with _SESSIONS_LOCK:
        old = _SESSIONS.pop(session_id, None)
        _SESSIONS[session_id] = fresh
        while len(_SESSIONS) > MAX_CHATS:
            _SESSIONS.popitem(last=False)[1].chat.close()
    if old is not None:
        old.chat.close()
    return fresh


def transcript_markdown(chat: Chat, pending: str = "") -> str:
    """The chat so far, numbered (the numbers are what Regenerate takes)."""
    rows = []
    for i, turn in enumerate(chat.turns):
        who = chat.names[turn.speaker]
        rows.append(f"**{i + 1}. {who}** · *{turn.emotion}* — {turn.text}")
    if pending:
        rows.append(pending)
    return "\n\n".join(rows)


def _done_updates(out: ChatOutputs, chat: Chat, turn: ChatTurn, status: str) -> dict:
    files = chat.save()
    return {
        out.latest: str(turn.video), out.full: str(files.video), out.transcript: transcript_markdown(chat),
        out.plot_png: str(files.timeline_png), out.status: status, out.text: "", out.audio: None,
        out.files: [str(files.video), str(files.srt), str(files.tree_json), str(files.timeline_png)],
    }  # fmt: skip


def make_reply(out: ChatOutputs):
    def chat_reply(request: gr.Request, *values):
        v = dict(zip((*PERSONA, "text", "audio", *SETTINGS), values, strict=True))
        session_id = request.session_hash if request is not None else "local"
        try:
            session = _session(session_id, v)
            chat = session.chat
            with session.lock:
                text = (v["text"] or "").strip() or None
                audio = v["audio"] or None
                if text and audio:
                    audio = None  # a typed line wins over a recording left in the box
                yield {out.status: "Listening…" if audio else "", out.latest: None}
                written = [""]  # the answer so far, as the model streams it (set from the reply's thread)
                shown = ""
                work = lambda: chat.iter_reply(text, audio, on_text=lambda s: written.__setitem__(0, s))  # noqa: E731
                for event in in_thread(work, threading.Event()):
                    if event is None:  # nothing finished yet: show the answer's words as they come
                        if written[0] != shown:
                            shown = written[0]
                            pending = f"**{chat.names[AVATAR]}** — {shown}…"
                            yield {out.transcript: transcript_markdown(chat, pending)}
                        else:
                            yield {out.status: gr.skip()}
                    elif isinstance(event, ChatLine) and event.turn.speaker != AVATAR:
                        thinking = f"*{chat.names[AVATAR]} is listening and thinking…*"
                        yield {out.transcript: transcript_markdown(chat, thinking), out.text: ""}
                    elif isinstance(event, ChatTurn):
                        status = (f"{chat.names[AVATAR]} answered in {event.seconds:.1f} s. "
                                  + (f"Heard: “{event.heard}”." if event.heard else ""))  # fmt: skip
                        yield _done_updates(out, chat, event, status)
        except InputError as exc:
            yield {out.status: f"⚠️ {exc}"}
            raise gr.Error(str(exc), title="Please check your input") from None
        except Exception as exc:
            raise gr.Error(_explain(exc, 0, _secrets(v.get("api_key")))) from None

    return chat_reply


def make_regenerate(out: ChatOutputs):
    def chat_regenerate(turn, request: gr.Request):
        session = _SESSIONS.get(request.session_hash if request is not None else "local")
        try:
            if session is None or not session.chat.turns:
                raise InputError("nothing to regenerate yet: say something first", "turn")
            with session.lock:
                chat = session.chat
                number = _whole(turn)
                result = chat.regenerate(number)
                yield _done_updates(out, chat, result, f"New take of line {number}; the lines after it were dropped "
                                    "(the tree JSON keeps them under the discarded take).")  # fmt: skip
        except InputError as exc:
            yield {out.status: f"⚠️ {exc}"}
            raise gr.Error(str(exc), title="Regenerate") from None
        except Exception as exc:
            visitor_key = session.chat.config.dialogue.api_key if session else ""
            raise gr.Error(_explain(exc, 0, _secrets(visitor_key))) from None

    return chat_regenerate


def _secrets(visitor_key: str | None = None) -> tuple[str, ...]:
    """Keys that must never appear in a message: the operator's (from the environment) and the visitor's."""
    cfg = WarmChatConfig()
    return tuple(k for k in (cfg.dialogue.api_key, cfg.speech.openai_api_key, visitor_key or "") if k)


def _whole(value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"the line to regenerate must be a number, got {value!r}", "turn") from None
    if number != int(number):
        raise InputError(f"the line to regenerate must be a whole number, got {value!r}", "turn")
    return int(number)


def reset_chat(request: gr.Request):
    """Forget this visitor's chat (its files go with it)."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.pop(request.session_hash, None) if request is not None else None
    if session is not None:
        session.chat.close()
    return None, None, "", None, None, "A new chat: say something.", "", None


def chat_tab(examples_dir: Path) -> None:
    """Build the Chat tab's widgets and bind its events (inside a `gr.Tab`)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, variant="panel"):
            with gr.Row():  # decoded by our own intake (as on the Generate tab), never by Gradio
                portrait = gr.File(label="Portrait", file_types=["image"], type="filepath", height=120,
                                   elem_id="chat_portrait", min_width=140)  # fmt: skip
                preview = gr.Image(label="Portrait (as read)", interactive=False, height=200, min_width=140,
                                   show_label=False, elem_id="chat_preview")  # fmt: skip
            error = gr.Markdown(visible=False, elem_id="chat_error", elem_classes="warmchat-error")
            with gr.Row():
                name = gr.Textbox(label="Their name", value="Lisa", max_lines=1, elem_id="chat_name")
                emotion = gr.Dropdown(list(EMOTIONS), value="happy", label="Feels at first")
            with gr.Row():
                voice = gr.Dropdown([(f"{v} — {VOICES[v].gender}", v) for v in VOICES], value=next(iter(VOICES)),
                                    label="Their voice")  # fmt: skip
                visitor_name = gr.Textbox(label="Your name", value="Visitor", max_lines=1)
            gr.Examples([[str(examples_dir / f), n, e] for f, n, e in EXAMPLES], inputs=[portrait, name, emotion],
                        label="Or pick a portrait")  # fmt: skip
            with gr.Accordion("Chat settings", open=False):
                size = gr.Dropdown(list(CHAT_SIZES), value=CHAT_SIZES[0], label="Face resolution (px)")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                llm = gr.Radio([(label, key) for key, label in LLM_LABELS.items()], value="local", label="Dialogue")
                llm_model = gr.Textbox(value="gpt-4o-mini", label="LLM model (OpenAI-compatible)", max_lines=1)
                api_base_url = gr.Textbox(value="", max_lines=1, label="Your OpenAI-compatible server URL "
                                          "(empty = the operator's)")  # fmt: skip
                api_key = gr.Textbox(value="", type="password", max_lines=1, label="Your API key (never stored)")
        with gr.Column(scale=3):
            latest = gr.Video(label="Latest: your line, then the answer", autoplay=True, height=420,
                              elem_id="chat_video")  # fmt: skip
            transcript = gr.Markdown(elem_id="chat_transcript")
            with gr.Row():
                text = gr.Textbox(label="Say something", placeholder="Type a line and press Enter…", max_lines=3,
                                  scale=4, elem_id="chat_text")  # fmt: skip
                audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="…or record it", scale=3,
                                 elem_id="chat_audio")  # fmt: skip
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="chat_send", scale=3)
                reset = gr.Button("New chat", elem_id="chat_reset", scale=1)
            status = gr.Markdown(elem_id="chat_status")
            with gr.Row():
                regen_turn = gr.Number(value=2, precision=0, minimum=1, label="Line to regenerate (an answer)",
                                       elem_id="chat_regen_turn", scale=2)  # fmt: skip
                regen = gr.Button("Regenerate", elem_id="chat_regenerate", scale=1)
    with gr.Row():
        full = gr.Video(label="The whole chat", height=320, elem_id="chat_full")
        plot_png = gr.Image(label="Emotion timeline", type="filepath", height=260, elem_id="chat_plot")
    files = gr.File(label="Downloads: MP4, SRT, tree JSON, plot", file_count="multiple", elem_id="chat_files")

    out = ChatOutputs(latest, full, transcript, plot_png, files, status, text, audio)
    inputs = [portrait, name, emotion, voice, visitor_name, text, audio, size, seed, llm, llm_model, api_base_url,
              api_key]  # fmt: skip
    reply = make_reply(out)
    send.click(reply, inputs=inputs, outputs=out.as_list(), api_name="chat_reply")
    text.submit(reply, inputs=inputs, outputs=out.as_list(), api_name=False)
    regen.click(make_regenerate(out), inputs=regen_turn, outputs=out.as_list(), api_name="chat_regenerate")
    reset.click(reset_chat, outputs=out.as_list(), api_name="chat_reset")
    portrait.change(partial(preview_portrait, who="A"), inputs=portrait, outputs=[preview, error], api_name=False,
                    concurrency_limit=None)  # fmt: skip
