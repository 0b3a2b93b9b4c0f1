"""Renderers: FaceRig + per-frame motion -> frames. Backends share one interface and are picked by name."""

from __future__ import annotations

import logging

from warmchat.face import FaceRig
from warmchat.render.cpu import CpuRenderer

log = logging.getLogger(__name__)


def make_renderer(rig: FaceRig, name: str = "auto") -> CpuRenderer:
    """The renderer for one portrait. "auto" uses the CPU mesh warp until a GPU renderer is installed."""
    if name not in ("auto", "cpu"):
        raise ValueError(f"unknown renderer {name!r}; use 'auto' or 'cpu'")
    return CpuRenderer(rig)
