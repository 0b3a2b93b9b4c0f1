"""Benchmark: render a fixed 4-turn scripted conversation and print per-stage wall time and real-time factor (JSON).

Usage: python benchmarks/bench_pipeline.py [--size 512] [--out out/bench.mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512, help="pixels per face")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench.mp4")
    args = parser.parse_args()

    from warmchat import WarmChatConfig, generate

    cfg = WarmChatConfig(seed=0)
    cfg.face.size = args.size
    cfg.speech.cache = False  # measure synthesis, not the speech cache
    script = (ROOT / "examples" / "weekend.txt").read_text()
    t0 = time.perf_counter()
    result = generate(
        ROOT / "examples" / "astronaut.png",
        ROOT / "examples" / "grace_hopper.jpg",
        emotion_a="happy",
        emotion_b="neutral",
        script=script,
        out=args.out,
        config=cfg,
        progress=lambda f, m: None,
    )
    total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "face_px": args.size,
                "turns": len(result.turns),
                "video_s": round(result.duration_s, 2),
                "frames": result.n_frames,
                "stage_s": {k: round(v, 2) for k, v in result.stage_seconds.items()},
                "total_s": round(total, 2),
                "real_time_factor": round(total / result.duration_s, 3),
                "render_ms_per_frame_pair": round(1000 * result.stage_seconds["render"] / result.n_frames, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
