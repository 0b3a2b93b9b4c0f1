"""Draw the synthetic non-faces used by the tests and `benchmarks/bench_face_check.py`.

Run `python tests/data/draw_nonfaces.py` to (re)write the committed PNGs next to this file; each drawing is
deterministic (fixed shapes, seeded noise), so the files only change when this script does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = 384  # pixels: as large as a small upload, small enough to keep each PNG a few KB


def _canvas(color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), color, np.uint8)


def smiley() -> np.ndarray:
    """A yellow disc, two black eyes and a smiling arc: the emoji, not a person."""
    import cv2

    img = _canvas()
    c = SIZE // 2
    cv2.circle(img, (c, c), 150, (250, 215, 40), -1, cv2.LINE_AA)
    cv2.circle(img, (c, c), 150, (30, 30, 30), 4, cv2.LINE_AA)
    for dx in (-55, 55):
        cv2.ellipse(img, (c + dx, c - 40), (14, 24), 0, 0, 360, (30, 30, 30), -1, cv2.LINE_AA)
    cv2.ellipse(img, (c, c + 20), (80, 60), 0, 20, 160, (30, 30, 30), 8, cv2.LINE_AA)
    return img


def dots_and_line() -> np.ndarray:
    """Two dots and a line under them on paper: the smallest 'face' a child draws."""
    import cv2

    img = _canvas((245, 240, 228))
    c = SIZE // 2
    cv2.circle(img, (c - 50, c - 30), 12, (20, 20, 20), -1, cv2.LINE_AA)
    cv2.circle(img, (c + 50, c - 30), 12, (20, 20, 20), -1, cv2.LINE_AA)
    cv2.line(img, (c - 45, c + 60), (c + 45, c + 60), (20, 20, 20), 6, cv2.LINE_AA)
    return img


def cartoon_head() -> np.ndarray:
    """An outlined oval head with dot eyes, a stroke nose and a line mouth, in a cartoon's flat colours."""
    import cv2

    img = _canvas((170, 210, 240))
    c = SIZE // 2
    cv2.ellipse(img, (c, c + 10), (110, 140), 0, 0, 360, (235, 200, 170), -1, cv2.LINE_AA)
    cv2.ellipse(img, (c, c + 10), (110, 140), 0, 0, 360, (40, 30, 30), 4, cv2.LINE_AA)
    cv2.ellipse(img, (c, c - 95), (112, 60), 0, 180, 360, (90, 60, 30), -1, cv2.LINE_AA)  # hair cap
    for dx in (-40, 40):
        cv2.circle(img, (c + dx, c - 10), 9, (30, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, (c, c + 5), (c - 8, c + 40), (40, 30, 30), 3, cv2.LINE_AA)
    cv2.line(img, (c - 35, c + 80), (c + 35, c + 80), (150, 40, 40), 5, cv2.LINE_AA)
    return img


def shapes() -> np.ndarray:
    """Geometric objects: a disc, a square and a triangle in flat colours."""
    import cv2

    img = _canvas((250, 250, 250))
    cv2.circle(img, (110, 120), 70, (200, 40, 40), -1, cv2.LINE_AA)
    cv2.rectangle(img, (210, 60), (340, 190), (40, 90, 200), -1)
    cv2.fillPoly(img, [np.array([[90, 340], [190, 210], [290, 340]], np.int32)], (40, 160, 70), cv2.LINE_AA)
    return img


def noise() -> np.ndarray:
    """Smoothed colour noise: blobs at every scale, where a detector could imagine anything."""
    import cv2

    rng = np.random.default_rng(0)
    img = rng.normal(128, 60, (SIZE, SIZE, 3)).astype(np.float32)
    img = np.clip(cv2.GaussianBlur(img, (0, 0), 8) * 4 - 384, 0, 255).astype(np.uint8)
    return img // 8 * 8  # 32 levels per channel: keeps the PNG a few tens of KB


DRAWINGS = {
    "smiley": smiley,
    "dots_and_line": dots_and_line,
    "cartoon_head": cartoon_head,
    "shapes": shapes,
    "noise": noise,
}


def main() -> None:
    from PIL import Image

    for name, draw in DRAWINGS.items():
        Image.fromarray(draw()).save(HERE / f"{name}.png", optimize=True)
        print(HERE / f"{name}.png")


if __name__ == "__main__":
    main()
