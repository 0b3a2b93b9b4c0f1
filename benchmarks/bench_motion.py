"""Benchmark the motion stage: CRHMG head motion against the real tracks, lips, blinks, and speed.

    python benchmarks/bench_motion.py

Prints one JSON object:
- head: per role (speaking / listening) and axis, amplitude (deg, std in 5 s windows), velocity (deg/s) and jerk
  (deg/s^3) of the real tracks and of CRHMG (3 seeds x 60 s per role), with generated/real ratios; diversity
  across seeds (mean pairwise correlation of yaw, and the spread of amplitudes); drift over 10 minutes.
- lips: correlation of the audio-to-mouth model's jaw with the real lip gap on the real clips with sound, next to
  a loudness-only baseline.
- blinks: rate and median length in a generated 1-minute conversation; the real rate from LEED.
- speed: seconds for the whole motion stage (both people) of a 1-minute conversation, in one pass and turn by turn.
"""

from __future__ import annotations

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

AXES = ("yaw", "pitch", "roll")


def head_report() -> dict:
    from warmchat.motion import crhmg
    from warmchat.motion.head import HeadState
    from warmchat.motion.stats import head_stats, load_real_clips, pooled_stats, role_segments

    clips = load_real_clips()
    out = {}
    n = 1500
    for role, name in ((True, "speaking"), (False, "listening")):
        real = pooled_stats(role_segments(clips, role))
        cond = np.zeros((n, 3), np.float32)
        cond[:, 0] = float(role)
        cond[:, 2] = 0.5 * role * (1 + np.sin(np.arange(n) / 25 * 2 * np.pi * 0.7))  # a voice rising and falling
        gen_poses = [crhmg.generate_head(HeadState(seed=s), cond, n, n) for s in range(3)]
        gen = pooled_stats(gen_poses)
        out[name] = {
            a: {
                k: {
                    "real": round(real[a][k], 2),
                    "generated": round(gen[a][k], 2),
                    "ratio": round(gen[a][k] / real[a][k], 2),
                }
                for k in real[a]
            }
            for a in AXES
        }
        yaw = [p[:, 0] for p in gen_poses]
        out[name]["diversity"] = {
            "mean_pairwise_yaw_correlation": round(
                float(np.mean([np.corrcoef(yaw[i], yaw[j])[0, 1] for i in range(3) for j in range(i + 1, 3)])), 3
            ),
            "yaw_amplitude_by_seed_deg": [round(head_stats(p)["yaw"]["amplitude_deg"], 2) for p in gen_poses],
        }
    long_n = 25 * 600
    cond = np.zeros((long_n, 3), np.float32)
    cond[:, 0] = (np.arange(long_n) // 250) % 2
    t0 = time.perf_counter()
    pose = crhmg.generate_head(HeadState(seed=1), cond, long_n, long_n)
    seconds = time.perf_counter() - t0
    minutes = np.degrees(pose[:, :3]).reshape(10, -1, 3)
    out["ten_minutes"] = {
        "max_abs_minute_mean_deg": np.round(np.abs(minutes.mean(axis=1)).max(axis=0), 2).tolist(),
        "minute_std_deg_first_last": [
            np.round(minutes[0].std(axis=0), 2).tolist(),
            np.round(minutes[-1].std(axis=0), 2).tolist(),
        ],
        "generation_s": round(seconds, 2),
    }
    return out


def lips_report() -> dict:
    from warmchat.motion.lipsync import load_lipsync, predict_mouth
    from warmchat.motion.tracks import TRACKS_DIR, load_tracks

    model = load_lipsync()
    out = {}
    for path in sorted(TRACKS_DIR.glob("*.npz")):
        tr = load_tracks(path)
        if not tr.has_audio:
            continue
        jaw = predict_mouth(model, tr.features)[:, 0]
        out[path.stem] = {
            "model": round(float(np.corrcoef(jaw, tr.mouth_open)[0, 1]), 3),
            "loudness_baseline": round(float(np.corrcoef(tr.energy_db, tr.mouth_open)[0, 1]), 3),
        }
    return out


def conversation(seconds: float = 60.0):
    from warmchat.schema import Turn
    from warmchat.speech import voice_turn
    from warmchat.timeline import TimelineBuilder
    from warmchat.tree import InteractiveTalkingTree

    lines = [
        Turn("A", "So, how was the trip? I heard the weather was wonderful.", "happy"),
        Turn("B", "It was fine, but the hotel lost our bags on the first night.", "sad"),
    ]
    voices = {"A": "hibari", "B": "piper-joe"}
    base = [voice_turn(t, i, voices[t.speaker]) for i, t in enumerate(lines)]
    builder = TimelineBuilder(24000, 25)
    tree = InteractiveTalkingTree("a trip", "happy", "neutral")
    turns, utts, clocks = [], [], []
    while builder.timeline().duration < seconds:
        i = len(turns)
        turns.append(lines[i % 2])
        utts.append(base[i % 2])
        builder.add(turns[-1], utts[-1])
        tree.add_turn(turns[-1])
        clocks.append(builder.timeline())
    clocks[-1] = builder.finish()
    curves = []
    for clock in clocks:
        tree.set_times(clock) if len(clock.segments) == len(turns) else None
        curves.append(tree.frame_curves(clock.n_frames, clock.fps, [(s.start, s.end) for s in clock.segments]))
    return turns, utts, clocks, curves


def speed_and_blinks() -> dict:
    from warmchat import motion
    from warmchat.config import MotionConfig
    from warmchat.controls import INDEX
    from warmchat.motion.listener import load_leed

    turns, utts, clocks, curves = conversation()
    clock = clocks[-1]
    cfg = MotionConfig()

    def params():
        rngs = np.random.default_rng(0).spawn(2)
        return {p: motion.draw_person_motion(rngs[i], cfg) for i, p in enumerate("AB")}

    motion.build_motion("A", clock, utts, curves[-1]["A"], cfg, params()["A"], 0, 50)  # load models once
    ps = params()
    t0 = time.perf_counter()
    tracks = {p: motion.build_motion(p, clock, utts, curves[-1][p], cfg, ps[p]) for p in "AB"}
    one_pass = time.perf_counter() - t0
    ps = params()
    t0 = time.perf_counter()
    done = 0
    for i, c in enumerate(clocks):
        end = c.n_frames if i == len(clocks) - 1 else min(int(np.ceil(c.segments[i].end * c.fps)), c.n_frames)
        for p in "AB":
            motion.build_motion(p, c, utts, curves[i][p], cfg, ps[p], done, end)
        done = end
    streamed = time.perf_counter() - t0
    blinks = {}
    for p in "AB":
        closed = tracks[p].expression[:, INDEX["eyeBlink_L"]] > 0.5
        starts = np.flatnonzero(closed[1:] & ~closed[:-1])
        lengths = [np.argmin(closed[s + 1 :]) / 25 for s in starts if not closed[s + 1 :].all()]
        blinks[p] = {
            "per_min": round(len(starts) / (clock.duration / 60), 1),
            "closed_s_median": float(np.median(lengths)),
        }
    return {
        "speed": {
            "conversation_s": round(clock.duration, 1),
            "turns": len(turns),
            "one_pass_s": round(one_pass, 2),
            "turn_by_turn_s": round(streamed, 2),
        },
        "blinks": {"generated": blinks, "real_rate_per_min": load_leed().blink_rate_per_min},
    }


def main() -> None:
    import torch

    torch.set_num_threads(1)
    report = {"machine": "2-core CPU, 24 GiB, no GPU"}
    report["head"] = head_report()
    report["lips_real_clips"] = lips_report()
    report.update(speed_and_blinks())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
