"""Benchmark the dialogue stage (JSON): local-LLM tokens/s and seconds per turn, time to a full 6-turn conversation
with each offline backend, and the text emotion classifier's speed.

Usage: python benchmarks/bench_dialogue.py [--turns 6] [--threads 1 2]

The local backend is run once per torch thread count: on a small shared CPU one thread can beat two.
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

SCRIPT = """A: I finally booked the cabin by the lake for Saturday!
B: Really? The one with the little boat?
A [happy]: Yes! And the weather looks perfect.
B: I'm a bit worried about the long drive, to be honest.
A: We can stop halfway for lunch, it'll be fun.
B [happy 0.6]: Okay, you've convinced me. Let's do it.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads to try")
    args = parser.parse_args()

    import torch

    from warmchat import text_emotion
    from warmchat.config import DialogueConfig
    from warmchat.dialogue import LocalBackend, generate_dialogue

    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": os.getloadavg()}

    t0 = time.perf_counter()
    text_emotion.label_emotion("warm up")
    report["classifier_load_s"] = round(time.perf_counter() - t0, 2)
    lines = text_emotion.read_labelled(ROOT / "tests" / "data" / "emotion_eval.tsv")[1]
    t0 = time.perf_counter()
    text_emotion.label_emotions(lines)
    report["classifier_lines_per_s"] = round(len(lines) / (time.perf_counter() - t0), 1)

    t0 = time.perf_counter()
    generate_dialogue("", "neutral", "neutral", DialogueConfig(backend="script"), script=SCRIPT)
    report["script_6_turns_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    backend = LocalBackend(DialogueConfig())
    report["local_model_load_s"] = round(time.perf_counter() - t0, 2)
    report["local"] = []
    default_threads = torch.get_num_threads()
    for threads in args.threads:
        torch.set_num_threads(threads)
        backend.tokens_generated, backend.generate_seconds = 0, 0.0
        cfg = DialogueConfig(turns=args.turns)
        t0 = time.perf_counter()
        turns = generate_dialogue("weekend plans", "happy", "neutral", cfg, seed=0, backend=backend)
        total = time.perf_counter() - t0
        report["local"].append(
            {
                "torch_threads": threads,
                "turns": len(turns),
                "full_conversation_s": round(total, 2),
                "s_per_turn": round(total / len(turns), 2),
                "tokens_sampled": backend.tokens_generated,
                "tokens_per_s": round(backend.tokens_generated / max(backend.generate_seconds, 1e-9), 1),
                "lines": [f"{t.speaker} [{t.emotion} {t.intensity}]: {t.text}" for t in turns],
            }
        )
    torch.set_num_threads(default_threads)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
