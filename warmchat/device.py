"""The one place that decides which torch device heavy models run on."""

from __future__ import annotations

from typing import Literal

Device = Literal["cuda", "mps", "cpu"]


def pick_device() -> Device:
    """ "cuda" when a CUDA GPU is usable (on ZeroGPU the `spaces` package reports one), else "mps", else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
