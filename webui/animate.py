"""The Animate tab: one portrait speaking an uploaded or recorded voice (`warmchat.animate`), errors shown plainly."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from warmchat import InputError, WarmChatError
from warmchat.config import WarmChatConfig, app_limits, apply_settings
from warmchat.emotions import EMOTIONS
from webui.components import APP_DEFAULT_SIZE, APP_SIZES
from webui.generate import _new_output_dir

log = logging.getLogger("warmchat.app")

INTRO = (
    "Bring your own voice: upload a recording (WAV, MP3, M4A) or record one, and the portrait speaks it. "
    "Without a transcript the lips follow the sound (a model trained on real talking faces); with one, they "
    "follow its phonemes aligned to the recording (up to a minute)."
)


def run_animate(portrait, audio, emotion, text, size, progress: gr.Progress = gr.Progress()):  # noqa: B008
    """The endpoint: (portrait file, audio file, emotion, transcript, face size) -> the MP4."""
    from warmchat.animate import animate

    if not portrait:
        raise gr.Error("Give a photo of a person's face.", title="Portrait")
    if not audio:
        raise gr.Error("Upload or record the speech to animate.", title="Audio")
    cfg = WarmChatConfig()
    cfg.limits = app_limits()
    try:
        apply_settings(cfg, {"size": size})
        result = animate(
            portrait, audio, _new_output_dir() / "animate.mp4", text=text or None, emotion=emotion or "neutral",
            config=cfg, progress=lambda f, m: progress(f, desc=m),
        )  # fmt: skip
    except InputError as exc:
        raise gr.Error(str(exc), title=f"Please check the {exc.field or 'input'}") from None
    except WarmChatError as exc:
        raise gr.Error(str(exc)) from None
    except Exception:
        log.exception("animate failed")
        raise gr.Error("Animating failed unexpectedly; the server log has the details.") from None
    return str(result.video), f"{result.duration_s:.1f} s, {result.n_frames} frames, lips from the {result.mouth}."


def build_animate_tab() -> None:
    """The tab's widgets and its `animate` API endpoint (call inside the app's Blocks)."""
    with gr.Tab("Animate", id="animate"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                portrait = gr.File(label="Portrait", file_types=["image"], type="filepath", elem_id="animate_portrait")
                audio = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath",
                                 elem_id="animate_audio")  # fmt: skip
                with gr.Row():
                    emotion = gr.Dropdown(list(EMOTIONS), value="neutral", label="Emotion")
                    size = gr.Dropdown(list(APP_SIZES), value=APP_DEFAULT_SIZE, label="Face size (pixels)")
                text = gr.Textbox(label="Transcript (optional)", lines=2, elem_id="animate_text")
                button = gr.Button("Animate", variant="primary", elem_id="animate_button")
            with gr.Column():
                video = gr.Video(label="Animated portrait", autoplay=True, elem_id="animate_video")
                status = gr.Markdown(elem_id="animate_status")
        gr.Examples([[str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg")]], inputs=[portrait])
        button.click(run_animate, inputs=[portrait, audio, emotion, text, size], outputs=[video, status],
                     api_name="animate")  # fmt: skip
