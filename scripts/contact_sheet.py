"""Render a contact sheet: one portrait through the rig's expressions and the largest supported head poses.

python scripts/contact_sheet.py                      # examples/astronaut.png -> docs/contact_sheet.png
python scripts/contact_sheet.py --portrait examples/mona_lisa.jpg --out /tmp/mona.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (label, controls and pose in degrees): every control of the rig, and the pose limits (yaw/pitch 15, roll 10).
CELLS: tuple[tuple[str, dict[str, float]], ...] = (
    ("rest", {}),
    ("jawOpen .3", {"jawOpen": 0.3}),
    ("jawOpen .6", {"jawOpen": 0.6}),
    ("jawOpen 1", {"jawOpen": 1.0}),
    ("smile", {"mouthSmile_L": 1, "mouthSmile_R": 1, "cheekRaise": 0.6, "eyeSquint_L": 0.3, "eyeSquint_R": 0.3}),
    ("smile + talk", {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "jawOpen": 0.45, "cheekRaise": 0.4}),
    ("frown", {"mouthFrown_L": 1, "mouthFrown_R": 1, "browInnerUp": 0.7}),
    (
        "angry",
        {"browDown_L": 1, "browDown_R": 1, "mouthPress": 1, "noseSneer": 0.4, "eyeSquint_L": 0.5, "eyeSquint_R": 0.5},
    ),
    (
        "surprised",
        {"eyeWide_L": 1, "eyeWide_R": 1, "browInnerUp": 1, "browOuterUp_L": 1, "browOuterUp_R": 1, "jawOpen": 0.4},
    ),
    ("funnel 'oo'", {"mouthFunnel": 1, "jawOpen": 0.2}),
    ("pucker", {"mouthPucker": 1}),
    ("stretch + sneer", {"mouthStretch_L": 1, "mouthStretch_R": 1, "noseSneer": 1}),
    ("blink", {"eyeBlink_L": 1, "eyeBlink_R": 1}),
    ("half blink", {"eyeBlink_L": 0.5, "eyeBlink_R": 0.5}),
    ("wink + smirk", {"eyeBlink_L": 1, "mouthSmile_L": 1}),
    ("gaze left", {"gazeX": -1}),
    ("gaze right, up", {"gazeX": 1, "gazeY": -1}),
    ("gaze down", {"gazeY": 1, "browInnerUp": 0.5}),
    ("yaw -15", {"yaw": -15}),
    ("yaw +15", {"yaw": 15}),
    ("pitch -15", {"pitch": -15}),
    ("pitch +15", {"pitch": 15}),
    ("roll -10", {"roll": -10}),
    (
        "yaw 15 roll 10 talk",
        {"yaw": 15, "roll": 10, "pitch": 8, "jawOpen": 0.5, "mouthSmile_L": 0.6, "mouthSmile_R": 0.6},
    ),
)
POSE_DEG = ("yaw", "pitch", "roll")


def render_sheet(portrait: Path, cell: int = 160, cols: int = 6) -> np.ndarray:
    """(rows * (cell + LABEL_H), cols * cell, 3) uint8 grid of labelled frames."""
    from warmchat.controls import INDEX, POSE_INDEX, rest_pose, zeros
    from warmchat.face import build_rig
    from warmchat.render.cpu import CpuRenderer
    from warmchat.sheet import labelled_tile, tile_grid

    renderer = CpuRenderer(build_rig(portrait, "A"))
    tiles = []
    for label, values in CELLS:
        expression, pose = zeros(1)[0], rest_pose(1)[0]
        for name, value in values.items():
            if name in POSE_DEG:
                pose[POSE_INDEX[name]] = np.radians(value)
            else:
                expression[INDEX[name]] = value
        tiles.append(labelled_tile(renderer.render(expression, pose), label, cell))
    return tile_grid(tiles, cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", type=Path, default=ROOT / "examples" / "astronaut.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "contact_sheet.png")
    parser.add_argument("--cell", type=int, default=160, help="pixels per frame in the sheet")
    args = parser.parse_args()
    from warmchat.sheet import save_sheet

    save_sheet(render_sheet(args.portrait, args.cell), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
