"""A strip of frames from a short two-person exchange: the speaker's visemes and the listener's reactions.

    python scripts/motion_strip.py [--out docs/motion_strip.png]

Top row: A speaking (labelled with the phoneme at that frame); bottom row: B listening at the same moments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import cv2

    from warmchat import face, motion
    from warmchat.config import FaceConfig, MotionConfig
    from warmchat.render.cpu import CpuRenderer
    from warmchat.schema import Turn
    from warmchat.speech import voice_turn
    from warmchat.timeline import build_timeline
    from warmchat.tree import build_tree

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "motion_strip.png")
    parser.add_argument("--size", type=int, default=144)
    args = parser.parse_args()
    turns = [
        Turn("A", "We went to the beach, and the water was so blue. Wow!", "happy", 0.9),
        Turn("B", "That sounds wonderful.", "happy", 0.8),
    ]
    utts = [voice_turn(t, i, "hibari" if t.speaker == "A" else "piper-joe") for i, t in enumerate(turns)]
    clock = build_timeline(turns, utts)
    tree = build_tree("a trip", "happy", "happy", turns)
    tree.set_times(clock)
    curves = tree.emotion_curves(clock)
    rngs = np.random.default_rng(0).spawn(2)
    cfg = MotionConfig()
    params = {p: motion.draw_person_motion(rngs[i], cfg) for i, p in enumerate("AB")}
    tracks = {p: motion.build_motion(p, clock, utts, curves[p], cfg, params[p]) for p in "AB"}
    rigs = {
        "A": face.build_rig(ROOT / "examples" / "astronaut.png", "A", FaceConfig(size=256)),
        "B": face.build_rig(ROOT / "examples" / "grace_hopper.jpg", "B", FaceConfig(size=256)),
    }
    seg = clock.segments[0]
    # Moments that show the lips: the first closure, open and rounded vowels, then B's reactions after A's pauses.
    wanted = []
    from warmchat.motion.speaker import viseme_class

    for label, classes in (("b (closed)", {"bilabial"}), ("a (open)", {"open"}), ("w (round)", {"close_round", "w"})):
        for ph, a, b in utts[0].phonemes:
            if viseme_class(ph) in classes and b - a >= 0.05:
                wanted.append((f"A says {label}", int(round(seg.start * 25)) + int(round((a + b) / 2 * 25))))
                break
    pitch = np.degrees(tracks["B"].pose[:, 1])
    smile = tracks["B"].expression[:, 3]
    f_nod = int(np.argmax(pitch[: int(seg.end * 25) + 40]))
    f_smile = int(np.argmax(smile[: int(seg.end * 25) + 40]))
    wanted += [("B nods", f_nod), ("B smiles", f_smile)]
    s = args.size
    tiles = []
    for label, f in wanted:
        col = []
        for p in "AB":
            frame = CpuRenderer(rigs[p]).render(tracks[p].expression[f], tracks[p].pose[f])
            col.append(cv2.resize(frame, (s, s), interpolation=cv2.INTER_AREA))
        tile = np.concatenate(col, axis=0)
        tile = np.concatenate([np.full((22, s, 3), 255, np.uint8), tile], axis=0)
        cv2.putText(tile, f"{label} {f / 25:.2f}s", (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    strip = np.concatenate(tiles, axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # A 256-colour palette keeps the PNG small enough to commit.
    Image.fromarray(strip).quantize(256, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
