"""UI building blocks: a person card and the advanced settings; widget choices and defaults come from the config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from warmchat.config import WarmChatConfig, app_limits, apply_settings, apply_visitor_server, setting_choices
from warmchat.config import setting_default as default
from warmchat.emotions import EMOTIONS
from warmchat.speech import VOICES

APP_SIZES = (256, 384, 512)  # face sizes offered (those within the app's limit)
APP_FPS = (20, 25, 30)
APP_DEFAULT_SIZE = 384  # smaller than the library's 512: visitors wait less
RENDERER_LABELS = {"auto": "Auto (GPU diffusion when available)", "cpu": "CPU mesh warp",
                   "diffusion": "Diffusion (CUDA GPU)"}  # fmt: skip
LLM_LABELS = {"local": "Offline model (SmolLM2)", "openai": "OpenAI-compatible LLM"}
TTS_LABELS = {"offline": "Offline voices", "openai": "OpenAI-compatible TTS"}
# The order of the generate endpoint's inputs after the two people and the topic (a stable API).
SETTING_NAMES = ("script", "voice_a", "voice_b", "size", "fps", "seed", "renderer", "tts", "openai_voice_a",
                 "openai_voice_b", "api_base_url", "api_key", "llm", "llm_model", "pitch_a", "rate_a", "pitch_b",
                 "rate_b")  # fmt: skip
SERVER_FIELDS = ("api_base_url", "api_key")  # applied by `apply_visitor_server`, not `apply_settings`


@dataclass
class PersonCard:
    """One person's inputs: portrait (decoded by our own intake, never by Gradio), name, first feeling, voice."""

    portrait: gr.File
    preview: gr.Image
    error: gr.Markdown
    name: gr.Textbox
    emotion: gr.Dropdown
    voice: gr.Dropdown


def person_card(who: str, name: str, emotion: str) -> PersonCard:
    key = who.lower()
    with gr.Column(variant="panel"):
        with gr.Row():
            portrait = gr.File(label=f"Portrait {who}", file_types=["image"], type="filepath", height=120,
                               elem_id=f"portrait_{key}", min_width=140)  # fmt: skip
            preview = gr.Image(label=f"Portrait {who} (as read)", interactive=False, height=200, min_width=140,
                               elem_id=f"preview_{key}", show_label=False)  # fmt: skip
        error = gr.Markdown(visible=False, elem_id=f"error_{key}", elem_classes="warmchat-error")
        with gr.Row():
            # Labels carry the person: the examples table uses them as column keys, which must be unique.
            name_box = gr.Textbox(label=f"Name ({who})", value=name, max_lines=1, min_width=120)
            feeling = gr.Dropdown(list(EMOTIONS), value=emotion, label=f"Feels at first ({who})", min_width=120)
            voice = gr.Dropdown([(f"{v} — {VOICES[v].gender}", v) for v in VOICES], value=default(f"voice_{key}"),
                                label="Voice", min_width=120)  # fmt: skip
    return PersonCard(portrait, preview, error, name_box, feeling, voice)


def _labelled(name: str, labels: dict[str, str], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return [(labels.get(c, c), c) for c in setting_choices(name) or () if c not in skip]


def advanced_settings() -> dict[str, gr.components.Component]:
    """The Advanced accordion's widgets by setting name."""
    limits = app_limits()
    w: dict[str, gr.components.Component] = {}
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            sizes = [s for s in APP_SIZES if s <= limits.max_size]
            w["size"] = gr.Dropdown(sizes, value=min(APP_DEFAULT_SIZE, sizes[-1]), label="Face resolution (px)")
            fps = [f for f in APP_FPS if f <= limits.max_fps]
            w["fps"] = gr.Dropdown(fps, value=min(default("fps"), fps[-1]), label="Frames per second")
            w["seed"] = gr.Number(value=default("seed"), precision=0, minimum=0, label="Seed (same inputs + seed = "
                                  "same video)")  # fmt: skip
            w["renderer"] = gr.Dropdown(_labelled("renderer", RENDERER_LABELS), value=default("renderer"),
                                        label="Renderer")  # fmt: skip
        with gr.Row():
            w["llm"] = gr.Radio(_labelled("llm", LLM_LABELS, skip=("script",)), value=default("llm"),
                                label="Dialogue (ignored when a script is given)")  # fmt: skip
            w["llm_model"] = gr.Textbox(value=default("llm_model"), label="LLM model (OpenAI-compatible)", max_lines=1)
        with gr.Row():  # two voices of one sex told apart (offline voices)
            for who in "ab":
                w[f"pitch_{who}"] = gr.Slider(-6, 6, value=default(f"pitch_{who}"), step=0.5,
                                              label=f"Voice pitch {who.upper()} (semitones)")  # fmt: skip
                w[f"rate_{who}"] = gr.Slider(0.75, 1.33, value=default(f"rate_{who}"), step=0.01,
                                             label=f"Speaking rate {who.upper()}")  # fmt: skip
        with gr.Row():
            w["tts"] = gr.Radio(_labelled("tts", TTS_LABELS), value=default("tts"), label="Speech")
            w["openai_voice_a"] = gr.Textbox(value=default("openai_voice_a"), label="OpenAI voice (A)", max_lines=1)
            w["openai_voice_b"] = gr.Textbox(value=default("openai_voice_b"), label="OpenAI voice (B)", max_lines=1)
        with gr.Row():
            w["api_base_url"] = gr.Textbox(value="", max_lines=1, placeholder="http://127.0.0.1:8000/v1",
                                           label="Your OpenAI-compatible server URL (empty = the operator's)",
                                           elem_id="api_base_url")  # fmt: skip
            # Used for this request only: never stored, logged or sent back; never replaced by the operator's key.
            w["api_key"] = gr.Textbox(value="", type="password", max_lines=1, elem_id="api_key",
                                      label="Your API key (this request only, never stored)")  # fmt: skip
        w["error"] = gr.Markdown(visible=False, elem_id="error_settings", elem_classes="warmchat-error")
    return w


def settings_to_config(values: dict[str, Any]) -> WarmChatConfig:
    """A request's config from the widgets' values, within the app's limits.

    Raises:
        InputError: a value out of range, or a server URL that is not allowed here.
    """
    cfg = WarmChatConfig(limits=app_limits())
    flat = {k: v for k, v in values.items() if k not in SERVER_FIELDS and k != "script"}
    apply_settings(cfg, flat)
    return apply_visitor_server(cfg, values.get("api_base_url") or "", values.get("api_key") or "")
