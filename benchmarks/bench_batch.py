"""Benchmark: batch throughput (conversation-seconds rendered per wall-second) with 1 and 2 workers (JSON).

Renders the same 8 short scripted conversations (every pair of the example portraits, 3 distinct lines each) once
per worker count, each run in a fresh folder with a fresh speech cache, and derives from results.jsonl what the
scaling estimate in the README needs: the model load time per worker, the cost of a conversation on a warm worker
and the memory per worker.

Usage: python benchmarks/bench_batch.py [--workers 1 2] [--rows 8] [--size 256] [--ray]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PORTRAITS = ("astronaut.png", "grace_hopper.jpg", "mona_lisa.jpg", "girl_with_a_pearl_earring.jpg")
TOPICS = (
    ("the lake cabin", "the boat", "the long swim"),
    ("the new bakery", "the rye bread", "the queue at dawn"),
    ("the chess club", "the last game", "the lost queen"),
    ("the garden", "the tomatoes", "the slugs"),
    ("the train strike", "the bus instead", "the late meeting"),
    ("the museum", "the old maps", "the gift shop"),
    ("the concert", "the violinist", "the encore"),
    ("the storm", "the power cut", "the candles"),
)


def manifest_rows(n: int, size: int) -> list[dict]:
    """n conversations: portrait pairs in turn, each with its own lines (so no row reuses another's speech)."""
    pairs = list(itertools.combinations(PORTRAITS, 2))
    rows = []
    for i in range(n):
        a, b = pairs[i % len(pairs)]
        x, y, z = TOPICS[i % len(TOPICS)]
        script = (
            f"A [happy]: Did you hear about {x}? Everyone is talking about it.\n"
            f"B [surprised]: No! Tell me everything, especially about {y}.\n"
            f"A: Well, it all started with {z}, believe it or not."
        )
        rows.append({
            "id": f"bench-{i + 1:02d}", "portrait_a": str(ROOT / "examples" / a),
            "portrait_b": str(ROOT / "examples" / b), "script": script, "size": size, "seed": i,
        })  # fmt: skip
    return rows


def run(rows: list[dict], workers: int, ray: bool) -> dict:
    from warmchat.batch import batch

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        manifest = Path(tmp, "bench.jsonl")
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.environ["WARMCHAT_CACHE_DIR"] = str(Path(tmp, "speech-cache"))  # synthesise, never reuse
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        result = batch(manifest, Path(tmp, "out"), workers=workers, ray_address="local" if ray else None)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
    done = [r for _, r in result.rows if r is not None]
    failed = [r.error for r in done if r.status != "ok"]
    if failed:
        raise SystemExit(f"rows failed: {failed}")
    video_s = sum(r.duration_s for r in done)
    first = [r for r in done if r.worker_rows == 1]  # each worker's first row loads the models
    warm = [r for r in done if r.worker_rows > 1]
    warm_video_s = sum(r.duration_s for r in warm)

    def mean(rows, key):
        return round(statistics.mean(getattr(r, key) for r in rows), 2) if rows else None

    return {
        "workers": workers,
        "backend": "ray" if ray else "pool",
        "rows": len(done),
        "video_s": round(video_s, 2),
        "wall_s": round(wall, 2),
        "throughput_video_s_per_wall_s": round(video_s / wall, 3),
        "cpu_s_total": round(sum(r.cpu_s for r in done), 1),
        "cores_used_mean": round(sum(r.cpu_s for r in done) / wall, 2),  # below `workers`: others had the rest
        "row_wall_s_first_per_worker": mean(first, "wall_s"),
        "row_wall_s_warm_mean": mean(warm, "wall_s"),
        "model_load_wall_s_per_worker": round(mean(first, "wall_s") - mean(warm, "wall_s"), 2) if warm else None,
        # CPU time does not stretch when other work shares the machine: the basis of the scaling estimate.
        "row_cpu_s_first_per_worker": mean(first, "cpu_s"),
        "row_cpu_s_warm_mean": mean(warm, "cpu_s"),
        "model_load_cpu_s_per_worker": round(mean(first, "cpu_s") - mean(warm, "cpu_s"), 2) if warm else None,
        "warm_cpu_s_per_video_s": round(sum(r.cpu_s for r in warm) / warm_video_s, 3) if warm else None,
        "warm_wall_s_per_video_s": round(sum(r.wall_s for r in warm) / warm_video_s, 3) if warm else None,
        "peak_rss_mb_per_worker": round(max(r.worker_rss_mb for r in done), 1),
        "stage_s_total": {k: round(sum(r.stage_seconds.get(k, 0.0) for r in done), 2) for k in done[0].stage_seconds},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="pixels per face")
    parser.add_argument("--ray", action="store_true", help="also run the largest worker count on a local Ray cluster")
    args = parser.parse_args()
    rows = manifest_rows(args.rows, args.size)
    runs = [run(rows, w, ray=False) for w in args.workers]
    if args.ray:
        runs.append(run(rows, max(args.workers), ray=True))
    import torch

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, {gpu}",
                "face_px": args.size,
                "runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
