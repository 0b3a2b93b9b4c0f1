"""Shared fixtures: example portraits, a short scripted conversation rendered once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TWO_TURNS = (
    "A [happy]: Hello there! It is so good to see you again after all this time.\n"
    "B [sad]: I missed you too, but I have some bad news about my old job.\n"
)


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's small-LLM work on one torch thread, then restore the setting.

    On a small shared CPU, one thread samples SmolLM2 several times faster than two that wait on each other
    (docs/dialogue.md has the measurements).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict:
    """Render a 2-turn scripted conversation from the examples through the CLI, once."""
    out_dir = tmp_path_factory.mktemp("render")
    script = out_dir / "script.txt"
    script.write_text(TWO_TURNS)
    out = out_dir / "chat.mp4"
    cmd = [
        sys.executable,
        "-m",
        "warmchat",
        "render",
        "--portrait-a",
        str(EXAMPLES / "astronaut.png"),
        "--portrait-b",
        str(EXAMPLES / "grace_hopper.jpg"),
        "--emotion-a",
        "happy",
        "--emotion-b",
        "neutral",
        "--script",
        str(script),
        "--size",
        "256",
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"out": out, "summary": json.loads(proc.stdout), "size": 256}


def decode_video(path: Path, width: int, height: int) -> np.ndarray:
    """All frames of an MP4 as (N, H, W, 3) uint8, decoded by the same ffmpeg the app uses."""
    from warmchat.compose import ffmpeg_exe

    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def probe(path: Path) -> str:
    """ffmpeg's description of a media file's streams."""
    from warmchat.compose import ffmpeg_exe

    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
