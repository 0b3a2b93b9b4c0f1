"""WarmChat Gradio app: two portraits, two starting emotions and a topic in; a conversation video out."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from warmchat import InputError, WarmChatConfig, WarmChatError, generate
from warmchat.emotions import EMOTIONS
from warmchat.speech import VOICES

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
HEADER = (ROOT / "docs" / "app_header.md").read_text(encoding="utf-8")
SCRIPT_PLACEHOLDER = "A [happy]: Guess what? I booked the cabin for the weekend!\nB [surprised]: Really? Tell me more."
EXAMPLE_ROWS = [
    [
        str(EXAMPLES / "mona_lisa.jpg"),
        "Lisa",
        "happy",
        str(EXAMPLES / "girl_with_a_pearl_earring.jpg"),
        "Griet",
        "neutral",
        "what makes a good portrait",
        4,
    ],
    [
        str(EXAMPLES / "astronaut.png"),
        "Eileen",
        "happy",
        str(EXAMPLES / "grace_hopper.jpg"),
        "Grace",
        "neutral",
        "weekend plans",
        4,
    ],
    [
        str(EXAMPLES / "grace_hopper.jpg"),
        "Grace",
        "angry",
        str(EXAMPLES / "astronaut.png"),
        "Eileen",
        "surprised",
        "a bug in the flight software",
        4,
    ],
]

log = logging.getLogger("warmchat.app")
OUTPUT_TTL_S = 3600  # per-request working folders older than this are removed (Gradio keeps its own copies)


def _new_output_dir() -> Path:
    """A fresh folder for one request; sweeps away folders left by requests more than an hour old."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("warmchat-*"):
        if old.is_dir() and time.time() - old.stat().st_mtime > OUTPUT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="warmchat-"))


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
    seed,
    progress=gr.Progress(),
):
    """Gradio handler: validates, renders, and turns user-fixable errors into messages next to the inputs."""
    if not portrait_a:
        raise gr.Error("Portrait A is missing: upload a photo or pick an example.", title="Portrait A")
    if not portrait_b:
        raise gr.Error("Portrait B is missing: upload a photo or pick an example.", title="Portrait B")
    cfg = WarmChatConfig(seed=int(seed))
    cfg.face.size = int(size)
    cfg.speech.voice_a, cfg.speech.voice_b = voice_a, voice_b
    out_dir = _new_output_dir()
    try:
        result = generate(
            portrait_a,
            portrait_b,
            emotion_a=emotion_a,
            emotion_b=emotion_b,
            topic=topic or "",
            turns=int(turns),
            script=script if (script or "").strip() else None,
            out=out_dir / "conversation.mp4",
            names={"A": name_a or "A", "B": name_b or "B"},
            config=cfg,
            progress=lambda f, m: progress(f, desc=m),
        )
    except InputError as exc:
        raise gr.Error(str(exc), title=_title(exc.field)) from None
    except WarmChatError as exc:
        raise gr.Error(str(exc)) from None
    names = {"A": name_a or "A", "B": name_b or "B"}
    transcript = "\n".join(f"**{names[t.speaker]}** *({t.emotion})*: {t.text}" for t in result.turns)
    files = [str(result.video), str(result.srt), str(result.tree_json), str(result.timeline_png)]
    return str(result.video), str(result.timeline_png), transcript, files


def _title(field: str | None) -> str:
    return {
        "portrait_a": "Portrait A",
        "portrait_b": "Portrait B",
        "script": "Script",
        "topic": "Topic",
        "turns": "Turns",
    }.get(field or "", "Please check your input")


def portrait_card(label: str, default_name: str, default_emotion: str, default_voice: str):
    with gr.Column(variant="panel"):
        image = gr.Image(label=f"Portrait {label}", type="filepath", height=280, sources=["upload", "clipboard"])
        name = gr.Textbox(label="Name", value=default_name, max_lines=1)
        with gr.Row():
            emotion = gr.Dropdown(list(EMOTIONS), value=default_emotion, label="Starting emotion")
            voice = gr.Dropdown(list(VOICES), value=default_voice, label="Voice")
    return image, name, emotion, voice


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="WarmChat", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(HEADER)
        with gr.Row(equal_height=True):
            img_a, name_a, emo_a, voice_a = portrait_card("A", "Alex", "happy", "hibari")
            img_b, name_b, emo_b, voice_b = portrait_card("B", "Sam", "neutral", "piper-joe")
        with gr.Row():
            topic = gr.Textbox(label="Topic", value="weekend plans", max_lines=2, scale=4)
            turns = gr.Slider(2, 12, value=4, step=1, label="Turns", scale=1)
        with gr.Accordion("Write your own script (optional)", open=False):
            script = gr.Textbox(
                label="Script: one line per turn, 'A: text' or 'B [sad]: text'",
                lines=6,
                placeholder=SCRIPT_PLACEHOLDER,
            )
        with gr.Accordion("Advanced", open=False), gr.Row():
            size = gr.Dropdown([256, 384, 512], value=384, label="Face resolution (px)")
            seed = gr.Number(value=0, precision=0, label="Seed")
        button = gr.Button("Generate conversation", variant="primary")
        with gr.Row():
            video = gr.Video(label="Conversation", autoplay=True, scale=3)
            with gr.Column(scale=2):
                plot = gr.Image(label="Emotion timeline", type="filepath")
                transcript = gr.Markdown()
        files = gr.File(label="Downloads (MP4, SRT, tree JSON, plot)", file_count="multiple")
        inputs = [img_a, name_a, emo_a, img_b, name_b, emo_b, topic, turns]
        gr.Examples(EXAMPLE_ROWS, inputs=inputs, label="Examples: click one, then Generate")
        button.click(
            run_generate,
            inputs=[*inputs, script, voice_a, voice_b, size, seed],
            outputs=[video, plot, transcript, files],
            api_name="generate",
        )
    return demo


demo = build_demo()
demo.queue(default_concurrency_limit=1, max_size=16)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    demo.launch(server_name="127.0.0.1", server_port=7860, theme=gr.themes.Soft())
