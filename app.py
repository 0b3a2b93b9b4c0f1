"""WarmChat Gradio app: two portraits, two starting emotions and a topic in; a conversation video out."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from warmchat import InputError, WarmChatConfig, WarmChatError
from warmchat.emotions import EMOTIONS
from warmchat.health import check_environment
from warmchat.pipeline import Finished, Notice, SegmentRendered, TurnWritten, iter_generate
from warmchat.plots import timeline_rows
from warmchat.speech import VOICES
from warmchat.tree import InteractiveTalkingTree

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
HEADER = (ROOT / "docs" / "app_header.md").read_text(encoding="utf-8")
SCRIPT_PLACEHOLDER = "A [happy]: Guess what? I booked the cabin for the weekend!\nB [surprised]: Really? Tell me more."
EXAMPLE_ROWS = [
    [str(EXAMPLES / "mona_lisa.jpg"), "Lisa", "happy", str(EXAMPLES / "girl_with_a_pearl_earring.jpg"), "Griet",
     "neutral", "what makes a good portrait", 4],
    [str(EXAMPLES / "astronaut.png"), "Eileen", "happy", str(EXAMPLES / "grace_hopper.jpg"), "Grace", "neutral",
     "weekend plans", 4],
    [str(EXAMPLES / "grace_hopper.jpg"), "Grace", "angry", str(EXAMPLES / "astronaut.png"), "Eileen", "surprised",
     "a bug in the flight software", 4],
]  # fmt: skip
# "lazy" renders an example the first time someone clicks it and serves it instantly after; "eager" renders all
# at start-up (the default on a Space, so the first visitor waits for nothing); "off" only fills the inputs.
CACHE_EXAMPLES = os.environ.get("WARMCHAT_CACHE_EXAMPLES", "eager" if os.environ.get("SPACE_ID") else "lazy")
OUTPUT_TTL_S = 3600  # per-request working folders older than this are removed (Gradio keeps its own copies)
# Gradio's streaming video needs ffmpeg and ffprobe on PATH; without them the video appears when complete.
CAN_STREAM = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
FIELD_TITLES = {"portrait_a": "Portrait A", "portrait_b": "Portrait B", "script": "Script", "topic": "Topic",
                "turns": "Turns", "emotion_a": "Emotion A", "emotion_b": "Emotion B"}  # fmt: skip

log = logging.getLogger("warmchat.app")


def _new_output_dir() -> Path:
    """A fresh folder for one request; sweeps away folders left by requests more than an hour old."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("warmchat-*"):
        if old.is_dir() and time.time() - old.stat().st_mtime > OUTPUT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="warmchat-"))


def _transcript(turns, names) -> str:
    return "\n\n".join(f"**{i + 1}. {names[t.speaker]}** · *{t.emotion}* — {t.text}" for i, t in enumerate(turns))


def _plot_frame(result, names) -> pd.DataFrame:
    tree = InteractiveTalkingTree.load(result.tree_json)
    return pd.DataFrame(timeline_rows(tree, result.n_frames, result.fps, names))


def run_generate(
    portrait_a,
    name_a,
    emotion_a,
    portrait_b,
    name_b,
    emotion_b,
    topic,
    turns,
    script,
    voice_a,
    voice_b,
    size,
    fps,
    seed,
    renderer="auto",
    tts="offline",
    openai_voice_a="coral",
    openai_voice_b="onyx",
    api_base_url="",
    api_key="",
    llm="local",
    llm_model="gpt-4o-mini",
    progress=gr.Progress(),
):
    """Streams the conversation: the transcript grows as lines are written, the video plays turn by turn, and the
    full MP4, plot and downloads replace the preview at the end. User-fixable errors are shown next to the input."""
    names = {"A": (name_a or "").strip() or "A", "B": (name_b or "").strip() or "B"}
    hints = {"portrait_a": err_a, "portrait_b": err_b, "script": err_script, "topic": err_script}
    clear = {box: gr.Markdown(visible=False) for box in (err_a, err_b, err_script)}
    missing = [(f, n) for f, n, v in (("portrait_a", "A", portrait_a), ("portrait_b", "B", portrait_b)) if not v]
    if missing:
        field, who = missing[0]
        yield {**clear, hints[field]: gr.Markdown(f"⚠️ Portrait {who} is missing.", visible=True)}
        raise gr.Error(f"Portrait {who} is missing: upload a photo or pick an example.", title=f"Portrait {who}")
    cfg = WarmChatConfig(seed=int(seed or 0))
    cfg.face.size, cfg.compose.fps = int(size), int(fps)
    cfg.speech.voice_a, cfg.speech.voice_b = voice_a, voice_b
    cfg.render.renderer = renderer
    cfg.speech.backend = tts
    cfg.speech.openai_voice_a, cfg.speech.openai_voice_b = openai_voice_a.strip(), openai_voice_b.strip()
    cfg.dialogue.backend = llm
    cfg.dialogue.llm_model = (llm_model or "").strip() or cfg.dialogue.llm_model
    # One OpenAI-compatible server for both the LLM and the TTS; the key lives only in this request's config.
    if (api_base_url or "").strip():
        cfg.speech.openai_base_url = cfg.dialogue.llm_base_url = api_base_url.strip()
    if (api_key or "").strip():
        cfg.speech.openai_api_key = cfg.dialogue.api_key = api_key.strip()
    out_dir = _new_output_dir()
    lines = []
    yield {
        **clear,
        live: gr.Video(value=None, visible=CAN_STREAM),
        video: None,
        transcript: "",
        status: "Starting…",
    }
    events = iter_generate(
        portrait_a,
        portrait_b,
        emotion_a=emotion_a,
        emotion_b=emotion_b,
        topic=topic or "",
        turns=int(turns),
        script=script if (script or "").strip() else None,
        out=out_dir / "conversation.mp4",
        names=names,
        config=cfg,
        progress=lambda f, m: progress(f, desc=m),
    )
    try:
        for event in events:
            if isinstance(event, TurnWritten):
                lines.append(event.turn)
                yield {transcript: _transcript(lines, names)}
            elif isinstance(event, Notice):
                gr.Warning(event.message)
                yield {hints.get(event.field, err_script): gr.Markdown(f"ℹ️ {event.message}", visible=True)}
            elif isinstance(event, SegmentRendered) and CAN_STREAM:
                chunk = out_dir / event.path.name  # our copy: the pipeline removes its pieces when done
                shutil.copy(event.path, chunk)
                yield {live: str(chunk), status: f"Turn {event.index + 1} ready — playing while the rest renders."}
            elif isinstance(event, Finished):
                r = event.result
                yield {
                    live: gr.Video(visible=False), video: str(r.video),
                    plot_png: str(r.timeline_png), plot: _plot_frame(r, names),
                    transcript: _transcript(r.turns, names),
                    files: [str(r.video), str(r.srt), str(r.tree_json), str(r.timeline_png)],
                    status: f"Done: {len(r.turns)} turns, {r.duration_s:.1f} s of video, renderer: {r.renderer}.",
                }  # fmt: skip
    except InputError as exc:
        box = hints.get(exc.field or "", err_script)
        yield {box: gr.Markdown(f"⚠️ {exc}", visible=True), status: ""}
        raise gr.Error(str(exc), title=FIELD_TITLES.get(exc.field or "", "Please check your input")) from None
    except WarmChatError as exc:
        raise gr.Error(str(exc)) from None


def run_example(portrait_a, name_a, emotion_a, portrait_b, name_b, emotion_b, topic, turns):
    """An example with default settings, rendered whole (what the example cache stores)."""
    final = {}
    for update in run_generate(
        portrait_a,
        name_a,
        emotion_a,
        portrait_b,
        name_b,
        emotion_b,
        topic,
        turns,
        "",
        "hibari",
        "piper-joe",
        384,
        25,
        0,
        progress=lambda *a, **k: None,
    ):
        final.update(update)
    return [final[c] for c in (video, plot_png, plot, transcript, files)]


def portrait_card(label: str, default_name: str, default_emotion: str, default_voice: str):
    with gr.Column(variant="panel"):
        image = gr.Image(
            label=f"Portrait {label}",
            type="filepath",
            height=260,
            sources=["upload", "clipboard"],
            elem_id=f"portrait_{label.lower()}",
        )
        error = gr.Markdown(visible=False, elem_id=f"error_{label.lower()}", elem_classes="warmchat-error")
        with gr.Row():
            # Labels carry the person: the examples table uses them as column keys, which must be unique.
            name = gr.Textbox(label=f"Name ({label})", value=default_name, max_lines=1, min_width=120)
            emotion = gr.Dropdown(
                list(EMOTIONS), value=default_emotion, label=f"Feels at first ({label})", min_width=120
            )
            voice = gr.Dropdown(
                [(f"{v} — {VOICES[v].gender}", v) for v in VOICES], value=default_voice, label="Voice", min_width=120
            )
    return image, error, name, emotion, voice


with gr.Blocks(title="WarmChat", delete_cache=(1800, 3600)) as demo:
    # Outputs are created first (unrendered) so the examples, which fill them, can sit right under the inputs.
    live = gr.Video(label="Live: plays turn by turn", streaming=True, autoplay=True, visible=False, elem_id="live",
                    render=False)  # fmt: skip
    video = gr.Video(label="Conversation", autoplay=True, elem_id="video", render=False)
    transcript = gr.Markdown(label="Transcript", elem_id="transcript", render=False)
    plot = gr.LinePlot(x="time (s)", y="valence", color="person", y_lim=[-1, 1], height=260,
                       tooltip=["time (s)", "person", "feeling", "valence", "arousal", "line"],
                       title="Emotion timeline: valence (pleasant ↑ / unpleasant ↓); hover for the line",
                       elem_id="plot", render=False)  # fmt: skip
    plot_png = gr.Image(label="Emotion timeline (PNG)", type="filepath", height=240, render=False)
    files = gr.File(label="Downloads: MP4, SRT, tree JSON, plot", file_count="multiple", render=False)

    gr.Markdown(HEADER)
    with gr.Row(equal_height=True):
        img_a, err_a, name_a, emo_a, voice_a = portrait_card("A", "Alex", "happy", "hibari")
        img_b, err_b, name_b, emo_b, voice_b = portrait_card("B", "Sam", "neutral", "piper-joe")
    with gr.Row():
        topic = gr.Textbox(label="Topic", value="weekend plans", max_lines=2, scale=4, elem_id="topic")
        turns = gr.Slider(2, 12, value=4, step=1, label="Turns", scale=1)
    inputs = [img_a, name_a, emo_a, img_b, name_b, emo_b, topic, turns]
    gr.Examples(EXAMPLE_ROWS, inputs=inputs, outputs=[video, plot_png, plot, transcript, files], fn=run_example,
                cache_examples=CACHE_EXAMPLES != "off", cache_mode="lazy" if CACHE_EXAMPLES == "lazy" else "eager",
                label="Examples: click one to see its conversation")  # fmt: skip
    with gr.Accordion("Write your own script (optional)", open=False):
        script = gr.Textbox(label="One line per turn: 'A: text' or 'B [sad]: text'", lines=6,
                            placeholder=SCRIPT_PLACEHOLDER, elem_id="script")  # fmt: skip
        err_script = gr.Markdown(visible=False, elem_id="error_script", elem_classes="warmchat-error")
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            size = gr.Dropdown([256, 384, 512], value=384, label="Face resolution (px)")
            fps = gr.Dropdown([20, 25, 30], value=25, label="Frames per second")
            seed = gr.Number(value=0, precision=0, label="Seed (same inputs + seed = same video)")
            renderers = [("Auto (GPU diffusion when available)", "auto"), ("CPU mesh warp", "cpu"),
                         ("Diffusion (CUDA GPU)", "diffusion")]  # fmt: skip
            renderer = gr.Dropdown(renderers, value="auto", label="Renderer")
        with gr.Row():
            llm = gr.Radio([("Offline model (SmolLM2)", "local"), ("OpenAI-compatible LLM", "openai")],
                           value="local", label="Dialogue (ignored when a script is given)")  # fmt: skip
            llm_model = gr.Textbox(value="gpt-4o-mini", label="LLM model (OpenAI-compatible)", max_lines=1)
        with gr.Row():
            tts = gr.Radio([("Offline voices", "offline"), ("OpenAI-compatible TTS", "openai")], value="offline",
                           label="Speech")  # fmt: skip
            openai_voice_a = gr.Textbox(value="coral", label="OpenAI voice (A)", max_lines=1)
            openai_voice_b = gr.Textbox(value="onyx", label="OpenAI voice (B)", max_lines=1)
        with gr.Row():
            api_base_url = gr.Textbox(value="", label="OpenAI-compatible server URL (empty = api.openai.com)",
                                      max_lines=1, placeholder="http://127.0.0.1:8000/v1")  # fmt: skip
            # Used for this request only: never stored, logged or sent back.
            api_key = gr.Textbox(value="", label="API key (used for this request only, never stored)", type="password",
                                 max_lines=1)  # fmt: skip
    with gr.Row():
        button = gr.Button("Generate conversation", variant="primary", scale=4, elem_id="generate")
        stop = gr.Button("Stop", variant="stop", scale=1)
    status = gr.Markdown(elem_id="status")
    with gr.Row():
        with gr.Column(scale=3):
            live.render()
            video.render()
        with gr.Column(scale=2):
            transcript.render()
    plot.render()
    with gr.Row():
        plot_png.render()
        files.render()
    outputs = [live, video, plot_png, plot, transcript, files, status, err_a, err_b, err_script]
    settings = [script, voice_a, voice_b, size, fps, seed, renderer, tts, openai_voice_a, openai_voice_b,
                api_base_url, api_key, llm, llm_model]  # fmt: skip
    event = button.click(run_generate, inputs=[*inputs, *settings], outputs=outputs, api_name="generate")
    stop.click(None, cancels=[event])

demo.queue(default_concurrency_limit=2, max_size=20)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for problem in check_environment():
        log.warning(problem)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        theme=gr.themes.Soft(),
        css=".warmchat-error {color: #b3261e; font-weight: 600}",
    )
