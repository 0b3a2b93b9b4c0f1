"""Renderers: FaceRig + per-frame motion -> frames. Backends share one interface and are picked by name."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from warmchat.config import RenderConfig, RendererName
from warmchat.errors import BackendUnavailable
from warmchat.face import FaceRig
from warmchat.render.cpu import CpuRenderer
from warmchat.render.diffusion import DiffusionRenderer, diffusion_unavailable

log = logging.getLogger(__name__)


class Renderer(Protocol):
    name: str  # shown to the user: which renderer made the video

    def render(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 frame for (K,) controls and a (6,) head pose."""

    def render_batch(self, expressions: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for (B, K) controls and (B, 6) poses, in playback order."""


def make_renderer(
    rig: FaceRig, name: RendererName = "auto", config: RenderConfig | None = None, seed: int = 0
) -> Renderer:
    """The renderer for one portrait.

    Args:
        rig: the portrait.
        name: "cpu" mesh warp; "diffusion" (downloads weights if needed, raises BackendUnavailable if it cannot);
            "auto": diffusion on a CUDA GPU when its weights are already local, else the CPU warp with a warning why.
        config: diffusion settings (model ids, steps, ...).
        seed: the user's seed; each person's diffusion noise derives from it.
    """
    cfg = config or RenderConfig()
    if name == "cpu":
        return CpuRenderer(rig)
    if name == "diffusion":
        return DiffusionRenderer(rig, cfg, seed)
    if name != "auto":
        raise ValueError(f"unknown renderer {name!r}; use 'auto', 'cpu' or 'diffusion'")
    reason = diffusion_unavailable(cfg)
    if reason is None:
        try:
            return DiffusionRenderer(rig, cfg, seed, local_files_only=True)
        except BackendUnavailable as exc:
            reason = str(exc)
    log.warning("portrait %s: renderer 'auto' uses the CPU mesh warp: %s", rig.name, reason)
    return CpuRenderer(rig)
