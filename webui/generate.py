"""The Generate tab's handlers: stream one conversation, stop it, preview an upload; errors reach the visitor."""

from __future__ import annotations

import contextvars
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from warmchat import InputError, WarmChatError, face
from warmchat.config import app_limits
from warmchat.pipeline import Finished, Notice, SegmentRendered, TurnWritten, iter_generate
from warmchat.plots import timeline_rows
from warmchat.regenerate import iter_regenerate, redraw_with_takes, take_rows
from warmchat.server_url import scrub
from warmchat.tree import InteractiveTalkingTree
from webui.components import SETTING_NAMES, settings_to_config

log = logging.getLogger("warmchat.app")

OUTPUT_TTL_S = 3600  # per-request working folders older than this are removed (Gradio keeps its own copies)
PERSON_NAMES = ("portrait_a", "name_a", "emotion_a", "portrait_b", "name_b", "emotion_b", "topic", "turns")
INPUT_NAMES = PERSON_NAMES + SETTING_NAMES  # the generate endpoint's inputs, in order
FIELD_TITLES = {"portrait_a": "Portrait A", "portrait_b": "Portrait B", "script": "Script", "topic": "Topic",
                "turns": "Turns", "emotion_a": "Emotion A", "emotion_b": "Emotion B"}  # fmt: skip
POLL_S = 0.5  # the longest the handler waits without a step (see in_thread)
_STOPS: dict[str, threading.Event] = {}  # session -> its running request's stop flag


@dataclass
class Outputs:
    """The components one generate request updates."""

    live: gr.Video
    video: gr.Video
    plot_png: gr.Image
    plot: gr.LinePlot
    transcript: gr.Markdown
    files: gr.File
    status: gr.Markdown
    errors: dict[str, gr.Markdown]  # input field -> the error box next to it ("" = the general one)

    def as_list(self) -> list:
        boxes = list(dict.fromkeys(self.errors.values()))
        return [self.live, self.video, self.plot_png, self.plot, self.transcript, self.files, self.status, *boxes]

    def box(self, field: str | None) -> gr.Markdown:
        return self.errors.get(field or "", self.errors[""])


def _new_output_dir() -> Path:
    """A fresh folder for one request; sweeps away folders left by requests more than an hour old."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("warmchat-*"):
        if old.is_dir() and time.time() - old.stat().st_mtime > OUTPUT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="warmchat-"))


def _transcript(turns, names) -> str:
    return "\n\n".join(f"**{i + 1}. {names[t.speaker]}** · *{t.emotion}* — {t.text}" for i, t in enumerate(turns))


def _result_updates(out: Outputs, result, names) -> dict:
    redraw_with_takes(result, names)  # a regenerated conversation: its discarded takes, dashed
    tree = InteractiveTalkingTree.load(result.tree_json)
    rows = timeline_rows(tree, result.n_frames, result.fps, names) + take_rows(tree, result.fps, names)
    status = f"Done: {len(result.turns)} turns, {result.duration_s:.1f} s of video, renderer: {result.renderer}."
    if result.partial:
        status = f"⚠️ Partial result: {result.note}. Here are the {len(result.turns)} finished turns."
    return {
        out.live: gr.Video(visible=False), out.video: str(result.video), out.plot_png: str(result.timeline_png),
        out.plot: pd.DataFrame(rows),
        out.transcript: _transcript(result.turns, names),
        out.files: [str(result.video), str(result.srt), str(result.tree_json), str(result.timeline_png)],
        out.status: status,
    }  # fmt: skip


def make_generate(out: Outputs, can_stream: bool) -> Callable:
    """The generate handler bound to its output components."""

    def run_generate(request: gr.Request, progress: gr.Progress = gr.Progress(), *values):  # noqa: B008
        v = dict(zip(INPUT_NAMES, values, strict=True))

        def events(cfg, out_dir, names, report, stop, on_text):
            return iter_generate(
                v["portrait_a"], v["portrait_b"], emotion_a=v["emotion_a"], emotion_b=v["emotion_b"],
                topic=v["topic"] or "", turns=None, script=v["script"] or None,
                out=out_dir / "conversation.mp4", names=names, config=cfg, progress=report, should_stop=stop,
                on_text=on_text,
            )  # fmt: skip

        yield from _stream(out, can_stream, request, progress, v, events)

    return run_generate


def make_regenerate(out: Outputs, can_stream: bool) -> Callable:
    """The regenerate handler: the generate inputs, the last result's downloads (its tree JSON) and a turn number.

    The new take of that turn becomes active, the turns after it are written again from there, and the whole
    conversation is rendered again (the turns before it come out exactly as before); the tree JSON keeps the
    discarded take, and both plots draw it from its branch point.
    """

    def run_regenerate(request: gr.Request, progress: gr.Progress = gr.Progress(), *values):  # noqa: B008
        v = dict(zip((*INPUT_NAMES, "files", "regen_turn"), values, strict=True))

        def events(cfg, out_dir, names, report, stop, on_text):
            trees = [f for f in (v["files"] or []) if str(f).endswith(".tree.json")]
            if not trees:
                raise InputError("generate a conversation first: Regenerate needs its tree JSON", "turns")
            turn = v["regen_turn"]
            if turn is None or float(turn) != int(float(turn)):
                raise InputError(f"the turn to regenerate must be a whole number, got {turn!r}", "turns")
            return iter_regenerate(
                v["portrait_a"], v["portrait_b"], trees[0], turn=int(float(turn)), out=out_dir / "conversation.mp4",
                names=names, config=cfg, progress=report, should_stop=stop,
            )  # fmt: skip

        yield from _stream(out, can_stream, request, progress, v, events)

    return run_regenerate


def _stream(out: Outputs, can_stream: bool, request, progress, v: dict, events: Callable) -> Iterator[dict]:
    """Run one conversation's events (`events(cfg, out_dir, names, progress, should_stop, on_text)`) into outputs."""
    clear = {box: gr.Markdown(visible=False) for box in set(out.errors.values())}
    names = {"A": (v["name_a"] or "").strip() or "A", "B": (v["name_b"] or "").strip() or "B"}
    session = request.session_hash if request is not None else None  # None: example caching at start-up
    stop = threading.Event()
    if session:
        _STOPS[session] = stop
    lines = []
    secrets: tuple[str, ...] = ()  # this request's keys (the operator's or the visitor's): never shown
    try:
        cfg = settings_to_config({k: v[k] for k in ("turns", *SETTING_NAMES)})
        secrets = (cfg.dialogue.api_key, cfg.speech.openai_api_key)
        out_dir = _new_output_dir()
        yield {**clear, out.live: gr.Video(value=None, visible=can_stream), out.video: None, out.transcript: "",
               out.files: None, out.status: "Starting…"}  # fmt: skip
        draft: list = [None]  # (speaker, text so far) of the line being written, set from the pipeline's thread
        shown = None

        def on_text(speaker: str, text: str) -> None:
            draft[0] = (speaker, text)

        report = lambda f, m: progress(f, desc=m)  # noqa: E731
        for event in in_thread(lambda: events(cfg, out_dir, names, report, stop.is_set, on_text), stop):
            if event is None:  # nothing finished yet: the line being written, as far as it goes
                if draft[0] is not None and draft[0] != shown:
                    shown = draft[0]
                    # Unnumbered: the turn thread may be writing a line or two ahead of the ones shown.
                    pending = f"✍️ *{names[shown[0]]} is writing:* {shown[1]}…"
                    yield {out.transcript: _transcript(lines, names) + "\n\n" + pending}
                else:
                    yield {out.status: gr.skip()}
            elif isinstance(event, TurnWritten):
                lines.append(event.turn)
                draft[0] = shown = None
                yield {out.transcript: _transcript(lines, names)}
            elif isinstance(event, Notice) and event.field:
                gr.Warning(event.message)
                yield {out.box(event.field): gr.Markdown(f"ℹ️ {event.message}", visible=True)}
            elif isinstance(event, SegmentRendered) and can_stream:
                chunk = out_dir / event.path.name  # our copy: the pipeline removes its pieces when done
                shutil.copy(event.path, chunk)
                yield {out.live: str(chunk), out.status: f"Turn {event.index + 1} ready — playing while the rest "
                       "renders."}  # fmt: skip
            elif isinstance(event, Finished):
                if event.result.partial:
                    gr.Warning(f"Partial result: {event.result.note}.")
                yield _result_updates(out, event.result, names)
    except InputError as exc:
        yield {out.box(exc.field): gr.Markdown(f"⚠️ {exc}", visible=True), out.status: ""}
        raise gr.Error(str(exc), title=FIELD_TITLES.get(exc.field or "", "Please check your input")) from None
    except Exception as exc:
        partial = getattr(exc, "partial_result", None)
        message = _explain(exc, len(lines), secrets)
        if partial is not None:  # keep the finished turns: the visitor gets them with the reason
            gr.Warning(message)
            yield {
                **_result_updates(out, partial, names),
                out.status: f"⚠️ Partial result: {message} Here are the {len(partial.turns)} finished turns.",
            }
            return  # fmt: skip
        raise gr.Error(message) from None
    finally:
        if session:
            _STOPS.pop(session, None)


def in_thread(make_events: Callable[[], Iterator], stop: threading.Event) -> Iterator:
    """The pipeline's events, made in a thread of their own; None every `POLL_S` while none is due.

    Gradio cancels a request (a visitor leaving, the API's cancel) only between two steps of its handler, so the
    handler must never block for a whole turn's render. When the handler is closed part-way, the pipeline is asked
    to stop at its next check.
    """
    events: queue.SimpleQueue = queue.SimpleQueue()
    end = object()

    def run() -> None:
        try:
            for event in make_events():
                events.put(event)
            events.put(end)
        except BaseException as exc:  # handed to the request's thread, which reports it
            events.put(_Failure(exc))

    # The copied context carries Gradio's per-request progress tracker into the thread.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="warmchat-request", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = events.get(timeout=POLL_S)
            except queue.Empty:
                yield None
                continue
            if item is end:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        if thread.is_alive():  # closed early (cancelled): let the pipeline wind down on its own
            stop.set()


@dataclass
class _Failure:
    exc: BaseException


def _explain(exc: Exception, written: int, secrets: tuple[str, ...]) -> str:
    """A visitor-facing sentence for a failure: our own errors say what to do; anything else is logged in full."""
    if isinstance(exc, WarmChatError):
        return scrub(str(exc), *secrets)[:500]
    log.exception("request failed after %d turns were written", written)
    return (f"Something went wrong on the server while making turn {written or 1} ({type(exc).__name__}). "
            "Please try again; if it keeps happening, try other settings or report it.")  # fmt: skip


def stop_generation(request: gr.Request) -> str:
    """Ask this visitor's running request to stop after the current batch of frames; it returns what is done."""
    stop = _STOPS.get(request.session_hash) if request is not None else None
    if stop is None:
        return ""
    stop.set()
    return "Stopping… the finished turns will be joined into a video."


def preview_portrait(path: str | None, who: str) -> tuple:
    """Decode an upload with the same intake as the CLI: the image as read, or the reason it cannot be used."""
    if not path:
        return None, gr.Markdown(visible=False)
    try:
        image = face.load_image(path, who, limits=app_limits())
    except InputError as exc:
        return None, gr.Markdown(f"⚠️ {exc}", visible=True)
    try:  # the face check too, so a photo without a usable face is flagged before anything is generated
        rig = face.build_rig(path, who, limits=app_limits())
    except InputError as exc:
        return np.asarray(image), gr.Markdown(f"⚠️ {exc}", visible=True)
    notes = " ".join(rig.notes)
    return np.asarray(image), gr.Markdown(f"ℹ️ {notes}", visible=True) if notes else gr.Markdown(visible=False)
