"""Benchmark the CPU renderer: frames per second on one core and measured fidelity, for the four example portraits.

    python benchmarks/bench_render.py [--frames 300] [--portraits examples/astronaut.png ...]

Prints one JSON object. Speed is single-threaded (OpenCV and BLAS pinned to one thread) and counted in CPU time of
the rendering thread, so it reads as "frames per second per core" even on a busy machine; wall-clock fps is given too.
Fidelity numbers re-detect the face mesh on rendered frames (see `warmchat/render/fidelity.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PORTRAITS = ("astronaut.png", "grace_hopper.jpg", "mona_lisa.jpg", "girl_with_a_pearl_earring.jpg")


def motion(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) expression and (n, 6) pose like a talking head: jaw at syllable rate, smiles, blinks, head sway."""
    from warmchat.controls import INDEX, rest_pose, zeros

    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    expr, pose = zeros(n), rest_pose(n)
    expr[:, INDEX["jawOpen"]] = np.clip(0.35 + 0.3 * np.sin(2 * np.pi * 4 * t) + 0.1 * rng.normal(size=n), 0, 1)
    expr[:, INDEX["mouthSmile_L"]] = expr[:, INDEX["mouthSmile_R"]] = 0.3 + 0.3 * np.sin(2 * np.pi * 0.3 * t)
    expr[:, INDEX["browInnerUp"]] = 0.3 + 0.3 * np.sin(2 * np.pi * 0.5 * t)
    blink = (np.arange(n) % 75) < 6
    expr[blink, INDEX["eyeBlink_L"]] = expr[blink, INDEX["eyeBlink_R"]] = 1.0
    for axis, amp in enumerate((0.06, 0.04, 0.03)):
        pose[:, axis] = amp * np.sin(2 * np.pi * (0.2 + 0.13 * axis) * t + axis)
    return expr, pose


def speed(renderer, n: int, batch: int = 8) -> dict:
    """Frames drawn in batches as the pipeline draws them (`compose.SegmentWriter`), every one a new pose."""
    expr, pose = motion(n + 1)
    renderer.render_batch(expr[:1], pose[:1])  # warm caches
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(1, n + 1, batch):
        renderer.render_batch(expr[i : i + batch], pose[i : i + batch])
    cpu = time.thread_time() - cpu
    wall = time.perf_counter() - wall
    return {
        "fps_per_core": round(n / cpu, 1),
        "ms_per_frame_cpu": round(1000 * cpu / n, 2),
        "fps_wall": round(n / wall, 1),
    }


def fidelity(renderer) -> dict:
    """The issue's checks: jaw, blink, yaw, smile, rest PSNR and background SSIM under expression-only motion."""
    from warmchat import face as F
    from warmchat.controls import INDEX, POSE_INDEX, rest_pose, zeros
    from warmchat.render import fidelity as Q

    def frame(pose_deg: dict | None = None, **controls) -> np.ndarray:
        e, p = zeros(1)[0], rest_pose(1)[0]
        for k, v in controls.items():
            e[INDEX[k]] = v
        for k, v in (pose_deg or {}).items():
            p[POSE_INDEX[k]] = np.radians(v)
        return renderer.render(e, p)

    rest = frame()
    lm0 = Q.landmarks(rest)
    out: dict = {"rest_psnr_db": round(Q.psnr(rest, renderer.rig.image), 2)}
    gaps = [Q.lip_gap(Q.landmarks(frame(jawOpen=j))) for j in (0.0, 0.2, 0.4, 0.6)]
    out["jaw_lip_gap"] = [round(g, 4) for g in gaps]
    out["jaw_monotonic"] = bool(np.all(np.diff(gaps) > 0))
    out["jaw_0.6_gap_increase"] = round(gaps[-1] - gaps[0], 4)
    closed = Q.landmarks(frame(eyeBlink_L=1.0, eyeBlink_R=1.0))
    ear0 = Q.eye_aspect_ratio(lm0)
    out["ear_open"] = round(ear0, 3)
    out["ear_closed"] = round(Q.eye_aspect_ratio(closed), 3) if closed is not None else None
    out["blink_ear_drop"] = round(1 - out["ear_closed"] / ear0, 3) if closed is not None else None
    turned = Q.landmarks(frame({"yaw": 10.0}))
    model = renderer.rig.landmarks[np.array(Q.RIGID)]
    yaw_pnp = Q.head_pose(model, turned[np.array(Q.RIGID), :2])[0] - Q.head_pose(model, lm0[np.array(Q.RIGID), :2])[0]
    out["yaw_10_measured_pnp"] = round(yaw_pnp, 2)
    out["yaw_10_measured_tracker3d"] = round(F.head_angles(turned)[0] - F.head_angles(lm0)[0], 2)
    smile = Q.landmarks(frame(mouthSmile_L=1.0, mouthSmile_R=1.0))
    out["smile_corner_rise"] = round(Q.mouth_corner_height(smile) - Q.mouth_corner_height(lm0), 4)
    expressive = frame(jawOpen=0.5, mouthSmile_L=1.0, mouthSmile_R=1.0, eyeBlink_L=1.0, browInnerUp=1.0, noseSneer=1.0)
    head = renderer.mesh_rig.head_alpha > 0.02
    out["ssim_outside_head"] = round(Q.ssim_outside(expressive, renderer.rig.image, head), 4)
    return out


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--portraits", nargs="*", type=Path, default=[ROOT / "examples" / p for p in PORTRAITS])
    parser.add_argument("--no-fidelity", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    from warmchat.face import build_rig
    from warmchat.render.cpu import CpuRenderer

    report: dict = {"size": 512, "threads": 1, "frames": args.frames, "batch": 8, "portraits": {}}
    for path in args.portraits:
        t0 = time.perf_counter()
        face = build_rig(path, "A")
        t1 = time.perf_counter()
        renderer = CpuRenderer(face)
        t2 = time.perf_counter()
        entry = {"intake_s": round(t1 - t0, 2), "renderer_setup_s": round(t2 - t1, 2), **speed(renderer, args.frames)}
        if not args.no_fidelity:
            entry.update(fidelity(renderer))
        report["portraits"][path.name] = entry
    fps = [p["fps_per_core"] for p in report["portraits"].values()]
    report["fps_per_core_min"] = min(fps)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
