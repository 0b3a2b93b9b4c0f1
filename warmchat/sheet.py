"""Contact sheets: labelled frames tiled into one small PNG (the rig's expressions, or one frame per conversation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL_H = 18  # pixels of the dark strip each tile's label is written on


def labelled_tile(image: np.ndarray, label: str, width: int, height: int | None = None) -> np.ndarray:
    """`image` scaled to `width` (and letterboxed to `height`) under a strip with `label`.

    Args:
        image: (H, W, 3) uint8 RGB.
        label: text, one strip of LABEL_H pixels per line (any script PIL's default font covers; cut to fit).
        width: tile width, pixels.
        height: height of the picture area (default: the scaled image's own); the image is centred in it.
    Returns:
        (lines * LABEL_H + height, width, 3) uint8.
    """
    from PIL import Image, ImageDraw, ImageFont

    h, w = image.shape[:2]
    scaled_h = max(1, round(h * width / w))
    area_h = height or scaled_h
    lines = label.split("\n")
    top = LABEL_H * len(lines)
    picture = Image.fromarray(np.ascontiguousarray(image[..., :3])).resize((width, scaled_h), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (width, top + area_h), (0, 0, 0))
    tile.paste(picture, (0, top + (area_h - scaled_h) // 2))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=LABEL_H - 6)
    for i, line in enumerate(lines):
        text = line
        while text and draw.textlength(text, font=font) > width - 6:
            text = text[:-2] + "…" if len(text) > 1 else ""
        draw.text((3, 2 + i * LABEL_H), text, fill=(255, 255, 255), font=font)
    return np.asarray(tile)


def blank_tile(label: str, width: int, height: int, shade: int = 48) -> np.ndarray:
    """A grey tile with a label: the place of a conversation that has no frame (it failed)."""
    return labelled_tile(np.full((height, width, 3), shade, np.uint8), label, width, height)


def tile_grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Tiles of one size in rows of `cols`, the last row padded with black: (rows * h, cols * w, 3) uint8."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    cols = max(1, min(cols, len(tiles)))
    tiles = list(tiles) + [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    return np.concatenate([np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)], axis=0)


def save_sheet(sheet: np.ndarray, path: Path) -> Path:
    """Write a sheet as a palette PNG: an adaptive 256-colour palette keeps it small (a few hundred KB)."""
    from PIL import Image

    image = Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    return path
