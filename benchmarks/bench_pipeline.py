"""Benchmark: end-to-end speed of the fixed 60 s scripted conversation (and a 10-minute one) on this machine, as JSON.

Each conversation runs in a fresh process, timed from before `import warmchat` to the joined MP4 (imports, model
loads, portraits, speech, motion, render, encode, join), so start-up counts. Printed per conversation: per-stage
seconds (stages overlap: turn i+1 is written, voiced and moved while turn i renders), real-time factor, time to
the first finished turn, peak RSS of the Python process (ffmpeg runs beside it). For scale on a busy
machine, the same run re-encodes the produced video with x264 `ultrafast` and `veryfast` (the encode floor) and
records the load average before and after. `--presets` also compares x264 presets at equal bitrate (PSNR, SSIM,
seconds) on the 60 s conversation's frames, and x264 settings at the pipeline's CRF 20 on a lossless capture of four
turns (encoder CPU per frame, bytes, PSNR, SSIM).

Usage: python benchmarks/bench_pipeline.py [--size 512] [--long-minutes 10] [--presets]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

T_START = time.perf_counter()  # before any warmchat import: start-up is part of the time measured

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_60S = ROOT / "benchmarks" / "data" / "sixty_seconds.txt"
PORTRAITS = (ROOT / "examples" / "astronaut.png", ROOT / "examples" / "grace_hopper.jpg")


def run_one(script: str, out: Path, size: int, crf: int | None = None) -> dict:
    """Render one scripted conversation in this process; the figures as a dict."""
    sys.path.insert(0, str(ROOT))
    from warmchat import WarmChatConfig
    from warmchat.pipeline import Finished, SegmentRendered, iter_generate

    cfg = WarmChatConfig(seed=0)
    cfg.face.size = size
    cfg.speech.cache = False  # measure synthesis, not the speech cache
    cfg.limits.script_lines = 10_000
    if crf is not None:
        cfg.compose.crf = crf
    first = None
    for event in iter_generate(
        *PORTRAITS, emotion_a="happy", emotion_b="neutral", script=script, out=out, config=cfg,
        progress=lambda f, m: None,
    ):  # fmt: skip
        if isinstance(event, SegmentRendered) and first is None:
            first = time.perf_counter() - T_START
        elif isinstance(event, Finished):
            result = event.result
    total = time.perf_counter() - T_START
    return {
        "turns": len(result.turns),
        "video_s": round(result.duration_s, 2),
        "frames": result.n_frames,
        "total_s": round(total, 2),
        "real_time_factor": round(total / result.duration_s, 3),
        "first_turn_finished_s": round(first, 2),
        "stage_s": {k: round(v, 2) for k, v in result.stage_seconds.items()},
        "render_ms_per_frame_pair": round(1000 * result.stage_seconds["render"] / result.n_frames, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _child(script_path: Path, out: Path, size: int, repeat: int, crf: int | None = None) -> dict:
    """`run_one` in a fresh interpreter, so imports and peak memory are this conversation's alone."""
    cmd = [sys.executable, __file__, "--child", str(script_path), "--repeat", str(repeat), "--size", str(size)]
    cmd += ["--crf", str(crf)] if crf is not None else []
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ffmpeg() -> str:
    sys.path.insert(0, str(ROOT))
    from warmchat.compose import ffmpeg_exe

    return ffmpeg_exe()


def encode_floor(video: Path, duration_s: float) -> dict:
    """Seconds per second of video to decode and re-encode `video` with x264 (no audio), per preset."""
    floor = {}
    for preset in ("ultrafast", "veryfast"):
        t0 = time.perf_counter()
        cmd = [_ffmpeg(), "-v", "error", "-i", str(video), "-an", "-c:v", "libx264", "-preset", preset, "-f", "null"]
        subprocess.run([*cmd, "-"], check=True)
        floor[preset] = round((time.perf_counter() - t0) / duration_s, 4)
    return floor


def compare_presets(video: Path, workdir: Path) -> list[dict]:
    """x264 presets (and tunes) at the bitrate `veryfast` needs at CRF 20: seconds, PSNR and SSIM vs the source.

    The source is the produced video decoded once to lossless FFV1, so every encode sees the same frames.
    """
    ffmpeg = _ffmpeg()
    src = workdir / "source.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(video), "-an", "-c:v", "ffv1", str(src)], check=True)

    def encode(out: Path, *args: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(src), "-c:v", "libx264", "-bf", "0", *args, str(out)])
        return time.perf_counter() - t0

    ref = workdir / "crf20.mp4"
    encode(ref, "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")
    probe = subprocess.run([ffmpeg, "-i", str(ref)], capture_output=True, text=True).stderr
    kbps = int(re.search(r"bitrate: (\d+) kb/s", probe).group(1))
    rows = []
    for preset, tune in [
        ("ultrafast", None), ("superfast", None), ("veryfast", None), ("faster", None), ("veryfast", "film"),
        ("veryfast", "animation"), ("superfast", "film"),
    ]:  # fmt: skip
        out = workdir / f"{preset}_{tune}.mp4"
        args = ["-preset", preset, *(["-tune", tune] if tune else []), "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k"]
        seconds = encode(out, *args, "-bufsize", f"{2 * kbps}k", "-pix_fmt", "yuv420p")
        cmp = subprocess.run(
            [ffmpeg, "-i", str(out), "-i", str(src), "-lavfi", "[0:v][1:v]ssim;[0:v][1:v]psnr", "-f", "null", "-"],
            capture_output=True,
            text=True,
        ).stderr
        rows.append({
            "preset": preset, "tune": tune or "-", "kbps": kbps, "encode_s": round(seconds, 2),
            "ssim": float(re.search(r"SSIM.* All:([\d.]+)", cmp).group(1)),
            "psnr_db": float(re.search(r"PSNR.* average:([\d.]+)", cmp).group(1)),
        })  # fmt: skip
    return rows


X264_AT_CRF = [  # (name, preset, x264-params) compared at the pipeline's CRF 20
    ("veryfast", "veryfast", ""),
    ("veryfast me=dia subme=1", "veryfast", "me=dia:subme=1"),
    ("superfast", "superfast", ""),
    ("superfast + mbtree (default)", "superfast", "mbtree=1:rc-lookahead=10"),
    ("ultrafast", "ultrafast", ""),
]


def compare_at_crf(workdir: Path, size: int) -> list[dict]:
    """x264 settings at CRF 20 on a lossless capture of four turns: encoder CPU ms per frame, size, PSNR, SSIM.

    The capture is rendered with CRF 0 (lossless), decoded once to raw YUV, and every setting encodes the same
    frames with one thread, so the CPU time is the encoder's alone and comparable on a busy machine.
    """
    lines = [ln for ln in SCRIPT_60S.read_text().splitlines() if ln.strip() and not ln.startswith("#")][:4]
    script = workdir / "four_turns.txt"
    script.write_text("\n".join(lines) + "\n")
    lossless = _child(script, workdir / "lossless.mp4", size, 1, crf=0)
    ffmpeg, raw = _ffmpeg(), workdir / "lossless.yuv"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(workdir / "lossless.mp4"), "-f", "rawvideo", str(raw)])
    dims = re.search(r", (\d+x\d+)", subprocess.run([ffmpeg, "-i", str(workdir / "lossless.mp4")],
                                                    capture_output=True, text=True).stderr).group(1)  # fmt: skip
    src = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", dims, "-r", "25", "-i", str(raw)]
    rows = []
    for name, preset, params in X264_AT_CRF:
        out = workdir / f"crf20_{preset}_{params.replace(':', '_')}.mp4"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cmd = [ffmpeg, "-v", "error", "-y", *src, "-c:v", "libx264", "-threads", "1", "-preset", preset, "-bf", "0"]
        subprocess.run([*cmd, *(["-x264-params", params] if params else []), "-crf", "20", str(out)], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        cmp = subprocess.run(
            [ffmpeg, *src, "-i", str(out), "-lavfi", "[1:v][0:v]ssim;[1:v][0:v]psnr", "-f", "null", "-"],
            capture_output=True,
            text=True,
        ).stderr
        rows.append({
            "x264": name, "cpu_ms_per_frame": round(1000 * cpu / lossless["frames"], 2),
            "bytes": out.stat().st_size, "psnr_db": float(re.search(r"PSNR.* average:([\d.]+)", cmp).group(1)),
            "ssim": float(re.search(r"SSIM.* All:([\d.]+)", cmp).group(1)),
        })  # fmt: skip
    raw.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="pixels per face")
    parser.add_argument("--long-minutes", type=int, default=10, help="also time a conversation this long (0: skip)")
    parser.add_argument("--presets", action="store_true", help="compare x264 presets at equal bitrate")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "bench_pipeline")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--crf", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        lines = [ln for ln in args.child.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        print(json.dumps(run_one("\n".join(lines * args.repeat), args.out, args.size, args.crf)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_mem_gib()} GiB",
        "face_px": args.size,
        "load_avg_before": [round(x, 2) for x in os.getloadavg()],
    }
    video = args.workdir / "sixty.mp4"
    report["sixty_s"] = _child(SCRIPT_60S, video, args.size, 1)
    report["sixty_s"]["encode_floor_s_per_video_s"] = encode_floor(video, report["sixty_s"]["video_s"])
    if args.long_minutes:
        # The 16 lines repeated until the conversation lasts about `long_minutes`.
        repeat = max(1, round(args.long_minutes * 60 / report["sixty_s"]["video_s"]))
        report["long"] = _child(SCRIPT_60S, args.workdir / "long.mp4", args.size, repeat)
    if args.presets:
        report["x264_presets_at_equal_bitrate"] = compare_presets(video, args.workdir)
        report["x264_at_crf_20_lossless_source"] = compare_at_crf(args.workdir, args.size)
    report["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


def _mem_gib() -> int:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)


if __name__ == "__main__":
    main()
