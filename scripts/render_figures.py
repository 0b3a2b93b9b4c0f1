"""README figures of the CPU renderer: an open-mouthed portrait closing and opening, and the halo before/after.

    python scripts/render_figures.py [--out docs]

`open_mouth.jpg`: the astronaut photo (smiling with teeth) and frames of `jawOpen` 0 (the rig's rest: lips closed),
0.2, 0.4, 0.6 and 0 again. `halo.jpg`: her head turned and nodded, top row with the layering the renderer used
before (a person mask grown into the background, the plate filled only under its solid part, so the hair's soft
edge stays on the plate and a strip of wall turns with the head), bottom row as it renders now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _frame(renderer, jaw: float = 0.0, **pose_deg: float) -> np.ndarray:
    from warmchat.controls import INDEX, POSE_INDEX, rest_pose, zeros

    e, p = zeros(1)[0], rest_pose(1)[0]
    e[INDEX["jawOpen"]] = jaw
    for name, deg in pose_deg.items():
        p[POSE_INDEX[name]] = np.radians(deg)
    return renderer.render(e, p)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    tile = tile.copy()
    h = tile.shape[0]
    cv2.rectangle(tile, (0, h - 22), (tile.shape[1], h), (0, 0, 0), -1)
    cv2.putText(tile, text, (6, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _spaced(tiles: list[np.ndarray], axis: int = 1) -> list[np.ndarray]:
    """The tiles with a 4-pixel white gap between neighbours."""
    gap = np.full_like(tiles[0][:4] if axis == 0 else tiles[0][:, :4], 255)
    out = [tiles[0]]
    for t in tiles[1:]:
        out += [gap, t]
    return out


def _old_layering(renderer) -> None:
    """Give a renderer the person layer and plate as they were before issue 13 (for the 'before' row only)."""
    import cv2

    from warmchat.render.cpu import fill_background
    from warmchat.rig import _disk, _fill_holes

    r, rig = renderer.mesh_rig, renderer.rig
    fh = r.face_height
    person = np.maximum(rig.person_mask, (r.head_alpha >= 0.99).astype(np.float32))
    solid = _fill_holes(cv2.morphologyEx((person > 0.3).astype(np.uint8), cv2.MORPH_CLOSE, _disk(0.03 * fh)))
    grown = cv2.GaussianBlur(cv2.dilate(solid, _disk(0.02 * fh)).astype(np.float32), (0, 0), 0.01 * fh)
    alpha_f = np.maximum(person, grown) * (r.head_alpha > 0)
    alpha = np.round(alpha_f * 255).astype(np.uint8)
    plate = np.clip(fill_background(rig.image, 1.0 - alpha_f) + 0.5, 0, 255).astype(np.uint8)
    behind = cv2.multiply(plate, cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB), scale=1 / 255)
    renderer._plate = plate
    renderer._head = np.dstack([cv2.subtract(rig.image, behind), alpha])


def main() -> None:
    import cv2

    from warmchat import face
    from warmchat.render.cpu import CpuRenderer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    rig = face.build_rig(ROOT / "examples" / "astronaut.png", "A")
    renderer = CpuRenderer(rig)

    # Open mouth: the face from brows to chin.
    lm = rig.landmarks
    fh = rig.face_height
    cx, cy = lm[face.CHIN, 0], (lm[face.CHIN, 1] + lm[9, 1]) / 2  # 9: between the brows
    half = int(0.42 * fh)
    box = (slice(int(cy) - half, int(cy) + half), slice(int(cx) - half, int(cx) + half))
    tiles = [_label(rig.image[box], "photo")]
    for jaw in (0.0, 0.2, 0.4, 0.6, 0.0):
        tiles.append(_label(_frame(renderer, jaw)[box], f"jawOpen {jaw:.1f}"))
    tiles = [cv2.resize(t, (200, 200), interpolation=cv2.INTER_AREA) for t in tiles]
    strip = np.concatenate(_spaced(tiles), axis=1)
    out = cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(args.out / "open_mouth.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, 88])

    # Halo: the hair's edge and the background beside it, where the head moves away from it, enlarged 2x.
    ys, xs = np.nonzero(rig.person_mask[: int(lm[face.CHIN, 1])] > 0.5)  # the head: hair, face
    left, right, top = xs.min(), xs.max(), ys.min()
    views = {
        "yaw +15 deg": ({"yaw": 15.0}, (left + 10, top + 40)),
        "yaw -15 deg": ({"yaw": -15.0}, (right - 110, top + 40)),
        "nod 12 deg": ({"pitch": 12.0}, (left + 30, max(top - 20, 0))),
    }
    before = CpuRenderer(rig)
    _old_layering(before)
    rows = []
    for name, r in (("before", before), ("now", renderer)):
        row = []
        for label, (pose, (x0, y0)) in views.items():
            x0, y0 = int(np.clip(x0, 0, rig.size - 150)), int(np.clip(y0, 0, rig.size - 150))
            tile = _frame(r, **pose)[y0 : y0 + 150, x0 : x0 + 150]
            row.append(_label(cv2.resize(tile, (300, 300), interpolation=cv2.INTER_CUBIC), f"{name}: {label}"))
        rows.append(np.concatenate(_spaced(row), axis=1))
    sheet = np.concatenate(_spaced(rows, axis=0), axis=0)
    cv2.imwrite(str(args.out / "halo.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    for name in ("open_mouth.jpg", "halo.jpg"):
        print(args.out / name, (args.out / name).stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
