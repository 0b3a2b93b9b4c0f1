"""Benchmark: per-frame time and flicker of the diffusion renderer with the tiny random test models (JSON).

The tiny models stand in for SD-1.5 (no weights can be downloaded here): the numbers measure the renderer's own
overhead (warp, face-mesh drawing, masks, pipeline plumbing, compositing) plus a model of negligible cost, not the
speed or look of the real models.

Usage: python benchmarks/bench_diffusion.py [--device cpu] [--frames 24] [--size 128] [--work 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128, help="face crop, pixels")
    parser.add_argument("--work", type=int, default=64, help="diffusion working resolution, pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    import torch
    from tiny_diffusion import build_tiny_models

    from warmchat import face as F
    from warmchat.config import FaceConfig
    from warmchat.controls import INDEX, rest_pose, zeros
    from warmchat.render.cpu import CpuRenderer
    from warmchat.render.diffusion import DiffusionRenderer, head_mask, mouth_eye_mask, temporal_flicker

    torch.set_num_threads(args.threads)
    cfg = replace(build_tiny_models(Path(tempfile.mkdtemp())), diffusion_size=args.work, micro_batch=8)
    rig = F.build_rig(ROOT / "examples" / "grace_hopper.jpg", "A", FaceConfig(size=args.size))
    n = args.frames
    expr = zeros(n)
    expr[:, INDEX["jawOpen"]] = 0.4 * (1 - np.cos(np.linspace(0, 6 * np.pi, n))) / 2
    pose = rest_pose(n)
    pose[:, 0] = 0.03 * np.sin(np.linspace(0, 2 * np.pi, n))

    warp = CpuRenderer(rig)
    t0 = time.perf_counter()
    reference = warp.render_batch(expr, pose)
    cpu_ms = (time.perf_counter() - t0) / n * 1000

    renderer = DiffusionRenderer(rig, cfg, seed=0, device=args.device)
    renderer.render_batch(expr[:2], pose[:2])  # warm-up
    renderer.reset()
    t0 = time.perf_counter()
    frames = renderer.render_batch(expr, pose)
    diffusion_ms = (time.perf_counter() - t0) / n * 1000

    points = [warp.frame_points(e, p) for e, p in zip(expr, pose, strict=True)]
    region = np.stack([head_mask(p, args.size) & ~mouth_eye_mask(p, args.size) for p in points])
    fresh = np.stack(
        [
            DiffusionRenderer(rig, cfg, seed=i, device=args.device).render(e, p)
            for i, (e, p) in enumerate(zip(expr, pose, strict=True))
        ]
    )
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, device {args.device}",
                "frames": n,
                "face_px": args.size,
                "work_px": args.work,
                "denoise_steps": int(cfg.steps * cfg.strength),
                "cpu_warp_ms_per_frame": round(cpu_ms, 1),
                "tiny_diffusion_ms_per_frame": round(diffusion_ms, 1),
                "flicker_grey_levels": round(temporal_flicker(frames, reference, region), 2),
                "flicker_fresh_noise_per_frame": round(temporal_flicker(fresh, reference, region), 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
