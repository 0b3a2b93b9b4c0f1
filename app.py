"""WarmChat Gradio app: two portraits, two starting emotions and a topic in; a conversation video out."""

from __future__ import annotations

import logging
import os
import shutil
from functools import partial
from pathlib import Path

import gradio as gr

from warmchat.health import check_environment, require_checkpoints
from webui.animate import build_animate_tab
from webui.chat import chat_tab
from webui.components import SETTING_NAMES, advanced_settings, person_card
from webui.generate import Outputs, make_generate, make_regenerate, preview_portrait, stop_generation

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
# Gradio's streaming video needs ffmpeg and ffprobe on PATH; without them the video appears when complete.
CAN_STREAM = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
MAX_UPLOAD = (
    "50mb"  # Gradio refuses bigger uploads; below it our intake names the limit (WARMCHAT_APP_MAX_IMAGE_BYTES)
)
CSS = ".warmchat-error {color: #b3261e; font-weight: 600}"

log = logging.getLogger("warmchat.app")


def run_example(*people_values):
    """An example with the app's default settings, rendered whole (what the example cache stores)."""
    final = {}
    defaults = [settings[name].value for name in SETTING_NAMES]
    for update in run_generate(None, lambda *a, **k: None, *people_values, *defaults):
        final.update(update)
    return [final[c] for c in (video, plot_png, plot, transcript, files)]


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
    # Not interactive, though Regenerate reads it (the last result's tree JSON): downloads only.
    files = gr.File(label="Downloads: MP4, SRT, tree JSON, plot", file_count="multiple", interactive=False,
                    render=False)  # fmt: skip

    gr.Markdown(HEADER)
    with gr.Tab("Generate"):
        with gr.Row(equal_height=True):
            a = person_card("A", "Alex", "happy")
            b = person_card("B", "Sam", "neutral")
        with gr.Row():
            topic = gr.Textbox(label="Topic", value="weekend plans", max_lines=2, scale=4, elem_id="topic")
            turns = gr.Slider(2, 12, value=4, step=1, label="Turns", scale=1)
        people = [a.portrait, a.name, a.emotion, b.portrait, b.name, b.emotion, topic, turns]
        gr.Examples(EXAMPLE_ROWS, inputs=people, outputs=[video, plot_png, plot, transcript, files], fn=run_example,
                    cache_examples=CACHE_EXAMPLES != "off", cache_mode="lazy" if CACHE_EXAMPLES == "lazy" else "eager",
                    label="Examples: click one to see its conversation")  # fmt: skip
        with gr.Accordion("Write your own script (optional)", open=False):
            script = gr.Textbox(label="One line per turn: 'A: text' or 'B [sad]: text'", lines=6,
                                placeholder=SCRIPT_PLACEHOLDER, elem_id="script")  # fmt: skip
            err_script = gr.Markdown(visible=False, elem_id="error_script", elem_classes="warmchat-error")
        settings = {"script": script, "voice_a": a.voice, "voice_b": b.voice, **advanced_settings()}
        with gr.Row():
            button = gr.Button("Generate conversation", variant="primary", scale=4, elem_id="generate")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                live.render()
                video.render()
            with gr.Column(scale=2):
                transcript.render()
                with gr.Row():
                    regen_turn = gr.Number(value=2, precision=0, minimum=1, label="Turn to regenerate", scale=2,
                                           elem_id="regen_turn")  # fmt: skip
                    regen = gr.Button("Regenerate turn", elem_id="regenerate", scale=1)
        plot.render()
        with gr.Row():
            plot_png.render()
            files.render()

        errors = {"portrait_a": a.error, "portrait_b": b.error, "script": err_script, "topic": err_script,
                  "turns": err_script, "": settings["error"]}  # fmt: skip
        out = Outputs(live, video, plot_png, plot, transcript, files, status, errors)
        run_generate = make_generate(out, CAN_STREAM)
        inputs = [*people, *(settings[name] for name in SETTING_NAMES)]
        event = button.click(run_generate, inputs=inputs, outputs=out.as_list(), api_name="generate")
        # A new take of one turn; the turns after it are written again (the tree keeps the discarded take).
        regen.click(make_regenerate(out, CAN_STREAM), inputs=[*inputs, files, regen_turn], outputs=out.as_list(),
                    api_name="regenerate")  # fmt: skip
        # Stop is cooperative: the request finishes its current batch of frames and returns the finished turns.
        stop.click(stop_generation, outputs=status, api_name="stop", concurrency_limit=None)
        for card, who in ((a, "A"), (b, "B")):
            card.portrait.change(partial(preview_portrait, who=who), inputs=card.portrait, api_name=False,
                                 outputs=[card.preview, card.error], concurrency_limit=None)  # fmt: skip
    with gr.Tab("Chat"):
        chat_tab(EXAMPLES)
    build_animate_tab()

demo.queue(default_concurrency_limit=2, max_size=20)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    require_checkpoints()  # fail at start-up, saying how to fix it, rather than on a visitor's request
    for problem in check_environment():
        log.warning(problem)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), theme=gr.themes.Soft(), css=CSS,
                max_file_size=MAX_UPLOAD)  # fmt: skip
