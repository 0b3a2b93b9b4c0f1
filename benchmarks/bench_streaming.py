"""Benchmark: how soon each turn is watchable after its line is written (the app's streaming latency), as JSON.

Usage: python benchmarks/bench_streaming.py [--size 384]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=384, help="pixels per face (the app's default is 384)")
    args = parser.parse_args()

    from warmchat import WarmChatConfig
    from warmchat.pipeline import SegmentRendered, TurnWritten, iter_generate

    cfg = WarmChatConfig(seed=0)
    cfg.face.size = args.size
    cfg.speech.cache = False  # measure synthesis, not the speech cache
    t0 = time.perf_counter()
    written, latency, video_s = {}, [], []
    for event in iter_generate(
        ROOT / "examples" / "mona_lisa.jpg",
        ROOT / "examples" / "girl_with_a_pearl_earring.jpg",
        emotion_a="happy",
        script=(ROOT / "examples" / "weekend.txt").read_text(),
        out=ROOT / "out" / "bench_streaming.mp4",
        config=cfg,
        progress=lambda f, m: None,
    ):
        now = time.perf_counter()
        if isinstance(event, TurnWritten):
            written[event.index] = now
        elif isinstance(event, SegmentRendered):
            latency.append(round(now - written[event.index], 2))
            video_s.append(round(event.end_s - event.start_s, 2))
            if event.index == 0:
                first = round(now - t0, 2)
    print(
        json.dumps(
            {
                "machine": f"{os.cpu_count()} cores",
                "face_px": args.size,
                "first_turn_watchable_after_start_s": first,
                "script_to_watchable_s_per_turn": latency,
                "segment_video_s": video_s,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
