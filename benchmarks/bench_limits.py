"""Benchmark the bounds on one request: peak memory and time of the largest requests the limits allow.

    python benchmarks/bench_limits.py [--skip-app] [--out out/limits]

Each case runs in a fresh subprocess and reports its peak resident memory (VmHWM from /proc/self/status, or
ru_maxrss where there is no /proc) and the resident memory just before the measured work (imports and models
loaded), with the seconds the work took. Prints one JSON object:
- line_default / line_app: a one-line script at `LimitsConfig().line_words` words (default 512 px, 25 fps) and at
  `app_limits().line_words` (the app's largest size and frame rate), rendered end to end with `warmchat.generate`.
- app_request: the largest request the app allows: `app_limits().script_lines` lines of `line_words` words,
  alternating A and B, cut to the lines that fit its `speech_s` budget, at its `max_size` px and `max_fps`.
- coarticulation_1000 / _3000: the lips of one 1000- and 3000-word line from made-up phoneme timings, alone
  (`speaker.coarticulate`; before it was made linear, 1000 words needed ~5 GB and 3000 words ~24 GB).
- motion_1000 / _3000: the whole motion stage (both people, `motion.build_motion`) of a conversation that is that
  one line, with speech-like audio: audio features, lips, listener, head.
The limits themselves are not enforced here: each case builds its own config and script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "we could walk down to the harbour after lunch and watch the boats come in while the light is still warm "
    "I remember the summer my grandmother taught me to sail and how patient she was when I kept dropping the rope "
    "maybe this weekend we should call her and ask whether she still has that old wooden boat in the shed"
).split()
INVENTORY = ["p", "a", "t", "ɪ", "m", "oʊ", "s", "ə", "k", "u", "w", "ɛ", "n", "f", "ɹ", "i", "tʃ", "æ"]
VOWELS = {"a", "ɪ", "oʊ", "ə", "u", "ɛ", "i", "æ"}


def _rss_mb(field: str) -> float:
    """A memory figure of this process in MB: VmRSS (now) or VmHWM (peak) from /proc, else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def line_text(n_words: int, offset: int = 0) -> str:
    """`n_words` words of ordinary prose, a full stop every 12 words."""
    words = [WORDS[(offset + i) % len(WORDS)] for i in range(n_words)]
    sentences = [" ".join(words[i : i + 12]) for i in range(0, n_words, 12)]
    return ". ".join(s[0].upper() + s[1:] for s in sentences) + "."


def synthetic_line(n_words: int, seed: int = 0) -> tuple[list, float]:
    """(phonemes, duration) of a made-up line: words of 2-5 phonemes of 50-150 ms, a 250 ms pause every 8 words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    phonemes, t = [], 0.0
    for w in range(n_words):
        for _ in range(rng.integers(2, 6)):
            d = float(rng.uniform(0.05, 0.15))
            phonemes.append((INVENTORY[rng.integers(len(INVENTORY))], t, t + d))
            t += d
        if w % 8 == 7:
            phonemes.append(("_", t, t + 0.25))
            t += 0.25
    return phonemes, t


def synthetic_audio(phonemes: list, duration: float, sr: int = 24000):
    """(S,) float32 speech-like audio: a 140 Hz buzz on vowels, soft noise on consonants, silence in pauses."""
    import numpy as np

    n = int(duration * sr)
    level = np.zeros(n, np.float32)
    voiced = np.zeros(n, bool)
    for p, a, b in phonemes:
        i, j = int(a * sr), int(b * sr)
        if p != "_":
            level[i:j] = 0.3 if p in VOWELS else 0.05
            voiced[i:j] = p in VOWELS
    t = np.arange(n, dtype=np.float32) / sr
    buzz = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    noise = np.random.default_rng(0).uniform(-1, 1, n).astype(np.float32)
    return (level * np.where(voiced, buzz, noise)).astype(np.float32)


def case_coarticulation(n_words: int) -> dict:
    from warmchat.motion.speaker import coarticulate

    phonemes, duration = synthetic_line(n_words)
    rss = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    coarticulate(phonemes, duration, int(round(duration * 25)), 25)
    return {"words": n_words, "speech_s": round(duration, 1), "seconds": time.perf_counter() - t0, "rss_before": rss}


def case_motion(n_words: int) -> dict:
    import numpy as np

    from warmchat import motion
    from warmchat.config import MotionConfig
    from warmchat.emotions import EMOTIONS
    from warmchat.schema import Turn, Utterance
    from warmchat.timeline import build_timeline

    phonemes, duration = synthetic_line(n_words)
    utt = Utterance(synthetic_audio(phonemes, duration), 24000, line_text(n_words), "hibari", phonemes)
    clock = build_timeline([Turn("A", utt.text, "neutral")], [utt], 24000, 25)
    curve = np.zeros((clock.n_frames, len(EMOTIONS)), np.float32)
    curve[:, EMOTIONS.index("neutral")] = 1.0
    rngs = np.random.default_rng(0).spawn(2)
    params = {p: motion.draw_person_motion(rngs[i], MotionConfig()) for i, p in enumerate("AB")}
    motion.build_motion("A", clock, [utt], curve, MotionConfig(), params["A"], 0, 50)  # load the models first
    params = {p: motion.draw_person_motion(rngs[i], MotionConfig()) for i, p in enumerate("AB")}
    rss = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    for p in "AB":
        motion.build_motion(p, clock, [utt], curve, MotionConfig(), params[p])
    seconds = time.perf_counter() - t0
    return {"words": n_words, "speech_s": round(duration, 1), "seconds": seconds, "rss_before": rss}


def _render(script: str, size: int, fps: int, out: Path) -> dict:
    from warmchat import WarmChatConfig, generate

    cfg = WarmChatConfig(seed=0)
    cfg.face.size, cfg.compose.fps = size, fps
    cfg.speech.cache = False  # measure synthesis too
    rss = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    result = generate(
        ROOT / "examples" / "astronaut.png",
        ROOT / "examples" / "grace_hopper.jpg",
        script=script,
        out=out,
        config=cfg,
        progress=lambda f, m: None,
    )
    return {
        "face_px": size,
        "fps": fps,
        "turns": len(result.turns),
        "video_s": round(result.duration_s, 1),
        "seconds": time.perf_counter() - t0,
        "stages_s": {k: round(v, 1) for k, v in result.stage_seconds.items()},
        "rss_before": rss,
    }


def case_line(which: str, out: Path) -> dict:
    from warmchat.config import LimitsConfig, app_limits

    limits = app_limits() if which == "app" else LimitsConfig()
    size, fps = (limits.max_size, limits.max_fps) if which == "app" else (512, 25)
    result = _render(f"A: {line_text(limits.line_words)}\n", size, fps, out / f"line_{which}.mp4")
    return {"words": limits.line_words, **result}


def app_script() -> tuple[str, float]:
    """The largest script the app allows: full-length lines, alternating A and B, within its speech budget."""
    from warmchat.config import SpeechConfig, app_limits
    from warmchat.speech import synthesize

    limits = app_limits()
    voices = {"A": SpeechConfig().voice_a, "B": SpeechConfig().voice_b}
    lines, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SpeechConfig(cache_dir=tmp)
        for i in range(limits.script_lines):
            person = "AB"[i % 2]
            text = line_text(limits.line_words, offset=7 * i)
            seconds = synthesize(text, voices[person], seed=i, config=cfg).duration
            if total + seconds > limits.speech_s:
                break
            lines.append(f"{person}: {text}")
            total += seconds
    return "\n".join(lines) + "\n", total


def case_app(out: Path) -> dict:
    from warmchat.config import app_limits

    limits = app_limits()
    script, speech_s = app_script()
    result = _render(script, limits.max_size, limits.max_fps, out / "app_request.mp4")
    return {"words_per_line": limits.line_words, "speech_s": round(speech_s, 1), **result}


def run_case(name: str, out: Path) -> dict:
    """One case in this process; returns its figures with the peak memory."""
    if name.startswith("coarticulation_"):
        result = case_coarticulation(int(name.split("_")[1]))
    elif name.startswith("motion_"):
        result = case_motion(int(name.split("_")[1]))
    elif name.startswith("line_"):
        result = case_line(name.split("_")[1], out)
    else:
        result = case_app(out)
    result["seconds"] = round(result["seconds"], 2)
    result["rss_before_mb"] = round(result.pop("rss_before"))
    result["peak_rss_mb"] = round(_rss_mb("VmHWM"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help="run one case in this process (used by the parent)")
    parser.add_argument("--skip-app", action="store_true", help="leave out the end-to-end renders")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "limits")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.case:
        print(json.dumps(run_case(args.case, args.out)))
        return
    cases = ["coarticulation_1000", "coarticulation_3000", "motion_1000", "motion_3000"]
    if not args.skip_app:
        cases += ["line_default", "line_app", "app_request"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
    }
    for name in cases:
        cmd = [sys.executable, __file__, "--case", name, "--out", str(args.out)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            report[name] = {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
        else:
            report[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, json.dumps(report[name]), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
